"""The Personuppgifter tab (pseudonymization review) and the transcript export.

`/recordings/<rec_id>/personal-data`: the transcript with detected personal data highlighted and the list
of detections with their placeholders; editors confirm, remove (reject) or add their own. Viewers see it.
`/recordings/<rec_id>/export.txt`: the transcript as plain text, pseudonymized unless the caseworker ticks
"include personal data" for this one download (audited as `pii.reveal`). Everything goes through
appliance.transcripts.pseudonymize, which authorises with access.require_recording (NotFound → 404).
"""

from __future__ import annotations

from flask import Blueprint, Response, g, redirect, render_template, request, url_for

from appliance.recordings import recordings
from appliance.transcripts import pseudonymize
from appliance.users import access
from web import db
from web.auth import login_required
from web.errors import change_and_flash
from web.i18n import _
from web.views import clock_time

bp = Blueprint("pii", __name__)


@bp.get("/recordings/<rec_id>/personal-data")
@login_required
def index(rec_id: str):
    conn = db()
    entities, marked = pseudonymize.review(conn, g.user, rec_id)  # NotFound → 404 (audited)
    rec = recordings.get_recording(conn, g.user, rec_id)
    return render_template("personal_data.html", rec=rec, entities=entities, marked=marked,
                           kinds=pseudonymize.KIND_NAMES)


def _back(rec_id: str):
    return redirect(url_for("pii.index", rec_id=rec_id), code=303)


@bp.post("/recordings/<rec_id>/personal-data/decide")
@login_required
def decide(rec_id: str):
    status = request.form.get("status", "")
    messages = {"confirmed": _("Uppgiften döljs för assistenten och i exporter."),
                "rejected": _("Uppgiften visas som den är."),
                "pending": _("Uppgiften är återställd till oprövad (döljs).")}
    change_and_flash(lambda: pseudonymize.decide(db(), g.user, rec_id, request.form.get("entity", ""), status),
                     messages.get(status, ""))
    return _back(rec_id)


@bp.post("/recordings/<rec_id>/personal-data/add")
@login_required
def add(rec_id: str):
    change_and_flash(lambda: pseudonymize.add_manual(db(), g.user, rec_id, request.form.get("value", ""),
                                                     request.form.get("kind", "person")),
                     _("Tillagt: det döljs överallt i utskriften."))
    return _back(rec_id)


@bp.get("/recordings/<rec_id>/export.txt")
@login_required
def export(rec_id: str):
    conn = db()
    access.require_recording(conn, g.user, rec_id, "recording.export")  # NotFound → 404 (audited)
    reveal = request.args.get("personal") == "1"
    segments = pseudonymize.segments_for_model(conn, rec_id, reveal=reveal, user=g.user)
    lines = [f"[{clock_time(s.start)}] {s.text.strip()}" for s in segments]
    body = "\n".join(lines) + "\n"
    name = "utskrift-personuppgifter.txt" if reveal else "utskrift-pseudonymiserad.txt"
    resp = Response(body, content_type="text/plain; charset=utf-8")  # mimetype= would add a second charset
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp
