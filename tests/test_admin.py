"""Admin UI (/admin/users, /admin/tokens) and the admin API (/api/admin/*): real core, Flask client."""

from __future__ import annotations

import re

from appliance.platform import audit
from appliance.users.accounts import get_user
from tests.web_fixtures import PASSWORD, client_of, csrf_from, sign_in

TOKEN_RE = re.compile(r'id="api-token"[^>]*>(sst_[A-Za-z0-9_-]+)<')


def _signed_in(app, clock, totp_secrets, name):
    c = client_of(app)
    sign_in(c, clock, name, totp_secrets)
    return c


def _post(c, path, data=None, page="/admin/users"):
    return c.post(path, data={"csrf_token": csrf_from(c.get(page).text), **(data or {})})


def test_admin_pages_are_404_for_everyone_else(app, clock, totp_secrets, users):
    anna = _signed_in(app, clock, totp_secrets, "anna")
    for path in ("/admin/users", "/admin/tokens"):
        assert anna.get(path).status_code == 404
    token = csrf_from(anna.get("/").text)
    r = anna.post(f"/admin/users/{users['bo']}/disable", data={"csrf_token": token})
    assert r.status_code == 404
    assert not get_user_disabled(app, users["bo"])
    assert "Administration" not in anna.get("/").text
    anon = client_of(app)
    assert anon.get("/admin/users").status_code == 302


def get_user_disabled(app, uid):
    from web import EXT_KEY

    conn = app.extensions[EXT_KEY].connect()
    try:
        return get_user(conn, uid).disabled
    finally:
        conn.close()


def test_user_list_shows_roles_status_totp_and_guidelines(app, clock, totp_secrets, users):
    _signed_in(app, clock, totp_secrets, "anna")
    it = _signed_in(app, clock, totp_secrets, "it")
    page = it.get("/admin/users")
    assert page.status_code == 200 and 'href="/admin/users" aria-current="page"' in page.text
    row = re.search(rf'<tr id="user-{users["anna"]}">(.*?)</tr>', page.text, re.S).group(1)
    assert 'name="role_caseworker" checked' in row and "Aktiv" in row
    assert "<td>Ja</td>" in row and "Version 1" in row
    row = re.search(rf'<tr id="user-{users["bo"]}">(.*?)</tr>', page.text, re.S).group(1)
    assert "<td>Nej</td>" in row  # bo never signed in: no TOTP, no guidelines
    assert totp_secrets["anna"] not in page.text


def test_role_change_takes_effect_on_the_next_request_and_is_audited(app, clock, totp_secrets, users, db):
    anna = _signed_in(app, clock, totp_secrets, "anna")
    assert anna.get("/review").status_code == 404
    it = _signed_in(app, clock, totp_secrets, "it")
    r = _post(it, f"/admin/users/{users['anna']}/roles", {"role_caseworker": "on", "role_responsible": "on"})
    assert r.status_code == 303
    assert anna.get("/review").status_code == 200  # same session, fresh user
    rec = audit.entries(db, action="user.roles_changed")[-1]
    assert rec["actor"] == f"user:{users['it']}" and rec["target"] == f"user:{users['anna']}"
    assert rec["data"] == {"before": ["caseworker"], "after": ["caseworker", "responsible"]}
    # Dropping the content role removes content access at once.
    _post(it, f"/admin/users/{users['anna']}/roles", {"role_responsible": "on"})
    assert 'href="/folders"' not in anna.get("/review").text  # no content role: no content menu
    # No roles at all, or the last admin losing admin, is refused.
    assert _post(it, f"/admin/users/{users['anna']}/roles", {}).status_code == 400
    r = _post(it, f"/admin/users/{users['it']}/roles", {"role_caseworker": "on"})
    assert r.status_code == 400 and "sista administratören" in r.text
    assert "admin" in get_user(db, users["it"]).roles


def test_disable_ends_sessions_immediately_and_enable_restores(app, clock, totp_secrets, users, db):
    anna = _signed_in(app, clock, totp_secrets, "anna")
    it = _signed_in(app, clock, totp_secrets, "it")
    assert _post(it, f"/admin/users/{users['anna']}/disable").status_code == 303
    assert db.execute("SELECT count(*) FROM sessions WHERE user_id = ?", (users["anna"],)).fetchone()[0] == 0
    assert anna.get("/").status_code == 302
    r = anna.post("/login", data={"csrf_token": csrf_from(anna.get("/login").text), "username": "anna",
                                  "password": PASSWORD})
    assert r.status_code == 200 and "Fel användarnamn eller lösenord" in r.text
    assert audit.entries(db, action="user.disabled")[-1]["target"] == f"user:{users['anna']}"
    assert _post(it, f"/admin/users/{users['it']}/disable").status_code == 400  # not yourself
    assert _post(it, f"/admin/users/{users['anna']}/enable").status_code == 303
    assert audit.entries(db, action="user.enabled")
    _signed_in(app, clock, totp_secrets, "anna")


def test_totp_reset_forces_re_enrolment_and_reveals_nothing(app, clock, totp_secrets, users, db):
    anna = _signed_in(app, clock, totp_secrets, "anna")
    it = _signed_in(app, clock, totp_secrets, "it")
    old = totp_secrets["anna"]
    r = _post(it, f"/admin/users/{users['anna']}/reset-totp")
    assert r.status_code == 303 and old not in it.get("/admin/users").text
    row = db.execute("SELECT totp_secret, totp_pending FROM users WHERE id = ?", (users["anna"],)).fetchone()
    assert row["totp_secret"] is None and row["totp_pending"] is None
    assert anna.get("/").status_code == 302  # sessions ended
    c = client_of(app)
    r = c.post("/login", data={"csrf_token": csrf_from(c.get("/login").text), "username": "anna",
                               "password": PASSWORD})
    assert r.headers["Location"] == "/enrol-totp"
    assert audit.entries(db, action="user.totp_reset")[-1]["target"] == f"user:{users['anna']}"


# --- API tokens ------------------------------------------------------------------------------------

def _new_token(it, name="övervakning"):
    r = _post(it, "/admin/tokens", {"name": name}, page="/admin/tokens")
    assert r.status_code == 200
    return TOKEN_RE.search(r.text).group(1)


def test_api_tokens_admin_scope_only(app, clock, totp_secrets, users, db):
    it = _signed_in(app, clock, totp_secrets, "it")
    token = _new_token(it)
    assert token not in it.get("/admin/tokens").text  # shown once
    assert db.execute("SELECT count(*) FROM api_tokens WHERE token_hash = ?", (token,)).fetchone()[0] == 0
    bearer = {"Authorization": f"Bearer {token}"}
    anon = client_of(app)
    health = anon.get("/api/admin/health", headers=bearer)
    assert health.status_code == 200
    body = health.get_json()
    assert set(body) >= {"jobs", "last_purge", "disk", "purge_overdue"} and body["disk"]["free_bytes"] > 0
    listed = anon.get("/api/admin/users", headers=bearer)
    assert listed.status_code == 200
    assert {u["id"] for u in listed.get_json()["users"]} == set(users.values())
    assert "anna" not in listed.text  # ids and roles, no names
    assert listed.headers["Cache-Control"] == "no-store"
    # The token means nothing on content routes …
    assert anon.get("/", headers=bearer).status_code == 302
    assert anon.get("/recordings/status", headers=bearer).status_code == 401
    assert anon.get("/folders", headers=bearer).status_code == 302
    # … and the API takes no cookies: a signed-in admin without a token is refused.
    assert it.get("/api/admin/users").status_code == 401
    assert anon.get("/api/admin/users", headers={"Authorization": "Bearer sst_nope"}).status_code == 401
    uses = audit.entries(db, action="api.request")
    assert [u["result"] for u in uses] == ["ok", "ok", "denied"]
    assert uses[0]["actor"].startswith("token:") and uses[0]["target"] == "api:health"
    page = it.get("/admin/tokens").text
    assert "övervakning" in page and "Aldrig" not in page  # last used is shown
    # Revoked: refused.
    tid = db.execute("SELECT id FROM api_tokens").fetchone()[0]
    assert _post(it, f"/admin/tokens/{tid}/revoke", page="/admin/tokens").status_code == 303
    assert anon.get("/api/admin/health", headers=bearer).status_code == 401
    assert audit.entries(db, action="api_token.revoke")


def test_api_token_dies_with_its_creators_admin_role(app, clock, totp_secrets, users, db):
    from appliance.users import accounts

    accounts.set_roles(db, users["bo"], ["admin"], actor="test")
    it = _signed_in(app, clock, totp_secrets, "it")
    token = _new_token(it)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client_of(app).get("/api/admin/health", headers=bearer).status_code == 200
    accounts.set_roles(db, users["it"], ["caseworker"], actor="test")
    assert client_of(app).get("/api/admin/health", headers=bearer).status_code == 401
