"""The `appliance` command as IT uses it (real subprocesses, real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from tests.conftest import SV_TEXT, recognised

ROOT = Path(__file__).resolve().parent.parent


def appliance(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioning.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


@pytest.fixture
def env(tmp_path, model_store):
    return {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"), "APPLIANCE_PATHS__MODELS_DIR": str(model_store),
            "APPLIANCE_RETENTION__RTC_PATH": str(tmp_path / "no-rtc")}


def _normalise(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower()).split())


def test_transcribe_json_matches_raw_faster_whisper(env, sv_clip, model_store):
    out = appliance("transcribe", str(sv_clip), "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["language"] == "sv" and 8 < result["duration"] < 11
    seg = result["segments"][0]
    assert set(seg) == {"start", "end", "speaker", "text", "words"}
    assert result["diarization"] == "done" and seg["speaker"] == 1  # speakers are numbered by first line
    assert set(seg["words"][0]) == {"start", "end", "word", "probability"}
    ours = " ".join(s["text"] for s in result["segments"])
    recognised(ours)

    import ctranslate2
    from faster_whisper import WhisperModel

    from appliance.config import load_config

    model = WhisperModel(str(model_store / "whisper-base"), device="cpu", compute_type="int8")
    ctranslate2.set_random_seed(load_config(environ={}).asr.seed)  # the service seeds the same way
    segments, _ = model.transcribe(str(sv_clip), language="sv", beam_size=5, vad_filter=True,
                                   word_timestamps=True)
    raw = " ".join(s.text for s in segments)
    assert _normalise(ours) == _normalise(raw)
    wer_ours = jiwer.wer(_normalise(SV_TEXT), _normalise(ours))
    wer_raw = jiwer.wer(_normalise(SV_TEXT), _normalise(raw))
    assert wer_ours == wer_raw
    assert wer_ours < 0.8  # base Whisper on espeak is weak, but it must recognise most of it


def test_transcribe_bad_file_is_clear(env, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(os.urandom(5000))
    out = appliance("transcribe", str(junk), env=env)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    out = appliance("transcribe", str(tmp_path / "missing.wav"), env=env)
    assert out.returncode == 2 and "no such file" in out.stderr


def test_doctor_fails_with_hints_then_passes(env):
    out = appliance("doctor", env=env)
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "appliance init" in out.stdout
    assert appliance("init", env=env).returncode == 0
    out = appliance("doctor", env=env)
    assert out.returncode == 0, out.stdout
    assert "[OK  ] model whisper-base" in out.stdout
    assert "[WARN] master key" in out.stdout  # dev key file, said loudly
    assert "[WARN] hardware clock: no readable RTC" in out.stdout


def test_doctor_fails_on_clock_disagreement(env, tmp_path):
    import time

    appliance("init", env=env)
    (tmp_path / "no-rtc").write_text(str(int(time.time()) + 3600))
    out = appliance("doctor", env=env)
    assert out.returncode == 1 and "[FAIL] hardware clock" in out.stdout and "hwclock" in out.stdout


def test_purge_and_audit_verify_from_the_cli(env):
    assert appliance("init", env=env).returncode == 0
    dry = appliance("purge", "--dry-run", env=env)
    assert dry.returncode == 0 and "0 recording(s) would be deleted" in dry.stdout
    refused = appliance("purge", env=env)  # no gallringsbeslut: the decision the purge rests on is missing
    assert refused.returncode == 2 and "gallringsbeslut" in refused.stderr and "nothing was deleted" in refused.stderr
    env = {**env, "APPLIANCE_RETENTION__GALLRINGSBESLUT": "SN 2025/123 § 4"}
    out = appliance("purge", env=env)
    assert out.returncode == 0, out.stderr
    assert "generation 1 → 2" in out.stdout and "Receipt written" in out.stdout
    verify = appliance("audit", "verify", env=env)
    assert verify.returncode == 0 and "OK" in verify.stdout
    export = appliance("audit", "export", "--format", "csv", env=env)
    assert export.returncode == 0 and "purge.receipt" in export.stdout


def test_doctor_detects_tampered_model(env, tmp_path, model_store):
    import shutil

    store = tmp_path / "models"
    shutil.copytree(model_store / "whisper-base", store / "whisper-base")
    with open(store / "whisper-base" / "config.json", "a") as f:
        f.write(" ")
    env = {**env, "APPLIANCE_PATHS__MODELS_DIR": str(store)}
    appliance("init", env=env)
    out = appliance("doctor", env=env)
    assert out.returncode == 1 and "whisper-base" in out.stdout and "install-embedded" in out.stdout


def test_user_add_prints_one_time_enrolment_link(env):
    import re

    appliance("init", env=env)
    out = appliance("user", "add", "berit", "--role", "caseworker", "--role", "manager", env=env)
    assert out.returncode == 0, out.stderr
    assert "caseworker, manager" in out.stdout and "password" not in out.stdout.lower().split("choose")[0]
    assert re.search(r"https://127\.0\.0\.1:8443/invite/[A-Za-z0-9_-]{40,}\s", out.stdout), out.stdout
    reset = appliance("user", "reset-password", "berit", env=env)  # still works (e.g. a lost invitation)
    assert reset.returncode == 0 and "New one-time password for berit:" in reset.stdout
    again = appliance("user", "add", "berit", "--role", "caseworker", env=env)
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = appliance("user", "add", "x", "--role", "root", env=env)
    assert bad.returncode == 2 and "Unknown role" in bad.stderr
