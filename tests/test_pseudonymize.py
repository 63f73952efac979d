"""Pseudonymization: detection of Swedish personal data (checksums, formats, names), stable placeholders per
recording, the caseworker's confirm/remove/add, the pseudonymized text the assistant and exports get, audit
without values, access (viewer read-only, others 404) and the purge taking the mapping with the recording."""

from __future__ import annotations

import pytest

from appliance.platform import audit
from appliance.recordings import folders, recordings
from appliance.transcripts import pseudonymize
from appliance.users.accounts import get_user
from tests.conftest import make_tone
from tests.web_fixtures import csrf_from, sign_in


def kinds(text: str) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in pseudonymize.detect(text)]


# --- detection ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("number", ["811218-9876", "8112189876", "19811218-9876", "198112189876", "811218+9876",
                                    "850709-9805", "121212-1212", "20121212-1212"])
def test_valid_personnummer_is_found(number):
    assert kinds(f"Numret är {number}, sa hon.") == [("pnr", number)]


@pytest.mark.parametrize("number", ["811318-9876", "810230-1234", "19811332-9870"])
def test_a_number_with_an_impossible_date_is_not_a_personnummer(number):
    assert pseudonymize.identity_number_kind(number) is None
    assert kinds(f"Numret är {number}.") == []


@pytest.mark.parametrize("number", ["19850315-1234", "811218-9877", "811218-9866", "19811218-9870", "8503151234",
                                    "811278-9874"])
def test_finding8_wrong_check_digit_personnummer_is_pseudonymized(number):
    """A date-valid number with a wrong check digit (said or heard wrong) is a possible personnummer."""
    assert pseudonymize.identity_number_kind(number) == "pnr_possible"
    assert kinds(f"Numret är {number}, sa hon.") == [("pnr_possible", number)]
    assert kinds("Ring 0701234567.") == [("phone", "0701234567")]  # a phone number stays a phone number


def test_samordningsnummer_has_the_day_plus_60():
    assert pseudonymize.identity_number_kind("811278-9873") == "samordningsnummer"  # 18 December + 60
    assert kinds("Hans samordningsnummer är 811278-9873.") == [("samordningsnummer", "811278-9873")]
    assert pseudonymize.identity_number_kind("811278-9874") == "pnr_possible"  # wrong check digit (issue 18, 8)
    assert pseudonymize.identity_number_kind("811292-9874") is None  # day 32 + 60 is no date


@pytest.mark.parametrize("phone", ["070-123 45 67", "0701234567", "+46 70 123 45 67", "+46701234567", "08-123 456 78",
                                   "0470-12 34 56", "0046 8 123 456 78"])
def test_phone_numbers(phone):
    assert kinds(f"Ring {phone} i morgon.") == [("phone", phone)]


@pytest.mark.parametrize("text", ["Det kostar 1200 kronor.", "Hon är 19 år.", "Ring 112.", "Mötet är 2024-05-12.",
                                  "Vi har 20 000 kr.", "Klockan 14.30 den 12 maj."])
def test_ordinary_numbers_are_not_personal_data(text):
    assert kinds(text) == []


def test_email_address_and_postcode():
    assert kinds("Mejla anna.karlsson@example.se eller skriv till 352 30 Växjö.") == [
        ("email", "anna.karlsson@example.se"), ("postcode", "352 30 Växjö")]


@pytest.mark.parametrize("text, address", [
    ("Vi bor på Storgatan 12 B nu.", "Storgatan 12 B"),
    ("Adressen är Lilla Nygatan 5a.", "Lilla Nygatan 5a"),
    ("Hon bor på norra vägen 3 i Alvesta.", "norra vägen 3"),
    ("Han flyttade till Björkstigen 104.", "Björkstigen 104"),
])
def test_street_addresses(text, address):
    assert kinds(text) == [("address", address)]


def test_names_from_the_name_list_surnames_and_cues():
    assert kinds("Hennes mamma Eva Lindström ringde.") == [("person", "Eva Lindström")]
    assert kinds("Det var Lisa och Ahmed som ringde.") == [("person", "Lisa"), ("person", "Ahmed")]
    assert kinds("Jag heter Mirza.") == [("person", "Mirza")]  # not in the list: the cue says it is a name
    assert kinds("Vi pratade med Karlsson.") == [("person", "Karlsson")]


def test_genitive_names_are_the_same_person():
    assert [(s.kind, s.key) for s in pseudonymize.detect("Lisas mamma och Karlssons bil.")] == [
        ("person", "lisa"), ("person", "karlsson")]


def test_words_that_are_also_names_count_only_inside_a_sentence():
    assert kinds("Dag efter dag. Per sa inget.") == []
    assert kinds("Hon kom med Per i går.") == [("person", "Per")]
    assert kinds("Mamma och pappa kom. Barnen också.") == []


# --- per recording -----------------------------------------------------------------------------------------

LINES = [
    "Jag heter Mirza och min dotter heter Lisa.",
    "Mitt personnummer är 811218-9876 och telefon 070-123 45 67.",
    "Lisa bor på Storgatan 12 B. Per hämtar henne.",
    "Mejla mirza@example.se. Hon kom med Per i går.",
]


@pytest.fixture
def rec_id(db, users, ctx, tmp_path):
    wav = tmp_path / "t.wav"
    make_tone(wav, 0.3)
    anna = get_user(db, users["anna"])
    rid = recordings.create_from_upload(ctx, db, anna, title="Hembesök", filename="t.wav", data=wav.read_bytes())
    db.execute("UPDATE recordings SET status = 'ready' WHERE id = ?", (rid,))
    for idx, text in enumerate(LINES):
        db.execute('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                   (rid, idx, idx * 5.0, idx * 5.0 + 4, text))
    return rid


def test_placeholders_are_stable_and_cover_every_occurrence(db, rec_id):
    texts = [s.text for s in pseudonymize.segments_for_model(db, rec_id)]
    assert texts == [
        "Jag heter [PERSON 1] och min dotter heter [PERSON 2].",
        "Mitt personnummer är [PNR 1] och telefon [TELEFON 1].",
        "[PERSON 2] bor på [ADRESS 1]. [PERSON 3] hämtar henne.",  # "Per" at a sentence start: known from line 4
        "Mejla [EPOST 1]. Hon kom med [PERSON 3] i går.",
    ]
    joined = " ".join(texts)
    for value in ("Mirza", "Lisa", "811218", "070", "Storgatan", "mirza@", "Per "):
        assert value not in joined
    # The numbering does not move when the transcript changes: a new name gets the next number.
    db.execute("UPDATE segments SET text = 'Eva Lindström ringde till Lisa.' WHERE recording_id = ? AND idx = 0",
               (rec_id,))
    texts = [s.text for s in pseudonymize.segments_for_model(db, rec_id)]
    assert texts[0] == "[PERSON 4] ringde till [PERSON 2]."
    assert pseudonymize.reidentify(db, rec_id, "[PERSON 2] och [PNR 1] och [OKÄND 9]") == \
        "Lisa och 811218-9876 och [OKÄND 9]"


def test_rejected_values_stay_and_manual_additions_are_hidden_everywhere(db, users, rec_id, ctx):
    anna = get_user(db, users["anna"])
    entities = {e.value: e for e in pseudonymize.sync(db, rec_id)}
    pseudonymize.decide(db, anna, rec_id, entities["Per"].id, "rejected")
    pseudonymize.decide(db, anna, rec_id, entities["Lisa"].id, "confirmed")
    pseudonymize.add_manual(db, anna, rec_id, "henne", "person")
    texts = [s.text for s in pseudonymize.segments_for_model(db, rec_id)]
    assert texts[2] == "[PERSON 2] bor på [ADRESS 1]. Per hämtar [PERSON 4]."
    assert texts[3].endswith("Hon kom med Per i går.")
    with pytest.raises(Exception, match="Skriv ordet"):
        pseudonymize.add_manual(db, anna, rec_id, "   ", "person")
    with pytest.raises(Exception, match="sort"):
        pseudonymize.add_manual(db, anna, rec_id, "x", "shoe-size")
    log = (ctx.cfg.paths.state_dir / "audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert "pii.decide" in log and "pii.add" in log
    for value in ("Per", "Lisa", "henne"):
        assert f'"{value}' not in log and f" {value}" not in log


def test_revealing_is_a_choice_per_request_and_audited(db, users, rec_id, ctx):
    anna = get_user(db, users["anna"])
    texts = [s.text for s in pseudonymize.segments_for_model(db, rec_id, reveal=True, user=anna)]
    assert texts == LINES
    assert audit.entries(ctx, action="pii.reveal", target=f"recording:{rec_id}")


def test_the_purge_takes_the_mapping_with_the_recording(db, users, rec_id, ctx):
    anna = get_user(db, users["anna"])
    pseudonymize.sync(db, rec_id)
    assert db.execute("SELECT count(*) FROM pii_entities").fetchone()[0] > 0
    recordings.delete_recording(ctx, db, anna, rec_id)
    assert db.execute("SELECT count(*) FROM pii_entities").fetchone()[0] == 0


# --- web -----------------------------------------------------------------------------------------------------

def test_personal_data_tab_highlights_and_editor_confirms_removes_and_adds(anna, db, rec_id):
    page = anna.get(f"/recordings/{rec_id}/personal-data")
    assert page.status_code == 200
    assert '<mark class="pii pii-pending" title="[PNR 1] (Personnummer)">811218-9876' in page.text
    entity = next(e for e in pseudonymize.sync(db, rec_id) if e.value == "Per")
    token = csrf_from(page.text)
    r = anna.post(f"/recordings/{rec_id}/personal-data/decide",
                  data={"csrf_token": token, "entity": entity.id, "status": "rejected"}, follow_redirects=True)
    assert "visas som den är" in r.text and "Borttagen – visas" in r.text
    r = anna.post(f"/recordings/{rec_id}/personal-data/add",
                  data={"csrf_token": token, "value": "dotter", "kind": "person"}, follow_redirects=True)
    assert "döljs överallt" in r.text
    export = anna.get(f"/recordings/{rec_id}/export.txt")
    assert export.status_code == 200 and export.headers["Cache-Control"] == "no-store"
    assert "[00:00] Jag heter [PERSON 1] och min [PERSON 4] heter [PERSON 2]." in export.text
    assert "Per" in export.text and "811218" not in export.text
    revealed = anna.get(f"/recordings/{rec_id}/export.txt?personal=1")
    assert "811218-9876" in revealed.text and "Mirza" in revealed.text
    bad = anna.post(f"/recordings/{rec_id}/personal-data/decide",
                    data={"csrf_token": token, "entity": "nonsense", "status": "confirmed"}, follow_redirects=True)
    assert bad.status_code == 200 and "finns inte längre" in bad.text


def test_viewer_sees_the_tab_but_cannot_change_it_and_others_get_404(app, db, users, rec_id, client, clock,
                                                                     totp_secrets):
    anna = get_user(db, users["anna"])
    entity = pseudonymize.sync(db, rec_id)[0]
    folders.share(db, anna, folders.ensure_default(db, anna), users["bo"], "viewer")
    sign_in(client, clock, "bo", totp_secrets)
    page = client.get(f"/recordings/{rec_id}/personal-data")
    assert page.status_code == 200 and "811218-9876" in page.text and "personal-data/decide" not in page.text
    token = csrf_from(client.get("/upload").text)
    assert client.post(f"/recordings/{rec_id}/personal-data/decide",
                       data={"csrf_token": token, "entity": entity.id, "status": "rejected"}).status_code == 404
    assert client.post(f"/recordings/{rec_id}/personal-data/add",
                       data={"csrf_token": token, "value": "x"}).status_code == 404
    assert db.execute("SELECT count(*) FROM pii_entities WHERE status != 'pending'").fetchone()[0] == 0
    folders.unshare(db, anna, folders.ensure_default(db, anna), users["bo"])
    assert client.get(f"/recordings/{rec_id}/personal-data").status_code == 404
    assert client.get(f"/recordings/{rec_id}/export.txt").status_code == 404


def test_text_from_outside_the_transcript_is_covered_too(db, rec_id):
    """A question or a pasted note: parts of known full names map to that person; a new identifier gets an
    unnumbered placeholder of its kind rather than passing through."""
    db.execute("UPDATE segments SET text = 'Jag heter Mirza Hodžić.' WHERE recording_id = ? AND idx = 0", (rec_id,))
    entities = pseudonymize.sync(db, rec_id)
    assert pseudonymize.pseudonymize_text("Vad sa Mirza om Hodžić?", entities) == \
        "Vad sa [PERSON 1] om [PERSON 1]?"
    assert pseudonymize.pseudonymize_text("Ring Eva Berg på 0709876543 om Mirzas dotter.", entities) == \
        "Ring [PERSON] på [TELEFON] om [PERSON 1] dotter."


def test_speaker_names_that_are_names_reach_the_model_as_placeholders(db, rec_id):
    from appliance.assistant.transcript import numbered_segments

    db.execute("UPDATE segments SET speaker = CASE WHEN idx % 2 = 0 THEN 1 ELSE 2 END WHERE recording_id = ?",
               (rec_id,))
    db.executemany("INSERT INTO recording_speakers (recording_id, speaker, name) VALUES (?, ?, ?)",
                   [(rec_id, 1, "Eva Lindström"), (rec_id, 2, "Handläggare")])
    lines = [s.line() for s in numbered_segments(db, rec_id)]
    speakers = {e.value: e.placeholder for e in pseudonymize.sync(db, rec_id) if e.kind == "person"}
    assert lines[0].startswith(f"[1] {speakers['Eva Lindström']}: Jag heter [PERSON 1]")
    assert lines[1].startswith("[2] Handläggare: Mitt personnummer är [PNR 1]")
    assert "Lindström" not in " ".join(lines)


def test_finding8_possible_personnummer_in_transcript_export_question_and_notes(db, rec_id, anna):
    from appliance.assistant.case_drafts import pseudonymize_notes

    db.execute("UPDATE segments SET text = 'Mitt personnummer är 19850315-1234.' WHERE recording_id = ? AND idx = 0",
               (rec_id,))
    texts = [s.text for s in pseudonymize.segments_for_model(db, rec_id)]
    assert texts[0] == "Mitt personnummer är [MÖJLIGT-PNR 1]."
    assert "1234" not in " ".join(texts)
    export = anna.get(f"/recordings/{rec_id}/export.txt").text
    assert "[MÖJLIGT-PNR 1]" in export and "19850315" not in export
    page = anna.get(f"/recordings/{rec_id}/personal-data").text
    assert "Möjligt personnummer" in page
    entities = pseudonymize.sync(db, rec_id)
    assert pseudonymize.pseudonymize_text("Stämmer 19850315-1234 och 19900101-1111?", entities) == \
        "Stämmer [MÖJLIGT-PNR 1] och [MÖJLIGT-PNR]?"
    notes, values = pseudonymize_notes(["Pappan uppgav 850315-1234 vid besöket."])
    assert notes == ["Pappan uppgav [MÖJLIGT-PNR J1] vid besöket."] and values == {"[MÖJLIGT-PNR J1]": "850315-1234"}
    assert pseudonymize.reidentify(db, rec_id, "Numret [MÖJLIGT-PNR 1].") == "Numret 19850315-1234."
