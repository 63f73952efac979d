"""Content pages: the recording list (across folders), upload, a recording with its transcript, the audio
stream, and the editor's actions (rename, move, mark transferred, delete).

Every content route goes through the core (appliance.users.access.require_recording / require_folder via
recordings.* and folders.*), which audits it and raises NotFound for anything the user may not see or
change; that becomes a 404, never a 403.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from appliance.errors import ApplianceError, BadAudio, NotFound
from appliance.recordings import audio_life, folders, recordings, reminders
from appliance.transcripts import edits, speakers, word_detail
from appliance.users import access
from web import appliance, db, workspace
from web.auth import login_required, wants_json
from web.errors import change_and_flash, too_large, too_large_message
from web.i18n import _

log = logging.getLogger(__name__)

bp = Blueprint("rec", __name__)

ACCEPT_AUDIO = "audio/*,.wav,.mp3,.m4a,.ogg,.opus,.webm,.flac"
PENDING = ("queued", "transcribing")


@bp.get("/")
@login_required
def index():
    conn = db()
    current = None
    if request.args.get("folder"):
        current = folders.get_folder(conn, g.user, request.args["folder"])  # NotFound → 404 (audited)
    recs = recordings.list_for_user(conn, g.user, current.id if current else None)
    reminder = reminders.due(appliance().cfg, conn, g.user) if g.user.can_read_content else None
    if reminder is not None:
        reminders.note_shown(conn, g.user, reminder)
    return render_template("index.html", recordings=recs, pending=any(r.status in PENDING for r in recs),
                           reminder=reminder, folders=folders.list_for_user(conn, g.user), current=current)


@bp.get("/recordings/status")
@login_required
def status():
    return jsonify(recordings=recordings.statuses_for_user(db(), g.user))


def upload_form(error: str | None = None, title: str = "", status: int = 200, folder: str | None = None,
                interpreter: str = ""):
    conn = db()
    choices = folders.writable(conn, g.user) if g.user is not None else []
    selected = folder or request.args.get("folder") or ""  # never request.form here: the 413 handler calls us
    if not any(str(f.id) == selected for f in choices):
        selected = str(next((f.id for f in choices if f.is_default and f.is_owner), ""))
    return render_template("upload.html", error=error, title=title, accept=ACCEPT_AUDIO,
                           max_mb=appliance().cfg.web.max_upload_mb, folders=choices, selected=selected,
                           interpreter=interpreter), status


@bp.errorhandler(RequestEntityTooLarge)
def _upload_too_large(exc: RequestEntityTooLarge):
    """Too big an upload: the upload page shows its form again with the limit; anything else the plain 413."""
    if request.endpoint == "rec.upload" and g.get("user") is not None and not wants_json():
        return upload_form(too_large_message(), "", 413)
    return too_large(exc)


@bp.route("/upload", methods=["GET", "POST"])
@login_required
def upload():
    if request.method == "GET":
        return upload_form()
    title = request.form.get("title", "")
    folder = request.form.get("folder_id") or None
    if not g.user.can_read_content:
        return upload_form(_("Ditt konto har ingen behörighet att ladda upp inspelningar."), title, 403)
    file = request.files.get("file")
    data = file.read() if file is not None else b""  # in memory (web.security.InMemoryRequest), never disk
    if file is None or (not file.filename and not data):
        return upload_form(_("Välj en ljudfil att ladda upp."), title, 400, folder)
    try:
        rec_id = recordings.create_from_upload(appliance(), db(), g.user, title=title,
                                               filename=file.filename or "", data=data,
                                               folder_id=folder, speakers=request.form.get("speakers"),
                                               interpreter_language=request.form.get("interpreter_language"))
    except NotFound:
        raise  # a folder the user may not put recordings in: 404, as for any content they may not see
    except (BadAudio, ApplianceError) as exc:  # the message says what to do; nothing was stored
        return upload_form(str(exc), title, 400, folder, request.form.get("interpreter_language", ""))
    return redirect(url_for("rec.recording", rec_id=rec_id), code=303)


@bp.get("/recordings/<rec_id>")
@login_required
def recording(rec_id: str):
    conn = db()
    rec = recordings.get_recording(conn, g.user, rec_id)  # NotFound → 404 (web.errors)
    segments = recordings.transcript_segments(conn, rec.id) if rec.status == "ready" else []
    targets = [f for f in folders.writable(conn, g.user) if f.id != rec.folder_id] if rec.is_owner else []
    return render_template("recording.html", rec=rec, segments=segments, pending=rec.status in PENDING,
                           move_targets=targets, speakers=speakers.list_speakers(conn, rec.id, segments),
                           diarization=speakers.diarization(conn, rec.id),
                           word_detail=word_detail.for_recording(conn, rec.id),
                           doubts=workspace.doubts(rec.id) if segments and rec.audio.available else {},
                           max_edit=workspace.max_edit_id(segments))


@bp.get("/recordings/<rec_id>/lines")
@login_required
def lines(rec_id: str):
    """Some lines as the page renders them, for static/edit.js to refresh them in place: `idx` (repeatable) and/or
    `since` (every line edited after that edit id, e.g. by "Rätta alla" in the Förslag tab). An audited read."""
    conn = db()
    rec = recordings.get_recording(conn, g.user, rec_id)  # NotFound → 404 (audited)
    wanted = {int(i) for i in request.args.getlist("idx") if i.isdigit()}
    since = _base(request.args.get("since"))
    segments = recordings.transcript_segments(conn, rec.id)
    shown = [s for s in segments if s.idx in wanted or (since is not None and s.edit_id > since)]
    doubts = workspace.doubts(rec.id) if shown and rec.audio.available else {}  # Whisper's doubt: while audio lives
    return render_template("_lines.html", rec=rec, segments=shown, doubts=doubts,
                           max_edit=workspace.max_edit_id(segments))


@bp.get("/recordings/<rec_id>/segments/<int:idx>/edit")
@login_required
def edit_segment_form(rec_id: str, idx: int):
    """A line's edit page: what "Redigera" opens without JavaScript (with it, the editor opens in the line)."""
    conn = db()
    rec = recordings.get_recording(conn, g.user, rec_id)  # NotFound → 404 (audited)
    seg = recordings.transcript_segment(conn, rec.id, idx)
    if seg is None:
        raise NotFound(_("Raden finns inte i utskriften."))
    segments = recordings.transcript_segments(conn, rec.id)
    return render_template("segment_edit.html", rec=rec, seg=seg,
                           speakers=speakers.list_speakers(conn, rec.id, segments))


def _back_to_line(rec_id: str, idx: int):
    return redirect(url_for("rec.recording", rec_id=rec_id, _anchor=f"seg-{idx}"), code=303)


def _base(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@bp.post("/recordings/<rec_id>/segments/<int:idx>/edit")
@login_required
def edit_segment(rec_id: str, idx: int):
    """Save a line's new text (editor rights). A form post without JS; fetch() gets JSON back."""
    conn = db()
    text, base = request.form.get("text", ""), _base(request.form.get("base"))
    if wants_json():
        try:
            edits.edit_segment(conn, g.user, rec_id, idx, text, base=base)
        except NotFound:
            raise
        except ApplianceError as exc:
            return jsonify(error=str(exc)), 409 if isinstance(exc, edits.EditConflict) else 400
        seg = recordings.transcript_segment(conn, rec_id, idx)
        return jsonify(text=seg.text, edited=seg.edited, edit_id=seg.edit_id)
    change_and_flash(lambda: edits.edit_segment(conn, g.user, rec_id, idx, text, base=base),
                     _("Raden är sparad."))
    return _back_to_line(rec_id, idx)


@bp.get("/recordings/<rec_id>/segments/<int:idx>/history")
@login_required
def segment_history(rec_id: str, idx: int):
    conn = db()
    seg, versions = edits.history(conn, g.user, rec_id, idx)  # NotFound → 404 (audited)
    rec = recordings.get_recording(conn, g.user, rec_id, "recording.edit_history")
    return render_template("segment_history.html", rec=rec, seg=seg, versions=versions)


@bp.post("/recordings/<rec_id>/segments/<int:idx>/revert")
@login_required
def revert_segment(rec_id: str, idx: int):
    conn = db()
    change_and_flash(lambda: edits.revert(conn, g.user, rec_id, idx, request.form.get("to", "")),
                     _("Den valda versionen är återställd."))
    return _back_to_line(rec_id, idx)


@bp.route("/recordings/<rec_id>/delete", methods=["GET", "POST"])
@login_required
def delete(rec_id: str):
    """Confirm, then delete now: audio, transcript and everything derived (key material at the next re-key)."""
    conn = db()
    if request.method == "GET":
        rec = recordings.get_recording(conn, g.user, rec_id, "recording.delete_confirm")
        return render_template("delete.html", rec=rec)
    recordings.delete_recording(appliance(), conn, g.user, rec_id)
    flash(_("Inspelningen är raderad."), "info")
    return redirect(url_for("rec.index"), code=303)


def shred_after_transfer(rec_ids: list[str]) -> None:
    """Right after the user marked recordings (or a draft of them) transferred: with `[retention] audio_shred =
    transferred` their audio is shredded now, in the user's name (appliance/recordings/audio_life.py)."""
    if audio_life.shred_if_due(appliance(), db(), rec_ids, actor=g.user.actor, role=access.content_role(g.user)):
        flash(_("Ljudet är raderat enligt kontorets regler. Utskriften finns kvar till gallringen."), "info")


@bp.post("/recordings/<rec_id>/transferred")
@login_required
def transferred(rec_id: str):
    value = request.form.get("value") == "1"
    recordings.mark_transferred(db(), g.user, rec_id, value)
    if value:
        shred_after_transfer([rec_id])
    return redirect(url_for("rec.recording", rec_id=rec_id), code=303)


@bp.post("/recordings/<rec_id>/rename")
@login_required
def rename(rec_id: str):
    change_and_flash(lambda: recordings.rename_recording(db(), g.user, rec_id, request.form.get("title", "")),
                     _("Titeln är ändrad."))
    return redirect(url_for("rec.recording", rec_id=rec_id), code=303)


@bp.post("/recordings/<rec_id>/move")
@login_required
def move(rec_id: str):
    recordings.move_recording(db(), g.user, rec_id, request.form.get("folder_id", ""))  # NotFound → 404
    flash(_("Inspelningen är flyttad."), "info")
    return redirect(url_for("rec.recording", rec_id=rec_id), code=303)


@bp.get("/recordings/<rec_id>/audio")
@login_required
def audio(rec_id: str):
    """Decrypted audio, streamed chunk by chunk, with single-range support (what <audio> asks for)."""
    rng = request.range  # None when absent or malformed (then the whole file, as RFC 9110 allows)
    start, end, partial = 0, None, False
    if rng is not None and rng.units == "bytes" and len(rng.ranges) == 1:
        start, end = rng.ranges[0]  # end exclusive or None; a negative start is a suffix range
        partial = True
    stream = recordings.open_audio(appliance(), db(), g.user, rec_id, start, end)
    if partial and (start >= stream.size or stream.start >= stream.end):
        next(iter(stream.chunks), None)  # runs the generator to its end: closes the blob file
        response = Response(status=416)
        response.headers["Content-Range"] = f"bytes */{stream.size}"
        response.headers["Accept-Ranges"] = "bytes"
        return response
    response = Response(stream.chunks, status=206 if partial else 200, mimetype=stream.mime,
                        direct_passthrough=True)
    response.headers["Content-Length"] = str(stream.end - stream.start)
    response.headers["Accept-Ranges"] = "bytes"
    if partial:
        response.headers["Content-Range"] = f"bytes {stream.start}-{stream.end - 1}/{stream.size}"
    return response
