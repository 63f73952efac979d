"""The domain lexicon: shipped Swedish social-services terms plus the office's own, and fuzzy matching of
transcript words against it (near-misses Whisper typically produces), and Whisper's initial prompt.

Shipped terms: `data/lexicon_sv.tsv` (derived from the project's shared term list; see its header).
Office terms: table `lexicon_terms`, added and removed by content users (caseworkers, managers) in the
UI, audited by id only. IT admins have no say over it: terms may be local names (a family home, a school).

Matching a line's word tokens (`Lexicon.find`), shortest explanation first:

* **Written apart or with other spacing** ("oros anmälan", "barnavårds utredning", "L V U"): a window of
  up to four tokens whose letters, without spaces and hyphens, equal a term (case-insensitive).
* **Abbreviations** (LVU, BBIC, SoL): exact (case-insensitive) is never a suggestion, except a case fix of
  an abbreviation of four or more letters ("bbic" → BBIC). Fuzzy only for a token written in capitals of the
  same length, one letter off, and only when exactly one abbreviation is that close ("BBIK" → BBIC; "LVO"
  is as close to LVU as to LVM, so nothing).
* **Fuzzy on longer words only**: RapidFuzz's normalised Indel similarity ≥ `FUZZY_MIN_SCORE` on the
  spaceless, case-folded form, same first letter, for terms of at least `FUZZY_MIN_LEN` letters (shorter
  terms, from 6 letters, only when Whisper itself was unsure of the word: `low_confidence`). Inflected and
  compound forms are not misspellings: a word that begins with the term or that the term begins with
  ("utredning" / "utredningstid", "familjehemmet"), or that differs only in an inflection ending
  ("vårdnadshavarna", "orosanmälningar"), is left alone. Tokens that are themselves terms are never touched.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from appliance import clock
from appliance.errors import ApplianceError, NotFound
from appliance.ids import parse_id
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.users import access
from appliance.users.accounts import User

DATA_FILE = "lexicon_sv.tsv"
MAX_TERM = 80
FUZZY_MIN_SCORE = 82.0      # rapidfuzz.fuzz.ratio (0–100) on case-folded, spaceless forms
FUZZY_MIN_SCORE_SPLIT = 92.0  # the same for words written apart ("kontaktas familjen" is no kontaktfamilj)
FUZZY_MIN_LEN = 10          # terms this long are matched fuzzily whatever Whisper's confidence
FUZZY_MIN_LEN_UNSURE = 6    # shorter terms (from this length) only where Whisper was unsure of the word
CASE_FIX_MIN_LEN = 4        # "bbic" → BBIC; "sol" (the sun) is never turned into SoL
MAX_WINDOW = 4
PROMPT_MAX_CHARS = 400      # Whisper's prompt is cut to 223 tokens; stay well inside it
PROMPT_PREFIX = "Samtal inom socialtjänsten. Termer: "

# Word tokens: letters/digits/§ with inner hyphens or apostrophes ("BBIC-triangeln", "SIP-möte").
TOKEN = re.compile(r"[\w§]+(?:[-'’][\w§]+)*")
# Endings that make an inflected form of a term, not another word (checked after the common stem).
_ENDINGS = frozenset({"", "a", "e", "n", "t", "s", "en", "et", "na", "ns", "ts", "ar", "er", "or", "rna",
                      "ens", "ets", "nas", "arna", "erna", "orna", "ars", "ers", "ors", "arnas", "ernas",
                      "ningar", "ningarna", "ningars", "ing", "ingar"})


def fold(text: str) -> str:
    """Case-folded, without spaces and hyphens: the form terms are compared in."""
    return re.sub(r"[\s\-–'’.]+", "", text).casefold()


@dataclass(frozen=True)
class Term:
    text: str
    abbreviation: bool = False
    source: str = "shipped"        # "shipped" or "office"
    id: int | None = None          # office terms: lexicon_terms.id
    explanation: str = ""
    category: str = ""
    folded: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "folded", fold(self.text))


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offsets in the line
    end: int


@dataclass(frozen=True)
class Match:
    start: int      # token index, inclusive
    end: int        # token index, exclusive
    term: Term
    score: float    # 0–100
    kind: str       # "spacing", "case", "abbreviation", "fuzzy"


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN.finditer(text)]


def breaks_between(text: str, tokens: Sequence[Token]) -> list[int]:
    """Indices i where something other than white space separates tokens i and i + 1."""
    return [i for i in range(len(tokens) - 1) if text[tokens[i].end:tokens[i + 1].start].strip()]


def _looks_abbreviation(term: str) -> bool:
    letters = [c for c in term if c.isalpha()]
    return 2 <= len(letters) <= 6 and " " not in term and sum(c.isupper() for c in letters) >= 2


def _is_inflection(word: str, term: str) -> bool:
    """A form of the term (or a compound with it, or the term a compound of it), not a misspelling."""
    if word.startswith(term) or term.startswith(word):
        return True
    stem = 0
    for a, b in zip(word, term, strict=False):
        if a != b:
            break
        stem += 1
    # The shared stem must cover the term but for a short ending; what follows in each is an ending.
    return stem >= len(term) - 2 and word[stem:] in _ENDINGS and term[stem:] in _ENDINGS and len(word) > len(term)


class Lexicon:
    def __init__(self, terms: Iterable[Term]) -> None:
        by_fold: dict[str, Term] = {}
        for t in terms:
            if t.folded and t.folded not in by_fold:  # the first wins: office terms come first
                by_fold[t.folded] = t
        self.terms: list[Term] = list(by_fold.values())
        self.by_fold = by_fold
        self.abbreviations = [t for t in self.terms if t.abbreviation]
        self._fuzzy = [t for t in self.terms if not t.abbreviation and len(t.folded) >= FUZZY_MIN_LEN_UNSURE]
        self._fuzzy_keys = [t.folded for t in self._fuzzy]
        self._cache: dict[tuple[str, bool], tuple[Term, float] | None] = {}

    def __len__(self) -> int:
        return len(self.terms)

    # --- single candidates -------------------------------------------------------------------------
    def _abbreviation_for(self, surface: str) -> Term | None:
        if not surface.isupper() or not surface.isalpha():
            return None
        close = [t for t in self.abbreviations if len(t.text) == len(surface) and len(surface) >= 3
                 and Levenshtein.distance(t.text.upper(), surface) == 1]
        return close[0] if len(close) == 1 else None

    def _fuzzy_for(self, folded: str, unsure: bool) -> tuple[Term, float] | None:
        key = (folded, unsure)
        if key in self._cache:
            return self._cache[key]
        result = None
        if len(folded) >= FUZZY_MIN_LEN_UNSURE - 1 and self._fuzzy_keys:
            for _choice, score, i in process.extract(folded, self._fuzzy_keys, scorer=fuzz.ratio,
                                                     score_cutoff=FUZZY_MIN_SCORE, limit=5):
                term = self._fuzzy[i]
                if len(term.folded) < FUZZY_MIN_LEN and not unsure:
                    continue
                if term.folded[0] != folded[0] or _is_inflection(folded, term.folded):
                    continue
                result = (term, float(score))
                break
        self._cache[key] = result
        return result

    # --- a line ------------------------------------------------------------------------------------
    def find(self, tokens: Sequence[str], low_confidence: Iterable[int] = (),
             breaks: Iterable[int] = ()) -> list[Match]:
        """Near-misses of terms in a line's tokens, non-overlapping, left to right. `low_confidence`: indices
        of tokens Whisper was unsure of; `breaks`: indices i with punctuation between tokens i and i + 1."""
        unsure = set(low_confidence)
        stops = set(breaks)
        n = len(tokens)
        folded = [fold(t) for t in tokens]
        exact = [False] * n  # tokens that are (part of) a term as written
        for i in range(n):
            for w in range(MAX_WINDOW, 0, -1):
                if i + w <= n:
                    surface = " ".join(tokens[i:i + w])
                    term = self.by_fold.get("".join(folded[i:i + w]))
                    if term is not None and surface == term.text:
                        exact[i:i + w] = [True] * w
        candidates: list[Match] = []
        for i in range(n):
            for w in range(1, MAX_WINDOW + 1):
                if i + w > n or any(exact[i:i + w]) or (w > 1 and i + w - 2 in stops):
                    break
                window = tokens[i:i + w]
                joined = "".join(folded[i:i + w])
                surface = " ".join(window)
                term = self.by_fold.get(joined)
                if term is not None:
                    if w > 1:
                        if term.abbreviation and not all(t.isupper() for t in window):
                            continue  # "s o l": not SoL; spelled-out capitals "L V U" are
                        candidates.append(Match(i, i + w, term, 100.0, "spacing"))
                    elif term.abbreviation and len(term.text) >= CASE_FIX_MIN_LEN and surface != term.text:
                        candidates.append(Match(i, i + w, term, 100.0, "case"))
                    continue
                if w == 1:
                    abbr = self._abbreviation_for(surface)
                    if abbr is not None:
                        candidates.append(Match(i, i + 1, abbr, 90.0, "abbreviation"))
                        continue
                if len(joined) < FUZZY_MIN_LEN_UNSURE - 1:
                    continue
                if w > 1 and not all(len(t) >= 2 and t.replace("-", "").isalpha() for t in window):
                    continue  # written-apart words, not digits or stray letters
                found = self._fuzzy_for(joined, unsure=any(j in unsure for j in range(i, i + w)))
                if found is not None and (w == 1 or found[1] >= FUZZY_MIN_SCORE_SPLIT):
                    candidates.append(Match(i, i + w, found[0], found[1], "fuzzy"))
        # Best first (score, then the longer span: "Solrosens familje hem" over "familje hem"), no overlaps.
        candidates.sort(key=lambda m: (-m.score, m.start - m.end, m.start))
        taken: list[Match] = []
        used = [False] * n
        for m in candidates:
            if not any(used[m.start:m.end]):
                taken.append(m)
                used[m.start:m.end] = [True] * (m.end - m.start)
        return sorted(taken, key=lambda m: m.start)

    def suggest(self, text: str, low_confidence: Iterable[int] = ()) -> list[tuple[str, str]]:
        """(as written, proposed term) for each near-miss in `text`; a convenience for tests and tools."""
        toks = tokenize(text)
        out = []
        for m in self.find([t.text for t in toks], low_confidence, breaks_between(text, toks)):
            out.append((text[toks[m.start].start:toks[m.end - 1].end], m.term.text))
        return out


# --- shipped and office terms -----------------------------------------------------------------------

@functools.cache
def shipped_terms() -> tuple[Term, ...]:
    text = resources.files("appliance.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    rows = csv.reader((line for line in text.splitlines() if line and not line.startswith("#")), delimiter="\t")
    header = next(rows)
    assert header[0] == "term", header  # the shipped file's shape
    terms = []
    for row in rows:
        term, kind, explanation, category = (row + ["", "", "", ""])[:4]
        terms.append(Term(term.strip(), abbreviation=kind == "förkortning" or _looks_abbreviation(term),
                          explanation=explanation, category=category))
    return tuple(terms)


def office_terms(conn: Connection) -> list[Term]:
    rows = conn.execute("SELECT id, term FROM lexicon_terms ORDER BY term COLLATE NOCASE").fetchall()
    return [Term(r["term"], abbreviation=_looks_abbreviation(r["term"]), source="office", id=r["id"])
            for r in rows]


def load(conn: Connection | None = None) -> Lexicon:
    """The office's terms (first: they win over a shipped term of the same letters) and the shipped ones."""
    return Lexicon([*(office_terms(conn) if conn is not None else []), *shipped_terms()])


def _require_content_user(user: User) -> None:
    if not user.can_read_content or user.disabled:
        raise NotFound("Sidan finns inte.")


def add_term(conn: Connection, user: User, text: str) -> int:
    """A caseworker or manager adds an office term (audited by id; the term itself is not logged)."""
    _require_content_user(user)
    term = re.sub(r"\s+", " ", text or "").strip()
    if not term:
        raise ApplianceError("Skriv termen du vill lägga till.")
    if len(term) > MAX_TERM or not any(c.isalnum() for c in term) or any(not c.isprintable() for c in term):
        raise ApplianceError(f"En term är högst {MAX_TERM} tecken: ord, förkortningar, siffror och bindestreck.")
    if fold(term) in {t.folded for t in shipped_terms()}:
        raise ApplianceError("Termen finns redan i den medföljande ordlistan.")
    with transaction(conn):
        if conn.execute("SELECT 1 FROM lexicon_terms WHERE term = ?", (term,)).fetchone():
            raise ApplianceError("Termen finns redan i kontorets ordlista.")
        cur = conn.execute("INSERT INTO lexicon_terms (term, created_by, created_at) VALUES (?, ?, ?)",
                           (term, user.id, clock.now()))
        term_id = int(cur.lastrowid)
        audit.record(conn, user.actor, "lexicon.term_add", f"term:{term_id}", role=access.content_role(user))
    return term_id


def remove_term(conn: Connection, user: User, term_id: int | str) -> None:
    _require_content_user(user)
    tid = parse_id(term_id)
    if tid is None:
        raise NotFound("Termen finns inte.")
    with transaction(conn):
        if conn.execute("DELETE FROM lexicon_terms WHERE id = ?", (tid,)).rowcount == 0:
            raise NotFound("Termen finns inte.")
        audit.record(conn, user.actor, "lexicon.term_remove", f"term:{tid}", role=access.content_role(user))


# --- Whisper's initial prompt -----------------------------------------------------------------------

def initial_prompt(conn: Connection | None = None, max_chars: int = PROMPT_MAX_CHARS) -> str:
    """A short Swedish context sentence listing terms (office terms first) for Whisper's `initial_prompt`."""
    parts: list[str] = []
    size = len(PROMPT_PREFIX)
    for term in load(conn).terms:
        if size + len(term.text) + 2 > max_chars:
            break
        parts.append(term.text)
        size += len(term.text) + 2
    return PROMPT_PREFIX + ", ".join(parts) + "."


def prompt_for(setting: str, conn: Connection | None = None) -> str | None:
    """What `asr.initial_prompt` means: "lexicon" (built from the lexicon), "none", or the text itself."""
    if setting == "none" or not setting.strip():
        return None
    if setting == "lexicon":
        return initial_prompt(conn)
    return setting
