-- A number shaped like a personnummer, with a valid date but a wrong check digit (a slip of the tongue or a
-- transcription error), is personal data too: kind 'pnr_possible' ("[MÖJLIGT-PNR 1]"). SQLite cannot change
-- a CHECK constraint in place, so the table is rebuilt with the same columns and rows.
CREATE TABLE pii_entities_new (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('person', 'pnr', 'pnr_possible', 'samordningsnummer', 'phone', 'email',
                                       'address', 'postcode')),
    value TEXT NOT NULL,
    match_key TEXT NOT NULL,
    number INTEGER NOT NULL CHECK (number >= 1),
    source TEXT NOT NULL CHECK (source IN ('detected', 'manual')),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'rejected')),
    decided_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    decided_at REAL,
    created_at REAL NOT NULL,
    UNIQUE (recording_id, kind, match_key, source),
    UNIQUE (recording_id, kind, number)
);
INSERT INTO pii_entities_new SELECT * FROM pii_entities;
DROP TABLE pii_entities;
ALTER TABLE pii_entities_new RENAME TO pii_entities;
