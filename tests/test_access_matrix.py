"""Access matrix: every route of the app that takes a recording or folder id × every kind of actor × every
sharing state → allowed (200/206/303) or 404, and every deny is audited as "denied" for that id.

A new route with `<rec_id>` or `<folder_id>` fails `test_every_id_route_is_in_the_matrix` until it is added
to ROUTES below (with the permission it needs), so nothing escapes `appliance.users.access`.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from appliance import clock as core_clock
from appliance.config import load_config
from appliance.platform import audit
from appliance.platform.context import init_state
from appliance.recordings import folders, live, recordings
from appliance.users.accounts import create_user, get_user
from tests.conftest import free_port, make_tone
from tests.web_fixtures import PASSWORD, FakeClock, client_of, csrf_from, sign_in
from web import create_app

ACTORS = {  # name → roles
    "owner": ["caseworker"],          # owns the folders
    "manager": ["manager"],           # the nearest manager: editor in the shared states
    "viewer": ["caseworker"],         # a colleague given read access
    "other": ["caseworker"],          # an unrelated caseworker
    "admin": ["admin"],               # IT: never content
    "responsible": ["responsible"],   # log review: never content
    "admin_cw": ["admin", "caseworker"],  # admin + caseworker (the dev box's account), never shared with
}
BYSTANDER = "bystander"  # a content user the owner shares with and unshares during the run

# state → the share role per actor on both of the owner's folders (the owner is always owner)
STATES = {
    "private": {},
    "shared_editor": {"manager": "editor", "viewer": "viewer"},
    "shared_viewer": {"manager": "viewer", "viewer": "viewer"},
    "unshared": {},  # shared as in shared_editor, then unshared through the owner's page
    "past_deadline": {"manager": "editor", "viewer": "viewer"},  # recording past its retention deadline
}
RANK = {None: 0, "viewer": 1, "editor": 2, "owner": 3}


@dataclass(frozen=True)
class Case:
    method: str
    path: str          # with {rid}, {fid}, {target}
    needs: str         # viewer, editor or owner
    kind: str          # "recording" or "folder": which id the deny is audited under
    allow: int
    form: dict | None = None
    headers: dict | None = None
    sacrificial: bool = False  # runs on a fresh recording (the action destroys it)
    live: bool = False  # the fresh recording is a live one, being recorded (appliance/live.py)
    body: bytes | None = None  # sent raw (CSRF token in the header), as the browser dictaphone sends audio


ROUTES: dict[tuple[str, str], list[Case]] = {
    ("rec.recording", "GET"): [Case("GET", "/recordings/{rid}", "viewer", "recording", 200)],
    ("rec.audio", "GET"): [Case("GET", "/recordings/{rid}/audio", "viewer", "recording", 200),
                           Case("GET", "/recordings/{rid}/audio", "viewer", "recording", 206,
                                headers={"Range": "bytes=0-99"})],
    ("rec.delete", "GET"): [Case("GET", "/recordings/{rid}/delete", "editor", "recording", 200)],
    ("rec.delete", "POST"): [Case("POST", "/recordings/{rid}/delete", "editor", "recording", 303, {},
                                  sacrificial=True)],
    ("rec.transferred", "POST"): [Case("POST", "/recordings/{rid}/transferred", "editor", "recording", 303,
                                       {"value": "1"})],
    ("rec.rename", "POST"): [Case("POST", "/recordings/{rid}/rename", "editor", "recording", 303,
                                  {"title": "Ny titel"})],
    # Out of its folder only with owner rights: an editor could otherwise carry it off and share it onward.
    ("rec.move", "POST"): [Case("POST", "/recordings/{rid}/move", "owner", "recording", 303,
                                {"folder_id": "{target}"})],
    ("rec.edit_segment", "POST"): [Case("POST", "/recordings/{rid}/segments/0/edit", "editor", "recording", 303,
                                        {"text": "Redigerad rad"})],
    ("rec.edit_segment_form", "GET"): [Case("GET", "/recordings/{rid}/segments/0/edit", "viewer", "recording",
                                            200)],
    ("rec.lines", "GET"): [Case("GET", "/recordings/{rid}/lines?idx=0&since=0", "viewer", "recording", 200)],
    ("rec.segment_history", "GET"): [Case("GET", "/recordings/{rid}/segments/0/history", "viewer", "recording",
                                          200)],
    ("rec.revert_segment", "POST"): [Case("POST", "/recordings/{rid}/segments/0/revert", "editor", "recording",
                                          303, {"to": "0"})],
    ("speakers.assign", "POST"): [Case("POST", "/recordings/{rid}/segments/0/speaker", "editor", "recording", 303,
                                       {"speaker": "new"})],
    ("speakers.rename", "POST"): [Case("POST", "/recordings/{rid}/speakers/1/name", "editor", "recording", 303,
                                       {"name": "Handläggare"})],
    ("suggestions.index", "GET"): [Case("GET", "/recordings/{rid}/suggestions", "viewer", "recording", 200)],
    ("suggestions.accept", "POST"): [Case("POST", "/recordings/{rid}/suggestions/accept", "editor", "recording",
                                          303, {"sid": "0-0-1", "scope": "all"})],
    # The assistant (chat, topics): the world's model server is a dead port, so an allowed request ends in the
    # clear "not answering" message and a 303 back to the page, never a hang or a 500.
    ("chat.ask", "POST"): [Case("POST", "/recordings/{rid}/chat", "viewer", "recording", 303,
                                {"question": "Vad handlar samtalet om?"})],
    ("chat.suggest", "POST"): [Case("POST", "/recordings/{rid}/chat/suggest", "viewer", "recording", 303, {})],
    ("chat.warm", "POST"): [Case("POST", "/recordings/{rid}/chat/warm", "viewer", "recording", 200, {})],
    ("chat.clear", "POST"): [Case("POST", "/recordings/{rid}/chat/clear", "editor", "recording", 303, {})],
    ("chat.make_topics", "POST"): [Case("POST", "/recordings/{rid}/topics", "viewer", "recording", 303, {})],
    # Summaries: the world's recording is not transcribed, so an allowed request is refused with a message and a
    # 303 back to the page; summary 1 (inserted below, finished) is what review and retry act on.
    ("summaries.create", "POST"): [Case("POST", "/recordings/{rid}/summaries", "viewer", "recording", 303,
                                        {"template": "rad"})],
    ("summaries.status", "GET"): [Case("GET", "/recordings/{rid}/summaries/status", "viewer", "recording", 200)],
    ("summaries.review", "POST"): [Case("POST", "/recordings/{rid}/summaries/review", "editor", "recording", 303,
                                        {"summary_id": "1", "state": "granskad"})],
    ("summaries.retry", "POST"): [Case("POST", "/recordings/{rid}/summaries/retry", "viewer", "recording", 303,
                                       {"summary_id": "1"})],
    # Summary 1 has been marked reviewed by the owner's review case above (ROUTES run in order), so it downloads.
    ("summaries.download", "GET"): [Case("GET", "/recordings/{rid}/summaries/1/download.docx", "viewer",
                                         "recording", 200)],
    ("summaries.edit", "POST"): [Case("POST", "/recordings/{rid}/summaries/edit", "editor", "recording", 303,
                                      {"summary_id": "1", "section": "0", "statement": "0", "text": "Ny text"})],
    ("suggestions.dismiss", "POST"): [Case("POST", "/recordings/{rid}/suggestions/dismiss", "editor",
                                           "recording", 303, {"sid": "0-0-1"})],
    ("pii.index", "GET"): [Case("GET", "/recordings/{rid}/personal-data", "viewer", "recording", 200)],
    ("pii.decide", "POST"): [Case("POST", "/recordings/{rid}/personal-data/decide", "editor", "recording", 303,
                                  {"entity": "1", "status": "confirmed"})],
    ("pii.add", "POST"): [Case("POST", "/recordings/{rid}/personal-data/add", "editor", "recording", 303,
                               {"value": "Anna", "kind": "person"})],
    ("pii.export", "GET"): [Case("GET", "/recordings/{rid}/export.txt", "viewer", "recording", 200),
                            Case("GET", "/recordings/{rid}/export.txt?personal=1", "viewer", "recording", 200),
                            Case("GET", "/recordings/{rid}/export.docx?personal=1", "viewer", "recording", 200)],
    ("desk.status", "GET"): [Case("GET", "/recordings/{rid}/desk", "viewer", "recording", 200)],
    ("desk.pause", "POST"): [Case("POST", "/recordings/{rid}/desk/pause", "editor", "recording", 303, {})],
    ("desk.resume", "POST"): [Case("POST", "/recordings/{rid}/desk/resume", "editor", "recording", 303, {})],
    ("desk.stop", "POST"): [Case("POST", "/recordings/{rid}/desk/stop", "editor", "recording", 303, {})],
    # Live recording (web/live.py): on a fresh recording being recorded; a chunk is 0.1 s of raw PCM.
    ("live.chunk", "POST"): [Case("POST", "/recordings/{rid}/chunks/0", "editor", "recording", 200,
                                  sacrificial=True, live=True, body=bytes(3200))],
    ("live.pause", "POST"): [Case("POST", "/recordings/{rid}/pause", "editor", "recording", 303, {},
                                  sacrificial=True, live=True)],
    ("live.resume", "POST"): [Case("POST", "/recordings/{rid}/resume", "editor", "recording", 303, {},
                                   sacrificial=True, live=True)],
    ("live.stop", "POST"): [Case("POST", "/recordings/{rid}/stop", "editor", "recording", 303, {},
                                 sacrificial=True, live=True)],
    ("live.feed", "GET"): [Case("GET", "/recordings/{rid}/live", "viewer", "recording", 200),
                           Case("GET", "/recordings/{rid}/live", "viewer", "recording", 200, sacrificial=True,
                                live=True)],
    ("folders.folder", "GET"): [Case("GET", "/folders/{fid}", "viewer", "folder", 200),
                                Case("GET", "/?folder={fid}", "viewer", "folder", 200)],
    ("folders.rename", "POST"): [Case("POST", "/folders/{fid}/rename", "owner", "folder", 303,
                                      {"name": "Mina inspelningar"})],
    ("folders.share", "POST"): [Case("POST", "/folders/{fid}/share", "owner", "folder", 303,
                                     {"user_id": "{bystander}", "role": "viewer"})],
    ("folders.unshare", "POST"): [Case("POST", "/folders/{fid}/unshare", "owner", "folder", 303,
                                       {"user_id": "{bystander}"})],
}
# Not an id route, but it takes a folder id in its form: the upload target is checked the same way.
UPLOAD = Case("POST", "/upload", "editor", "folder", 303, {"folder_id": "{fid}", "title": "t"})


@dataclass
class World:
    ctx: object
    app: object
    ids: dict[str, int]
    clients: dict
    tokens: dict[str, str]
    fid: int      # the owner's default folder, where the recording lies
    target: int   # the owner's second folder (move target)
    rid: str
    wav: bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    wav_path = tmp / "tiny.wav"
    make_tone(wav_path, 0.3)
    with pytest.MonkeyPatch.context() as mp:
        fake = FakeClock()
        mp.setattr(core_clock, "now", fake.now)
        ctx = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(tmp / "state"),
                                              # nothing listens there: assistant routes fail fast and clearly
                                              "APPLIANCE_LLM__BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}))
        conn = ctx.connect()
        ids = {}
        for name, roles in {**ACTORS, BYSTANDER: ["caseworker"]}.items():
            ids[name] = create_user(conn, name, roles, password=PASSWORD, allow_combined=True)[0].id
        owner = get_user(conn, ids["owner"])
        fid = folders.ensure_default(conn, owner)
        target = folders.create_folder(conn, owner, "Andra")
        rid = recordings.create_from_upload(ctx, conn, owner, title="Hembesök", filename="t.wav",
                                            data=wav_path.read_bytes(), folder_id=fid)
        conn.execute('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, 0, 0, 0.3, ?)',
                     (rid, "En rad att redigera"))  # the line the edit/history/revert routes act on
        conn.execute("INSERT INTO summaries (id, recording_id, template_key, template_name, status, content, "
                     "created_at) VALUES (1, ?, 'rad', 'Råd', 'done', ?, 0)",  # what review/retry act on
                     (rid, '{"template": {"name": "Råd"}, "sections": []}'))
        conn.close()
        app = create_app(ctx, {"TESTING": True})
        clients, tokens, secrets = {}, {}, {}
        for name in ACTORS:
            clients[name] = client_of(app)
            sign_in(clients[name], fake, name, secrets)
            tokens[name] = csrf_from(clients[name].get("/upload").text)
        yield World(ctx, app, ids, clients, tokens, fid, target, rid, wav_path.read_bytes())


def test_every_id_route_is_in_the_matrix(world):
    missing = []
    for rule in world.app.url_map.iter_rules():
        if not ({"rec_id", "folder_id"} & set(rule.arguments)):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if (rule.endpoint, method) not in ROUTES:
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert not missing, f"routes with a recording/folder id missing from the access matrix: {missing}"
    known = {(r.endpoint, m) for r in world.app.url_map.iter_rules() for m in r.methods}
    assert set(ROUTES) <= known, set(ROUTES) - known  # no stale entries


def _set_state(world: World, state: str) -> None:
    conn = world.ctx.connect()
    try:
        owner = get_user(conn, world.ids["owner"])
        conn.execute("DELETE FROM folder_shares")
        conn.execute("UPDATE recordings SET folder_id = ?, created_at = ?, created_at_rtc = NULL",
                     (world.fid, time.time()))
        shares = STATES["shared_editor"] if state == "unshared" else STATES[state]
        for fid in (world.fid, world.target):
            for actor, role in shares.items():
                folders.share(conn, owner, fid, world.ids[actor], role)
    finally:
        conn.close()
    if state == "unshared":  # through the owner's own page, as a person would
        c, tok = world.clients["owner"], world.tokens["owner"]
        for fid in (world.fid, world.target):
            for actor in STATES["shared_editor"]:
                r = c.post(f"/folders/{fid}/unshare", data={"csrf_token": tok, "user_id": world.ids[actor]})
                assert r.status_code == 303
    if state == "past_deadline":
        _age_all(world)


def _age_all(world: World) -> None:
    conn = world.ctx.connect()
    try:
        conn.execute("UPDATE recordings SET created_at = created_at - 30 * 86400")
    finally:
        conn.close()


def _permission(state: str, actor: str) -> str | None:
    if actor == "owner":
        return "owner"
    return STATES[state].get(actor)


def _expected(case: Case, state: str, actor: str) -> int:
    perm = _permission(state, actor)
    if case.kind == "recording" and state == "past_deadline":
        perm = None  # hidden from everyone before the purge runs
    return case.allow if RANK[perm] >= RANK[case.needs] else 404


def _fresh_recording(world: World, state: str, live_recording: bool = False) -> str:
    conn = world.ctx.connect()
    try:
        owner = get_user(conn, world.ids["owner"])
        if live_recording:
            rid = live.start(world.ctx, conn, owner, title="t", folder_id=world.fid, source="browser",
                             consent_confirmed=True)
        else:
            rid = recordings.create_from_upload(world.ctx, conn, owner, title="t", filename="t.wav",
                                                data=world.wav, folder_id=world.fid)
        if state == "past_deadline":
            conn.execute("UPDATE recordings SET created_at = created_at - 30 * 86400 WHERE id = ?", (rid,))
    finally:
        conn.close()
    return rid


def _fill(value: str, world: World, rid: str) -> str:
    return value.format(rid=rid, fid=world.fid, target=world.target, bystander=world.ids[BYSTANDER])


def _request(world: World, actor: str, case: Case, rid: str):
    client = world.clients[actor]
    path = _fill(case.path, world, rid)
    if case.method == "GET":
        return client.get(path, headers=case.headers or {})
    if case.body is not None:
        return client.post(path, data=case.body, headers={"X-CSRFToken": world.tokens[actor],
                                                           "Content-Type": "application/octet-stream"})
    form = {k: _fill(v, world, rid) for k, v in (case.form or {}).items()}
    form["csrf_token"] = world.tokens[actor]
    if case is UPLOAD:
        form["file"] = (io.BytesIO(world.wav), "t.wav")
        return client.post(path, data=form, content_type="multipart/form-data")
    return client.post(path, data=form)


def _reset_after(world: World, case: Case, state: str) -> None:
    """Undo what an allowed action changed that the next request relies on."""
    if case.path.endswith("/move"):
        conn = world.ctx.connect()
        try:
            conn.execute("UPDATE recordings SET folder_id = ? WHERE id = ?", (world.fid, world.rid))
        finally:
            conn.close()


@pytest.mark.parametrize("state", list(STATES))
def test_access_matrix(world, state):
    _set_state(world, state)
    before = len(audit.entries(world.ctx))
    wrong, denied = [], Counter()
    cases = [c for cs in ROUTES.values() for c in cs] + [UPLOAD]
    for case in cases:
        for actor, roles in ACTORS.items():
            rid = _fresh_recording(world, state, case.live) if case.sacrificial else world.rid
            expected = _expected(case, state, actor)
            if case is UPLOAD and not set(roles) & {"caseworker", "manager"}:
                expected = 403  # no content role: refused before any folder is looked at (nothing to leak)
            r = _request(world, actor, case, rid)
            if r.status_code != expected:
                wrong.append(f"{actor} {case.method} {_fill(case.path, world, rid)}: {r.status_code} != {expected}")
            if expected == 404:
                target = f"recording:{rid}" if case.kind == "recording" else f"folder:{world.fid}"
                denied[(f"user:{world.ids[actor]}", target)] += 1
            elif r.status_code < 400:
                _reset_after(world, case, state)
    assert not wrong, "\n".join(wrong)
    logged = Counter((e["actor"], e["target"]) for e in audit.entries(world.ctx)[before:]
                     if e["result"] == "denied")
    missing = {k: n for k, n in denied.items() if logged[k] < n}
    assert not missing, f"denies without a 'denied' audit record for that id: {missing}"
