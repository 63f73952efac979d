"""The `riva` backend against a loopback gRPC server speaking Riva's real ASR protocol.

Riva itself cannot run here (NVIDIA GPU and containers): tests/riva_standin.py is a STAND-IN built on the
servicer classes of nvidia-riva-client with faster-whisper underneath. Shown: offline recognition for uploads,
streaming for live steps, a request over gRPC's default 4 MiB, an unsupported language (refused before sending
when the probe knows, mapped from Riva's own error when it does not), a model that gives no word timings, a
server that is down, and `appliance doctor` on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from appliance.config import AsrConfig, load_config
from appliance.errors import AsrRejected, AsrUnavailable
from appliance.platform.context import init_state
from appliance.ports import SAMPLE_RATE, TranscribeOptions, Transcriber
from appliance.recordings import live, recordings
from appliance.recordings.audio import decode_audio
from appliance.transcripts import word_detail
from appliance.users import accounts
from models import load_transcriber
from provisioning.doctor import run_checks
from services.asr import AsrWorker
from services.transcription import transcribe_audio
from tests.conftest import recognised, speak_swedish
from tests.riva_standin import RivaStandIn, StandInOptions, serve

OPTIONS = TranscribeOptions(language="sv")


@pytest.fixture(scope="module")
def whisper(model_store: Path) -> Transcriber:
    """The model behind the stand-in (in-process faster-whisper on the embedded model)."""
    return load_transcriber(AsrConfig(), model_store)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return speak_swedish("Hej, jag heter Anna och vi ska prata om familjen.", tmp_path_factory.mktemp("riva") / "c")


@contextmanager
def standin(whisper: Transcriber, **options) -> Iterator[tuple[RivaStandIn, str]]:
    server_side = RivaStandIn(whisper, StandInOptions(**options))
    server, port = serve(server_side)
    try:
        yield server_side, f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def riva(url: str, **riva_options) -> Transcriber:
    return load_transcriber(AsrConfig(backend="riva", riva={"url": url, "retries": 1, "retry_backoff_seconds": 0.05,
                                                            **riva_options}), Path("/nonexistent"))


def test_offline_recognition_maps_word_offsets_and_confidences(whisper, clip: Path) -> None:
    with standin(whisper) as (server, url):
        transcript = transcribe_audio(riva(url), clip.read_bytes(), OPTIONS)
    assert server.requests == ["config", "recognize"]  # the capability probe, then one offline request
    assert transcript.info.language == "sv" and transcript.segments
    recognised(" ".join(s.text for s in transcript.segments), minimum=2)
    words = [w for s in transcript.segments for w in s.words]
    assert words and all(0 <= w.start <= w.end <= transcript.info.duration + 0.5 for w in words)
    assert all(abs(w.start * 1000 - round(w.start * 1000)) < 1e-6 for w in words)  # Riva's int milliseconds
    assert all(w.probability is not None and 0 < w.probability <= 1 for w in words)
    assert all(w.word.startswith(" ") for w in words)  # joined like Whisper's words (live_asr relies on it)


def test_live_steps_stream_when_the_model_streams(whisper, clip: Path) -> None:
    audio = decode_audio(clip.read_bytes())
    live = TranscribeOptions(language="sv", live=True)
    with standin(whisper) as (server, url):
        t = riva(url)
        assert t.capabilities().streaming
        _info, segments = t.transcribe(audio, live)
        segments = list(segments)
    assert "streaming" in server.requests and "recognize" not in server.requests
    assert segments and all(s.words for s in segments)
    recognised(" ".join(s.text for s in segments), minimum=2)
    with standin(whisper, streaming=False) as (server, url):  # an offline-only model: live steps go offline
        t = riva(url)
        assert not t.capabilities().streaming
        list(t.transcribe(audio[:SAMPLE_RATE], live)[1])
    assert "streaming" not in server.requests and "recognize" in server.requests


def test_payload_over_the_4_mb_grpc_default(whisper, clip: Path) -> None:
    speech = decode_audio(clip.read_bytes())
    audio = np.concatenate([np.zeros(140 * SAMPLE_RATE, np.float32), speech])  # 2 min 20 s of quiet, then talk
    assert len(audio) * 2 > 4 * 1024 * 1024  # 16-bit PCM in one offline request: over gRPC's default limit
    with standin(whisper) as (server, url):
        _info, segments = riva(url).transcribe(audio, OPTIONS)
        segments = list(segments)
    assert server.requests.count("recognize") == 1
    assert segments and all(s.start >= 139 for s in segments)  # times in the recording
    recognised(" ".join(s.text for s in segments), minimum=2)
    # A server left at gRPC's default limit refuses it, and the job says what IT can do about it.
    with standin(whisper, max_message_mb=4) as (_server, url), \
            pytest.raises(AsrRejected, match="tog inte emot så mycket ljud.*chunk_seconds"):
        list(riva(url).transcribe(audio, OPTIONS)[1])


def test_unsupported_language_is_a_clear_refusal(whisper, clip: Path, tmp_path: Path) -> None:
    audio = decode_audio(clip.read_bytes())
    with standin(whisper) as (server, url):  # the probe knows: refused before any audio is sent
        with pytest.raises(AsrRejected, match=r"ingen modell för språket de \(den erbjuder: sv-SE\)"):
            list(riva(url).transcribe(audio, TranscribeOptions(language="de"))[1])
        assert "recognize" not in server.requests
        # Through the asr unit: the job fails at once with that message (retrying would not help).
        app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")}))
        conn = app.connect()
        user, _ = accounts.create_user(conn, "anna", ["caseworker"])
        rid = recordings.create_from_upload(app, conn, user, title="Samtal", filename="c.wav", data=clip.read_bytes())
        conn.execute("UPDATE recordings SET language = 'de' WHERE id = ?", (rid,))
        assert AsrWorker(app, riva(url), worker_id="w").run_once()
        rec = recordings.get_recording(conn, user, rid)
        assert rec.status == "failed" and "ingen modell för språket de" in rec.error
        assert conn.execute("SELECT state, error FROM jobs").fetchone()[:] == ("failed", "asr_rejected")
    with standin(whisper, config_rpc=False) as (server, url):  # no probe (older Riva): Riva's own error, mapped
        t = riva(url)
        with pytest.raises(AsrRejected, match="ingen modell för språket de"):
            list(t.transcribe(audio, TranscribeOptions(language="de"))[1])
        assert server.requests[-1] == "recognize" and t.capabilities().languages is None


def test_live_transcript_streams_through_riva(whisper, clip: Path, tmp_path: Path) -> None:
    app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")}))
    conn = app.connect()
    user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    rid = live.start(app, conn, user, title="Hembesök", source="browser", consent_confirmed=True)
    pcm = (np.clip(decode_audio(clip.read_bytes()), -1, 1) * 32767).astype("<i2").tobytes() + bytes(SAMPLE_RATE * 2)
    step = SAMPLE_RATE * 5  # 2.5 s pieces of 16-bit PCM, as the browser sends them
    for seq, i in enumerate(range(0, len(pcm), step)):
        live.append_chunk(app, conn, rid, seq, pcm[i:i + step])
    live.stop(app, conn, user, rid, chunks=seq + 1)
    with standin(whisper) as (server, url):
        worker = AsrWorker(app, riva(url), worker_id="live")
        while worker.run_live_once():
            pass
    assert "streaming" in server.requests and "recognize" not in server.requests
    rec = recordings.get_recording(conn, user, rid)
    assert rec.status == "ready"
    recognised(" ".join(s.text for s in recordings.transcript_segments(conn, rid)), minimum=2)
    assert word_detail.for_recording(conn, rid).word_probabilities


def test_a_model_without_word_timings_gives_lines(whisper, clip: Path, tmp_path: Path) -> None:
    nim = {"word_timings": False, "model_name": "whisper-large-v3-standin", "model_family": "whisper"}
    with standin(whisper, **nim) as (_server, url):  # as Riva's Whisper NIM answers
        t = riva(url)
        caps = t.capabilities()
        assert not caps.word_timestamps and not caps.word_probabilities
        app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")}))
        conn = app.connect()
        user, _ = accounts.create_user(conn, "anna", ["caseworker"])
        rid = recordings.create_from_upload(app, conn, user, title="Samtal", filename="c.wav", data=clip.read_bytes())
        assert AsrWorker(app, t, worker_id="w").run_once()
    rec = recordings.get_recording(conn, user, rid)
    assert rec.status == "ready"
    lines = recordings.transcript_segments(conn, rid)
    recognised(" ".join(s.text for s in lines), minimum=2)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(lines, lines[1:], strict=False))  # timed by audio_processed
    assert 0 <= lines[0].start < lines[-1].end <= rec.duration + 0.5
    detail = word_detail.for_recording(conn, rid)
    assert detail.lines == len(lines) and not detail.word_timestamps  # the page says seeking is per line


def test_a_server_that_is_down_is_retried_then_unavailable(whisper) -> None:
    with standin(whisper) as (_server, url):
        pass  # started and stopped: nothing listens there any more
    with pytest.raises(AsrUnavailable, match=r"Riva på 127\.0\.0\.1:\d+\) svarar inte"):
        list(riva(url).transcribe(np.zeros(SAMPLE_RATE, np.float32), OPTIONS)[1])


def test_doctor_checks_the_configured_riva(whisper, tmp_path: Path) -> None:
    def checks(url: str, **riva_options) -> dict:
        cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")})
        cfg = cfg.model_copy(update={"asr": AsrConfig(backend="riva", riva={"url": url, **riva_options})})
        return {c.name.split(" (")[0]: c for c in run_checks(cfg) if c.name.startswith("transcription")}

    with standin(whisper) as (_server, url):
        ok = checks(url)
        assert ok["transcription"].ok and "standin-asr-sv (sv-SE; streaming)" in ok["transcription"].message
        assert ok["transcription language"].ok
        wrong = checks(url, language_code="de-DE")["transcription language"]
        assert not wrong.ok and "offers no model for 'de-DE'" in wrong.message and "sv-SE" in wrong.message
    down = checks(url)["transcription"]
    assert not down.ok and "unreachable" in down.message and "Riva" in down.hint
