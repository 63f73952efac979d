"""A grounded summary of a transcript under a template: the one code path for the assistant worker and
`appliance summarize`.

Every request asks for JSON that a schema constrains (llama.cpp turns it into a grammar): a list of statements,
each `{"rubrik": one of the template's headings, "text": ..., "rader": [line numbers]}` whose line numbers can only
be numbers of lines in the request. The model writes a statement for each thing said that belongs under a heading
and skips headings the conversation does not touch. (An object with every heading as a key, each a list, let small
instruction-tuned models answer with nothing but empty lists: the schema allowed it and it is the shortest answer.)
So the headings are always the template's, whatever the transcript says, and every statement cites something.
Then the citations are tidied (`grounding.refine_citations`: small models like to cite a run of consecutive lines)
and the grounding checker flags statements whose cited lines do not support them.

Long transcripts (map-reduce): the transcript is cut into chunks of whole lines (`assistant.chunk_chars`); each chunk
is summarised (map); the partial summaries are merged heading by heading, statements that say the same thing kept
once with both citations. A heading that ends up with more statements than `assistant.max_statements_per_heading`
allows per chunk is condensed by the model in a reduce request that cites the partial statements by id, so the final
statements keep the transcript lines of the statements they merge (citations are carried mechanically, never
re-invented). Progress is reported after every statement the model finishes and every chunk and merge.

Context budget: a chunk's transcript lines take at most half of `llm.n_ctx`; when the longest answer the schema
allows would not fit the rest, the headings are asked for in parts, and an answer that comes back cut off is asked
for again in two halves. The template's task (its headings with what belongs under each: hundreds of tokens for
BBIC) comes before the transcript (prompts.template_messages), so a model server that reuses prompt prefixes reads
it once per draft, not once per chunk, and the llm unit's prompt cache keeps it across drafts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appliance.assistant import grounding, prompts, sorting
from appliance.assistant.llm_client import LlmContextExceeded, LlmError
from appliance.assistant.templates import Template
from appliance.assistant.transcript import NumberedSegment
from appliance.config import AssistantConfig
from appliance.errors import ApplianceError
from appliance.ports import ChatModel

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float], None]
MSG_EMPTY = "Transkriptet är tomt: det finns inget att sammanfatta."
MSG_UNFINISHED = ("Språkmodellen skrev inte klart sammanfattningen (den blev för lång). Försök igen, eller välj "
                  "en mall med färre rubriker.")
_MAX_CITES = 3
CHARS_PER_TOKEN = 2.5  # conservative for Swedish in small models' tokenizers
MSG_TOO_LONG = ("Transkriptet är för långt för språkmodellens kontext. Kontakta IT (inställningarna "
                "assistant.chunk_chars och llm.n_ctx).")


@dataclass
class Partial:
    """A summary under the template's headings: heading → [(text, cited segment numbers)]."""

    sections: dict[str, list[tuple[str, tuple[int, ...]]]]


@dataclass
class Progress:
    """Steps (requests) done out of `total`; within a step, the statements the model has closed so far move the
    bar too (reading a long chunk and writing its statements takes minutes on a CPU). Never goes backwards."""

    total: int
    done: int = 0
    callback: ProgressCallback | None = None
    per_step: int = 1  # statements a step may write at most
    written: int = 0
    shown: float = 0.0

    def _report(self, value: float) -> None:
        value = min(0.99, value)
        if self.callback is not None and value > self.shown:
            self.shown = value
            self.callback(value)

    def step(self) -> None:
        self.done += 1
        self.written = 0
        self._report(self.done / max(self.total, 1))

    def piece(self, text: str) -> None:
        closed = text.count("}")  # a statement's object closing; the one closing the answer adds little
        if closed:
            self.written += closed
            self._report((self.done + min(0.9, self.written / (self.per_step + 1))) / max(self.total, 1))


@dataclass(frozen=True)
class SummaryResult:
    template: Template
    sections: list[tuple[str, list[grounding.CheckedStatement]]]
    chunks: int
    requests: int
    reveal: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def flagged(self) -> int:
        return sum(s.flagged for _, stmts in self.sections for s in stmts)

    def to_json(self) -> dict:
        t = self.template
        return {"template": {"key": t.key, "name": t.name, "headings": list(t.headings),
                             "groups": [list(g) for g in t.groups]},
                "sections": [{"heading": h, "statements": [s.as_dict() for s in stmts]} for h, stmts in self.sections],
                "chunks": self.chunks, "requests": self.requests, "flagged": self.flagged, "reveal": self.reveal,
                **self.meta}


# ------------------------------------------------------------------------------------------ schema

STATEMENTS = "påståenden"
HEADING = "rubrik"


def heading_names(headings: Sequence[str]) -> dict[str, str]:
    """The names the model writes for `headings` → the headings: BBIC's "Barnets utveckling: Hälsa" is "Hälsa"
    (fewer tokens to write, and the words the model sees in the transcript) when the short names are unique."""
    short = [h.split(": ", 1)[-1] for h in headings]
    return dict(zip(short, headings, strict=True)) if len(set(short)) == len(short) else {h: h for h in headings}


def _statement_schema(headings: Sequence[str], numbers: Sequence[int], cfg: AssistantConfig, key: str) -> dict:
    # Heading, statement, then its lines. (Lines first made the 1.5B model start at line 1 and copy the transcript
    # in order; bench/assistant_quality.py.)
    props: dict = {}
    if len(headings) > 1:  # one heading (the advice list): nothing to choose, nothing to write
        props[HEADING] = {"enum": list(heading_names(headings))}
    props["text"] = {"type": "string", "minLength": 3, "maxLength": cfg.statement_max_chars}
    props[key] = {"type": "array", "items": {"enum": list(numbers)}, "minItems": 1, "maxItems": _MAX_CITES}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _max_items(headings: Sequence[str], cfg: AssistantConfig) -> int:
    return min(len(headings) * cfg.max_statements_per_heading, cfg.max_statements)


def summary_schema(headings: Sequence[str], numbers: Sequence[int], cfg: AssistantConfig, key: str = "rader") -> dict:
    """JSON schema: a bounded list of statements (at least one), each under one of `headings` and citing only
    `numbers`."""
    return {"type": "object",
            "properties": {STATEMENTS: {"type": "array", "items": _statement_schema(headings, numbers, cfg, key),
                                        "minItems": 1, "maxItems": _max_items(headings, cfg)}},
            "required": [STATEMENTS], "additionalProperties": False}


def _max_tokens(headings: Sequence[str], cfg: AssistantConfig) -> int:
    """An estimate of the longest answer the schema allows (heading names, full statements, citations)."""
    longest_name = max(len(n) for n in heading_names(headings)) if len(headings) > 1 else 0
    per_statement = int((cfg.statement_max_chars + longest_name) / CHARS_PER_TOKEN) + 4 * _MAX_CITES + 12
    return _max_items(headings, cfg) * per_statement + 16


def _prompt_tokens(messages: list[dict]) -> int:
    return int(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN) + 16 * len(messages)


def _headings_text(t: Template, headings: Sequence[str]) -> str:
    """The headings as the model reads them: grouped (BBIC's three sides), each with its hint when it has one."""
    names = {h: n for n, h in heading_names(headings).items()}
    wanted = set(headings)
    lines = []
    for group, members in t.grouped():
        members = [h for h in members if h in wanted]
        if not members:
            continue
        if group:
            lines.append(f"{group}:")
        for h in members:
            hint = t.hint(h)
            lines.append(f"- {names[h]}" + (f": {hint}" if hint else ""))
    return "\n".join(lines)


def _task(t: Template, headings: Sequence[str]) -> str:
    if len(headings) == 1:
        what = (f"Skriv påståenden under rubriken \"{headings[0]}\": ett för varje sak i samtalet som hör dit, "
                "en kort mening med numren på raderna där det sägs.")
    else:
        what = ("Skriv ett påstående för varje sakuppgift i samtalet som hör till någon av rubrikerna nedan: en kort "
                "mening om vad som sades, rubriken den hör till och numren på raderna där det sägs. Hälsningar och "
                "frågor är inga uppgifter. Rubriker som samtalet inte tar upp hoppar du över.\n\n"
                "Rubriker (med exempel på vad som hör dit):\n" + _headings_text(t, headings))
    instructions = f" {t.instructions}" if t.instructions else ""
    return f"{t.name}.{instructions}\n\n{what}\n\nSkriv bara det som faktiskt sägs."


def _tail(part: tuple[int, int]) -> str:
    where = f" Transkriptet ovan är del {part[0]} av {part[1]} av samtalet." if part[1] > 1 else ""
    return f"Skriv nu påståendena enligt uppgiften.{where} Svara med JSON."


# ------------------------------------------------------------------------------------------ requests

Sections = dict[str, list[tuple[str, tuple[int, ...]]]]
MessageBuilder = Callable[[Sequence[str]], list[dict]]
PieceCallback = Callable[[str], None]


def _parse(text: str, headings: Sequence[str], key: str, cap: int) -> Sections:
    """The statements of an answer by heading (at most `cap` per heading, in the model's order)."""
    try:
        # strict=False: llama.cpp's JSON grammar lets raw newlines into strings; they are folded below.
        data = json.loads(text, strict=False)
    except ValueError as exc:
        raise LlmError(MSG_UNFINISHED) from exc
    items = data.get(STATEMENTS) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise LlmError(MSG_UNFINISHED)
    names = heading_names(headings)
    out: Sections = {h: [] for h in headings}
    for item in items:
        if not isinstance(item, dict):
            continue
        # only the request's headings are read, whatever else a server might return
        heading = headings[0] if len(headings) == 1 else names.get(str(item.get(HEADING, "")))
        if heading is None:
            continue
        clean, inline = grounding.parse_citations(" ".join(str(item.get("text", "")).split()))
        raw = item.get(key, [])
        cites = tuple(int(n) for n in (raw if isinstance(raw, list) else [])
                      if isinstance(n, int) and not isinstance(n, bool))
        if clean and len(out[heading]) < cap:
            out[heading].append((clean, tuple(dict.fromkeys(cites + inline))))
    return out


def _ask(client: ChatModel, headings: Sequence[str], build: MessageBuilder, numbers: Sequence[int],
         cfg: AssistantConfig, key: str, on_piece: PieceCallback | None = None) -> Sections:
    """One request for `headings`, or several for parts of them when the answer would not fit the context
    window (or came back cut off): the shared beginning of the prompt (rules and transcript) stays the same, so
    llama.cpp reuses it instead of reading the transcript again."""
    messages = build(headings)
    budget = client.cfg.n_ctx - _prompt_tokens(messages) - 32
    wanted = _max_tokens(headings, cfg)
    if wanted > budget and len(headings) > 1:
        half = len(headings) // 2
        return {**_ask(client, headings[:half], build, numbers, cfg, key, on_piece),
                **_ask(client, headings[half:], build, numbers, cfg, key, on_piece)}
    if budget < 48:
        raise LlmContextExceeded(MSG_TOO_LONG)
    out = client.complete(messages, max_tokens=min(wanted, budget),
                          response_format={"type": "json_object",
                                           "schema": summary_schema(headings, numbers, cfg, key)},
                          on_piece=on_piece)
    try:
        return _parse(out.text, headings, key, cfg.max_statements_per_heading)
    except LlmError:
        if len(headings) == 1:
            raise
        log.info("answer for %d headings was cut off; asking for them in two parts", len(headings))
        half = len(headings) // 2
        return {**_ask(client, headings[:half], build, numbers, cfg, key, on_piece),
                **_ask(client, headings[half:], build, numbers, cfg, key, on_piece)}


def map_request(template: Template, chunk: Sequence[NumberedSegment], cfg: AssistantConfig,
                part: tuple[int, int] = (1, 1)) -> tuple[MessageBuilder, list[int]]:
    """How one chunk is asked for: a message builder (for all or some of the template's headings) and the line
    numbers citations may use. The template's task comes before the transcript (prompts.template_messages), so the
    chunks of one draft, and every draft under the same template, share that beginning. Also what
    bench/llm_overhead.py sends."""

    def build(headings: Sequence[str]) -> list[dict]:
        return prompts.template_messages(_task(template, headings), chunk, _tail(part))

    return build, [s.number for s in chunk]


def _map(client: ChatModel, template: Template, chunk: Sequence[NumberedSegment], cfg: AssistantConfig,
         part: tuple[int, int], on_piece: PieceCallback | None) -> Partial:
    build, numbers = map_request(template, chunk, cfg, part)
    sections = _ask(client, template.headings, build, numbers, cfg, "rader", on_piece)
    lines = {s.number: s.for_check() for s in chunk}
    return Partial({h: [(text, grounding.refine_citations(text, cites, lines)) for text, cites in stmts]
                    for h, stmts in sections.items()})


def _same(a: str, b: str) -> bool:
    """Two statements say the same thing: most of their content words are shared, or (two words or more) one's
    words are all in the other."""
    wa, wb = grounding.stems_of(a), grounding.stems_of(b)
    if not (wa and wb):
        return False
    shared = len(wa & wb)
    return shared / len(wa | wb) >= 0.6 or (min(len(wa), len(wb)) >= 2 and shared == min(len(wa), len(wb)))


def merge(group: Sequence[Partial], headings: Sequence[str]) -> Sections:
    """Partial summaries heading by heading, in order; a statement that repeats an earlier one (same content
    words) is kept once, the longer text, with the citations of both."""
    merged: Sections = {h: [] for h in headings}
    for p in group:
        for h in headings:
            for text, cites in p.sections.get(h, []):
                for i, (other, other_cites) in enumerate(merged[h]):
                    if _same(text, other):
                        merged[h][i] = (max(text, other, key=len), tuple(dict.fromkeys(other_cites + cites)))
                        break
                else:
                    merged[h].append((text, cites))
    return merged


def _reduce(client: ChatModel, template: Template, group: Sequence[Partial],
            cfg: AssistantConfig) -> tuple[Partial, bool]:
    """Merge partial summaries; headings with few enough statements are merged without the model.
    Returns the merged summary and whether the model was asked."""
    merged = merge(group, template.headings)
    crowded = [h for h in template.headings if len(merged[h]) > cfg.max_statements_per_heading]
    if not crowded:
        return Partial(merged), False
    ids: dict[int, tuple[str, tuple[int, ...]]] = {}
    lines = []
    names = {h: n for n, h in heading_names(crowded).items()}
    for h in crowded:
        lines.append(f"Rubrik: {names[h]}")
        for stmt in merged[h]:
            ids[len(ids) + 1] = stmt
            lines.append(f"({len(ids)}) {prompts.defuse(stmt[0])}")
    head = (f"Delsammanfattningar av olika delar av samma samtal, numrerade:\n{prompts.BEGIN}\n" + "\n".join(lines)
            + f"\n{prompts.END}\n\n")

    def build(headings: Sequence[str]) -> list[dict]:
        user = (head + f"{prompts.TASK_HEAD} Slå ihop delpåståendena under varje rubrik till färre påståenden utan "
                "att lägga till något. Rubriker:\n" + _headings_text(template, headings) + "\n\nSvara med JSON: en "
                "lista med påståenden med rubrik, \"text\" och \"kallor\" (numren på de delpåståenden det bygger på).")
        return [prompts.system_message(), {"role": "user", "content": user}]

    condensed = _ask(client, crowded, build, list(ids), cfg, "kallor")
    for h in crowded:
        # A condensed statement cites the transcript lines of the partial statements it names; a heading the model
        # left empty keeps its partial statements (nothing said is dropped).
        if condensed.get(h):
            merged[h] = [(text, tuple(dict.fromkeys(n for i in sources if i in ids for n in ids[i][1])))
                         for text, sources in condensed[h]]
    return Partial(merged), True


def chunks_of(segments: Sequence[NumberedSegment], max_chars: int) -> list[list[NumberedSegment]]:
    """Whole lines, in order, at most `max_chars` of prompt text per chunk (a longer single line is alone)."""
    out: list[list[NumberedSegment]] = [[]]
    size = 0
    for s in segments:
        n = len(s.line()) + 1
        if out[-1] and size + n > max_chars:
            out.append([])
            size = 0
        out[-1].append(s)
        size += n
    return [c for c in out if c]


class _Counting:
    """The client, counting the requests a summary takes (reported with the result)."""

    def __init__(self, client: ChatModel) -> None:
        self.cfg, self._client, self.requests = client.cfg, client, 0

    def complete(self, *args, **kwargs):
        self.requests += 1
        return self._client.complete(*args, **kwargs)


def summarize(client: ChatModel, segments: Sequence[NumberedSegment], template: Template, cfg: AssistantConfig, *,
              on_progress: ProgressCallback | None = None, reveal: bool = False) -> SummaryResult:
    """Summarise `segments` under `template`, check every statement against the lines it cites."""
    if not segments:
        raise ApplianceError(MSG_EMPTY)
    if cfg.drafting == "guided" and template.words:
        return _guided(client, segments, template, cfg, on_progress, reveal)
    # At most half of the context window for transcript lines: rules, headings and the answer need the rest.
    chunks = chunks_of(segments, min(cfg.chunk_chars, int(client.cfg.n_ctx * CHARS_PER_TOKEN / 2)))
    client = _Counting(client)
    # Map requests plus at most one reduce per merge of two (an upper bound; progress never goes backwards).
    progress = Progress(total=len(chunks) + max(0, len(chunks) - 1), callback=on_progress,
                        per_step=_max_items(template.headings, cfg))
    partials = []
    for i, chunk in enumerate(chunks, 1):
        partials.append(_map(client, template, chunk, cfg, (i, len(chunks)), progress.piece))
        progress.step()
    while len(partials) > 1:
        fan_in = max(2, cfg.reduce_fan_in)
        groups = [partials[i:i + fan_in] for i in range(0, len(partials), fan_in)]
        nxt = []
        for group in groups:
            if len(group) == 1:
                nxt.append(group[0])
                continue
            merged, asked = _reduce(client, template, group, cfg)
            nxt.append(merged)
            if asked:
                progress.step()
        partials = nxt
    # Also within one chunk: a fact the model wrote twice is kept once.
    final = Partial(merge(partials[:1], template.headings))
    by_number = {s.number: s.for_check() for s in segments}
    sections = [(h, grounding.check([grounding.Statement(t, c) for t, c in final.sections.get(h, [])], by_number))
                for h in template.headings]
    log.info("summary: %d segments, %d chunks, template %s, %d statements flagged", len(segments), len(chunks),
             template.key, sum(s.flagged for _, st in sections for s in st))
    if on_progress is not None:
        on_progress(1.0)
    return SummaryResult(template, sections, len(chunks), client.requests, reveal)


def _guided(client: ChatModel, segments: Sequence[NumberedSegment], template: Template, cfg: AssistantConfig,
            on_progress: ProgressCallback | None, reveal: bool) -> SummaryResult:
    """Guided drafting (appliance/assistant/sorting.py): lines sorted under the headings by their words, one
    statement per line written by the model, then checked like any other."""
    counting = _Counting(client)
    chosen = sorting.units(segments, template, cfg.max_statements_per_heading, cfg.max_statements)

    def batch_done(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(min(0.99, done / total))

    texts = sorting.write(counting, template, chosen, cfg, batch_done)
    by_number = {s.number: s.for_check() for s in segments}
    sections: list[tuple[str, list[grounding.CheckedStatement]]] = [(h, []) for h in template.headings]
    index = {h: i for i, h in enumerate(template.headings)}
    for u in chosen:
        checked = grounding.check_statement(grounding.Statement(texts.get(u.number, ""), u.cites), by_number)
        if not texts.get(u.number) or checked.flagged:
            # the model's sentence does not hold up against its lines: the line itself, quoted
            checked = grounding.check_statement(grounding.Statement(u.quote, u.cites), by_number)
        sections[index[u.heading]][1].append(checked)
    log.info("summary (guided): %d segments, %d lines chosen, template %s, %d statements flagged", len(segments),
             len(chosen), template.key, sum(s.flagged for _, st in sections for s in st))
    if on_progress is not None:
        on_progress(1.0)
    return SummaryResult(template, sections, 1, counting.requests, reveal)


def copied(statement: dict) -> bool:
    """Whether a statement goes into the text the caseworker copies: the grounding checker found it supported, or
    she edited it or accepted it as it stands (a flagged statement is left out until then)."""
    return statement.get("status") == grounding.OK or bool(statement.get("accepted") or statement.get("edited"))


def needs_review(content: dict) -> int:
    """Statements the checker flagged that the caseworker has neither edited nor accepted (what the page counts)."""
    return sum(not copied(st) for section in content["sections"] for st in section["statements"])


def accept_statement(content: dict, section: int, statement: int) -> dict:
    """The content with one flagged statement accepted as it stands by the caseworker (it is copied from now on);
    IndexError/KeyError when there is no such statement. The caller stores it and audits the acceptance."""
    out = json.loads(json.dumps(content))
    out["sections"][section]["statements"][statement]["accepted"] = True
    out["flagged"] = needs_review(out)
    return out


def plain_text(content: dict) -> str:
    """The summary as plain text for the case system: headings kept, statements as lines, no line numbers
    (they mean nothing once the recording is purged). Statements the checker flagged are left out unless the
    caseworker edited or accepted them (`copied`)."""
    out = [content["template"]["name"], ""]
    for section in content["sections"]:
        out.append(section["heading"])
        out += [f"- {s['text']}" for s in section["statements"] if copied(s)] or ["(inget antecknat)"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
