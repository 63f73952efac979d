"""Recordings: accept an upload (validate, encrypt, queue), list, read transcript, stream audio; the recording's
side of its transcription job (the `TRANSCRIBE` job kind, status and progress the asr unit reports)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from appliance import clock
from appliance.errors import ApplianceError, BadAudio
from appliance.platform import audit, jobs, retention
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction
from appliance.ports import Segment
from appliance.recordings import audio_life, folders
from appliance.recordings.audio import probe_audio
from appliance.users import access
from appliance.users.accounts import User

log = logging.getLogger(__name__)

MAX_TITLE = 200
ASR_ACTOR = "service:asr"
MSG_ATTEMPTS = "Transkriberingen avbröts upprepade gånger. Ladda upp filen igen eller kontakta IT."

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
    folder_id: int | None = None
    folder_name: str = ""
    permission: str | None = None  # the viewing user's: owner, editor or viewer
    audio: audio_life.AudioLife | None = None  # when the audio goes, or went (audio_life.py)
    language: str = "sv"                     # the language of the meeting (the caseworker's side)
    interpreter_language: str | None = None  # held through an interpreter: the other language spoken

    @property
    def interpreter_language_name(self) -> str:
        return INTERPRETER_LANGUAGES.get(self.interpreter_language or "", self.interpreter_language or "")

    @property
    def can_edit(self) -> bool:
        return access.allows(self.permission, access.EDITOR)

    @property
    def is_owner(self) -> bool:
        """May move it to another folder (access.recording_permission)."""
        return self.permission == access.OWNER


def _summary(row, cfg=None, *, folder_name: str = "", permission: str | None = None) -> RecordingSummary:
    due = retention.deadline(cfg.retention, row["created_at"]) if cfg is not None else None
    return RecordingSummary(row["id"], row["title"], row["status"], row["progress"], row["error"],
                            row["duration"], row["created_at"], row["transferred_at"], due,
                            row["folder_id"], folder_name, permission,
                            audio_life.life(cfg, row) if cfg is not None else None, row["language"],
                            row["interpreter_language"])


def _folder_name(conn: Connection, folder_id: int | None) -> str:
    row = conn.execute("SELECT name FROM folders WHERE id = ?", (folder_id,)).fetchone() if folder_id else None
    return row["name"] if row else folders.DEFAULT_NAME


MAX_SPEAKERS = 10

# The other language of an interpreted meeting: languages Whisper transcribes (Tigrinya and Kurdish it does not;
# Dari is transcribed as Persian), by ISO 639-1 code, with their Swedish names.
INTERPRETER_LANGUAGES: dict[str, str] = {
    "ar": "arabiska", "so": "somaliska", "fa": "persiska/dari", "en": "engelska", "tr": "turkiska",
    "ru": "ryska", "uk": "ukrainska", "pl": "polska", "bs": "bosniska/kroatiska/serbiska", "es": "spanska",
    "fr": "franska", "de": "tyska", "am": "amhariska", "th": "thailändska", "vi": "vietnamesiska",
    "zh": "kinesiska",
}


def parse_interpreter_language(value: str | None, main_language: str = "sv") -> str | None:
    """The form's optional interpreter language: None when no interpreter, else a code of
    INTERPRETER_LANGUAGES other than the meeting's own language (ApplianceError otherwise)."""
    value = (value or "").strip()
    if not value:
        return None
    if value not in INTERPRETER_LANGUAGES or value == main_language:
        raise ApplianceError("Välj tolkens andra språk i listan, eller \"Ingen tolk\".")
    return value



def parse_speakers_hint(value: int | str | None) -> int | None:
    """The form's optional number of speakers: None when left empty, else 1..MAX_SPEAKERS (ApplianceError otherwise)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= MAX_SPEAKERS:
        raise ApplianceError(f"Antal talare ska vara ett heltal mellan 1 och {MAX_SPEAKERS}, eller tomt.")
    return n


def create_from_upload(app: Appliance, conn: Connection, user: User, *, title: str, filename: str,
                       data: bytes, language: str | None = None, folder_id: int | str | None = None,
                       speakers: int | str | None = None, interpreter_language: str | None = None) -> str:
    """Validate the audio in memory, store it encrypted under a fresh DEK and queue transcription.

    The recording goes into `folder_id` (the user must own or edit it: access.require_folder, NotFound
    otherwise) or the user's default folder. Raises BadAudio (nothing stored) for empty, oversize,
    corrupt or non-audio uploads. `speakers` is the optional number-of-speakers hint for diarization;
    `interpreter_language` the other language of a meeting held through an interpreter.
    """
    if not user.can_read_content:
        raise ApplianceError("Ditt konto har ingen behörighet att spela in eller ladda upp samtal.")
    if folder_id is None or folder_id == "":
        folder_id = folders.ensure_default(conn, user)
    else:
        folder_id = access.require_folder(conn, user, folder_id, "folder.upload")["id"]
    title = (title or "").strip()[:MAX_TITLE] or "Namnlös inspelning"
    speakers_hint = parse_speakers_hint(speakers)
    interpreter = parse_interpreter_language(interpreter_language, language or app.cfg.asr.language)
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
                "INSERT INTO recordings (id, owner_id, folder_id, title, filename, mime, size, duration, language, "
                "dek, status, created_at, created_at_rtc, speakers_hint, interpreter_language) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (rec_id, user.id, folder_id, title, (filename or "")[:200], mime, len(data), info.duration,
                 language or app.cfg.asr.language, dek, clock.now(), clock.rtc_now(app.cfg.retention.rtc_path),
                 speakers_hint, interpreter))
            jobs.enqueue(conn, TRANSCRIBE, rec_id, recording_id=rec_id)
            audit.record(conn, user.actor, "recording.create", f"recording:{rec_id}", role=access.content_role(user),
                         data={"folder": f"folder:{folder_id}"})
    except BaseException:
        app.blobs.delete(rec_id)
        raise
    log.info("recording %s queued (%.1f s, %s)", rec_id, info.duration, info.codec)
    return rec_id


# Recordings the user can see: those they created (wherever they lie), those in their own folders and in
# folders shared with them; the same rule as access.recording_permission. Retention hiding is applied in Python.
_VISIBLE_SQL = (
    "SELECT r.*, f.name AS folder_name, CASE WHEN r.owner_id = :u OR f.owner_id = :u THEN 'owner' ELSE s.role END "
    "AS permission FROM recordings r LEFT JOIN folders f ON f.id = r.folder_id "
    "LEFT JOIN folder_shares s ON s.folder_id = f.id AND s.user_id = :u "
    "WHERE (r.owner_id = :u OR f.owner_id = :u OR s.user_id IS NOT NULL)")


def visible_rows(conn: Connection, user: User, *, folder_id: int | None = None, min_permission: str = "viewer",
                 reading: clock.Reading | None = None):
    """Rows (with `folder_name` and `permission`) the user may see now, newest first (not audited)."""
    if not user.can_read_content or user.disabled:
        return []
    sql, params = _VISIBLE_SQL, {"u": user.id}
    if folder_id is not None:
        sql, params = sql.replace("WHERE (", "WHERE r.folder_id = :f AND ((") + ")", {**params, "f": folder_id}
    cfg = access.retention_config(conn)
    rows = conn.execute(sql + " ORDER BY r.created_at DESC", params).fetchall()
    reading = reading or clock.read(cfg.retention.rtc_path)
    rows = [r for r in rows if access.allows(r["permission"], min_permission)]
    if len(rows) < 64:
        return [r for r in rows if retention.visible(cfg, r, reading)]
    # Many rows (search over everything visible): a deadline grows with the creation time, so per clock the
    # hidden rows are those created at or before one cut-off, found by bisection instead of per row.
    rcfg = cfg.retention
    sys_cut = _past_cutoff(rcfg, [r["created_at"] for r in rows], reading.system)
    if reading.rtc is None:
        return [r for r in rows if not (sys_cut is not None and r["created_at"] <= sys_cut)]
    rtc_of = [r["created_at_rtc"] if r["created_at_rtc"] is not None else r["created_at"] for r in rows]
    rtc_cut = _past_cutoff(rcfg, rtc_of, reading.rtc)
    return [r for r, rtc in zip(rows, rtc_of, strict=True)
            if not ((sys_cut is not None and r["created_at"] <= sys_cut) or (rtc_cut is not None and rtc <= rtc_cut))]


def _past_cutoff(rcfg, created: list[float], now: float) -> float | None:
    """The latest creation time in `created` that is past its deadline at `now` (None: none is)."""
    values = sorted(set(created))
    lo, hi = 0, len(values)  # values[:lo] are past, values[hi:] are not
    while lo < hi:
        mid = (lo + hi) // 2
        if now >= retention.deadline(rcfg, values[mid]):
            lo = mid + 1
        else:
            hi = mid
    return values[lo - 1] if lo else None


def list_for_user(conn: Connection, user: User, folder_id: int | None = None) -> list[RecordingSummary]:
    """Everything the user can see across their folders (or in one folder they may read), audited."""
    if not user.can_read_content:
        return []
    folders.ensure_default(conn, user)
    rows = visible_rows(conn, user, folder_id=folder_id)
    result = [_summary(r, conn.cfg, folder_name=r["folder_name"] or folders.DEFAULT_NAME,
                       permission=r["permission"]) for r in rows]
    with transaction(conn):
        audit.record(conn, user.actor, "recording.list", f"folder:{folder_id}" if folder_id else user.actor,
                     detail=f"count:{len(result)}", role=access.content_role(user))
    return result


def statuses_for_user(conn: Connection, user: User) -> list[dict]:
    """Status and progress only (no titles): polled by the list page, so not a content read."""
    return [{"id": r["id"], "status": r["status"], "progress": round(r["progress"], 3)}
            for r in visible_rows(conn, user)]


def get_recording(conn: Connection, user: User, rec_id: str, action: str = "recording.read") -> RecordingSummary:
    row = access.require_recording(conn, user, rec_id, action)
    return _summary(row, conn.cfg, folder_name=_folder_name(conn, row["folder_id"]),
                    permission=access.recording_permission(conn, user, row, conn.cfg))


def default_speaker_name(speaker: int) -> str:
    """What a speaker is called until a caseworker names them (appliance/speakers.py)."""
    return f"Talare {speaker}"


@dataclass(frozen=True)
class TranscriptSegment(Segment):
    """A transcript line as people and the rest of the product see it: the latest edit wins over the
    machine text (`machine_text`); `edited` says whether it was edited, `edit_id` the latest edit (0: none).
    `speaker` is the line's speaker (a caseworker's correction wins over the machine's), `speaker_name` what
    they are called in this recording ("Mamma", else "Talare N"; empty when unknown)."""

    idx: int = 0
    edited: bool = False
    machine_text: str = ""
    edit_id: int = 0
    speaker_name: str = ""

    def other_language(self, recording_language: str) -> bool:
        """An interpreted meeting's line in the interpreter's other language (shown marked, not for the assistant)."""
        return self.language is not None and self.language != recording_language


# The latest edit per (recording, idx) is applied on read: the asr worker may replace segment rows, edits stay.
# The same holds for speaker corrections (segment_speakers); names come from recording_speakers.
_SEGMENTS_SQL = (
    'SELECT s.idx, s.start, s."end", s.text, s.language, e.id AS edit_id, e.after AS edited_text, '
    "coalesce(ss.speaker, s.speaker) AS speaker, rs.name AS speaker_name FROM segments s "
    "LEFT JOIN segment_edits e ON e.id = (SELECT max(x.id) FROM segment_edits x "
    "WHERE x.recording_id = s.recording_id AND x.idx = s.idx) "
    "LEFT JOIN segment_speakers ss ON ss.recording_id = s.recording_id AND ss.idx = s.idx "
    "LEFT JOIN recording_speakers rs ON rs.recording_id = s.recording_id "
    "AND rs.speaker = coalesce(ss.speaker, s.speaker) WHERE s.recording_id = ?")


def _transcript_segment(r) -> TranscriptSegment:
    edited = r["edit_id"] is not None
    speaker = r["speaker"]
    name = r["speaker_name"] or (default_speaker_name(speaker) if speaker is not None else "")
    return TranscriptSegment(r["start"], r["end"], r["edited_text"] if edited else r["text"], speaker=speaker,
                             language=r["language"], idx=r["idx"], edited=edited, machine_text=r["text"],
                             edit_id=r["edit_id"] or 0, speaker_name=name)


def transcript_segments(conn: Connection, rec_id: str) -> list[TranscriptSegment]:
    """Segments (edited text where edited) of a recording the caller has already authorised with
    access.require_recording. Search, the assistant and exports read the transcript through this."""
    rows = conn.execute(_SEGMENTS_SQL + " ORDER BY s.idx", (rec_id,))
    return [_transcript_segment(r) for r in rows]


def transcript_segment(conn: Connection, rec_id: str, idx: int) -> TranscriptSegment | None:
    """One segment (edited text where edited), or None; the caller has authorised the recording."""
    row = conn.execute(_SEGMENTS_SQL + " AND s.idx = ?", (rec_id, idx)).fetchone()
    return _transcript_segment(row) if row is not None else None


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
    audio_life.require_audio(conn.cfg, row)  # shredded ahead of the text: 410, the page says why
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
    """The caseworker (or an editor) has copied the reviewed text into the case system (or takes that back).
    With `[retention] audio_shred = transferred` the audio is gone from this moment (audio_life.py; the caller
    then runs `audio_life.shred_if_due`); taking the marking back does not bring it back."""
    access.require_recording(conn, user, rec_id, "recording.mark_transferred")
    with transaction(conn):
        conn.execute("UPDATE recordings SET transferred_at = ? WHERE id = ?",
                     (clock.now() if transferred else None, rec_id))


def set_interpreter(conn: Connection, user: User, rec_id: str, interpreter_language: str | None) -> None:
    """Mark a recording that is not transcribed yet (a live one just started) as held through an interpreter
    speaking `interpreter_language` (editor rights; audited with the language code)."""
    row = access.require_recording(conn, user, rec_id, "recording.interpreter")
    language = parse_interpreter_language(interpreter_language, row["language"])
    if row["status"] == "ready":
        raise ApplianceError("Utskriften är redan klar; tolkens språk kan bara anges innan.")
    with transaction(conn):
        conn.execute("UPDATE recordings SET interpreter_language = ? WHERE id = ?", (language, rec_id))
        audit.record(conn, user.actor, "recording.interpreted", f"recording:{rec_id}",
                     role=access.content_role(user), detail=language or "none")


def rename_recording(conn: Connection, user: User, rec_id: str, title: str) -> None:
    """An editor (or the folder owner) changes the title (audited as the access, never the title itself)."""
    access.require_recording(conn, user, rec_id, "recording.rename")
    title = (title or "").strip()[:MAX_TITLE]
    if not title:
        raise ApplianceError("Ge inspelningen en titel.")
    with transaction(conn):
        conn.execute("UPDATE recordings SET title = ? WHERE id = ?", (title, rec_id))


def move_recording(conn: Connection, user: User, rec_id: str, target_folder_id: int | str) -> int:
    """Move a recording to another folder (NotFound otherwise): out of its folder only with owner rights on the
    recording (its creator, or the owner of the folder it lies in), into a folder the user may put recordings
    in. The creator stays its owner wherever it goes; the audit record names both folders and the owner."""
    row = access.require_recording(conn, user, rec_id, "recording.move")
    target = access.require_folder(conn, user, target_folder_id, "folder.move_in")
    with transaction(conn):
        conn.execute("UPDATE recordings SET folder_id = ? WHERE id = ?", (target["id"], rec_id))
        audit.record(conn, user.actor, "recording.moved", f"recording:{rec_id}", role=access.content_role(user),
                     data={"from": f"folder:{row['folder_id']}", "to": f"folder:{target['id']}",
                           "owner": f"user:{row['owner_id']}"})
    return int(target["id"])


# --- the recording's side of its transcription (the asr unit, services/asr.py) ----------------------

def _transcription_failed(conn: Connection, rec_id: str, message: str, code: str) -> None:
    conn.execute("UPDATE recordings SET status = 'failed', error = ? WHERE id = ?", (message, rec_id))
    audit.record(conn, ASR_ACTOR, "recording.transcribe", f"recording:{rec_id}", result="failed", detail=code)


def _transcription_released(conn: Connection, rec_id: str) -> None:
    conn.execute("UPDATE recordings SET status = 'queued' WHERE id = ?", (rec_id,))


def _transcription_postponed(conn: Connection, rec_id: str, message: str) -> None:
    """The transcription server is down: the recording waits in the queue and its page says why."""
    conn.execute("UPDATE recordings SET status = 'queued', error = ? WHERE id = ?", (message, rec_id))
    audit.record(conn, ASR_ACTOR, "recording.transcribe", f"recording:{rec_id}", result="failed",
                 detail="asr_unavailable")


TRANSCRIBE = jobs.JobKind("transcribe", MSG_ATTEMPTS, _transcription_failed, _transcription_released,
                          _transcription_postponed)


@dataclass(frozen=True)
class TranscriptionInput:
    """What the asr unit needs to transcribe a stored recording: its audio key and the caseworker's hints.
    `audio_gone`: the audio was shredded ahead of the text (audio_life.py): there is nothing to transcribe."""

    dek: bytes
    language: str | None
    speakers_hint: int | None
    audio_gone: bool = False
    interpreter_language: str | None = None  # an interpreted meeting: transcribe each line in its language


def transcription_input(conn: Connection, rec_id: str) -> TranscriptionInput | None:
    """The recording's audio key and hints (None: deleted meanwhile). Worker side: no user, no audit."""
    row = conn.execute("SELECT * FROM recordings WHERE id = ?", (rec_id,)).fetchone()
    if row is None:
        return None
    gone = conn.cfg is not None and audio_life.life(conn.cfg, row).gone
    return TranscriptionInput(row["dek"], row["language"], row["speakers_hint"], gone, row["interpreter_language"])


def start_transcription(conn: Connection, rec_id: str) -> TranscriptionInput | None:
    """Mark the recording as being transcribed; returns what the worker needs (None: deleted meanwhile). A
    recording whose audio is gone keeps its status and transcript (the worker then calls
    `transcription_refused`)."""
    found = transcription_input(conn, rec_id)
    if found is not None and not found.audio_gone:
        conn.execute("UPDATE recordings SET status = 'transcribing', progress = 0, error = NULL WHERE id = ?",
                     (rec_id,))
    return found


def transcription_refused(conn: Connection, rec_id: str) -> None:
    """Inside the job's result transaction: the audio is gone, the transcript stays as it was (audited)."""
    conn.execute("UPDATE recordings SET status = 'ready', progress = 1 WHERE id = ? AND status != 'ready'",
                 (rec_id,))
    audit.record(conn, ASR_ACTOR, "recording.transcribe", f"recording:{rec_id}", result="denied",
                 detail="audio_shredded")


def set_transcription_progress(conn: Connection, rec_id: str, progress: float) -> None:
    conn.execute("UPDATE recordings SET progress = ? WHERE id = ?", (progress, rec_id))


def mark_transcribed(conn: Connection, rec_id: str, *, language: str | None = None,
                     duration: float | None = None) -> None:
    """The transcript is final: the recording is ready (a language or duration Whisper found is kept)."""
    conn.execute("UPDATE recordings SET status = 'ready', progress = 1, error = NULL, "
                 "language = coalesce(?, language), duration = coalesce(duration, ?), "
                 "transcribed_at = coalesce(transcribed_at, ?) WHERE id = ?",
                 (language, duration, clock.now(), rec_id))


def counts_by_status(conn: Connection) -> dict[str, int]:
    """How many recordings are in each status (health figures for IT; no ids, no titles)."""
    return {r[0]: r[1] for r in conn.execute("SELECT status, count(*) FROM recordings GROUP BY status")}
