"""Speakers through the web: labels on every line, renaming a speaker once per recording, fixing one line's
speaker (an existing or a new one), history, audit with ids only, 404 for users without edit rights, bad input
changes nothing, corrections survive re-transcription and everything goes with the recording."""

from __future__ import annotations

import json

import pytest

from appliance.platform import audit
from appliance.ports import Segment, Transcript, TranscriptInfo
from appliance.recordings import folders, recordings
from appliance.transcripts import speakers
from appliance.transcripts.store import replace_segments
from appliance.users.accounts import get_user
from tests.conftest import make_tone
from tests.web_fixtures import client_of, csrf_from, sign_in, uploaded_id

LINES = [(0.0, 2.5, "Välkommen hit, vi ska prata om skolan.", 1),
         (2.5, 5.0, "Han har svårt att sova.", 2),
         (5.0, 8.0, "Då bokar vi ett nytt möte.", 1)]
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    make_tone(path, 0.5)
    return path


def _store(db, rid: str, lines) -> None:
    """What the asr worker writes: segment rows, then the machine's speakers (transcripts.speakers.store_machine)."""
    replace_segments(db, rid, [Segment(s, e, t) for s, e, t, _ in lines])
    transcript = Transcript(TranscriptInfo("sv", 8.0), [Segment(s, e, t, speaker=n) for s, e, t, n in lines],
                            diarization="done", speakers=2)
    speakers.store_machine(db, rid, transcript)
    db.execute("UPDATE recordings SET status = 'ready', progress = 1 WHERE id = ?", (rid,))


@pytest.fixture
def rid(anna, tone, db):
    rec_id = uploaded_id(anna, tone)
    _store(db, rec_id, LINES)
    return rec_id


def _token(client, rid: str) -> str:
    return csrf_from(client.get(f"/recordings/{rid}").text)


def _rename(client, rid: str, speaker: int | str, name: str, **kw):
    return client.post(f"/recordings/{rid}/speakers/{speaker}/name",
                       data={"csrf_token": _token(client, rid), "name": name}, **kw)


def _assign(client, rid: str, idx: int, speaker: str, **kw):
    return client.post(f"/recordings/{rid}/segments/{idx}/speaker",
                       data={"csrf_token": _token(client, rid), "speaker": speaker}, **kw)


def _labels(db, rid: str) -> list[tuple[int | None, str]]:
    return [(s.speaker, s.speaker_name) for s in recordings.transcript_segments(db, rid)]


def test_every_line_shows_its_speaker(anna, rid):
    html = anna.get(f"/recordings/{rid}").text
    assert html.count('class="seg-speaker speaker-1" data-speaker="1">Talare 1<') == 3  # 2 lines + the list
    assert html.count('class="seg-speaker speaker-2" data-speaker="2">Talare 2<') == 2
    assert 'for="speaker-name-1"' in html  # labelled controls: names in the compact panel,
    edit = anna.get(f"/recordings/{rid}/segments/0/edit").text  # a line's speaker on its edit page (and in JS's editor)
    assert 'for="seg-speaker-0"' in edit and 'for="line-editor-speaker"' in html
    assert "/static/speakers.js" in html


def test_rename_relabels_every_line_of_that_speaker(anna, rid, db, users):
    r = _rename(anna, rid, 1, "  Handläggare ")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/recordings/{rid}#speakers")
    assert _labels(db, rid) == [(1, "Handläggare"), (2, "Talare 2"), (1, "Handläggare")]
    r = _rename(anna, rid, 2, "Mamma", headers=JSON)
    assert r.status_code == 200 and r.json == {"speaker": 2, "name": "Mamma"}
    html = anna.get(f"/recordings/{rid}").text
    assert html.count('data-speaker="1">Handläggare<') == 3  # its two lines and the speaker list
    assert html.count('data-speaker="2">Mamma<') == 2
    edit = anna.get(f"/recordings/{rid}/segments/0/edit").text  # each line's speaker choice names them too
    assert '<option value="2">Mamma<' in edit and '<option value="1" selected>Handläggare<' in edit
    # An empty name goes back to the default.
    _rename(anna, rid, 2, "")
    assert _labels(db, rid)[1] == (2, "Talare 2")
    entries = audit.entries(db, action="speaker.rename", actor=f"user:{users['anna']}")
    assert len(entries) == 3
    history = speakers.history(db, rid)
    assert [(h.kind, h.speaker, h.before, h.after) for h in history] == [
        ("name", 1, "Talare 1", "Handläggare"), ("name", 2, "Talare 2", "Mamma"), ("name", 2, "Mamma", "Talare 2")]
    assert history[0].user_name == "anna"


def test_fix_one_line_to_another_or_a_new_speaker(anna, rid, db, users):
    _rename(anna, rid, 2, "Mamma")
    r = _assign(anna, rid, 2, "2", headers=JSON)
    assert r.status_code == 200 and r.json == {"idx": 2, "speaker": 2, "name": "Mamma"}
    assert _labels(db, rid) == [(1, "Talare 1"), (2, "Mamma"), (2, "Mamma")]
    r = _assign(anna, rid, 0, "new")
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/recordings/{rid}#seg-0")
    assert _labels(db, rid)[0] == (3, "Talare 3")
    assert [(s.number, s.lines) for s in speakers.list_speakers(db, rid)] == [(1, 0), (2, 2), (3, 1)]
    _rename(anna, rid, 3, "Pappa")  # a speaker a caseworker added can be named like any other
    assert _labels(db, rid)[0] == (3, "Pappa")
    entries = audit.entries(db, action="speaker.assign", actor=f"user:{users['anna']}")
    assert [(e["data"]["segment"], e["data"]["speaker"]) for e in entries] == [(2, 2), (0, 3)]
    assert all(e["target"] == f"recording:{rid}" for e in entries)


def test_bad_input_gets_a_clear_message_and_changes_nothing(anna, rid, db):
    before = _labels(db, rid)
    for value in ("abc", "0", "99", "4", ""):
        r = _assign(anna, rid, 1, value, headers=JSON)
        assert r.status_code == 400 and "talar" in r.json["error"].lower(), value
    r = _assign(anna, rid, 1, "abc")
    assert r.status_code == 303
    assert "Välj en av talarna" in anna.get(r.headers["Location"]).text
    r = _rename(anna, rid, 7, "Mamma", headers=JSON)  # no such speaker in this recording
    assert r.status_code == 400 and "finns inte" in r.json["error"]
    r = _rename(anna, rid, 1, "x" * 61, headers=JSON)
    assert r.status_code == 400 and "för långt" in r.json["error"]
    assert anna.post(f"/recordings/{rid}/segments/9/speaker",
                     data={"csrf_token": _token(anna, rid), "speaker": "1"}).status_code == 404
    assert _labels(db, rid) == before and speakers.history(db, rid) == []


def test_viewer_sees_speakers_but_cannot_change_them(app, anna, rid, clock, totp_secrets, db, users):
    owner = get_user(db, users["anna"])
    folders.share(db, owner, folders.ensure_default(db, owner), users["bo"], "viewer")
    _rename(anna, rid, 1, "Handläggare")
    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    page = bo.get(f"/recordings/{rid}").text
    assert ">Handläggare<" in page and "speaker-name-form" not in page and "seg-speaker-form" not in page
    token = csrf_from(page)
    assert bo.post(f"/recordings/{rid}/speakers/1/name", data={"csrf_token": token, "name": "X"}).status_code == 404
    assert bo.post(f"/recordings/{rid}/segments/0/speaker",
                   data={"csrf_token": token, "speaker": "2"}).status_code == 404
    assert _labels(db, rid)[0] == (1, "Handläggare")
    assert audit.entries(db, action="recording.speaker_rename", result="denied", actor=f"user:{users['bo']}")
    assert audit.entries(db, action="recording.speaker_assign", result="denied", actor=f"user:{users['bo']}")


def test_stranger_gets_404(app, rid, clock, totp_secrets, db):
    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    token = csrf_from(bo.get("/upload").text)
    assert bo.post(f"/recordings/{rid}/speakers/1/name", data={"csrf_token": token, "name": "X"}).status_code == 404
    assert bo.post(f"/recordings/{rid}/segments/0/speaker",
                   data={"csrf_token": token, "speaker": "2"}, headers=JSON).status_code == 404
    assert speakers.history(db, rid) == []


def test_audit_has_ids_never_the_name(anna, rid, db):
    _rename(anna, rid, 1, "Kanariefågel")
    _assign(anna, rid, 1, "1")
    assert "Kanariefågel" not in json.dumps(audit.entries(db))


def test_corrections_survive_re_transcription(anna, rid, db):
    _rename(anna, rid, 2, "Mamma")
    _assign(anna, rid, 2, "2")
    # The asr worker runs the recording again: rows replaced, the machine now says otherwise.
    _store(db, rid, [(0.0, 2.4, "Välkommen hit.", 1), (2.4, 5.1, "Han sover dåligt.", 1),
                     (5.1, 8.0, "Nytt möte.", 1)])
    assert _labels(db, rid) == [(1, "Talare 1"), (1, "Talare 1"), (2, "Mamma")]


def test_everything_goes_with_the_recording(anna, rid, db, ctx, users):
    _rename(anna, rid, 1, "Handläggare")
    _assign(anna, rid, 1, "new")
    assert db.execute("SELECT count(*) FROM speaker_edits WHERE recording_id = ?", (rid,)).fetchone()[0] == 2
    recordings.delete_recording(ctx, db, get_user(db, users["anna"]), rid)
    for table in ("recording_speakers", "segment_speakers", "speaker_edits", "segments"):
        assert db.execute(f"SELECT count(*) FROM {table} WHERE recording_id = ?",  # noqa: S608 - fixed names
                          (rid,)).fetchone()[0] == 0, table



def test_a_failed_diarization_is_said_on_the_page(anna, tone, db):
    rec_id = uploaded_id(anna, tone)
    replace_segments(db, rec_id, [Segment(0.0, 2.0, "En rad utan talare.")])
    speakers.store_machine(db, rec_id, Transcript(TranscriptInfo("sv", 2.0), [Segment(0.0, 2.0, "x")],
                                                  diarization="failed"))
    db.execute("UPDATE recordings SET status = 'ready' WHERE id = ?", (rec_id,))
    html = anna.get(f"/recordings/{rec_id}").text
    assert "Talarna kunde inte urskiljas" in html and 'class="seg-speaker ' not in html
    edit = anna.get(f"/recordings/{rec_id}/segments/0/edit").text  # a speaker can still be given by hand
    assert '<option value="new" selected>Ny talare</option>' in edit
    assert _assign(anna, rec_id, 0, "new").status_code == 303
    assert _labels(db, rec_id) == [(1, "Talare 1")]
