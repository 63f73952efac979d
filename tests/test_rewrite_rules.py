"""The preset rewrites' rules, without a model: the "du" rewrite (appliance/assistant/du_form.py) and the
plain-language rewrite's guard (appliance/assistant/plain_language.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.assistant import du_form, plain_language

BENCH = Path(__file__).resolve().parent.parent / "bench" / "data" / "assistant"


@pytest.mark.parametrize("source, expected", [
    # the client's name: subject → du, after a preposition or as an object → dig, genitive → din/ditt/dina
    ("Sara berättar att Leo har varit hemma från skolan.", "Du berättar att Leo har varit hemma från skolan."),
    ("Handläggaren bokar en tid åt Sara.", "Handläggaren bokar en tid åt dig."),
    ("Handläggaren ger Sara en tid hos sin läkare.", "Handläggaren ger dig en tid hos sin läkare."),
    ("Nu bor Sara hos sin mormor.", "Nu bor du hos din mormor."),
    ("Saras son har ont i magen.", "Din son har ont i magen."),
    ("Saras barn går i skolan och Saras föräldrar hjälper till.",
     "Ditt barn går i skolan och dina föräldrar hjälper till."),
    ("Mamma säger att Sara själv har ringt.", "Mamma säger att du själv har ringt."),
    # her pronouns, only where they stand for her
    ("Sara och hennes barn bor i en tvåa. Hon vill ha hjälp med sina skulder.",
     "Du och ditt barn bor i en tvåa. Du vill ha hjälp med dina skulder."),
    ("Sara berättar att Daniel knuffade henne så att hon slog huvudet.",
     "Du berättar att Daniel knuffade dig så att du slog huvudet."),
    ("Sara berättar att Leo vill träffa sin pappa och att han saknar honom.",
     "Du berättar att Leo vill träffa sin pappa och att han saknar honom."),
    ("Sara berättar att Nora lägger sig halv åtta.", "Du berättar att Nora lägger sig halv åtta."),
    ("Sara ska höra av sig till skolan.", "Du ska höra av dig till skolan."),
    ("Klienten berättar att hon inte har råd med hyran.", "Du berättar att du inte har råd med hyran."),
    ("Nästa möte är den tolfte mars.", "Nästa möte är den tolfte mars."),
])
def test_du_form_rules(source, expected):
    assert du_form.rewrite(source, "sara") == expected


def test_du_form_finds_the_client_and_changes_nothing_else_in_the_bench_answers():
    for path in sorted(BENCH.glob("*.json")):
        rw = json.loads(path.read_text(encoding="utf-8")).get("rewrite")
        if not rw:
            continue
        sources = [text for text, _ in rw["source"]]
        assert du_form.find_client(sources) == rw["client"].casefold(), path.name
        rewritten = du_form.rewrite_all(sources)
        text = " ".join(rewritten)
        assert rw["client"] not in text and " du " in f" {text.casefold()} ", path.name
        for before, after in zip(sources, rewritten, strict=True):
            # only the client's words change: every other word of the source is still there, in order
            kept = [w for w in before.split() if w.strip(".,").casefold() not in
                    {rw["client"].casefold(), "han", "hon", "henne", "honom", "hans", "hennes", "sig", "sin"}]
            assert [w for w in after.split() if w in kept] == kept, (before, after)


def test_du_form_without_a_named_person_leaves_it_to_the_model():
    assert du_form.rewrite_all(["Nästa möte är på onsdag.", "Handläggaren skickar ett brev."]) is None


@pytest.mark.parametrize("source, rewrite", [
    ("Peter har inte druckit alkohol på sex veckor.", "Peter har inte druckit alkohol i sex veckor."),
    ("Peter går på AA-möten två gånger i veckan.", "Peter besöker AA-möten två gånger i veckan."),
    ("[PERSON 2] ska lämna ett läkarintyg senast den femte maj.",
     "[PERSON 2] ska lämna ett intyg från läkaren senast den femte maj."),
])
def test_plain_language_guard_accepts_plainer_wording_that_keeps_the_facts(source, rewrite):
    assert plain_language.accept(source, f"  {rewrite}\n") == rewrite


@pytest.mark.parametrize("source, rewrite, why", [
    ("Sara berättar att Leo har varit hemma två dagar i veckan sedan jul.",
     "Leo har varit hemma i veckan sedan jul.", "a number and who said it lost"),
    ("Maria ska skicka kontoutdrag senast på fredag.", "Maria ska skicka kontoutdrag den 15 december.",
     "a date made up, the weekday lost"),
    ("Nästa möte är den nittonde maj.", "Nästa möte är den 29 maj.", "another date"),
    ("Lina är rädd och har svårt att sova.", "Lina är rädd och har svårt att slöja.", "a word that is not plain"),
    ("Nästa möte är på onsdag nästa vecka.", "Nästa møte kommer att heldas på onsdag nästa vecka.",
     "not Swedish words"),
    ("Lina berättar att Daniel knuffade henne.", "Daniel har snabbt snabbt snabbt snabbt.", "a loop"),
    ("Peter har inte druckit alkohol.", "Peter har druckit alkohol.", "the negation lost"),
    ("Lina fick numret till kvinnojouren.", "Lina fick ett nummer.", "a content word lost"),
    ("Sara ska boka en tid på vårdcentralen för Leos mage.", "Sara ska boka en tid på leos mage på vårdcentralen.",
     "a name's spelling changed"),
    ("[PERSON 2] ska inkomma med ett läkarintyg.", "[PERSON 2] ska lämna ett intyg från läkaren.",
     "a rare word lost, even jargon: as often the fact itself"),
    ("Sara arbetar natt.", "", "nothing"),
])
def test_plain_language_guard_rejects_lost_or_invented_facts(source, rewrite, why):
    assert plain_language.accept(source, rewrite) is None, why


def test_plain_language_messages_end_with_the_statement():
    messages = plain_language.messages("[PERSON 1] har beviljats bistånd.")
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user",
                                                               "content": "Mening: [PERSON 1] har beviljats bistånd."}
    assert [m["role"] for m in messages[1:-1]] == ["user", "assistant"] * len(plain_language.EXAMPLES)
