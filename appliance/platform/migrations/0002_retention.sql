-- Retention: when the caseworker marked a recording transferred to the case system; purge runs.
ALTER TABLE recordings ADD COLUMN transferred_at REAL;

ALTER TABLE users ADD COLUMN email TEXT;

CREATE TABLE purge_runs (
    id INTEGER PRIMARY KEY,
    finished_at REAL NOT NULL,
    finished_at_rtc REAL,
    generation INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);

-- Reminders already sent (one per user and purge), so a re-run of the reminder timer does not repeat.
CREATE TABLE reminders_sent (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purge_at REAL NOT NULL,
    reminder_at REAL NOT NULL,
    PRIMARY KEY (user_id, purge_at, reminder_at)
);

-- Blobs whose rows are deleted; written in the deleting transaction, cleared once the files are gone,
-- so a purge killed in between finishes the job on its next run.
CREATE TABLE pending_blob_deletions (
    blob_id TEXT PRIMARY KEY
);
