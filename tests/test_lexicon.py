"""The domain lexicon: near-misses Whisper typically writes for terms of the shipped list, abbreviations,
multiword terms, no false positives on ordinary words, office terms (audited by id only), the prompt."""

from __future__ import annotations

import pytest

from appliance.errors import ApplianceError, NotFound
from appliance.platform import audit
from appliance.transcripts import lexicon
from appliance.users.accounts import get_user


@pytest.fixture(scope="module")
def lex() -> lexicon.Lexicon:
    return lexicon.load()


def test_shipped_list_is_packaged_with_abbreviations_marked():
    terms = {t.text: t for t in lexicon.shipped_terms()}
    assert len(terms) >= 140
    assert terms["LVU"].abbreviation and terms["BBIC"].abbreviation and terms["SoL"].abbreviation
    assert not terms["orosanmälan"].abbreviation


@pytest.mark.parametrize(("text", "expected"), [
    ("oros anmälan", [("oros anmälan", "orosanmälan")]),
    ("Det blev en orosanmälning.", [("orosanmälning", "orosanmälan")]),
    ("Vi följer BBIK i utredningen", [("BBIK", "BBIC")]),
    ("en barnavårds utredning", [("barnavårds utredning", "barnavårdsutredning")]),
    ("en barnavård utredning", [("barnavård utredning", "barnavårdsutredning")]),
    ("vi gör en skydds bedömning", [("skydds bedömning", "skyddsbedömning")]),
    ("förhandsbedömmning", [("förhandsbedömmning", "förhandsbedömning")]),
    ("ett omedelbar omhändertagande", [("omedelbar omhändertagande", "omedelbart omhändertagande")]),
    ("placerad i ett familje hem", [("familje hem", "familjehem")]),
    ("enligt L V U", [("L V U", "LVU")]),
    ("enligt bbic", [("bbic", "BBIC")]),
    ("Försäkrings kassan", [("Försäkrings kassan", "Försäkringskassan")]),
    ("Vi gör en oros anmälan enligt LVU och BBIK.", [("oros anmälan", "orosanmälan"), ("BBIK", "BBIC")]),
])
def test_typical_whisper_misspellings_find_the_term(lex, text, expected):
    assert lex.suggest(text) == expected


@pytest.mark.parametrize("text", [
    "Hej, jag heter Anna och jag arbetar som socialsekreterare.",
    "Vi ska prata om barnets skola och familjens ekonomi.",
    "Mamma berättar att pojken har svårt att sova och att han ofta är hemma från skolan.",
    "Vi bestämmer att vi ses igen om två veckor och att skolan ska kontaktas. Familjen får information.",
    "kontaktas familjen",
    "Utredningen och utredning om utredningstid.",               # inflections and compounds of terms
    "familjehemmet, vårdnadshavarna, orosanmälningar, kontaktpersonen, umgängesbegränsningen",
    "Vi pratade om planering och bestånd.",                      # real words one letter from a term
    "sol jo mi fl fb asi kbt lvu",                               # short abbreviations in lower case
    "Orosanmälan enligt LVU och BBIC, 2 § LVU, barnets bästa.",  # terms as written
    "LVO",                                                       # as close to LVU as to LVM: no guess
])
def test_no_false_positives_on_ordinary_words_and_correct_terms(lex, text):
    assert lex.suggest(text) == []


def test_short_terms_only_where_whisper_was_unsure(lex):
    assert lex.suggest("planering") == []
    assert lex.suggest("planering", low_confidence=[0]) == [("planering", "placering")]


def test_office_terms_are_added_removed_and_audited_without_the_term(db, users, ctx):
    anna = get_user(db, users["anna"])
    it = get_user(db, users["it"])
    tid = lexicon.add_term(db, anna, "  Solrosens   familjehem ")
    assert [t.text for t in lexicon.office_terms(db)] == ["Solrosens familjehem"]
    assert lexicon.load(db).suggest("i Solrosens familje hem") == [("Solrosens familje hem",
                                                                     "Solrosens familjehem")]
    with pytest.raises(ApplianceError):
        lexicon.add_term(db, anna, "solrosens FAMILJEHEM")  # already there (case-insensitive)
    with pytest.raises(ApplianceError):
        lexicon.add_term(db, anna, "orosanmälan")  # shipped
    with pytest.raises(NotFound):
        lexicon.add_term(db, it, "Något")  # IT admins have no say over the office's vocabulary
    lexicon.remove_term(db, anna, tid)
    assert lexicon.office_terms(db) == []
    with pytest.raises(NotFound):
        lexicon.remove_term(db, anna, tid)
    recs = audit.entries(ctx, action=["lexicon.term_add", "lexicon.term_remove"])
    assert [(r["action"], r["target"]) for r in recs] == [("lexicon.term_add", f"term:{tid}"),
                                                          ("lexicon.term_remove", f"term:{tid}")]
    assert "olros" not in (ctx.cfg.paths.state_dir / "audit" / "audit.jsonl").read_text().lower()


def test_lexicon_page_for_content_users_only(app, anna, client, clock, totp_secrets):
    from tests.web_fixtures import csrf_from, sign_in

    page = anna.get("/lexicon")
    assert page.status_code == 200 and "orosanmälan" in page.text
    r = anna.post("/lexicon/add", data={"csrf_token": csrf_from(page.text), "term": "Kvarnbackens skola"})
    assert r.status_code == 303
    assert "Kvarnbackens skola" in anna.get("/lexicon").text
    sign_in(client, clock, "it", totp_secrets)
    assert client.get("/lexicon").status_code == 404


def test_initial_prompt_setting(db, users):
    anna = get_user(db, users["anna"])
    lexicon.add_term(db, anna, "Kvarnbackens skola")
    prompt = lexicon.prompt_for("lexicon", db)
    assert prompt.startswith(lexicon.PROMPT_PREFIX) and "Kvarnbackens skola" in prompt and "LVU" in prompt
    assert len(prompt) <= lexicon.PROMPT_MAX_CHARS
    assert lexicon.prompt_for("none", db) is None
    assert lexicon.prompt_for("Samtal om LVU.", db) == "Samtal om LVU."
