-- The reminder history the before-deletion page shows (appliance/compliance/before_deletion.py): when a user was
-- first shown the in-product purge reminder for a purge (e-mailed reminders are in reminders_sent). Ids and times.
CREATE TABLE reminders_shown (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purge_at REAL NOT NULL,
    first_shown_at REAL NOT NULL,
    PRIMARY KEY (user_id, purge_at)
);
