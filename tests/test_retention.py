"""Retention you can prove: schedule, both clocks, crypto-shredding purge, kill safety, units."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import time
from contextlib import closing
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.clock import Reading
from appliance.config import load_config
from appliance.errors import KeyError_, NotFound
from appliance.platform import db, keys, retention
from appliance.platform.context import init_state, open_appliance
from appliance.recordings import recordings
from appliance.users import accounts
from tests.conftest import make_tone

STHLM = ZoneInfo("Europe/Stockholm")
ROOT = Path(__file__).resolve().parent.parent


def _last_purged_monday() -> dt.date:
    """The Monday of the week whose Friday 18:00 (Stockholm) passed most recently.

    Reads check the real clock, so the week is chosen relative to today: what it creates on Monday is past
    its deadline now (hidden at read time) and what it creates on Thursday is not (its deadline is the
    coming Friday). A fixed week made these tests fail once it was more than a week old.
    """
    now = dt.datetime.now(STHLM)
    friday = now.date() - dt.timedelta(days=(now.weekday() - 4) % 7)
    if dt.datetime.combine(friday, dt.time(18), STHLM) > now:
        friday -= dt.timedelta(days=7)
    return friday - dt.timedelta(days=4)


MONDAY = _last_purged_monday()


def at(day: int, hour: int, minute: int = 0) -> float:
    """A time in the week of MONDAY (Stockholm): day 0 = Monday."""
    return dt.datetime.combine(MONDAY + dt.timedelta(days=day), dt.time(hour, minute), STHLM).timestamp()


MON_9, THU_10, FRI_18 = at(0, 9), at(3, 10), at(4, 18)
NEXT_FRI_18 = at(11, 18)


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    make_tone(path, 0.5)
    return path.read_bytes()


@pytest.fixture
def env(tmp_path):
    rtc = tmp_path / "rtc"
    return {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"), "APPLIANCE_RETENTION__RTC_PATH": str(rtc)}


@pytest.fixture
def app(env):
    return init_state(load_config(environ=env))


@pytest.fixture
def user(app):
    with closing(app.connect()) as conn:
        return accounts.create_user(conn, "anna", ["caseworker"])[0]


def add(app, user, tone: bytes, created: float, text: str, created_rtc: float | None = None) -> str:
    """A recording created at `created` with one transcript segment saying `text`."""
    with closing(app.connect()) as conn:
        rid = recordings.create_from_upload(app, conn, user, title="t", filename="t.wav", data=tone)
        conn.execute("UPDATE recordings SET created_at = ?, created_at_rtc = ?, status = 'ready' WHERE id = ?",
                     (created, created_rtc if created_rtc is not None else created, rid))
        conn.execute('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, 0, 0, 0.5, ?)',
                     (rid, text))
    return rid


def ids(app) -> set[str]:
    with closing(app.connect()) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM recordings")}


# --- schedule ------------------------------------------------------------------------------------

def test_deadlines_follow_the_friday_rule(app):
    r = app.cfg.retention
    assert retention.deadline(r, MON_9) == FRI_18
    assert retention.deadline(r, THU_10) == NEXT_FRI_18
    assert retention.deadline(r, at(2, 18)) == FRI_18  # exactly 48 h before the purge
    assert retention.deadline(r, at(2, 18, 1)) == NEXT_FRI_18
    # Across the end of daylight saving time the purge stays at 18:00 local.
    october = dt.datetime(2026, 10, 26, 9, tzinfo=STHLM).timestamp()
    assert dt.datetime.fromtimestamp(retention.deadline(r, october), STHLM).hour == 18


def test_monday_purged_friday_thursday_survives_until_next_friday(app, user, tone):
    monday = add(app, user, tone, MON_9, "måndag")
    thursday = add(app, user, tone, THU_10, "torsdag")
    report = retention.purge(app, reading=Reading(FRI_18, FRI_18))
    assert report.expired == [monday] and ids(app) == {thursday}
    retention.purge(app, reading=Reading(NEXT_FRI_18, NEXT_FRI_18))
    assert ids(app) == set()
    assert not list(app.blobs.root.glob(f"{monday}*")) and not list(app.blobs.root.glob(f"{thursday}*"))


def test_setting_the_system_clock_back_does_not_save_old_material(app, user, tone):
    monday = add(app, user, tone, MON_9, "måndag")
    # Someone sets the system clock back to Tuesday; the hardware clock runs on to Friday evening.
    reading = Reading(system=at(1, 9), rtc=FRI_18)
    assert reading.disagrees(app.cfg.retention.clock_tolerance_seconds)
    report = retention.purge(app, reading=reading)
    assert report.clock_alarm and report.expired == [monday] and ids(app) == set()


def test_rtc_behind_system_still_purges(app, user, tone):
    monday = add(app, user, tone, MON_9, "måndag", created_rtc=MON_9 - 3 * 86400)
    report = retention.purge(app, reading=Reading(system=FRI_18, rtc=FRI_18 - 86400))
    assert report.expired == [monday]


def test_dry_run_changes_nothing(app, user, tone):
    monday = add(app, user, tone, MON_9, "måndag")
    generation = app.current_db().generation
    report = retention.purge(app, dry_run=True, reading=Reading(FRI_18, FRI_18))
    assert report.expired == [monday] and ids(app) == {monday} and app.current_db().generation == generation


def test_past_deadline_is_hidden_before_the_purge(app, user, tone, env):
    now = time.time()
    old = add(app, user, tone, now - 10 * 86400, "gammal")
    new = add(app, user, tone, now - 60, "ny")
    with closing(app.connect()) as conn:
        assert [r.id for r in recordings.list_for_user(conn, user)] == [new]
        assert [s["id"] for s in recordings.statuses_for_user(conn, user)] == [new]
        with pytest.raises(NotFound):
            recordings.get_recording(conn, user, old)
        with pytest.raises(NotFound):
            recordings.open_audio(app, conn, user, old)
        # The hardware clock alone can hide material: it says a fortnight has passed.
        Path(env["APPLIANCE_RETENTION__RTC_PATH"]).write_text(str(int(now + 14 * 86400)))
        with pytest.raises(NotFound):
            recordings.get_recording(conn, user, new)


# --- crypto-shredding ----------------------------------------------------------------------------

def test_purge_crypto_shreds_the_old_database(app, user, tone, tmp_path):
    purged = add(app, user, tone, MON_9, "KANARIEFÅGEL hemlig uppgift")
    kept = add(app, user, tone, THU_10, "BEHÅLLEN text")
    old_file = app.db_file
    with closing(app.connect()) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "copy.db"
    shutil.copy(old_file, copy)
    key_copy = keys.db_key_path(app.cfg).read_bytes()
    old_key = app.current_db().key

    report = retention.purge(app, reading=Reading(FRI_18, FRI_18))
    assert report.expired == [purged] and report.old_key_fingerprint == keys.fingerprint(old_key)
    assert not old_file.exists() and not list(old_file.parent.glob(old_file.name + "-*"))
    assert keys.db_key_path(app.cfg).read_bytes() != key_copy
    new = app.current_db()
    assert new.key != old_key and new.generation == report.new_generation

    # The current key cannot open the old copy (the old key existed only in the replaced key file).
    with pytest.raises(KeyError_):
        db.connect(copy, new.key)
    # The copy did hold the canary (sanity: the test would catch a purge that never deleted it).
    with closing(db.connect(copy, old_key)) as old:
        assert old.execute("SELECT count(*) FROM segments WHERE text LIKE 'KANARIE%'").fetchone()[0] == 1

    with closing(app.connect()) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = "\n".join(str(tuple(row)) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))  # noqa: S608
        assert "KANARIEFÅGEL" not in dump and "BEHÅLLEN" in dump
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # no old pages carried over
        assert b"KANARIE" not in app.db_file.read_bytes()
        # The retained recording still plays, byte for byte.
        stream = recordings.open_audio(app, conn, user, kept)
        assert b"".join(stream.chunks) == tone
        assert [s.text for s in recordings.transcript_segments(conn, kept)] == ["BEHÅLLEN text"]


def test_purge_twice_is_safe(app, user, tone):
    kept = add(app, user, tone, THU_10, "kvar")
    retention.purge(app, reading=Reading(FRI_18, FRI_18))
    retention.purge(app, reading=Reading(FRI_18 + 60, FRI_18 + 60))
    assert ids(app) == {kept} and app.current_db().generation == 3
    assert sorted(p.name for p in app.cfg.paths.state_dir.glob("appliance-*.db")) == ["appliance-3.db"]


def _purge_in_child(env: dict[str, str], when: float) -> None:
    os.environ.update(env)
    retention.purge(open_appliance(load_config(environ=env)), reading=Reading(when, when))


def test_kill_minus_9_at_random_points_loses_nothing_retained(app, user, tone, env):
    """30+ purges killed at random moments: afterwards no expired item is readable, no retained one damaged."""
    rng = random.Random(20261123)  # reproducible kill points
    kept = {add(app, user, tone, THU_10 + i, f"behåll {i}") for i in range(40)}
    ctx = multiprocessing.get_context("fork")
    # How long one complete purge takes here, to spread the kill points over all of it.
    t0 = time.monotonic()
    child = ctx.Process(target=_purge_in_child, args=(env, FRI_18))
    child.start()
    child.join()
    span = time.monotonic() - t0
    killed = 0
    for i in range(32):
        expired = add(app, user, tone, MON_9 + i, f"radera {i}")
        child = ctx.Process(target=_purge_in_child, args=(env, FRI_18))
        child.start()
        time.sleep(rng.uniform(0, span * 1.2))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.join()
        # The database opens, every retained recording is intact and plays; the expired one is not readable.
        with closing(app.connect()) as conn:
            present = {r[0] for r in conn.execute("SELECT id FROM recordings")}
            assert kept <= present
            for rid in kept:
                assert b"".join(recordings.open_audio(app, conn, user, rid).chunks) == tone
            assert conn.execute("SELECT count(*) FROM segments").fetchone()[0] >= len(kept)
            with pytest.raises(NotFound):  # hidden by its deadline even if the rows survived the kill
                recordings.get_recording(conn, user, expired)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert killed >= 10, f"only {killed} runs were interrupted; the kill points missed the purge"
    retention.purge(app, reading=Reading(FRI_18, FRI_18))  # a complete run finishes what the kills left
    assert ids(app) == kept
    assert len(list(app.cfg.paths.state_dir.glob("appliance-*.db"))) == 1
    assert {p.name.split(".")[0] for p in app.blobs.root.iterdir()} == kept


# --- deletion by the caseworker, doctor, units ---------------------------------------------------

def test_caseworker_deletes_now_and_others_cannot(app, user, tone):
    rid = add(app, user, tone, time.time(), "text")
    with closing(app.connect()) as conn:
        other, _ = accounts.create_user(conn, "berit", ["caseworker"])
        with pytest.raises(NotFound):
            recordings.delete_recording(app, conn, other, rid)
        recordings.delete_recording(app, conn, user, rid)
        assert conn.execute("SELECT count(*) FROM segments").fetchone()[0] == 0
    assert ids(app) == set() and not app.blobs.path(rid).exists()


def test_purge_overdue_after_seven_days(app, user, tone):
    with closing(app.connect()) as conn:
        assert not retention.purge_overdue(app.cfg, conn)
        assert retention.purge_overdue(app.cfg, conn, now=time.time() + 8 * 86400)
    retention.purge(app, reading=Reading(time.time(), None))
    with closing(app.connect()) as conn:
        assert not retention.purge_overdue(app.cfg, conn, now=time.time() + 6 * 86400)
        assert retention.purge_overdue(app.cfg, conn, now=time.time() + 8 * 86400)


def test_units_verify_and_calendar(tmp_path):
    from provisioning.units import write

    cfg = load_config(environ={"APPLIANCE_RETENTION__PURGE_AT": "Sat 07:30"})
    written = write(cfg, tmp_path, prefix=ROOT)
    timer = (tmp_path / "appliance-purge.timer").read_text()
    assert "OnCalendar=Sat *-*-* 07:30:00 Europe/Stockholm" in timer
    for line in ("Persistent=true", "WakeSystem=true", "AccuracySec=1s"):
        assert line in timer
    out = subprocess.run(["systemd-analyze", "verify", *map(str, written)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cal = subprocess.run(["systemd-analyze", "calendar", "Fri *-*-* 18:00:00 Europe/Stockholm"],
                         capture_output=True, text=True)
    assert cal.returncode == 0 and "Next elapse" in cal.stdout
    # The committed default timer is what the default config renders.
    default = write(load_config(environ={}), tmp_path / "default", prefix=Path("/opt/samtalsstod"))
    for path in default:
        if path.suffix == ".timer":
            assert path.read_text() == (ROOT / "services" / "units" / path.name).read_text()


def test_audit_log_outlives_the_content_purge_and_rotates_after_its_own_period(app, user, tone):
    from appliance.platform import audit

    add(app, user, tone, THU_10, "kvar")
    report = retention.purge(app, reading=Reading(FRI_18, FRI_18))
    assert report.audit_records_rotated == 0  # two years' retention: nothing is old enough yet
    with closing(app.connect()) as conn:
        assert audit.entries(conn, action="recording.create")  # the content purge did not touch the log
    later = FRI_18 + 800 * 86400
    report = retention.purge(app, reading=Reading(later, later))
    assert report.audit_records_rotated > 0
    with closing(app.connect()) as conn:
        assert not audit.entries(conn, action="recording.create")
    assert audit.verify(app).ok


def test_content_access_fails_closed_on_a_connection_without_retention_rules(app, user, tone):
    rid = add(app, user, tone, time.time(), "text")
    current = app.current_db()
    with closing(db.connect(keys.db_path(app.cfg, current.generation), current.key)) as raw:
        with pytest.raises(RuntimeError, match="retention rules unknown"):
            recordings.get_recording(raw, user, rid)
        with pytest.raises(RuntimeError, match="retention rules unknown"):
            recordings.visible_rows(raw, user)


def test_one_creation_time_cut_off_agrees_with_every_deadline():
    """search filters by `created_at > hidden_at_or_before(now)`: the same answer as the per-row deadline,
    at random times across DST changes and exactly at the cut-off."""
    rcfg = load_config(environ={}).retention
    rng = random.Random(7)
    for _ in range(3000):
        now = 1.7e9 + rng.uniform(0, 3e7)
        cut = retention.hidden_at_or_before(rcfg, now)
        for created in (now - rng.uniform(0, 10 * 86400), cut, cut - 0.001, cut + 0.001):
            assert (now >= retention.deadline(rcfg, created)) == (created <= cut)
