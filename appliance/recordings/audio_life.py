"""Audio with its own, shorter life: when a recording's audio is crypto-shredded ahead of its text.

The office chooses one rule (`[retention] audio_shred`):

* `purge` (the default): the audio goes with the transcript at the recording's purge deadline;
* `transferred`: as soon as the caseworker marks the recording (or a draft of it) transferred to the case
  system — the text was documented, the audio has served its purpose (Nacka's model);
* `hours_after_final`: `audio_hours_after_final` hours after the transcript first became final.

Two things happen, and they are kept apart on purpose:

1. **At read time** the audio is gone the moment its rule says so (`life(...).available`): playback answers
   410, correction suggestions from Whisper's confidence and re-transcription are refused, whether or not the
   shredding below has run yet — like retention hides expired material before the purge.
2. **Shredding** (`shred`) deletes the blob (and a live recording's pieces) and overwrites the row's data key
   (DEK) with an empty value, audited as `audio.shred`. It runs at once where the caseworker's action makes it
   due (marking transferred: `shred_if_due`, called by the web after the marking) and otherwise from the shred
   timer (`appliance shred`, every 15 minutes: `shred_due`), which also does step 3.
3. **Crypto-shredding completes at the next re-key.** The DEK lived only inside the SQLCipher database; the
   overwrite removes it from the live file (secure_delete), but an old WAL frame or a flash remnant of the page
   may still hold it, encrypted under the current database key. So each shredding is recorded in
   `rekey_pending`, and the shred timer re-keys the database (appliance/platform/retention.py `rekey`) when any
   is pending — the old key is destroyed and the receipt (`rekey.receipt`, or the Friday `purge.receipt`)
   names the recordings whose audio is now beyond recovery. Until then the audio is unreachable through the
   product and its ciphertext is gone from the blob store; only someone holding the current database key
   *and* a raw copy of the disk could in principle recover the DEK from a remnant, and never for longer than
   one timer interval plus the time the re-key waits for running work.

The asr unit needs the audio of a finished live recording once more, to label speakers; shredding waits for
that (at most `_ASR_GRACE_S` past the due time, after which the transcript keeps no speakers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from appliance import clock
from appliance.config import Config, RetentionConfig
from appliance.errors import AudioGone
from appliance.platform import audit, retention
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction

log = logging.getLogger(__name__)

ACTOR = "service:shred"
REASONS = ("transferred", "hours_after_final")
_ASR_GRACE_S = 3600

MSG_GONE = ("Ljudet i den här inspelningen är raderat enligt kontorets regler. Utskriften finns kvar till "
            "gallringen, men uppspelning, förslag utifrån osäkra ord och ny transkribering går inte längre.")

@dataclass(frozen=True)
class AudioLife:
    """What the recording page says about its audio, and whether it may still be played."""

    policy: str                 # purge | transferred | hours_after_final
    hours: float                # audio_hours_after_final
    shredded_at: float | None   # when the audio was shredded (None: not yet)
    reason: str | None          # why: transferred | hours_after_final
    due_at: float | None        # when the rule makes it go ahead of the text (None: not known yet / at the purge)
    purge_at: float             # the recording's purge deadline (text and audio)
    available: bool             # may be played now

    @property
    def gone(self) -> bool:
        return not self.available

    @property
    def early(self) -> bool:
        """The office's rule removes audio before the text."""
        return self.policy != "purge"


def due_at(rcfg: RetentionConfig, row) -> float | None:
    """When the rule takes the audio of `row` (None: not yet determined, or only at the purge)."""
    if rcfg.audio_shred == "transferred":
        return row["transferred_at"] if row["status"] == "ready" else None
    if rcfg.audio_shred == "hours_after_final":
        final = row["transcribed_at"]
        return final + rcfg.audio_hours_after_final * 3600 if final is not None and row["status"] == "ready" \
            else None
    return None


def life(cfg: Config, row, reading: clock.Reading | None = None) -> AudioLife:
    """The audio's life for a recording row (every column; `recordings.*`)."""
    rcfg = cfg.retention
    reading = reading or clock.read(rcfg.rtc_path)
    due = due_at(rcfg, row)
    shredded = row["audio_shredded_at"]
    available = shredded is None and (due is None or reading.latest < due)
    return AudioLife(rcfg.audio_shred, rcfg.audio_hours_after_final, shredded, row["audio_shred_reason"], due,
                     retention.deadline(rcfg, row["created_at"]), available)


def require_audio(cfg: Config, row) -> None:
    """Raise AudioGone unless the recording's audio may still be used (playback, re-transcription)."""
    if not life(cfg, row).available:
        raise AudioGone(MSG_GONE)


# --- shredding -------------------------------------------------------------------------------------------

def shred(app: Appliance, conn: Connection, ids: Sequence[str], *, actor: str, reason: str,
          role: str | None = None) -> list[str]:
    """Shred the audio of recordings `ids` (those not shredded yet): one audited transaction overwrites each
    DEK and queues blob deletion and the re-key; then the blobs go. Returns the ids shredded now."""
    if reason not in REASONS:
        raise ValueError(f"unknown shred reason {reason!r}")
    if not ids:
        return []
    now = clock.now()
    with transaction(conn):
        marks = ",".join("?" * len(ids))
        todo = [r[0] for r in conn.execute(
            f"SELECT id FROM recordings WHERE id IN ({marks}) AND audio_shredded_at IS NULL "  # noqa: S608
            "ORDER BY id", list(ids))]
        if not todo:
            return []
        marks = ",".join("?" * len(todo))
        # x'' rather than NULL: the column is NOT NULL since the first migration; an empty key opens nothing.
        conn.execute(f"UPDATE recordings SET dek = x'', audio_shredded_at = ?, audio_shred_reason = ? "  # noqa: S608
                     f"WHERE id IN ({marks})", [now, reason, *todo])
        conn.execute(f"DELETE FROM live_chunks WHERE recording_id IN ({marks})", todo)  # noqa: S608
        conn.executemany("INSERT OR IGNORE INTO pending_blob_deletions (blob_id) VALUES (?)", [(i,) for i in todo])
        retention.mark_pending_rekey(conn, [retention.AUDIO_ITEM + i for i in todo], "audio")
        audit.record(conn, actor, "audio.shred", f"recordings:{len(todo)}", role=role,
                     data={"recording_ids": todo, "reason": reason, "rekey": "pending"})
    retention.finish_blob_deletions(app, conn)
    log.info("audio of %d recording(s) shredded (%s); the re-key is pending", len(todo), reason)
    return todo


def _asr_done(cfg: Config, conn: Connection, row, now: float, due: float) -> bool:
    """Whether the asr unit has finished with the audio (a live recording is diarized after it is final)."""
    if not cfg.diarization.enabled or row["diarization"] is not None or now - due > _ASR_GRACE_S:
        return True
    return conn.execute("SELECT 1 FROM live_sessions WHERE recording_id = ?", (row["id"],)).fetchone() is None


def due_ids(cfg: Config, conn: Connection, reading: clock.Reading | None = None,
            ids: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(recording id, reason) of audio the rule has made due and the asr unit no longer needs."""
    if cfg.retention.audio_shred == "purge":
        return []
    reading = reading or clock.read(cfg.retention.rtc_path)
    sql = "SELECT * FROM recordings WHERE audio_shredded_at IS NULL AND status = 'ready'"
    params: list = []
    if ids is not None:
        if not ids:
            return []
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        params = list(ids)
    out = []
    for row in conn.execute(sql, params).fetchall():
        due = due_at(cfg.retention, row)
        if due is not None and reading.latest >= due and _asr_done(cfg, conn, row, reading.latest, due):
            out.append((row["id"], cfg.retention.audio_shred))
    return out


def shred_due(app: Appliance, conn: Connection, reading: clock.Reading | None = None) -> list[str]:
    """The shred timer's step: shred every audio the rule has made due."""
    due = due_ids(app.cfg, conn, reading)
    shredded: list[str] = []
    for reason in REASONS:
        shredded += shred(app, conn, [i for i, r in due if r == reason], actor=ACTOR, reason=reason)
    return shredded


def shred_if_due(app: Appliance, conn: Connection, ids: Sequence[str], *, actor: str,
                 role: str | None = None) -> list[str]:
    """Right after a caseworker's action (marking transferred): shred those of `ids` whose audio is now due,
    in the caseworker's name."""
    due = due_ids(app.cfg, conn, ids=ids)
    shredded: list[str] = []
    for reason in REASONS:
        shredded += shred(app, conn, [i for i, r in due if r == reason], actor=actor, reason=reason, role=role)
    return shredded
