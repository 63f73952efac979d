"""Live recordings: the browser dictaphone and the desk microphones feed audio here while the meeting runs.

Audio arrives as raw PCM — signed 16-bit little-endian, mono, 16 kHz — in numbered pieces ("chunks", seq
0, 1, 2 … of a few seconds each, every one independently usable). Each chunk is encrypted under the
recording's DEK and durably stored *before* `append_chunk` returns: that return is the acknowledgement,
and nothing acknowledged is lost when a browser, the web or the asr worker dies afterwards.

Life of a live recording (recordings.status / live_sessions.state):

    start ──► 'recording' / recording ⇄ paused ──stop (or max length)──► 'transcribing' / stopped ──► 'ready'

* `start` refuses without the caseworker's consent confirmation (stored and audited: who, when, which
  recording) and when the disk is almost full.
* `append_chunk` is idempotent per seq (the same bytes again: a no-op; other bytes: ChunkConflict), accepts
  chunks out of order, and reports missing numbers below the highest one (`ChunkAck.missing`). It also
  accepts chunks while paused (a client flushes its last pre-pause piece after asking to pause).
* `pause` / `resume` put marks into the transcript at a chunk boundary (`at_seq`: the number of the first
  chunk after the mark; default: after everything received).
* `stop` assembles the chunks into the recording's one encrypted WAV blob (what the audio route plays and
  seeks), filling every missing chunk with silence of the nominal chunk length and reporting it as a gap
  mark, then hands over to the asr worker, which transcribes only the tail it has not yet transcribed
  live (services/live_asr.py) and marks the transcript final. A recording whose browser died stays
  'recording' and is finished from its page (stop).
* Reaching `[recording] max_minutes` stops the recording from inside `append_chunk` (reason 'max_length');
  the ack says so and later chunks are refused with a clear message.

Authorization: the web routes call `access.require_recording(conn, user, rec_id, "recording.record")`
before `append_chunk` (one audited check per request); `pause`/`resume`/`stop` check it themselves. The
desk recorder acts on behalf of the user who started the recording (`LiveSession.user_id`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
import statistics
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from appliance import clock
from appliance.errors import ApplianceError
from appliance.platform import audit
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction
from appliance.recordings import folders, recordings
from appliance.users import access
from appliance.users.accounts import User

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit little-endian, mono
MAX_CHUNK_SECONDS = 30
MAX_SEQ = 10_000_000
MAX_AHEAD = 1000  # a chunk may run this far ahead of the highest received (clients send in order; gaps are rare)
SOURCES = ("browser", "desk")
ACTION = "recording.record"  # the access action for capture control (editor rights)


class LiveError(ApplianceError):
    """A live-recording request that cannot be done; the message says why (in Swedish)."""


class ConsentMissing(LiveError):
    pass


class DiskFull(LiveError):
    pass


class NotRecording(LiveError):
    """The recording is not (or no longer) capturing: a late chunk after stop, or pause on a stopped one."""


class ChunkConflict(LiveError):
    """A chunk number that is already stored with other bytes."""


class BadChunk(LiveError):
    pass


@dataclass(frozen=True)
class LiveSession:
    recording_id: str
    user_id: int
    source: str
    device: str | None
    state: str  # recording, paused, stopped
    started_at: float
    stopped_at: float | None
    stop_reason: str | None  # user, max_length
    transcribed_samples: int


@dataclass(frozen=True)
class ChunkAck:
    """What the client is told after a chunk: it is stored (the acknowledgement) and where things stand."""

    seq: int
    duplicate: bool
    received: int  # chunks stored so far
    missing: tuple[int, ...]  # numbers below the highest received that have not arrived
    seconds: float  # audio stored so far
    state: str  # recording, paused, stopped
    stop_reason: str | None = None  # 'max_length' when this chunk reached the maximum length

    def to_json(self) -> dict:
        return {"seq": self.seq, "duplicate": self.duplicate, "received": self.received,
                "missing": list(self.missing), "seconds": round(self.seconds, 2), "state": self.state,
                "stop_reason": self.stop_reason}


@dataclass(frozen=True)
class Mark:
    kind: str  # pause, resume, gap, stop, max_length
    seq: int
    at_seconds: float


@dataclass(frozen=True)
class StopResult:
    duration: float
    chunks: int
    gaps: tuple[int, ...]  # chunk numbers filled with silence


# --- reading ----------------------------------------------------------------------------------------

def session(conn: Connection, rec_id: str) -> LiveSession | None:
    """The live session of a recording (None for uploads). Not an access check: callers have done theirs."""
    row = conn.execute("SELECT * FROM live_sessions WHERE recording_id = ?", (rec_id,)).fetchone()
    return _session(row) if row is not None else None


def _session(row) -> LiveSession:
    return LiveSession(row["recording_id"], row["user_id"], row["source"], row["device"], row["state"],
                       row["started_at"], row["stopped_at"], row["stop_reason"], row["transcribed_samples"])


def capturing(conn: Connection, source: str | None = None) -> list[LiveSession]:
    """Sessions still capturing (recording or paused), oldest first; `source='desk'` is what the desk
    recorder serves (its `device` says which microphone)."""
    sql = "SELECT * FROM live_sessions WHERE state IN ('recording', 'paused')"
    params: tuple = ()
    if source is not None:
        sql, params = sql + " AND source = ?", (source,)
    return [_session(r) for r in conn.execute(sql + " ORDER BY started_at", params)]


def received_seconds(conn: Connection, rec_id: str) -> float:
    row = conn.execute("SELECT coalesce(sum(samples), 0) FROM live_chunks WHERE recording_id = ?",
                       (rec_id,)).fetchone()
    return row[0] / SAMPLE_RATE


def marks(conn: Connection, rec_id: str) -> list[Mark]:
    """Pause/resume/gap/stop marks in order, each with its position in the audio (seconds).

    After stop the positions are those of the assembled audio; before, they are computed from the
    chunks received so far (a missing chunk counts with its nominal length, as stop will fill it).
    """
    rows = conn.execute("SELECT kind, seq, at_seconds FROM live_marks WHERE recording_id = ? ORDER BY seq, id",
                        (rec_id,)).fetchall()
    if not rows:
        return []
    if all(r["at_seconds"] is not None for r in rows):
        return [Mark(r["kind"], r["seq"], r["at_seconds"]) for r in rows]
    offsets = _offsets(conn, rec_id, nominal=_nominal_samples(conn, rec_id, conn.cfg))
    return [Mark(r["kind"], r["seq"], r["at_seconds"] if r["at_seconds"] is not None
                 else offsets(r["seq"]) / SAMPLE_RATE) for r in rows]


# --- start ------------------------------------------------------------------------------------------

def free_mb(app: Appliance) -> int:
    return shutil.disk_usage(app.cfg.paths.state_dir).free // (1024 * 1024)


def start(app: Appliance, conn: Connection, user: User, *, title: str, folder_id: int | str | None = None,
          speakers: int | str | None = None, source: str = "browser", consent_confirmed: bool = False,
          device: str | None = None, language: str | None = None) -> str:
    """Create a recording in state 'recording' and return its id.

    Refuses (LiveError, nothing stored) without the consent confirmation, for an unknown source, when the
    disk has less than `[recording] min_free_mb` free, or for a user without a content role; a folder the
    user may not record into is a NotFound, as for uploads.
    """
    if not user.can_read_content:
        raise LiveError("Ditt konto har ingen behörighet att spela in samtal.")
    if source not in SOURCES:
        raise LiveError("Välj var ljudet kommer ifrån: den här webbläsaren eller en bordsmikrofon.")
    if source == "desk" and not (device or "").strip():
        raise LiveError("Välj vilken bordsmikrofon som ska spela in.")
    if not consent_confirmed:
        raise ConsentMissing("Bekräfta att klienten har informerats och samtyckt innan inspelningen startar.")
    free = free_mb(app)
    if free < app.cfg.recording.min_free_mb:
        log.warning("recording refused: %d MiB free, %d MiB required", free, app.cfg.recording.min_free_mb)
        raise DiskFull(f"Enheten har för lite ledigt lagringsutrymme ({free} MB kvar) för att starta en inspelning. "
                       "Radera inspelningar som inte behövs längre eller kontakta IT.")
    if folder_id is None or folder_id == "":
        folder_id = folders.ensure_default(conn, user)
    else:
        folder_id = access.require_folder(conn, user, folder_id, "folder.upload")["id"]
    title = (title or "").strip()[:recordings.MAX_TITLE] or "Namnlös inspelning"
    speakers_hint = recordings.parse_speakers_hint(speakers)
    rec_id = secrets.token_hex(12)
    now, rtc = clock.now(), clock.rtc_now(app.cfg.retention.rtc_path)
    with transaction(conn):
        conn.execute(
            "INSERT INTO recordings (id, owner_id, folder_id, title, filename, mime, size, duration, language, "
            "dek, status, created_at, created_at_rtc, speakers_hint) "
            "VALUES (?, ?, ?, ?, '', 'audio/wav', 0, 0, ?, ?, 'recording', ?, ?, ?)",
            (rec_id, user.id, folder_id, title, language or app.cfg.asr.language, secrets.token_bytes(32),
             now, rtc, speakers_hint))
        conn.execute("INSERT INTO live_sessions (recording_id, user_id, source, device, state, started_at) "
                     "VALUES (?, ?, ?, ?, 'recording', ?)", (rec_id, user.id, source, device, now))
        conn.execute("INSERT INTO recording_consents (recording_id, user_id, confirmed_at, confirmed_at_rtc) "
                     "VALUES (?, ?, ?, ?)", (rec_id, user.id, now, rtc))
        role = access.content_role(user)
        audit.record(conn, user.actor, "recording.consent", f"recording:{rec_id}", role=role)
        audit.record(conn, user.actor, "recording.create", f"recording:{rec_id}", role=role,
                     data={"folder": f"folder:{folder_id}", "source": source})
    log.info("live recording %s started (%s)", rec_id, source)
    return rec_id


# --- chunks -----------------------------------------------------------------------------------------

def _live_row(conn: Connection, rec_id: str):
    row = conn.execute("SELECT r.dek, r.status, r.duration, s.* FROM live_sessions s "
                       "JOIN recordings r ON r.id = s.recording_id WHERE s.recording_id = ?", (rec_id,)).fetchone()
    if row is None:
        raise NotRecording("Det här är ingen pågående inspelning.")
    return row


def _missing(conn: Connection, rec_id: str) -> tuple[tuple[int, ...], int, int]:
    seqs = [r[0] for r in conn.execute("SELECT seq FROM live_chunks WHERE recording_id = ? ORDER BY seq", (rec_id,))]
    total = conn.execute("SELECT coalesce(sum(samples), 0) FROM live_chunks WHERE recording_id = ?",
                         (rec_id,)).fetchone()[0]
    have = set(seqs)
    missing = tuple(s for s in range(seqs[-1] + 1) if s not in have) if seqs else ()
    return missing, len(seqs), total


def append_chunk(app: Appliance, conn: Connection, rec_id: str, seq: int, pcm: bytes) -> ChunkAck:
    """Encrypt and durably store chunk `seq` of a live recording; returning is the acknowledgement.

    The caller has authorised the request (web: access.require_recording(..., "recording.record"); desk
    recorder: it serves the session its user started). Raises BadChunk (bad number or bytes), ChunkConflict
    (that number holds other bytes), NotRecording (stopped: the message says so; nothing is stored).
    """
    try:
        seq = int(seq)
    except (TypeError, ValueError):
        seq = -1
    if not 0 <= seq <= MAX_SEQ:
        raise BadChunk("Ogiltigt nummer på ljudbiten.")
    if not pcm or len(pcm) % SAMPLE_WIDTH or len(pcm) > MAX_CHUNK_SECONDS * SAMPLE_RATE * SAMPLE_WIDTH:
        raise BadChunk("Ljudbiten är tom, för lång eller inte 16-bitars PCM.")
    digest = hashlib.sha256(pcm).digest()
    row = _live_row(conn, rec_id)
    if seq > next_seq(conn, rec_id) + MAX_AHEAD:
        raise BadChunk("Ogiltigt nummer på ljudbiten: den ligger långt efter det som kommit hittills.")
    known = conn.execute("SELECT sha256 FROM live_chunks WHERE recording_id = ? AND seq = ?", (rec_id, seq)).fetchone()
    if known is not None:
        if bytes(known["sha256"]) != digest:
            raise ChunkConflict(f"Ljudbit {seq} finns redan med annat innehåll.")
        missing, count, total = _missing(conn, rec_id)
        return ChunkAck(seq, True, count, missing, total / SAMPLE_RATE, row["state"], row["stop_reason"])
    if row["state"] == "stopped":
        reason = ("Inspelningen stoppades när den nådde maxlängden." if row["stop_reason"] == "max_length"
                  else "Inspelningen är redan stoppad.")
        raise NotRecording(reason + " Ljud som kommer efter stoppet sparas inte.")
    # The file first (fsynced), then the row: a crash in between leaves a file the retry overwrites.
    app.blobs.put_chunk(rec_id, seq, bytes(row["dek"]), pcm)
    with transaction(conn):
        state = conn.execute("SELECT state FROM live_sessions WHERE recording_id = ?", (rec_id,)).fetchone()
        if state is None or state["state"] == "stopped":  # stopped (or deleted) while we wrote the file
            raise NotRecording("Inspelningen är redan stoppad. Ljud som kommer efter stoppet sparas inte.")
        conn.execute("INSERT OR IGNORE INTO live_chunks (recording_id, seq, samples, sha256, received_at) "
                     "VALUES (?, ?, ?, ?, ?)", (rec_id, seq, len(pcm) // SAMPLE_WIDTH, digest, clock.now()))
        missing, count, total = _missing(conn, rec_id)
        conn.execute("UPDATE recordings SET duration = ? WHERE id = ?", (total / SAMPLE_RATE, rec_id))
    ack = ChunkAck(seq, False, count, missing, total / SAMPLE_RATE, state["state"])
    if total >= app.cfg.recording.max_minutes * 60 * SAMPLE_RATE:
        log.info("live recording %s reached the maximum length; stopping", rec_id)
        _stop(app, conn, rec_id, actor="system:live", role=None, reason="max_length", at_seq=None)
        ack = ChunkAck(seq, False, count, missing, total / SAMPLE_RATE, "stopped", "max_length")
    return ack


# --- pause, resume, stop ----------------------------------------------------------------------------

def next_seq(conn: Connection, rec_id: str) -> int:
    return conn.execute("SELECT coalesce(max(seq) + 1, 0) FROM live_chunks WHERE recording_id = ?",
                        (rec_id,)).fetchone()[0]


def _at_seq(conn: Connection, rec_id: str, at_seq: int | str | None) -> int:
    if at_seq is None or at_seq == "":
        return next_seq(conn, rec_id)
    try:
        value = int(at_seq)
    except (TypeError, ValueError):
        value = -1
    if not 0 <= value <= next_seq(conn, rec_id) + MAX_AHEAD:
        raise BadChunk("Ogiltigt nummer på ljudbiten.")
    return value


def _set_state(conn: Connection, user: User, rec_id: str, kind: str, new_state: str, at_seq) -> str:
    access.require_recording(conn, user, rec_id, ACTION)
    row = _live_row(conn, rec_id)
    if row["state"] == "stopped":
        raise NotRecording("Inspelningen är redan stoppad.")
    if row["state"] == new_state:
        return new_state  # a repeated click (or a retried request) changes nothing
    seq = _at_seq(conn, rec_id, at_seq)
    with transaction(conn):
        conn.execute("UPDATE live_sessions SET state = ? WHERE recording_id = ? AND state != 'stopped'",
                     (new_state, rec_id))
        conn.execute("INSERT INTO live_marks (recording_id, kind, seq, created_at) VALUES (?, ?, ?, ?)",
                     (rec_id, kind, seq, clock.now()))
        audit.record(conn, user.actor, f"recording.{kind}", f"recording:{rec_id}", role=access.content_role(user))
    return new_state


def pause(app: Appliance, conn: Connection, user: User, rec_id: str, *, at_seq: int | str | None = None) -> str:
    """Pause capture (third-party talk): a 'pause' mark goes into the transcript before chunk `at_seq`."""
    return _set_state(conn, user, rec_id, "pause", "paused", at_seq)


def resume(app: Appliance, conn: Connection, user: User, rec_id: str, *, at_seq: int | str | None = None) -> str:
    return _set_state(conn, user, rec_id, "resume", "recording", at_seq)


def stop(app: Appliance, conn: Connection, user: User, rec_id: str, *, chunks: int | str | None = None) -> StopResult:
    """End capture: assemble the audio, report gaps, hand the tail to the asr worker.

    `chunks` is how many chunks the client produced (0..chunks-1); numbers in that range that never
    arrived become silence and gap marks. Without it (a dead browser's recording finished from its page)
    everything received counts. Stopping a stopped recording returns what it has.
    """
    access.require_recording(conn, user, rec_id, ACTION)
    return _stop(app, conn, rec_id, actor=user.actor, role=access.content_role(user), reason="user",
                 at_seq=chunks)


def _nominal_samples(conn: Connection, rec_id: str, cfg) -> int:
    """The length a missing chunk is given: the median of those received (the client's chunk length), or
    the configured browser chunk length when there are none."""
    sizes = [r[0] for r in conn.execute("SELECT samples FROM live_chunks WHERE recording_id = ?", (rec_id,))]
    return int(statistics.median(sizes)) if sizes else int(cfg.recording.chunk_seconds * SAMPLE_RATE)


def _offsets(conn: Connection, rec_id: str, nominal: int):
    """A function seq -> sample offset where chunk `seq` begins (missing chunks count `nominal`)."""
    sizes = dict(conn.execute("SELECT seq, samples FROM live_chunks WHERE recording_id = ?", (rec_id,)).fetchall())

    def offset(seq: int) -> int:  # O(chunks received), whatever number a client sent
        before = [n for s, n in sizes.items() if s < seq]
        return sum(before) + nominal * (seq - len(before))

    return offset


def wav_header(samples: int) -> bytes:
    """A canonical 44-byte PCM WAV header (16 kHz, mono, 16-bit)."""
    data = samples * SAMPLE_WIDTH
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * SAMPLE_WIDTH, SAMPLE_WIDTH, 16) +
            b"data" + struct.pack("<I", data))


WAV_HEADER_BYTES = 44


def _stop(app: Appliance, conn: Connection, rec_id: str, *, actor: str, role: str | None, reason: str,
          at_seq: int | str | None) -> StopResult:
    row = _live_row(conn, rec_id)
    if row["state"] == "stopped":
        gaps = tuple(r[0] for r in conn.execute(
            "SELECT seq FROM live_marks WHERE recording_id = ? AND kind = 'gap' ORDER BY seq", (rec_id,)))
        return StopResult(row["duration"] or 0.0, next_seq(conn, rec_id), gaps)
    # Stop first, so no chunk is acknowledged after the audio is assembled (append_chunk re-checks the state
    # in the transaction that would acknowledge it).
    with transaction(conn):
        conn.execute("UPDATE live_sessions SET state = 'stopped', stopped_at = ?, stop_reason = ? "
                     "WHERE recording_id = ?", (clock.now(), reason, rec_id))
    end = max(next_seq(conn, rec_id), _at_seq(conn, rec_id, at_seq) if at_seq not in (None, "") else 0)
    dek = bytes(row["dek"])
    nominal = _nominal_samples(conn, rec_id, app.cfg)
    sizes = dict(conn.execute("SELECT seq, samples FROM live_chunks WHERE recording_id = ?", (rec_id,)).fetchall())
    # Chunks the client says it made but never delivered become silence — never more than the maximum length
    # allows, whatever count a client claims.
    room = max(0, app.cfg.recording.max_minutes * 60 * SAMPLE_RATE - sum(sizes.values()))
    end = min(end, next_seq(conn, rec_id) + room // max(nominal, 1))
    gaps = tuple(s for s in range(end) if s not in sizes)
    total = sum(sizes.get(s, nominal) for s in range(end))
    # The assembled WAV replaces nothing until it is complete (BlobWriter publishes atomically on close).
    writer = app.blobs.writer(rec_id, dek)
    try:
        writer.write(wav_header(total))
        for s in range(end):
            if s in sizes:
                with app.blobs.open_chunk(rec_id, s, dek) as reader:
                    writer.write(reader.read_all())
            else:
                writer.write(bytes(nominal * SAMPLE_WIDTH))
        size = writer.close()
    except BaseException:
        writer.abort()
        raise
    offsets = _offsets(conn, rec_id, nominal)
    now = clock.now()
    with transaction(conn):
        for s in gaps:
            conn.execute("INSERT INTO live_marks (recording_id, kind, seq, created_at) VALUES (?, 'gap', ?, ?)",
                         (rec_id, s, now))
        conn.execute("INSERT INTO live_marks (recording_id, kind, seq, created_at) VALUES (?, ?, ?, ?)",
                     (rec_id, "max_length" if reason == "max_length" else "stop", end, now))
        for mark in conn.execute("SELECT id, seq FROM live_marks WHERE recording_id = ?", (rec_id,)).fetchall():
            conn.execute("UPDATE live_marks SET at_seconds = ? WHERE id = ?",
                         (offsets(min(mark["seq"], end)) / SAMPLE_RATE, mark["id"]))
        conn.execute("UPDATE recordings SET status = 'transcribing', size = ?, duration = ?, mime = 'audio/wav', "
                     "progress = 0, error = NULL WHERE id = ?", (size, total / SAMPLE_RATE, rec_id))
        audit.record(conn, actor, "recording.stop", f"recording:{rec_id}", role=role,
                     detail=reason, data={"chunks": end, "gaps": len(gaps)})
    app.blobs.delete_chunks(rec_id)  # the assembled blob holds every acknowledged chunk now
    if gaps:
        log.warning("live recording %s stopped with %d missing chunk(s) filled with silence", rec_id, len(gaps))
    return StopResult(total / SAMPLE_RATE, end, gaps)


# --- audio for the live transcript (asr worker) -----------------------------------------------------

def contiguous_samples(conn: Connection, rec_id: str) -> int:
    """Samples from the start up to the first missing chunk: what the live transcript can work on."""
    total = 0
    for i, r in enumerate(conn.execute("SELECT seq, samples FROM live_chunks WHERE recording_id = ? ORDER BY seq",
                                       (rec_id,))):
        if r["seq"] != i:
            break
        total += r["samples"]
    return total


def read_pcm(app: Appliance, conn: Connection, rec_id: str, start: int, end: int) -> bytes:
    """Decrypted PCM samples [start, end) of a live recording, in memory: from the chunks while capturing,
    from the assembled WAV once stopped. Reads only contiguous audio while capturing."""
    row = _live_row(conn, rec_id)
    dek = bytes(row["dek"])
    if row["state"] == "stopped":
        with app.blobs.open(rec_id, dek) as reader:
            return b"".join(reader.iter_range(WAV_HEADER_BYTES + start * SAMPLE_WIDTH,
                                              WAV_HEADER_BYTES + end * SAMPLE_WIDTH))
    return b"".join(_chunk_pieces(app, conn, rec_id, dek, start, end))


def _chunk_pieces(app: Appliance, conn: Connection, rec_id: str, dek: bytes, start: int, end: int) -> Iterator[bytes]:
    pos = 0
    for i, r in enumerate(conn.execute("SELECT seq, samples FROM live_chunks WHERE recording_id = ? ORDER BY seq",
                                       (rec_id,)).fetchall()):
        if r["seq"] != i or pos >= end:
            return
        lo, hi = max(start, pos), min(end, pos + r["samples"])
        if lo < hi:
            with app.blobs.open_chunk(rec_id, i, dek) as reader:
                yield reader.read_all()[(lo - pos) * SAMPLE_WIDTH:(hi - pos) * SAMPLE_WIDTH]
        pos += r["samples"]


def audio_samples(app: Appliance, conn: Connection, rec_id: str) -> int:
    """How many samples the asr worker may transcribe now: all of it once stopped, else the contiguous part."""
    row = _live_row(conn, rec_id)
    if row["state"] == "stopped":
        return int(round((row["duration"] or 0) * SAMPLE_RATE))
    return contiguous_samples(conn, rec_id)


# --- the live transcript's lease on a session (asr worker, services/live_asr.py) ---------------------

_ASR_CANDIDATES_SQL = (
    "SELECT s.recording_id FROM live_sessions s JOIN recordings r ON r.id = s.recording_id "
    "WHERE (s.state != 'stopped' OR r.status = 'transcribing') "
    "AND (s.asr_owner IS NULL OR s.asr_owner = :me OR s.asr_lease_expires < :now) ORDER BY s.started_at")


def asr_candidates(conn: Connection, worker: str) -> list[str]:
    """Live recordings whose transcript may have work for `worker` (free, its own, or a dead worker's)."""
    return [r[0] for r in conn.execute(_ASR_CANDIDATES_SQL, {"me": worker, "now": clock.now()})]


def claim_for_asr(conn: Connection, rec_id: str, worker: str, lease_seconds: float) -> bool:
    """Take (or renew) the lease on a session's live transcript, like the job queue's."""
    now = clock.now()
    cur = conn.execute("UPDATE live_sessions SET asr_owner = ?, asr_lease_expires = ? WHERE recording_id = ? "
                       "AND (asr_owner IS NULL OR asr_owner = ? OR asr_lease_expires < ?)",
                       (worker, now + lease_seconds, rec_id, worker, now))
    return cur.rowcount == 1


def asr_still_owns(conn: Connection, rec_id: str, worker: str, position: int) -> bool:
    """Whether `worker` still holds the session and the transcript is still at `position` (samples)."""
    row = conn.execute("SELECT asr_owner, transcribed_samples FROM live_sessions WHERE recording_id = ?",
                       (rec_id,)).fetchone()
    return row is not None and row["asr_owner"] == worker and row["transcribed_samples"] == position


def advance_asr(conn: Connection, rec_id: str, position: int, owner: str | None) -> None:
    """The live transcript now reaches `position` samples; `owner` None gives up the lease (final)."""
    conn.execute("UPDATE live_sessions SET transcribed_samples = ?, asr_owner = ? WHERE recording_id = ?",
                 (position, owner, rec_id))


def next_undiarized(conn: Connection) -> str | None:
    """A finished live recording whose lines have no speakers yet (diarized once the transcript is final)."""
    row = conn.execute("SELECT r.id FROM recordings r JOIN live_sessions l ON l.recording_id = r.id "
                       "WHERE r.status = 'ready' AND r.diarization IS NULL ORDER BY r.created_at LIMIT 1").fetchone()
    return row["id"] if row else None
