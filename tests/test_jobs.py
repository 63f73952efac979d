import time

from appliance.platform import jobs
from appliance.recordings.recordings import TRANSCRIBE
from appliance.users.accounts import create_user


def _recording(conn, rid="r1"):
    user, _ = create_user(conn, f"u{rid}", ["caseworker"])
    conn.execute("INSERT INTO recordings (id, owner_id, title, mime, size, dek, status, created_at) "
                 "VALUES (?, ?, 't', 'audio/wav', 1, x'00', 'queued', 0)", (rid, user.id))
    return rid


def test_claim_is_exclusive(conn):
    jobs.enqueue(conn, TRANSCRIBE, _recording(conn))
    a = jobs.claim(conn, "w1", TRANSCRIBE, 60, 3)
    assert a is not None and a.attempts == 1
    assert jobs.claim(conn, "w2", TRANSCRIBE, 60, 3) is None


def test_expired_lease_is_reclaimed_and_old_owner_loses(conn):
    jobs.enqueue(conn, TRANSCRIBE, _recording(conn))
    a = jobs.claim(conn, "w1", TRANSCRIBE, 0.2, 3)
    time.sleep(0.3)
    b = jobs.claim(conn, "w2", TRANSCRIBE, 60, 3)
    assert b is not None and b.id == a.id and b.attempts == 2
    assert not jobs.heartbeat(conn, a.id, "w1", 60)
    assert not jobs.holds_lease(conn, a.id, "w1") and jobs.holds_lease(conn, a.id, "w2")


def test_renew_keeps_job(conn):
    jobs.enqueue(conn, TRANSCRIBE, _recording(conn))
    a = jobs.claim(conn, "w1", TRANSCRIBE, 0.3, 3)
    for _ in range(3):
        time.sleep(0.15)
        assert jobs.heartbeat(conn, a.id, "w1", 0.3)
    assert jobs.claim(conn, "w2", TRANSCRIBE, 60, 3) is None


def test_too_many_attempts_fails_job_and_recording(conn):
    rid = _recording(conn)
    jobs.enqueue(conn, TRANSCRIBE, rid)
    for _ in range(2):
        assert jobs.claim(conn, "w", TRANSCRIBE, 0.01, 2) is not None
        time.sleep(0.02)
    assert jobs.claim(conn, "w", TRANSCRIBE, 0.01, 2) is None
    row = conn.execute("SELECT status, error FROM recordings WHERE id = ?", (rid,)).fetchone()
    assert row["status"] == "failed" and "upprepade" in row["error"]
