-- The office's own lexicon terms (added and removed in the UI by caseworkers and managers); the shipped
-- terms live in appliance/data/lexicon_sv.tsv. Together they feed the correction suggestions and
-- Whisper's initial prompt. Terms are vocabulary, not case material: they are not purged.
CREATE TABLE lexicon_terms (
    id INTEGER PRIMARY KEY,
    term TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL
);

-- Suggestions the user dismissed ("the word is right"). A suggestion is a span of word tokens of a
-- transcript line's current text (edits applied), keyed like segment_edits by (recording, segment idx);
-- `span` is that text (case-folded) when it was dismissed, so the dismissal lapses once the text there
-- changes. Deleted with the recording.
CREATE TABLE suggestion_dismissals (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start_tok INTEGER NOT NULL,
    end_tok INTEGER NOT NULL,
    span TEXT NOT NULL,
    dismissed_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    dismissed_at REAL NOT NULL,
    PRIMARY KEY (recording_id, idx, start_tok, end_tok)
);
