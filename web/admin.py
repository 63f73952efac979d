"""User administration for the `admin` role: roles, disable/enable, TOTP reset, invitations, API tokens.

Everyone else gets 404, as for any page they may not see. Admin never grants content access (that is
decided in the core by role). Every change is audited in the core; secrets and links are shown once, in
the response to the request that created them, and never stored in a cookie or flashed.
"""

from __future__ import annotations

import logging
import smtplib

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from appliance.errors import ApplianceError, NotFound
from appliance.ids import NO_ID
from appliance.platform import audit
from appliance.platform.db import transaction
from appliance.users import accounts, api_tokens, guidelines, invitations
from web import appliance, db
from web.auth import login_required
from web.i18n import _

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

ROLE = "admin"
ROLE_LABELS = {"caseworker": "Handläggare", "manager": "Chef", "responsible": "Ansvarig för behandlingen",
               "admin": "Administratör (IT)"}


@bp.before_request
@login_required
def _admins_only():
    if ROLE not in g.user.roles:
        abort(404)


def _roles_from_form() -> list[str]:
    return [r for r in accounts.ROLES if request.form.get(f"role_{r}") == "on"]


def _page(*, status: int = 200, created_link: str | None = None, created_for: str | None = None,
          mailed: bool = False, error: str | None = None, form: dict | None = None):
    conn = db()
    cfg = appliance().cfg
    users = accounts.list_users(conn)
    pending = {u.id: invitations.pending(conn, u.id) for u in users if u.invited}
    return render_template("admin_users.html", users=users, pending=pending, roles=accounts.ROLES,
                           role_labels=ROLE_LABELS, current_version=cfg.guidelines.version,
                           created_link=created_link, created_for=created_for, mailed=mailed, error=error,
                           form=form or {}, mail_enabled=cfg.mail.enabled,
                           hours=cfg.accounts.invitation_hours, guidelines=guidelines), status


def _user_id(user_id: int) -> int:
    """The id of an existing user; an unknown (or out-of-range) id is a 404, audited like a denied read."""
    conn = db()
    try:
        accounts.get_user(conn, user_id)
    except NotFound:
        with transaction(conn):
            audit.record(conn, g.user.actor, "admin.user", f"user:{user_id if user_id != NO_ID else 'invalid'}",
                         result="denied", detail=request.endpoint or "", role=ROLE)
        raise
    return user_id


def _mail(user: accounts.User, token: str) -> bool:
    try:
        return invitations.send(appliance().cfg, db(), user, token)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("invitation mail failed: %s", type(exc).__name__)
        return False


@bp.get("/users")
def users():
    return _page()


@bp.post("/users/invite")
def invite():
    form = {k: request.form.get(k, "").strip() for k in ("display_name", "email", "username")}
    roles = _roles_from_form()
    username = form["username"] or form["email"].partition("@")[0].lower()
    if not form["display_name"] or not form["email"] or not roles:
        return _page(status=400, form=form, error=_("Fyll i namn, e-postadress och minst en roll."))
    try:
        user, token = invitations.invite(db(), appliance().cfg, username=username, roles=roles, actor=g.user.actor,
                                         display_name=form["display_name"], email=form["email"])
    except ApplianceError as exc:
        return _page(status=400, form=form, error=str(exc))
    return _page(created_link=invitations.link(appliance().cfg, token), created_for=user.username,
                 mailed=_mail(user, token))


@bp.post("/users/<int:user_id>/reinvite")
def reinvite(user_id: int):
    _user_id(user_id)
    try:
        token = invitations.reinvite(db(), appliance().cfg, user_id, actor=g.user.actor)
    except ApplianceError as exc:
        return _page(status=400, error=str(exc))
    user = accounts.get_user(db(), user_id)
    return _page(created_link=invitations.link(appliance().cfg, token), created_for=user.username,
                 mailed=_mail(user, token))


@bp.post("/users/<int:user_id>/roles")
def roles(user_id: int):
    _user_id(user_id)
    chosen = _roles_from_form()
    if not chosen:
        return _page(status=400, error=_("Välj minst en roll."))
    try:
        accounts.set_roles(db(), user_id, chosen, actor=g.user.actor)
    except ApplianceError as exc:
        return _page(status=400, error=str(exc))
    flash(_("Rollerna är ändrade. De gäller från användarens nästa sidvisning."), "info")
    return redirect(url_for("admin.users"), code=303)


@bp.post("/users/<int:user_id>/disable")
def disable(user_id: int):
    _user_id(user_id)
    if user_id == g.user.id:
        return _page(status=400, error=_("Du kan inte inaktivera ditt eget konto."))
    try:
        accounts.set_disabled(db(), user_id, True, actor=g.user.actor)
    except ApplianceError as exc:
        return _page(status=400, error=str(exc))
    flash(_("Kontot är inaktiverat och alla dess inloggningar är avslutade."), "info")
    return redirect(url_for("admin.users"), code=303)


@bp.post("/users/<int:user_id>/enable")
def enable(user_id: int):
    _user_id(user_id)
    accounts.set_disabled(db(), user_id, False, actor=g.user.actor)
    flash(_("Kontot är aktiverat."), "info")
    return redirect(url_for("admin.users"), code=303)


@bp.post("/users/<int:user_id>/reset-totp")
def reset_totp(user_id: int):
    _user_id(user_id)
    accounts.reset_totp(db(), user_id, actor=g.user.actor)
    flash(_("Tvåstegsverifieringen är återställd. Användaren registrerar en ny app vid nästa inloggning."), "info")
    return redirect(url_for("admin.users"), code=303)


# --- API tokens -----------------------------------------------------------------------------------

def _tokens_page(*, status: int = 200, created: str | None = None, error: str | None = None):
    return render_template("admin_tokens.html", tokens=api_tokens.list_tokens(db()), created=created,
                           error=error), status


@bp.get("/tokens")
def tokens():
    return _tokens_page()


@bp.post("/tokens")
def create_token():
    try:
        _token, secret = api_tokens.create(db(), g.user, request.form.get("name", ""))
    except ApplianceError as exc:
        return _tokens_page(status=400, error=str(exc))
    return _tokens_page(created=secret)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    api_tokens.revoke(db(), token_id, actor=g.user.actor)
    flash(_("API-nyckeln är återkallad."), "info")
    return redirect(url_for("admin.tokens"), code=303)
