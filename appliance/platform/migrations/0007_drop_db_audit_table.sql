-- The audit log is the tamper-evident JSONL file (appliance/audit.py); the first, in-database table
-- has not been written since, and must not linger as a second, unprotected place for audit data.
DROP TABLE IF EXISTS audit;
