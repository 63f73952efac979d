-- The documentation assistant: summaries under templates (appliance/assistant/summaries.py) and the office's
-- own templates (appliance/assistant/templates.py).

-- A summary of one recording: queued → running → done | failed (the assistant worker, job kind "summarize"),
-- then the caseworker's review gate utkast → granskad → overford. `content` is JSON (sections, statements,
-- citations, checker results) and personal data: it is deleted with its recording (and so by the purge).
-- `reveal` records that the caseworker let the model see unpseudonymized personal data for this request.
CREATE TABLE summaries (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    job_id INTEGER,
    template_key TEXT NOT NULL,
    template_name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    reveal INTEGER NOT NULL DEFAULT 0,
    content TEXT,
    review_state TEXT NOT NULL DEFAULT 'utkast' CHECK (review_state IN ('utkast', 'granskad', 'overford')),
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    reviewed_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    reviewed_at REAL,
    transferred_at REAL
);
CREATE INDEX summaries_recording ON summaries(recording_id, id);
CREATE INDEX summaries_job ON summaries(job_id);

-- Templates an admin added in the UI: name, headings (JSON list), instructions. Not personal data.
CREATE TABLE assistant_templates (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    headings TEXT NOT NULL,
    instructions TEXT NOT NULL DEFAULT '',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL
);
