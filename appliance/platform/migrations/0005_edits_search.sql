-- Editing with history, and the full-text search index (both inside the encrypted database).

-- Every edit of a segment's text: who, when, before, after. Keyed by (recording, segment idx), not by the
-- segment row: the asr worker replaces segment rows wholesale, and the latest edit for an idx wins on read.
-- A revert is itself an edit. Deleted with the recording.
CREATE TABLE segment_edits (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    reverted_to INTEGER
);
CREATE INDEX segment_edits_seg ON segment_edits(recording_id, idx, id);

-- Search: one FTS5 table for transcript lines (rowid = segments.id) and titles (rowid = -search_titles.id).
-- unicode61 without diacritic folding keeps å/ä/ö distinct letters; Swedish inflections are handled by
-- stemming query terms and matching them as prefixes (appliance/search.py).
CREATE VIRTUAL TABLE search_fts USING fts5(
    text, recording_id UNINDEXED, idx UNINDEXED,
    tokenize = 'unicode61 remove_diacritics 0', prefix = '2 3'
);

-- Stable small ids for the title rows (recordings has a text key; its rowid is not kept by the re-key).
CREATE TABLE search_titles (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL UNIQUE REFERENCES recordings(id) ON DELETE CASCADE
);

-- The index follows every write, in the writer's own transaction: segment rows (asr worker, any writer),
-- edits, titles and deletion (the purge's cascade).
CREATE TRIGGER search_seg_ins AFTER INSERT ON segments BEGIN
    INSERT INTO search_fts (rowid, text, recording_id, idx)
    VALUES (new.id, coalesce((SELECT e.after FROM segment_edits e WHERE e.recording_id = new.recording_id
                                AND e.idx = new.idx ORDER BY e.id DESC LIMIT 1), new.text),
            new.recording_id, new.idx);
END;

CREATE TRIGGER search_seg_upd AFTER UPDATE OF text, idx, recording_id ON segments BEGIN
    DELETE FROM search_fts WHERE rowid = old.id;
    INSERT INTO search_fts (rowid, text, recording_id, idx)
    VALUES (new.id, coalesce((SELECT e.after FROM segment_edits e WHERE e.recording_id = new.recording_id
                                AND e.idx = new.idx ORDER BY e.id DESC LIMIT 1), new.text),
            new.recording_id, new.idx);
END;

CREATE TRIGGER search_seg_del AFTER DELETE ON segments BEGIN
    DELETE FROM search_fts WHERE rowid = old.id;
END;

CREATE TRIGGER search_edit_ins AFTER INSERT ON segment_edits BEGIN
    DELETE FROM search_fts WHERE rowid IN (SELECT id FROM segments WHERE recording_id = new.recording_id
                                           AND idx = new.idx);
    INSERT INTO search_fts (rowid, text, recording_id, idx)
    SELECT id, new.after, recording_id, idx FROM segments WHERE recording_id = new.recording_id AND idx = new.idx;
END;

CREATE TRIGGER search_title_ins AFTER INSERT ON recordings BEGIN
    INSERT INTO search_titles (recording_id) VALUES (new.id);
    INSERT INTO search_fts (rowid, text, recording_id, idx)
    SELECT -id, new.title, new.id, -1 FROM search_titles WHERE recording_id = new.id;
END;

CREATE TRIGGER search_title_upd AFTER UPDATE OF title ON recordings BEGIN
    DELETE FROM search_fts WHERE rowid = (SELECT -id FROM search_titles WHERE recording_id = old.id);
    INSERT INTO search_fts (rowid, text, recording_id, idx)
    SELECT -id, new.title, new.id, -1 FROM search_titles WHERE recording_id = new.id;
END;

CREATE TRIGGER search_title_del BEFORE DELETE ON recordings BEGIN
    DELETE FROM search_fts WHERE rowid = (SELECT -id FROM search_titles WHERE recording_id = old.id);
END;

-- Backfill what exists.
INSERT INTO search_titles (recording_id) SELECT id FROM recordings;
INSERT INTO search_fts (rowid, text, recording_id, idx)
SELECT -t.id, r.title, r.id, -1 FROM search_titles t JOIN recordings r ON r.id = t.recording_id;
INSERT INTO search_fts (rowid, text, recording_id, idx) SELECT id, text, recording_id, idx FROM segments;
