"""Accounts: Argon2id passwords, TOTP (single-use codes), DB-backed sign-in throttling, sessions."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance import clock
from appliance.errors import ApplianceError, AuthError, NotFound, Throttled
from appliance.platform import audit
from appliance.platform.db import Connection, transaction

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
    email: str | None = None
    guidelines_version: str | None = None
    guidelines_accepted_at: float | None = None
    invited: bool = False

    @property
    def actor(self) -> str:
        return f"user:{self.id}"

    @property
    def can_read_content(self) -> bool:
        return bool(self.roles & CONTENT_ROLES)

    @property
    def has_combined_roles(self) -> bool:
        """Admin plus a content or responsible role: the dev box's account only (check_roles)."""
        return combines_admin(self.roles)


def _row_to_user(conn: Connection, row) -> User:
    roles = frozenset(r[0] for r in conn.execute("SELECT role FROM user_roles WHERE user_id = ?", (row["id"],)))
    return User(row["id"], row["username"], row["display_name"], roles, row["totp_secret"] is not None,
                bool(row["disabled"]), row["email"], row["guidelines_version"], row["guidelines_accepted_at"],
                bool(row["invited"]))


def list_users(conn: Connection) -> list[User]:
    return [_row_to_user(conn, row) for row in conn.execute("SELECT * FROM users ORDER BY username")]


def get_user(conn: Connection, user_id: int) -> User:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("No such user")
    return _row_to_user(conn, row)


def find_user(conn: Connection, username: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    return _row_to_user(conn, row) if row else None


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of common and breached passwords (lower case)."""
    text = resources.files("appliance.data").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


_EDGES = re.compile(r"^[\d\W_]+|[\d\W_]+$")
_NON_LETTERS = re.compile(r"[\d\W_]+")


def _repetitive(value: str) -> bool:
    """One or two distinct characters, or a unit repeated ("abcabcabc", "sommarsommar")."""
    n = len(value)
    return len(set(value)) <= 2 or any(n % k == 0 and value[:k] * (n // k) == value for k in range(1, n // 2 + 1))


def generate_password() -> str:
    while True:  # random, but never one the policy would refuse (e.g. containing a short username)
        password = secrets.token_urlsafe(15)
        try:
            check_password_policy(password)
        except AuthError:
            continue
        return password


def check_password_policy(password: str, *, username: str = "", email: str = "") -> None:
    """At least 12 characters, not a common or breached password (nor one with only digits and symbols
    around a listed word, like "Sommar2024!"), not built on the username or the e-mail's local part."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"Lösenordet måste ha minst {MIN_PASSWORD_LENGTH} tecken.")
    lowered = password.casefold()
    core = _EDGES.sub("", lowered)  # "Sommar2024!" → "sommar"
    letters = _NON_LETTERS.sub("", lowered)  # "Sommar2024sommar" → "sommarsommar"
    common = common_passwords()
    weak = not core or not letters or bool({lowered, core, letters} & common)
    if weak or _repetitive(lowered) or _repetitive(letters):
        raise AuthError("Lösenordet är för vanligt eller för lätt att gissa. Välj ett annat, "
                        "till exempel några ord i följd som inte hör ihop.")
    names = {username.casefold(), email.casefold().partition("@")[0]}
    for part in names:
        if len(part) >= 3 and part in lowered:
            raise AuthError("Lösenordet får inte innehålla ditt användarnamn eller din e-postadress.")


# Separation of duties: IT manages the box and must not read content or review its own actions in the log.
SEPARATED_FROM_ADMIN = CONTENT_ROLES | {"responsible"}
MSG_ROLE_SEPARATION = ("En IT-administratör kan inte också vara handläggare, chef eller ansvarig för behandlingen. "
                       "Ge de rollerna till ett eget konto.")


def combines_admin(roles: list[str] | set[str] | frozenset[str]) -> bool:
    """Admin together with a content or responsible role: only the dev box's own account holds that."""
    return "admin" in roles and bool(set(roles) & SEPARATED_FROM_ADMIN)


def check_roles(roles: list[str] | set[str] | frozenset[str], *, allow_combined: bool = False) -> None:
    """Known roles, at least one, and admin never together with a content or responsible role
    (`allow_combined` only for the dev box's account, made by `appliance run`)."""
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise ApplianceError(f"Unknown role(s) {bad or list(roles)}; choose from {', '.join(ROLES)}")
    if combines_admin(roles) and not allow_combined:
        raise ApplianceError(MSG_ROLE_SEPARATION)


def check_username(username: str) -> None:
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise ApplianceError("Username must be 1–64 letters, digits, '.', '-' or '_'")


def insert_user(conn: Connection, username: str, roles: list[str], *, actor: str, display_name: str = "",
                password: str, email: str | None = None, invited: bool = False) -> int:
    """Insert a user inside the caller's transaction (the password is already policy-checked)."""
    if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
        raise ApplianceError(f"User '{username}' already exists")
    cur = conn.execute(
        "INSERT INTO users (username, display_name, password_hash, created_at, email, invited) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (username, display_name or username, _hasher.hash(password), clock.now(), email or None, int(invited)))
    uid = int(cur.lastrowid)
    conn.executemany("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(uid, r) for r in set(roles)])
    audit.record(conn, actor, "user.create", f"user:{uid}", detail="roles:" + "+".join(sorted(set(roles))))
    return uid


def create_user(conn: Connection, username: str, roles: list[str], *, actor: str = "system",
                display_name: str = "", password: str | None = None,
                allow_combined: bool = False) -> tuple[User, str]:
    """Create a user; returns the user and the initial password (generated if not given)."""
    check_roles(roles, allow_combined=allow_combined)
    check_username(username)
    password = password or generate_password()
    check_password_policy(password, username=username)
    with transaction(conn):
        uid = insert_user(conn, username, roles, actor=actor, display_name=display_name, password=password)
    return get_user(conn, uid), password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# --- administration (admin UI and CLI) ------------------------------------------------------------

def _enabled_admins(conn: Connection) -> set[int]:
    return {r[0] for r in conn.execute(
        "SELECT u.id FROM users u JOIN user_roles r ON r.user_id = u.id WHERE r.role = 'admin' AND u.disabled = 0")}


def set_roles(conn: Connection, user_id: int, roles: list[str] | set[str], *, actor: str) -> User:
    """Replace a user's roles; takes effect on their next request (users are loaded fresh per request).

    Admin never joins a content or responsible role (separation of duties); a refused change is audited.
    """
    new = set(roles)
    if combines_admin(new):
        with transaction(conn):
            audit.record(conn, actor, "user.roles_changed", f"user:{user_id}", result="denied", role="admin",
                         detail="separation_of_duties", data={"requested": sorted(new)})
    check_roles(new)
    with transaction(conn):
        before = get_user(conn, user_id)
        if "admin" in before.roles and "admin" not in new and _enabled_admins(conn) <= {user_id}:
            raise ApplianceError("Den sista administratören kan inte förlora administratörsrollen.")
        conn.execute("DELETE FROM user_roles WHERE user_id = ?", (user_id,))
        conn.executemany("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(user_id, r) for r in new])
        audit.record(conn, actor, "user.roles_changed", f"user:{user_id}", role="admin",
                     data={"before": sorted(before.roles), "after": sorted(new)})
    return get_user(conn, user_id)


def set_disabled(conn: Connection, user_id: int, disabled: bool, *, actor: str) -> None:
    """Disable (all sessions end at once) or enable an account."""
    with transaction(conn):
        get_user(conn, user_id)
        if disabled and _enabled_admins(conn) <= {user_id} and user_id in _enabled_admins(conn):
            raise ApplianceError("Den sista administratören kan inte inaktiveras.")
        conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
        if disabled:
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        audit.record(conn, actor, "user.disabled" if disabled else "user.enabled", f"user:{user_id}", role="admin")


def reset_totp(conn: Connection, user_id: int, *, actor: str) -> None:
    """Forget the TOTP secret: the user enrols again at the next sign-in; their sessions end."""
    with transaction(conn):
        get_user(conn, user_id)
        conn.execute("UPDATE users SET totp_secret = NULL, totp_pending = NULL WHERE id = ?", (user_id,))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        audit.record(conn, actor, "user.totp_reset", f"user:{user_id}", role="admin")


def accept_guidelines(conn: Connection, user: User, version: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE users SET guidelines_version = ?, guidelines_accepted_at = ? WHERE id = ?",
                     (version, clock.now(), user.id))
        audit.record(conn, user.actor, "guidelines.accepted", user.actor, detail=f"version:{version}")


def set_password(conn: Connection, user_id: int, password: str, *, actor: str) -> None:
    user = get_user(conn, user_id)
    check_password_policy(password, username=user.username, email=user.email or "")
    with transaction(conn):
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_hasher.hash(password), user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        if conn.execute("DELETE FROM login_failures WHERE subject = ? AND locked_until > ?",
                        (f"user:{user_id}", clock.now())).rowcount:
            audit.record(conn, actor, "auth.unlocked", f"user:{user_id}", detail="password_set")
        conn.execute("DELETE FROM login_failures WHERE subject = ?", (f"user:{user_id}",))
        audit.record(conn, actor, "user.password_set", f"user:{user_id}")


# --- throttling ---------------------------------------------------------------------------------

def _check_lock(conn: Connection, subject: str, action: str) -> None:
    """Refuse (audited: denied, detail "throttled") while `subject` is locked out; a lock that ran out is lifted
    (audited as auth.unlocked)."""
    row = conn.execute("SELECT locked_until FROM login_failures WHERE subject = ?", (subject,)).fetchone()
    if not row or not row["locked_until"]:
        return
    t = clock.now()
    if row["locked_until"] > t:
        with transaction(conn):
            audit.record(conn, subject, action, subject, result="denied", detail="throttled")
        minutes = max(1, round((row["locked_until"] - t) / 60))
        raise Throttled(f"För många misslyckade inloggningsförsök. Försök igen om {minutes} minuter.")
    with transaction(conn):
        lifted = conn.execute("DELETE FROM login_failures WHERE subject = ? AND locked_until = ?",
                              (subject, row["locked_until"])).rowcount  # once, also across workers
        if lifted:
            audit.record(conn, "system", "auth.unlocked", subject, detail="expired")


def _register_failure(conn: Connection, subject: str, max_failures: int, lockout_s: float) -> None:
    """Count a failure; the one that reaches `max_failures` locks the subject out (audited as auth.locked)."""
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
        if locked:
            audit.record(conn, "system", "auth.locked", subject, result="denied",
                         detail=f"failures:{failures}", data={"until": round(locked)})


def _clear_failures(conn: Connection, subject: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE subject = ?", (subject,))


def authenticate_password(conn: Connection, username: str, password: str, *, max_failures: int,
                          lockout_s: float) -> User:
    """First factor. Failures are counted per account in the database (holds across workers)."""
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    subject = f"user:{row['id']}" if row else f"unknown:{hashlib.sha256(username.lower().encode()).hexdigest()[:16]}"
    _check_lock(conn, subject, "auth.password")
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
    _check_lock(conn, subject, action)
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


# --- the step between the two factors -------------------------------------------------------------

def start_preauth(conn: Connection, user: User, stage: str, *, ttl_s: float) -> str:
    """After the password: a single-use nonce for the second step (`stage`), bound to this server."""
    nonce = secrets.token_urlsafe(32)
    t = clock.now()
    with transaction(conn):
        conn.execute("DELETE FROM preauth WHERE created_at < ?", (t - ttl_s,))
        conn.execute("INSERT INTO preauth (nonce_hash, user_id, stage, created_at) VALUES (?, ?, ?, ?)",
                     (_token_hash(nonce), user.id, stage, t))
    return nonce


def preauth_user(conn: Connection, nonce: str, stage: str, *, ttl_s: float) -> User | None:
    """The user whose password step issued `nonce` for `stage`, while it is unused and young enough."""
    row = conn.execute("SELECT user_id, stage, created_at FROM preauth WHERE nonce_hash = ?",
                       (_token_hash(nonce),)).fetchone()
    if row is None or row["stage"] != stage or not 0 <= clock.now() - row["created_at"] <= ttl_s:
        return None
    user = get_user(conn, row["user_id"])
    return None if user.disabled else user


def consume_preauth(conn: Connection, nonce: str) -> bool:
    """Use the nonce up (atomic across workers): True for exactly one caller."""
    with transaction(conn):
        return conn.execute("DELETE FROM preauth WHERE nonce_hash = ?", (_token_hash(nonce),)).rowcount == 1


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
