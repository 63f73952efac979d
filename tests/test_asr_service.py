"""The asr unit for real: Whisper base on espeak-ng Swedish, encrypted store, leased jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.platform import audit
from appliance.platform.context import init_state
from appliance.recordings import recordings
from appliance.users import accounts
from models import load_transcriber
from services.asr import AsrWorker
from tests.conftest import make_tone, recognised

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def transcriber(model_store):
    return load_transcriber(load_config(environ={}).asr, model_store)


@pytest.fixture
def env(tmp_path, model_store):
    return {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
            "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
            "APPLIANCE_ASR__LEASE_SECONDS": "3", "APPLIANCE_ASR__POLL_SECONDS": "0.1"}


@pytest.fixture
def app(env):
    return init_state(load_config(environ=env))


def _upload(app, clip: Path) -> tuple[str, accounts.User]:
    conn = app.connect()
    user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    rid = recordings.create_from_upload(app, conn, user, title="Samtal", filename=clip.name,
                                        data=clip.read_bytes())
    return rid, user


def test_worker_transcribes_and_nothing_plain_on_disk(app, sv_clip, transcriber):
    rid, user = _upload(app, sv_clip)
    worker = AsrWorker(app, transcriber, worker_id="test-worker")
    assert worker.run_once()
    conn = app.connect()
    rec = recordings.get_recording(conn, user, rid)
    assert rec.status == "ready" and rec.progress == 1
    segments = recordings.transcript_segments(conn, rid)
    text = " ".join(s.text for s in segments)
    recognised(text)
    words = conn.execute("SELECT word, probability FROM words").fetchall()
    assert len(words) >= 10 and all(0 <= w["probability"] <= 1 for w in words)

    # Canaries: every transcript word of 4+ letters, and a slice of the original audio bytes.
    canaries = {w.strip(".,!?").encode() for w in text.split() if len(w.strip(".,!?")) >= 4}
    audio = sv_clip.read_bytes()
    # A slice of actual speech (many distinct byte values), not a stretch of silence.
    speech = next(audio[i:i + 64] for i in range(len(audio) // 2, len(audio), 64) if len(set(audio[i:i + 64])) > 40)
    canaries.add(speech)
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # leave some content in the WAL as well
    files = [p for p in app.cfg.paths.state_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files) or app.db_file.exists()
    assert any(p.suffix == ".blob" for p in files)
    for p in files:
        raw = p.read_bytes()
        leaked = [c for c in canaries if c in raw]
        assert not leaked, f"plaintext {leaked[:3]} found in {p}"


def test_bad_audio_job_fails_with_reason(app, transcriber, tmp_path):
    # The blob decodes as audio at upload but is tampered afterwards: the worker refuses it.
    clip = tmp_path / "x.wav"
    make_tone(clip, 1)
    rid, user = _upload(app, clip)
    blob = app.blobs.path(rid)
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 0xFF
    blob.write_bytes(bytes(raw))
    AsrWorker(app, transcriber, worker_id="w").run_once()
    rec = recordings.get_recording(app.connect(), user, rid)
    assert rec.status == "failed" and "chunk" in rec.error


def _wait(pred, timeout: float, step: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


def _start_worker(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.asr"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=open(os.environ.get("ASR_TEST_LOG", os.devnull), "a"))


def test_killed_worker_job_completes_exactly_once(app, env, sv_long_clip):
    rid, _ = _upload(app, sv_long_clip)
    conn = app.connect()

    def job():
        return conn.execute("SELECT state, attempts, lease_owner FROM jobs WHERE recording_id = ?",
                            (rid,)).fetchone()

    first = _start_worker(env)
    try:
        _wait(lambda: job()["state"] == "running" or first.poll() is not None, 120)
        assert first.poll() is None, "asr worker exited at start (see ASR_TEST_LOG)"
        first.send_signal(signal.SIGKILL)  # no chance to clean up
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert job()["state"] == "running" and job()["attempts"] == 1
    assert conn.execute("SELECT count(*) FROM segments").fetchone()[0] == 0

    second = _start_worker(env)
    try:
        _wait(lambda: job()["state"] == "done", 180, 0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert second.returncode == 0
    assert job()["attempts"] == 2
    idx = [r[0] for r in conn.execute("SELECT idx FROM segments WHERE recording_id = ? ORDER BY idx", (rid,))]
    assert idx and idx == list(range(len(idx)))
    assert len(audit.entries(conn, action="recording.transcribed", target=f"recording:{rid}")) == 1
    assert conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "ready"
    recognised(" ".join(r[0] for r in conn.execute("SELECT text FROM segments WHERE recording_id = ?", (rid,))))
