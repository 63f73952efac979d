"""Free-text search over the transcripts (edited text) and titles a user may read, inside the encrypted
database (FTS5 table `search_fts`, kept in sync by triggers: migration 0005).

The user's text is never handed to FTS5 as a query: `parse_query` turns it into a safe expression made only
of double-quoted tokens, so FTS operators (AND, OR, NOT, NEAR, ^, :, parentheses) are plain words and a
malformed query is a `BadQuery` with a Swedish message, never a database error.

Swedish inflections: the index is unicode61 (å, ä, ö kept as letters); a plain query word is reduced by a
light Swedish suffix stripper and matched as a prefix, so "utredningen", "utredning" and "utredningar" all
become `"utred" *`, and "orosanmälan"/"orosanmälningar" become `"orosanmäl" *`. A phrase ("...") matches its
words exactly and in order; `ord*` is a prefix query as typed.

Access: only recordings in `recordings.visible_rows` (folders, shares, retention deadline) are searched;
hits elsewhere are dropped inside the query, so another user's transcript never appears and the count is
not an oracle. Audited as `search.query` with the hit count and recording ids, never the query text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from appliance import clock
from appliance.errors import ApplianceError
from appliance.platform import audit, retention
from appliance.platform.db import Connection, transaction
from appliance.users import access
from appliance.users.accounts import User

MAX_QUERY = 200
MAX_TERMS = 12
DEFAULT_LIMIT = 50
HL_START, HL_END = "\ue000", "\ue001"  # private-use markers, removed from input, replaced by <mark> when shown

_WORD = re.compile(r"[^\W_]+")
_OPERATORS = {"AND", "OR", "NOT", "NEAR"}
_SPECIAL = set('^:(){}[]+-"*')

# Inflectional endings (nouns, adjectives, verbs), longest first, and -ning/-ing derivations
# (utredning → utred, anmälningar → anmäl): a light stemmer in the spirit of Snowball's Swedish step 1.
_SUFFIXES = sorted({
    "heterna", "hetens", "arnas", "ernas", "ornas", "andes", "arens", "andet", "heten", "heter", "anden",
    "arna", "erna", "orna", "ande", "arne", "aste", "aren", "ades", "erns", "ets", "ens", "het", "ade", "are",
    "ast", "ad", "an", "en", "ar", "er", "or", "as", "es", "at", "et", "a", "e", "s",
}, key=len, reverse=True)
_DERIVATIONS = ("ningen", "ning", "ing")
_MIN_STEM = 4


class BadQuery(ApplianceError):
    """The search text cannot be searched; the message says what to change."""


@dataclass(frozen=True)
class Query:
    expression: str            # a safe FTS5 expression (only quoted tokens)
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    recording_id: str
    title: str
    idx: int                   # -1: the title matched
    start: float | None
    fragments: tuple[tuple[str, bool], ...]  # (text, highlighted); escaped when rendered
    language: str | None = None  # an interpreted meeting's line in the interpreter's other language (marked)

    @property
    def is_title(self) -> bool:
        return self.idx < 0


@dataclass
class Results:
    query: Query
    hits: list[Hit] = field(default_factory=list)
    recordings: int = 0
    truncated: bool = False


def stem(word: str) -> str:
    """A light Swedish stem of one lower-case word (never shorter than four letters)."""
    w = word.lower()
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= _MIN_STEM:
            w = w[: -len(suffix)]
            break
    for suffix in _DERIVATIONS:
        if w.endswith(suffix) and len(w) - len(suffix) >= _MIN_STEM:
            w = w[: -len(suffix)]
            break
    return w


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp") else ch for ch in text)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def parse_query(raw: str | None) -> Query:
    """The user's search text → a safe FTS5 expression; BadQuery with a Swedish message when it cannot be."""
    text = _clean(raw or "").strip()
    if not text:
        raise BadQuery("Skriv ett eller flera ord att söka efter.")
    if len(text) > MAX_QUERY:
        raise BadQuery(f"Sökningen är för lång (högst {MAX_QUERY} tecken). Korta ner den och försök igen.")
    if text.count('"') % 2:
        raise BadQuery('Ett citattecken saknar sin partner. En fras skrivs inom två citattecken: "god man".')
    notices: list[str] = []
    parts: list[str] = []
    for i, chunk in enumerate(text.split('"')):
        if i % 2:  # inside quotes: a phrase of exact words
            words = _words(chunk)
            if len(words) == 1:
                parts.append(_quote(words[0]))
            elif words:
                parts.append(_quote(" ".join(words)))
            continue
        for token in chunk.split():
            if token in _OPERATORS:
                notices.append("Sökoperatorer som AND, OR, NOT och NEAR används inte: alla ord ska finnas med, "
                               "och operatorn söktes som ett vanligt ord.")
            prefix = token.endswith("*")
            words = _words(token)
            if not words:
                if set(token) & _SPECIAL:
                    notices.append("Tecken som ^ : ( ) + - används inte i sökningen och hoppades över.")
                continue
            if set(token.rstrip("*")) & (_SPECIAL - {"-"}):
                notices.append("Tecken som ^ : ( ) + - används inte i sökningen och hoppades över.")
            for j, word in enumerate(words):
                last = j == len(words) - 1
                if prefix and last:
                    if len(word) < 2:
                        raise BadQuery("Skriv minst två bokstäver före * (till exempel utred*).")
                    parts.append(_quote(word) + " *")
                elif len(word) >= 3:
                    parts.append(_quote(stem(word)) + " *")
                else:
                    parts.append(_quote(word))
    if not parts:
        raise BadQuery("Sökningen innehåller inga ord att söka efter. Skriv bokstäver eller siffror.")
    if len(parts) > MAX_TERMS:
        raise BadQuery(f"Sökningen har för många ord (högst {MAX_TERMS}). Välj de viktigaste orden.")
    return Query(" ".join(parts), tuple(dict.fromkeys(notices)))


def _fragments(marked: str) -> tuple[tuple[str, bool], ...]:
    out: list[tuple[str, bool]] = []
    for i, piece in enumerate(re.split(f"[{HL_START}{HL_END}]", marked)):
        if piece:
            out.append((piece, i % 2 == 1))
    return tuple(out)


# Hits in recordings the user may read now, in one statement: folder rights as recordings.visible_rows,
# the retention deadline as one creation-time cut-off per clock (retention.hidden_at_or_before). Lines come
# newest first (FTS5 walks its index in rowid order and stops at the limit, so a common word costs no more
# than a rare one); titles (negative rowids, newest most negative) come first.
_HITS_SQL = (
    "SELECT f.rowid, f.recording_id, f.idx, snippet(search_fts, 0, :hs, :he, '…', 24) AS snip, r.title, "
    "s.start, CASE WHEN s.language != r.language THEN s.language END AS other_language "
    "FROM search_fts f JOIN recordings r ON r.id = f.recording_id "
    "LEFT JOIN folders fo ON fo.id = r.folder_id "
    "LEFT JOIN folder_shares sh ON sh.folder_id = fo.id AND sh.user_id = :u "
    "LEFT JOIN segments s ON s.id = f.rowid "
    "WHERE search_fts MATCH :q AND f.rowid {side} 0 "
    "AND (r.owner_id = :u OR fo.owner_id = :u OR sh.user_id IS NOT NULL) "
    "AND r.created_at > :sys_cut AND (:rtc_cut IS NULL OR coalesce(r.created_at_rtc, r.created_at) > :rtc_cut) "
    "ORDER BY f.rowid {order} LIMIT :lim")


def search(conn: Connection, user: User, raw: str | None, *, limit: int = DEFAULT_LIMIT) -> Results:
    """Up to `limit` hits (titles, then lines newest first) in the recordings the user may read now; audited."""
    query = parse_query(raw)
    results = Results(query)
    if user.can_read_content and not user.disabled:
        rcfg = access.retention_config(conn).retention
        reading = clock.read(rcfg.rtc_path)
        params = {"hs": HL_START, "he": HL_END, "u": user.id, "q": query.expression, "lim": limit + 1,
                  "sys_cut": retention.hidden_at_or_before(rcfg, reading.system),
                  "rtc_cut": retention.hidden_at_or_before(rcfg, reading.rtc) if reading.rtc is not None else None}
        rows = conn.execute(_HITS_SQL.format(side="<", order="ASC"), params).fetchall()
        if len(rows) <= limit:
            rows += conn.execute(_HITS_SQL.format(side=">", order="DESC"),
                                 {**params, "lim": limit + 1 - len(rows)}).fetchall()
        results.truncated = len(rows) > limit
        for r in rows[:limit]:
            results.hits.append(Hit(r["recording_id"], r["title"], int(r["idx"]), r["start"],
                                    _fragments(r["snip"] or ""), r["other_language"]))
    found = list(dict.fromkeys(h.recording_id for h in results.hits))
    results.recordings = len(found)
    with transaction(conn):
        audit.record(conn, user.actor, "search.query", user.actor, detail=f"count:{len(results.hits)}",
                     role=access.content_role(user), data={"recording_ids": found} if found else None)
    return results
