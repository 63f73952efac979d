"""Live recording in the web: the new-recording form (consent, source), the client leaflet, and the browser
dictaphone's endpoints (audio chunks, pause, resume, stop) and the live transcript feed.

The browser sends raw 16 kHz mono s16le PCM pieces (web/static/recorder.js) to
POST /recordings/<id>/chunks/<seq>; the answer (JSON) is the acknowledgement — the piece is encrypted and
on disk (appliance/live.py). Every id route checks access in the core (appliance.users.access, audited, 404 on
deny); bad input gets a Swedish message and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for

from appliance.errors import ApplianceError, NotFound
from appliance.recordings import desk, folders, live, recordings
from appliance.users import access
from web import appliance, db
from web.auth import login_required, wants_json
from web.i18n import _

bp = Blueprint("live", __name__)

LEAFLET_VERSION = "1"
_MAX_CHUNK_BYTES = live.MAX_CHUNK_SECONDS * live.SAMPLE_RATE * live.SAMPLE_WIDTH


def _form(error: str | None = None, status: int = 200):
    conn = db()
    choices = folders.writable(conn, g.user) if g.user.can_read_content else []
    form = request.form if request.method == "POST" else request.args
    selected = form.get("folder_id") or ""
    if not any(str(f.id) == selected for f in choices):
        selected = str(next((f.id for f in choices if f.is_default and f.is_owner), ""))
    return render_template("record_new.html", error=error, folders=choices, selected=selected,
                           title=form.get("title", ""), speakers=form.get("speakers", ""),
                           interpreter=form.get("interpreter_language", ""),
                           source=form.get("source", "browser"), device=form.get("device", ""),
                           max_minutes=appliance().cfg.recording.max_minutes), status


@bp.route("/recordings/new", methods=["GET", "POST"])
@login_required
def new():
    """A new recording: title, folder, number of speakers, source, and the client's informed consent."""
    if request.method == "GET":
        return _form()
    if not g.user.can_read_content:
        return _form(_("Ditt konto har ingen behörighet att spela in samtal."), 403)
    source = request.form.get("source", "browser")
    fields = {"title": request.form.get("title", ""), "folder_id": request.form.get("folder_id") or None,
              "speakers": request.form.get("speakers"), "consent_confirmed": request.form.get("consent") == "yes"}
    interpreter = request.form.get("interpreter_language")
    try:
        recordings.parse_interpreter_language(interpreter)  # checked before anything is stored
        if source == "desk":  # the box's own microphones: the recorder unit captures (appliance/desk.py)
            rec_id = desk.start(appliance(), db(), g.user, device=request.form.get("device", ""), **fields)
        else:
            rec_id = live.start(appliance(), db(), g.user, source=source, **fields)
        if interpreter:  # an interpreted meeting: each line in its language
            recordings.set_interpreter(db(), g.user, rec_id, interpreter)
    except NotFound:
        raise  # a folder the user may not record into: 404 as everywhere
    except ApplianceError as exc:  # consent, disk space, source: the message says what to do; nothing stored
        return _form(str(exc), 400)
    return redirect(url_for("rec.recording", rec_id=rec_id), code=303)


@bp.get("/leaflet")
@login_required
def leaflet():
    """The printable client information (Swedish, plain language): no content, the same for everyone."""
    cfg = appliance().cfg
    return render_template("leaflet.html", hours=int(cfg.retention.max_age_hours), version=LEAFLET_VERSION)


def _error(exc: ApplianceError, status: int = 409):
    return jsonify(error=str(exc)), status


@bp.post("/recordings/<rec_id>/chunks/<int:seq>")
@login_required
def chunk(rec_id: str, seq: int):
    """One piece of audio from the browser dictaphone; the JSON answer is its acknowledgement."""
    conn = db()
    access.require_recording(conn, g.user, rec_id, live.ACTION)  # NotFound → 404 (audited)
    if (request.content_length or 0) > _MAX_CHUNK_BYTES:
        return _error(live.BadChunk(_("Ljudbiten är för stor.")), 413)
    try:
        ack = live.append_chunk(appliance(), conn, rec_id, seq, request.get_data(cache=False))
    except live.BadChunk as exc:
        return _error(exc, 400)
    except live.LiveError as exc:
        return _error(exc)
    return jsonify(ack.to_json())


def _control(rec_id: str, change, done: str):
    conn = db()
    try:
        result = change(conn)
    except NotFound:
        raise
    except ApplianceError as exc:
        if wants_json():
            return _error(exc)
        flash(str(exc), "error")
        return redirect(url_for("rec.recording", rec_id=rec_id), code=303)
    gaps = result.gaps if isinstance(result, live.StopResult) else ()
    if wants_json():
        return jsonify(state=result if isinstance(result, str) else "stopped", gaps=list(gaps))
    flash(done, "info")
    if gaps:
        flash(_("%(n)d ljudbitar kom aldrig fram och har ersatts med tystnad; det syns i utskriften.", n=len(gaps)),
              "warning")
    return redirect(url_for("rec.recording", rec_id=rec_id), code=303)


@bp.post("/recordings/<rec_id>/pause")
@login_required
def pause(rec_id: str):
    return _control(rec_id, lambda conn: live.pause(appliance(), conn, g.user, rec_id,
                                                    at_seq=request.form.get("at_seq")), _("Inspelningen är pausad."))


@bp.post("/recordings/<rec_id>/resume")
@login_required
def resume(rec_id: str):
    return _control(rec_id, lambda conn: live.resume(appliance(), conn, g.user, rec_id,
                                                     at_seq=request.form.get("at_seq")), _("Inspelningen fortsätter."))


@bp.post("/recordings/<rec_id>/stop")
@login_required
def stop(rec_id: str):
    """Stop (also a recording whose browser died: from its page, everything received is kept)."""
    return _control(rec_id, lambda conn: live.stop(appliance(), conn, g.user, rec_id,
                                                   chunks=request.form.get("chunks")),
                    _("Inspelningen är stoppad. Utskriften blir klar om några sekunder."))


@bp.get("/recordings/<rec_id>/live")
@login_required
def feed(rec_id: str):
    """The live transcript after line `after` (provisional while recording), marks, state: polled by live.js."""
    conn = db()
    row = access.require_recording(conn, g.user, rec_id, "recording.live")  # a content read: audited
    session = live.session(conn, rec_id)
    try:
        after = int(request.args.get("after", "-1"))
    except ValueError:
        after = -1
    # Speakers while recording are provisional (the asr unit labels each stretch as it goes); settled at stop.
    segments = [{"idx": s.idx, "start": round(s.start, 2), "end": round(s.end, 2), "text": s.text,
                 "speaker": s.speaker, "speaker_name": s.speaker_name}
                for s in recordings.transcript_segments(conn, rec_id) if s.idx > after]
    return jsonify(status=row["status"], state=session.state if session else None, progress=round(row["progress"], 3),
                   stop_reason=session.stop_reason if session else None,
                   seconds=round(live.received_seconds(conn, rec_id), 1) if session else row["duration"],
                   segments=segments,
                   marks=[{"kind": m.kind, "at": round(m.at_seconds, 2)} for m in live.marks(conn, rec_id)])


@dataclass(frozen=True)
class LiveView:
    """What the recording page shows of a live recording (None for uploads)."""

    session: live.LiveSession
    next_seq: int
    seconds: float
    segments: list  # the transcript so far (provisional while recording)
    marks_before: dict[int, list[live.Mark]]  # transcript line idx -> marks shown just before it
    marks_after: list[live.Mark]  # marks after the last line
    chunk_seconds: float  # how long the browser's pieces are


_SHOWN_MARKS = ("pause", "gap", "max_length")


@bp.app_template_global()
def live_info(rec) -> LiveView | None:
    """For the recording page, which has already checked (and audited) the user's access to `rec`."""
    conn = db()
    session = live.session(conn, rec.id)
    if session is None:
        return None
    segments = recordings.transcript_segments(conn, rec.id)
    shown = [m for m in live.marks(conn, rec.id) if m.kind in _SHOWN_MARKS]
    before: dict[int, list[live.Mark]] = {}
    i = 0
    for seg in segments:
        while i < len(shown) and shown[i].at_seconds <= seg.start + 0.05:
            before.setdefault(seg.idx, []).append(shown[i])
            i += 1
    return LiveView(session, live.next_seq(conn, rec.id), live.received_seconds(conn, rec.id), segments, before,
                    shown[i:], appliance().cfg.recording.chunk_seconds)
