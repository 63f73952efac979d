"""Folders and sharing (DESIGN "Access"): a private default folder per content user, more folders, sharing
with one named content user as editor or viewer, unsharing on the next request, move and rename rules,
the list across folders, the migration of existing recordings, and managers' purge reminders."""

from __future__ import annotations

import re
import secrets
import time
from contextlib import closing

import pytest

from appliance.clock import Reading
from appliance.errors import ApplianceError, NotFound
from appliance.platform import audit, retention
from appliance.platform import db as core_db
from appliance.recordings import folders, recordings, reminders
from appliance.users import access
from appliance.users.accounts import create_user, get_user
from tests.conftest import make_tone
from tests.web_fixtures import PASSWORD, client_of, csrf_from, sign_in

ROLES = {"anna": ["caseworker"], "bo": ["caseworker"], "chef": ["manager"], "it": ["admin"],
         "ansv": ["responsible"], "itchef": ["admin", "manager"]}


@pytest.fixture(scope="module")
def tiny_wav(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("f") / "tiny.wav"
    make_tone(path, 0.3)
    return path.read_bytes()


@pytest.fixture
def users(db) -> dict[str, int]:  # overrides tests.test_web.users for the imported `app` fixture
    out = {}
    for name, roles in ROLES.items():
        user, _ = create_user(db, name, roles, password=PASSWORD, display_name=name.capitalize() + " Testsson",
                              allow_combined=True)  # itchef: admin + manager, as only a dev box has
        out[name] = user.id
    return out


@pytest.fixture
def signed(app, clock, totp_secrets):
    clients = {}

    def get(name: str):
        if name not in clients:
            clients[name] = client_of(app)
            sign_in(clients[name], clock, name, totp_secrets)
        return clients[name]
    return get


def token(client) -> str:
    return csrf_from(client.get("/upload").text)


def upload(client, data: bytes, folder_id: int | None = None, title: str = "Hembesök"):
    import io

    form = {"csrf_token": token(client), "title": title, "file": (io.BytesIO(data), "t.wav")}
    if folder_id is not None:
        form["folder_id"] = str(folder_id)
    return client.post("/upload", data=form, content_type="multipart/form-data")


def uploaded(client, data: bytes, folder_id: int | None = None, title: str = "Hembesök") -> str:
    r = upload(client, data, folder_id, title)
    assert r.status_code == 303, r.text
    return r.headers["Location"].rsplit("/", 1)[1]


def share(client, folder_id: int, user_id: int, role: str):
    return client.post(f"/folders/{folder_id}/share", data={"csrf_token": token(client), "user_id": str(user_id),
                                                            "role": role})


def flat(html: str) -> str:
    return re.sub(r"\s+", " ", html)


# --- core -----------------------------------------------------------------------------------------

def test_default_folder_is_lazy_idempotent_and_only_for_content_roles(db, users):
    anna = get_user(db, users["anna"])
    assert db.execute("SELECT count(*) FROM folders").fetchone()[0] == 0  # none until first needed
    fid = folders.ensure_default(db, anna)
    assert fid is not None and folders.ensure_default(db, anna) == fid
    assert [tuple(r) for r in db.execute("SELECT name, is_default FROM folders WHERE owner_id = ?",
                                         (anna.id,))] == [("Mina inspelningar", 1)]
    assert folders.ensure_default(db, get_user(db, users["it"])) is None
    assert folders.ensure_default(db, get_user(db, users["ansv"])) is None
    assert folders.list_for_user(db, get_user(db, users["it"])) == []
    creates = audit.entries(db, action="folder.create")
    assert [(e["target"], e["detail"]) for e in creates] == [(f"folder:{fid}", "default")]


def test_migration_creates_default_folders_and_moves_existing_recordings(tmp_path):
    conn = core_db.connect(tmp_path / "db.sqlite", secrets.token_bytes(32))
    with closing(conn):
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        for version, name, sql in core_db._migrations():
            if version >= 3:
                break
            for statement in core_db._split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, name))
        for uid, name, role in ((1, "anna", "caseworker"), (2, "chef", "manager"), (3, "it", "admin"),
                                (4, "old", "admin")):
            conn.execute("INSERT INTO users (id, username, password_hash, created_at) VALUES (?, ?, 'x', 0)",
                         (uid, name))
            conn.execute("INSERT INTO user_roles VALUES (?, ?)", (uid, role))
        for rid, owner in (("r1", 1), ("r2", 1), ("r3", 4)):  # r3: an owner who is admin-only by now
            conn.execute("INSERT INTO recordings (id, owner_id, title, mime, size, dek, status, created_at) "
                         "VALUES (?, ?, 't', 'audio/wav', 1, x'00', 'ready', 0)", (rid, owner))
        assert core_db.migrate(conn)[0] == "0003_folders.sql"
        defaults = dict(conn.execute("SELECT owner_id, id FROM folders WHERE is_default = 1").fetchall())
        assert set(defaults) == {1, 2, 4}  # content users and every recording owner; not the admin "it"
        assert {r["name"] for r in conn.execute("SELECT name FROM folders")} == {"Mina inspelningar"}
        moved = dict(conn.execute("SELECT id, folder_id FROM recordings").fetchall())
        assert moved == {"r1": defaults[1], "r2": defaults[1], "r3": defaults[4]}
        with pytest.raises(Exception, match="UNIQUE"):  # one default folder per user
            conn.execute("INSERT INTO folders (owner_id, name, is_default, created_at) VALUES (1, 'x', 1, 0)")


def test_share_candidates_are_content_users_other_than_the_owner(db, users):
    anna = get_user(db, users["anna"])
    names = {name for _, name in folders.share_candidates(db, anna)}
    assert names == {"Bo Testsson", "Chef Testsson", "Itchef Testsson"}
    fid = folders.ensure_default(db, anna)
    for bad_user, role in ((users["it"], "editor"), (users["ansv"], "viewer"), (users["anna"], "editor"),
                           (users["bo"], "everyone"), (999, "viewer")):
        with pytest.raises(ApplianceError):
            folders.share(db, anna, fid, bad_user, role)
    assert db.execute("SELECT count(*) FROM folder_shares").fetchone()[0] == 0
    with pytest.raises(NotFound):  # only the owner shares, even an editor may not
        folders.share(db, get_user(db, users["bo"]), fid, users["chef"], "editor")


# --- web ------------------------------------------------------------------------------------------

def test_create_rename_and_list_folders(signed, db, users):
    anna = signed("anna")
    page = anna.get("/folders")
    assert page.status_code == 200 and "<caption>Mina mappar</caption>" in page.text
    assert "Mina inspelningar" in page.text and "Ingen – privat" in page.text
    r = anna.post("/folders", data={"csrf_token": csrf_from(page.text), "name": "  Familjen  Berg "})
    assert r.status_code == 303
    fid = int(r.headers["Location"].rsplit("/", 1)[1])
    assert tuple(db.execute("SELECT name, owner_id FROM folders WHERE id = ?", (fid,)).fetchone()) == \
        ("Familjen Berg", users["anna"])
    assert anna.post("/folders", data={"csrf_token": token(anna), "name": "  "}).status_code == 400
    assert anna.post(f"/folders/{fid}/rename", data={"csrf_token": token(anna), "name": "Ärende 2"}).status_code == 303
    assert "Ärende 2" in anna.get("/folders").text
    assert signed("bo").get(f"/folders/{fid}").status_code == 404
    assert signed("it").get("/folders").status_code == 200  # IT: a page that says there are no folders
    assert "Mappar" not in flat(signed("it").get("/").text).split("Huvudmeny")[1].split("</nav>")[0]
    creates = audit.entries(db, action="folder.create", actor=f"user:{users['anna']}")
    assert f"folder:{fid}" in {e["target"] for e in creates}
    assert all("Ärende" not in str(e) and "Berg" not in str(e) for e in audit.entries(db))  # ids only


def test_share_editor_and_viewer_then_unshare_takes_effect_on_the_next_request(signed, db, users, tiny_wav):
    anna, chef, bo = signed("anna"), signed("chef"), signed("bo")
    rid = uploaded(anna, tiny_wav, title="Samtal med skolan")
    fid = db.execute("SELECT folder_id FROM recordings WHERE id = ?", (rid,)).fetchone()[0]
    assert fid == folders.default_id(db, get_user(db, users["anna"]))
    assert chef.get(f"/recordings/{rid}").status_code == 404
    assert "Samtal med skolan" not in chef.get("/").text

    assert share(anna, fid, users["chef"], "editor").status_code == 303
    assert share(anna, fid, users["bo"], "viewer").status_code == 303
    shared_with = flat(anna.get(f"/folders/{fid}").text)
    assert "Bo Testsson (läsa), Chef Testsson (redigera)" in shared_with
    assert "Bo Testsson (läsa), Chef Testsson (redigera)" in flat(anna.get("/folders").text)

    # The manager sees it in the list (with the folder column), reads it, and edits the title.
    home = flat(chef.get("/").text)
    assert "Samtal med skolan" in home and "Mina inspelningar" in home
    chef_folders = flat(chef.get("/folders").text)
    assert "Mappar som delats med mig" in chef_folders and "Anna Testsson" in chef_folders
    assert chef.get(f"/recordings/{rid}").status_code == 200
    r = chef.post(f"/recordings/{rid}/rename", data={"csrf_token": token(chef), "title": "Skolan, uppföljning"})
    assert r.status_code == 303
    assert db.execute("SELECT title FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == "Skolan, uppföljning"
    r = chef.post(f"/recordings/{rid}/transferred", data={"csrf_token": token(chef), "value": "1"})
    assert r.status_code == 303
    assert chef.post(f"/folders/{fid}/share", data={"csrf_token": token(chef), "user_id": users["bo"],
                                                   "role": "editor"}).status_code == 404  # only the owner

    # The viewer reads and listens, but changes nothing.
    page = bo.get(f"/recordings/{rid}")
    assert page.status_code == 200 and "läsbehörighet" in page.text and "Radera inspelningen" not in page.text
    assert bo.get(f"/recordings/{rid}/audio").status_code == 200
    for path, form in (("rename", {"title": "x"}), ("transferred", {"value": "0"}), ("delete", {})):
        assert bo.post(f"/recordings/{rid}/{path}", data={"csrf_token": token(bo), **form}).status_code == 404
    assert bo.get(f"/recordings/{rid}/delete").status_code == 404
    assert {s["id"] for s in bo.get("/recordings/status").get_json()["recordings"]} == {rid}

    # Unsharing: the very next request of the manager is refused.
    r = anna.post(f"/folders/{fid}/unshare", data={"csrf_token": token(anna), "user_id": users["chef"]})
    assert r.status_code == 303
    assert chef.get(f"/recordings/{rid}").status_code == 404
    assert chef.get(f"/folders/{fid}").status_code == 404
    assert "Skolan" not in chef.get("/").text and chef.get("/recordings/status").get_json()["recordings"] == []
    assert bo.get(f"/recordings/{rid}").status_code == 200  # the other share stays

    shares = audit.entries(db, action=["folder.shared", "folder.unshared"], target=f"folder:{fid}")
    assert [(e["action"], e["detail"], e["data"]) for e in shares] == [
        ("folder.shared", "editor", {"user": f"user:{users['chef']}"}),
        ("folder.shared", "viewer", {"user": f"user:{users['bo']}"}),
        ("folder.unshared", "", {"user": f"user:{users['chef']}"})]
    assert len(audit.entries(db, action="folder.share", target=f"folder:{fid}", result="denied")) == 1  # chef
    denied = audit.entries(db, action="recording.read", target=f"recording:{rid}", result="denied",
                           actor=f"user:{users['chef']}")
    assert len(denied) == 2 and all(e["role"] == "manager" for e in denied)


def test_move_needs_owner_rights_out_and_edit_rights_in(signed, db, users, tiny_wav):
    anna, chef = signed("anna"), signed("chef")
    rid = uploaded(anna, tiny_wav)
    src = folders.default_id(db, get_user(db, users["anna"]))
    r = anna.post("/folders", data={"csrf_token": token(anna), "name": "Utredning"})
    team = int(r.headers["Location"].rsplit("/", 1)[1])
    chef_own = folders.ensure_default(db, get_user(db, users["chef"]))
    share(anna, src, users["chef"], "editor")

    def move(client, folder_id):
        return client.post(f"/recordings/{rid}/move", data={"csrf_token": token(client), "folder_id": folder_id})

    assert move(chef, team).status_code == 404  # editor of the source only
    share(anna, team, users["chef"], "viewer")
    assert move(chef, team).status_code == 404  # viewer of the target
    share(anna, team, users["chef"], "editor")  # changes the role of the existing share
    assert db.execute("SELECT role FROM folder_shares WHERE folder_id = ? AND user_id = ?",
                      (team, users["chef"])).fetchone()[0] == "editor"
    # Editor of both: still no move out of the folder (issue 18, finding 1: only owner rights move it).
    assert move(chef, team).status_code == 404
    assert move(chef, chef_own).status_code == 404
    assert move(anna, team).status_code == 303
    assert db.execute("SELECT folder_id FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == team
    assert move(anna, chef_own).status_code == 404  # the owner may not push into someone else's folder
    assert move(anna, "nonsense").status_code == 404
    assert move(anna, src).status_code == 303
    moved = audit.entries(db, action="recording.moved", target=f"recording:{rid}")
    owner = f"user:{users['anna']}"
    assert [e["data"] for e in moved] == [{"from": f"folder:{src}", "to": f"folder:{team}", "owner": owner},
                                          {"from": f"folder:{team}", "to": f"folder:{src}", "owner": owner}]
    assert {e["actor"] for e in moved} == {owner}
    page = anna.get(f"/recordings/{rid}").text
    assert 'id="move-folder"' in page and "Utredning" in page


def test_upload_goes_to_a_folder_the_user_may_edit(signed, db, users, tiny_wav):
    anna, bo = signed("anna"), signed("bo")
    src = folders.ensure_default(db, get_user(db, users["anna"]))
    form = bo.get("/upload").text
    assert '<label for="folder_id">Mapp</label>' in form and "Anna Testsson" not in form
    assert upload(bo, tiny_wav, src).status_code == 404  # not shared
    share(anna, src, users["bo"], "viewer")
    assert upload(bo, tiny_wav, src).status_code == 404  # viewers do not add material
    share(anna, src, users["bo"], "editor")
    assert "(Anna Testsson)" in bo.get("/upload").text
    rid = uploaded(bo, tiny_wav, src)
    assert tuple(db.execute("SELECT folder_id, owner_id FROM recordings WHERE id = ?", (rid,)).fetchone()) == \
        (src, users["bo"])
    assert anna.get(f"/recordings/{rid}").status_code == 200  # lies in Anna's folder: hers to read
    assert upload(signed("it"), tiny_wav).status_code == 403  # IT uploads nothing
    assert db.execute("SELECT count(*) FROM recordings").fetchone()[0] == 1


def test_list_filters_by_folder_and_hides_others(signed, db, users, tiny_wav):
    anna = signed("anna")
    r1 = uploaded(anna, tiny_wav, title="Första")
    r = anna.post("/folders", data={"csrf_token": token(anna), "name": "Andra mappen"})
    other = int(r.headers["Location"].rsplit("/", 1)[1])
    r2 = uploaded(anna, tiny_wav, other, title="Andra")
    everything = anna.get("/").text
    assert "Första" in everything and "Andra" in everything and 'id="folder-filter"' in everything
    only = anna.get(f"/?folder={other}").text
    assert "Andra" in only and "Första" not in only and f'value="{other}" selected' in only
    assert signed("bo").get(f"/?folder={other}").status_code == 404
    folder_page = anna.get(f"/folders/{other}").text
    assert r2 in folder_page and r1 not in folder_page
    assert 'aria-current="page"' in folder_page.split("Mappar</a>")[0].rsplit("<li>", 1)[1]


def test_admin_adds_nothing_to_a_managers_rights(signed, db, users, tiny_wav):
    rid = uploaded(signed("anna"), tiny_wav)
    itchef = signed("itchef")
    assert itchef.get(f"/recordings/{rid}").status_code == 404
    fid = folders.default_id(db, get_user(db, users["anna"]))
    share(signed("anna"), fid, users["itchef"], "viewer")
    assert itchef.get(f"/recordings/{rid}").status_code == 200
    assert itchef.post(f"/recordings/{rid}/rename", data={"csrf_token": token(itchef), "title": "x"}).status_code == 404
    rec = audit.entries(db, action="recording.read", target=f"recording:{rid}", actor=f"user:{users['itchef']}")
    assert [(e["result"], e["role"]) for e in rec] == [("denied", "manager"), ("ok", "manager")]


def test_managers_get_reminders_for_folders_shared_with_them_as_editor(ctx, db, users, tiny_wav):
    cfg = ctx.cfg
    anna, chef, bo = (get_user(db, users[n]) for n in ("anna", "chef", "bo"))
    rid = recordings.create_from_upload(ctx, db, anna, title="t", filename="t.wav", data=tiny_wav)
    purge_at = retention.next_purge(cfg.retention, time.time() + 7 * 86400)
    db.execute("UPDATE recordings SET created_at = ?, created_at_rtc = NULL WHERE id = ?", (purge_at - 49 * 3600, rid))
    inside = Reading(reminders.window_start(cfg, purge_at) + 60, None)
    assert reminders.due(cfg, db, anna, inside).recording_ids == (rid,)
    assert reminders.due(cfg, db, chef, inside) is None
    fid = folders.default_id(db, anna)
    folders.share(db, anna, fid, chef.id, "editor")
    folders.share(db, anna, fid, bo.id, "viewer")
    due = reminders.due(cfg, db, chef, inside)
    assert due is not None and due.recording_ids == (rid,) and due.not_transferred == 1
    assert reminders.due(cfg, db, bo, inside) is None  # viewers are not responsible for the material
    folders.unshare(db, anna, fid, chef.id)
    assert reminders.due(cfg, db, chef, inside) is None


def test_require_actions_are_known_and_ranked():
    assert set(access.RECORDING_ACTIONS.values()) <= {"viewer", "editor", "owner"}
    assert [a for a, p in access.RECORDING_ACTIONS.items() if p == "owner"] == ["recording.move"]
    assert access.FOLDER_ACTIONS["folder.share"] == "owner"
    with pytest.raises(KeyError):
        access.RECORDING_ACTIONS["recording.everything"]
