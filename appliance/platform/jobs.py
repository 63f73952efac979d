"""Job queue in the database, with leases: jobs of any kind, each with its own subject.

A job kind (`JobKind`) is defined by the feature that owns its subject — transcription by recordings, summaries
and case drafts by the assistant — together with how a failure is reported to that subject (a recording or a
draft marked failed with a message the caseworker sees). Attempts are counted per job; a job out of attempts is
failed and reported to its own subject, never to anything else.

A worker claims a job by taking a lease and renews it while it works (`heartbeat`). If it dies, the lease
expires and another (or the restarted) worker claims the job again. The result is written in the same
transaction that checks the lease is still ours and marks the job done (`complete`), so a job's result lands
exactly once even if two workers ever ran it. The one loop that does all this is services/worker.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance import clock
from appliance.platform.db import Connection, transaction

TOO_MANY_ATTEMPTS = "too_many_attempts"


@dataclass(frozen=True)
class JobKind:
    """A kind of job. `report_failure(conn, subject_id, message, code)` marks the subject failed (inside the
    transaction that fails the job); `report_released(conn, subject_id)` tells it the job waits in the queue
    again (a worker stopped mid-job); `report_postponed(conn, subject_id, message)` that it waits because a
    server it needs is down (the message says so). `exhausted_message` is what the subject shows when attempts
    run out."""

    name: str
    exhausted_message: str
    report_failure: Callable[[Connection, str, str, str], None]
    report_released: Callable[[Connection, str], None] | None = None
    report_postponed: Callable[[Connection, str, str], None] | None = None


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    subject_id: str
    recording_id: str | None
    attempts: int


def enqueue(conn: Connection, kind: JobKind, subject_id: str | int, *, recording_id: str | None = None) -> int:
    """Queue a job on `subject_id`; with `recording_id` it is deleted with that recording."""
    t = clock.now()
    cur = conn.execute(
        "INSERT INTO jobs (kind, subject_id, recording_id, state, created_at, updated_at) "
        "VALUES (?, ?, ?, 'queued', ?, ?)", (kind.name, str(subject_id), recording_id, t, t))
    return int(cur.lastrowid)


def _job(row, attempts: int) -> Job:
    return Job(row["id"], row["kind"], row["subject_id"], row["recording_id"], attempts)


def claim(conn: Connection, worker: str, kind: JobKind, lease_seconds: float, max_attempts: int) -> Job | None:
    """Take the oldest queued job of `kind`, or one whose lease expired. Jobs out of attempts are failed and
    reported to their subject."""
    t = clock.now()
    with transaction(conn):
        while True:
            row = conn.execute(
                "SELECT id, kind, subject_id, recording_id, attempts FROM jobs WHERE kind = ? AND "
                "(state = 'queued' OR (state = 'running' AND lease_expires < ?)) ORDER BY id LIMIT 1",
                (kind.name, t),
            ).fetchone()
            if row is None:
                return None
            if row["attempts"] >= max_attempts:
                _fail(conn, _job(row, row["attempts"]), kind, TOO_MANY_ATTEMPTS, kind.exhausted_message)
                continue
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?, "
                "lease_expires = ?, updated_at = ?, started_at = ? WHERE id = ?",
                (worker, t + lease_seconds, t, t, row["id"]),
            )
            return _job(row, row["attempts"] + 1)


def heartbeat(conn: Connection, job_id: int, worker: str, lease_seconds: float) -> bool:
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


def complete(conn: Connection, job_id: int, worker: str) -> bool:
    """Inside the transaction that writes the result: mark the job done if the lease is still ours.
    False: the lease was lost (another worker has the job), so the caller must not write its result."""
    if not holds_lease(conn, job_id, worker):
        return False
    t = clock.now()
    conn.execute("UPDATE jobs SET state = 'done', lease_owner = NULL, updated_at = ?, finished_at = ? WHERE id = ?",
                 (t, t, job_id))
    return True


def _fail(conn: Connection, job: Job, kind: JobKind, code: str, message: str) -> None:
    t = clock.now()
    conn.execute("UPDATE jobs SET state = 'failed', error = ?, lease_owner = NULL, updated_at = ?, finished_at = ? "
                 "WHERE id = ?", (code, t, t, job.id))
    kind.report_failure(conn, job.subject_id, message, code)


def fail(conn: Connection, job: Job, kind: JobKind, worker: str, code: str, message: str) -> bool:
    """Fail the job for good (if our lease still holds) and report `message` to its subject."""
    with transaction(conn):
        if not holds_lease(conn, job.id, worker):
            return False
        _fail(conn, job, kind, code, message)
    return True


def release(conn: Connection, job: Job, kind: JobKind, worker: str) -> None:
    """Give the job back to the queue now (the worker is stopping) instead of waiting for the lease to lapse."""
    with transaction(conn):
        if holds_lease(conn, job.id, worker):
            conn.execute("UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL, updated_at = ? "
                         "WHERE id = ?", (clock.now(), job.id))
            if kind.report_released is not None:
                kind.report_released(conn, job.subject_id)


def postpone(conn: Connection, job: Job, kind: JobKind, worker: str, message: str) -> None:
    """Back to the queue without using up the attempt (a server the job needs is down: nothing is wrong with
    the job itself), with `message` reported to the subject so its page says why it waits."""
    with transaction(conn):
        if holds_lease(conn, job.id, worker):
            conn.execute("UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), lease_owner = NULL, "
                         "lease_expires = NULL, updated_at = ? WHERE id = ?", (clock.now(), job.id))
            if kind.report_postponed is not None:
                kind.report_postponed(conn, job.subject_id, message)


def counts_by_state(conn: Connection) -> dict[str, int]:
    """How many jobs are in each state (health figures; no subjects)."""
    return {r[0]: r[1] for r in conn.execute("SELECT state, count(*) FROM jobs GROUP BY state")}


def counts_by_kind_and_state(conn: Connection) -> dict[tuple[str, str], int]:
    return {(r[0], r[1]): r[2] for r in conn.execute("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state")}


def finished_since(conn: Connection, since: float) -> list[tuple[str, str, float, float | None]]:
    """(kind, state, seconds its last attempt took, the recording's audio seconds) of jobs finished since
    `since` (health figures: no subjects leave this function)."""
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT j.kind, j.state, j.finished_at - j.started_at, r.duration FROM jobs j "
        "LEFT JOIN recordings r ON r.id = j.recording_id "
        "WHERE j.finished_at >= ? AND j.started_at IS NOT NULL", (since,))]
