"""Desk microphones in the web: pause, resume and stop a recording on one of the box's microphones, and its
state for the recording page's poll. Starting one is the new-recording form's (web/live.py → desk.start).

The web never touches a sound device: it writes requests through appliance.recordings.desk, which the `recorder` unit
carries out (services/recorder.py). Every id route checks access in the core (appliance.users.access, audited,
404 on deny). `_desk_mic.html` (controls and state, inside the live recording's section), `_desk_notice.html`
(why a desk recording ended early) and `_desk_devices.html` (the microphone picker of the new-recording form)
are includes; `desk_control(rec_id)`, `desk_devices()` and `desk_recorder_alive()` are template globals, so a
page includes them without its view passing anything.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, redirect, url_for

from appliance.errors import ApplianceError, NotFound
from appliance.recordings import desk
from web import appliance, db
from web.auth import login_required, wants_json
from web.errors import change_and_flash
from web.i18n import _

bp = Blueprint("desk", __name__)

_DONE = {desk.RECORDING: _("Inspelningen återupptas."), desk.PAUSED: _("Inspelningen pausas."),
         desk.STOPPED: _("Inspelningen stoppas. Utskriften blir klar strax.")}


@bp.app_template_global()
def desk_control(rec_id: str) -> desk.DeskControl | None:
    """For the recording page, which has already checked (and audited) the user's access."""
    return desk.control_of(db(), appliance().cfg, rec_id)


@bp.app_template_global()
def desk_devices() -> list[desk.DeviceInfo]:
    """Free microphones the recorder offers (device names are not content: no access check)."""
    return desk.free_devices(db(), appliance().cfg)


@bp.app_template_global()
def desk_recorder_alive() -> bool:
    return desk.recorder_info(db(), appliance().cfg).alive


@bp.get("/recordings/<rec_id>/desk")
@login_required
def status(rec_id: str):
    """The capture's state for the recording page's poll (viewer rights; null for other recordings)."""
    control = desk.status(db(), g.user, rec_id)
    return jsonify(desk=control.to_json() if control is not None else None)


def _steer(rec_id: str, desired: str):
    conn = db()
    if wants_json():
        try:
            control = desk.request(appliance(), conn, g.user, rec_id, desired)
        except NotFound:
            raise
        except ApplianceError as exc:
            return jsonify(error=str(exc)), 409
        return jsonify(desk=control.to_json())
    change_and_flash(lambda: desk.request(appliance(), conn, g.user, rec_id, desired), _DONE[desired])
    return redirect(url_for("rec.recording", rec_id=rec_id, _anchor="desk-mic"), code=303)


@bp.post("/recordings/<rec_id>/desk/pause")
@login_required
def pause(rec_id: str):
    return _steer(rec_id, desk.PAUSED)


@bp.post("/recordings/<rec_id>/desk/resume")
@login_required
def resume(rec_id: str):
    return _steer(rec_id, desk.RECORDING)


@bp.post("/recordings/<rec_id>/desk/stop")
@login_required
def stop(rec_id: str):
    return _steer(rec_id, desk.STOPPED)
