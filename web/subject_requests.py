"""Data-subject requests for the responsible person (`/subject-requests`): which recordings, drafts and chat
histories hold a personnummer (ids, owners, folders, deadlines: no content), and their erasure on a documented
request; and the notice owners see afterwards. Everything goes through appliance/compliance/subject_requests.py,
which checks the role (404 otherwise), audits and never stores or logs the number.

The number travels only in the POST body: it is never put in a URL, echoed into a page (the erasure form asks
for it again) or written to the access log (paths only, web/access_log.py).
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for

from appliance.compliance import subject_requests as dsr
from appliance.errors import ApplianceError
from web import appliance, db
from web.auth import login_required
from web.i18n import _

bp = Blueprint("dsr", __name__)


def _page(findings=None, erasure=None, rekey=None, error: str | None = None, status: int = 200):
    f = request.form
    return render_template("subject_requests.html", purposes=dsr.PURPOSES, findings=findings, erasure=erasure,
                           rekey=rekey, error=error, purpose=f.get("purpose", ""),
                           reference=dsr.reference_to_show(f.get("reference"))), status


def _responsible() -> None:
    if dsr.ROLE not in g.user.roles:
        abort(404)


@bp.get("/subject-requests")
@login_required
def index():
    _responsible()
    return _page()


@bp.post("/subject-requests/search")
@login_required
def search():
    _responsible()
    f = request.form
    try:
        findings = dsr.search(appliance(), db(), g.user, f.get("number"), purpose=f.get("purpose"),
                              reference=f.get("reference"))
    except ApplianceError as exc:
        return _page(error=str(exc), status=400)
    return _page(findings=findings)


@bp.post("/subject-requests/erase")
@login_required
def erase():
    _responsible()
    f = request.form
    try:
        erasure = dsr.erase(appliance(), db(), g.user, f.get("number"), reference=f.get("reference"),
                            confirmed=f.get("confirm") == "yes")
    except ApplianceError as exc:
        return _page(error=str(exc), status=400)
    conn = g.pop("db_conn", None)  # the re-key waits for every connection, this request's too
    if conn is not None:
        conn.close()
    rekey = dsr.complete(appliance(), actor=g.user.actor) if not erasure.empty else None
    return _page(erasure=erasure, rekey=rekey)


@bp.post("/notices/<notice_id>/seen")
@login_required
def notice_seen(notice_id: str):
    dsr.mark_seen(db(), g.user, notice_id)
    flash(_("Meddelandet är markerat som läst."), "info")
    return redirect(url_for("rec.index"), code=303)


def _notices() -> dict:
    user = g.get("user")
    if user is None or not user.can_read_content:  # only owners of material get them
        return {"user_notices": []}
    return {"user_notices": dsr.notices_for(db(), user)}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(_notices)
