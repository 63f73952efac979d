"""The new-recording flow and the browser dictaphone's endpoints through Flask's client (real SQLCipher, real
blob store): consent required, leaflet, clear Swedish refusals, chunk acknowledgements, pause marks,
stop from the page, the live transcript feed."""

from __future__ import annotations

import re

import numpy as np

from appliance.platform import audit
from appliance.recordings import live
from tests.web_fixtures import client_of, csrf_from, make_ctx, sign_in, token_for
from web import create_app

RATE = live.SAMPLE_RATE


def tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def _new(client, **fields):
    data = {"csrf_token": token_for(client, "/recordings/new"), "title": "Hembesök", "source": "browser",
            "consent": "yes", **fields}
    return client.post("/recordings/new", data=data)


def _rid(r) -> str:
    assert r.status_code == 303, r.text
    return re.fullmatch(r".*/recordings/([0-9a-f]+)", r.headers["Location"]).group(1)


def _chunk(client, rid, seq, body, token):
    return client.post(f"/recordings/{rid}/chunks/{seq}", data=body, headers={
        "X-CSRFToken": token, "Content-Type": "application/octet-stream", "Accept": "application/json"})


def test_new_recording_form_needs_consent_and_links_the_leaflet(anna, db):
    page = anna.get("/recordings/new").text
    assert 'name="consent"' in page and "required" in page
    assert "/leaflet" in page and 'value="desk"' in page and "/upload" in page
    r = _new(anna, consent="")
    assert r.status_code == 400 and "samtyckt" in r.text
    assert db.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
    r = _new(anna, speakers="11")
    assert r.status_code == 400 and "Antal talare" in r.text
    rid = _rid(_new(anna, speakers="3"))
    assert db.execute("SELECT status, speakers_hint FROM recordings WHERE id = ?", (rid,)).fetchone()[:] == \
        ("recording", 3)
    page = anna.get(f"/recordings/{rid}").text
    assert 'id="recorder"' in page and "Spelar in" in page and "recorder.js" in page and "live.js" in page
    assert "Avsluta inspelningen" in page


def test_leaflet_is_plain_swedish_and_printable(anna):
    r = anna.get("/leaflet")
    assert r.status_code == 200
    for words in ("Varför spelar vi in", "Vem kan ta del", "raderas", "säga nej", "pausa", "Skriv ut"):
        assert words in r.text
    assert "<script>" not in r.text and "style=" not in r.text  # strict CSP: no inline script or style


def test_disk_almost_full_refuses_with_a_clear_message(tmp_path, users, clock, totp_secrets):
    ctx = make_ctx(tmp_path / "full")
    ctx = type(ctx)(ctx.cfg.model_copy(update={"recording": ctx.cfg.recording.model_copy(
        update={"min_free_mb": 10**9})}), ctx.master_key, ctx.blobs)
    from appliance.users.accounts import create_user
    conn = ctx.connect()
    create_user(conn, "cw", ["caseworker"], password="rätt-häst-batteri-häftapparat")
    app = create_app(ctx, {"TESTING": True})
    c = client_of(app)
    sign_in(c, clock, "cw", totp_secrets)
    r = _new(c)
    assert r.status_code == 400 and "ledigt lagringsutrymme" in r.text
    assert conn.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0


def test_chunks_pause_stop_and_feed(anna, app, db, ctx):
    rid = _rid(_new(anna))
    page = anna.get(f"/recordings/{rid}").text
    token = re.search(r'data-csrf="([^"]+)"', page).group(1)
    r = _chunk(anna, rid, 0, tone(2.5), token)
    assert r.status_code == 200 and r.json["seq"] == 0 and r.json["received"] == 1 and r.json["state"] == "recording"
    assert _chunk(anna, rid, 0, tone(2.5), token).json["duplicate"] is True
    r = _chunk(anna, rid, 0, tone(1), token)
    assert r.status_code == 409 and "annat innehåll" in r.json["error"]
    r = _chunk(anna, rid, 1, b"\x01", token)
    assert r.status_code == 400 and "PCM" in r.json["error"]
    r = _chunk(anna, rid, 1, tone(2.5), "wrong-token")
    assert r.status_code == 400  # CSRF
    r = anna.post(f"/recordings/{rid}/pause", data={"csrf_token": token, "at_seq": "1"},
                  headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json["state"] == "paused"
    r = anna.post(f"/recordings/{rid}/resume", data={"csrf_token": token, "at_seq": "1"})
    assert r.status_code == 303
    assert _chunk(anna, rid, 2, tone(2.5), token).json["missing"] == [1]
    feed = anna.get(f"/recordings/{rid}/live", headers={"Accept": "application/json"}).json
    assert feed["status"] == "recording" and feed["state"] == "recording" and feed["seconds"] == 5.0
    assert [m["kind"] for m in feed["marks"]] == ["pause", "resume"]
    # The browser died: the recording is finished from its page (a plain form post); chunk 1 became silence.
    r = anna.post(f"/recordings/{rid}/stop", data={"csrf_token": token})
    assert r.status_code == 303
    page = anna.get(f"/recordings/{rid}").text
    assert "ersatts med tystnad" in page and "Utskriften slutförs" in page
    r = _chunk(anna, rid, 3, tone(1), token)
    assert r.status_code == 409 and "stoppad" in r.json["error"]
    feed = anna.get(f"/recordings/{rid}/live", headers={"Accept": "application/json"}).json
    assert feed["status"] == "transcribing" and feed["state"] == "stopped"
    assert [m["kind"] for m in feed["marks"]] == ["pause", "resume", "gap", "stop"]
    audio = anna.get(f"/recordings/{rid}/audio", headers={"Range": "bytes=0-43"})
    assert audio.status_code == 206 and audio.data[:4] == b"RIFF" and audio.data[8:12] == b"WAVE"
    actions = [e["action"] for e in audit.entries(db, target=f"recording:{rid}")]
    for action in ("recording.consent", "recording.create", "recording.record", "recording.pause",
                   "recording.resume", "recording.stop", "recording.live"):
        assert action in actions, action


def test_others_get_404_and_bad_ids_change_nothing(anna, app, clock, totp_secrets, db):
    rid = _rid(_new(anna))
    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    token = csrf_from(bo.get("/upload").text)
    assert _chunk(bo, rid, 0, tone(1), token).status_code == 404
    assert bo.get(f"/recordings/{rid}/live").status_code == 404
    for action in ("pause", "resume", "stop"):
        assert bo.post(f"/recordings/{rid}/{action}", data={"csrf_token": token}).status_code == 404
    assert db.execute("SELECT count(*) FROM live_chunks").fetchone()[0] == 0
    assert db.execute("SELECT state FROM live_sessions WHERE recording_id = ?", (rid,)).fetchone()[0] == "recording"


def test_live_lines_show_their_provisional_speakers(anna, db):
    """While recording, each live line comes with the speaker the asr unit gave it (provisional): in the feed
    live.js renders and on the page itself."""
    from appliance.platform.db import transaction
    from appliance.ports import Segment
    from appliance.transcripts import store

    rid = _rid(_new(anna))
    page = anna.get(f"/recordings/{rid}").text
    token = re.search(r'data-csrf="([^"]+)"', page).group(1)
    assert _chunk(anna, rid, 0, tone(2.5), token).status_code == 200
    assert live.claim_for_asr(db, rid, "asr-test", 60)
    with transaction(db):  # what a live step of the asr unit writes (services/live_asr.py)
        assert store.append_live_step(db, rid, "asr-test", start=0, end=int(2.5 * RATE), final=False,
                                      available=int(2.5 * RATE),
                                      segments=[Segment(0.0, 1.0, "Hej.", speaker=1),
                                                Segment(1.2, 2.4, "Hallå.", speaker=2), Segment(2.4, 2.5, "Mm.")])
    feed = anna.get(f"/recordings/{rid}/live", headers={"Accept": "application/json"}).json
    assert [(s["text"], s["speaker"], s["speaker_name"]) for s in feed["segments"]] == [
        ("Hej.", 1, "Talare 1"), ("Hallå.", 2, "Talare 2"), ("Mm.", None, "")]
    page = anna.get(f"/recordings/{rid}").text
    assert re.search(r'data-speaker="1">Talare 1</span> <span class="seg-text">Hej\.', page)
    assert re.search(r'data-speaker="2">Talare 2</span> <span class="seg-text">Hallå\.', page)
