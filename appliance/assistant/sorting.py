"""Guided drafting: transcript lines sorted under a template's headings by their words, then written as statements by
the model, one line at a time.

Why: the embedded model (Qwen2.5-Coder 1.5B Instruct) writes usable Swedish about a line it is given, but it cannot
sort a conversation under twenty headings: asked for a draft it walks the headings in order and puts any line
under each, or copies the first lines of the transcript (bench/assistant_quality.py measured it). So the sorting is
done here, in the open, and the model only does what it can: say in one journal sentence what a line says.

* Units: every line that says something (content words, not a question on its own) is a unit; an answer is read with
  the question before it ("Dåligt." after "Hur sover Leo?"), and cites it too when it is short.
* Sorting: a unit goes under the heading whose vocabulary (`Template.words`: the heading's own words plus the
  built-in templates' word lists, compared by stem) it shares most words with, the answer's words counting double
  the question's; a unit that shares none goes nowhere. At most `assistant.max_statements_per_heading` units per
  heading (the advice template's one heading: 6) and `assistant.max_statements` in all (each heading's best first),
  so a long meeting stays a draft, not a transcript, and is written in the time a short one takes. Under a heading
  for what is agreed at the end (`Template.late_headings`: the advice, "Planering och uppföljning") a later line
  ranks higher: "ska" and "nästa" are said all through a meeting, the agreements at its end.
* Writing: the model rewrites the chosen units as short third-person statements (the advice template: addressed
  to the client as "du"), a few per request, as JSON whose keys are the units' line numbers (the grammar makes it
  write one statement per unit, in order, and nothing else). A sentence the grounding checker does not find in its
  lines (the model mixed two units up, or added something), or that restates the question instead of the answer, is
  replaced by the line itself, quoted with its speaker: a quote is worth less than a good sentence but never says
  what nobody said.

`assistant.drafting = "model"` keeps the model's own sorting (appliance/assistant/summarize.py) for a model that
can do it (a 7-12B instruct model on a real box).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.assistant import grounding, prompts
from appliance.assistant.templates import Template
from appliance.assistant.transcript import NumberedSegment
from appliance.config import AssistantConfig
from appliance.ports import ChatModel
from appliance.transcripts.search import stem

LATE_WEIGHT = 3.0      # what the last line of a meeting adds to its score under a late heading (a word hit: 2)
BATCH = 6              # units per writing request: with more, the model starts to mix them up
TOKENS_PER_UNIT = 70   # the longest statement the schema allows, in tokens, with its key
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Unit:
    number: int                    # the line that says it
    cites: tuple[int, ...]         # the line, and the question before it when the answer alone says little
    text: str                      # what the model reads: "(Handläggare frågar: …) Mamma: …"
    heading: str
    score: float
    quote: str = ""                # the statement when the model's sentence does not hold up: the line itself


def _stems(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if len(w) >= 2]


def _vocabulary(template: Template) -> dict[str, set[str]]:
    """Heading → stems of its words (its name's content words and its word list)."""
    out = {}
    for h in template.headings:
        words = set(grounding.content_words(h.split(": ", 1)[-1])) | set(template.word_list(h))
        out[h] = {stem(w.lower()) for w in words if w}
    return out


def _hits(stems: Sequence[str], vocabulary: set[str]) -> int:
    # A vocabulary stem matches a word that starts with it ("skol" ~ "skolan", "skolkurator"); short stems (three
    # letters: "ont", "bor") only whole.
    return sum(1 for s in stems if any(s == v or (len(v) >= 4 and s.startswith(v)) for v in vocabulary))


def _is_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def units(segments: Sequence[NumberedSegment], template: Template, per_heading: int,
          total: int = 1 << 30) -> list[Unit]:
    """The lines worth a statement, each under its heading, in transcript order: at most `per_heading` under a
    heading and `total` in all (each heading's best first, so a long meeting's draft covers every heading it can)."""
    vocab = _vocabulary(template)
    found: list[Unit] = []
    previous: NumberedSegment | None = None
    for s in segments:
        question = previous if previous is not None and _is_question(previous.text) and \
            previous.speaker != s.speaker else None
        previous = s
        if _is_question(s.text) and not s.text.count("."):
            continue  # a question alone states nothing; its answer carries it
        own = _stems(s.text)
        asked = _stems(question.text) if question is not None else []
        scores = {h: 2 * _hits(own, v) + _hits(asked, v) for h, v in vocab.items()}
        heading = max(template.headings, key=lambda h: scores[h])  # ties: the first in the template's order
        if scores[heading] < 2:
            continue  # shares nothing with any heading (or only through the question)
        short = len(grounding.content_words(s.text)) < 3
        cites = (question.number, s.number) if question is not None and short else (s.number,)
        who = f"{s.speaker}: " if s.speaker else ""
        asked_text = f"({question.speaker or 'Fråga'} frågar: {question.text}) " if question is not None else ""
        quote = f"{who}{s.text}"
        if len(cites) > 1:  # a short answer means little without its question
            quote = f"{question.speaker + ': ' if question.speaker else ''}{question.text} {quote}"
        found.append(Unit(s.number, cites, f"{asked_text}{who}{s.text}", heading, scores[heading], quote))
    per_heading = template.max_per_heading or per_heading
    last = max((s.number for s in segments), default=1)

    def rank(u: Unit) -> float:  # agreements are made at the end: there a later line ranks higher
        return u.score + (LATE_WEIGHT * u.number / last if u.heading in template.late_headings else 0.0)

    ranked: list[tuple[int, float, int, Unit]] = []
    for h in template.headings:
        under = sorted((u for u in found if u.heading == h), key=lambda u: (-rank(u), u.number))[:per_heading]
        ranked += [(rank, -u.score, u.number, u) for rank, u in enumerate(under)]
    kept = [u for *_, u in sorted(ranked, key=lambda r: r[:3])[:total]]
    return sorted(kept, key=lambda u: u.number)


def _instruction(template: Template) -> str:
    if len(template.headings) == 1:
        style = ("Skriv varje rad som ett kort råd eller en överenskommelse riktad till klienten: tilltala klienten "
                 "med du, korta meningar och enkla ord.")
    else:
        style = ("Skriv om varje rad till en kort mening i tredje person för en journalanteckning, t.ex. "
                 "\"Mamma berättar att ...\".")
    return (f"{style} Skriv bara det som sägs på raden (frågan inom parentes visar vad svaret gäller). Hitta inte "
            "på något.")


_ASKS = re.compile(r"\bfrågar\b", re.IGNORECASE)


def restates_question(statement: str) -> bool:
    """Whether the model wrote the question the unit answers instead of the answer ("Handläggare frågar: Vilka bor
    i hushållet?"): it read the question in parentheses as the line. Such a sentence says nothing about the client,
    and its cited lines support it, so the checker lets it through; the line itself is quoted instead."""
    return statement.rstrip().endswith("?") or bool(_ASKS.search(statement))


def write(client: ChatModel, template: Template, chosen: Sequence[Unit], cfg: AssistantConfig,
          on_batch: Callable[[int, int], None] | None = None) -> dict[int, str]:
    """The model's statement for each unit (line number → text), batch by batch."""
    out: dict[int, str] = {}
    batches = [chosen[i:i + BATCH] for i in range(0, len(chosen), BATCH)]
    for i, batch in enumerate(batches):
        body = "\n".join(f"[{u.number}] {prompts.defuse(u.text)}" for u in batch)
        keys = [str(u.number) for u in batch]
        schema = {"type": "object", "additionalProperties": False, "required": keys,
                  "properties": {k: {"type": "string", "minLength": 3, "maxLength": cfg.statement_max_chars}
                                 for k in keys}}
        user = (f"{prompts.TASK_HEAD} {_instruction(template)}\n\n{prompts.BEGIN}\n{body}\n{prompts.END}\n\n"
                "Svara med JSON: radens nummer och meningen.")
        messages = [prompts.system_message(), {"role": "user", "content": user}]
        reply = client.complete(messages, max_tokens=TOKENS_PER_UNIT * len(batch) + 16,
                                response_format={"type": "json_object", "schema": schema})
        try:
            data = json.loads(reply.text, strict=False)
        except ValueError:
            data = {}  # cut off: the units it finished are in what a tolerant read finds below
            for m in re.finditer(r'"(\d+)"\s*:\s*"((?:[^"\\]|\\.)*)"', reply.text):
                data[m.group(1)] = json.loads(f'"{m.group(2)}"', strict=False)
        for u in batch:
            text = " ".join(str(data.get(str(u.number), "")).split())
            clean, _ = grounding.parse_citations(text)
            if clean and not restates_question(clean):
                out[u.number] = clean
        if on_batch is not None:
            on_batch(i + 1, len(batches))
    return out
