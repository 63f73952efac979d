"""Shared fixtures. Models come from the embedded model store installed by `make test`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Web fixtures (app, ctx, db, users, client, clock, anna, totp_secrets) and the llama.cpp server (llm_server,
# llm_ctx, dead_llm_url, silent_llm_url) for every module.
pytest_plugins = ["tests.web_fixtures", "tests.llm_fixtures", "tests.e2e_helpers"]

ROOT = Path(__file__).resolve().parent.parent
# The shared two-speaker sample (pyannote, MIT) with its reference RTTM, copied from ../shared/data so the
# tests do not depend on where the checkout lives.
PYANNOTE_SAMPLE = ROOT / "tests" / "data" / "pyannote_sample"
# Ten 30-second AMI meeting excerpts (CC BY 4.0; pyannote-audio's packaging MIT) with reference RTTM and UEM, as
# lossless FLAC copies of ../shared/data/ami_debug_train (README.md there says where from).
AMI_EXCERPTS = ROOT / "tests" / "data" / "ami_debug_train"


@pytest.fixture(scope="session")
def model_store() -> Path:
    """The model store `make test` filled with `appliance models install-embedded`."""
    store = Path(os.environ.get("TEST_MODEL_STORE", ROOT / "var" / "models"))
    if not (store / "whisper-base" / "model.bin").exists():
        pytest.fail(f"No embedded models in {store}: run `make test` (it installs them) "
                    "or `appliance models install-embedded`")
    return store


def speak_swedish(text: str, out: Path, fmt: str = "wav") -> Path:
    """Real Swedish speech from espeak-ng, optionally converted with PyAV-compatible sox formats."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `apt-get install espeak-ng` (make test installs it)")
    wav = out.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", "sv", "-s", "150", "-w", str(wav), text], check=True)
    if fmt == "wav":
        return wav
    target = out.with_suffix("." + fmt)
    subprocess.run(["sox", str(wav), str(target)], check=True)
    return target


def make_tone(path: Path, seconds: float = 0.5) -> Path:
    """A short 440 Hz tone (16 kHz mono wav): valid audio for tests that do not need speech."""
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(path), "synth", str(seconds), "sine", "440"],
                   check=True)
    return path


def free_port() -> int:
    """A free TCP port on loopback for a server a test starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SV_TEXT = ("Hej, jag heter Anna och jag arbetar som socialsekreterare. "
           "Vi ska prata om barnets skola och familjens ekonomi.")


SV_LONG_TEXT = (SV_TEXT + " Mamma berättar att pojken har svårt att sova och att han ofta är hemma från skolan. "
                "Pappa bor i en annan stad och träffar barnen varannan helg. "
                "Vi bestämmer att vi ses igen om två veckor och att skolan ska kontaktas. "
                "Familjen får information om vilket stöd kommunen kan erbjuda.")

KEY_WORDS = ("hej", "anna", "jag", "heter", "familj", "prata")


def recognised(text: str, minimum: int = 3) -> list[str]:
    """Which of the clip's robust key words base Whisper got (it is weak; a few always come through)."""
    found = [w for w in KEY_WORDS if w in text.lower()]
    assert len(found) >= minimum, f"transcript recognised only {found}: {text!r}"
    return found


@pytest.fixture(scope="session")
def diarizer(model_store):
    """The configured diarizer, loaded once per test session like the asr unit loads it once per process."""
    from appliance.config import DiarizationConfig
    from models import load_diarizer

    return load_diarizer(DiarizationConfig(), model_store)


@pytest.fixture(scope="session")
def sv_long_clip(tmp_path_factory) -> Path:
    """About 30 seconds of varied Swedish speech."""
    return speak_swedish(SV_LONG_TEXT, tmp_path_factory.mktemp("audio") / "sv_long")


@pytest.fixture(scope="session")
def sv_clip(tmp_path_factory) -> Path:
    """About nine seconds of Swedish speech (wav, 22.05 kHz mono)."""
    return speak_swedish(SV_TEXT, tmp_path_factory.mktemp("audio") / "sv")


@pytest.fixture
def state_env(tmp_path) -> dict[str, str]:
    return {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")}


@pytest.fixture
def app_ctx(state_env):
    """An initialised appliance (real SQLCipher, dev master key) on a fresh temp state dir."""
    from appliance.config import load_config
    from appliance.platform.context import init_state

    return init_state(load_config(environ=state_env))


@pytest.fixture
def conn(app_ctx):
    c = app_ctx.connect()
    yield c
    c.close()
