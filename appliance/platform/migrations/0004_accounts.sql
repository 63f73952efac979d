-- Accounts: usage guidelines acceptance, invitations (one-time enrolment links) and admin API tokens.
ALTER TABLE users ADD COLUMN guidelines_version TEXT;
ALTER TABLE users ADD COLUMN guidelines_accepted_at REAL;
-- 1 while the user has not yet set a password through an invitation link.
ALTER TABLE users ADD COLUMN invited INTEGER NOT NULL DEFAULT 0;

-- The link carries a random token; only its SHA-256 is stored. Single use, expires.
CREATE TABLE invitations (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL
);
CREATE INDEX invitations_user ON invitations(user_id);

-- Admin-scope API tokens (Authorization: Bearer on /api/admin/* only); only the SHA-256 is stored.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at REAL NOT NULL,
    last_used_at REAL,
    revoked_at REAL
);
