-- A transcription backend may give words without probabilities (NVIDIA Riva models whose word confidences are
-- all zero): `probability` NULL means "not known", and such words never count as doubtful (appliance/transcripts/
-- suggestions.py). SQLite cannot drop a NOT NULL in place, so the table is rebuilt with the same columns and rows.
CREATE TABLE words_new (
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    word TEXT NOT NULL,
    probability REAL,
    PRIMARY KEY (segment_id, idx)
);
INSERT INTO words_new SELECT * FROM words;
DROP TABLE words;
ALTER TABLE words_new RENAME TO words;
