"""The recording page as a workspace (issue 15), through Flask's client: two panes (transcript with the player, the
assistant's tabs), lean lines with doubtful words marked, a compact speakers panel and the shortcut list, lines sent
alone for refreshing in place, a line's edit page without JS, the Förslag and Personuppgifter tabs sent alone
(?panel=1) with forms that come back to them, and downloads of the transcript and of a reviewed summary as .docx and
.txt (pseudonymized unless revealed, the reveal audited; built in memory, nothing written to the state dir). The
browser side is tests/test_e2e_workspace.py."""

from __future__ import annotations

import io
import json
import re

import docx
import pytest

from appliance.assistant import summaries
from appliance.assistant.summarize import plain_text
from appliance.platform import audit
from appliance.recordings import folders, recordings
from appliance.transcripts import edits, suggestions
from appliance.users.accounts import get_user
from tests.conftest import make_tone
from tests.web_fixtures import client_of, csrf_from, sign_in, uploaded_id
from tests.workspace_data import meeting, store_meeting

JSON = {"Accept": "application/json"}
TABS = ["Fråga", "Sammanfattningar", "Innehåll", "Förslag", "Personuppgifter"]


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    return make_tone(tmp_path_factory.mktemp("tone") / "tone.wav", 0.5)


@pytest.fixture
def rid(anna, tone, db):
    rec_id = uploaded_id(anna, tone)
    store_meeting(db, rec_id, minutes=2)  # 24 lines, three speakers, some doubtful words
    return rec_id


def _files(ctx) -> set[str]:
    return {str(p) for p in ctx.cfg.paths.state_dir.rglob("*") if p.is_file() and "-wal" not in p.name
            and "-shm" not in p.name and not p.name.endswith(".db")}


def test_two_panes_tabs_and_lean_lines(anna, rid):
    html = anna.get(f"/recordings/{rid}").text
    transcript, assistant = html.index('id="transcript-pane"'), html.index('id="assistant-pane"')
    assert transcript < html.index('<audio id="player"') < html.index('id="transcript"') < assistant
    tabs = re.findall(r'<li><a href="#([a-z-]+)" data-tab>([^<]+)</a></li>', html[assistant:])
    assert [name for _, name in tabs] == TABS
    for anchor, _ in tabs:  # each tab's section is on the page (without JS the tabs are links to them)
        assert f'id="{anchor}"' in html
    assert html.count('<li class="seg"') == 24
    # doubtful words are marked where Whisper was unsure ("frånvaron" in line 3, 10 s in)
    assert re.search(r'<mark class="doubt" data-t="1\d\.\d\d">frånvaron</mark>', html)
    # speakers: one compact panel (closed), not a form per speaker above the transcript
    panel = html[html.index('<details class="tool speakers-panel" id="speakers"'):html.index('id="downloads"')]
    assert panel.count('class="inline-form speaker-name-form"') == 3
    # no form per line: "Redigera" is a link (the editor is one template), so a long transcript stays light
    assert html.count("<form") < 30 and html.count('class="seg-edit-link"') == 24
    assert 'id="line-editor-template"' in html
    # the shortcut list is on the page, with the switch that turns one-key shortcuts off (WCAG 2.1.4)
    shortcuts = html[html.index('id="shortcuts"'):]
    for key in ("K", "J", "L", "N", "P", "O", "E", "/", "?"):
        assert f"<kbd>{key}</kbd>" in shortcuts
    assert 'id="shortcuts-on"' in shortcuts
    assert 'role="search"' in html and 'id="find-input"' in html


def test_a_ninety_minute_transcript_renders_lean(anna, tone, db):
    rec_id = uploaded_id(anna, tone)
    n = store_meeting(db, rec_id, minutes=90)
    assert n == len(meeting(90)) == 1080
    html = anna.get(f"/recordings/{rec_id}").text
    assert html.count('<li class="seg"') == n and f'id="seg-{n - 1}"' in html
    per_line = html[html.index('id="seg-0"'):html.index(f'id="seg-{n - 1}"')]
    tags = len(re.findall(r"<[a-z]", per_line)) / (n - 1)
    assert tags < 9, tags  # what the browser lays out per line (the e2e test measures the whole page)


def test_doubtful_words_are_whispers_unsure_ones_in_the_current_text(anna, rid, db, users):
    def marked():
        lines = {s.idx: s.text for s in recordings.transcript_segments(db, rid)}
        return [(d.idx, lines[d.idx][d.char_start:d.char_end]) for d in suggestions.doubtful_words(db, rid)]

    assert marked() == [(2, "frånvaron"), (4, "skolkuratorn"), (8, "barnpsykiatrin"), (12, "frånvaron"),
                        (14, "skolkuratorn"), (18, "barnpsykiatrin"), (22, "frånvaron")]
    me = get_user(db, users["anna"])
    edits.edit_segment(db, me, rid, 2, "Skolan har hört av sig om närvaron under hösten (3).")  # the word is gone
    edits.edit_segment(db, me, rid, 12, "Förskolan ringde. Skolan har hört av sig om frånvaron under hösten.")
    sid = next(s.id for s in suggestions.for_recording(db, rid) if s.idx == 4)
    suggestions.dismiss(db, me, rid, sid)  # "the word is right"
    found = marked()
    assert (2, "frånvaron") not in found and (4, "skolkuratorn") not in found
    assert (12, "frånvaron") in found  # still unsure where it still stands, wherever it moved in the line
    start = next(d.start for d in suggestions.doubtful_words(db, rid) if d.idx == 12)
    assert 60.0 <= start < 65.0  # its own time, to play it from


def test_lines_alone_for_refreshing_after_an_edit(anna, rid, db):
    token = csrf_from(anna.get(f"/recordings/{rid}").text)
    r = anna.post(f"/recordings/{rid}/segments/2/edit", headers=JSON,
                  data={"csrf_token": token, "text": "Skolan har hört av sig om frånvaron i höstas.", "base": ""})
    assert r.status_code == 200, r.text
    one = anna.get(f"/recordings/{rid}/lines?idx=2")
    assert one.status_code == 200 and one.text.count('<li class="seg"') == 1
    assert 'id="seg-2"' in one.text and "i höstas." in one.text and "(redigerad – visa historik)" in one.text
    assert re.search(r'<ol data-max-edit="(\d+)">', one.text).group(1) == str(r.json["edit_id"])
    since = anna.get(f"/recordings/{rid}/lines?since=0").text  # every line edited after edit 0: just this one
    assert since.count('<li class="seg"') == 1 and 'id="seg-2"' in since
    assert anna.get(f"/recordings/{rid}/lines?since={r.json['edit_id']}").text.count("<li") == 0


def test_a_lines_edit_page_works_without_js(anna, rid, db, users, client, clock, totp_secrets):
    page = anna.get(f"/recordings/{rid}/segments/3/edit")
    assert page.status_code == 200 and "Redigera raden vid 00:15" in page.text
    assert 'name="text"' in page.text and 'for="seg-speaker-3"' in page.text
    r = anna.post(f"/recordings/{rid}/segments/3/edit",
                  data={"csrf_token": csrf_from(page.text), "text": "En rättad rad.", "base": "0"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/recordings/{rid}#seg-3")
    assert anna.get(f"/recordings/{rid}/segments/999/edit").status_code == 404
    # a viewer sees the line but no form; someone without access gets 404
    anna_user = get_user(db, users["anna"])
    folders.share(db, anna_user, folders.ensure_default(db, anna_user), users["bo"], "viewer")
    sign_in(client, clock, "bo", totp_secrets)
    viewed = client.get(f"/recordings/{rid}/segments/3/edit").text
    assert "En rättad rad." in viewed and 'name="text"' not in viewed and "läsbehörighet" in viewed
    folders.unshare(db, anna_user, folders.ensure_default(db, anna_user), users["bo"])
    assert client.get(f"/recordings/{rid}/segments/3/edit").status_code == 404
    assert client.get(f"/recordings/{rid}/lines?idx=3").status_code == 404


def test_suggestions_and_personal_data_tabs_are_sent_alone_and_answer_into_the_tab(anna, rid, db):
    panel = anna.get(f"/recordings/{rid}/suggestions?panel=1")
    assert panel.status_code == 200 and "<html" not in panel.text and 'class="suggestion"' in panel.text
    assert panel.text.count('name="panel" value="1"') >= 2
    link = re.search(r'<a class="play" href="([^"]+)" data-seek="([\d.]+)" data-line="seg-(\d+)"', panel.text)
    assert link and f"/recordings/{rid}?t=" in link.group(1)  # without JS: the recording page at that time
    sid = re.search(r'name="sid" value="([^"]+)"', panel.text).group(1)
    r = anna.post(f"/recordings/{rid}/suggestions/dismiss",
                  data={"csrf_token": csrf_from(panel.text), "sid": sid, "scope": "one", "panel": "1"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/recordings/{rid}/suggestions?panel=1")
    answer = anna.get(r.headers["Location"]).text
    assert "Förslaget är avfärdat." in answer and "<html" not in answer
    # the standalone page is as before: a whole page, forms that come back to it
    page = anna.get(f"/recordings/{rid}/suggestions").text
    assert "<html" in page and 'name="panel"' not in page

    pii = anna.get(f"/recordings/{rid}/personal-data?panel=1")
    assert pii.status_code == 200 and "<html" not in pii.text and "Hittade uppgifter" in pii.text
    assert "export.docx" in pii.text and "pii-transcript" not in pii.text  # the page's own transcript is left out
    r = anna.post(f"/recordings/{rid}/personal-data/add",
                  data={"csrf_token": csrf_from(pii.text), "value": "Mormor", "kind": "person", "panel": "1"})
    assert r.headers["Location"].endswith(f"/recordings/{rid}/personal-data?panel=1")
    assert "döljs överallt" in anna.get(r.headers["Location"]).text


def test_transcript_downloads_pseudonymized_unless_revealed_and_never_stored(anna, rid, db, ctx, users):
    db.execute("INSERT INTO recording_speakers (recording_id, speaker, name) VALUES (?, 1, 'Handläggare')", (rid,))
    db.execute("UPDATE segments SET text = 'Jag heter Anna Berg och bor i Växjö.' WHERE recording_id = ? AND idx = 0",
               (rid,))
    before = _files(ctx)
    r = anna.get(f"/recordings/{rid}/export.docx")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.headers["Content-Type"].startswith("application/vnd.openxmlformats-officedocument.wordprocessingml")
    assert 'filename="utskrift-pseudonymiserad.docx"' in r.headers["Content-Disposition"]
    doc = docx.Document(io.BytesIO(r.data))
    paragraphs = [p.text for p in doc.paragraphs]
    assert paragraphs[0] == "Utskrift" and doc.paragraphs[0].style.name == "Heading 1"
    assert "Pseudonymiserad" in paragraphs[1]
    assert paragraphs[2].startswith("[00:00] Handläggare: Jag heter [PERSON 1]") and "Anna" not in " ".join(paragraphs)
    assert len(paragraphs) == 2 + 24
    assert not doc.core_properties.author and not doc.core_properties.last_modified_by
    txt = anna.get(f"/recordings/{rid}/export.txt").text
    assert txt.splitlines()[0].startswith("[00:00] Handläggare: Jag heter [PERSON 1]") and len(txt.splitlines()) == 24
    reveals = len(audit.entries(db, action="pii.reveal"))
    revealed = docx.Document(io.BytesIO(anna.get(f"/recordings/{rid}/export.docx?personal=1").data))
    assert "Jag heter Anna Berg" in revealed.paragraphs[2].text
    assert len(audit.entries(db, action="pii.reveal", actor=f"user:{users['anna']}")) == reveals + 1
    assert _files(ctx) == before  # built in memory: nothing new in the state dir but the database's own pages


def test_a_reviewed_summary_downloads_with_its_headings(anna, rid, db, users):
    content = {"template": {"key": "rad", "name": "Råd till klienten", "headings": ["Råd", "Nästa steg"],
                            "groups": []},
               "sections": [{"heading": "Råd", "statements": [
                   {"text": "Skolan ska kontaktas om frånvaron.", "citations": [3], "status": "ok"},
                   {"text": "Mormor hjälper till med hämtningar.", "citations": [7], "status": "ok"}]},
                   {"heading": "Nästa steg", "statements": []}], "flagged": 0}
    db.execute("INSERT INTO summaries (id, recording_id, template_key, template_name, status, content, created_at) "
               "VALUES (5, ?, 'rad', 'Råd till klienten', 'done', ?, 0)", (rid, json.dumps(content)))
    page = anna.get(f"/recordings/{rid}").text
    assert f"/recordings/{rid}/summaries/5/download.docx" not in page  # a draft is not yet for export
    r = anna.get(f"/recordings/{rid}/summaries/5/download.docx")
    assert r.status_code == 303 and r.headers["Location"].endswith("#summary-5")
    assert "Granska sammanfattningen innan du laddar ner den." in anna.get(r.headers["Location"]).text

    summaries.set_review_state(db, get_user(db, users["anna"]), rid, 5, summaries.GRANSKAD)
    page = anna.get(f"/recordings/{rid}").text
    assert f'href="/recordings/{rid}/summaries/5/download.docx" download' in page
    r = anna.get(f"/recordings/{rid}/summaries/5/download.docx")
    assert r.status_code == 200 and 'filename="sammanfattning-rad-5.docx"' in r.headers["Content-Disposition"]
    doc = docx.Document(io.BytesIO(r.data))
    shape = [(p.style.name, p.text) for p in doc.paragraphs]
    assert shape == [("Heading 1", "Råd till klienten"), ("Heading 2", "Råd"),
                     ("List Bullet", "Skolan ska kontaktas om frånvaron."),
                     ("List Bullet", "Mormor hjälper till med hämtningar."),
                     ("Heading 2", "Nästa steg"), ("Normal", "(inget antecknat)")]
    txt = anna.get(f"/recordings/{rid}/summaries/5/download.txt")
    assert txt.text == plain_text(content)  # the same text "Kopiera" copies: headings on lines of their own
    assert txt.text.startswith("Råd till klienten\n\nRåd\n- Skolan ska kontaktas om frånvaron.\n")
    assert "[3]" not in txt.text
    assert anna.get(f"/recordings/{rid}/summaries/99/download.txt").status_code == 404


def test_progress_while_transcribing_says_what_happens_for_screen_readers(anna, tone, db):
    rec_id = uploaded_id(anna, tone)  # queued: nothing transcribes it here
    db.execute("UPDATE recordings SET status = 'transcribing', progress = 0.4 WHERE id = ?", (rec_id,))
    html = anna.get(f"/recordings/{rec_id}").text
    box = html[html.index('id="job-progress"'):]
    assert "Transkriberar ljudet" in box and 'value="40"' in box and "40 %" in box
    assert 'aria-live="polite" data-announce' in box and "data-eta" in box
    assert "/static/progress.js" in html
    feed = anna.get(f"/recordings/{rec_id}/live", headers=JSON).json  # the live page's poll carries progress too
    assert feed["progress"] == 0.4


def test_nobody_else_gets_the_workspace_routes(app, rid, clock, totp_secrets):
    bo = client_of(app)
    sign_in(bo, clock, "bo", totp_secrets)
    for path in ("lines?idx=0", "segments/0/edit", "export.docx", "suggestions?panel=1", "personal-data?panel=1",
                 "summaries/1/download.txt"):
        assert bo.get(f"/recordings/{rid}/{path}").status_code == 404, path
