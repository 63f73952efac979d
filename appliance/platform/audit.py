"""Tamper-evident audit log: who did what to which id, with what result. Never personal data.

File format (`<state_dir>/audit/audit.jsonl`), one record per line, canonical JSON (sorted keys, no
whitespace, ASCII only)::

    {"action":"recording.read","actor":"user:3","data":null,"detail":"","mac":"…","prev":"…",
     "result":"ok","role":null,"seq":17,"target":"recording:ab12…","ts":1715.0,"ts_rtc":1715.0,"v":1}

* `seq` counts up by one from 1 (the genesis record, whose `prev` is 64 zeros);
* `prev` is the SHA-256 (hex) of the previous record's line (its bytes without the newline);
* `mac` is HMAC-SHA256, under the audit key `keys.subkey(cfg, master, "audit-hmac")`, over the record's
  canonical bytes without `mac`. Without the key nobody can write a record that verifies, so a changed,
  inserted, deleted, reordered or duplicated record breaks the chain for good.

Truncation at a line boundary leaves a chain that is intact but shorter; the sidecar `audit.head` catches
it: after every append it holds the last record's seq and hash, MAC'ed under the same key (another domain
prefix), and `verify` requires the record at the head's seq to have the head's hash. Cutting the log and
rewriting the head needs the key. What a key holder's rollback (restoring an older file *and* its older
head together) would hide is witnessed outside the box state: every record is mirrored to journald with its
seq and hash (`AUDIT_SEQ`, `AUDIT_HASH`). If the process dies between the append and the head update, the
file is ahead of the head by a record that verifies; that is accepted and repaired at the next append.

Rotation (`rotate`) drops the records older than the retention period by writing a new file whose first
line is a signed checkpoint (`seq` 0, action `audit.rotated`, `prev` = hash of the last dropped record,
`data.through_seq` = its seq); the first kept record must chain onto it, so continuity stays provable.

Writing is fail-closed: `record()` raises `AuditUnavailable` when the entry cannot be written durably (or
the log does not verify at its end), so callers record inside the action's transaction, or before returning
content, and the action does not happen. Several processes append at once: an exclusive `flock` on
`audit.lock` serialises them (the lock file is never replaced, unlike the log on rotation).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import hmac
import io
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from appliance import clock
from appliance.errors import ApplianceError
from appliance.platform import keys

if TYPE_CHECKING:
    from appliance.config import Config

log = logging.getLogger("appliance.platform.audit")

DEFAULT_AUDIT_RETENTION_DAYS = 730
FORMAT_VERSION = 1
GENESIS = "0" * 64
KEY_PURPOSE = "audit-hmac"
PSEUDONYM_PURPOSE = "audit-pseudonym"
CHECKPOINT_ACTION = "audit.rotated"
RESULTS = ("ok", "denied", "failed")
MAX_LIST_ITEMS = 100_000
MAX_DATA_KEYS = 32

_FIELDS = frozenset({"v", "seq", "ts", "ts_rtc", "actor", "role", "action", "target", "result", "detail",
                     "data", "prev", "mac"})
_RECORD_DOMAIN = b"samtalsstod audit record v1\n"
_HEAD_DOMAIN = b"samtalsstod audit head v1\n"
_PSEUDONYM_DOMAIN = b"samtalsstod pseudonym v1\n"

# Actions are dotted identifiers; everything else is an id. Nothing that could be free text.
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9_:.+\-]{0,80}$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DATA_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PNR = re.compile(r"^(?:\d{2})?(\d{6})[-+]?(\d{4})$")


class AuditUnavailable(ApplianceError):  # noqa: N818 - the domain name of the condition
    """The audit log cannot be written (or does not verify at its end): the action must not happen."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__("Granskningsloggen kan inte skrivas, så åtgärden stoppades. Kontakta IT-supporten. "
                         f"(IT: {reason}. Run `appliance audit verify`.)")


# --- canonical form, hashes, MACs ---------------------------------------------------------------

def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def line_hash(line: bytes) -> str:
    """The chain hash of a record: SHA-256 over its line bytes without the newline."""
    return hashlib.sha256(line).hexdigest()


def _mac(key: bytes, domain: bytes, fields: dict) -> str:
    return hmac.new(key, domain + canonical(fields), hashlib.sha256).hexdigest()


def audit_key(cfg: Config, master_key: bytes) -> bytes:
    """The audit log's MAC key: a subkey wrapped by the master key (so a master-key rotation keeps the chain)."""
    return keys.subkey(cfg, master_key, KEY_PURPOSE)


def pseudonym_key(cfg: Config, master_key: bytes) -> bytes:
    """A key for `pseudonym()`, separate from the audit MAC key."""
    return keys.subkey(cfg, master_key, PSEUDONYM_PURPOSE)


def pseudonym(key: bytes, value: str) -> str:
    """A client identifier (e.g. a personnummer) as a keyed, non-reversible id fit for the audit log."""
    digest = hmac.new(key, _PSEUDONYM_DOMAIN + value.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return "h:" + digest[:32]


# --- validation: identifiers only ----------------------------------------------------------------

def _looks_like_personnummer(segment: str) -> bool:
    m = _PNR.match(segment)
    if not m:
        return False
    date, tail = m.group(1), m.group(2)
    month, day = int(date[2:4]), int(date[4:6])
    if not (1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91)):  # 61–91: samordningsnummer
        return False
    total = 0
    for i, c in enumerate(date + tail):  # Luhn over the ten digits YYMMDDNNNC
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"audit {what} must be a short identifier ([A-Za-z0-9_:.+-], at most 80), "
                         "never free text or personal data")
    if any(_looks_like_personnummer(part) for part in value.split(":")):
        raise ValueError(f"audit {what} looks like a personnummer; log audit.pseudonym(key, value) instead")
    return value


def _check_data_value(key: str, value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) >= 2**63:
            raise ValueError(f"audit data '{key}': integer out of range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"audit data '{key}': number must be finite")
        return
    if isinstance(value, str):
        _check_id(value, f"data '{key}'")
        return
    if isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(f"audit data '{key}': at most {MAX_LIST_ITEMS} items")
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise ValueError(f"audit data '{key}': lists hold identifiers or integers only")
            if isinstance(item, str):
                _check_id(item, f"data '{key}'")
            elif abs(item) >= 2**63:
                raise ValueError(f"audit data '{key}': integer out of range")
        return
    raise ValueError(f"audit data '{key}': {type(value).__name__} is not allowed (identifiers, numbers, "
                     "booleans, null and lists of identifiers only)")


def check_data(data: object) -> dict | None:
    """Structured receipts: a flat dict of counts, ids, lists of ids, fingerprints. No free text."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("audit data must be a dict")
    if len(data) > MAX_DATA_KEYS:
        raise ValueError(f"audit data takes at most {MAX_DATA_KEYS} keys")
    for k, v in data.items():
        if not isinstance(k, str) or not _DATA_KEY.match(k):
            raise ValueError("audit data keys are lower-case identifiers")
        _check_data_value(k, v)
    return dict(data)


def _check_fields(actor: object, action: object, target: object, result: object, detail: object,
                  role: object) -> None:
    if not isinstance(action, str) or not _ACTION.match(action):
        raise ValueError("audit action must be a dotted identifier like 'recording.read'")
    _check_id(actor, "actor")
    if not actor:
        raise ValueError("audit actor is required")
    _check_id(target, "target")
    _check_id(detail, "detail")
    if result not in RESULTS:
        raise ValueError(f"audit result must be one of {', '.join(RESULTS)}")
    if role is not None and (not isinstance(role, str) or not _ROLE.match(role)):
        raise ValueError("audit role must be a role name")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_stored(rec: dict) -> None:
    """Types of a stored record (its MAC has already been checked)."""
    if rec["v"] != FORMAT_VERSION:
        raise ValueError(f"unknown format version {rec['v']!r}")
    if not isinstance(rec["seq"], int) or isinstance(rec["seq"], bool) or rec["seq"] < 0:
        raise ValueError("seq is not a non-negative integer")
    if not _is_number(rec["ts"]) or not (rec["ts_rtc"] is None or _is_number(rec["ts_rtc"])):
        raise ValueError("timestamps are not numbers")
    if not isinstance(rec["prev"], str) or not _HEX64.match(rec["prev"]):
        raise ValueError("prev is not a SHA-256 hex digest")
    _check_fields(rec["actor"], rec["action"], rec["target"], rec["result"], rec["detail"], rec["role"])
    check_data(rec["data"])


# --- the log ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    line: int | None = None  # the first bad line (1-based), or the line after the end for a truncation
    reason: str = ""
    note: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"OK: {self.records} records, chain intact" + (f" ({self.note})" if self.note else "")
        return f"FAIL: line {self.line}: {self.reason}"


class _Bad(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class _Head:
    seq: int
    hash: str


class AuditLog:
    """The append-only, hash-chained, HMAC'ed audit file and its MAC'ed head sidecar."""

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the audit key must be 32 bytes")
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.stem + ".head")
        self.lock_path = self.path.with_name(self.path.stem + ".lock")
        self._key = key

    @classmethod
    def for_state(cls, cfg: Config, master_key: bytes) -> AuditLog:
        return cls(cfg.paths.state_dir / "audit" / "audit.jsonl", audit_key(cfg, master_key))

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    # -- locking and low-level IO --

    @contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _sign(self, fields: dict) -> bytes:
        rec = dict(fields)
        rec["mac"] = _mac(self._key, _RECORD_DOMAIN, fields)
        return canonical(rec)

    def _read_head(self) -> _Head | None:
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            obj = json.loads(raw)
            fields = {"seq": obj["seq"], "hash": obj["hash"]}
            ok = (set(obj) == {"seq", "hash", "mac"} and isinstance(obj["seq"], int) and obj["seq"] >= 0
                  and isinstance(obj["hash"], str) and _HEX64.match(obj["hash"]) is not None
                  and isinstance(obj["mac"], str)
                  and hmac.compare_digest(obj["mac"], _mac(self._key, _HEAD_DOMAIN, fields)))
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise _Bad(0, f"{self.head_path.name} is damaged or was not written with this appliance's key")
        return _Head(obj["seq"], obj["hash"])

    def _write_head(self, seq: int, digest: str) -> None:
        fields = {"seq": seq, "hash": digest}
        body = canonical({**fields, "mac": _mac(self._key, _HEAD_DOMAIN, fields)}) + b"\n"
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)
        _fsync_dir(self.path.parent)

    def parse(self, body: bytes, line_no: int = 0) -> dict:
        """One line (without newline) → its record, after checking form and MAC (raises _Bad)."""
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise _Bad(line_no, "record is not ASCII (bytes were changed)") from None
        try:
            rec = json.loads(text)
        except ValueError:
            raise _Bad(line_no, "record is not valid JSON (changed or cut)") from None
        if not isinstance(rec, dict) or set(rec) != _FIELDS:
            raise _Bad(line_no, "record does not have the audit fields (changed)")
        try:
            same = canonical(rec) == body
        except ValueError:
            same = False
        if not same:
            raise _Bad(line_no, "record is not in canonical form (changed)")
        fields = {k: v for k, v in rec.items() if k != "mac"}
        if not isinstance(rec["mac"], str) or not hmac.compare_digest(
                rec["mac"], _mac(self._key, _RECORD_DOMAIN, fields)):
            raise _Bad(line_no, "MAC does not match: the record was changed, or written with another key")
        try:
            _check_stored(rec)
        except ValueError as exc:
            raise _Bad(line_no, f"record content is invalid: {exc}") from None
        return rec

    # -- verification --

    def _verify_stream(self, f: IO[bytes], head: _Head | None) -> VerifyResult:
        """Check every line and the chain; then that the head's record is present with the head's hash."""
        expected_seq = expected_prev = None
        tip: tuple[int, str] | None = None
        head_seen = False
        line_no = 0
        notes: list[str] = []
        for raw in f:
            line_no += 1
            if not raw.endswith(b"\n"):
                raise _Bad(line_no, "last record is incomplete (the log was cut mid-line)")
            body = raw[:-1]
            rec = self.parse(body, line_no)
            seq = rec["seq"]
            if line_no == 1:
                if seq == 0 and rec["action"] == CHECKPOINT_ACTION and isinstance(
                        (rec["data"] or {}).get("through_seq"), int):
                    through = rec["data"]["through_seq"]
                    notes.append(f"records up to {through} dropped by retention")
                    expected_seq, expected_prev = through + 1, rec["prev"]
                    tip = (through, rec["prev"])
                    head_seen = head_seen or (head is not None and head.seq == through and head.hash == rec["prev"])
                    continue
                if seq != 1 or rec["prev"] != GENESIS:
                    raise _Bad(1, "first record is neither the genesis record (seq 1) nor a rotation checkpoint: "
                                  "records before it were removed")
            elif seq == 0:
                raise _Bad(line_no, "a rotation checkpoint in the middle of the log (records spliced)")
            elif seq != expected_seq:
                raise _Bad(line_no, f"sequence number {seq}, expected {expected_seq}: "
                                    "a record was deleted, inserted, duplicated or moved")
            elif rec["prev"] != expected_prev:
                raise _Bad(line_no, "hash chain broken: prev is not the hash of the record before")
            digest = line_hash(body)
            expected_seq, expected_prev = seq + 1, digest
            tip = (seq, digest)
            if head is not None and head.seq == seq:
                if head.hash != digest:
                    raise _Bad(line_no, f"record {seq} differs from the one {self.head_path.name} recorded")
                head_seen = True
        if tip is None:
            if head is not None:
                raise _Bad(1, f"the log is empty but {self.head_path.name} records {head.seq} records: truncated")
            raise _Bad(1, "the log is empty")
        if head is None:
            raise _Bad(line_no + 1, f"{self.head_path.name} is missing (it is what proves the log was not cut)")
        if head.seq > tip[0]:
            raise _Bad(line_no + 1, f"the log ends at record {tip[0]} but {self.head_path.name} says {head.seq}: "
                                    "records were removed from the end (truncated)")
        if not head_seen:
            raise _Bad(line_no + 1, f"record {head.seq} named by {self.head_path.name} is not in the log")
        if head.seq < tip[0]:
            notes.append(f"head {tip[0] - head.seq} record(s) behind: an append was interrupted; "
                         "repaired at the next one")
        return VerifyResult(True, line_no, note="; ".join(notes))

    def verify(self) -> VerifyResult:
        if not self.path.exists():
            return VerifyResult(False, 0, 1, f"no audit log at {self.path} (nothing audited yet, or it was deleted)")
        try:
            with self._lock(fcntl.LOCK_SH):
                f = open(self.path, "rb")  # read after unlocking; a rotation replaces the path, not this file
                try:
                    head = self._read_head()
                except BaseException:
                    f.close()
                    raise
            with f:
                return self._verify_stream(f, head)
        except _Bad as bad:
            return VerifyResult(False, 0, bad.line or None, bad.reason)
        except OSError as exc:
            return VerifyResult(False, 0, None, f"cannot read the audit log: {exc.strerror or exc}")

    # -- appending --

    def _tip(self, fd: int, size: int) -> tuple[int, str]:
        """(seq, hash) of the last record, checked against the head. Raises _Bad when they disagree."""
        head = self._read_head()
        if size == 0:
            if head is not None:
                raise _Bad(1, f"the log is empty but {self.head_path.name} records {head.seq} records")
            return 0, GENESIS
        last = _last_line(fd, size)
        if not last.endswith(b"\n"):
            raise _Bad(0, "the log ends with an incomplete record")
        rec = self.parse(last[:-1])
        if rec["seq"] == 0:
            through = (rec["data"] or {}).get("through_seq")
            if not isinstance(through, int):
                raise _Bad(0, "the last record is a malformed checkpoint")
            tip = (through, rec["prev"])
        else:
            tip = (rec["seq"], line_hash(last[:-1]))
        if head is not None and head.seq == tip[0] and head.hash == tip[1]:
            return tip
        if head is not None and head.seq < tip[0]:
            # An append was interrupted before its head update: accept only if the whole log verifies.
            with open(self.path, "rb") as f:
                self._verify_stream(f, head)
            return tip
        if head is None:
            raise _Bad(0, f"{self.head_path.name} is missing (it is what proves the log was not cut)")
        raise _Bad(0, f"the log ends at record {tip[0]} but {self.head_path.name} says {head.seq}")

    def append(self, *, actor: str, action: str, target: str = "", result: str = "ok", detail: str = "",
               role: str | None = None, data: dict | None = None) -> dict:
        """Validate, chain, sign and durably append one record; mirror it to journald. Fail closed."""
        _check_fields(actor, action, target, result, detail, role)
        data = check_data(data)
        try:
            with self._lock(fcntl.LOCK_EX):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    size = os.fstat(fd).st_size
                    seq, prev = self._tip(fd, size)
                    fields = {"v": FORMAT_VERSION, "seq": seq + 1, "ts": clock.now(), "ts_rtc": clock.rtc_now(),
                              "actor": actor, "role": role, "action": action, "target": target,
                              "result": result, "detail": detail, "data": data, "prev": prev}
                    body = self._sign(fields)
                    try:
                        _write_all(fd, body + b"\n")
                        os.fsync(fd)
                    except OSError:
                        _truncate_quietly(fd, size)
                        raise
                    digest = line_hash(body)
                    self._write_head(seq + 1, digest)
                finally:
                    os.close(fd)
        except _Bad as bad:
            raise AuditUnavailable(f"{self.path} does not verify at its end: {bad.reason}") from None
        except OSError as exc:
            raise AuditUnavailable(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        rec = json.loads(body)
        _mirror(rec, digest)
        return rec

    # -- reading --

    def records(self, *, include_checkpoint: bool = False) -> Iterator[dict]:
        """Every record, oldest first (form and MAC checked per line; `verify` checks the chain)."""
        if not self.path.exists():
            return
        with self._lock(fcntl.LOCK_SH):
            f = open(self.path, "rb")
        with f:
            for n, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    return  # an append in progress
                try:
                    rec = self.parse(raw[:-1], n)
                except _Bad as bad:
                    raise AuditUnavailable(f"{self.path} line {bad.line}: {bad.reason}") from None
                if rec["seq"] == 0 and not include_checkpoint:
                    continue
                yield rec

    # -- retention --

    def rotate(self, keep_days: int = DEFAULT_AUDIT_RETENTION_DAYS, *, now: float | None = None) -> int:
        """Drop the records older than `keep_days` behind a signed checkpoint. Returns how many were dropped.

        The log must verify first: a rotation never launders a tampered log.
        """
        if not isinstance(keep_days, int) or keep_days < 1:
            raise ValueError("audit retention must be at least one day")
        cutoff = (clock.now() if now is None else now) - keep_days * 86400
        tmp = self.path.with_name(self.path.name + ".rotating")
        try:
            with self._lock(fcntl.LOCK_EX):
                if not self.path.exists():
                    return 0
                head = self._read_head()
                with open(self.path, "rb") as f:
                    self._verify_stream(f, head)  # the log is intact: lines below need no second check
                    f.seek(0)
                    first = json.loads(f.readline())
                    first_seq = first["data"]["first_seq"] if first["seq"] == 0 else 1
                    if first["seq"] != 0:
                        f.seek(0)
                    dropped, last_dropped, dropped_from = 0, b"", None
                    while True:
                        pos = f.tell()
                        raw = f.readline()
                        if not raw:
                            break
                        rec = json.loads(raw)
                        if rec["ts"] >= cutoff:
                            break
                        dropped, last_dropped = dropped + 1, raw[:-1]
                        dropped_from = rec["seq"] if dropped_from is None else dropped_from
                    if dropped == 0:
                        return 0
                    f.seek(pos)
                    checkpoint = {"v": FORMAT_VERSION, "seq": 0, "ts": clock.now(), "ts_rtc": clock.rtc_now(),
                                  "actor": "system", "role": None, "action": CHECKPOINT_ACTION, "target": "",
                                  "result": "ok", "detail": f"keep_days:{keep_days}",
                                  "data": {"through_seq": json.loads(last_dropped)["seq"], "dropped": dropped,
                                           "dropped_from_seq": dropped_from, "first_seq": first_seq,
                                           "cutoff": cutoff},
                                  "prev": line_hash(last_dropped)}
                    body = self._sign(checkpoint)
                    with open(tmp, "wb") as out:
                        os.chmod(tmp, 0o600)
                        out.write(body + b"\n")
                        shutil.copyfileobj(f, out, 1 << 20)
                        out.flush()
                        os.fsync(out.fileno())
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent)
                # The tip (last record, or the checkpoint standing in for it) is unchanged: so is the head.
        except _Bad as bad:
            raise AuditUnavailable(f"refusing to rotate {self.path}: line {bad.line}: {bad.reason}") from None
        except OSError as exc:
            raise AuditUnavailable(f"cannot rotate {self.path}: {exc.strerror or exc}") from exc
        _mirror(json.loads(body), line_hash(body))
        return dropped


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _truncate_quietly(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _last_line(fd: int, size: int, chunk: int = 8192) -> bytes:
    """The file's last line (with its newline if it has one), read backwards from the end."""
    buf = b""
    pos = size
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        cut = buf.rfind(b"\n", 0, len(buf) - 1)
        if cut >= 0:
            return buf[cut + 1:]
    return buf


# --- journald mirror -------------------------------------------------------------------------------

_UNSET = object()
_journal: Any = _UNSET


def _journal_module() -> Any:
    """systemd.journal when running under systemd with systemd-python installed, else None."""
    global _journal
    if _journal is _UNSET:
        _journal = None
        if os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"):
            try:
                from systemd import journal
            except ImportError:
                log.warning("systemd-python is not installed: audit records are mirrored to the logger only")
            else:
                _journal = journal
    return _journal


def _mirror(rec: dict, digest: str) -> None:
    message = (f"audit seq={rec['seq']} actor={rec['actor']} action={rec['action']} target={rec['target']} "
               f"result={rec['result']}")
    journal = _journal_module()
    if journal is not None:
        data = canonical(rec["data"]).decode() if rec["data"] is not None else ""
        if len(data) > 16384:
            data = json.dumps({"keys": sorted(rec["data"]), "note": "see the audit file"})
        try:
            journal.send(MESSAGE=message, PRIORITY=5 if rec["result"] != "ok" else 6,
                         SYSLOG_IDENTIFIER="samtalsstod-audit", AUDIT_SEQ=str(rec["seq"]), AUDIT_HASH=digest,
                         AUDIT_PREV=rec["prev"], AUDIT_TS=repr(rec["ts"]), AUDIT_TS_RTC=repr(rec["ts_rtc"]),
                         AUDIT_ACTOR=rec["actor"], AUDIT_ROLE=rec["role"] or "", AUDIT_ACTION=rec["action"],
                         AUDIT_TARGET=rec["target"], AUDIT_RESULT=rec["result"], AUDIT_DETAIL=rec["detail"],
                         AUDIT_DATA=data)
            return
        except OSError as exc:  # the file is the record of truth; the journal is a witness
            log.warning("cannot mirror audit record %s to journald: %s", rec["seq"], exc)
    log.info("%s detail=%s hash=%s", message, rec["detail"], digest)


# --- the API the rest of the code uses -----------------------------------------------------------

def sink(source: Any) -> AuditLog:
    """The audit log of a connection (from Appliance.connect()), an Appliance, or an AuditLog."""
    if isinstance(source, AuditLog):
        return source
    attached = getattr(source, "audit_sink", None)
    if isinstance(attached, AuditLog):
        return attached
    if hasattr(source, "cfg") and hasattr(source, "master_key"):
        return AuditLog.for_state(source.cfg, source.master_key)
    raise AuditUnavailable("this database connection has no audit log attached (open it with "
                           "Appliance.connect(), not db.connect())")


def record(conn: Any, actor: str, action: str, target: str = "", result: str = "ok", detail: str = "", *,
           role: str | None = None, data: dict | None = None) -> dict:
    """Append one audit record; raises AuditUnavailable (the caller's action must not happen) on failure.

    Call it inside the action's transaction, before the commit, so a refused record rolls the action back.
    """
    return sink(conn).append(actor=actor, action=action, target=target, result=result, detail=detail,
                             role=role, data=data)


def iter_entries(source: Any, *, action: str | Iterable[str] | None = None, target: str | None = None,
                 actor: str | None = None, result: str | None = None, since: float | None = None,
                 until: float | None = None) -> Iterator[dict]:
    """Records matching every given filter, oldest first (`since` inclusive, `until` exclusive)."""
    actions = {action} if isinstance(action, str) else set(action) if action is not None else None
    for rec in sink(source).records():
        if actions is not None and rec["action"] not in actions:
            continue
        if target is not None and rec["target"] != target:
            continue
        if actor is not None and rec["actor"] != actor:
            continue
        if result is not None and rec["result"] != result:
            continue
        if since is not None and rec["ts"] < since:
            continue
        if until is not None and rec["ts"] >= until:
            continue
        yield rec


def entries(source: Any, *, action: str | Iterable[str] | None = None, target: str | None = None,
            actor: str | None = None, result: str | None = None, since: float | None = None,
            until: float | None = None) -> list[dict]:
    return list(iter_entries(source, action=action, target=target, actor=actor, result=result, since=since,
                             until=until))


def verify(source: Any) -> VerifyResult:
    return sink(source).verify()


def rotate(source: Any, keep_days: int = DEFAULT_AUDIT_RETENTION_DAYS, *, now: float | None = None) -> int:
    """Called by the purge: drop records older than `keep_days` behind a signed checkpoint."""
    return sink(source).rotate(keep_days, now=now)


CSV_COLUMNS = ("seq", "ts", "ts_rtc", "actor", "role", "action", "target", "result", "detail", "data", "prev",
               "mac")


def to_csv_row(rec: dict) -> list[str]:
    out = []
    for col in CSV_COLUMNS:
        value = rec[col]
        if col == "data":
            out.append(canonical(value).decode() if value is not None else "")
        else:
            out.append("" if value is None else str(value))
    return out


def csv_text(records: Iterable[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for rec in records:
        w.writerow(to_csv_row(rec))
    return buf.getvalue()
