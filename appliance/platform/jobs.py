"""Job queue in the database, with leases.

A worker claims a job by taking a lease; it renews the lease while it works. If it dies, the
lease expires and another (or the restarted) worker claims the job again. The result is written in
the same transaction that checks the lease is still ours and marks the job done, so a job's result
lands exactly once even if two workers ever ran it.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance import clock
from appliance.platform.db import Connection, transaction


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    recording_id: str
    attempts: int


def enqueue(conn: Connection, kind: str, recording_id: str) -> int:
    t = clock.now()
    cur = conn.execute(
        "INSERT INTO jobs (kind, recording_id, state, created_at, updated_at) VALUES (?, ?, 'queued', ?, ?)",
        (kind, recording_id, t, t),
    )
    return int(cur.lastrowid)


def claim(conn: Connection, worker: str, kind: str, lease_seconds: float, max_attempts: int) -> Job | None:
    """Take the oldest queued job, or one whose lease expired. Jobs out of attempts are failed."""
    t = clock.now()
    with transaction(conn):
        while True:
            row = conn.execute(
                "SELECT id, kind, recording_id, attempts FROM jobs WHERE kind = ? AND "
                "(state = 'queued' OR (state = 'running' AND lease_expires < ?)) ORDER BY id LIMIT 1",
                (kind, t),
            ).fetchone()
            if row is None:
                return None
            if row["attempts"] >= max_attempts:
                conn.execute(
                    "UPDATE jobs SET state = 'failed', error = 'too_many_attempts', lease_owner = NULL, "
                    "updated_at = ? WHERE id = ?", (t, row["id"]))
                conn.execute(
                    "UPDATE recordings SET status = 'failed', error = ? WHERE id = ?",
                    ("Transkriberingen avbröts upprepade gånger. Ladda upp filen igen eller kontakta IT.",
                     row["recording_id"]))
                continue
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?, "
                "lease_expires = ?, updated_at = ? WHERE id = ?",
                (worker, t + lease_seconds, t, row["id"]),
            )
            return Job(row["id"], row["kind"], row["recording_id"], row["attempts"] + 1)


def renew(conn: Connection, job_id: int, worker: str, lease_seconds: float) -> bool:
    """Extend our lease. False means we lost it (another worker took over): stop working."""
    t = clock.now()
    cur = conn.execute(
        "UPDATE jobs SET lease_expires = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
        (t + lease_seconds, t, job_id, worker),
    )
    return cur.rowcount == 1


def holds_lease(conn: Connection, job_id: int, worker: str) -> bool:
    row = conn.execute("SELECT lease_owner, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row is not None and row["state"] == "running" and row["lease_owner"] == worker


def mark_done(conn: Connection, job_id: int) -> None:
    """Call inside the transaction that writes the result, after holds_lease()."""
    conn.execute("UPDATE jobs SET state = 'done', lease_owner = NULL, updated_at = ? WHERE id = ?",
                 (clock.now(), job_id))


def mark_failed(conn: Connection, job_id: int, error_code: str) -> None:
    conn.execute("UPDATE jobs SET state = 'failed', error = ?, lease_owner = NULL, updated_at = ? WHERE id = ?",
                 (error_code, clock.now(), job_id))
