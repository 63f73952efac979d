"""Editing transcript lines: edit, history, revert (a new edit), rights, survival of re-transcription,
and an audit trail with ids only."""

from __future__ import annotations

import json
import re

import pytest

from appliance.errors import ApplianceError, NotFound
from appliance.platform import audit
from appliance.ports import Segment
from appliance.recordings import folders, recordings
from appliance.transcripts import edits
from appliance.transcripts.store import replace_segments
from appliance.users.accounts import get_user
from tests.conftest import make_tone
from tests.web_fixtures import client_of, csrf_from, sign_in, uploaded_id

LINES = [(0.0, 2.5, "Vi pratar om utredningen."), (2.5, 5.0, "Mamma berättar om skolan."),
         (5.0, 8.0, "Pappa kommer på torsdag.")]


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    make_tone(path, 0.5)
    return path


@pytest.fixture
def rid(anna, tone, db):
    rec_id = uploaded_id(anna, tone)
    replace_segments(db, rec_id, [Segment(s, e, t) for s, e, t in LINES])
    db.execute("UPDATE recordings SET status = 'ready', progress = 1 WHERE id = ?", (rec_id,))
    return rec_id


def _edit(client, rid: str, idx: int, text: str, **extra):
    page = client.get(f"/recordings/{rid}").text
    return client.post(f"/recordings/{rid}/segments/{idx}/edit",
                       data={"csrf_token": csrf_from(page), "text": text, **extra})


def _texts(db, rid: str) -> list[str]:
    return [s.text for s in recordings.transcript_segments(db, rid)]


def test_edit_shows_on_the_page_and_in_transcript_segments(anna, rid, db):
    r = _edit(anna, rid, 1, "Mamma berättar om <skolan> & fritids.")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/recordings/{rid}#seg-1")
    segs = recordings.transcript_segments(db, rid)
    assert [s.edited for s in segs] == [False, True, False]
    assert segs[1].text == "Mamma berättar om <skolan> & fritids."
    assert segs[1].machine_text == "Mamma berättar om skolan."
    html = anna.get(f"/recordings/{rid}").text
    assert "Mamma berättar om &lt;skolan&gt; &amp; fritids." in html
    assert "redigerad" in html and f"/recordings/{rid}/segments/1/history" in html
    assert 'id="seg-1"' in html and "/static/edit.js" in html


def test_history_and_revert_is_a_new_edit(anna, rid, db, users):
    _edit(anna, rid, 0, "Version ett.")
    _edit(anna, rid, 0, "Version två.")
    user = get_user(db, users["anna"])
    seg, versions = edits.history(db, user, rid, 0)
    assert [v.text for v in versions] == ["Vi pratar om utredningen.", "Version ett.", "Version två."]
    assert versions[1].user_name and versions[1].created_at
    assert seg.text == "Version två."
    page = anna.get(f"/recordings/{rid}/segments/0/history")
    assert page.status_code == 200 and "Version ett." in page.text and "Maskinutskrift" in page.text
    r = anna.post(f"/recordings/{rid}/segments/0/revert",
                  data={"csrf_token": csrf_from(page.text), "to": str(versions[1].edit_id)})
    assert r.status_code == 303
    seg, after = edits.history(db, user, rid, 0)
    assert seg.text == "Version ett." and len(after) == 4 and after[-1].reverted_to == versions[1].edit_id
    edits.revert(db, user, rid, 0, 0)  # back to the machine text, again as a new version
    assert _texts(db, rid)[0] == "Vi pratar om utredningen."
    assert len(edits.history(db, user, rid, 0)[1]) == 5
    with pytest.raises(ApplianceError):
        edits.revert(db, user, rid, 1, versions[1].edit_id)  # another line's version


def test_unchanged_text_is_no_new_version_and_conflicts_are_refused(anna, rid, db, users):
    user = get_user(db, users["anna"])
    assert edits.edit_segment(db, user, rid, 2, "  Pappa   kommer på torsdag. ") is None
    first = edits.edit_segment(db, user, rid, 2, "Pappa kommer på fredag.", base=0)
    with pytest.raises(edits.EditConflict):  # someone saved since this user opened the page
        edits.edit_segment(db, user, rid, 2, "Pappa kommer på lördag.", base=0)
    assert _texts(db, rid)[2] == "Pappa kommer på fredag."
    assert edits.edit_segment(db, user, rid, 2, "Pappa kommer på lördag.", base=first)
    with pytest.raises(NotFound):
        edits.edit_segment(db, user, rid, 99, "x")


def test_inline_edit_by_fetch_gets_json(anna, rid):
    page = anna.get(f"/recordings/{rid}").text
    r = anna.post(f"/recordings/{rid}/segments/0/edit", headers={"Accept": "application/json"},
                  data={"csrf_token": csrf_from(page), "text": "Ny text.", "base": "0"})
    assert r.status_code == 200 and r.json["text"] == "Ny text." and r.json["edited"]
    r = anna.post(f"/recordings/{rid}/segments/0/edit", headers={"Accept": "application/json"},
                  data={"csrf_token": csrf_from(page), "text": "Krock.", "base": "0"})
    assert r.status_code == 409 and "ändrats av någon annan" in r.json["error"]


def test_viewer_reads_history_but_cannot_edit(app, anna, rid, clock, totp_secrets, db, users):
    owner = get_user(db, users["anna"])
    folders.share(db, owner, folders.ensure_default(db, owner), users["bo"], "viewer")
    _edit(anna, rid, 0, "Ägarens ändring.")
    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    page = bo.get(f"/recordings/{rid}")
    assert page.status_code == 200 and "Ägarens ändring." in page.text
    assert "/segments/0/edit" not in page.text  # no edit controls for a viewer
    token = csrf_from(page.text)
    assert bo.post(f"/recordings/{rid}/segments/0/edit", data={"csrf_token": token, "text": "x"}).status_code == 404
    assert bo.post(f"/recordings/{rid}/segments/0/revert", data={"csrf_token": token, "to": "0"}).status_code == 404
    assert bo.get(f"/recordings/{rid}/segments/0/history").status_code == 200
    assert _texts(db, rid)[0] == "Ägarens ändring."
    denied = audit.entries(db, action="recording.edit", result="denied", actor=f"user:{users['bo']}")
    assert denied


def test_stranger_gets_404_everywhere(app, rid, clock, totp_secrets):
    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    assert bo.get(f"/recordings/{rid}/segments/0/history").status_code == 404
    token = csrf_from(bo.get("/upload").text)
    assert bo.post(f"/recordings/{rid}/segments/0/edit", data={"csrf_token": token, "text": "x"}).status_code == 404


def test_edits_survive_re_transcription(anna, rid, db):
    _edit(anna, rid, 1, "Mamma berättar om förskolan.")
    # the asr worker runs the recording again: rows are replaced wholesale, other lines change
    replace_segments(db, rid, [Segment(0.0, 2.4, "Vi pratar om utredningen nu."),
                              Segment(2.4, 5.1, "Mama berätar om skolan."),
                              Segment(5.1, 8.0, "Pappa kommer på torsdag.")])
    texts = _texts(db, rid)
    assert texts == ["Vi pratar om utredningen nu.", "Mamma berättar om förskolan.", "Pappa kommer på torsdag."]
    fts = db.execute("SELECT text FROM search_fts WHERE recording_id = ? AND idx = 1", (rid,)).fetchall()
    assert [r[0] for r in fts] == ["Mamma berättar om förskolan."]  # the index follows the edit, not the machine


def test_audit_has_ids_never_the_text(anna, rid, db, ctx):
    secret = "Hemligt namn Kalle Kanariefågel"
    _edit(anna, rid, 0, secret)
    page = anna.get(f"/recordings/{rid}/segments/0/history").text
    anna.post(f"/recordings/{rid}/segments/0/revert", data={"csrf_token": csrf_from(page), "to": "0"})
    recs = audit.entries(db, action={"segment.edit", "segment.revert"})
    assert [r["action"] for r in recs] == ["segment.edit", "segment.revert"]
    assert recs[0]["target"] == f"recording:{rid}" and recs[0]["data"]["segment"] == 0
    assert all(set(r["data"]) <= {"segment", "edit", "reverted_to"} for r in recs)
    raw = ctx.cfg.paths.state_dir.rglob("*")
    for path in raw:
        if path.is_file() and "audit" in path.name:
            assert "Kanarie" not in path.read_text(errors="ignore")
    assert not re.search("Kanarie", json.dumps(audit.entries(db)))


def test_bad_text_is_refused(anna, rid, db):
    r = _edit(anna, rid, 0, "x" * 5000)
    assert r.status_code == 303
    assert "för lång" in anna.get(f"/recordings/{rid}").text
    assert _texts(db, rid)[0] == "Vi pratar om utredningen."
