"""The live transcript for real: Swedish espeak speech fed chunk by chunk through appliance/live.py, the asr
worker (real Whisper base, real Silero VAD) transcribing finished speech while the recording goes on,
pause marks as cuts, only the tail after stop; and kill -9 of the asr process mid-recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from appliance.config import load_config
from appliance.platform import audit
from appliance.platform.context import init_state
from appliance.recordings import live, recordings
from appliance.recordings.audio import decode_audio
from appliance.users import accounts
from models import load_transcriber
from services.asr import AsrWorker
from services.live_asr import find_cut
from tests.conftest import recognised

ROOT = Path(__file__).resolve().parent.parent
RATE = live.SAMPLE_RATE


def pcm_of(path: Path) -> bytes:
    """16 kHz mono s16le, as the browser and the desk recorder send it."""
    return (np.clip(decode_audio(path.read_bytes()), -1, 1) * 32767).astype("<i2").tobytes()


def pieces(pcm: bytes, seconds: float = 2.5) -> list[bytes]:
    step = int(seconds * RATE) * 2
    return [pcm[i:i + step] for i in range(0, len(pcm), step)]


@pytest.fixture(scope="module")
def transcriber(model_store):
    return load_transcriber(load_config(environ={}).asr, model_store)


@pytest.fixture
def env(tmp_path, model_store):
    return {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"), "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
            "APPLIANCE_ASR__LEASE_SECONDS": "3", "APPLIANCE_ASR__POLL_SECONDS": "0.1"}


@pytest.fixture
def app(env):
    return init_state(load_config(environ=env))


def _start(app):
    conn = app.connect()
    user = accounts.create_user(conn, "anna", ["caseworker"])[0]
    rid = live.start(app, conn, user, title="Hembesök", source="browser", consent_confirmed=True)
    return conn, user, rid


def _drain(worker: AsrWorker) -> int:
    steps = 0
    while worker.run_live_once():
        steps += 1
    return steps


def test_find_cut_waits_for_the_end_of_speech(sv_clip):
    speech = decode_audio(sv_clip.read_bytes())
    silence = np.zeros(RATE, dtype=np.float32)
    window = 28 * RATE
    assert find_cut(speech[: len(speech) // 2], final=False, min_silence_ms=600, window=window) == 0
    audio = np.concatenate([speech, silence])
    cut = find_cut(audio, final=False, min_silence_ms=600, window=window)
    assert len(speech) - RATE // 2 < cut < len(audio)  # inside the silence after the speech
    assert find_cut(silence, final=False, min_silence_ms=600, window=window) == len(silence)  # skip silence
    assert find_cut(audio, final=True, min_silence_ms=600, window=window) == len(audio)


def test_live_transcript_while_recording_then_only_the_tail(app, transcriber, sv_clip, sv_long_clip):
    conn, user, rid = _start(app)
    worker = AsrWorker(app, transcriber, worker_id="live-test")
    first, second = pcm_of(sv_long_clip), pcm_of(sv_clip)
    silence = bytes(RATE * 2)  # one second
    seq = 0
    for piece in pieces(first + silence):
        live.append_chunk(app, conn, rid, seq, piece)
        seq += 1
        worker.run_live_once()
    _drain(worker)
    provisional = recordings.transcript_segments(conn, rid)
    assert provisional, "nothing transcribed while recording"
    assert conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "recording"
    done_before_stop = live.session(conn, rid).transcribed_samples
    assert done_before_stop > len(first) // 2 * 0.8  # most of the first clip is transcribed live

    live.pause(app, conn, user, rid, at_seq=seq)
    live.resume(app, conn, user, rid, at_seq=seq)
    pause_at = live.marks(conn, rid)[0].at_seconds
    for piece in pieces(second):
        live.append_chunk(app, conn, rid, seq, piece)
        seq += 1
    live.stop(app, conn, user, rid, chunks=seq)
    t0 = time.monotonic()
    _drain(worker)
    tail_s = time.monotonic() - t0
    rec = recordings.get_recording(conn, user, rid)
    assert rec.status == "ready" and rec.progress == 1
    segments = recordings.transcript_segments(conn, rid)
    assert [s.idx for s in segments] == list(range(len(segments)))
    assert all(a.start <= b.start for a, b in zip(segments, segments[1:], strict=False))
    assert not any(s.start < pause_at < s.end for s in segments), "a line straddles the pause"
    recognised(" ".join(s.text for s in segments if s.end <= pause_at))
    recognised(" ".join(s.text for s in segments if s.start >= pause_at))
    assert len(audit.entries(conn, action="recording.transcribed", target=f"recording:{rid}")) == 1
    assert tail_s < 30  # the tail after stop is one clip, not the whole recording (figures: bench/live_latency.py)


def _start_worker(env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.asr"], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(pred, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_kill_asr_mid_recording_loses_nothing(app, env, sv_clip, sv_long_clip):
    conn, user, rid = _start(app)
    said = pcm_of(sv_clip) + bytes(RATE * 3)  # speech, then a silence that ends it
    before = pieces(said + said)  # the first live step waits for about 12 s of audio
    chunks = before + pieces(pcm_of(sv_long_clip) + bytes(RATE * 2))
    acked = []
    worker = _start_worker(env)
    try:
        for seq, piece in enumerate(before):
            live.append_chunk(app, conn, rid, seq, piece)
            acked.append(piece)
            time.sleep(0.2)
        _wait(lambda: live.session(conn, rid).transcribed_samples > 0, 120)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        for seq in range(len(acked), len(chunks)):  # the recording goes on while no asr runs
            live.append_chunk(app, conn, rid, seq, chunks[seq])
            acked.append(chunks[seq])
        live.stop(app, conn, user, rid, chunks=len(chunks))
        worker = _start_worker(env)  # its lease on the session lapses (3 s), then it goes on from there
        _wait(lambda: conn.execute("SELECT status FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "ready",
              180)
    finally:
        worker.send_signal(signal.SIGTERM)
        # It stops after its current step; once the transcript is final that may be diarizing the whole
        # recording, which on a loaded 2-core box took over 30 s. systemd waits 90 s (TimeoutStopSec) too.
        worker.wait(90)
    audio = b"".join(recordings.open_audio(app, conn, user, rid).chunks)
    assert audio[44:] == b"".join(acked)  # every acknowledged chunk, in order, nothing else
    segments = recordings.transcript_segments(conn, rid)
    assert [s.idx for s in segments] == list(range(len(segments)))
    starts = [s.start for s in segments]
    assert starts == sorted(starts)  # nothing transcribed twice after the restart
    recognised(" ".join(s.text for s in segments))
