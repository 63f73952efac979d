"""The metrics unit (issue 12): Prometheus text on loopback only, queue lengths, job times, the real-time factor,
purge age and disk free — and nothing about people or content."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.platform import jobs
from appliance.platform.context import init_state
from appliance.platform.db import transaction
from appliance.ports import Segment, Transcript, TranscriptInfo
from appliance.recordings import recordings
from appliance.transcripts import store
from appliance.users import accounts
from services.metrics import collect
from tests.conftest import free_port, make_tone

ROOT = Path(__file__).resolve().parent.parent
CANARIES = ("Kanarieärende", "vendela.kanarie", "Hemlig rad")


@pytest.fixture
def app(tmp_path):
    env = {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")}
    app = init_state(load_config(environ=env))
    tone = tmp_path / "t.wav"
    make_tone(tone, 2.0)
    with closing(app.connect()) as conn:
        user = accounts.create_user(conn, CANARIES[1], ["caseworker"])[0]
        done = recordings.create_from_upload(app, conn, user, title=CANARIES[0], filename="a.wav",
                                             data=tone.read_bytes())
        recordings.create_from_upload(app, conn, user, title=CANARIES[0], filename="b.wav", data=tone.read_bytes())
        job = jobs.claim(conn, "w", recordings.TRANSCRIBE, 60, 3)  # the first upload: transcribed
        conn.execute("UPDATE jobs SET started_at = started_at - 1.0 WHERE id = ?", (job.id,))  # took 1 s
        with transaction(conn):
            assert jobs.complete(conn, job.id, "w")
            store.save_transcript(conn, done, Transcript(TranscriptInfo("sv", 2.0), [Segment(0, 2, CANARIES[2])]))
    return app, env


def test_figures_are_right_and_hold_nothing_personal(app):
    app, _ = app
    text = collect(app)
    assert 'samtalsstod_jobs{kind="transcribe",state="done"} 1' in text
    assert 'samtalsstod_jobs{kind="transcribe",state="queued"} 1' in text
    assert 'samtalsstod_recordings{status="ready"} 1' in text and 'samtalsstod_recordings{status="queued"} 1' in text
    assert 'samtalsstod_job_seconds_count{kind="transcribe"} 1' in text
    rtf = float(next(line.split()[-1] for line in text.splitlines()
                     if line.startswith("samtalsstod_transcription_real_time_factor ")))
    assert 0.45 < rtf < 0.6  # about 1 s of work for 2 s of audio
    assert "samtalsstod_purge_overdue 0" in text and "samtalsstod_last_purge_timestamp_seconds 0" in text
    assert int(next(line.split()[-1] for line in text.splitlines()
                    if line.startswith("samtalsstod_disk_free_bytes "))) > 0
    for canary in CANARIES:
        assert canary not in text
    for line in text.splitlines():  # every line is a comment or one sample
        assert line.startswith("# ") or len(line.split()) == 2, line


def test_served_on_loopback_only(app):
    _, env = app
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "provisioning.cli", "metrics", "--port", str(port)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body, ctype = r.read().decode(), r.headers["Content-Type"]
                break
            except OSError:
                assert time.monotonic() < end and proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.2)
        assert ctype.startswith("text/plain; version=0.0.4") and "samtalsstod_jobs" in body
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert listening.split()[3] == f"127.0.0.1:{port}", listening  # not 0.0.0.0, not [::]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
