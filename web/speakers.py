"""Speakers on the recording page: name a speaker for the whole recording, give one line another speaker.

Both are editor actions decided by the core (appliance.transcripts.speakers via appliance.users.access:
audited, NotFound → 404).
A plain form post redirects back to the page; fetch() (web/static/speakers.js) gets JSON and updates the page
in place.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, redirect, request, url_for

from appliance.errors import ApplianceError, NotFound
from appliance.transcripts import speakers
from web import db
from web.auth import login_required, wants_json
from web.errors import change_and_flash
from web.i18n import _

bp = Blueprint("speakers", __name__)


def _json_or_redirect(change, success: str, anchor: str, rec_id: str):
    if wants_json():
        try:
            return jsonify(change())
        except NotFound:
            raise
        except ApplianceError as exc:
            return jsonify(error=str(exc)), 400
    change_and_flash(change, success)
    return redirect(url_for("rec.recording", rec_id=rec_id, _anchor=anchor), code=303)


@bp.post("/recordings/<rec_id>/speakers/<int:speaker>/name")
@login_required
def rename(rec_id: str, speaker: int):
    conn = db()

    def change() -> dict:
        name = speakers.rename(conn, g.user, rec_id, speaker, request.form.get("name", ""))
        return {"speaker": speaker, "name": name}

    return _json_or_redirect(change, _("Talaren har fått sitt namn på alla rader."), "speakers", rec_id)


@bp.post("/recordings/<rec_id>/segments/<int:idx>/speaker")
@login_required
def assign(rec_id: str, idx: int):
    conn = db()

    def change() -> dict:
        number = speakers.set_line_speaker(conn, g.user, rec_id, idx, request.form.get("speaker", ""))
        return {"idx": idx, "speaker": number, "name": speakers.names(conn, rec_id).get(
            number, speakers.default_name(number))}

    return _json_or_redirect(change, _("Raden har fått en annan talare."), f"seg-{idx}", rec_id)
