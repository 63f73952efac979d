"""Accounts: Argon2id passwords, TOTP (single-use codes), DB-backed sign-in throttling, sessions."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance import audit, clock
from appliance.db import Connection, transaction
from appliance.errors import ApplianceError, AuthError, NotFound, Throttled

ROLES = ("caseworker", "manager", "responsible", "admin")
CONTENT_ROLES = frozenset({"caseworker", "manager"})  # admin and responsible never read content
TOTP_ISSUER = "Samtalsstöd"
MIN_PASSWORD_LENGTH = 12

# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    roles: frozenset[str]
    totp_enrolled: bool
    disabled: bool

    @property
    def actor(self) -> str:
        return f"user:{self.id}"

    @property
    def can_read_content(self) -> bool:
        return bool(self.roles & CONTENT_ROLES)


def _row_to_user(conn: Connection, row) -> User:
    roles = frozenset(r[0] for r in conn.execute("SELECT role FROM user_roles WHERE user_id = ?", (row["id"],)))
    return User(row["id"], row["username"], row["display_name"], roles, row["totp_secret"] is not None,
                bool(row["disabled"]))


def get_user(conn: Connection, user_id: int) -> User:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("No such user")
    return _row_to_user(conn, row)


def find_user(conn: Connection, username: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    return _row_to_user(conn, row) if row else None


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"Lösenordet måste ha minst {MIN_PASSWORD_LENGTH} tecken.")


def create_user(conn: Connection, username: str, roles: list[str], *, actor: str = "system",
                display_name: str = "", password: str | None = None) -> tuple[User, str]:
    """Create a user; returns the user and the initial password (generated if not given)."""
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise ApplianceError(f"Unknown role(s) {bad or roles}; choose from {', '.join(ROLES)}")
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise ApplianceError("Username must be 1–64 letters, digits, '.', '-' or '_'")
    password = password or generate_password()
    check_password_policy(password)
    with transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise ApplianceError(f"User '{username}' already exists")
        cur = conn.execute(
            "INSERT INTO users (username, display_name, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (username, display_name or username, _hasher.hash(password), clock.now()))
        uid = int(cur.lastrowid)
        conn.executemany("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(uid, r) for r in set(roles)])
        audit.record(conn, actor, "user.create", f"user:{uid}", detail="roles:" + "+".join(sorted(set(roles))))
    return get_user(conn, uid), password


def set_password(conn: Connection, user_id: int, password: str, *, actor: str) -> None:
    check_password_policy(password)
    with transaction(conn):
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        conn.execute("DELETE FROM login_failures WHERE subject = ?", (f"user:{user_id}",))
        audit.record(conn, actor, "user.password_set", f"user:{user_id}")


# --- throttling ---------------------------------------------------------------------------------

def _check_lock(conn: Connection, subject: str) -> None:
    row = conn.execute("SELECT locked_until FROM login_failures WHERE subject = ?", (subject,)).fetchone()
    if row and row["locked_until"] > clock.now():
        minutes = max(1, round((row["locked_until"] - clock.now()) / 60))
        raise Throttled(f"För många misslyckade inloggningsförsök. Försök igen om {minutes} minuter.")


def _register_failure(conn: Connection, subject: str, max_failures: int, lockout_s: float) -> None:
    t = clock.now()
    with transaction(conn):
        row = conn.execute("SELECT failures, first_at FROM login_failures WHERE subject = ?", (subject,)).fetchone()
        failures = 1 if row is None or t - row["first_at"] > lockout_s else row["failures"] + 1
        first_at = t if failures == 1 else row["first_at"]
        locked = t + lockout_s if failures >= max_failures else 0
        conn.execute(
            "INSERT INTO login_failures (subject, failures, first_at, locked_until) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(subject) DO UPDATE SET failures = excluded.failures, first_at = excluded.first_at, "
            "locked_until = excluded.locked_until", (subject, failures, first_at, locked))


def _clear_failures(conn: Connection, subject: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE subject = ?", (subject,))


def authenticate_password(conn: Connection, username: str, password: str, *, max_failures: int,
                          lockout_s: float) -> User:
    """First factor. Failures are counted per account in the database (holds across workers)."""
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    subject = f"user:{row['id']}" if row else f"unknown:{hashlib.sha256(username.lower().encode()).hexdigest()[:16]}"
    _check_lock(conn, subject)
    ok = False
    try:
        ok = _hasher.verify(row["password_hash"] if row else _DUMMY_HASH, password) and row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row["disabled"]:
        _register_failure(conn, subject, max_failures, lockout_s)
        with transaction(conn):
            audit.record(conn, subject, "auth.password", subject, result="denied")
        raise AuthError("Fel användarnamn eller lösenord.")
    if _hasher.check_needs_rehash(row["password_hash"]):
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), row["id"]))
    return _row_to_user(conn, row)


# --- TOTP ---------------------------------------------------------------------------------------

def begin_totp_enrolment(conn: Connection, user: User) -> str:
    """A fresh secret, kept pending until the user proves they stored it. Returns the otpauth URI."""
    secret = pyotp.random_base32()
    conn.execute("UPDATE users SET totp_pending = ? WHERE id = ?", (secret, user.id))
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)


def pending_totp_secret(conn: Connection, user: User) -> str | None:
    row = conn.execute("SELECT totp_pending FROM users WHERE id = ?", (user.id,)).fetchone()
    return row["totp_pending"] if row else None


def _matching_step(secret: str, code: str) -> int | None:
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    t = clock.now()
    for drift in (0, -1, 1):  # accept one 30-second step of clock drift either way
        step = int(t // totp.interval) + drift
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _use_code(conn: Connection, user: User, secret: str, code: str, action: str, *, max_failures: int,
              lockout_s: float) -> None:
    subject = f"user:{user.id}"
    _check_lock(conn, subject)
    step = _matching_step(secret, code)
    with transaction(conn):
        # Single use: the step must be newer than the last accepted one (atomic across workers).
        used = step is not None and conn.execute(
            "UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
            (step, user.id, step)).rowcount == 1
        audit.record(conn, user.actor, action, subject, result="ok" if used else "denied")
    if not used:
        _register_failure(conn, subject, max_failures, lockout_s)
        raise AuthError("Koden stämmer inte eller har redan använts. Vänta på nästa kod och försök igen.")
    with transaction(conn):
        _clear_failures(conn, subject)


def confirm_totp_enrolment(conn: Connection, user: User, code: str, *, max_failures: int,
                           lockout_s: float) -> None:
    secret = pending_totp_secret(conn, user)
    if not secret:
        raise AuthError("Ingen pågående registrering. Börja om.")
    _use_code(conn, user, secret, code, "auth.totp_enrol", max_failures=max_failures, lockout_s=lockout_s)
    conn.execute("UPDATE users SET totp_secret = totp_pending, totp_pending = NULL WHERE id = ?", (user.id,))


def verify_totp(conn: Connection, user: User, code: str, *, max_failures: int, lockout_s: float) -> None:
    row = conn.execute("SELECT totp_secret FROM users WHERE id = ?", (user.id,)).fetchone()
    if not row or not row["totp_secret"]:
        raise AuthError("Tvåstegsverifiering är inte registrerad.")
    _use_code(conn, user, row["totp_secret"], code, "auth.totp", max_failures=max_failures, lockout_s=lockout_s)


# --- sessions -----------------------------------------------------------------------------------

def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(conn: Connection, user: User) -> str:
    token = secrets.token_urlsafe(32)
    t = clock.now()
    with transaction(conn):
        conn.execute("INSERT INTO sessions (token_hash, user_id, created_at, last_seen) VALUES (?, ?, ?, ?)",
                     (_token_hash(token), user.id, t, t))
        audit.record(conn, user.actor, "auth.signin", user.actor)
    return token


def resume_session(conn: Connection, token: str, *, idle_s: float, absolute_s: float) -> User | None:
    """The session's user, or None when the token is unknown, idle too long, too old or the user disabled."""
    h = _token_hash(token)
    row = conn.execute("SELECT user_id, created_at, last_seen FROM sessions WHERE token_hash = ?", (h,)).fetchone()
    if row is None:
        return None
    t = clock.now()
    if t - row["last_seen"] > idle_s or t - row["created_at"] > absolute_s:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (h,))
        return None
    user = get_user(conn, row["user_id"])
    if user.disabled:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (h,))
        return None
    if t - row["last_seen"] > 15:  # avoid a write per request
        conn.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (t, h))
    return user


def end_session(conn: Connection, token: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))
