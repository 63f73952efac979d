-- Live recordings (browser dictaphone, desk microphones): appliance/live.py.

-- A recording being captured has status 'recording'. Widening the CHECK is done on the stored schema text
-- instead of the usual copy-and-rename rebuild: a rebuild would have to name every column (other migrations
-- add columns to recordings) and, with foreign keys on inside the migration's transaction, dropping the old
-- table would cascade-delete every transcript. Widening a CHECK cannot invalidate existing rows, which is the
-- case SQLite documents as safe for writable_schema; the CREATE TABLEs below bump the schema cookie, so
-- every connection re-reads the schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, '''ready'', ''failed'')', '''ready'', ''failed'', ''recording'')')
WHERE type = 'table' AND name = 'recordings' AND sql NOT LIKE '%''recording''%';
PRAGMA writable_schema = OFF;

-- One row per live recording: who started it (the desk recorder acts on their behalf), from where, its
-- capture state, and how far the asr worker's live transcript has got (samples at 16 kHz), with the
-- worker's lease so two asr workers never transcribe the same stretch.
CREATE TABLE live_sessions (
    recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    source TEXT NOT NULL CHECK (source IN ('browser', 'desk')),
    device TEXT,
    state TEXT NOT NULL CHECK (state IN ('recording', 'paused', 'stopped')),
    started_at REAL NOT NULL,
    stopped_at REAL,
    stop_reason TEXT,
    transcribed_samples INTEGER NOT NULL DEFAULT 0,
    asr_owner TEXT,
    asr_lease_expires REAL
);
CREATE INDEX live_sessions_state ON live_sessions(state);

-- Every acknowledged piece of audio (its encrypted bytes are a blob of their own until stop assembles the
-- recording's WAV). sha256 makes a re-sent piece a no-op and a different one under the same number an error.
CREATE TABLE live_chunks (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (recording_id, seq)
);

-- Pause, resume, gaps (pieces that never arrived, filled with silence) and the stop, placed before the
-- piece numbered `seq`; `at_seconds` is the position in the recording's audio once it is known (at stop).
CREATE TABLE live_marks (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('pause', 'resume', 'gap', 'stop', 'max_length')),
    seq INTEGER NOT NULL,
    at_seconds REAL,
    created_at REAL NOT NULL
);
CREATE INDEX live_marks_rec ON live_marks(recording_id, seq, id);

-- The caseworker's confirmation that the client was informed and consented: who, when, which recording
-- (also in the audit log, which outlives the purge).
CREATE TABLE recording_consents (
    recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    confirmed_at REAL NOT NULL,
    confirmed_at_rtc REAL
);
