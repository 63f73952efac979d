"""Shared web-test fixtures and helpers (registered for every test module by tests/conftest.py).

Sign-in goes through the real password + TOTP flow; time moves with a patched `appliance.clock.now`.
"""


from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
import pytest

from appliance import clock as core_clock
from appliance.config import load_config
from appliance.platform.context import init_state
from appliance.users.accounts import create_user
from web import create_app
from web.auth import SESSION_COOKIE

PASSWORD = "rätt-häst-batteri-häftapparat"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET_RE = re.compile(r'id="totp-secret"[^>]*>([^<]+)<')


class FakeClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(core_clock, "now", c.now)
    return c


def make_ctx(tmp_path: Path, section: str = "web", **settings: object):
    """A fresh state dir under `tmp_path`, with `settings` of one config section (default [web])."""
    env = {"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "state")}
    env.update({f"APPLIANCE_{section.upper()}__{k.upper()}": str(v) for k, v in settings.items()})
    return init_state(load_config(environ=env))


@pytest.fixture
def ctx(tmp_path):
    return make_ctx(tmp_path)


@pytest.fixture
def db(ctx):
    conn = ctx.connect()
    yield conn
    conn.close()


@pytest.fixture
def users(db) -> dict[str, int]:
    out = {}
    for name, roles in (("anna", ["caseworker"]), ("bo", ["caseworker"]), ("it", ["admin"])):
        user, _ = create_user(db, name, roles, password=PASSWORD)
        out[name] = user.id
    return out


@pytest.fixture
def app(ctx, users, clock):
    return create_app(ctx, {"TESTING": True})


def client_of(app):
    return app.test_client()  # https://localhost (PREFERRED_URL_SCHEME): __Host- cookies need Secure


@pytest.fixture
def client(app):
    return client_of(app)


def csrf_from(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "form without a CSRF token"
    return m.group(1)


def token_for(client, path: str = "/login") -> str:
    return csrf_from(client.get(path).text)


def password_step(client, username: str, password: str = PASSWORD):
    return client.post("/login", data={"csrf_token": token_for(client), "username": username,
                                       "password": password})


def sign_in(client, clock: FakeClock, username: str, secrets: dict[str, str]) -> None:
    """Complete sign-in (enrolling TOTP the first time); a fresh TOTP step is used every time."""
    r = password_step(client, username)
    assert r.status_code == 303, r.text
    if r.headers["Location"].endswith("/enrol-totp"):
        page = client.get("/enrol-totp").text
        secrets[username] = SECRET_RE.search(page).group(1).replace(" ", "")
        path = "/enrol-totp"
    else:
        clock.advance(31)  # codes are single use: move on to the next 30-second step
        page = client.get("/totp").text
        path = "/totp"
    code = pyotp.TOTP(secrets[username]).at(clock.now())
    r = client.post(path, data={"csrf_token": csrf_from(page), "code": code})
    assert r.status_code == 303, r.text
    assert client.get_cookie(SESSION_COOKIE) is not None
    if "/guidelines" in r.headers["Location"]:  # first sign-in: accept the usage guidelines
        page = client.get(r.headers["Location"]).text
        r = client.post(r.headers["Location"], data={"csrf_token": csrf_from(page), "accept": "yes"})
        assert r.status_code == 303, r.text


@pytest.fixture
def totp_secrets() -> dict[str, str]:
    return {}


@pytest.fixture
def anna(app, clock, totp_secrets):
    c = client_of(app)
    sign_in(c, clock, "anna", totp_secrets)
    return c


def upload(client, path: Path | None = None, *, data: bytes | None = None, filename: str = "samtal.wav",
           title: str = "Hembesök", fields: dict[str, str] | None = None):
    import io

    payload = data if data is not None else path.read_bytes()
    return client.post("/upload", data={"csrf_token": token_for(client, "/upload"), "title": title, **(fields or {}),
                                        "file": (io.BytesIO(payload), filename)},
                       content_type="multipart/form-data")


def uploaded_id(client, clip: Path) -> str:
    r = upload(client, clip)
    assert r.status_code == 303, r.text
    m = re.fullmatch(r".*/recordings/([0-9a-f]+)", r.headers["Location"])
    assert m, r.headers["Location"]
    return m.group(1)


def counts(db, ctx) -> tuple[int, int, int]:
    recs = db.execute("SELECT count(*) FROM recordings").fetchone()[0]
    jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    blobs = len(list(ctx.cfg.paths.blobs.iterdir()))
    return recs, jobs, blobs


# --- app, headers, secrets ----------------------------------------------------------------------
