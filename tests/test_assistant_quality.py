"""The assistant benchmark's data and scoring (bench/assistant_quality.py), without a model: the key is consistent
with its transcripts, and the scores measure what they claim (a perfect draft scores full marks, an invented or
misplaced statement is counted as such)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from appliance.assistant import grounding
from appliance.assistant.templates import BUILTIN
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def aq():
    spec = importlib.util.spec_from_file_location("assistant_quality", ROOT / "bench" / "assistant_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["assistant_quality"] = module
    spec.loader.exec_module(module)
    return module


def _lines(conv: dict) -> dict[int, str]:
    return {ln["n"]: ln["text"] for ln in conv["lines"]}


def test_the_key_is_consistent_with_its_transcripts(aq):
    convs = aq.load_conversations()
    assert len(convs) >= 8
    assert {t for c in convs for t in c["templates"]} == {"bbic", "journal", "rad"}
    for conv in convs:
        lines = _lines(conv)
        assert list(lines) == list(range(1, len(lines) + 1))
        assert all(a["end"] <= b["start"] for a, b in zip(conv["lines"], conv["lines"][1:], strict=False))  # timed
        assert len({ln["speaker"] for ln in conv["lines"]}) >= 2
        full = " ".join(lines.values())
        for fact in conv["facts"]:
            # the fact's words are in the lines that say it, and in its own description
            assert aq.matches(fact["match"], " ".join(lines[n] for n in fact["lines"])), (conv["id"], fact["id"])
            assert aq.matches(fact["match"], fact["what"]), (conv["id"], fact["id"])
            for key, names in fact["headings"].items():
                assert key in conv["templates"], (conv["id"], fact["id"], key)
                assert len(aq.resolve_headings(BUILTIN[key], names)) == len(names), (conv["id"], fact["id"], names)
        for never in conv["must_not"]:
            assert not aq.matches(never["match"], full), (conv["id"], never["what"])
        for q in conv["questions"]:
            assert aq.matches(q["match"], " ".join(lines[n] for n in q["lines"])), (conv["id"], q["question"])
        if "rewrite" in conv:
            for (text, _cites), keep in zip(conv["rewrite"]["source"], conv["rewrite"]["keep"], strict=True):
                assert aq.matches(keep, text)
            assert conv["rewrite"]["client"] in full


def test_word_beginnings_and_compounds(aq):
    assert aq.matches([["sov", "sömn"]], "Leo sover dåligt")
    assert not aq.matches([["sov"]], "Han försov sig")          # short beginnings only at a word's start
    assert aq.matches([["kurator"]], "träffa skolkuratorn")      # six letters or more: inside a compound too
    assert aq.matches([["mamma"], ["hjälp"]], "Mamma får hjälp") and not aq.matches([["mamma"], ["hjälp"]], "Mamma")


def _perfect(aq, conv: dict, template) -> list[dict]:
    sections = {h: [] for h in template.headings}
    for fact in conv["facts"]:
        if template.key in fact["headings"]:
            heading = sorted(aq.resolve_headings(template, fact["headings"][template.key]))[0]
            sections[heading].append({"text": fact["what"], "citations": fact["lines"], "status": grounding.OK})
    return [{"heading": h, "statements": st} for h, st in sections.items()]


def test_a_perfect_draft_scores_full_marks_and_mistakes_are_counted(aq):
    conv = aq.load_conversations(["barn-mamma"])[0]
    bbic = BUILTIN["bbic"]
    score, _ = aq.score_draft(conv, bbic, _perfect(aq, conv, bbic))
    assert score.facts == score.found == score.placed > 10
    assert score.good_cites == score.cites and score.invented == 0

    sections = _perfect(aq, conv, bbic)
    health = next(s for s in sections if s["heading"] == "Barnets utveckling: Hälsa")
    housing = next(s for s in sections if s["heading"] == "Familj och miljö: Boende")
    moved = health["statements"].pop()                      # a fact under a wrong heading
    housing["statements"].append(moved)
    health["statements"].append({"text": "Leo har en lillebror som heter Max.", "citations": [12],
                                 "status": grounding.UNSUPPORTED})   # a sibling nobody mentioned
    health["statements"].append({"text": "Leo har ont i magen.", "citations": [25, 26],
                                 "status": grounding.UNSUPPORTED})   # true, but cites lines about football
    score, judged = aq.score_draft(conv, bbic, sections)
    assert score.found == score.facts and score.placed == score.facts - 1
    assert score.invented == 1 and score.good_cites == score.cites - 2
    invented = next(j for j in judged if "lillebror" in j.text)
    assert invented.invented and invented.flagged
    assert score.judged >= score.statements - 1 and score.agree == score.judged  # the checker agreed each time


def test_rewrite_and_suggestion_scores(aq):
    conv = aq.load_conversations(["barn-mamma"])[0]

    def stmts(*texts):
        return [{"text": t, "segments": [4], "status": grounding.OK} for t in texts]

    du = aq.score_rewrite(conv, "du", stmts("Du berättar att Leo har varit hemma från skolan.",
                                           "Du jobbar natt på ett äldreboende.", "Du ska boka en tid på vårdcentralen.",
                                           "Vi ses den tolfte mars."))
    assert du.found == du.facts == 4 and du.form_ok == 1
    named = aq.score_rewrite(conv, "du", stmts("Sara jobbar natt."))
    assert named.found == 1 and named.form_ok == 0  # facts dropped, and it still names the client
    assert aq.lix("Du ska ringa. Vi ses snart.") < aq.lix("Klienten förväntas kontakta vårdcentralen avseende "
                                                          "magbesvären under innevarande vecka.")
    copied = aq.score_rewrite(conv, "enkelt", stmts(*(text for text, _ in conv["rewrite"]["source"])))
    assert copied.found == copied.facts and copied.form_ok == 0  # the source copied back is no plain-language rewrite
    plain = aq.score_rewrite(conv, "enkelt", stmts("Leo har varit hemma från skolan.", "Sara jobbar natt.",
                                                   "Sara ska boka en tid hos doktorn.", "Vi ses den tolfte mars."))
    assert plain.form_ok == 1
    good = aq.score_suggestions(conv, ["Hur sover Leo?", "Vad sa mamma om pappan i Malmö?", "Hello world?"])
    assert good.form_n == 3 and good.form_ok == 2 and good.found == 1
