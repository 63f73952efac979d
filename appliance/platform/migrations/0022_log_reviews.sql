-- Log follow-up that leaves a record (appliance/compliance/log_reviews.py): the responsible person records that a
-- review of the audit log was done, what was checked (scope: filters as JSON, ids only) and any finding. These are
-- the office's compliance records, not case material: the Friday purge does not touch them.
CREATE TABLE log_reviews (
    id INTEGER PRIMARY KEY,
    reviewer_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    reviewed_at REAL NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('targeted', 'sample', 'general')),
    scope TEXT NOT NULL DEFAULT '{}',
    checked TEXT NOT NULL,
    finding TEXT NOT NULL DEFAULT '',
    has_finding INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX log_reviews_at ON log_reviews(reviewed_at);
