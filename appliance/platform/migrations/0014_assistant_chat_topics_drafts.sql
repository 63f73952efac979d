-- The assistant's chat, topic table of contents and case drafts (appliance/assistant/chat.py, topics.py,
-- case_drafts.py). Everything here is personal data derived from transcripts: it is deleted with its
-- recording (ON DELETE CASCADE), so the Friday purge and a caseworker's delete remove it.

-- Questions, rewrites and the answers about one recording. `answer` is JSON: a list of statements
-- {"text", "segments"} as the model wrote them (segment numbers are 1-based positions in the transcript).
-- `revealed` = 1 when the asker let the model see unpseudonymized personal data for that one request;
-- `source_id` is the earlier answer a rewrite rewrote.
CREATE TABLE chat_messages (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    kind TEXT NOT NULL CHECK (kind IN ('question', 'rewrite')),
    prompt TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    error TEXT,
    revealed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    finished_at REAL,
    source_id INTEGER REFERENCES chat_messages(id) ON DELETE SET NULL
);
CREATE INDEX chat_messages_rec ON chat_messages(recording_id, id);

-- Suggested questions generated from the content (replaced as a whole when regenerated).
CREATE TABLE chat_suggestions (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    pos INTEGER NOT NULL,
    question TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (recording_id, pos)
);

-- Topic table of contents: a title per stretch of the conversation and the segment where it starts.
CREATE TABLE topics (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    pos INTEGER NOT NULL,
    title TEXT NOT NULL,
    segment INTEGER NOT NULL,
    start REAL NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (recording_id, pos)
);

-- Case drafts: one BBIC-structured draft from several recordings of one case plus pasted journal notes.
-- `result` is JSON (sections → statements with citations "conversation label + segment number").
-- Review gate as for summaries: utkast → granskad → overford (överförd till verksamhetssystemet).
CREATE TABLE case_drafts (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    review TEXT NOT NULL DEFAULT 'utkast' CHECK (review IN ('utkast', 'granskad', 'overford')),
    reviewed_at REAL,
    transferred_at REAL,
    revealed INTEGER NOT NULL DEFAULT 0,
    job_id INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX case_drafts_owner ON case_drafts(owner_id, created_at);

-- The recordings a draft was made from; `label` (A, B, C …) is how citations name the conversation.
CREATE TABLE case_draft_sources (
    draft_id INTEGER NOT NULL REFERENCES case_drafts(id) ON DELETE CASCADE,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (draft_id, recording_id)
);
CREATE INDEX case_draft_sources_rec ON case_draft_sources(recording_id);

-- A draft quotes every source, so it must not outlive any of them: when one source recording is deleted
-- (by a caseworker or the purge, whose cascade removes the source row), the whole draft goes with it.
CREATE TRIGGER case_draft_source_gone AFTER DELETE ON case_draft_sources BEGIN
    DELETE FROM case_drafts WHERE id = old.draft_id;
END;
