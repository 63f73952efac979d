-- Folders: every user with a content role has a private default folder ("Mina inspelningar") and may
-- create more. A folder is private unless its owner shares it with a named user as editor or viewer.
CREATE TABLE folders (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX folders_owner ON folders(owner_id);
-- At most one default folder per user (ensure_default relies on it to stay idempotent across workers).
CREATE UNIQUE INDEX folders_one_default ON folders(owner_id) WHERE is_default = 1;

CREATE TABLE folder_shares (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('editor', 'viewer')),
    created_at REAL NOT NULL,
    PRIMARY KEY (folder_id, user_id)
);
CREATE INDEX folder_shares_user ON folder_shares(user_id);

ALTER TABLE recordings ADD COLUMN folder_id INTEGER REFERENCES folders(id);
CREATE INDEX recordings_folder ON recordings(folder_id, created_at);

-- Existing users with a content role, and every owner of an existing recording, get their default folder
INSERT INTO folders (owner_id, name, is_default, created_at)
SELECT u.id, 'Mina inspelningar', 1, CAST(strftime('%s', 'now') AS REAL) FROM users u
WHERE u.id IN (SELECT user_id FROM user_roles WHERE role IN ('caseworker', 'manager'))
   OR u.id IN (SELECT owner_id FROM recordings);

-- and existing recordings move into their owner's default folder.
UPDATE recordings SET folder_id = (SELECT f.id FROM folders f WHERE f.owner_id = recordings.owner_id
                                   AND f.is_default = 1)
WHERE folder_id IS NULL;
