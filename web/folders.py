"""Folder pages: my folders and folders shared with me, one folder's recordings, create, rename, share
and unshare. Every route goes through the core (appliance.recordings.folders → appliance.users.access.require_folder),
which audits the decision and raises NotFound (404, never 403) for a folder the user may not use.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from appliance.errors import ApplianceError
from appliance.recordings import folders, recordings
from web import db
from web.auth import login_required
from web.errors import change_and_flash
from web.i18n import _

bp = Blueprint("folders", __name__)

ROLE_LABELS = {"owner": "Ägare", "editor": "Redigera", "viewer": "Läsa"}


@bp.app_template_filter("folder_role")
def folder_role(role: str | None) -> str:
    return _(ROLE_LABELS.get(role or "", role or ""))


def _back_to_folder(folder_id: int | str):
    return redirect(url_for("folders.folder", folder_id=folder_id), code=303)


@bp.route("/folders", methods=["GET", "POST"])
@login_required
def index():
    conn = db()
    error, name = None, ""
    if request.method == "POST":
        name = request.form.get("name", "")
        try:
            fid = folders.create_folder(conn, g.user, name)
        except ApplianceError as exc:
            error = str(exc)
        else:
            flash(_("Mappen är skapad."), "info")
            return _back_to_folder(fid)
    mine = folders.list_for_user(conn, g.user)
    return render_template("folders.html", own=[f for f in mine if f.is_owner],
                           shared=[f for f in mine if not f.is_owner], error=error, name=name), 400 if error else 200


@bp.get("/folders/<int:folder_id>")
@login_required
def folder(folder_id: int):
    conn = db()
    current = folders.get_folder(conn, g.user, folder_id)  # NotFound → 404 (audited)
    recs = recordings.list_for_user(conn, g.user, current.id)
    candidates = folders.share_candidates(conn, g.user) if current.is_owner else []
    shared_ids = {s.user_id for s in current.shares}
    return render_template("folder.html", folder=current, recordings=recs,
                           candidates=[c for c in candidates if c[0] not in shared_ids])


@bp.post("/folders/<int:folder_id>/rename")
@login_required
def rename(folder_id: int):
    change_and_flash(lambda: folders.rename_folder(db(), g.user, folder_id, request.form.get("name", "")),
                     _("Mappen har fått nytt namn."))
    return _back_to_folder(folder_id)


@bp.post("/folders/<int:folder_id>/share")
@login_required
def share(folder_id: int):
    change_and_flash(lambda: folders.share(db(), g.user, folder_id, request.form.get("user_id", ""),
                                           request.form.get("role", "")), _("Mappen är delad."))
    return _back_to_folder(folder_id)


@bp.post("/folders/<int:folder_id>/unshare")
@login_required
def unshare(folder_id: int):
    if folders.unshare(db(), g.user, folder_id, request.form.get("user_id", "")):  # NotFound → 404
        flash(_("Delningen är borttagen."), "info")
    else:
        flash(_("Mappen var inte delad med den användaren."), "error")
    return _back_to_folder(folder_id)
