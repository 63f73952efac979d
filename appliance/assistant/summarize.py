"""A grounded summary of a transcript under a template: the one code path for the assistant worker and
`appliance summarize`.

Every request asks for JSON that a schema constrains (llama.cpp turns it into a grammar): exactly the
template's headings, each a list of statements `{"text": ..., "rader": [segment numbers]}` whose numbers
can only be numbers of lines in the request. So the headings are always the template's, whatever the
transcript says, and every statement cites something; the grounding checker then flags statements whose
cited lines do not support them.

Long transcripts (map-reduce): the transcript is cut into chunks of whole lines (`assistant.chunk_chars`);
each chunk is summarised (map); the partial summaries are merged heading by heading. A heading that ends
up with more statements than a summary holds is condensed by the model in a reduce request that cites the
partial statements by id, so the final statements keep the transcript lines of the statements they merge
(citations are carried mechanically, never re-invented). Merging goes in rounds until one summary is left.
Progress is reported after every chunk and merge.

Context budget: a chunk's transcript lines take at most half of `llm.n_ctx`; when the longest answer the schema
allows would not fit the rest (many headings, e.g. BBIC's twenty), the headings are asked for in parts, and an
answer that comes back cut off is asked for again in two halves. The transcript comes first in every prompt, so
llama.cpp reuses its evaluation across the parts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from appliance.assistant import grounding, prompts
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
_MAX_CITES = 6
CHARS_PER_TOKEN = 2.5  # conservative for Swedish in small models' tokenizers
MSG_TOO_LONG = ("Transkriptet är för långt för språkmodellens kontext. Kontakta IT (inställningarna "
                "assistant.chunk_chars och llm.n_ctx).")


@dataclass
class Partial:
    """A summary under the template's headings: heading → [(text, cited segment numbers)]."""

    sections: dict[str, list[tuple[str, tuple[int, ...]]]]


@dataclass
class Progress:
    total: int
    done: int = 0
    callback: ProgressCallback | None = None

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(min(0.99, self.done / max(self.total, 1)))


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

def _statement_schema(numbers: Sequence[int], cfg: AssistantConfig, key: str = "rader") -> dict:
    return {"type": "object",
            "properties": {"text": {"type": "string", "minLength": 3, "maxLength": cfg.statement_max_chars},
                           key: {"type": "array", "items": {"enum": list(numbers)}, "minItems": 1,
                                 "maxItems": _MAX_CITES}},
            "required": ["text", key], "additionalProperties": False}


def summary_schema(headings: Sequence[str], numbers: Sequence[int], cfg: AssistantConfig, key: str = "rader") -> dict:
    """JSON schema: an object with exactly `headings` as keys, in order, each a bounded list of statements
    whose citations can only be `numbers`."""
    item = _statement_schema(numbers, cfg, key)
    return {"type": "object",
            "properties": {h: {"type": "array", "items": item, "maxItems": cfg.max_statements_per_heading}
                           for h in headings},
            "required": list(headings), "additionalProperties": False}


def _max_tokens(headings: Sequence[str], cfg: AssistantConfig) -> int:
    """An estimate of the longest answer the schema allows (keys, full statements, citations)."""
    per_statement = int(cfg.statement_max_chars / CHARS_PER_TOKEN) + 4 * _MAX_CITES + 8
    return sum(int(len(h) / CHARS_PER_TOKEN) + 4 + cfg.max_statements_per_heading * per_statement
               for h in headings) + 16


def _prompt_tokens(messages: list[dict]) -> int:
    return int(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN) + 16 * len(messages)


def _headings_text(t: Template, headings: Sequence[str]) -> str:
    lines = [f"Mall: {t.name}"]
    if t.instructions:
        lines.append(f"Instruktioner: {t.instructions}")
    lines.append("Rubriker (skriv under dessa och inga andra):")
    lines += [f"- {h}" for h in headings]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ requests

def _parse(text: str, headings: Sequence[str], key: str) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    try:
        # strict=False: llama.cpp's JSON grammar lets raw newlines into strings; they are folded below.
        data = json.loads(text, strict=False)
    except ValueError as exc:
        raise LlmError(MSG_UNFINISHED) from exc
    if not isinstance(data, dict):
        raise LlmError(MSG_UNFINISHED)
    out: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for h in headings:  # only the template's headings are read, whatever else a server might return
        items = data.get(h) or []
        stmts = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            clean, inline = grounding.parse_citations(" ".join(str(item.get("text", "")).split()))
            cites = tuple(int(n) for n in item.get(key, []) if isinstance(n, int) and not isinstance(n, bool))
            if clean:
                stmts.append((clean, tuple(dict.fromkeys(cites + inline))))
        out[h] = stmts
    return out


Sections = dict[str, list[tuple[str, tuple[int, ...]]]]
MessageBuilder = Callable[[Sequence[str]], list[dict]]


def _ask(client: ChatModel, headings: Sequence[str], build: MessageBuilder, numbers: Sequence[int],
         cfg: AssistantConfig, key: str) -> Sections:
    """One request for `headings`, or several for parts of them when the answer would not fit the context
    window (or came back cut off): the shared beginning of the prompt (rules and transcript) stays the same, so
    llama.cpp reuses it instead of reading the transcript again."""
    messages = build(headings)
    budget = client.cfg.n_ctx - _prompt_tokens(messages) - 32
    wanted = _max_tokens(headings, cfg)
    if wanted > budget and len(headings) > 1:
        half = len(headings) // 2
        return {**_ask(client, headings[:half], build, numbers, cfg, key),
                **_ask(client, headings[half:], build, numbers, cfg, key)}
    if budget < 48:
        raise LlmContextExceeded(MSG_TOO_LONG)
    out = client.complete(messages, max_tokens=min(wanted, budget),
                          response_format={"type": "json_object",
                                           "schema": summary_schema(headings, numbers, cfg, key)})
    try:
        return _parse(out.text, headings, key)
    except LlmError:
        if len(headings) == 1:
            raise
        log.info("answer for %d headings was cut off; asking for them in two parts", len(headings))
        half = len(headings) // 2
        return {**_ask(client, headings[:half], build, numbers, cfg, key),
                **_ask(client, headings[half:], build, numbers, cfg, key)}


def map_request(template: Template, chunk: Sequence[NumberedSegment], cfg: AssistantConfig,
                part: tuple[int, int] = (1, 1)) -> tuple[MessageBuilder, list[int]]:
    """How one chunk is asked for: a message builder (for all or some of the template's headings) and the line
    numbers citations may use. The transcript comes first and the headings last, so requests for different
    headings of the same chunk share their beginning. Also what bench/llm_overhead.py sends."""
    where = f" (del {part[0]} av {part[1]} av samtalet)" if part[1] > 1 else ""
    head = f"Här är transkriptet{where}:\n{prompts.transcript_block(chunk)}\n\n"

    def build(headings: Sequence[str]) -> list[dict]:
        user = (head + _headings_text(template, headings) + "\n\nSvara med JSON: för varje rubrik en lista med "
                "korta påståenden, vart och ett med \"text\" och \"rader\" (numren på de rader i transkriptet som "
                "påståendet bygger på).")
        return [prompts.system_message(), {"role": "user", "content": user}]

    return build, [s.number for s in chunk]


def _map(client: ChatModel, template: Template, chunk: Sequence[NumberedSegment], cfg: AssistantConfig,
         part: tuple[int, int]) -> Partial:
    build, numbers = map_request(template, chunk, cfg, part)
    return Partial(_ask(client, template.headings, build, numbers, cfg, "rader"))


def _reduce(client: ChatModel, template: Template, group: Sequence[Partial],
            cfg: AssistantConfig) -> tuple[Partial, bool]:
    """Merge partial summaries; headings with few enough statements are merged without the model.
    Returns the merged summary and whether the model was asked."""
    merged: Sections = {h: [] for h in template.headings}
    for p in group:
        for h in template.headings:
            for stmt in p.sections.get(h, []):
                if stmt[0] not in (s[0] for s in merged[h]):
                    merged[h].append(stmt)
    crowded = [h for h in template.headings if len(merged[h]) > cfg.max_statements_per_heading]
    if not crowded:
        return Partial(merged), False
    ids: dict[int, tuple[str, tuple[int, ...]]] = {}
    lines = []
    for h in crowded:
        lines.append(f"Rubrik: {h}")
        for stmt in merged[h]:
            ids[len(ids) + 1] = stmt
            lines.append(f"({len(ids)}) {prompts.defuse(stmt[0])}")
    head = (f"Delsammanfattningar av olika delar av samma samtal, numrerade:\n{prompts.BEGIN}\n" + "\n".join(lines)
            + f"\n{prompts.END}\n\n")

    def build(headings: Sequence[str]) -> list[dict]:
        user = (head + _headings_text(template, headings) + "\n\nSlå ihop delpåståendena till färre påståenden "
                "per rubrik utan att lägga till något. Svara med JSON: för varje rubrik en lista med påståenden med "
                "\"text\" och \"kallor\" (numren på de delpåståenden det bygger på).")
        return [prompts.system_message(), {"role": "user", "content": user}]

    condensed = _ask(client, crowded, build, list(ids), cfg, "kallor")
    for h in crowded:
        # A condensed statement cites the transcript lines of the partial statements it names.
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
    # At most half of the context window for transcript lines: rules, headings and the answer need the rest.
    chunks = chunks_of(segments, min(cfg.chunk_chars, int(client.cfg.n_ctx * CHARS_PER_TOKEN / 2)))
    client = _Counting(client)
    # Map requests plus at most one reduce per merge of two (an upper bound; progress never goes backwards).
    progress = Progress(total=len(chunks) + max(0, len(chunks) - 1), callback=on_progress)
    partials = []
    for i, chunk in enumerate(chunks, 1):
        partials.append(_map(client, template, chunk, cfg, (i, len(chunks))))
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
    final = partials[0] if partials else Partial({h: [] for h in template.headings})
    by_number = {s.number: s.text for s in segments}
    sections = [(h, grounding.check([grounding.Statement(t, c) for t, c in final.sections.get(h, [])], by_number))
                for h in template.headings]
    log.info("summary: %d segments, %d chunks, template %s, %d statements flagged", len(segments), len(chunks),
             template.key, sum(s.flagged for _, st in sections for s in st))
    if on_progress is not None:
        on_progress(1.0)
    return SummaryResult(template, sections, len(chunks), client.requests, reveal)


def plain_text(content: dict) -> str:
    """The summary as plain text for the case system: headings kept, statements as lines, no line numbers
    (they mean nothing once the recording is purged)."""
    out = [content["template"]["name"], ""]
    for section in content["sections"]:
        out.append(section["heading"])
        out += [f"- {s['text']}" for s in section["statements"]] or ["(inget antecknat)"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
