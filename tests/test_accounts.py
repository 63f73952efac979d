import time

import pyotp
import pytest

from appliance.errors import ApplianceError, AuthError, Throttled
from appliance.platform import audit
from appliance.users import accounts

LIM = {"max_failures": 3, "lockout_s": 60}


def test_argon2id_owasp_params(conn):
    accounts.create_user(conn, "anna", ["caseworker"], password="korrekt-häst-batteri")
    h = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    assert h.startswith("$argon2id$") and "m=19456,t=2,p=1" in h
    assert "korrekt" not in h


def test_password_policy_and_roles(conn):
    with pytest.raises(AuthError, match="minst 12"):
        accounts.create_user(conn, "kort", ["caseworker"], password="kort")
    with pytest.raises(ApplianceError, match="Unknown role"):
        accounts.create_user(conn, "x", ["superuser"])
    accounts.create_user(conn, "anna", ["caseworker"])
    with pytest.raises(ApplianceError, match="already exists"):
        accounts.create_user(conn, "ANNA", ["caseworker"])


def test_admin_has_no_content_access(conn):
    admin, _ = accounts.create_user(conn, "it", ["admin"])
    both, _ = accounts.create_user(conn, "dev", ["admin", "caseworker"], allow_combined=True)  # the dev box's
    assert not admin.can_read_content and both.can_read_content


def test_lockout_counts_in_database(app_ctx, conn):
    _, pw = accounts.create_user(conn, "anna", ["caseworker"])
    for _ in range(3):
        with pytest.raises(AuthError):
            accounts.authenticate_password(conn, "anna", "fel-lösenord-123", **LIM)
    # A second connection (another gunicorn worker) sees the lock, even with the right password.
    other = app_ctx.connect()
    with pytest.raises(Throttled, match="Försök igen"):
        accounts.authenticate_password(other, "anna", pw, **LIM)
    # Three wrong passwords, then the throttled attempt (issue 18, finding 7: audited too).
    assert [(e["result"], e["detail"]) for e in audit.entries(conn, action="auth.password")] == \
        [("denied", "")] * 3 + [("denied", "throttled")]


def test_unknown_user_is_throttled_too(conn):
    for _ in range(3):
        with pytest.raises(AuthError):
            accounts.authenticate_password(conn, "finnsinte", "whatever-whatever", **LIM)
    with pytest.raises(Throttled):
        accounts.authenticate_password(conn, "finnsinte", "whatever-whatever", **LIM)


def _enrolled(conn):
    user, pw = accounts.create_user(conn, "anna", ["caseworker"])
    accounts.begin_totp_enrolment(conn, user)
    secret = accounts.pending_totp_secret(conn, user)
    totp = pyotp.TOTP(secret)
    accounts.confirm_totp_enrolment(conn, user, totp.at(time.time() - 30), **LIM)
    return accounts.get_user(conn, user.id), totp


def test_totp_single_use(conn):
    user, totp = _enrolled(conn)
    assert user.totp_enrolled
    accounts.verify_totp(conn, user, totp.now(), **LIM)
    with pytest.raises(AuthError, match="redan använts"):
        accounts.verify_totp(conn, user, totp.now(), **LIM)


def test_totp_wrong_code_and_lockout(conn):
    user, totp = _enrolled(conn)
    for _ in range(3):
        with pytest.raises(AuthError):
            accounts.verify_totp(conn, user, "000000" if totp.now() != "000000" else "111111", **LIM)
    with pytest.raises(Throttled):
        accounts.verify_totp(conn, user, totp.now(), **LIM)


def test_sessions_expire_and_end(conn):
    user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    tok = accounts.create_session(conn, user)
    assert accounts.resume_session(conn, tok, idle_s=60, absolute_s=600) == user
    conn.execute("UPDATE sessions SET last_seen = last_seen - 120")
    assert accounts.resume_session(conn, tok, idle_s=60, absolute_s=600) is None
    tok = accounts.create_session(conn, user)
    conn.execute("UPDATE sessions SET created_at = created_at - 700")
    assert accounts.resume_session(conn, tok, idle_s=60, absolute_s=600) is None
    tok = accounts.create_session(conn, user)
    accounts.end_session(conn, tok)
    assert accounts.resume_session(conn, tok, idle_s=60, absolute_s=600) is None
    assert conn.execute("SELECT count(*) FROM sessions WHERE token_hash = ?", (tok,)).fetchone()[0] == 0


def test_disabled_user_session_ends(conn):
    user, _ = accounts.create_user(conn, "anna", ["caseworker"])
    tok = accounts.create_session(conn, user)
    conn.execute("UPDATE users SET disabled = 1")
    assert accounts.resume_session(conn, tok, idle_s=60, absolute_s=600) is None
