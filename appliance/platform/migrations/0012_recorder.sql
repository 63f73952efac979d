-- Desk microphones (issue 3): the web writes what it wants, the recorder unit (services/recorder.py) captures
-- and reports back. Control goes through the database, never a network port.

-- One control row per desk recording. It dies with its recording (the Friday purge, a delete).
CREATE TABLE recorder_requests (
    recording_id TEXT PRIMARY KEY REFERENCES recordings(id) ON DELETE CASCADE,
    -- The recorder acts on behalf of the user who started the recording.
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    -- What the web asks for ...
    desired TEXT NOT NULL CHECK (desired IN ('recording', 'paused', 'stopped')),
    -- ... and what the recorder last did ('pending' until it has opened the device).
    state TEXT NOT NULL CHECK (state IN ('pending', 'recording', 'paused', 'stopped', 'failed')),
    -- Chunks 0 .. acked_chunks-1 are stored (acknowledged by live.append_chunk).
    acked_chunks INTEGER NOT NULL DEFAULT 0,
    captured_seconds REAL NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat REAL,
    -- A Swedish message for the recording page (device error, recorder restart); never personal data.
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- A device records one conversation at a time.
CREATE UNIQUE INDEX recorder_device_busy ON recorder_requests(device)
    WHERE state IN ('pending', 'recording', 'paused');

-- The recorder unit's heartbeat and the capture devices it offers (device names only, nothing personal).
CREATE TABLE recorder_service (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    worker TEXT NOT NULL,
    heartbeat REAL NOT NULL,
    devices TEXT NOT NULL DEFAULT '[]'
);
