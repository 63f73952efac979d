-- When a job's current attempt started and when it finished (done or failed), for the loopback metrics
-- (services/metrics.py: job durations, the transcription's real-time factor). No personal data.
ALTER TABLE jobs ADD COLUMN started_at REAL;
ALTER TABLE jobs ADD COLUMN finished_at REAL;
