"""Invitations (one-time enrolment links), the password policy and the usage-guidelines gate."""

from __future__ import annotations

import hashlib
import re
from contextlib import closing

import pyotp
import pytest

from appliance.errors import AuthError
from appliance.platform import audit
from appliance.users import accounts, invitations
from tests.test_retention_web import smtp  # noqa: F401 - fixture
from tests.web_fixtures import SECRET_RE, client_of, csrf_from, make_ctx, sign_in
from web import create_app

LINK_RE = re.compile(r'id="invite-link"[^>]*>https://[^/]+(/invite/[A-Za-z0-9_-]+)<')
GOOD = "blåbär-cykel-fönster-moln"


def _invite(it, **fields):
    page = it.get("/admin/users").text
    data = {"csrf_token": csrf_from(page), "display_name": "Berit Nilsson", "email": "berit.nilsson@kommun.se",
            "role_caseworker": "on", **fields}
    return it.post("/admin/users/invite", data=data)


def _admin(app, clock, totp_secrets):
    it = client_of(app)
    sign_in(it, clock, "it", totp_secrets)
    return it


def _choose_password(c, path, password, password2=None):
    page = c.get(path).text
    return c.post(path, data={"csrf_token": csrf_from(page), "password": password,
                              "password2": password if password2 is None else password2})


def test_invitation_flow_password_totp_guidelines(app, clock, totp_secrets, users, db):
    it = _admin(app, clock, totp_secrets)
    r = _invite(it)
    assert r.status_code == 200
    path = LINK_RE.search(r.text).group(1)
    token = path.rsplit("/", 1)[1]
    # Only the hash is stored; the audit names ids only.
    row = db.execute("SELECT token_hash, user_id FROM invitations").fetchone()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert db.execute("SELECT count(*) FROM invitations WHERE token_hash = ?", (token,)).fetchone()[0] == 0
    uid = row["user_id"]
    user = accounts.get_user(db, uid)
    assert user.username == "berit.nilsson" and user.invited and user.roles == {"caseworker"}
    assert path not in it.get("/admin/users").text  # shown once
    assert "Inbjuden" in it.get("/admin/users").text
    created = audit.entries(db, action="invitation.create")[-1]
    assert created["target"] == f"user:{uid}" and "berit" not in str(created)

    c = client_of(app)
    page = c.get(path)
    assert page.status_code == 200 and "berit.nilsson" in page.text and 'autocomplete="new-password"' in page.text
    for bad, why in (("kort", "minst 12"), ("Välkommen2024!", "för vanligt"), ("lösenord123456", "för vanligt"),
                     ("qwertyuiop123", "för vanligt"), ("berit.nilsson-2024x", "användarnamn"),
                     ("aaaaaaaaaaaaaa", "för vanligt")):
        r = _choose_password(c, path, bad)
        assert r.status_code == 400 and why in r.text, bad
    assert _choose_password(c, path, GOOD, GOOD + "x").status_code == 400
    r = _choose_password(c, path, GOOD)
    assert r.status_code == 303 and r.headers["Location"] == "/enrol-totp"
    assert audit.entries(db, action="invitation.accepted")[-1]["actor"] == f"user:{uid}"
    # Single use.
    assert client_of(app).get(path).status_code == 404
    other = client_of(app)
    r = other.post(path, data={"csrf_token": csrf_from(other.get("/login").text), "password": GOOD,
                               "password2": GOOD})
    assert r.status_code == 404

    page = c.get("/enrol-totp").text
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    r = c.post("/enrol-totp", data={"csrf_token": csrf_from(page), "code": pyotp.TOTP(secret).at(clock.now())})
    assert r.headers["Location"] == "/guidelines"
    # Until the guidelines are accepted, only they (and sign-out) are reachable.
    for p in ("/", "/upload", "/folders"):
        assert c.get(p).headers["Location"] == "/guidelines", p
    assert c.get("/recordings/status").status_code == 403
    g = c.get("/guidelines")
    assert g.status_code == 200 and "Riktlinjer för Samtalsstöd" in g.text
    assert c.post("/guidelines", data={"csrf_token": csrf_from(g.text)}).status_code == 400
    r = c.post("/guidelines", data={"csrf_token": csrf_from(g.text), "accept": "yes"})
    assert r.status_code == 303
    assert c.get("/").status_code == 200
    acc = audit.entries(db, action="guidelines.accepted")[-1]
    assert acc["actor"] == f"user:{uid}" and acc["detail"] == "version:1"
    u = accounts.get_user(db, uid)
    assert not u.invited and u.guidelines_version == "1" and u.guidelines_accepted_at
    # And the account works for a normal sign-in with the chosen password.
    c2 = client_of(app)
    r = c2.post("/login", data={"csrf_token": csrf_from(c2.get("/login").text), "username": "berit.nilsson",
                                "password": GOOD})
    assert r.headers["Location"] == "/totp"


def test_invitation_expires_and_a_new_link_replaces_the_old(app, clock, totp_secrets, users, db):
    it = _admin(app, clock, totp_secrets)
    path = LINK_RE.search(_invite(it, username="berit").text).group(1)
    uid = accounts.find_user(db, "berit").id
    clock.advance(73 * 3600)
    it = _admin(app, clock, totp_secrets)
    assert client_of(app).get(path).status_code == 404
    assert "länken har gått ut" in it.get("/admin/users").text
    r = it.post(f"/admin/users/{uid}/reinvite", data={"csrf_token": csrf_from(it.get("/admin/users").text)})
    new_path = LINK_RE.search(r.text).group(1)
    assert new_path != path and client_of(app).get(new_path).status_code == 200
    newer = invitations.reinvite(db, app.extensions["samtalsstod.appliance"].cfg, uid, actor="test")
    assert client_of(app).get(new_path).status_code == 404  # replaced
    assert client_of(app).get(f"/invite/{newer}").status_code == 200
    # Disabled invitees' links do not work.
    accounts.set_disabled(db, uid, True, actor="test")
    assert client_of(app).get(f"/invite/{newer}").status_code == 404


def test_invite_form_validation(app, clock, totp_secrets, users):
    it = _admin(app, clock, totp_secrets)
    assert _invite(it, display_name="").status_code == 400
    r = _invite(it, role_caseworker="")
    assert r.status_code == 400 and "minst en roll" in r.text
    assert _invite(it, email="inte-en-adress").status_code == 400
    assert _invite(it, username="anna").status_code == 400  # exists


def test_invitation_mail_holds_the_link_only(tmp_path, smtp, clock):  # noqa: F811 - fixture
    port, received = smtp
    ctx_ = make_ctx(tmp_path)
    cfg = ctx_.cfg.model_copy(update={"mail": ctx_.cfg.mail.model_copy(update={
        "enabled": True, "smtp_host": "127.0.0.1", "smtp_port": port})})
    with closing(ctx_.connect()) as conn:
        user, token = invitations.invite(conn, cfg, username="berit", roles=["caseworker"], actor="test",
                                         display_name="Berit Nilsson", email="berit@kommun.se")
        assert invitations.send(cfg, conn, user, token)
    (env,) = received
    body = env.content.decode()
    assert env.rcpt_tos == ["berit@kommun.se"]
    assert f"/invite/{token}" in body and "Nilsson" not in body and "caseworker" not in body


def test_cli_link_uses_configured_address(ctx):
    assert invitations.link(ctx.cfg, "abc") == "https://127.0.0.1:8443/invite/abc"


def test_password_policy_unit():
    with pytest.raises(AuthError):
        accounts.check_password_policy("sommar2024sommar2024")
    with pytest.raises(AuthError):
        accounts.check_password_policy("Stockholm2025!", username="x")
    with pytest.raises(AuthError):
        accounts.check_password_policy("anna-anna-anna-anna")
    with pytest.raises(AuthError):
        accounts.check_password_policy("mitt-namn-ar-kalle99", email="kalle@kommun.se")
    with pytest.raises(AuthError):
        accounts.check_password_policy("123456789012345")
    accounts.check_password_policy(GOOD, username="berit", email="berit@kommun.se")
    assert "lösenord123" in accounts.common_passwords() and "sommar2024" in accounts.common_passwords()
    assert len(accounts.common_passwords()) > 2000
    for _ in range(50):
        accounts.check_password_policy(accounts.generate_password())


def test_new_guidelines_version_forces_re_acceptance(tmp_path, clock, totp_secrets):
    ctx_ = make_ctx(tmp_path)
    with closing(ctx_.connect()) as conn:
        accounts.create_user(conn, "anna", ["caseworker"], password=GOOD)
    app1 = create_app(ctx_, {"TESTING": True})
    from tests import test_web

    c = client_of(app1)
    orig = test_web.PASSWORD
    test_web.PASSWORD = GOOD
    try:
        r = test_web.password_step(c, "anna", GOOD)
        assert r.status_code == 303
        page = c.get("/enrol-totp").text
        secret = SECRET_RE.search(page).group(1).replace(" ", "")
        c.post("/enrol-totp", data={"csrf_token": csrf_from(page), "code": pyotp.TOTP(secret).at(clock.now())})
        g = c.get("/guidelines").text
        c.post("/guidelines", data={"csrf_token": csrf_from(g), "accept": "yes"})
        assert c.get("/").status_code == 200
    finally:
        test_web.PASSWORD = orig
    office = tmp_path / "riktlinjer.txt"
    office.write_text("# Kontorets riktlinjer\n\nSpela aldrig in utan samtycke.\n", encoding="utf-8")
    cfg2 = ctx_.cfg.model_copy(update={"guidelines": ctx_.cfg.guidelines.model_copy(
        update={"file": office, "version": "2025-2"})})
    import dataclasses

    app1.extensions["samtalsstod.appliance"] = dataclasses.replace(ctx_, cfg=cfg2)  # the office's new text
    assert c.get("/").headers["Location"] == "/guidelines"
    g = c.get("/guidelines")
    assert "Kontorets riktlinjer" in g.text and "Version 2025-2" in g.text
    c.post("/guidelines", data={"csrf_token": csrf_from(g.text), "accept": "yes"})
    assert c.get("/").status_code == 200
