"""Key hierarchy.

master key  (systemd credential `$CREDENTIALS_DIRECTORY/master-key`; dev: key file in the state dir)
  ├─ wraps the database key (random 256-bit, `<state>/db.key.wrapped`)
  │    └─ the SQLCipher database holds each recording's data key (DEK) for its audio blob.
  └─ wraps the subkeys (`<state>/keys/<purpose>.json`): the audit log's HMAC key, the keyed hash of client
     identifiers … Kept wrapped rather than derived so they outlive a rotation of the master key.

Wrapping is AES-256-GCM with a purpose string as associated data, so a wrapped key
cannot be swapped for another kind of wrapped value.

Rotating the master key (`rotate_begin` → the new key sealed in place of the old → `rotate_finish`) never leaves
a moment in which the current master key cannot open every wrapped key: the first step adds a wrapping under the
new key beside the old one in every file, the credential is then replaced in one rename, and the last step drops
the wrappings the (new) current key does not open. A purge does not re-key the database meanwhile (the marker
`keys/rotation.pending`), and a rotation cut off half-way is finished by running it again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.config import Config
from appliance.errors import KeyError_

log = logging.getLogger(__name__)

KEY_BYTES = 32
CREDENTIAL_NAME = "master-key"
_WRAP_VERSION = b"\x01"


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _parse_key(raw: bytes, source: str) -> bytes:
    raw = raw.strip()
    if len(raw) == KEY_BYTES * 2:
        try:
            return bytes.fromhex(raw.decode("ascii"))
        except ValueError:
            pass
    if len(raw) == KEY_BYTES:
        return raw
    raise KeyError_(f"Master key in {source} must be {KEY_BYTES} raw bytes or {KEY_BYTES * 2} hex digits")


def dev_master_key_path(cfg: Config) -> Path:
    return cfg.paths.secrets / "master.key"


def load_master_key(cfg: Config, *, create_dev_key: bool = False) -> bytes:
    """The master key from the systemd credential, or (dev only) from the state dir key file."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / CREDENTIAL_NAME
        if not path.is_file():
            raise KeyError_(f"$CREDENTIALS_DIRECTORY is set but has no '{CREDENTIAL_NAME}'; "
                            "add LoadCredentialEncrypted=master-key:… to the unit")
        return _parse_key(path.read_bytes(), str(path))
    path = dev_master_key_path(cfg)
    if not path.exists():
        if not create_dev_key:
            raise KeyError_(f"No master key: neither $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME} nor the dev key "
                            f"file {path}. Run `appliance init` (dev) or provision the systemd credential.")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new_key().hex().encode())
    log.warning("DEV MODE: master key read from the plain key file %s. A real box must use a TPM-sealed "
                "systemd credential (LoadCredentialEncrypted=master-key); see provisioning/README.md.", path)
    return _parse_key(path.read_bytes(), str(path))


def wrap(master: bytes, key: bytes, purpose: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return _WRAP_VERSION + nonce + AESGCM(master).encrypt(nonce, key, purpose.encode())


def unwrap(master: bytes, blob: bytes, purpose: str) -> bytes:
    if len(blob) < 1 + 12 + 16 or blob[:1] != _WRAP_VERSION:
        raise KeyError_(f"Wrapped {purpose} is malformed")
    try:
        return AESGCM(master).decrypt(blob[1:13], blob[13:], purpose.encode())
    except InvalidTag as exc:
        raise KeyError_(f"Cannot unwrap the {purpose}: the master key is not the one it was wrapped with") from exc


def db_key_path(cfg: Config) -> Path:
    return cfg.paths.state_dir / "db.key.wrapped"


@dataclass(frozen=True)
class DbKey:
    """The current database: its generation (names the file) and its key.

    The wrapped-key file is the single commit point of a re-key: it names the generation whose file
    the key opens, and it is replaced atomically. A database file of another generation is stale.
    """

    generation: int
    key: bytes


def db_path(cfg: Config, generation: int) -> Path:
    return cfg.paths.state_dir / f"appliance-{generation}.db"


def _write_json(path: Path, record: dict) -> None:
    """Atomically replace `path` (0600) with `record` and sync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _wrappings(record: dict) -> list[bytes]:
    """The wrappings of a key file: one, or two while the master key is being rotated."""
    raw = record.get("wrappings") or [record["wrapped"]]
    return [bytes.fromhex(w) for w in raw]


def _unwrap_any(master: bytes, wrappings: list[bytes], purpose: str) -> bytes:
    for w in wrappings[:-1]:
        try:
            return unwrap(master, w, purpose)
        except KeyError_:
            continue
    return unwrap(master, wrappings[-1], purpose)


def _write_db_key(cfg: Config, master: bytes, generation: int, key: bytes) -> None:
    _write_json(db_key_path(cfg), {"generation": generation,
                                   "wrapped": wrap(master, key, f"database key {generation}").hex()})
def load_db_key(cfg: Config, master: bytes, *, create: bool = False) -> DbKey:
    path = db_key_path(cfg)
    if not path.exists():
        if not create:
            raise KeyError_(f"No database key at {path}; run `appliance init`")
        key = DbKey(1, new_key())
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_db_key(cfg, master, key.generation, key.key)
        return key
    try:
        record = json.loads(path.read_text())
        generation = int(record["generation"])
        wrappings = _wrappings(record)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyError_(f"Database key file {path} is malformed; restore it from backup") from exc
    return DbKey(generation, _unwrap_any(master, wrappings, f"database key {generation}"))


def commit_new_db_key(cfg: Config, master: bytes, generation: int, key: bytes) -> None:
    """Make `generation` (whose file must already be complete and synced) the current database."""
    refuse_during_rotation(cfg)
    _write_db_key(cfg, master, generation, key)


def fingerprint(key: bytes) -> str:
    """A short non-reversible id of a key for receipts and doctor output."""
    return hashlib.sha256(b"samtalsstod-key-fp" + key).hexdigest()[:16]


def derive(master: bytes, purpose: str) -> bytes:
    """A subkey of the master key for one purpose (e.g. the audit log's HMAC key)."""
    return hmac.new(master, b"samtalsstod subkey v1:" + purpose.encode(), hashlib.sha256).digest()


# --- subkeys: wrapped, so they survive a rotation of the master key -------------------------------------

def _subkey_path(cfg: Config, purpose: str) -> Path:
    return cfg.paths.state_dir / "keys" / f"{purpose}.json"


def subkey(cfg: Config, master: bytes, purpose: str) -> bytes:
    """The key for one purpose, kept wrapped by the master key. Created on first use as `derive(master,
    purpose)`: the value earlier versions derived each time, so what was signed or hashed before stays valid."""
    path = _subkey_path(cfg, purpose)
    if not path.exists():
        value = derive(master, purpose)
        _write_json(path, {"purpose": purpose, "wrapped": wrap(master, value, f"subkey {purpose}").hex()})
        return value
    try:
        wrappings = _wrappings(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyError_(f"Key file {path} is malformed; restore it from backup") from exc
    return _unwrap_any(master, wrappings, f"subkey {purpose}")


# --- rotating the master key ----------------------------------------------------------------------------

def _rotation_marker(cfg: Config) -> Path:
    return cfg.paths.state_dir / "keys" / "rotation.pending"


def rotation_pending(cfg: Config) -> bool:
    return _rotation_marker(cfg).exists()


def refuse_during_rotation(cfg: Config) -> None:
    if rotation_pending(cfg):
        raise KeyError_("A rotation of the master key is unfinished; finish it first "
                        "(`appliance provision rotate-key` again) — the purge runs after it.")


def _key_files(cfg: Config) -> list[tuple[Path, str]]:
    """Every wrapped-key file with its wrapping purpose (the database key's names its generation)."""
    files = []
    db_file = db_key_path(cfg)
    if db_file.exists():
        files.append((db_file, f"database key {json.loads(db_file.read_text())['generation']}"))
    folder = cfg.paths.state_dir / "keys"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        files.append((path, f"subkey {json.loads(path.read_text())['purpose']}"))
    return files


def rotate_begin(cfg: Config, current: bytes, new: bytes) -> int:
    """First step of a rotation: every wrapped key also wrapped under `new` (the current key still opens them
    all). Idempotent. Returns how many files now carry both wrappings."""
    marker = _rotation_marker(cfg)
    marker.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    marker.write_text(fingerprint(new))
    count = 0
    for path, purpose in _key_files(cfg):
        record = json.loads(path.read_text())
        wrappings = _wrappings(record)
        value = _unwrap_any(current, wrappings, purpose)
        try:
            _unwrap_any(new, wrappings, purpose)
        except KeyError_:
            wrappings.append(wrap(new, value, purpose))
        record.pop("wrapped", None)
        record["wrappings"] = [w.hex() for w in wrappings]
        _write_json(path, record)
        count += 1
    return count


def rotate_finish(cfg: Config, current: bytes) -> int:
    """Last step, once `current` (the new key) is the sealed credential: drop every wrapping it does not open,
    so the old master key opens nothing any more. Returns how many files were rewritten."""
    count = 0
    for path, purpose in _key_files(cfg):
        record = json.loads(path.read_text())
        kept = []
        for w in _wrappings(record):
            try:
                unwrap(current, w, purpose)
            except KeyError_:
                continue
            kept.append(w)
        if not kept:
            raise KeyError_(f"The current master key does not open {path}: the rotation's first step did not run "
                            "with this key. Restore the previous credential and run the rotation again.")
        record.pop("wrappings", None)
        record["wrapped"] = kept[0].hex()
        _write_json(path, record)
        count += 1
    _rotation_marker(cfg).unlink(missing_ok=True)
    return count
