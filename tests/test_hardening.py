"""Hardening: sign-in throttling across real gunicorn workers, the password policy at every entry point,
security headers on every kind of response, and the session properties the sign-in relies on."""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
import requests
import urllib3

from appliance.config import load_config
from appliance.errors import AuthError
from appliance.platform.context import init_state
from appliance.users import accounts
from tests.conftest import free_port
from tests.web_fixtures import PASSWORD, client_of, csrf_from, sign_in
from web.auth import SESSION_COOKIE

ROOT = Path(__file__).resolve().parent.parent
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def gunicorn(tmp_path):
    """The real web unit: gunicorn with two workers, TLS (self-signed) on a loopback port, its own state."""
    from provisioning.devrun import gunicorn_command

    port = free_port()
    env = {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state"), "APPLIANCE_WEB__PORT": str(port),
           "APPLIANCE_WEB__WORKERS": "2", "APPLIANCE_WEB__LOGIN_MAX_FAILURES": "5"}
    cfg = load_config(environ=env)
    with closing(init_state(cfg).connect()) as conn:
        accounts.create_user(conn, "anna", ["caseworker"], password=PASSWORD)
    access_log = tmp_path / "access.log"
    cmd = gunicorn_command(cfg)
    # The serving worker's pid on every line (command-line settings override web/gunicorn_conf.py).
    cmd[-1:-1] = ["--access-logformat", '%(p)s "%(m)s %(U)s" %(s)s', "--access-logfile", str(access_log)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    end = time.monotonic() + 60
    while True:
        try:
            ok = requests.get(base + "/healthz", verify=False, timeout=2).status_code == 200  # noqa: S501
            if ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError("gunicorn did not start: " + proc.stderr.read().decode(errors="replace"))
        time.sleep(0.2)
    try:
        yield base, access_log
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def _attempt(base: str, password: str) -> int:
    """One sign-in attempt on fresh connections (a new session, `Connection: close`)."""
    with requests.Session() as s:
        s.headers["Connection"] = "close"
        page = s.get(base + "/login", verify=False, timeout=30)
        token = CSRF_RE.search(page.text).group(1)
        r = s.post(base + "/login", data={"csrf_token": token, "username": "anna", "password": password},
                   verify=False, allow_redirects=False, timeout=30)
        assert SESSION_COOKIE not in r.cookies
        return r.status_code


def _login_pids(access_log: Path, since: int) -> set[str]:
    lines = access_log.read_text().splitlines()[since:] if access_log.exists() else []
    return {line.split()[0] for line in lines if '"POST /login"' in line}


def _log_len(access_log: Path) -> int:
    return len(access_log.read_text().splitlines()) if access_log.exists() else 0


def test_lockout_holds_across_two_gunicorn_workers(gunicorn):
    base, access_log = gunicorn
    with ThreadPoolExecutor(6) as pool:
        wrong = list(pool.map(lambda _: _attempt(base, "fel-lösenord-" + "x" * 8), range(12)))
    assert wrong.count(200) >= 5 and set(wrong) <= {200, 429}, wrong  # the first five: plain "wrong"
    time.sleep(0.5)
    # The right password is now refused by every worker, until the lockout runs out.
    seen: set[str] = set()
    right: list[int] = []
    for _round in range(10):
        start = _log_len(access_log)
        with ThreadPoolExecutor(8) as pool:
            right += list(pool.map(lambda _: _attempt(base, PASSWORD), range(16)))
        time.sleep(0.3)  # let the access log catch up
        seen |= _login_pids(access_log, start)
        if len(seen) >= 2:
            break
    assert set(right) == {429}, right
    assert len(seen) == 2, f"only worker(s) {seen} served the refused sign-ins"


# --- password policy ------------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["kort-kort", "password12345", "lösenord2024!", "Sommar2024sommar",
                                      "123456789012", "qwertyuiop12"])
def test_policy_refuses_weak_passwords_everywhere(conn, password):
    with pytest.raises(AuthError):
        accounts.check_password_policy(password)
    with pytest.raises(AuthError):
        accounts.create_user(conn, "berit", ["caseworker"], password=password)
    user, _ = accounts.create_user(conn, "cecilia", ["caseworker"]) if not accounts.find_user(conn, "cecilia") \
        else (accounts.find_user(conn, "cecilia"), None)
    with pytest.raises(AuthError):
        accounts.set_password(conn, user.id, password, actor="test")


def test_policy_refuses_the_username(conn):
    with pytest.raises(AuthError, match="användarnamn"):
        accounts.create_user(conn, "kalle", ["caseworker"], password="Kalle-är-bäst-på-kontoret")


# --- headers on every kind of response --------------------------------------------------------------

def _assert_hardened(r, *, cacheable: bool = False) -> None:
    h = r.headers
    csp = h["Content-Security-Policy"]
    assert re.search(r"script-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'", csp) and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "style-src 'self'" in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["X-Frame-Options"] == "DENY"
    assert "max-age=" in h["Strict-Transport-Security"]
    assert h["Cross-Origin-Opener-Policy"] == "same-origin"
    if not cacheable:
        assert h["Cache-Control"] == "no-store", r.request.path


def test_security_headers_on_errors_static_api_and_redirects(app, clock, totp_secrets, users):
    anon = client_of(app)
    anna = client_of(app)
    sign_in(anna, clock, "anna", totp_secrets)
    cases = [
        (anon.get("/does-not-exist"), 404),
        (anna.get("/does-not-exist"), 404),
        (anna.get("/admin/users"), 404),
        (anon.get("/logout"), 405),
        (anon.post("/login", data={"username": "x", "password": "y"}), 400),  # no CSRF token
        (anon.get("/"), 302),
        (anon.get("/recordings/status"), 401),
        (anon.get("/api/admin/health"), 401),
        (anon.get("/invite/nope"), 404),
        (anon.get("/healthz"), 200),
        (anna.get("/guidelines"), 200),
    ]
    for r, status in cases:
        assert r.status_code == status, (r.request.path, r.status_code)
        _assert_hardened(r)
    static = anon.get("/static/app.css")
    assert static.status_code == 200
    _assert_hardened(static, cacheable=True)
    assert anon.post("/login", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_unexpected_errors_are_hardened_too(app, clock, totp_secrets, users, monkeypatch):
    from appliance.users import api_tokens

    def boom(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(api_tokens, "authenticate", boom)
    r = client_of(app).get("/api/admin/health", headers={"Authorization": "Bearer sst_x"})
    assert r.status_code == 500 and "boom" not in r.text and "Traceback" not in r.text
    _assert_hardened(r)


# --- sessions ---------------------------------------------------------------------------------------

def test_session_token_rotates_at_every_sign_in_and_dies_at_logout(app, clock, totp_secrets, users, db):
    c = client_of(app)
    # A session cookie planted before sign-in (fixation) is not carried over: a fresh token is issued.
    c.set_cookie(SESSION_COOKIE, "planted", domain="localhost", secure=True)
    state_before = c.get_cookie("__Host-state")
    sign_in(c, clock, "anna", totp_secrets)
    first = c.get_cookie(SESSION_COOKIE).value
    assert first != "planted" and c.get_cookie("__Host-state") != state_before
    c.post("/logout", data={"csrf_token": csrf_from(c.get("/").text)})
    assert c.get_cookie(SESSION_COOKIE) is None
    sign_in(c, clock, "anna", totp_secrets)
    second = c.get_cookie(SESSION_COOKIE).value
    assert first != second
    replay = client_of(app)
    replay.set_cookie(SESSION_COOKIE, first, domain="localhost", secure=True)
    assert replay.get("/").status_code == 302  # the server forgot the old session


def test_absolute_timeout(app, clock, totp_secrets, users):
    c = client_of(app)
    sign_in(c, clock, "anna", totp_secrets)
    for _ in range(25):  # active every 25 minutes: never idle, but past the 10-hour limit
        clock.advance(25 * 60)
        c.get("/")
    assert c.get("/").status_code == 302
