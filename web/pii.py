"""The Personuppgifter tab (pseudonymization review) and the transcript export.

`/recordings/<rec_id>/personal-data`: the transcript with detected personal data highlighted and the list
of detections with their placeholders; editors confirm, remove (reject) or add their own. Viewers see it.
`/recordings/<rec_id>/export.txt` and `export.docx`: the transcript as plain text or a Word file (web/exports.py,
built in memory, never stored), pseudonymized unless the caseworker ticks "include personal data" for this one
download (audited as `pii.reveal`). `?panel=1` sends the tab alone for the recording page's Personuppgifter tab
(static/workspace.js), and its forms come back there. Everything goes through
appliance.transcripts.pseudonymize, which authorises with access.require_recording (NotFound → 404).
"""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for

from appliance.recordings import recordings
from appliance.transcripts import pseudonymize
from web import db, exports
from web.auth import login_required
from web.errors import change_and_flash
from web.i18n import _
from web.views import clock_time, local_time

bp = Blueprint("pii", __name__)


@bp.get("/recordings/<rec_id>/personal-data")
@login_required
def index(rec_id: str):
    conn = db()
    entities, marked = pseudonymize.review(conn, g.user, rec_id)  # NotFound → 404 (audited)
    rec = recordings.get_recording(conn, g.user, rec_id)
    page = "_panel.html" if request.args.get("panel") == "1" else "personal_data.html"
    return render_template(page, panel_template="_personal_data_panel.html", panel=page == "_panel.html", rec=rec,
                           entities=entities, marked=marked, kinds=pseudonymize.KIND_NAMES)


def _back(rec_id: str):
    """Back to the page, or to the recording page's Personuppgifter tab that sent the form (?panel=1)."""
    panel = "1" if request.form.get("panel") == "1" else None
    return redirect(url_for("pii.index", rec_id=rec_id, panel=panel), code=303)


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


@bp.get("/recordings/<rec_id>/export.<any(txt, docx):fmt>")
@login_required
def export(rec_id: str, fmt: str):
    conn = db()
    rec = recordings.get_recording(conn, g.user, rec_id, "recording.export")  # NotFound → 404 (audited)
    reveal = request.args.get("personal") == "1"
    segments = pseudonymize.segments_for_model(conn, rec_id, reveal=reveal, user=g.user)
    lines = [exports.Line(clock_time(s.start), s.speaker_name or "", s.text.strip()) for s in segments]
    name = "utskrift-personuppgifter" if reveal else "utskrift-pseudonymiserad"
    if fmt == "txt":
        return exports.attachment(exports.transcript_txt(lines), fmt, name)
    note = (_("Med personuppgifter i klartext.") if reveal else
            _("Pseudonymiserad: personuppgifter är ersatta med platshållare, till exempel [PERSON 1]."))
    note += " " + _("Inspelad %(when)s, längd %(length)s.", when=local_time(rec.created_at),
                    length=clock_time(rec.duration))
    return exports.attachment(exports.transcript_docx(_("Utskrift"), note, lines), fmt, name)
