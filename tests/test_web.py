"""Web unit: Flask test client against the real core (SQLCipher, blob store, accounts, access, audit).

Sign-in goes through the real password + TOTP flow; codes are computed with pyotp from the secret the
enrolment page shows. Time is moved with a patched `appliance.clock.now` (TOTP steps, idle timeouts,
lockouts). Audio is real Swedish speech from espeak-ng (`sv_clip`).
"""

from __future__ import annotations

import json
import os
import re
import wave
from pathlib import Path

import pyotp
import pytest

from appliance.platform import audit
from appliance.users.accounts import create_user
from tests.web_fixtures import (
    PASSWORD,
    SECRET_RE,
    counts,
    csrf_from,
    make_ctx,
    password_step,
    sign_in,
    token_for,
    upload,
    uploaded_id,
)
from web import STATE_COOKIE, create_app
from web.auth import SESSION_COOKIE


def test_healthz_needs_no_sign_in_and_says_nothing_else(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}


def test_security_headers_on_every_response(client, anna):
    for c, path in ((client, "/login"), (client, "/healthz"), (anna, "/"), (anna, "/recordings/status"),
                    (anna, "/nope")):
        r = c.get(path)
        h = r.headers
        csp = h["Content-Security-Policy"]
        for directive in ("default-src 'self'", "style-src 'self'", "img-src 'self' data:",
                          "media-src 'self'", "object-src 'none'", "base-uri 'none'",
                          "frame-ancestors 'none'", "form-action 'self'"):
            assert directive in csp, (path, directive)
        assert re.search(r"script-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'", csp)
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert "max-age=" in h["Strict-Transport-Security"]
        assert "microphone=(self)" in h["Permissions-Policy"]
        assert h["Cache-Control"] == "no-store", path
    # Scripts carry this response's nonce; no inline scripts or styles at all.
    r = anna.get("/")
    nonce = re.search(r"'nonce-([^']+)'", r.headers["Content-Security-Policy"]).group(1)
    scripts = re.findall(r"<script([^>]*)>", r.text)
    assert scripts and all(f'nonce="{nonce}"' in s and "src=" in s for s in scripts)
    assert " style=" not in r.text
    # Nonces differ per request.
    assert nonce not in anna.get("/").headers["Content-Security-Policy"]


def test_pages_are_swedish_accessible_and_self_contained(client):
    html = client.get("/login").text
    assert '<html lang="sv">' in html
    assert 'class="skip-link" href="#main"' in html and 'id="main"' in html
    assert '<label for="username">Användarnamn</label>' in html
    assert '<label for="password">Lösenord</label>' in html
    assert "http://" not in html and "https://" not in html  # no CDN, no external resources
    css = client.get("/static/app.css")
    assert css.status_code == 200 and ":focus-visible" in css.text


def test_flask_secret_key_lives_in_the_encrypted_database(ctx, db, users):
    app1 = create_app(ctx)
    row = db.execute("SELECT value FROM app_secrets WHERE name = 'flask_secret_key'").fetchone()
    assert row is not None and len(row["value"]) == 32
    assert app1.config["SECRET_KEY"] == bytes(row["value"])
    assert create_app(ctx).config["SECRET_KEY"] == app1.config["SECRET_KEY"]
    assert not any(bytes(row["value"]) in p.read_bytes() for p in ctx.cfg.paths.state_dir.rglob("*")
                   if p.is_file())


# --- sign-in ------------------------------------------------------------------------------------

def test_signin_with_totp_enrolment_sets_a_hardened_session_cookie(app, client, clock, db, users):
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = password_step(client, "anna")
    assert r.status_code == 303 and r.headers["Location"].endswith("/enrol-totp")
    assert client.get_cookie(SESSION_COOKIE) is None  # nothing granted before the second factor
    assert client.get("/").status_code == 302

    page = client.get("/enrol-totp")
    assert page.status_code == 200
    assert "<svg" in page.text and "<title>" in page.text  # QR code, rendered server-side
    secret = SECRET_RE.search(page.text).group(1).replace(" ", "")
    assert len(secret) >= 16
    assert secret in client.get("/enrol-totp").text.replace(" ", "")  # a reload keeps the scanned secret

    wrong = client.post("/enrol-totp", data={"csrf_token": csrf_from(page.text), "code": "000000"})
    assert wrong.status_code == 200 and "Koden stämmer inte" in wrong.text

    r = client.post("/enrol-totp", data={"csrf_token": csrf_from(page.text),
                                         "code": pyotp.TOTP(secret).at(clock.now())})
    assert r.status_code == 303 and r.headers["Location"] == "/guidelines"  # first sign-in: guidelines first
    cookies = r.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    attrs = [a.strip().lower() for a in session_cookie.split(";")]
    assert {"secure", "httponly", "path=/", "samesite=lax"} <= set(attrs)
    assert not any(a.startswith("domain") for a in attrs)
    token = session_cookie.split(";")[0].split("=", 1)[1]
    # The database keeps only the token's hash.
    assert db.execute("SELECT count(*) FROM sessions WHERE token_hash = ?", (token,)).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM sessions WHERE user_id = ?", (users["anna"],)).fetchone()[0] == 1
    # The state cookie is hardened too.
    state = client.get_cookie(STATE_COOKIE)
    assert state is None or (state.secure and state.http_only and state.path == "/")

    assert client.get("/").headers["Location"] == "/guidelines"
    page = client.get("/guidelines")
    client.post("/guidelines", data={"csrf_token": csrf_from(page.text), "accept": "yes"})
    home = client.get("/")
    assert home.status_code == 200 and "<h1>Mina inspelningar</h1>" in home.text
    signins = audit.entries(db, action="auth.signin")
    assert [e["actor"] for e in signins] == [f"user:{users['anna']}"]


def test_totp_code_cannot_be_replayed(app, client, clock, totp_secrets):
    sign_in(client, clock, "anna", totp_secrets)
    used_code = pyotp.TOTP(totp_secrets["anna"]).at(clock.now())
    client.post("/logout", data={"csrf_token": token_for(client, "/")})

    assert password_step(client, "anna").headers["Location"].endswith("/totp")
    r = client.post("/totp", data={"csrf_token": token_for(client, "/totp"), "code": used_code})
    assert r.status_code == 200 and "redan använts" in r.text
    assert client.get_cookie(SESSION_COOKIE) is None

    clock.advance(30)
    r = client.post("/totp", data={"csrf_token": token_for(client, "/totp"),
                                   "code": pyotp.TOTP(totp_secrets["anna"]).at(clock.now())})
    assert r.status_code == 303 and client.get("/").status_code == 200


def test_totp_step_needs_a_fresh_password_step(app, client, clock):
    r = client.get("/totp")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert password_step(client, "anna").status_code == 303
    clock.advance(5 * 60 + 1)  # the pre-auth state lasts five minutes
    r = client.get("/enrol-totp")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    assert "för lång tid" in client.get("/login").text


def test_wrong_passwords_lock_the_account(tmp_path, clock):
    ctx = make_ctx(tmp_path, login_max_failures=3, login_lockout_minutes=10)
    conn = ctx.connect()
    create_user(conn, "anna", ["caseworker"], password=PASSWORD)
    app = create_app(ctx)
    client = app.test_client()
    for _ in range(3):
        r = password_step(client, "anna", "fel-lösenord-helt-och-hållet")
        assert r.status_code == 200 and "Fel användarnamn eller lösenord" in r.text
        assert 'aria-invalid="true"' in r.text
    r = password_step(client, "anna")  # right password, but locked
    assert r.status_code == 429 and "För många misslyckade inloggningsförsök" in r.text
    clock.advance(10 * 60 + 1)
    assert password_step(client, "anna").status_code == 303
    denied = [e for e in audit.entries(conn, action="auth.password") if e["result"] == "denied"]
    assert [e["detail"] for e in denied] == ["", "", "", "throttled"]
    conn.close()


def test_unknown_user_gets_the_same_answer(client):
    r = password_step(client, "finns-inte")
    assert r.status_code == 200 and "Fel användarnamn eller lösenord" in r.text


def test_next_parameter_is_local_only(app, client, clock, totp_secrets):
    r = client.post("/login?next=//evil.example/x", data={"csrf_token": token_for(client), "username": "anna",
                                                           "password": PASSWORD})
    page = client.get(r.headers["Location"]).text
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    code = pyotp.TOTP(secret).at(clock.now())
    r = client.post("/enrol-totp", data={"csrf_token": csrf_from(page), "code": code})
    assert r.headers["Location"] == "/guidelines"  # first sign-in; the foreign next is dropped


# --- CSRF, sessions -----------------------------------------------------------------------------

def test_posts_without_csrf_token_are_refused(anna, client):
    r = client.post("/login", data={"username": "anna", "password": PASSWORD})
    assert r.status_code == 400 and "Formuläret har gått ut" in r.text
    assert client.get_cookie(SESSION_COOKIE) is None
    r = anna.post("/logout")
    assert r.status_code == 400
    assert anna.get("/").status_code == 200  # still signed in
    r = anna.post("/logout", data={"csrf_token": token_for(anna, "/")},
                  headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert anna.get("/").status_code == 200


def test_logout_deletes_the_server_session(anna, app, db, users):
    token = anna.get_cookie(SESSION_COOKIE).value
    r = anna.post("/logout", data={"csrf_token": token_for(anna, "/")})
    assert r.status_code == 303 and r.headers["Location"].endswith("/login")
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    assert "Du är utloggad" in anna.get("/login").text
    assert [e["actor"] for e in audit.entries(db, action="auth.signout")] == [f"user:{users['anna']}"]
    # The old cookie, replayed, no longer works.
    thief = app.test_client()
    thief.set_cookie(SESSION_COOKIE, token, secure=True, path="/")
    r = thief.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_idle_session_expires(anna, clock, db):
    clock.advance(29 * 60)  # default idle limit is 30 minutes
    assert anna.get("/").status_code == 200  # activity renews it
    clock.advance(31 * 60)
    r = anna.get("/recordings/status", headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.is_json and r.get_json()["login"] == "/login"
    assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 0
    r = anna.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert "loggats ut efter en tids inaktivitet" in anna.get("/login").text


def test_session_expires_for_a_page_request_with_a_message(anna, clock):
    clock.advance(10 * 3600 + 1)  # the absolute limit, whatever the activity
    r = anna.get("/upload")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert any(c.startswith(SESSION_COOKIE + "=;") for c in r.headers.getlist("Set-Cookie"))
    assert "inaktivitet" in anna.get("/login").text


# --- upload ---------------------------------------------------------------------------------------

def test_upload_queues_transcription(anna, sv_clip, db, ctx, users):
    rec_id = uploaded_id(anna, sv_clip)
    page = anna.get(f"/recordings/{rec_id}")
    assert page.status_code == 200
    assert "Hembesök" in page.text and "Köad" in page.text
    assert f'data-recording-id="{rec_id}" data-status="queued"' in page.text
    job = db.execute("SELECT kind, state FROM jobs WHERE recording_id = ?", (rec_id,)).fetchone()
    assert tuple(job) == ("transcribe", "queued")
    blob = ctx.cfg.paths.blobs / f"{rec_id}.blob"
    assert blob.exists() and sv_clip.read_bytes()[:4096] not in blob.read_bytes()  # encrypted at rest
    listing = anna.get("/")
    assert "Hembesök" in listing.text and f'href="/recordings/{rec_id}"' in listing.text
    assert anna.get("/recordings/status").get_json() == {
        "recordings": [{"id": rec_id, "status": "queued", "progress": 0.0}]}
    assert audit.entries(db, action="recording.create", target=f"recording:{rec_id}")


def test_upload_form(anna):
    html = anna.get("/upload").text
    assert 'enctype="multipart/form-data"' in html
    assert 'accept="audio/*,.wav,.mp3,.m4a,.ogg,.opus,.webm,.flac"' in html
    assert '<label for="file">' in html and '<label for="title">' in html


def test_upload_is_parsed_in_memory_never_spooled_to_disk(anna, sv_clip, tmp_path, monkeypatch):
    import werkzeug.formparser
    import werkzeug.wrappers.request

    def forbidden(*_a, **_k):
        raise AssertionError("upload spooled to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", forbidden)
    monkeypatch.setattr(werkzeug.formparser, "TemporaryFile", forbidden, raising=False)
    monkeypatch.setattr(werkzeug.wrappers.request, "default_stream_factory", forbidden)
    big = tmp_path / "long.wav"  # > 500 KB: werkzeug would spool this to disk by default
    with wave.open(str(sv_clip)) as src:
        params, frames = src.getparams(), src.readframes(src.getnframes())
    with wave.open(str(big), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(frames * 3)
    assert big.stat().st_size > 600_000
    assert upload(anna, big).status_code == 303


def _truncated_wav(clip: Path) -> bytes:
    return clip.read_bytes()[:100]


@pytest.mark.parametrize("case", ["empty", "random", "text", "truncated", "no-file"])
def test_bad_uploads_are_refused_and_leave_nothing(anna, sv_clip, db, ctx, case):
    data, name = {
        "empty": (b"", "tom.wav"),
        "random": (os.urandom(50_000), "brus.wav"),
        "text": ("Det här är inte ljud utan en anteckning.\n".encode() * 50, "anteckning.txt"),
        "truncated": (_truncated_wav(sv_clip), "avklippt.wav"),
        "no-file": (b"", ""),
    }[case]
    r = upload(anna, data=data, filename=name)
    assert r.status_code == 400
    msg = re.search(r'id="upload-error" class="field-error" role="alert">([^<]+)<', r.text)
    assert msg and len(msg.group(1)) > 10, r.text
    assert "Traceback" not in r.text
    assert 'value="Hembesök"' in r.text  # the form keeps what was typed
    assert counts(db, ctx) == (0, 0, 0)
    assert not list(ctx.cfg.paths.blobs.glob("*.partial"))


def test_oversize_upload_gets_a_clear_413(tmp_path, clock, sv_clip):
    ctx = make_ctx(tmp_path, max_upload_mb=1)
    conn = ctx.connect()
    create_user(conn, "anna", ["caseworker"], password=PASSWORD)
    app = create_app(ctx)
    client = app.test_client()
    sign_in(client, clock, "anna", {})
    assert 'data-max-bytes="1048576"' in client.get("/upload").text
    r = upload(client, data=os.urandom(1_200_000), filename="stor.wav")
    assert r.status_code == 413
    assert "Filen är för stor, högst 1 MB" in r.text
    assert counts(conn, ctx) == (0, 0, 0)
    # Just over the limit but inside the form allowance: the core refuses it with the same meaning.
    r = upload(client, data=os.urandom(1024 * 1024 + 10), filename="stor.wav")
    assert r.status_code == 400 and "för stor" in r.text
    assert counts(conn, ctx) == (0, 0, 0)
    conn.close()


# --- access ---------------------------------------------------------------------------------------

def test_other_users_get_404_and_the_attempt_is_audited(app, anna, clock, totp_secrets, sv_clip, db, users):
    rec_id = uploaded_id(anna, sv_clip)
    bo = app.test_client()
    sign_in(bo, clock, "bo", totp_secrets)
    for path, action in ((f"/recordings/{rec_id}", "recording.read"), (f"/recordings/{rec_id}/audio",
                                                                        "recording.audio")):
        r = bo.get(path)
        assert r.status_code == 404, path
        assert "Hembesök" not in r.text
        entries = audit.entries(db, action=action, target=f"recording:{rec_id}")
        assert {"actor": f"user:{users['bo']}", "result": "denied"}.items() <= entries[-1].items()
    assert "Hembesök" not in bo.get("/").text
    assert bo.get("/recordings/status").get_json() == {"recordings": []}
    # Unknown ids look exactly the same as someone else's.
    assert bo.get("/recordings/0123456789abcdef01234567").status_code == 404


def test_admin_only_user_has_no_content_access(app, anna, clock, totp_secrets, sv_clip, db, ctx, users):
    rec_id = uploaded_id(anna, sv_clip)
    it = app.test_client()
    sign_in(it, clock, "it", totp_secrets)
    home = it.get("/")
    assert home.status_code == 200 and "ingen åtkomst till inspelningar" in home.text
    assert "Hembesök" not in home.text
    assert it.get(f"/recordings/{rec_id}").status_code == 404
    assert it.get(f"/recordings/{rec_id}/audio").status_code == 404
    denied = [e for e in audit.entries(db, target=f"recording:{rec_id}")
              if e["actor"] == f"user:{users['it']}"]
    assert len(denied) == 2 and all(e["result"] == "denied" for e in denied)
    before = counts(db, ctx)
    r = upload(it, sv_clip)
    assert r.status_code == 403 and "ingen behörighet" in r.text
    assert counts(db, ctx) == before


def test_content_requires_sign_in(app, anna, sv_clip):
    rec_id = uploaded_id(anna, sv_clip)
    anon = app.test_client()
    r = anon.get(f"/recordings/{rec_id}")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert anon.get(f"/recordings/{rec_id}/audio").status_code == 401
    r = anon.get("/recordings/status")
    assert r.status_code == 401 and r.is_json


# --- audio ----------------------------------------------------------------------------------------

def test_audio_streams_with_range_support(anna, sv_clip, db):
    rec_id = uploaded_id(anna, sv_clip)
    original = sv_clip.read_bytes()
    size = len(original)
    url = f"/recordings/{rec_id}/audio"

    r = anna.get(url, buffered=False)
    assert r.is_streamed  # chunk by chunk from the blob store, not one big body
    assert r.status_code == 200 and r.get_data() == original
    r.close()
    assert r.headers["Content-Length"] == str(size) and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Type"] == "audio/wav" and r.headers["Cache-Control"] == "no-store"

    for header, start, end in (("bytes=100-199", 100, 200), ("bytes=0-", 0, size),
                               ("bytes=65000-140000", 65000, 140001),  # across the 64 KiB chunks
                               (f"bytes={size - 10}-{size + 500}", size - 10, size),
                               ("bytes=-500", size - 500, size)):
        r = anna.get(url, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.data == original[start:end], header
        assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}", header
        assert r.headers["Content-Length"] == str(end - start)

    for header in (f"bytes={size}-", f"bytes={size + 1000}-{size + 2000}"):
        r = anna.get(url, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["Content-Range"] == f"bytes */{size}"
    reads = audit.entries(db, action="recording.audio", target=f"recording:{rec_id}")
    assert reads and all(e["result"] == "ok" for e in reads)


# --- transcript and status --------------------------------------------------------------------------

def _make_ready(db, rec_id: str, segments: list[tuple[float, float, str]]) -> None:
    db.executemany('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                   [(rec_id, i, s, e, t) for i, (s, e, t) in enumerate(segments)])
    db.execute("UPDATE recordings SET status = 'ready', progress = 1 WHERE id = ?", (rec_id,))


def test_ready_recording_shows_player_and_clickable_transcript(anna, sv_clip, db):
    rec_id = uploaded_id(anna, sv_clip)
    _make_ready(db, rec_id, [(0.0, 3.2, " Hej, jag heter Anna."), (3.2, 6.5, " Vi ska prata om skolan."),
                             (65.0, 70.0, " Och familjens <ekonomi>.")])
    html = anna.get(f"/recordings/{rec_id}").text
    assert f'<audio id="player" controls preload="metadata" src="/recordings/{rec_id}/audio">' in html
    starts = re.findall(r'<li class="seg"[^>]*? data-start="([0-9.]+)"', html)
    assert starts == ["0.00", "3.20", "65.00"]
    assert ">00:03</button>" in html and ">01:05</button>" in html
    assert "Hej, jag heter Anna." in html
    assert "&lt;ekonomi&gt;" in html  # transcript text is escaped
    assert "/static/player.js" in html
    assert "Klar" in html
    js = anna.get("/static/player.js").text
    assert "aria-current" in js and "data-start" in js and '" "' in js


def test_list_shows_statuses_progress_and_failures(anna, sv_clip, db):
    a = uploaded_id(anna, sv_clip)
    b = uploaded_id(anna, sv_clip)
    c = uploaded_id(anna, sv_clip)
    db.execute("UPDATE recordings SET status = 'transcribing', progress = 0.42 WHERE id = ?", (a,))
    db.execute("UPDATE recordings SET status = 'failed', error = ? WHERE id = ?",
               ("Ljudet kunde inte avkodas.", b))
    html = anna.get("/").text
    assert '<progress max="100" value="42"' in html and "Transkriberas" in html
    assert "Misslyckades" in html and "Ljudet kunde inte avkodas." in html
    assert "Köad" in html
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00">', html)  # Stockholm time
    assert "00:09" in html  # duration of the clip
    statuses = {s["id"]: s for s in anna.get("/recordings/status").get_json()["recordings"]}
    assert statuses[a] == {"id": a, "status": "transcribing", "progress": 0.42}
    assert statuses[b]["status"] == "failed" and statuses[c]["status"] == "queued"
    assert "Hembesök" not in json.dumps(statuses)  # status polling carries no titles


# --- errors ---------------------------------------------------------------------------------------

def test_errors_are_friendly_and_never_show_a_trace(anna, monkeypatch):
    r = anna.get("/finns-inte")
    assert r.status_code == 404 and "Sidan finns inte" in r.text

    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("appliance.recordings.recordings.list_for_user", boom)
    monkeypatch.setattr("appliance.recordings.recordings.statuses_for_user", boom)
    r = anna.get("/")
    assert r.status_code == 500
    assert "Något gick fel" in r.text and "secret internals" not in r.text and "Traceback" not in r.text
    r = anna.get("/recordings/status", headers={"Accept": "application/json"})
    assert r.status_code == 500 and r.is_json and "secret" not in r.text


def test_upload_stores_the_speakers_hint_and_rejects_a_bad_one(anna, sv_clip, db):
    bad = upload(anna, sv_clip, fields={"speakers": "0"})
    assert bad.status_code == 400 and "Antal talare" in bad.text
    assert db.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
    ok = upload(anna, sv_clip, fields={"speakers": "2"})
    assert ok.status_code == 303
    assert db.execute("SELECT speakers_hint FROM recordings").fetchone()[0] == 2
