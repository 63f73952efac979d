"""Grounding: every generated statement carries the transcript segments it rests on, and a checker flags
those that rest on nothing.

A statement is flagged when
* it cites nothing (`uncited`),
* it cites a segment number that does not exist (`unknown_citation`), or
* fewer than two thirds of its content words (not stop words, four letters or more, compared by a light
  Swedish stem so "skolan"/"skolans" match) occur in the text of the segments it cites, read with the line just
  before each (an answer means what its question asked: "Ja, det går bra." after "Får jag prata med skolan?")
  (`unsupported`): with two content words, one invented word ("Pojken har självmordstankar [1]" citing a line
  about sleep) is enough to flag the statement.
The words not found are kept (`missing`) so the page can show them even on statements that pass.
This is a cheap lexical check, not proof: it catches invented statements (a suicide mention nobody made,
an invented action) that share no words with what they cite, which is the harm we guard against. The
caseworker still reviews everything.

`refine_citations` tidies what a small model cites before the check: it likes to cite a run of consecutive lines
("[10, 11, 12]") of which one says the thing; the lines sharing no content word with the statement are dropped,
and a statement whose cited lines share none at all gets the request's line that says most of it (when one line
says at least half of it). An invented statement shares its invented words with no line, so it stays flagged.

Citations in free text (chat answers) are bracketed numbers: "Mamma oroar sig för skolan [3, 5]." or
"[3][5]"; `parse_statements` splits such text into sentences with their citations.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from appliance.transcripts.search import stem

OK, UNCITED, UNKNOWN, UNSUPPORTED = "ok", "uncited", "unknown_citation", "unsupported"
STATUS_TEXT = {
    OK: "Stöds av de citerade raderna",
    UNCITED: "Saknar källa: ingen rad i transkriptet anges",
    UNKNOWN: "Hänvisar till rader som inte finns i transkriptet",
    UNSUPPORTED: "Stöds inte av de citerade raderna: kontrollera mot transkriptet",
}
SUPPORT_THRESHOLD = 2 / 3 - 1e-9
MIN_WORD = 4

# Function words and very common verbs that say nothing about what a statement claims.
_STOP = frozenset("""
alla allt alltså andra annan annat att bara blev bli blir blivit borde bort både dagen denna dess dessa
detta dig din dina ditt där därför efter eftersom eller emot enligt ett fanns finns från får fått för
före genom gjorde gjort göra gör hade han hans har hela helt henne hennes hon honom hur här hade inga inget
inom inte jag kan kanske kommer kunde man med mellan men mer mig min mina mitt mot mycket måste många
nog någon något några när nästa och också ofta oss samma sedan sig sina sitt skall ska skulle som
till under upp uppger ut utan vad var vara varför varit vars vem vi vid vilka vilken vilket vill
vår våra vårt än ändå är även över också berättar säger sagt tycker tror anger enligt framgår
klienten klient samtalet samtal personen handläggaren nämner nämnde beskriver beskrev talar talade
""".split())
_WORD = re.compile(r"[^\W\d_]+")
_CITE = re.compile(r"\[(\s*\d+(?:\s*[,;–-]\s*\d+)*\s*)\]")


@dataclass(frozen=True)
class Statement:
    text: str
    citations: tuple[Hashable, ...] = ()


@dataclass(frozen=True)
class CheckedStatement:
    text: str
    citations: tuple[Hashable, ...]
    status: str                         # OK, UNCITED, UNKNOWN or UNSUPPORTED
    support: float = 1.0                # share of content words found in the cited text
    missing: tuple[str, ...] = field(default=())   # content words not found there
    unknown: tuple[Hashable, ...] = field(default=())  # cited numbers that do not exist

    @property
    def flagged(self) -> bool:
        return self.status != OK

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]

    def as_dict(self) -> dict:
        return {"text": self.text, "citations": list(self.citations), "status": self.status,
                "support": round(self.support, 2), "missing": list(self.missing), "unknown": list(self.unknown)}


def content_words(text: str) -> list[str]:
    """The words of `text` that carry its claim (lower case, de-duplicated, in order)."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if len(word) >= MIN_WORD and word not in _STOP:
            seen.setdefault(word, None)
    return list(seen)


def _stems(text: str) -> set[str]:
    return {stem(w) for w in _WORD.findall(text.lower())}


def _found(word: str, cited_stems: set[str]) -> bool:
    s = stem(word)
    # Same stem, or one stem extends the other ("skol" ~ "skolgång") when the shorter has four letters or more.
    return s in cited_stems or any(len(c) >= MIN_WORD and (c.startswith(s) or s.startswith(c)) for c in cited_stems)


def stems_of(text: str) -> set[str]:
    """The stems of `text`'s content words (to compare two statements)."""
    return {stem(w) for w in content_words(text)}


def _with_question(cites: tuple[Hashable, ...], segments: Mapping[Hashable, str]) -> str:
    """The cited lines, each read with the line before it (numbered citations only)."""
    parts = []
    for c in cites:
        before = c - 1 if isinstance(c, int) and not isinstance(c, bool) else None
        if before is not None and before in segments and before not in cites:
            parts.append(segments[before])
        parts.append(segments[c])
    return " ".join(parts)


def refine_citations(text: str, citations: tuple[int, ...], lines: Mapping[int, str],
                     limit: int = 6) -> tuple[int, ...]:
    """The citations of a statement, tidied against `lines` (the request's lines: number → text): cited lines that
    share no content word with the statement are dropped; when none shares any, the line sharing the most (at least
    half of the statement's content words) is cited instead; otherwise (also when nothing is cited, or a cited line
    does not exist: the check reports those) the citations stay as they are."""
    words = content_words(text)
    if not words or not citations or any(c not in lines for c in citations):
        return citations  # nothing cited, or a line that does not exist: the check says so, nothing to tidy

    def hits(n: int) -> int:
        stems = _stems(lines[n])
        return sum(_found(w, stems) for w in words)

    scored = [(c, hits(c)) for c in citations]
    keep = tuple(c for c, h in scored if h > 0)
    if keep:
        return keep[:limit]
    best = max(lines, key=lambda n: (hits(n), -n), default=None)
    if best is not None and hits(best) * 2 >= len(words):
        return (best,)
    return citations


def check_statement(statement: Statement, segments: Mapping[Hashable, str]) -> CheckedStatement:
    """Check one statement against the text of the segments it cites (`segments`: citation key → text)."""
    cites = tuple(dict.fromkeys(statement.citations))
    if not cites:
        return CheckedStatement(statement.text, cites, UNCITED, 0.0)
    unknown = tuple(c for c in cites if c not in segments)
    if unknown:
        return CheckedStatement(statement.text, cites, UNKNOWN, 0.0, unknown=unknown)
    words = content_words(statement.text)
    if not words:
        return CheckedStatement(statement.text, cites, OK)
    cited = _stems(_with_question(cites, segments))
    missing = tuple(w for w in words if not _found(w, cited))
    support = 1 - len(missing) / len(words)
    status = OK if support >= SUPPORT_THRESHOLD else UNSUPPORTED
    return CheckedStatement(statement.text, cites, status, support, missing)


def check(statements: Iterable[Statement], segments: Mapping[Hashable, str]) -> list[CheckedStatement]:
    return [check_statement(s, segments) for s in statements]


def parse_citations(text: str) -> tuple[str, tuple[int, ...]]:
    """Strip bracketed citations ("[3]", "[3, 5]", "[4-6]") out of `text`; returns (clean text, numbers)."""
    numbers: list[int] = []
    for m in _CITE.finditer(text):
        for part in re.split(r"\s*[,;]\s*", m.group(1).strip()):
            lo, dash, hi = re.split(r"\s*([–-])\s*", part) if re.search(r"[–-]", part) else (part, "", "")
            if dash and int(hi) >= int(lo) and int(hi) - int(lo) <= 50:
                numbers.extend(range(int(lo), int(hi) + 1))
            else:
                numbers.append(int(lo))
    clean = re.sub(r"\s+([.,;:!?])", r"\1", _CITE.sub("", text))
    return re.sub(r"[ \t]{2,}", " ", clean).strip(), tuple(dict.fromkeys(numbers))


_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[[\d\s,;–-]+\])*\s+|\n+")


def parse_statements(text: str) -> list[Statement]:
    """Split a free-text answer into statements (sentences or lines), each with the citations inside it.

    A citation right after a sentence's full stop ("… skolan. [3]") belongs to that sentence."""
    statements = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        statements.append(text[pos:m.end()])
        pos = m.end()
    statements.append(text[pos:])
    out = []
    for raw in statements:
        clean, numbers = parse_citations(raw)
        clean = clean.strip(" -*•\t")
        if clean:
            out.append(Statement(clean, numbers))
    return out
