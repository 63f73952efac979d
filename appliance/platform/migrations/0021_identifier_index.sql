-- Data-subject requests (appliance/compliance/identifiers.py): which material holds a given personnummer, found
-- by a keyed hash (HMAC under a subkey of the master key) of the personnummer and samordningsnummer detected in
-- it. The number itself is never stored by the index. Each row cascades with the material it points at.
--   part: transcript (current lines) | title | speakers (current names) | history (machine text under edits,
--         edit and rename history, the pseudonymization list) | summary | chat | assistant (suggested
--         questions, topics) | draft (a case draft's title, notes or text)
CREATE TABLE identifier_index (
    hash BLOB NOT NULL,
    part TEXT NOT NULL,
    recording_id TEXT REFERENCES recordings(id) ON DELETE CASCADE,
    summary_id INTEGER REFERENCES summaries(id) ON DELETE CASCADE,
    message_id INTEGER REFERENCES chat_messages(id) ON DELETE CASCADE,
    case_draft_id INTEGER REFERENCES case_drafts(id) ON DELETE CASCADE
);
CREATE INDEX identifier_index_hash ON identifier_index(hash);
CREATE INDEX identifier_index_rec ON identifier_index(recording_id);
CREATE INDEX identifier_index_draft ON identifier_index(case_draft_id);

-- What changed since it was last indexed: a recording (everything stored with it) or a case draft. Every writer
-- of those tables marks it here through the triggers below, in its own transaction, so no writer can forget;
-- the index is brought up to date from these marks before every search (and by the shred timer).
CREATE TABLE identifier_index_dirty (
    source TEXT NOT NULL CHECK (source IN ('recording', 'case_draft')),
    id TEXT NOT NULL,
    PRIMARY KEY (source, id)
);

CREATE TRIGGER idx_dirty_rec_ins AFTER INSERT ON recordings BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.id);
END;
CREATE TRIGGER idx_dirty_rec_title AFTER UPDATE OF title ON recordings BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.id);
END;
CREATE TRIGGER idx_dirty_seg_ins AFTER INSERT ON segments BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_seg_upd AFTER UPDATE OF text ON segments BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_seg_del AFTER DELETE ON segments BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', old.recording_id);
END;
CREATE TRIGGER idx_dirty_edit AFTER INSERT ON segment_edits BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_speaker_ins AFTER INSERT ON recording_speakers BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_speaker_upd AFTER UPDATE ON recording_speakers BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_speaker_del AFTER DELETE ON recording_speakers BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', old.recording_id);
END;
CREATE TRIGGER idx_dirty_speaker_edit AFTER INSERT ON speaker_edits BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
-- The pseudonymization list maps the placeholders in summaries, answers and drafts back to real values.
CREATE TRIGGER idx_dirty_pii_ins AFTER INSERT ON pii_entities BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
    INSERT OR IGNORE INTO identifier_index_dirty
        SELECT 'case_draft', CAST(draft_id AS TEXT) FROM case_draft_sources WHERE recording_id = new.recording_id;
END;
CREATE TRIGGER idx_dirty_pii_upd AFTER UPDATE ON pii_entities BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
    INSERT OR IGNORE INTO identifier_index_dirty
        SELECT 'case_draft', CAST(draft_id AS TEXT) FROM case_draft_sources WHERE recording_id = new.recording_id;
END;
CREATE TRIGGER idx_dirty_pii_del AFTER DELETE ON pii_entities BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', old.recording_id);
    INSERT OR IGNORE INTO identifier_index_dirty
        SELECT 'case_draft', CAST(draft_id AS TEXT) FROM case_draft_sources WHERE recording_id = old.recording_id;
END;
CREATE TRIGGER idx_dirty_summary_ins AFTER INSERT ON summaries BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_summary_upd AFTER UPDATE OF content ON summaries BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_chat_ins AFTER INSERT ON chat_messages BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_chat_upd AFTER UPDATE OF prompt, answer ON chat_messages BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_chat_sugg AFTER INSERT ON chat_suggestions BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_chat_sugg_del AFTER DELETE ON chat_suggestions BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', old.recording_id);
END;
CREATE TRIGGER idx_dirty_topics AFTER INSERT ON topics BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', new.recording_id);
END;
CREATE TRIGGER idx_dirty_topics_del AFTER DELETE ON topics BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('recording', old.recording_id);
END;
CREATE TRIGGER idx_dirty_draft_ins AFTER INSERT ON case_drafts BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('case_draft', CAST(new.id AS TEXT));
END;
CREATE TRIGGER idx_dirty_draft_upd AFTER UPDATE OF title, notes, content ON case_drafts BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('case_draft', CAST(new.id AS TEXT));
END;
CREATE TRIGGER idx_dirty_draft_src AFTER INSERT ON case_draft_sources BEGIN
    INSERT OR IGNORE INTO identifier_index_dirty VALUES ('case_draft', CAST(new.draft_id AS TEXT));
END;

-- Everything that exists is indexed at the first search.
INSERT OR IGNORE INTO identifier_index_dirty SELECT 'recording', id FROM recordings;
INSERT OR IGNORE INTO identifier_index_dirty SELECT 'case_draft', CAST(id AS TEXT) FROM case_drafts;

-- Owners are told when the responsible person erased their material on a data subject's request: ids, counts
-- and the request's reference only. Shown on their next page until they have seen it.
CREATE TABLE user_notices (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('erasure')),
    reference TEXT NOT NULL,
    recording_ids TEXT NOT NULL DEFAULT '[]',
    drafts INTEGER NOT NULL DEFAULT 0,
    other INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    seen_at REAL
);
CREATE INDEX user_notices_user ON user_notices(user_id, seen_at);
