"""The tamper-evident audit log: chain, MACs, head, rotation, fail-closed writes, concurrency, CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.errors import KeyError_
from appliance.platform import audit, db, keys
from appliance.platform.audit import AuditLog, AuditUnavailable
from appliance.recordings import recordings
from appliance.users import accounts
from tests.conftest import ROOT

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _fill(log: AuditLog, n: int = 20) -> None:
    for i in range(n):
        log.append(actor=f"user:{i % 3 + 1}", action="recording.read", target=f"recording:r{i}",
                   result="denied" if i % 5 == 0 else "ok", role="caseworker" if i % 2 else None,
                   data={"count": i} if i % 4 == 0 else None)


@pytest.fixture
def log(tmp_path) -> AuditLog:
    lg = AuditLog(tmp_path / "audit" / "audit.jsonl", KEY)
    _fill(lg)
    assert lg.verify().ok
    return lg


def _lines(lg: AuditLog) -> list[bytes]:
    return lg.path.read_bytes().splitlines(keepends=True)


def _assert_fails(lg: AuditLog, what: str) -> None:
    result = lg.verify()
    assert not result.ok, f"not detected: {what}"
    assert result.reason


# --- format and chain ------------------------------------------------------------------------------

def test_records_are_chained_and_signed(log):
    lines = _lines(log)
    recs = [json.loads(line) for line in lines]
    assert [r["seq"] for r in recs] == list(range(1, 21))
    assert recs[0]["prev"] == audit.GENESIS
    for before, line, rec in zip(lines, lines[1:], recs[1:], strict=False):
        assert rec["prev"] == audit.line_hash(before.rstrip(b"\n"))
        assert line == audit.canonical(rec) + b"\n"  # canonical, ASCII, one line
    assert set(recs[0]) == {"v", "seq", "ts", "ts_rtc", "actor", "role", "action", "target", "result",
                            "detail", "data", "prev", "mac"}
    head = json.loads(log.head_path.read_text())
    assert head["seq"] == 20 and head["hash"] == audit.line_hash(lines[-1].rstrip(b"\n"))
    assert str(log.verify()) == "OK: 20 records, chain intact"


def test_timestamps_come_from_the_clock_module(tmp_path, monkeypatch):
    from appliance import clock

    monkeypatch.setattr(clock, "now", lambda: 1234.5)
    monkeypatch.setattr(clock, "rtc_now", lambda *a, **k: 1200.0)
    rec = AuditLog(tmp_path / "a.jsonl", KEY).append(actor="cli", action="x.y")
    assert (rec["ts"], rec["ts_rtc"]) == (1234.5, 1200.0)


def test_another_key_does_not_verify(log):
    other = AuditLog(log.path, OTHER_KEY)
    result = other.verify()
    assert not result.ok and ("MAC" in result.reason or "key" in result.reason)
    with pytest.raises(AuditUnavailable):
        other.append(actor="cli", action="x.y")  # nor can it extend the chain


def test_master_key_separation(app_ctx, conn):
    accounts.create_user(conn, "anna", ["caseworker"])
    assert audit.verify(app_ctx).ok
    other = AuditLog(app_ctx.cfg.paths.state_dir / "audit" / "audit.jsonl", keys.new_key())
    assert not other.verify().ok
    with pytest.raises(KeyError_):  # another master key opens no subkey of this box
        AuditLog.for_state(app_ctx.cfg, keys.new_key())
    # The audit key is a subkey of the master key, not the master key or another subkey.
    cfg, master = app_ctx.cfg, app_ctx.master_key
    assert audit.audit_key(cfg, master) not in (master, audit.pseudonym_key(cfg, master))


# --- 100 % detection of changes --------------------------------------------------------------------

def test_every_single_bit_flip_is_detected(log):
    original = log.path.read_bytes()
    assert len(original) > 2000
    for pos in range(len(original)):
        for bit in (pos % 7, 7):  # a bit that keeps the byte ASCII, and the high bit
            mutated = bytearray(original)
            mutated[pos] ^= 1 << bit
            log.path.write_bytes(bytes(mutated))
            _assert_fails(log, f"bit {bit} of byte {pos}")
    log.path.write_bytes(original)
    assert log.verify().ok


def test_every_head_byte_change_is_detected(log):
    original = log.head_path.read_bytes()
    for pos in range(len(original)):
        mutated = bytearray(original)
        mutated[pos] ^= 1 << (pos % 7)
        log.head_path.write_bytes(bytes(mutated))
        _assert_fails(log, f"head byte {pos}")
    log.head_path.write_bytes(original)
    assert log.verify().ok


def test_deletion_reordering_duplication_detected(log):
    lines = _lines(log)
    cases = {}
    for i in range(len(lines)):
        cases[f"delete line {i + 1}"] = lines[:i] + lines[i + 1:]
        cases[f"duplicate line {i + 1}"] = lines[:i + 1] + [lines[i]] + lines[i + 1:]
    for i in range(len(lines) - 1):
        cases[f"swap lines {i + 1},{i + 2}"] = lines[:i] + [lines[i + 1], lines[i]] + lines[i + 2:]
    cases["reverse"] = lines[::-1]
    twin = AuditLog(log.path.with_name("twin.jsonl"), KEY)  # same key, same shape: MACs valid, chain not
    _fill(twin)
    foreign = _lines(twin)
    for i in range(len(lines)):
        cases[f"line {i + 1} replaced by a signed line of another log"] = lines[:i] + [foreign[i]] + lines[i + 1:]
    cases["signed line of another log inserted"] = lines[:5] + [foreign[5]] + lines[5:]
    for what, content in cases.items():
        log.path.write_bytes(b"".join(content))
        _assert_fails(log, what)


def test_truncation_detected_at_every_boundary_and_mid_line(log):
    data = log.path.read_bytes()
    boundaries = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    for cut in boundaries[:-1]:  # every line boundary short of the end
        log.path.write_bytes(data[:cut])
        result = log.verify()
        assert not result.ok, f"truncation to {cut} bytes not detected"
    for start, end in zip(boundaries, boundaries[1:], strict=False):
        for cut in (start + 1, (start + end) // 2, end - 1):  # inside each line, incl. just the newline gone
            log.path.write_bytes(data[:cut])
            _assert_fails(log, f"cut at byte {cut}")


def test_truncation_with_a_forged_head_is_detected(log, tmp_path):
    """An attacker cuts the log and writes a head for the new end, but cannot MAC it with our key."""
    lines = _lines(log)
    log.path.write_bytes(b"".join(lines[:15]))
    forged = AuditLog(log.path, OTHER_KEY)
    forged._write_head(15, audit.line_hash(lines[14].rstrip(b"\n")))  # MAC'ed with the wrong key
    result = log.verify()
    assert not result.ok and "head" in result.reason
    # Unsigned head with the right seq/hash (no MAC at all, or a copied MAC of another head):
    head = json.loads(log.head_path.read_text())
    log.head_path.write_text(json.dumps({"seq": 15, "hash": head["hash"], "mac": "0" * 64}))
    _assert_fails(log, "head with a made-up MAC")
    log.head_path.unlink()
    _assert_fails(log, "head deleted after truncation")


def test_truncated_log_refuses_new_records(log):
    lines = _lines(log)
    log.path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(AuditUnavailable, match="verify"):
        log.append(actor="cli", action="x.y")


def test_interrupted_append_is_accepted_and_repaired(log):
    """A crash between the append and the head update leaves the file one valid record ahead."""
    head = log.head_path.read_bytes()
    log.append(actor="cli", action="x.y")
    log.head_path.write_bytes(head)  # as if the head write was lost
    result = log.verify()
    assert result.ok and "behind" in result.note
    log.append(actor="cli", action="x.z")
    assert log.verify().ok and not log.verify().note
    assert json.loads(log.head_path.read_text())["seq"] == 22


# --- personal data cannot go in ----------------------------------------------------------------------

def _valid_personnummer() -> str:
    base = "850101123"
    for check in range(10):
        if audit._looks_like_personnummer(base + str(check)):
            return f"19{base[:6]}-{base[6:]}{check}"
    raise AssertionError


@pytest.mark.parametrize("kwargs", [
    {"actor": "Anna Andersson"},
    {"actor": ""},
    {"action": "Läste journalen"},
    {"target": "recording:abc def"},
    {"target": "klient:" + _valid_personnummer()},
    {"target": _valid_personnummer().replace("-", "")},
    {"detail": "samtal om ekonomi"},
    {"detail": "x" * 81},
    {"detail": "anna@example.se"},
    {"result": "maybe"},
    {"role": "Chef"},
    {"data": {"note": "pappan har skulder"}},
    {"data": {"nested": {"a": 1}}},
    {"data": {"ids": ["ok", "inte ok"]}},
    {"data": {"Bad Key": 1}},
    {"data": {"f": float("nan")}},
    {"data": {"b": b"bytes"}},
    {"data": {"ids": ["x"] * (audit.MAX_LIST_ITEMS + 1)}},
    {"data": "free text"},
])
def test_no_free_text_or_personal_data(tmp_path, kwargs):
    lg = AuditLog(tmp_path / "a.jsonl", KEY)
    args = {"actor": "user:1", "action": "recording.read", "target": "recording:abc", **kwargs}
    with pytest.raises(ValueError):
        lg.append(**args)
    assert not lg.path.exists() or lg.path.stat().st_size == 0


def test_structured_receipts_and_pseudonyms(tmp_path):
    lg = AuditLog(tmp_path / "a.jsonl", KEY)
    pkey = keys.new_key()
    pnr = _valid_personnummer()
    client = audit.pseudonym(pkey, pnr)
    assert client.startswith("h:") and len(client) == 34 and pnr[2:8] not in client
    assert audit.pseudonym(pkey, pnr) == client and audit.pseudonym(keys.new_key(), pnr) != client
    data = {"deleted_recordings": 2, "recording_ids": ["a1", "b2"], "client": client, "rtc": None,
            "skew": 1.5, "dry_run": False, "old_key_fingerprint": "0123456789abcdef"}
    rec = lg.append(actor="service:purge", action="purge.receipt", target="generation:2", data=data)
    assert rec["data"] == data and lg.verify().ok
    assert audit.entries(lg, action="purge.receipt")[0]["data"]["recording_ids"] == ["a1", "b2"]


def test_large_id_lists_fit(tmp_path):
    lg = AuditLog(tmp_path / "a.jsonl", KEY)
    ids = [f"{i:024x}" for i in range(20_000)]
    lg.append(actor="service:purge", action="purge.delete", target="recordings:20000", data={"recording_ids": ids})
    lg.append(actor="cli", action="x.y")  # the tail reader walks back over the long line
    assert lg.verify().ok and audit.entries(lg)[0]["data"]["recording_ids"] == ids


# --- concurrency ---------------------------------------------------------------------------------------

_WRITER = """
import sys
from pathlib import Path
from appliance.platform.audit import AuditLog
log = AuditLog(Path(sys.argv[1]), bytes(range(32)))
for i in range(int(sys.argv[3])):
    log.append(actor=sys.argv[2], action="test.append", target=f"n:{i}")
"""


def test_concurrent_processes_produce_one_valid_chain(tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), actor, "200"], cwd=ROOT)
             for actor in ("proc:a", "proc:b")]
    assert [p.wait(120) for p in procs] == [0, 0]
    lg = AuditLog(path, KEY)
    assert str(lg.verify()) == "OK: 400 records, chain intact"
    recs = audit.entries(lg)
    assert [r["seq"] for r in recs] == list(range(1, 401))
    for actor in ("proc:a", "proc:b"):
        assert [r["target"] for r in recs if r["actor"] == actor] == [f"n:{i}" for i in range(200)]


# --- fail closed -------------------------------------------------------------------------------------------

def _break_log(app_ctx, how: str) -> None:
    lg = audit.sink(app_ctx)
    if how == "directory":
        lg.path.unlink()
        lg.path.mkdir()
    elif how == "disk-full":
        lg.path.unlink()
        lg.path.symlink_to("/dev/full")
        lg.head_path.unlink()
    elif how == "tampered":
        lines = _lines(lg)
        lg.path.write_bytes(b"".join(lines[:-1]))


@pytest.mark.parametrize("how", ["directory", "disk-full", "tampered"])
def test_unwritable_log_refuses_the_action_and_leaves_no_row(app_ctx, conn, sv_clip, how):
    writer, _ = accounts.create_user(conn, "anna", ["caseworker"], password="rätt-häst-batteri-häftapparat")
    _break_log(app_ctx, how)
    users_before = conn.execute("SELECT count(*) FROM users").fetchone()[0]

    with pytest.raises(AuditUnavailable, match="Granskningsloggen"):
        accounts.create_user(conn, "bo", ["caseworker"])
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == users_before

    with pytest.raises(AuditUnavailable):
        accounts.create_session(conn, writer)  # sign-in
    assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0

    with pytest.raises(AuditUnavailable):
        recordings.create_from_upload(app_ctx, conn, writer, title="t", filename="sv.wav",
                                      data=sv_clip.read_bytes())
    assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
    assert not any(app_ctx.blobs.root.iterdir())


def test_connection_without_a_sink_raises(app_ctx):
    raw = db.connect(app_ctx.db_file, app_ctx.current_db().key)
    try:
        with pytest.raises(AuditUnavailable, match="no audit log attached"):
            audit.record(raw, "cli", "x.y")
    finally:
        raw.close()


def test_db_audit_table_is_gone_and_records_go_to_the_file(conn):
    accounts.create_user(conn, "anna", ["caseworker"])
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit'").fetchone()[0] == 0
    assert [e["target"] for e in audit.entries(conn, action="user.create")] == ["user:1"]


# --- journald mirror ---------------------------------------------------------------------------------------

def test_records_are_mirrored_to_journald(tmp_path, monkeypatch):
    sent = []

    class FakeJournal:
        @staticmethod
        def send(**fields):
            sent.append(fields)

    monkeypatch.setattr(audit, "_journal", FakeJournal)
    lg = AuditLog(tmp_path / "a.jsonl", KEY)
    rec = lg.append(actor="user:3", action="recording.read", target="recording:abc", role="caseworker")
    assert len(sent) == 1
    f = sent[0]
    assert (f["AUDIT_ACTOR"], f["AUDIT_ACTION"], f["AUDIT_TARGET"], f["AUDIT_RESULT"], f["AUDIT_ROLE"]) == (
        "user:3", "recording.read", "recording:abc", "ok", "caseworker")
    assert f["AUDIT_SEQ"] == "1" and f["AUDIT_HASH"] == audit.line_hash(audit.canonical(rec))
    assert "recording.read" in f["MESSAGE"]


def test_outside_systemd_the_logger_gets_the_record(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(audit, "_journal", None)
    with caplog.at_level("INFO", logger="appliance.platform.audit"):
        AuditLog(tmp_path / "a.jsonl", KEY).append(actor="cli", action="user.create", target="user:9")
    assert "action=user.create" in caplog.text and "target=user:9" in caplog.text


# --- retention ---------------------------------------------------------------------------------------------

DAY = 86400.0


def _dated_log(tmp_path, monkeypatch, days_ago: list[float], now: float = 2_000_000_000.0) -> AuditLog:
    from appliance import clock

    lg = AuditLog(tmp_path / "audit" / "audit.jsonl", KEY)
    for i, ago in enumerate(days_ago):
        monkeypatch.setattr(clock, "now", lambda ago=ago: now - ago * DAY)
        lg.append(actor="cli", action="test.old", target=f"n:{i}")
    monkeypatch.setattr(clock, "now", lambda: now)
    return lg


def test_rotation_keeps_verify_ok(tmp_path, monkeypatch):
    lg = _dated_log(tmp_path, monkeypatch, [900, 800, 740, 731, 700, 10, 1])
    assert lg.rotate(730) == 4
    assert lg.verify().ok and "records up to 4 dropped by retention" in str(lg.verify())
    first = json.loads(_lines(lg)[0])
    assert first["seq"] == 0 and first["action"] == audit.CHECKPOINT_ACTION
    assert first["data"]["through_seq"] == 4 and first["data"]["dropped"] == 4
    assert [r["target"] for r in audit.entries(lg)] == ["n:4", "n:5", "n:6"]
    assert lg.rotate(730) == 0  # nothing more to drop
    lg.append(actor="cli", action="test.new")
    assert [r["seq"] for r in audit.entries(lg)] == [5, 6, 7, 8]
    assert lg.rotate(5) == 2  # a second rotation replaces the checkpoint
    assert lg.verify().ok and json.loads(_lines(lg)[0])["data"]["through_seq"] == 6


def test_rotation_of_everything_keeps_the_chain(tmp_path, monkeypatch):
    lg = _dated_log(tmp_path, monkeypatch, [900, 800])
    assert lg.rotate() == 2
    assert lg.verify().ok and audit.entries(lg) == []
    lg.append(actor="cli", action="test.new")
    assert lg.verify().ok and [r["seq"] for r in audit.entries(lg)] == [3]


def test_tampering_after_rotation_is_detected(tmp_path, monkeypatch):
    lg = _dated_log(tmp_path, monkeypatch, [900, 800, 10, 5, 1])
    lg.rotate(730)
    lines = _lines(lg)
    for content in (lines[1:], lines[:1] + lines[2:], [lines[0]], lines[:1] + lines[2:3] + lines[1:2] + lines[3:]):
        lg.path.write_bytes(b"".join(content))
        _assert_fails(lg, "change after rotation")
    # An old checkpoint cannot be reused for a different cut: a forged one needs the key.
    lg.path.write_bytes(b"".join(lines))
    assert lg.verify().ok


def test_rotation_refuses_a_tampered_log(tmp_path, monkeypatch):
    lg = _dated_log(tmp_path, monkeypatch, [900, 800, 10])
    lines = _lines(lg)
    lg.path.write_bytes(lines[0] + lines[2])  # the evidence of deleting line 2 must not be rotated away
    with pytest.raises(AuditUnavailable, match="refusing to rotate"):
        lg.rotate(730)


# --- CLI ---------------------------------------------------------------------------------------------------

def _cli(monkeypatch, state_env, *argv: str) -> tuple[int, str, str]:
    from provisioning.cli import main

    for k, v in state_env.items():
        monkeypatch.setenv(k, v)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    rc = main(list(argv))
    monkeypatch.undo()
    return rc, out.getvalue(), err.getvalue()


def test_cli_verify_and_export(app_ctx, conn, state_env, monkeypatch):
    for name in ("anna", "bo", "cecilia"):
        accounts.create_user(conn, name, ["caseworker"])
    rc, out, _ = _cli(monkeypatch, state_env, "audit", "verify")
    assert rc == 0 and out.strip() == "OK: 3 records, chain intact"

    rc, out, _ = _cli(monkeypatch, state_env, "audit", "export", "--since", "2000-01-01", "--until", "2999-12-31")
    lines = out.splitlines()
    assert rc == 0 and [json.loads(x)["target"] for x in lines] == ["user:1", "user:2", "user:3"]
    assert (lines[0] + "\n").encode() == _lines(audit.sink(app_ctx))[0]  # the signed line, byte for byte
    rc, out, _ = _cli(monkeypatch, state_env, "audit", "export", "--format", "csv", "--until", "2000-01-01")
    assert rc == 0 and list(csv.reader(io.StringIO(out))) == [list(audit.CSV_COLUMNS)]
    rc, out, _ = _cli(monkeypatch, state_env, "audit", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["action"] for r in rows] == ["user.create"] * 3 and rows[0]["detail"] == "roles:caseworker"
    rc, _, err = _cli(monkeypatch, state_env, "audit", "export", "--since", "igår")
    assert rc == 2 and "ISO 8601" in err


def test_cli_verify_names_the_first_bad_line(app_ctx, conn, state_env, monkeypatch):
    for name in ("anna", "bo", "cecilia"):
        accounts.create_user(conn, name, ["caseworker"])
    lg = audit.sink(app_ctx)
    lines = _lines(lg)
    lg.path.write_bytes(lines[0] + lines[1].replace(b"user:2", b"user:7") + lines[2])
    rc, out, err = _cli(monkeypatch, state_env, "audit", "verify")
    assert rc == 1 and err.startswith("FAIL: line 2:") and "MAC" in err
    rc, out, err = _cli(monkeypatch, state_env, "audit", "export")
    assert rc == 1 and out == "" and "nothing exported" in err
    lg.path.write_bytes(lines[0] + lines[1])
    rc, _, err = _cli(monkeypatch, state_env, "audit", "verify")
    assert rc == 1 and "line 3:" in err and "truncated" in err


def test_cli_verify_without_a_log_fails(app_ctx, state_env, monkeypatch):
    rc, _, err = _cli(monkeypatch, state_env, "audit", "verify")
    assert rc == 1 and "no audit log" in err


def test_cli_is_a_real_command(app_ctx, conn, state_env):
    accounts.create_user(conn, "anna", ["caseworker"])
    r = subprocess.run([str(Path(sys.executable).with_name("appliance")), "audit", "verify"], cwd=ROOT,
                       env={**os.environ, **state_env}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "chain intact" in r.stdout, r.stderr


def test_cli_rotate(app_ctx, conn, state_env, monkeypatch):
    accounts.create_user(conn, "anna", ["caseworker"])
    rc, out, _ = _cli(monkeypatch, state_env, "audit", "rotate")
    assert rc == 0 and "Dropped 0" in out
    rc, _, err = _cli(monkeypatch, state_env, "audit", "rotate", "--keep-days", "0")
    assert rc == 2 and "at least 1" in err
