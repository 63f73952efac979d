"""Recordings: accept an upload (validate, encrypt, queue), list, read transcript, stream audio."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from appliance import access, audit, clock, jobs, retention
from appliance.accounts import User
from appliance.audio import probe_audio
from appliance.context import Appliance
from appliance.db import Connection, transaction
from appliance.errors import ApplianceError, BadAudio
from appliance.ports import Segment

log = logging.getLogger(__name__)

TRANSCRIBE_JOB = "transcribe"
MAX_TITLE = 200

# Browsers play these; we serve the original bytes with the type we sniffed from the container.
_CONTAINER_MIME = {
    "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
    "matroska,webm": "audio/webm", "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
}


@dataclass(frozen=True)
class RecordingSummary:
    id: str
    title: str
    status: str
    progress: float
    error: str | None
    duration: float | None
    created_at: float
    transferred_at: float | None = None
    deadline: float | None = None  # when the purge deletes it


def _summary(row, cfg=None) -> RecordingSummary:
    due = retention.deadline(cfg.retention, row["created_at"]) if cfg is not None else None
    return RecordingSummary(row["id"], row["title"], row["status"], row["progress"], row["error"],
                            row["duration"], row["created_at"], row["transferred_at"], due)


def create_from_upload(app: Appliance, conn: Connection, user: User, *, title: str, filename: str,
                       data: bytes, language: str | None = None) -> str:
    """Validate the audio in memory, store it encrypted under a fresh DEK and queue transcription.

    Raises BadAudio (nothing stored) for empty, oversize, corrupt or non-audio uploads.
    """
    if not user.can_read_content:
        raise ApplianceError("Ditt konto har ingen behörighet att spela in eller ladda upp samtal.")
    title = (title or "").strip()[:MAX_TITLE] or "Namnlös inspelning"
    max_bytes = app.cfg.web.max_upload_mb * 1024 * 1024
    if not data:
        raise BadAudio("Filen är tom. Välj en ljudfil med innehåll.")
    if len(data) > max_bytes:
        raise BadAudio(f"Filen är för stor (högst {app.cfg.web.max_upload_mb} MB).")
    info = probe_audio(data)
    mime = _CONTAINER_MIME.get(info.container, "application/octet-stream")
    rec_id = secrets.token_hex(12)
    dek = secrets.token_bytes(32)
    app.blobs.put(rec_id, dek, data)
    try:
        with transaction(conn):
            conn.execute(
                "INSERT INTO recordings (id, owner_id, title, filename, mime, size, duration, language, dek, "
                "status, created_at, created_at_rtc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                (rec_id, user.id, title, (filename or "")[:200], mime, len(data), info.duration,
                 language or app.cfg.asr.language, dek, clock.now(), clock.rtc_now(app.cfg.retention.rtc_path)))
            jobs.enqueue(conn, TRANSCRIBE_JOB, rec_id)
            audit.record(conn, user.actor, "recording.create", f"recording:{rec_id}")
    except BaseException:
        app.blobs.delete(rec_id)
        raise
    log.info("recording %s queued (%.1f s, %s)", rec_id, info.duration, info.codec)
    return rec_id


def list_for_user(conn: Connection, user: User) -> list[RecordingSummary]:
    if not user.can_read_content:
        return []
    rows = conn.execute("SELECT * FROM recordings WHERE owner_id = ? ORDER BY created_at DESC", (user.id,))
    result = [_summary(r, conn.cfg) for r in rows if access.can_read(user, r, conn.cfg)]
    with transaction(conn):
        audit.record(conn, user.actor, "recording.list", user.actor, detail=f"count:{len(result)}")
    return result


def statuses_for_user(conn: Connection, user: User) -> list[dict]:
    """Status and progress only (no titles): polled by the list page, so not a content read."""
    if not user.can_read_content:
        return []
    rows = conn.execute("SELECT * FROM recordings WHERE owner_id = ?", (user.id,))
    return [{"id": r["id"], "status": r["status"], "progress": round(r["progress"], 3)} for r in rows
            if access.can_read(user, r, conn.cfg)]


def get_recording(conn: Connection, user: User, rec_id: str) -> RecordingSummary:
    return _summary(access.require_recording(conn, user, rec_id, "recording.read"), conn.cfg)


def transcript_segments(conn: Connection, rec_id: str) -> list[Segment]:
    """Segments of a recording the caller has already authorised with access.require_recording."""
    rows = conn.execute('SELECT idx, start, "end", text FROM segments WHERE recording_id = ? ORDER BY idx',
                        (rec_id,))
    return [Segment(r["start"], r["end"], r["text"]) for r in rows]


@dataclass(frozen=True)
class AudioStream:
    mime: str
    size: int
    start: int
    end: int  # exclusive
    chunks: Iterable[bytes]


def open_audio(app: Appliance, conn: Connection, user: User, rec_id: str, start: int = 0,
               end: int | None = None) -> AudioStream:
    """Decrypted audio bytes [start, end) of a recording, streamed from the blob store (audited read).

    A negative `start` counts from the end, like a slice (an HTTP suffix range `bytes=-N`).
    """
    row = access.require_recording(conn, user, rec_id, "recording.audio")
    reader = app.blobs.open(rec_id, row["dek"])
    if start < 0:
        start = max(0, reader.size + start)
    end = reader.size if end is None else min(end, reader.size)

    def gen() -> Iterable[bytes]:
        try:
            yield from reader.iter_range(start, end)
        finally:
            reader.close()

    return AudioStream(row["mime"], reader.size, start, end, gen())


def delete_recording(app: Appliance, conn: Connection, user: User, rec_id: str) -> None:
    """The caseworker deletes a recording now: rows and blob at once, key material at the next re-key."""
    access.require_recording(conn, user, rec_id, "recording.delete_request")
    retention.delete_recordings(app, conn, [rec_id], actor=user.actor, action="recording.delete")


def mark_transferred(conn: Connection, user: User, rec_id: str, transferred: bool) -> None:
    """The caseworker has copied the reviewed text into the case system (or takes that back)."""
    access.require_recording(conn, user, rec_id, "recording.mark_transferred")
    with transaction(conn):
        conn.execute("UPDATE recordings SET transferred_at = ? WHERE id = ?",
                     (clock.now() if transferred else None, rec_id))
