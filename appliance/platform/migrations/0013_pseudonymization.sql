-- Personal data found in (or added to) a recording's transcript and its placeholder number per kind.
-- The mapping placeholder → value lives only here, inside the encrypted database, and cascades with the
-- recording, so the Friday purge removes it.
CREATE TABLE pii_entities (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('person', 'pnr', 'samordningsnummer', 'phone', 'email', 'address', 'postcode')),
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
