"""Invitations: a one-time enrolment link instead of a password handed over.

The admin (or `appliance user add`) creates the account with an unknown random password and an
invitation; the link carries a random token whose SHA-256 alone is stored. It expires
(`[accounts] invitation_hours`, 72 h by default) and works once: the invitee chooses a password (the
policy applies), then enrols TOTP and accepts the usage guidelines like any first sign-in. With
`[mail] enabled` the link is also e-mailed through the office relay; the mail holds the link only.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from appliance import clock
from appliance.config import Config
from appliance.errors import ApplianceError, AuthError
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.users import accounts
from appliance.users.accounts import User

log = logging.getLogger(__name__)

PATH = "/invite/"


@dataclass(frozen=True)
class Invitation:
    user: User
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(conn: Connection, user_id: int, actor: str, ttl_s: float) -> str:
    token = secrets.token_urlsafe(32)
    t = clock.now()
    # A new link replaces any earlier unused one.
    conn.execute("UPDATE invitations SET used_at = ? WHERE user_id = ? AND used_at IS NULL", (t, user_id))
    conn.execute("INSERT INTO invitations (token_hash, user_id, created_by, created_at, expires_at) "
                 "VALUES (?, ?, ?, ?, ?)", (_hash(token), user_id, actor, t, t + ttl_s))
    audit.record(conn, actor, "invitation.create", f"user:{user_id}", detail=f"hours:{round(ttl_s / 3600)}")
    return token


def ttl_seconds(cfg: Config) -> float:
    return cfg.accounts.invitation_hours * 3600


def invite(conn: Connection, cfg: Config, *, username: str, roles: list[str], actor: str, display_name: str = "",
           email: str | None = None) -> tuple[User, str]:
    """Create the account (no usable password yet) and its invitation; returns the user and the token."""
    accounts.check_roles(roles)
    accounts.check_username(username)
    email = (email or "").strip() or None
    if email is not None and (email.count("@") != 1 or len(email) > 254 or any(c.isspace() for c in email)):
        raise ApplianceError("Ange en giltig e-postadress.")
    with transaction(conn):
        uid = accounts.insert_user(conn, username, roles, actor=actor, display_name=display_name,
                                   password=secrets.token_urlsafe(32), email=email, invited=True)
        token = _new_token(conn, uid, actor, ttl_seconds(cfg))
    return accounts.get_user(conn, uid), token


def reinvite(conn: Connection, cfg: Config, user_id: int, *, actor: str) -> str:
    """A fresh link for an invitee whose link expired or got lost (earlier links stop working)."""
    with transaction(conn):
        user = accounts.get_user(conn, user_id)
        if not user.invited:
            raise ApplianceError("Användaren har redan valt lösenord; återställ lösenordet i stället.")
        return _new_token(conn, user_id, actor, ttl_seconds(cfg))


def pending(conn: Connection, user_id: int) -> float | None:
    """When the user's open invitation expires, or None."""
    row = conn.execute("SELECT max(expires_at) FROM invitations WHERE user_id = ? AND used_at IS NULL "
                       "AND expires_at > ?", (user_id, clock.now())).fetchone()
    return row[0] if row else None


def lookup(conn: Connection, token: str) -> Invitation | None:
    """The open invitation for this token, or None when unknown, used, expired or the user is disabled."""
    if not token or len(token) > 128:
        return None
    row = conn.execute("SELECT user_id, expires_at, used_at FROM invitations WHERE token_hash = ?",
                       (_hash(token),)).fetchone()
    if row is None or row["used_at"] is not None or row["expires_at"] <= clock.now():
        return None
    user = accounts.get_user(conn, row["user_id"])
    return None if user.disabled else Invitation(user, row["expires_at"])


def redeem(conn: Connection, token: str, password: str) -> User:
    """Set the invitee's password and use up the link (atomically: a second use fails)."""
    inv = lookup(conn, token)
    if inv is None:
        raise AuthError("Inbjudningslänken är ogiltig, har gått ut eller har redan använts.")
    accounts.check_password_policy(password, username=inv.user.username, email=inv.user.email or "")
    t = clock.now()
    with transaction(conn):
        used = conn.execute("UPDATE invitations SET used_at = ? WHERE token_hash = ? AND used_at IS NULL "
                            "AND expires_at > ?", (t, _hash(token), t)).rowcount == 1
        if not used:
            raise AuthError("Inbjudningslänken är ogiltig, har gått ut eller har redan använts.")
        conn.execute("UPDATE users SET password_hash = ?, invited = 0, totp_secret = NULL, totp_pending = NULL "
                     "WHERE id = ?", (accounts.hash_password(password), inv.user.id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (inv.user.id,))
        audit.record(conn, inv.user.actor, "invitation.accepted", inv.user.actor)
    return accounts.get_user(conn, inv.user.id)


def base_url(cfg: Config) -> str:
    host = cfg.web.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind has no address to link to
        return cfg.mail.base_url.rstrip("/")
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{cfg.web.port}"


def link(cfg: Config, token: str) -> str:
    return base_url(cfg) + PATH + token


def send(cfg: Config, conn: Connection, user: User, token: str) -> bool:
    """E-mail the link to the invitee (the link and its validity only). False when mail is off or no address."""
    if not cfg.mail.enabled or not user.email:
        return False
    msg = EmailMessage()
    msg["From"] = cfg.mail.sender
    msg["To"] = user.email
    msg["Subject"] = "Samtalsstöd: ditt konto"
    msg.set_content(
        "Du har fått ett konto i Samtalsstöd. Öppna länken för att välja lösenord och koppla din "
        f"autentiseringsapp. Länken fungerar en gång och i {cfg.accounts.invitation_hours} timmar.\n\n"
        f"{link(cfg, token)}\n")
    with smtplib.SMTP(cfg.mail.smtp_host, cfg.mail.smtp_port, timeout=30) as smtp:
        if cfg.mail.starttls:
            smtp.starttls()
        smtp.send_message(msg)
    with transaction(conn):
        audit.record(conn, "service:mail", "invitation.mail", user.actor)
    return True
