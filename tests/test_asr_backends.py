"""The ASR port around its backends, without a server: config (strict sub-sections, TLS off loopback, nested
environment keys), the registry (server-backed backends need no local model), pieces cut at silences, the
Triton model repository templates, and how the product degrades when a transcript has no word times or no
word probabilities (the recording page says so; suggestions fall back to the lexicon)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from appliance.config import AsrConfig, load_config
from appliance.errors import ConfigError
from appliance.ports import SAMPLE_RATE, TranscriberCapabilities
from appliance.recordings import recordings
from appliance.recordings.audio import decode_audio
from appliance.transcripts import suggestions, word_detail
from appliance.users.accounts import get_user
from models import asr_chunks, load_transcriber
from services import triton_server
from tests.conftest import make_tone, speak_swedish

R = SAMPLE_RATE


# --- config ----------------------------------------------------------------------------------------------

def test_backend_sections_are_strict_and_nested_env_keys_work() -> None:
    cfg = load_config(environ={"APPLIANCE_ASR__BACKEND": "triton", "APPLIANCE_ASR__TRITON__URL": "127.0.0.1:9001",
                               "APPLIANCE_ASR__RIVA__LANGUAGE_CODE": "sv-SE"})
    assert (cfg.asr.backend, cfg.asr.triton.url, cfg.asr.riva.language_code) == ("triton", "127.0.0.1:9001", "sv-SE")
    with pytest.raises(ConfigError, match=r"unknown key 'asr\.triton\.bogus'"):
        load_config(environ={"APPLIANCE_ASR__TRITON__BOGUS": "1"})
    with pytest.raises(ConfigError, match="asr.backend"):
        load_config(environ={"APPLIANCE_ASR__BACKEND": "whisper.cpp"})


def test_audio_never_leaves_loopback_in_clear_text(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not on loopback: set tls = true"):
        load_config(environ={"APPLIANCE_ASR__TRITON__URL": "10.1.2.3:8001"})
    with pytest.raises(ConfigError, match="not on loopback"):
        load_config(environ={"APPLIANCE_ASR__RIVA__URL": "riva.kommun.se:443"})
    cfg = load_config(environ={"APPLIANCE_ASR__RIVA__URL": "riva.kommun.se:443", "APPLIANCE_ASR__RIVA__TLS": "true"})
    assert cfg.asr.riva.tls
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        load_config(environ={"APPLIANCE_ASR__TRITON__CERT_FILE": str(tmp_path / "c.pem")})
    # The server side: off loopback only with TLS (or an explicit closed network).
    with pytest.raises(ConfigError, match="not loopback: configure TLS"):
        load_config(environ={"APPLIANCE_TRITON_SERVER__HOST": "10.0.0.5"})
    assert load_config(environ={"APPLIANCE_TRITON_SERVER__HOST": "10.0.0.5",
                                "APPLIANCE_TRITON_SERVER__PRIVATE_NETWORK": "true"}).triton_server.private_network


def test_protocol_limits() -> None:
    with pytest.raises(ConfigError, match="at most 30 s per request"):
        load_config(environ={"APPLIANCE_ASR__TRITON__PROTOCOL": "trtllm-whisper",
                             "APPLIANCE_ASR__TRITON__CHUNK_SECONDS": "60"})
    # Riva: a piece must fit into one gRPC message.
    with pytest.raises(ConfigError, match="needs more than max_message_mb"):
        load_config(environ={"APPLIANCE_ASR__RIVA__CHUNK_SECONDS": "600", "APPLIANCE_ASR__RIVA__MAX_MESSAGE_MB": "8"})


def test_server_backends_need_no_local_model_and_do_not_connect_at_load() -> None:
    # Nothing listens there, and no model store: the asr unit must still start (jobs wait for the server).
    for backend in ("triton", "riva"):
        cfg = AsrConfig(backend=backend, triton={"url": "127.0.0.1:9"}, riva={"url": "127.0.0.1:9"})
        t = load_transcriber(cfg, Path("/nonexistent"))
        caps = t.capabilities()
        assert isinstance(caps, TranscriberCapabilities) and not caps.streaming
    trt = load_transcriber(AsrConfig(backend="triton", triton={"protocol": "trtllm-whisper"}), Path("/nonexistent"))
    caps = trt.capabilities()
    assert (caps.word_timestamps, caps.word_probabilities, caps.longest_chunk_seconds) == (False, False, 30.0)
    assert caps.accepts_language("sv") and caps.accepts_language("sv-SE") and not caps.accepts_language("xx")


def test_batched_pipeline_path_for_files(model_store: Path, tmp_path: Path) -> None:
    """The GPU path ([asr] batch_size > 0: BatchedInferencePipeline for files), run here on the CPU; live steps
    keep the sequential path."""
    from appliance.ports import TranscribeOptions
    from tests.conftest import recognised

    t = load_transcriber(AsrConfig(batch_size=4), model_store)
    clip = speak_swedish("Hej, jag heter Anna och vi ska prata om familjen.", tmp_path / "c")
    audio = decode_audio(clip.read_bytes())
    for live in (False, True):
        info, segments = t.transcribe(audio, TranscribeOptions(language="sv", live=live))
        segments = list(segments)
        assert info.language == "sv" and segments and all(s.words for s in segments)
        recognised(" ".join(s.text for s in segments), minimum=2)
    assert t.capabilities().word_probabilities and "sv" in t.capabilities().languages


# --- pieces cut at silences ------------------------------------------------------------------------------

def _random_stretches(rng: random.Random, n: int) -> list[tuple[int, int]]:
    out, t = [], rng.randint(0, 5 * R)
    while True:
        length = rng.randint(R // 4, (45 if rng.random() < 0.05 else 12) * R)
        if t + length > n:
            return out
        out.append((t, t + length))
        t += length + rng.randint(int(0.3 * R), 10 * R)


def test_pieces_cover_everything_and_cut_only_between_stretches_of_speech() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        n = rng.randint(1, 600) * R // 4
        stretches = _random_stretches(rng, n)
        limit = rng.choice([5, 10, 30])
        chunks = asr_chunks.plan(np.zeros(n, np.float32), limit, stretches)
        assert chunks[0].start == 0 and chunks[-1].end == n  # nothing lost at either end
        assert all(a.end == b.start for a, b in zip(chunks, chunks[1:], strict=False))  # no gap, no overlap
        assert all(c.end - c.start <= limit * R for c in chunks)
        for s, e in stretches:  # a cut inside speech only where the speech is longer than a piece
            if e - s <= limit * R:
                assert not any(s < c.start < e for c in chunks), (s, e, chunks)
        # Every sample of speech is in the speech of exactly one piece (silent pieces are the only ones skipped).
        assert sum(b - a for c in chunks for a, b in c.speech) == sum(e - s for s, e in stretches)


def test_pieces_of_real_speech_are_cut_in_pauses(tmp_path: Path) -> None:
    sentences = ["Hej och välkommen hit i dag.", "Vi ska prata om skolan och om hur det går hemma.",
                 "Mamma berättar att pojken sover dåligt.", "Pappa bor i en annan stad."]
    pause = np.zeros(int(0.6 * R), np.float32)
    parts = []
    for i, text in enumerate(sentences * 3):
        parts += [decode_audio(speak_swedish(text, tmp_path / f"s{i}").read_bytes()), pause]
    audio = np.concatenate(parts)
    chunks = asr_chunks.plan(audio, 10)
    assert len(chunks) >= 3 and chunks[-1].end == len(audio)
    for c in chunks[1:]:  # the audio right at each cut is silence
        around = audio[max(0, c.start - R // 20):c.start + R // 20]
        assert np.sqrt(np.mean(around ** 2)) < 0.01, c.start / R


# --- the Triton model repository ---------------------------------------------------------------------------

def test_model_repository_renders_every_placeholder(tmp_path: Path) -> None:
    cfg = load_config(environ={"APPLIANCE_TRITON_SERVER__MAX_BATCH_SIZE": "16",
                               "APPLIANCE_TRITON_SERVER__DEVICE": "cuda", "APPLIANCE_TRITON_SERVER__WORKERS": "4"})
    repo = triton_server.render_repository(cfg, tmp_path / "repo", Path("/models/whisper-base"),
                                           triton_server.MODELS)
    for name in triton_server.MODELS:
        text = (repo / name / "config.pbtxt").read_text()
        assert "${" not in text and f'name: "{name}"' in text
        assert "max_batch_size: 16" in text and "kind: KIND_GPU" in text and "dynamic_batching" in text
        assert 'string_value: "/models/whisper-base"' in text and 'key: "workers", value: { string_value: "4" }' in text
        assert (repo / name / "1" / "model.py").is_file()
    # The TensorRT-LLM example's tensor names, exactly.
    bls = (repo / "whisper_bls_ct2" / "config.pbtxt").read_text()
    assert re.findall(r'name: "([A-Z_]+)"', bls) == ["TEXT_PREFIX", "WAV", "WAV_LENS", "TRANSCRIPTS"]
    with pytest.raises(ConfigError, match="No model 'nope'"):
        triton_server.render_repository(cfg, tmp_path / "x", Path("/m"), ("nope",))


def test_server_command_is_grpc_only_and_quiet(tmp_path: Path) -> None:
    cfg = load_config(environ={})
    install = triton_server.ServerInstall(Path("/v/bin/python"), Path("/v/site"), Path("/py/lib"), "3.11")
    cmd = triton_server.command(cfg.triton_server, install, tmp_path / "repo", tmp_path / "backends")
    assert "--allow-http=false" in cmd and "--allow-metrics=false" in cmd and "--log-verbose=0" in cmd
    assert "--grpc-address=127.0.0.1" in cmd
    env = triton_server.environment(install, {"PATH": "/usr/bin"})
    assert env["LD_LIBRARY_PATH"].split(":")[0] == "/py/lib"  # the stub loads the virtualenv's libpython
    cfg = load_config(environ={"APPLIANCE_TRITON_SERVER__HOST": "10.0.0.5",
                               "APPLIANCE_TRITON_SERVER__TLS_CERT_FILE": "/etc/t/cert.pem",
                               "APPLIANCE_TRITON_SERVER__TLS_KEY_FILE": "/etc/t/key.pem",
                               "APPLIANCE_TRITON_SERVER__TLS_CLIENT_CA_FILE": "/etc/t/boxes-ca.pem"})
    cmd = triton_server.command(cfg.triton_server, install, tmp_path / "repo", tmp_path / "backends")
    assert "--grpc-use-ssl-mutual=true" in cmd and "--grpc-root-cert=/etc/t/boxes-ca.pem" in cmd


# --- degrading without word times or probabilities -------------------------------------------------------

@pytest.fixture
def ready_recording(db, users, ctx, tmp_path):
    wav = make_tone(tmp_path / "t.wav", 0.3)
    anna = get_user(db, users["anna"])
    rid = recordings.create_from_upload(ctx, db, anna, title="Hembesök", filename="t.wav", data=wav.read_bytes())
    db.execute("UPDATE recordings SET status = 'ready' WHERE id = ?", (rid,))
    return rid


def _line(db, rid: str, idx: int, text: str, words: list[tuple[str, float | None]]) -> None:
    cur = db.execute('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                     (rid, idx, idx * 5.0, idx * 5.0 + 4, text))
    db.executemany('INSERT INTO words (segment_id, idx, start, "end", word, probability) VALUES (?, ?, ?, ?, ?, ?)',
                   [(cur.lastrowid, i, idx * 5.0 + i * .5, idx * 5.0 + i * .5 + .4, w, p)
                    for i, (w, p) in enumerate(words)])


NO_WORD_TIMES = "gav inga tidsstämplar per ord"
NO_PROBABILITIES = "angav inte hur säker den var på orden"


def test_page_says_when_there_are_no_word_times(anna, db, ready_recording) -> None:
    _line(db, ready_recording, 0, "Vi följer BBIK och Kvarnbo.", [])  # a line only (TensorRT-LLM, Riva Whisper)
    assert word_detail.for_recording(db, ready_recording) == word_detail.WordDetail(1, 0, 0)
    page = anna.get(f"/recordings/{ready_recording}").text
    assert NO_WORD_TIMES in page and NO_PROBABILITIES not in page
    # The lexicon still suggests; nothing is "doubtful" without probabilities.
    items = suggestions.for_recording(db, ready_recording)
    assert [(s.word, s.term, s.low) for s in items] == [("BBIK", "BBIC", False)]
    assert items[0].start == 0.0  # seeking from the line


def test_page_says_when_words_have_no_probabilities(anna, db, ready_recording) -> None:
    _line(db, ready_recording, 0, "Vi följer Kvarnbo.", [(" Vi", None), (" följer", None), (" Kvarnbo.", None)])
    page = anna.get(f"/recordings/{ready_recording}").text
    assert NO_PROBABILITIES in page and NO_WORD_TIMES not in page
    assert suggestions.for_recording(db, ready_recording) == []  # no confidence, no "osäkert ord"


def test_page_says_nothing_when_everything_is_there(anna, db, ready_recording) -> None:
    _line(db, ready_recording, 0, "Vi följer Kvarnbo.", [(" Vi", .9), (" följer", .9), (" Kvarnbo.", .2)])
    page = anna.get(f"/recordings/{ready_recording}").text
    assert NO_PROBABILITIES not in page and NO_WORD_TIMES not in page
    assert [(s.word, s.low) for s in suggestions.for_recording(db, ready_recording)] == [("Kvarnbo", True)]


# --- units -------------------------------------------------------------------------------------------------

def test_units_for_a_server_backend(tmp_path: Path) -> None:
    import subprocess

    from provisioning.units import ASR_DROPIN, write

    assert ASR_DROPIN not in {str(p.relative_to(tmp_path)) for p in write(load_config(environ={}), tmp_path / "d")}
    cfg = load_config(environ={"APPLIANCE_ASR__BACKEND": "triton"})
    written = write(cfg, tmp_path / "t", prefix=Path(__file__).resolve().parent.parent)
    dropin = (tmp_path / "t" / ASR_DROPIN).read_text().splitlines()
    for line in ("PrivateNetwork=no", "IPAddressDeny=any", "IPAddressAllow=localhost",
                 "After=appliance-triton.service"):
        assert line in dropin, line
    unit = (tmp_path / "t" / "appliance-triton.service").read_text().splitlines()
    for line in ("IPAddressDeny=any", "IPAddressAllow=localhost", "TemporaryFileSystem=/var/lib/samtalsstod:ro",
                 "BindReadOnlyPaths=/var/lib/samtalsstod/models", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                 "PrivateDevices=yes", "ProtectSystem=strict", "SystemCallFilter=@system-service"):
        assert line in unit, line
    assert not any(line.startswith("LoadCredential") for line in unit)  # no master key for the model server
    units = [str(p) for p in written if p.suffix in (".service", ".timer")]
    out = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cfg = load_config(environ={"APPLIANCE_ASR__BACKEND": "riva", "APPLIANCE_ASR__RIVA__URL": "10.2.3.4:50051",
                               "APPLIANCE_ASR__RIVA__TLS": "true"})
    write(cfg, tmp_path / "r")
    assert "IPAddressAllow=10.2.3.4" in (tmp_path / "r" / ASR_DROPIN).read_text().splitlines()
