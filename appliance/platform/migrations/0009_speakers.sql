-- Speakers (diarization). Everything here is personal data and goes with its recording (ON DELETE CASCADE),
-- so the Friday purge removes it.

-- The machine's speaker (1..n) of each line, written by the asr worker with the segments; NULL: unknown.
ALTER TABLE segments ADD COLUMN speaker INTEGER CHECK (speaker IS NULL OR speaker >= 1);

-- How diarization went for the recording's transcript: done, failed (transcript delivered without
-- speakers) or off (disabled); NULL before the first transcript.
ALTER TABLE recordings ADD COLUMN diarization TEXT CHECK (diarization IS NULL OR diarization IN ('done', 'failed', 'off'));

-- The names caseworkers give speakers ("Handläggare", "Mamma"), once per recording.
CREATE TABLE recording_speakers (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    speaker INTEGER NOT NULL CHECK (speaker >= 1),
    name TEXT NOT NULL,
    PRIMARY KEY (recording_id, speaker)
);

-- A line whose speaker a caseworker corrected. Keyed by (recording, segment idx) like segment_edits, so the
-- correction survives the asr worker replacing segment rows.
CREATE TABLE segment_speakers (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    speaker INTEGER NOT NULL CHECK (speaker >= 1),
    PRIMARY KEY (recording_id, idx)
);

-- History of both kinds of change: who, when, before, after (kind 'name': speaker renamed from before to after;
-- kind 'line': line idx moved from speaker before to speaker after).
CREATE TABLE speaker_edits (
    id INTEGER PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('name', 'line')),
    speaker INTEGER NOT NULL,
    idx INTEGER,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL
);
CREATE INDEX speaker_edits_rec ON speaker_edits(recording_id, id);
