-- The step between the password and the TOTP code (or TOTP enrolment): a random nonce whose hash lives
-- here and whose value lives in the signed state cookie. The second step consumes it, so a copy of the
-- cookie taken after the password step can never be replayed with a later code; it lives five minutes.
CREATE TABLE preauth (
    nonce_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stage TEXT NOT NULL,
    created_at REAL NOT NULL
);
