"""Sign-in (password, then TOTP), sessions and sign-out.

Two cookies, both `__Host-` (Secure, Path=/, no Domain), HttpOnly, SameSite=Lax:
- `__Host-state`: Flask's signed cookie. Holds the CSRF token, flash messages and, between the password
  and the TOTP step, a pre-auth nonce whose hash the server keeps (`accounts.start_preauth`; five minutes,
  consumed by the second step, so a copy of the cookie cannot be replayed). It grants nothing by itself.
- `__Host-session`: a random token for the server-side session (the database stores its hash). It is
  created only after the second factor succeeds, so every sign-in gets a fresh token.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pyotp
import segno
from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup

from appliance.errors import AuthError, Throttled
from appliance.platform import audit
from appliance.platform.db import transaction
from appliance.users import accounts, guidelines, invitations
from appliance.users.accounts import User
from web import appliance, db
from web.i18n import _

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

SESSION_COOKIE = "__Host-session"
PREAUTH_KEY = "preauth"
PREAUTH_TTL_S = 5 * 60
STAGE_TOTP = "totp"
STAGE_ENROL = "enrol"

MSG_EXPIRED = "Du har loggats ut efter en tids inaktivitet. Logga in igen."
MSG_SIGNIN_FIRST = "Logga in för att fortsätta."


# --- the signed-in user -------------------------------------------------------------------------

def _limits() -> dict[str, float]:
    w = appliance().cfg.web
    return {"max_failures": w.login_max_failures, "lockout_s": w.login_lockout_minutes * 60}


def _load_user() -> None:
    g.user = None
    g.session_expired = False
    if request.endpoint in ("static", "healthz"):
        return
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return
    w = appliance().cfg.web
    user = accounts.resume_session(db(), token, idle_s=w.session_idle_minutes * 60,
                                   absolute_s=w.session_absolute_hours * 3600)
    if user is None:
        g.session_expired = True
    else:
        g.user = user
        g.session_token = token


def _drop_stale_cookie(response: Response) -> Response:
    if g.get("session_expired"):
        _delete_session_cookie(response)
    return response


def _set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, secure=True, httponly=True, samesite="Lax", path="/")


def _delete_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")


def wants_json() -> bool:
    if request.path.endswith("/status"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _safe_next(target: str | None) -> str | None:
    """A same-site path, or None: never an open redirect, never a header injection.

    Judged after the normalisation a browser and the header writer apply: control characters and whitespace
    (a tab is dropped when the Location header is built, so "/%09/evil.example/" would become
    "//evil.example/"), backslashes (browsers read them as slashes), and anything `urlsplit` finds a scheme
    or host in are refused.
    """
    if not target or "\\" in target or any(c.isspace() or unicodedata.category(c)[0] == "C" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    return target


def _unauthenticated() -> Any:
    message = _(MSG_EXPIRED) if g.get("session_expired") else _(MSG_SIGNIN_FIRST)
    if g.get("session_expired"):
        flash(message, "info")
    if wants_json():
        return jsonify(error=message, login=url_for("auth.login")), 401
    if request.endpoint == "rec.audio":
        return Response(message, status=401, mimetype="text/plain")
    nxt = request.full_path.rstrip("?") if request.method == "GET" and request.path != "/" else None
    return redirect(url_for("auth.login", next=_safe_next(nxt)))


def login_required(view: Callable) -> Callable:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("user") is None:
            return _unauthenticated()
        return view(*args, **kwargs)

    return wrapper


# Endpoints a signed-in user who has not accepted the current guidelines may still reach.
_GATE_OPEN = frozenset({"auth.guidelines", "auth.logout", "static", "healthz"})


def _guidelines_gate() -> Any:
    """Until the current usage guidelines are accepted, a signed-in user sees only them (and can sign out)."""
    user = g.get("user")
    if user is None or request.endpoint in _GATE_OPEN or (request.blueprint or "") == "api":
        return None
    if guidelines.accepted(appliance().cfg, user.guidelines_version):
        return None
    if wants_json():
        return jsonify(error=_("Godkänn riktlinjerna för att fortsätta."), guidelines=url_for("auth.guidelines")), 403
    return redirect(url_for("auth.guidelines"), code=303)


def init_app(app: Flask) -> None:
    app.before_request(_load_user)
    app.before_request(_guidelines_gate)
    app.after_request(_drop_stale_cookie)
    app.context_processor(lambda: {"current_user": g.get("user")})


# --- pre-auth state between the two factors -----------------------------------------------------

def _start_preauth(user: User, stage: str, nxt: str | None) -> None:
    session.clear()  # a fresh state cookie (and CSRF token) for the sign-in
    nonce = accounts.start_preauth(db(), user, stage, ttl_s=PREAUTH_TTL_S)
    session[PREAUTH_KEY] = {"nonce": nonce, "stage": stage, "next": nxt}


def _preauth_user(stage: str) -> User | None:
    """The user between the two factors: the cookie's nonce must be known to the server, unused and young."""
    state = session.get(PREAUTH_KEY)
    if not isinstance(state, dict) or state.get("stage") != stage or not isinstance(state.get("nonce"), str):
        return None
    user = accounts.preauth_user(db(), state["nonce"], stage, ttl_s=PREAUTH_TTL_S)
    if user is None:
        session.pop(PREAUTH_KEY, None)
    return user


def _restart_signin() -> Response:
    session.pop(PREAUTH_KEY, None)
    flash(_("Inloggningen tog för lång tid eller avbröts. Börja om."), "info")
    return redirect(url_for("auth.login"))


def _finish_signin(user: User) -> Response:
    state = session.get(PREAUTH_KEY, {})
    if not accounts.consume_preauth(db(), state.get("nonce", "")):  # single use: a replayed copy stops here
        return _restart_signin()
    nxt = _safe_next(state.get("next"))
    token = accounts.create_session(db(), user)  # audited as auth.signin
    session.clear()  # rotate: the pre-auth marker and the old CSRF token go
    if not guidelines.accepted(appliance().cfg, user.guidelines_version):
        response = redirect(url_for("auth.guidelines", next=nxt) if nxt else url_for("auth.guidelines"), code=303)
    else:
        response = redirect(nxt or url_for("rec.index"), code=303)
    _set_session_cookie(response, token)
    log.info("user %s signed in", user.id)
    return response


def _error_status(exc: AuthError) -> int:
    return 429 if isinstance(exc, Throttled) else 200


# --- views --------------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
def login():
    nxt = _safe_next(request.values.get("next"))
    if g.user is not None:
        return redirect(nxt or url_for("rec.index"))
    error, status = None, 200
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if not username or not password:
            error = _("Fyll i både användarnamn och lösenord.")
        else:
            try:
                user = accounts.authenticate_password(db(), username, password, **_limits())
            except AuthError as exc:
                error, status = str(exc), _error_status(exc)
            else:
                if user.totp_enrolled:
                    _start_preauth(user, STAGE_TOTP, nxt)
                    return redirect(url_for("auth.totp"), code=303)
                _start_preauth(user, STAGE_ENROL, nxt)  # the enrolment page creates or reuses the secret
                return redirect(url_for("auth.enrol_totp"), code=303)
    return render_template("login.html", error=error, username=username, next=nxt), status


@bp.route("/totp", methods=["GET", "POST"])
def totp():
    user = _preauth_user(STAGE_TOTP)
    if user is None:
        return _restart_signin()
    error, status = None, 200
    if request.method == "POST":
        try:
            accounts.verify_totp(db(), user, request.form.get("code", ""), **_limits())
        except AuthError as exc:
            error, status = str(exc), _error_status(exc)
        else:
            return _finish_signin(user)
    return render_template("totp.html", error=error), status


def _qr_svg(uri: str) -> Markup:
    svg = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff", border=4,
                                                title=_("QR-kod för autentiseringsappen"))
    return Markup(svg)  # noqa: S704 - generated by segno from our own URI, no user markup


@bp.route("/enrol-totp", methods=["GET", "POST"])
def enrol_totp():
    user = _preauth_user(STAGE_ENROL)
    if user is None:
        return _restart_signin()
    conn = db()
    error, status = None, 200
    if request.method == "POST":
        try:
            accounts.confirm_totp_enrolment(conn, user, request.form.get("code", ""), **_limits())
        except AuthError as exc:
            error, status = str(exc), _error_status(exc)
        else:
            return _finish_signin(user)
    secret = accounts.pending_totp_secret(conn, user)
    if not secret:
        accounts.begin_totp_enrolment(conn, user)
        secret = accounts.pending_totp_secret(conn, user) or ""
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=accounts.TOTP_ISSUER)
    grouped = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return render_template("enrol_totp.html", qr=_qr_svg(uri), secret=grouped, error=error), status


@bp.post("/logout")
def logout():
    token = request.cookies.get(SESSION_COOKIE)
    user = g.get("user")
    if token:
        conn = db()
        with transaction(conn):
            accounts.end_session(conn, token)
            if user is not None:
                audit.record(conn, user.actor, "auth.signout", user.actor)
    session.clear()
    g.session_expired = False
    flash(_("Du är utloggad."), "info")
    response = redirect(url_for("auth.login"), code=303)
    _delete_session_cookie(response)
    return response


@login_required
def guidelines_page():
    cfg = appliance().cfg
    text = guidelines.load(cfg)
    user = g.user
    current = guidelines.accepted(cfg, user.guidelines_version)
    error = None
    if request.method == "POST" and not current:
        if request.form.get("accept") != "yes":
            error = _("Kryssa i att du har läst och förstått riktlinjerna.")
        else:
            accounts.accept_guidelines(db(), user, cfg.guidelines.version)  # audited
            return redirect(_safe_next(request.args.get("next")) or url_for("rec.index"), code=303)
    return render_template("guidelines.html", g_text=text, current=current, error=error,
                           next=_safe_next(request.args.get("next"))), 400 if error else 200


bp.add_url_rule("/guidelines", "guidelines", guidelines_page, methods=["GET", "POST"])


@bp.route("/invite/<token>", methods=["GET", "POST"])
def invite(token: str):
    """The invitee's first step: choose a password; then TOTP enrolment and the guidelines follow."""
    conn = db()
    inv = invitations.lookup(conn, token)
    if inv is None:
        return render_template("invite_invalid.html"), 404
    error, status = None, 200
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("password2", ""):
            error, status = _("Lösenorden är inte lika."), 400
        else:
            try:
                user = invitations.redeem(conn, token, password)  # audited; the link is used up
            except AuthError as exc:
                error, status = str(exc), 400
            else:
                if g.get("user") is not None:  # someone else signed in on this browser: end that session
                    accounts.end_session(conn, g.session_token)
                _start_preauth(user, STAGE_ENROL, None)
                response = redirect(url_for("auth.enrol_totp"), code=303)
                _delete_session_cookie(response)
                return response
    return render_template("invite.html", invitee=inv.user, expires_at=inv.expires_at, error=error,
                           min_length=accounts.MIN_PASSWORD_LENGTH), status
