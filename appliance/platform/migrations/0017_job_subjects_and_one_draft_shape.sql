-- Jobs of any kind with their own subject (issue 11). `subject_id` names what the job works on: a
-- recording (transcribe), a summary (summarize) or a case draft (case_draft); the feature that owns the
-- subject defines the job kind and how a failure is reported to it (appliance/platform/jobs.py JobKind).
-- `recording_id` stays only for the cascade: a job goes with the recording it belongs to. A case draft's
-- job belongs to no single recording; it goes with its draft (trigger below).
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    recording_id TEXT REFERENCES recordings(id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires REAL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
INSERT INTO jobs_new (id, kind, subject_id, recording_id, state, attempts, lease_owner, lease_expires, error,
                      created_at, updated_at)
SELECT j.id, j.kind,
       CASE j.kind
           WHEN 'summarize' THEN coalesce((SELECT CAST(s.id AS TEXT) FROM summaries s WHERE s.job_id = j.id), '')
           WHEN 'case_draft' THEN coalesce((SELECT CAST(d.id AS TEXT) FROM case_drafts d WHERE d.job_id = j.id), '')
           ELSE j.recording_id END,
       CASE WHEN j.kind = 'case_draft' THEN NULL ELSE j.recording_id END,
       j.state, j.attempts, j.lease_owner, j.lease_expires, j.error, j.created_at, j.updated_at
FROM jobs j;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_claim ON jobs(kind, state, id);
CREATE INDEX jobs_subject ON jobs(kind, subject_id);

CREATE TRIGGER case_draft_jobs_gone AFTER DELETE ON case_drafts BEGIN
    DELETE FROM jobs WHERE kind = 'case_draft' AND subject_id = CAST(old.id AS TEXT);
END;
CREATE TRIGGER summary_jobs_gone AFTER DELETE ON summaries BEGIN
    DELETE FROM jobs WHERE kind = 'summarize' AND subject_id = CAST(old.id AS TEXT);
END;

-- One reviewed-draft concept (appliance/assistant/drafts.py): case drafts take the summaries' column names
-- and states (status, content, review_state, reveal, finished_at, reviewed_by); the job points at its
-- subject, so neither table keeps a job id.
ALTER TABLE case_drafts RENAME COLUMN state TO status;
ALTER TABLE case_drafts RENAME COLUMN result TO content;
ALTER TABLE case_drafts RENAME COLUMN review TO review_state;
ALTER TABLE case_drafts RENAME COLUMN revealed TO reveal;
ALTER TABLE case_drafts ADD COLUMN finished_at REAL;
ALTER TABLE case_drafts ADD COLUMN reviewed_by INTEGER REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE case_drafts DROP COLUMN updated_at;
ALTER TABLE case_drafts DROP COLUMN job_id;
DROP INDEX summaries_job;
ALTER TABLE summaries DROP COLUMN job_id;
