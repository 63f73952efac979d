"""Data-subject requests: a personnummer search finds exactly the recordings, drafts and chat histories that hold
it (after transcript edits and speaker renames too) and none that don't; the number is left nowhere in clear
(state dir, audit log, logs, pages); an erasure removes them at once with a receipt and tells the owners."""

from __future__ import annotations

import json
import logging
import re
from contextlib import closing

import pytest

from appliance.assistant import case_drafts
from appliance.compliance import identifiers
from appliance.compliance import subject_requests as dsr
from appliance.errors import NotFound
from appliance.platform import audit, retention
from appliance.platform.db import transaction
from appliance.ports import Segment, Transcript, TranscriptInfo
from appliance.recordings import recordings
from appliance.transcripts import edits, speakers, store
from appliance.users.accounts import create_user, get_user
from tests.conftest import make_tone
from tests.web_fixtures import PASSWORD, client_of, csrf_from, make_ctx, sign_in

PNR = "850312-1231"           # valid (date and Luhn check digit)
PNR_LONG = "19850312-1231"    # the same person, written with the century
PNR_DIGITS = "198503121231"
OTHER = "920101-4561"         # someone else
WRONG_CHECK = "850312-1232"   # the same date, a wrong check digit: not this number
FORMS = ("8503121231", "850312-1231", "850312 1231", "198503121231", "19850312-1231")


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    return make_tone(tmp_path_factory.mktemp("tone") / "tone.wav", 0.3).read_bytes()


class Office:
    def __init__(self, tmp_path, clock, tone: bytes) -> None:
        from web import create_app

        self.ctx = make_ctx(tmp_path)
        self.clock, self.secrets, self.tone = clock, {}, tone
        with closing(self.ctx.connect()) as conn:
            self.ids = {name: create_user(conn, name, roles, password=PASSWORD)[0].id for name, roles in
                        (("anna", ["caseworker"]), ("bo", ["caseworker"]), ("ansv", ["responsible"]))}
        self.app = create_app(self.ctx, {"TESTING": True})

    def user(self, name: str):
        with closing(self.ctx.connect()) as conn:
            return get_user(conn, self.ids[name])

    def client(self, name: str):
        c = client_of(self.app)
        sign_in(c, self.clock, name, self.secrets)
        return c

    def recording(self, owner: str, lines: list[str], title: str = "Samtal", speaker: int | None = None) -> str:
        with closing(self.ctx.connect()) as conn:
            rid = recordings.create_from_upload(self.ctx, conn, self.user(owner), title=title, filename="a.wav",
                                                data=self.tone)
            segments = [Segment(i * 2.0, i * 2.0 + 2, t, speaker=speaker) for i, t in enumerate(lines)]
            with transaction(conn):
                store.save_transcript(conn, rid, Transcript(TranscriptInfo("sv", 2.0 * len(lines)), segments,
                                                            "done" if speaker else "off", 1 if speaker else 0))
        return rid


@pytest.fixture
def office(tmp_path, clock, tone):
    return Office(tmp_path, clock, tone)


def _search(client, number: str, purpose: str = "art15", reference: str = "SN 2025/117"):
    page = client.get("/subject-requests")
    assert page.status_code == 200
    return client.post("/subject-requests/search", data={"csrf_token": csrf_from(page.text), "number": number,
                                                         "purpose": purpose, "reference": reference})


def _found(html: str) -> tuple[set[str], set[str]]:
    return set(re.findall(r'data-recording="([0-9a-f]+)"', html)), set(re.findall(r'data-draft="(\d+)"', html))


def _no_number_in(data: bytes | str) -> bool:
    text = data if isinstance(data, bytes) else data.encode()
    return not any(form.encode() in text for form in FORMS)


def test_search_finds_exactly_the_holders_after_edits_and_renames_and_erasure_removes_them(office, caplog):
    caplog.set_level(logging.DEBUG)
    anna, bo = office.user("anna"), office.user("bo")
    in_line = office.recording("anna", ["Vi går igenom uppgifterna.", f"Pojkens personnummer är {PNR}."])
    by_edit = office.recording("anna", ["Mamma berättar om skolan.", "Vi ses på torsdag."])
    by_rename = office.recording("bo", ["Hej och välkommen.", "Tack."], speaker=1)
    in_chat = office.recording("bo", ["Ett samtal utan nummer."])
    other_person = office.recording("bo", [f"Hans personnummer är {OTHER}."])
    wrong_digit = office.recording("anna", [f"Hon sa {WRONG_CHECK}, men det stämmer inte."])
    untouched = office.recording("anna", ["Inget personnummer här."])
    with closing(office.ctx.connect()) as conn:
        # An edit adds the number, a speaker is named with it, a question typed into the chat holds it.
        edits.edit_segment(conn, anna, by_edit, 1, f"Vi ses på torsdag, barnets nummer är {PNR_LONG}.", base=0)
        speakers.rename(conn, bo, by_rename, 1, f"Pappa {PNR_DIGITS}")
        with transaction(conn):
            conn.execute("INSERT INTO chat_messages (recording_id, user_id, kind, prompt, answer, state, created_at) "
                         "VALUES (?, ?, 'question', ?, '[]', 'done', ?)",
                         (in_chat, bo.id, f"Vad sägs om {PNR}?", office.clock.now()))
        draft_id = case_drafts.create(conn, anna, title="Utredning", recording_ids=[untouched],
                                      notes=f"Journal: barnet med personnummer {PNR_LONG} har flyttat.")
        found = identifiers.lookup(office.ctx, conn, "8503121231")
        assert {h.part for h in found if h.recording_id == by_edit} == {"transcript"}
        # Edited away again: the number is still held by the line's edit history (and is found as such).
        edits.edit_segment(conn, anna, by_edit, 1, "Vi ses på torsdag.",
                           base=recordings.transcript_segment(conn, by_edit, 1).edit_id)
        # Renamed away: the rename history still holds it.
        speakers.rename(conn, bo, by_rename, 1, "Pappa")
        found = identifiers.lookup(office.ctx, conn, "8503121231")
        assert {h.part for h in found if h.recording_id == by_edit} == {"history"}
        assert {h.part for h in found if h.recording_id == by_rename} == {"history"}

    ansv = office.client("ansv")
    r = _search(ansv, PNR_LONG)
    assert r.status_code == 200
    recs, drafts = _found(r.text)
    assert recs == {in_line, by_edit, by_rename, in_chat} and drafts == {str(draft_id)}
    assert other_person not in recs and wrong_digit not in recs and untouched not in recs
    assert _no_number_in(r.text)
    recs_other, _ = _found(_search(ansv, OTHER).text)
    assert recs_other == {other_person}

    # Audited with purpose and reference and a keyed pseudonym, never the number.
    searches = audit.entries(office.ctx, action="dsr.search")
    assert [s["data"]["purpose"] for s in searches] == ["art15", "art15"]
    assert searches[0]["data"]["reference"] == "SN-2025-117" and searches[0]["data"]["subject"].startswith("h:")
    assert set(searches[0]["data"]["recordings"]) == recs

    # Erase: retype the number, confirm.
    page = _search(ansv, PNR, purpose="art17")
    r = ansv.post("/subject-requests/erase", data={"csrf_token": csrf_from(page.text), "number": "8503121231",
                                                   "reference": "SN 2025/117", "confirm": "yes"})
    assert r.status_code == 200 and 'id="dsr-receipt"' in r.text and 'data-rekey="done"' in r.text
    assert _no_number_in(r.text)
    with closing(office.ctx.connect()) as conn:
        left = {row[0] for row in conn.execute("SELECT id FROM recordings")}
        assert left == {in_chat, other_person, wrong_digit, untouched}
        assert conn.execute("SELECT count(*) FROM chat_messages WHERE recording_id = ?", (in_chat,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM case_drafts").fetchone()[0] == 0
        assert retention.pending_rekey(conn) == []
    for rid in (in_line, by_edit, by_rename):
        assert not list(office.ctx.cfg.paths.blobs.glob(f"{rid}*"))
    (erase,) = audit.entries(office.ctx, action="dsr.erase")
    assert set(erase["data"]["recordings"]) == {in_line, by_edit, by_rename}
    assert erase["data"]["case_drafts"] == [draft_id] and len(erase["data"]["chat_messages"]) == 1
    assert erase["data"]["owners"] == [f"user:{office.ids['anna']}", f"user:{office.ids['bo']}"]
    (receipt,) = audit.entries(office.ctx, action="rekey.receipt")
    assert f"recording:{in_line}" in receipt["data"]["completed"]
    assert f"case_draft:{draft_id}" in receipt["data"]["completed"]
    recs, drafts = _found(_search(ansv, PNR).text)
    assert recs == set() and drafts == set()

    # The owners are told (ids, counts, the reference), once.
    page = office.client("anna").get("/").text
    assert 'data-notice="erasure"' in page and "SN-2025-117" in page and in_line in page and by_edit in page

    # The number is nowhere in clear: not in any file of the state dir (database, WAL, blobs, audit log, keys) ...
    for path in office.ctx.cfg.paths.state_dir.rglob("*"):
        if path.is_file():
            assert _no_number_in(path.read_bytes()), path
    # ... nor in the logs.
    assert _no_number_in(caplog.text)


def test_only_the_responsible_person_may_search(office):
    anna = office.client("anna")
    assert anna.get("/subject-requests").status_code == 404
    page = anna.get("/").text
    assert anna.post("/subject-requests/search", data={"csrf_token": csrf_from(page), "number": PNR,
                                                       "purpose": "art15", "reference": "SN-1"}).status_code == 404
    with closing(office.ctx.connect()) as conn, pytest.raises(NotFound):
        dsr.search(office.ctx, conn, office.user("anna"), PNR, purpose="art15", reference="SN-1")


@pytest.mark.parametrize(("number", "reference", "message"), [
    ("850312-1232", "SN-1", "kontrollsiffran"),            # wrong check digit
    ("851332-1231", "SN-1", "personnummer"),               # no such date
    ("hej", "SN-1", "personnummer"),
    (PNR, "", "diarienummer"),
    (PNR, f"Ärende {PNR}", "diarienummer"),                 # the number must not become the logged reference
])
def test_bad_input_is_refused_clearly_and_audited_without_it(office, number, reference, message):
    ansv = office.client("ansv")
    r = _search(ansv, number, reference=reference)
    assert r.status_code == 400 and message in r.text.lower() and 'id="dsr-error"' in r.text
    assert _no_number_in(r.text)
    (rec,) = audit.entries(office.ctx, action="dsr.search")
    assert rec["result"] == "failed" and rec["data"] is None


def test_erasure_needs_the_confirmation(office):
    rid = office.recording("anna", [f"Nummer {PNR}."])
    ansv = office.client("ansv")
    page = _search(ansv, PNR)
    r = ansv.post("/subject-requests/erase", data={"csrf_token": csrf_from(page.text), "number": PNR,
                                                   "reference": "SN-9"})
    assert r.status_code == 400 and "Bekräfta" in r.text
    with closing(office.ctx.connect()) as conn:
        assert conn.execute("SELECT count(*) FROM recordings WHERE id = ?", (rid,)).fetchone()[0] == 1


def test_summary_placeholders_count_as_the_number(office):
    """A summary shows "[PNR 1]" put back to the real number: it holds the number as the caseworker reads it."""
    rid = office.recording("anna", ["Samtalet handlar om skolan."])
    with closing(office.ctx.connect()) as conn, transaction(conn):
        conn.execute("INSERT INTO pii_entities (recording_id, kind, value, match_key, number, source, status, "
                     "created_at) VALUES (?, 'pnr', ?, '8503121231', 1, 'manual', 'confirmed', 0)", (rid, PNR))
        conn.execute("INSERT INTO summaries (recording_id, template_key, template_name, status, content, created_at) "
                     "VALUES (?, 'bbic', 'BBIC', 'done', ?, 0)",
                     (rid, json.dumps({"sections": [{"heading": "Hälsa", "statements": [
                         {"text": "Barnet [PNR 1] mår bra.", "citations": [1]}]}]})))
    with closing(office.ctx.connect()) as conn:
        parts = {h.part for h in identifiers.lookup(office.ctx, conn, "8503121231") if h.recording_id == rid}
    assert parts == {"summary", "history"}  # the summary, and the pseudonymization list that maps it
