"""Issue 18: each finding of the independent probe, reproduced as the probe did it (the web app with Flask's
client, real SQLCipher, real audio), named after the finding. Findings 3, 8 and 9 have their own modules
(test_slow_clients.py, test_pseudonymize.py, test_finding9_*)."""

from __future__ import annotations

from contextlib import closing

import pyotp
import pytest

from appliance.platform import audit
from appliance.recordings import folders, recordings
from appliance.users import accounts
from appliance.users.accounts import create_user, get_user
from tests.conftest import make_tone
from tests.web_fixtures import PASSWORD, SECRET_RE, client_of, csrf_from, password_step, sign_in, token_for
from web.auth import SESSION_COOKIE

HUGE = "99999999999999999999999"  # past SQLite's 64-bit INTEGER range


def _post(client, path: str, data: dict | None = None, page: str = "/"):
    return client.post(path, data={"csrf_token": token_for(client, page), **(data or {})})


@pytest.fixture
def world(app, db, ctx, users, clock, totp_secrets, tmp_path):
    """anna owns folder "Ärenden" shared with her manager (chef) as editor; a recording lies in it."""
    chef = create_user(db, "chef", ["manager"], password=PASSWORD)[0]
    anna = get_user(db, users["anna"])
    fid = folders.create_folder(db, anna, "Ärenden")
    folders.share(db, anna, fid, chef.id, "editor")
    rid = recordings.create_from_upload(ctx, db, anna, title="Hembesök", filename="t.wav",
                                        data=make_tone(tmp_path / "t.wav", 0.3).read_bytes(), folder_id=fid)
    clients = {}
    for name in ("anna", "chef", "bo"):
        clients[name] = client_of(app)
        sign_in(clients[name], clock, name, totp_secrets)
    return {"fid": fid, "rid": rid, "chef_id": chef.id, **clients}


def test_finding1_editor_cannot_take_a_recording_away_from_its_owner(world, db, users):
    chef, anna, bo, rid = world["chef"], world["anna"], world["bo"], world["rid"]
    chef_folder = int(_post(chef, "/folders", {"name": "Mina egna"}, "/folders").headers["Location"].rsplit("/", 1)[1])
    # The probe: the editor moves the recording into a folder of their own, then shares that folder onward.
    assert chef.get(f"/recordings/{rid}").status_code == 200
    assert f'action="/recordings/{rid}/move"' not in chef.get(f"/recordings/{rid}").text  # no move form
    r = _post(chef, f"/recordings/{rid}/move", {"folder_id": str(chef_folder)}, f"/recordings/{rid}")
    assert r.status_code == 404
    assert db.execute("SELECT folder_id FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == world["fid"]
    denied = audit.entries(db, action="recording.move", actor=f"user:{world['chef_id']}")
    assert denied and denied[-1]["result"] == "denied" and denied[-1]["target"] == f"recording:{rid}"
    assert _post(chef, f"/folders/{chef_folder}/share", {"user_id": str(users["bo"]), "role": "viewer"},
                 "/folders").status_code == 303
    assert bo.get(f"/recordings/{rid}").status_code == 404
    assert bo.get(f"/recordings/{rid}/export.txt?personal=1").status_code == 404
    assert anna.get(f"/recordings/{rid}").status_code == 200
    # Unsharing the owner's folder still cuts the editor off.
    assert _post(anna, f"/folders/{world['fid']}/unshare", {"user_id": str(world["chef_id"])},
                 "/folders").status_code == 303
    assert chef.get(f"/recordings/{rid}").status_code == 404


def test_finding1_the_owner_moves_and_stays_owner_wherever_it_lies(world, db, users):
    """The owner may put it in her manager's folder (where she is editor); she stays its owner there, and a
    move is audited with both folders, the actor and the owner."""
    chef, anna, rid = world["chef"], world["anna"], world["rid"]
    chef_folder = int(_post(chef, "/folders", {"name": "Teamet"}, "/folders").headers["Location"].rsplit("/", 1)[1])
    assert _post(chef, f"/folders/{chef_folder}/share", {"user_id": str(users["anna"]), "role": "editor"},
                 "/folders").status_code == 303
    assert _post(anna, f"/recordings/{rid}/move", {"folder_id": str(chef_folder)},
                 f"/recordings/{rid}").status_code == 303
    moved = audit.entries(db, action="recording.moved", target=f"recording:{rid}")[-1]
    assert moved["actor"] == f"user:{users['anna']}"
    assert moved["data"] == {"from": f"folder:{world['fid']}", "to": f"folder:{chef_folder}",
                             "owner": f"user:{users['anna']}"}
    # The manager takes his share back: anna still owns (and may move back) her recording.
    assert _post(chef, f"/folders/{chef_folder}/unshare", {"user_id": str(users["anna"])},
                 "/folders").status_code == 303
    assert anna.get(f"/recordings/{rid}").status_code == 200
    assert _post(anna, f"/recordings/{rid}/move", {"folder_id": str(world["fid"])},
                 f"/recordings/{rid}").status_code == 303
    assert rid in anna.get("/").text


@pytest.mark.parametrize("nxt", ["/%09/evil.example/", "/%0A/x", "/%0D%0ALocation:%20https://evil.example/",
                                 "https://evil.example/", "//evil.example/", "/\\evil.example/", "/%5Cevil.example",
                                 "%2F%2Fevil.example", "javascript:alert(1)", "/%20/evil.example/"])
def test_finding2_no_open_redirect_after_sign_in(app, clock, users, totp_secrets, nxt):
    client = client_of(app)
    sign_in(client, clock, "anna", totp_secrets)  # enrol once
    client.post("/logout", data={"csrf_token": token_for(client, "/")})
    page = client.get(f"/login?next={nxt}")
    assert page.status_code == 200
    r = client.post(f"/login?next={nxt}", data={"csrf_token": csrf_from(page.text), "username": "anna",
                                                "password": PASSWORD})
    assert r.status_code == 303, r.text
    clock.advance(31)
    totp_page = client.get("/totp").text
    r = client.post("/totp", data={"csrf_token": csrf_from(totp_page),
                                   "code": pyotp.TOTP(totp_secrets["anna"]).at(clock.now())})
    assert r.status_code == 303
    assert r.headers["Location"] == "/", r.headers["Location"]  # the home page, never another site


def test_finding2_a_same_site_next_still_works(app, clock, users, totp_secrets):
    client = client_of(app)
    sign_in(client, clock, "anna", totp_secrets)
    client.post("/logout", data={"csrf_token": token_for(client, "/")})
    r = client.post("/login?next=/search%3Fq%3Dskola", data={"csrf_token": token_for(client), "username": "anna",
                                                            "password": PASSWORD})
    clock.advance(31)
    r = client.post("/totp", data={"csrf_token": csrf_from(client.get("/totp").text),
                                   "code": pyotp.TOTP(totp_secrets["anna"]).at(clock.now())})
    assert r.headers["Location"] == "/search?q=skola"


def test_finding4_preauth_state_cookie_is_single_use(app, clock, users, totp_secrets):
    victim = client_of(app)
    sign_in(victim, clock, "anna", totp_secrets)
    victim.post("/logout", data={"csrf_token": token_for(victim, "/")})
    assert password_step(victim, "anna").status_code == 303
    copied = victim.get_cookie("__Host-state").value  # taken after the password step
    clock.advance(31)
    page = victim.get("/totp").text
    r = victim.post("/totp", data={"csrf_token": csrf_from(page),
                                   "code": pyotp.TOTP(totp_secrets["anna"]).at(clock.now())})
    assert r.status_code == 303 and victim.get_cookie(SESSION_COOKIE) is not None
    # The attacker replays the copy with the next code, within the five minutes: no sign-in.
    attacker = client_of(app)
    attacker.set_cookie("__Host-state", copied, domain="localhost", secure=True, path="/")
    clock.advance(31)
    r = attacker.get("/totp")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    attacker.set_cookie("__Host-state", copied, domain="localhost", secure=True, path="/")
    r = attacker.post("/totp", data={"csrf_token": csrf_from(page),
                                     "code": pyotp.TOTP(totp_secrets["anna"]).at(clock.now())})
    assert attacker.get_cookie(SESSION_COOKIE) is None
    assert r.status_code in (302, 400)


def test_finding4_preauth_nonce_lives_on_the_server_only_five_minutes(app, clock, users, totp_secrets, db):
    client = client_of(app)
    sign_in(client, clock, "anna", totp_secrets)
    client.post("/logout", data={"csrf_token": token_for(client, "/")})
    password_step(client, "anna")
    assert db.execute("SELECT count(*) FROM preauth").fetchone()[0] == 1
    clock.advance(5 * 60 + 1)
    r = client.get("/totp")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")


def test_finding5_admin_cannot_give_themselves_responsible_or_content_roles(app, clock, users, totp_secrets, db):
    it = client_of(app)
    sign_in(it, clock, "it", totp_secrets)
    for extra in ("role_responsible", "role_caseworker", "role_manager"):
        r = _post(it, f"/admin/users/{users['it']}/roles", {"role_admin": "on", extra: "on"}, "/admin/users")
        assert r.status_code == 400 and "IT-administratör kan inte också vara" in r.text
    assert get_user(db, users["it"]).roles == {"admin"}
    assert it.get("/review").status_code == 404
    refused = audit.entries(db, action="user.roles_changed", result="denied")
    assert len(refused) == 3 and refused[-1]["detail"] == "separation_of_duties"
    # Nor through an invitation, nor for another user.
    r = _post(it, "/admin/users/invite", {"display_name": "Nils", "email": "nils@example.se", "role_admin": "on",
                                          "role_caseworker": "on"}, "/admin/users")
    assert r.status_code == 400 and accounts.find_user(db, "nils") is None
    r = _post(it, f"/admin/users/{users['anna']}/roles", {"role_admin": "on", "role_caseworker": "on"},
              "/admin/users")
    assert r.status_code == 400 and get_user(db, users["anna"]).roles == {"caseworker"}
    with pytest.raises(accounts.ApplianceError, match="IT-administratör"):
        create_user(db, "both", ["admin", "responsible"])


def test_finding5_the_dev_box_combined_account_says_so(app, clock, db, totp_secrets):
    create_user(db, "dev", ["admin", "caseworker"], password=PASSWORD, allow_combined=True)
    client = client_of(app)
    sign_in(client, clock, "dev", totp_secrets)
    page = client.get("/").text
    assert 'id="combined-roles"' in page and "Utvecklingskonto" in page
    anna = create_user(db, "anna2", ["caseworker"], password=PASSWORD)[0]
    assert not anna.has_combined_roles


def test_finding6_huge_integer_ids_are_a_404_and_audited(world, app, clock, totp_secrets, db, users):
    anna, rid = world["anna"], world["rid"]
    it = client_of(app)
    sign_in(it, clock, "it", totp_secrets)
    page = f"/recordings/{rid}"
    probes = [
        (anna, "GET", f"/folders/{HUGE}", None),
        (anna, "GET", f"/?folder={HUGE}", None),
        (anna, "POST", f"/folders/{HUGE}/rename", {"name": "x"}),
        (anna, "POST", f"/folders/{HUGE}/share", {"user_id": str(users["bo"]), "role": "viewer"}),
        (anna, "POST", f"/folders/{world['fid']}/share", {"user_id": HUGE, "role": "viewer"}),
        (anna, "POST", f"/recordings/{rid}/move", {"folder_id": HUGE}),
        (anna, "POST", "/upload", {"folder_id": HUGE, "title": "t"}),
        (anna, "POST", f"/recordings/{rid}/summaries/review", {"summary_id": HUGE, "state": "granskad"}),
        (anna, "POST", f"/recordings/{rid}/summaries/retry", {"summary_id": HUGE}),
        (anna, "POST", f"/recordings/{rid}/segments/{HUGE}/edit", {"text": "x"}),
        (anna, "GET", f"/recordings/{rid}/segments/{HUGE}/history", None),
        (anna, "POST", f"/recordings/{rid}/personal-data/decide", {"entity": HUGE, "status": "confirmed"}),
        (anna, "POST", f"/lexicon/{HUGE}/remove", None),
        (anna, "GET", f"/drafts/{HUGE}", None),
        (it, "POST", f"/admin/users/{HUGE}/disable", None),
        (it, "POST", f"/admin/users/{HUGE}/roles", {"role_caseworker": "on"}),
        (it, "POST", f"/admin/tokens/{HUGE}/revoke", None),
        (it, "POST", f"/admin/templates/{HUGE}/delete", None),
    ]
    wrong = []
    for client, method, path, form in probes:
        if method == "GET":
            r = client.get(path)
        else:
            src = "/admin/users" if client is it else page
            r = _post(client, path, form, src)
        if r.status_code >= 500 or r.status_code not in (303, 400, 404):
            wrong.append(f"{method} {path}: {r.status_code}")
    assert not wrong, wrong
    # The folder probes are audited as denied, like any unknown folder id.
    denied = [e for e in audit.entries(db, actor=f"user:{users['anna']}", result="denied")
              if e["target"].startswith("folder:")]
    assert len(denied) >= 5
    admin_denied = audit.entries(db, actor=f"user:{users['it']}", action="admin.user", result="denied")
    assert len(admin_denied) == 2


def test_finding6_header_injection_never_reaches_a_redirect(anna):
    r = anna.get("/login?next=/%0D%0ASet-Cookie:%20x=1")
    assert r.status_code == 302 and "\n" not in r.headers["Location"] and "Set-Cookie" not in r.headers


def test_finding7_throttled_attempts_and_locks_are_audited(app, db, users, clock):
    client = client_of(app)
    for _ in range(8):
        client.post("/login", data={"csrf_token": token_for(client), "username": "bo", "password": "fel-lösenord-1"})
    subject = f"user:{users['bo']}"
    attempts = audit.entries(db, action="auth.password", target=subject)
    assert [(e["result"], e["detail"]) for e in attempts] == [("denied", "")] * 5 + [("denied", "throttled")] * 3
    locked = audit.entries(db, action="auth.locked", target=subject)
    assert len(locked) == 1 and locked[0]["detail"] == "failures:5"
    # The lock runs out: the next attempt lifts it (audited) and is judged on its own.
    clock.advance(15 * 60 + 1)
    r = password_step(client, "bo")
    assert r.status_code == 303
    assert [e["detail"] for e in audit.entries(db, action="auth.unlocked", target=subject)] == ["expired"]


def test_finding7_throttled_totp_codes_are_audited_and_a_password_reset_unlocks(app, db, users, clock,
                                                                                totp_secrets):
    client = client_of(app)
    sign_in(client, clock, "bo", totp_secrets)
    client.post("/logout", data={"csrf_token": token_for(client, "/")})
    password_step(client, "bo")
    for _ in range(7):
        client.post("/totp", data={"csrf_token": csrf_from(client.get("/totp").text), "code": "000000"})
    subject = f"user:{users['bo']}"
    results = [(e["result"], e["detail"]) for e in audit.entries(db, action="auth.totp", target=subject)]
    assert results == [("denied", "")] * 5 + [("denied", "throttled")] * 2
    assert len(audit.entries(db, action="auth.locked", target=subject)) == 1
    accounts.set_password(db, users["bo"], "ny-häst-batteri-häftapparat", actor=f"user:{users['it']}")
    unlocked = audit.entries(db, action="auth.unlocked", target=subject)
    assert [e["detail"] for e in unlocked] == ["password_set"]


def test_finding4_enrolment_step_is_single_use_too(app, db, clock):
    create_user(db, "ny", ["caseworker"], password=PASSWORD)
    client = client_of(app)
    password_step(client, "ny")
    copied = client.get_cookie("__Host-state").value
    page = client.get("/enrol-totp").text
    secret = SECRET_RE.search(page).group(1).replace(" ", "")
    r = client.post("/enrol-totp", data={"csrf_token": csrf_from(page), "code": pyotp.TOTP(secret).at(clock.now())})
    assert r.status_code == 303
    replay = client_of(app)
    replay.set_cookie("__Host-state", copied, domain="localhost", secure=True, path="/")
    assert replay.get("/enrol-totp").status_code == 302


def test_finding9_405_has_allow(anna, world):
    r = anna.delete("/login")
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) >= {"GET", "POST"}
    r = anna.put(f"/recordings/{world['rid']}/move")
    assert r.status_code == 405 and r.headers["Allow"] == "OPTIONS, POST"


def test_finding9_export_charset_once(world):
    r = world["anna"].get(f"/recordings/{world['rid']}/export.txt")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_finding9_dev_password_not_in_redirected_log(tmp_path, capsys):
    """`appliance run` with its output redirected (a log file, a CI job): the one-time password goes to a
    0600 file the output names, not into the output."""
    import stat

    from appliance.config import load_config
    from appliance.platform.context import init_state
    from provisioning.devrun import ensure_dev_admin

    cfg = load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp_path / "var")})
    notice = ensure_dev_admin(cfg)
    path = cfg.paths.secrets / "dev-admin-password.txt"
    password = path.read_text(encoding="utf-8").strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in notice and password not in notice and "Lösenord:" not in notice
    with closing(init_state(cfg).connect()) as conn:
        user = accounts.authenticate_password(conn, "admin", password, max_failures=5, lockout_s=60)
    assert user.has_combined_roles
