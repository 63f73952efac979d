"""Whisper hosted on a real Triton Inference Server (tritonserver 2.51 from the nvidia-pytriton wheel, CPU,
loopback), serving the project's own model repository (models/triton/) with the embedded Whisper base model.

One server for the session (services/triton_server.py starts it the way the unit does) serves both models:
`whisper` (the samtalsstod protocol) and `whisper_bls_ct2` (the TensorRT-LLM Whisper example's tensors).
Its first request is the comparison with in-process faster-whisper: Whisper samples on this clip (temperature
fallback), and both sides are seeded the same on their first transcription. A second server, with mutual TLS,
is stopped and started again under a job.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import pytest

from appliance.config import AsrConfig, Config, load_config
from appliance.errors import AsrUnavailable
from appliance.platform import audit
from appliance.platform.context import init_state
from appliance.ports import SAMPLE_RATE, TranscribeOptions, Transcriber, Transcript
from appliance.recordings import recordings
from appliance.transcripts import word_detail
from appliance.users import accounts
from models import asr_chunks, load_transcriber
from provisioning.doctor import run_checks
from services import triton_server
from services.asr import AsrWorker
from services.transcription import transcribe_audio
from tests.conftest import ROOT, free_port, recognised, speak_swedish
from tests.long_speech import SENTENCES, long_conversation, words_of

OPTIONS = TranscribeOptions(language="sv", beam_size=5, vad_filter=True, word_timestamps=True)
TRITON_PYTHON = Path(os.environ.get("TEST_TRITON_PYTHON", ROOT / ".venv-triton" / "bin" / "python"))


def _config(tmp: Path, model_store: Path, port: int, models: list[str], extra: str = "") -> Config:
    path = tmp / "appliance.toml"
    path.write_text(f"""
[paths]
state_dir = "{tmp / 'state'}"
models_dir = "{model_store}"
[triton_server]
python = "{TRITON_PYTHON}"
port = {port}
models = {models!r}
{extra}
""".replace("'", '"'))
    return load_config(path, environ={})


def _start(cfg: Config, workdir: Path) -> subprocess.Popen:
    if not TRITON_PYTHON.exists():
        pytest.fail(f"No Triton server virtualenv at {TRITON_PYTHON}: `make triton-venv` builds it "
                    "(make test does), from models/triton/requirements.txt")
    workdir.mkdir(parents=True, exist_ok=True)
    process = triton_server.start(cfg, workdir, log_file=workdir / "tritonserver.log")
    try:
        triton_server.wait_ready(cfg.triton_server.host, cfg.triton_server.port, process, timeout=180)
    except Exception:
        _stop(process)
        log = (workdir / "tritonserver.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"tritonserver did not start:\n{log}")
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Triton:
    url: str
    cfg: Config
    via_triton: Transcript  # the server's first request
    in_process: Transcript


@pytest.fixture(scope="session")
def triton(model_store: Path, sv_clip: Path, tmp_path_factory) -> Iterator[Triton]:
    tmp = tmp_path_factory.mktemp("triton")
    port = free_port()
    cfg = _config(tmp, model_store, port, ["whisper", "whisper_bls_ct2"])
    process = _start(cfg, tmp / "run")
    url = f"127.0.0.1:{port}"
    try:
        hosted = load_transcriber(AsrConfig(backend="triton", triton={"url": url}), model_store)
        via_triton = transcribe_audio(hosted, sv_clip.read_bytes(), OPTIONS)
        local = load_transcriber(AsrConfig(), model_store)  # a fresh model: seeded at load, like the server's
        in_process = transcribe_audio(local, sv_clip.read_bytes(), OPTIONS)
        yield Triton(url, cfg, via_triton, in_process)
    finally:
        _stop(process)


def test_same_transcript_as_in_process_faster_whisper(triton: Triton) -> None:
    hosted, local = triton.via_triton, triton.in_process
    assert hosted.to_json_dict() == local.to_json_dict()  # segments, times, words, probabilities: all of it
    assert hosted.segments and all(s.words for s in hosted.segments)
    recognised(" ".join(s.text for s in hosted.segments))


def test_tensorrt_llm_protocol_is_read(triton: Triton, model_store: Path, sv_clip: Path) -> None:
    t = load_transcriber(AsrConfig(backend="triton", triton={"url": triton.url, "model_name": "whisper_bls_ct2",
                                                             "protocol": "trtllm-whisper"}), model_store)
    transcript = transcribe_audio(t, sv_clip.read_bytes(), TranscribeOptions(language="sv"))
    assert transcript.info.language == "sv"
    assert len(transcript.segments) == 1  # one 30-second window: one line, spanning its speech
    line = transcript.segments[0]
    assert line.words == () and 0 <= line.start < 1.0 and 8.0 < line.end <= transcript.info.duration
    recognised(line.text)
    caps = t.capabilities()
    assert (caps.word_timestamps, caps.word_probabilities, caps.longest_chunk_seconds) == (False, False, 30.0)


def test_long_audio_loses_no_words_at_chunk_borders(triton: Triton, model_store: Path, tmp_path: Path) -> None:
    audio, spans, _texts = long_conversation(tmp_path)
    assert len(audio) >= 180 * SAMPLE_RATE
    cuts = [c.start for c in asr_chunks.plan(audio, 30)[1:]]  # where the backend cuts (the same plan)
    assert len(cuts) >= 6
    hosted = load_transcriber(AsrConfig(backend="triton", triton={"url": triton.url, "chunk_seconds": 30}),
                              model_store)
    info, segments = hosted.transcribe(audio, OPTIONS)
    segments = list(segments)
    assert abs(info.duration - len(audio) / SAMPLE_RATE) < 0.01
    words = [w for s in segments for w in s.words]
    assert all(a.start <= b.start + 0.01 for a, b in zip(words, words[1:], strict=False))  # in order, times absolute
    # Every cut lies in a pause: between two sentences, or inside one where espeak pauses (a comma).
    for cut in cuts:
        around = audio[max(0, cut - SAMPLE_RATE // 20):cut + SAMPLE_RATE // 20]
        assert np.sqrt(np.mean(around ** 2)) < 0.01, f"cut at {cut / SAMPLE_RATE:.2f} s is not in a pause"
    # Around every cut, the sentences on both sides came through whole: as many words as were spoken (base
    # Whisper spells many wrong, but a word lost at the cut would be missing from the count).
    for cut in cuts:
        before = max(i for i, (a, _) in enumerate(spans) if a < cut)
        for i in {before, min(before + 1, len(spans) - 1)}:
            a, b = spans[i]
            margin = 0.3 * SAMPLE_RATE
            heard = [w for w in words if a - margin <= (w.start + w.end) / 2 * SAMPLE_RATE <= b + margin]
            spoken = len(words_of(SENTENCES[i]))
            assert len(heard) >= 0.7 * spoken, (f"sentence {i} at the cut {cut / SAMPLE_RATE:.1f} s: "
                                                f"{len(heard)} of {spoken} words")
    said, heard_all = words_of(" ".join(SENTENCES)), words_of(" ".join(s.text for s in segments))
    assert len(heard_all) >= 0.9 * len(said)
    assert jiwer.wer(" ".join(said), " ".join(heard_all)) < 0.7


def test_doctor_checks_the_configured_triton(triton: Triton, model_store: Path, tmp_path: Path) -> None:
    def checks(**asr) -> dict:
        cfg = triton.cfg.model_copy(update={"asr": AsrConfig(backend="triton", **asr)})
        return {c.name.split(" (")[0]: c for c in run_checks(cfg) if c.name.startswith("transcription")}

    ok = checks(triton={"url": triton.url})
    assert ok["transcription"].ok and "ready" in ok["transcription"].message
    assert ok["transcription language"].ok
    down = checks(triton={"url": f"127.0.0.1:{free_port()}"})["transcription"]
    assert not down.ok and "unreachable" in down.message and "systemctl start appliance-triton" in down.hint
    missing = checks(triton={"url": triton.url, "model_name": "whisper_large"})["transcription"]
    assert not missing.ok and "not loaded" in missing.message and "model_name" in missing.hint
    foreign = checks(triton={"url": triton.url}, language="xx")["transcription language"]
    assert not foreign.ok and "offers no model for 'xx'" in foreign.message


# --- mutual TLS, a server that stops under a job --------------------------------------------------------

def _certificates(tmp: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a box's client certificate, all signed by the CA."""
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ASR CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": tmp / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who, usage, san in (("server", ExtendedKeyUsageOID.SERVER_AUTH, [x509.IPAddress(ip_address("127.0.0.1"))]),
                            ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("box1.kommun.test")])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, who)])).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=1)).add_extension(x509.SubjectAlternativeName(san), False)
                .add_extension(x509.ExtendedKeyUsage([usage]), False).sign(ca_key, hashes.SHA256()))
        out[f"{who}_cert"], out[f"{who}_key"] = tmp / f"{who}.pem", tmp / f"{who}.key"
        out[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{who}_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return out


def test_mutual_tls_and_a_stopped_server_gives_a_clear_retried_job_failure(model_store: Path, tmp_path: Path) -> None:
    certs = _certificates(tmp_path)
    port = free_port()
    server_cfg = _config(tmp_path, model_store, port, ["whisper"], f"""
tls_cert_file = "{certs['server_cert']}"
tls_key_file = "{certs['server_key']}"
tls_client_ca_file = "{certs['ca']}"
""")
    client = {"url": f"127.0.0.1:{port}", "tls": True, "ca_file": certs["ca"], "retries": 1,
              "retry_backoff_seconds": 0.1}
    asr = AsrConfig(backend="triton", triton={**client, "cert_file": certs["client_cert"],
                                              "key_file": certs["client_key"]}, unavailable_wait_seconds=0.1)
    clip = speak_swedish("Hej, jag heter Anna och vi ska prata om familjen.", tmp_path / "clip")
    process = _start(server_cfg, tmp_path / "run")
    try:
        # Only a box holding a certificate from the CA gets in.
        stranger = load_transcriber(AsrConfig(backend="triton", triton=client), model_store)
        assert not stranger.probe().reachable
        assert load_transcriber(asr, model_store).probe().model_ready
    finally:
        _stop(process)

    app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
                                          "APPLIANCE_ASR__UNAVAILABLE_WAIT_SECONDS": "0.1"}))
    conn = app.connect()
    user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    rid = recordings.create_from_upload(app, conn, user, title="Samtal", filename=clip.name, data=clip.read_bytes())
    worker = AsrWorker(app, load_transcriber(asr, model_store), worker_id="test-worker")

    for _ in range(3):  # the server is down: every try is given back, never counted against the job
        assert worker.run_once()
        rec = recordings.get_recording(conn, user, rid)
        assert rec.status == "queued" and "Triton" in rec.error and "svarar inte" in rec.error
        job = conn.execute("SELECT state, attempts FROM jobs WHERE recording_id = ?", (rid,)).fetchone()
        assert (job["state"], job["attempts"]) == ("queued", 0)
    entries = audit.entries(conn, action="recording.transcribe", target=f"recording:{rid}")
    assert [(e["result"], e["detail"]) for e in entries] == [("failed", "asr_unavailable")] * 3
    with app.blobs.open(rid, conn.execute("SELECT dek FROM recordings WHERE id = ?", (rid,)).fetchone()["dek"]) as r:
        assert r.read_all() == clip.read_bytes()  # the audio is intact

    process = _start(server_cfg, tmp_path / "run")  # the server is back
    try:
        assert worker.run_once()
    finally:
        _stop(process)
    rec = recordings.get_recording(conn, user, rid)
    assert rec.status == "ready" and rec.error is None
    recognised(" ".join(s.text for s in recordings.transcript_segments(conn, rid)), minimum=2)
    assert word_detail.for_recording(conn, rid).word_probabilities


def test_a_server_that_never_answers_fails_with_a_clear_message(model_store: Path) -> None:
    t: Transcriber = load_transcriber(AsrConfig(backend="triton", triton={
        "url": f"127.0.0.1:{free_port()}", "retries": 2, "retry_backoff_seconds": 0.05}), model_store)
    with pytest.raises(AsrUnavailable, match=r"Triton på 127\.0\.0\.1:\d+\) svarar inte"):
        list(t.transcribe(np.zeros(SAMPLE_RATE, np.float32), OPTIONS)[1])


def test_appliance_transcribe_through_triton(triton: Triton, model_store: Path, tmp_path: Path) -> None:
    import json
    import sys

    clip = speak_swedish("Hej, jag heter Anna och vi ska prata om familjen.", tmp_path / "clip")
    env = {**os.environ, "APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"),
           "APPLIANCE_PATHS__MODELS_DIR": str(model_store), "APPLIANCE_ASR__TRITON__URL": triton.url,
           "APPLIANCE_DIARIZATION__ENABLED": "false"}
    out = subprocess.run([sys.executable, "-m", "provisioning.cli", "transcribe", str(clip), "--backend", "triton",
                          "--json"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    recognised(" ".join(s["text"] for s in result["segments"]), minimum=2)
    assert result["segments"][0]["words"] and result["segments"][0]["words"][0]["probability"] is not None
