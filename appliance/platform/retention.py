"""Retention: the weekly schedule, what is past its deadline, and the crypto-shredding purge.

Rules (DESIGN.md, "Crypto-shredding purge" and "Time you can trust"):
- A recording's *deadline* is the first scheduled purge at which it is older than the retention age
  (default: the first Friday 18:00 at least 48 h after creation). Past its deadline it is hidden from
  every page and API, even if the purge has not run.
- The purge deletes every recording older than the retention age, then re-encrypts the surviving
  database into a new generation under a new key and destroys the old key and files, so deleted rows,
  WAL frames and free pages of the old file become undecryptable.
- Both clocks count: material is old if the system clock *or* the hardware clock says so.

The purge is idempotent and safe to kill at any point: the wrapped-key file is the single commit
point of the re-key, and every run first finishes what an interrupted run left (stale database
generations, orphaned blobs).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from contextlib import closing
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from appliance import clock
from appliance.config import WEEKDAYS, Config, RetentionConfig
from appliance.platform import audit, db, keys
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction

log = logging.getLogger(__name__)

ACTOR = "service:purge"
_ORPHAN_GRACE_S = 3600  # a blob without a row younger than this may be an upload in progress


# --- schedule -----------------------------------------------------------------------------------

def _parse_when(spec: str) -> tuple[int, int, int]:
    day, hm = spec.split()
    hour, minute = hm.split(":")
    return WEEKDAYS.index(day), int(hour), int(minute)


def next_occurrence(spec: str, after: float, tz: str) -> float:
    """The first moment >= `after` that matches `spec` ('Fri 18:00') in time zone `tz` (DST-aware)."""
    weekday, hour, minute = _parse_when(spec)
    zone = ZoneInfo(tz)
    start = dt.datetime.fromtimestamp(after, zone)
    for days in range(0, 8):
        day = (start + dt.timedelta(days=days)).date()
        if day.weekday() != weekday:
            continue
        candidate = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()
        if candidate >= after:
            return candidate
    raise AssertionError("unreachable: a weekday recurs within 8 days")


def next_purge(rcfg: RetentionConfig, after: float) -> float:
    return next_occurrence(rcfg.purge_at, after, rcfg.timezone)


def deadline(rcfg: RetentionConfig, created: float) -> float:
    """When material created at `created` is purged (and hidden): the first purge after it turns old."""
    return next_purge(rcfg, created + rcfg.max_age_hours * 3600)


def hidden_at_or_before(rcfg: RetentionConfig, now: float) -> float:
    """The creation time at or before which material is past its deadline at `now`.

    A deadline is the first purge at or after creation + max age, so it is past at `now` exactly when
    creation + max age <= the latest purge moment at or before `now`. Lets SQL filter by one comparison.
    """
    latest = next_purge(rcfg, now - 8 * 86400)
    while (following := next_purge(rcfg, latest + 1)) <= now:
        latest = following
    return latest - rcfg.max_age_hours * 3600


def _clock_pairs(created: float, created_rtc: float | None, reading: clock.Reading) -> list[tuple[float, float]]:
    """(creation time, now) per clock. Without an RTC creation stamp the RTC is compared to the system
    stamp, which can only make material older: we err toward deletion."""
    pairs = [(created, reading.system)]
    if reading.rtc is not None:
        pairs.append((created_rtc if created_rtc is not None else created, reading.rtc))
    return pairs


def is_past_deadline(rcfg: RetentionConfig, created: float, created_rtc: float | None,
                     reading: clock.Reading) -> bool:
    return any(now >= deadline(rcfg, c) for c, now in _clock_pairs(created, created_rtc, reading))


def is_older_than_max_age(rcfg: RetentionConfig, created: float, created_rtc: float | None,
                          reading: clock.Reading) -> bool:
    return any(now - c >= rcfg.max_age_hours * 3600 for c, now in _clock_pairs(created, created_rtc, reading))


def visible(cfg: Config, row, reading: clock.Reading | None = None) -> bool:
    """Whether a recording row may be shown now (hidden once past its deadline)."""
    reading = reading or clock.read(cfg.retention.rtc_path)
    return not is_past_deadline(cfg.retention, row["created_at"], row["created_at_rtc"], reading)


# --- deletion -----------------------------------------------------------------------------------

@dataclass
class Deleted:
    recordings: list[str] = field(default_factory=list)
    segments: int = 0
    words: int = 0


def delete_recordings(app: Appliance, conn: Connection, ids: list[str], *, actor: str, action: str) -> Deleted:
    """Delete rows (segments, words, jobs cascade) in one audited transaction, then the blobs.

    The transaction also queues the blobs in `pending_blob_deletions`; if the process dies before the
    files are gone, the next purge finishes them (without their rows and DEKs they are unreadable anyway).
    """
    out = Deleted(recordings=list(ids))
    if not ids:
        return out
    marks = ",".join("?" * len(ids))
    with transaction(conn):
        out.segments = conn.execute(f"SELECT count(*) FROM segments WHERE recording_id IN ({marks})",  # noqa: S608
                                    ids).fetchone()[0]
        out.words = conn.execute(
            f"SELECT count(*) FROM words JOIN segments ON segments.id = words.segment_id "  # noqa: S608
            f"WHERE segments.recording_id IN ({marks})", ids).fetchone()[0]
        audit.record(conn, actor, action, f"recordings:{len(ids)}",
                     data={"recording_ids": ids, "segments": out.segments, "words": out.words})
        conn.execute(f"DELETE FROM recordings WHERE id IN ({marks})", ids)  # noqa: S608
        conn.executemany("INSERT OR IGNORE INTO pending_blob_deletions (blob_id) VALUES (?)", [(i,) for i in ids])
    finish_blob_deletions(app, conn)
    return out


def finish_blob_deletions(app: Appliance, conn: Connection) -> int:
    """Delete the blob files queued in `pending_blob_deletions` (by a deletion or an audio shredding)."""
    pending = [r[0] for r in conn.execute("SELECT blob_id FROM pending_blob_deletions")]
    for blob_id in pending:
        app.blobs.delete(blob_id)
    if pending:
        conn.executemany("DELETE FROM pending_blob_deletions WHERE blob_id = ?", [(i,) for i in pending])
    return len(pending)


# --- purge --------------------------------------------------------------------------------------

@dataclass
class PurgeReport:
    dry_run: bool
    expired: list[str]
    deleted: Deleted | None = None
    old_generation: int | None = None
    new_generation: int | None = None
    old_key_fingerprint: str | None = None
    orphan_blobs: int = 0
    stale_files: int = 0
    clock_alarm: bool = False
    reading: clock.Reading | None = None
    audit_records_rotated: int = 0
    completed: list[str] = field(default_factory=list)  # earlier erasures whose key remnants this re-key shredded

    @property
    def completed_audio(self) -> list[str]:
        return [i for i in self.completed if i.startswith(AUDIO_ITEM)]


def _expired_ids(cfg: Config, conn: Connection, reading: clock.Reading) -> list[str]:
    rows = conn.execute("SELECT id, created_at, created_at_rtc FROM recordings ORDER BY created_at")
    return [r["id"] for r in rows
            if is_older_than_max_age(cfg.retention, r["created_at"], r["created_at_rtc"], reading)]


def _remove_stale_generations(app: Appliance, current: int) -> int:
    removed = 0
    for path in app.cfg.paths.state_dir.glob("appliance-*.db*"):
        gen = path.name.removeprefix("appliance-").split(".db")[0]
        if gen.isdigit() and int(gen) != current:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _sweep_orphan_blobs(app: Appliance, conn: Connection, now: float) -> int:
    """Remove blobs (and partial writes) that no recording row owns. A young one may be an upload
    between writing its blob and committing its row, so it waits for the next purge."""
    known = {r[0] for r in conn.execute("SELECT id FROM recordings")}
    removed = 0
    for path in app.blobs.root.iterdir():
        if path.name.split(".")[0] in known or now - path.stat().st_mtime < _ORPHAN_GRACE_S:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rekey(app: Appliance, conn: Connection, current: keys.DbKey) -> keys.DbKey:
    """Export the live database into generation+1 under a fresh key and commit the switch."""
    new = keys.DbKey(current.generation + 1, keys.new_key())
    target = keys.db_path(app.cfg, new.generation)
    for leftover in target.parent.glob(target.name + "*"):
        leftover.unlink()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute(f"ATTACH DATABASE ? AS shred KEY \"x'{new.key.hex()}'\"", (str(target),))
    try:
        conn.execute("SELECT sqlcipher_export('shred')")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA shred.user_version = {int(version)}")
    finally:
        conn.execute("DETACH DATABASE shred")
    _fsync(target)
    keys.commit_new_db_key(app.cfg, app.master_key, new.generation, new.key)  # the commit point
    return new


def purge(app: Appliance, *, dry_run: bool = False, reading: clock.Reading | None = None) -> PurgeReport:
    cfg = app.cfg
    reading = reading or clock.read(cfg.retention.rtc_path)
    report = PurgeReport(dry_run=dry_run, expired=[], reading=reading,
                         clock_alarm=reading.disagrees(cfg.retention.clock_tolerance_seconds))
    if dry_run:
        with closing(app.connect()) as conn:
            report.expired = _expired_ids(cfg, conn, reading)
        return report

    keys.refuse_during_rotation(cfg)  # the re-key below would wrap the new database key under one master key only
    lock_fd = db.lock_exclusive(cfg.paths.db_lock, cfg.retention.lock_timeout_seconds)
    try:
        current = app.current_db()
        report.stale_files = _remove_stale_generations(app, current.generation)
        conn = app.connect(lock=False)
        try:
            if report.clock_alarm:
                with transaction(conn):
                    audit.record(conn, ACTOR, "clock.alarm", "rtc", result="failed",
                                 data={"system": reading.system, "rtc": reading.rtc, "skew": reading.skew})
                log.warning("clock alarm: hardware and system clocks differ by %.0f s; erring toward deletion",
                            reading.skew)
            finish_blob_deletions(app, conn)  # what an interrupted run left
            report.expired = _expired_ids(cfg, conn, reading)
            report.deleted = delete_recordings(app, conn, report.expired, actor=ACTOR, action="purge.delete")
            report.orphan_blobs = _sweep_orphan_blobs(app, conn, reading.system)
            new = _rekey(app, conn, current)
        finally:
            conn.close()
        report.old_generation, report.new_generation = current.generation, new.generation
        report.old_key_fingerprint = keys.fingerprint(current.key)
        _remove_stale_generations(app, new.generation)  # the old file, its WAL and shm
        with closing(app.connect(lock=False)) as conn, transaction(conn):
            conn.execute("INSERT INTO purge_runs (finished_at, finished_at_rtc, generation, deleted) "
                         "VALUES (?, ?, ?, ?)", (reading.system, reading.rtc, new.generation, len(report.expired)))
            report.completed = _complete_pending(conn)
            audit.record(conn, ACTOR, "purge.receipt", f"generation:{new.generation}", data={
                "deleted_recordings": len(report.expired), "recording_ids": report.expired,
                "segments": report.deleted.segments, "words": report.deleted.words,
                "orphan_blobs": report.orphan_blobs, "time_system": reading.system, "time_rtc": reading.rtc,
                "old_key_fingerprint": report.old_key_fingerprint,
                "new_key_fingerprint": keys.fingerprint(new.key),
                "audio_shredded_earlier": len(report.completed_audio), "completed": report.completed})
            # The audit log has its own, longer retention; the content purge does not erase it.
            report.audit_records_rotated = audit.rotate(conn, cfg.retention.audit_retention_days, now=reading.system)
        return report
    finally:
        os.close(lock_fd)


# --- re-key outside the purge: finishing an early erasure ----------------------------------------------
#
# Deleting a row (an audio's DEK, an erased transcript) overwrites it in the live database file
# (secure_delete), but copies of the old page may survive in WAL frames and, on an SSD, in flash the file
# system no longer points at; both are encrypted under the current database key. An erasure ahead of the
# purge is therefore only crypto-shredding once the database has been re-keyed and that key destroyed. Such
# an erasure records its items in `rekey_pending`; `rekey` (the shred timer, an erasure that may wait for it)
# or the Friday purge does the re-key and its receipt names the items it completed.

AUDIO_ITEM = "recording:"


def mark_pending_rekey(conn: Connection, items: list[str], kind: str) -> None:
    """Inside the erasing transaction: these items are erased but await the next re-key."""
    now = clock.now()
    conn.executemany("INSERT OR IGNORE INTO rekey_pending (item, kind, since) VALUES (?, ?, ?)",
                     [(i, kind, now) for i in items])


def pending_rekey(conn: Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT item FROM rekey_pending ORDER BY since, item")]


def _complete_pending(conn: Connection) -> list[str]:
    items = pending_rekey(conn)
    conn.execute("DELETE FROM rekey_pending")
    return items


@dataclass
class RekeyReport:
    old_generation: int
    new_generation: int
    old_key_fingerprint: str
    completed: list[str]


def rekey(app: Appliance, *, actor: str, timeout_s: float | None = None) -> RekeyReport:
    """Re-key the database now (as the purge does, without deleting anything by age) so the remnants of the
    erasures in `rekey_pending` become undecryptable; audited as `rekey.receipt` naming them.

    Waits for every connection to close (at most `timeout_s`, default the purge's lock timeout; TimeoutError
    then, and the items stay pending for the next run). The caller must hold no connection of its own."""
    cfg = app.cfg
    keys.refuse_during_rotation(cfg)  # as the purge: a new database key wrapped under one master key only
    lock_fd = db.lock_exclusive(cfg.paths.db_lock, cfg.retention.lock_timeout_seconds if timeout_s is None
                                else timeout_s)
    try:
        current = app.current_db()
        _remove_stale_generations(app, current.generation)
        with closing(app.connect(lock=False)) as conn:
            finish_blob_deletions(app, conn)
            new = _rekey(app, conn, current)
        _remove_stale_generations(app, new.generation)
        with closing(app.connect(lock=False)) as conn, transaction(conn):
            completed = _complete_pending(conn)
            audit.record(conn, actor, "rekey.receipt", f"generation:{new.generation}", data={
                "completed": completed, "old_key_fingerprint": keys.fingerprint(current.key),
                "new_key_fingerprint": keys.fingerprint(new.key)})
        log.info("database re-keyed to generation %s; %d erasure(s) completed", new.generation, len(completed))
        return RekeyReport(current.generation, new.generation, keys.fingerprint(current.key), completed)
    finally:
        os.close(lock_fd)


def last_successful_purge(conn: Connection) -> float | None:
    row = conn.execute("SELECT max(finished_at) FROM purge_runs").fetchone()
    return row[0]


def purge_overdue(cfg: Config, conn: Connection, now: float | None = None) -> bool:
    """No successful purge within `purge_overdue_days` (counted from installation if none ever ran)."""
    now = now or clock.now()
    last = last_successful_purge(conn)
    if last is None:
        first = conn.execute("SELECT min(created_at) FROM users").fetchone()[0]
        last = first if first is not None else now
    return now - last > cfg.retention.purge_overdue_days * 86400
