"""Correction suggestions (the Förslag tab) on a recording whose segments and words are written directly:
low-probability words and lexicon near-misses; accept one, accept all, dismiss; viewer read-only (404 on
accept); the audit log holds ids and counts, never words."""

from __future__ import annotations

import pytest

from appliance.platform import audit
from appliance.recordings import folders, recordings
from appliance.transcripts import suggestions
from appliance.users.accounts import get_user
from tests.conftest import make_tone
from tests.web_fixtures import csrf_from, sign_in

LINES = [  # (text, [(word, probability)]) as Whisper would have stored them
    ("Vi gör en oros anmälan enligt LVU.",
     [(" Vi", .9), (" gör", .9), (" en", .9), (" oros", .8), (" anmälan", .9), (" enligt", .9), (" LVU.", .9)]),
    ("Vi följer BBIK och Kvarnbo.",
     [(" Vi", .9), (" följer", .9), (" BBIK", .9), (" och", .9), (" Kvarnbo.", .2)]),
    ("Sedan en ny oros anmälan.",
     [(" Sedan", .9), (" en", .9), (" ny", .9), (" oros", .9), (" anmälan.", .9)]),
]


@pytest.fixture
def rec_id(db, users, ctx, tmp_path):
    wav = tmp_path / "t.wav"
    make_tone(wav, 0.3)
    anna = get_user(db, users["anna"])
    rid = recordings.create_from_upload(ctx, db, anna, title="Hembesök", filename="t.wav", data=wav.read_bytes())
    db.execute("UPDATE recordings SET status = 'ready' WHERE id = ?", (rid,))
    for idx, (text, words) in enumerate(LINES):
        cur = db.execute('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                         (rid, idx, idx * 5.0, idx * 5.0 + 4, text))
        db.executemany('INSERT INTO words (segment_id, idx, start, "end", word, probability) '
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       [(cur.lastrowid, i, idx * 5.0 + i * .5, idx * 5.0 + i * .5 + .4, w, p)
                        for i, (w, p) in enumerate(words)])
    return rid


def _by_word(items):
    return {s.word: s for s in items}


def test_suggestions_from_lexicon_and_low_probability(db, rec_id):
    items = suggestions.for_recording(db, rec_id)
    got = [(s.idx, s.word, s.term, s.low) for s in items]
    assert got == [(0, "oros anmälan", "orosanmälan", False), (1, "BBIK", "BBIC", False),
                   (1, "Kvarnbo", None, True), (2, "oros anmälan", "orosanmälan", False)]
    kvarnbo = _by_word(items)["Kvarnbo"]
    assert kvarnbo.probability == pytest.approx(.2) and kvarnbo.start == pytest.approx(5 + 4 * .5)
    assert (kvarnbo.before, kvarnbo.after) == ("Vi följer BBIK och ", ".")


def _page(client, rec_id):
    r = client.get(f"/recordings/{rec_id}/suggestions")
    assert r.status_code == 200
    return r


def test_accept_one_then_all_then_dismiss_in_the_web(anna, db, rec_id, ctx):
    page = _page(anna, rec_id)
    assert "orosanmälan" in page.text and "Rätta alla" in page.text
    token = csrf_from(page.text)
    first = next(s for s in suggestions.for_recording(db, rec_id) if s.idx == 0)
    r = anna.post(f"/recordings/{rec_id}/suggestions/accept", data={"csrf_token": token, "sid": first.id})
    assert r.status_code == 303
    texts = [s.text for s in recordings.transcript_segments(db, rec_id)]
    assert texts[0] == "Vi gör en orosanmälan enligt LVU." and texts[2] == "Sedan en ny oros anmälan."
    assert db.execute("SELECT count(*) FROM segment_edits WHERE recording_id = ?", (rec_id,)).fetchone()[0] == 1

    # The same word written apart again, plus a line Whisper was sure of: accept all.
    db.execute("UPDATE segments SET text = 'Oros anmälan gjordes, oros anmälan.' WHERE recording_id = ? AND idx = 1",
               (rec_id,))
    remaining = suggestions.for_recording(db, rec_id)
    sid = next(s.id for s in remaining if s.idx == 2)
    r = anna.post(f"/recordings/{rec_id}/suggestions/accept", data={"csrf_token": token, "sid": sid, "scope": "all"})
    assert r.status_code == 303
    texts = [s.text for s in recordings.transcript_segments(db, rec_id)]
    assert texts[1] == "Orosanmälan gjordes, orosanmälan." and texts[2] == "Sedan en ny orosanmälan."
    assert "Rättat på 3 ställen" in anna.get(f"/recordings/{rec_id}/suggestions").text

    # Dismiss a low-probability word: it stays as it is and is not suggested again.
    db.execute("UPDATE segments SET text = 'Vi följer BBIK och Kvarnbo.' WHERE recording_id = ? AND idx = 1", (rec_id,))
    db.execute("DELETE FROM segment_edits WHERE recording_id = ? AND idx = 1", (rec_id,))
    kv = _by_word(suggestions.for_recording(db, rec_id))["Kvarnbo"]
    r = anna.post(f"/recordings/{rec_id}/suggestions/dismiss", data={"csrf_token": token, "sid": kv.id})
    assert r.status_code == 303
    assert "Kvarnbo" not in _by_word(suggestions.for_recording(db, rec_id))
    # A stale suggestion changes nothing and says so.
    r = anna.post(f"/recordings/{rec_id}/suggestions/accept", data={"csrf_token": token, "sid": kv.id},
                  follow_redirects=True)
    assert "gäller inte längre" in r.text

    recs = audit.entries(ctx, action=["suggestion.accept", "suggestion.dismiss"])
    assert [(r["action"], r["data"]["scope"], r["data"]["count"]) for r in recs] == [
        ("suggestion.accept", "one", 1), ("suggestion.accept", "all", 3), ("suggestion.dismiss", "one", 1)]
    log = (ctx.cfg.paths.state_dir / "audit" / "audit.jsonl").read_text(encoding="utf-8").lower()
    for word in ("oros", "anm", "kvarnbo", "bbik", "bbic"):
        assert word not in log


def test_accept_with_own_replacement_for_a_low_probability_word(db, users, rec_id):
    anna = get_user(db, users["anna"])
    kv = _by_word(suggestions.for_recording(db, rec_id))["Kvarnbo"]
    assert suggestions.accept(db, anna, rec_id, kv.id, replacement="Kvarnbacken") == 1
    assert recordings.transcript_segments(db, rec_id)[1].text == "Vi följer BBIK och Kvarnbacken."


def test_viewer_sees_suggestions_but_cannot_accept_or_dismiss(app, db, users, rec_id, client, clock, totp_secrets):
    anna = get_user(db, users["anna"])
    folders.share(db, anna, folders.ensure_default(db, anna), users["bo"], "viewer")
    sign_in(client, clock, "bo", totp_secrets)
    page = _page(client, rec_id)
    assert "orosanmälan" in page.text and "Rätta här" not in page.text
    sid = suggestions.for_recording(db, rec_id)[0].id
    token = csrf_from(client.get("/upload").text)
    for action in ("accept", "dismiss"):
        r = client.post(f"/recordings/{rec_id}/suggestions/{action}", data={"csrf_token": token, "sid": sid})
        assert r.status_code == 404
    assert db.execute("SELECT count(*) FROM segment_edits").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM suggestion_dismissals").fetchone()[0] == 0


def test_other_users_get_404(app, rec_id, client, clock, totp_secrets):
    sign_in(client, clock, "bo", totp_secrets)
    assert client.get(f"/recordings/{rec_id}/suggestions").status_code == 404
