"""Correction suggestions (the "Förslag" tab): doubtful words of a transcript and what to do about them.

A suggestion is a span of word tokens in a line's current text (edits applied, `recordings.transcript_segments`):

* a word Whisper was unsure of (probability below `LOW_PROBABILITY`, from the `words` table, aligned to the
  current text so edited lines keep the probabilities of the words that are still there), and/or
* a near-miss of a lexicon term (`appliance.transcripts.lexicon`), with the term as the proposal.

Accepting replaces the span through the edit mechanism (`appliance.transcripts.edits.edit_segment`: history, search
index, conflict check); "accept all" does so for every occurrence of the same word(s) in the recording.
Dismissing records that the span is right (`suggestion_dismissals`; it lapses when the text there changes).
Once the recording's audio is shredded ahead of its text (appliance/recordings/audio_life.py) Whisper's
confidence is no longer offered (a doubtful word cannot be checked by listening): only lexicon terms remain.
Viewers see suggestions; accepting and dismissing need editor rights (NotFound otherwise). The audit log
gets ids and counts, never words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from appliance import clock
from appliance.errors import ApplianceError
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.recordings import audio_life, recordings
from appliance.transcripts import edits, lexicon
from appliance.users import access
from appliance.users.accounts import User

LOW_PROBABILITY = 0.5
MAX_SUGGESTIONS = 500
MSG_STALE = "Förslaget gäller inte längre (texten har ändrats). Ladda om sidan."


@dataclass(frozen=True)
class Suggestion:
    id: str                 # "<segment idx>-<first token>-<end token>"
    idx: int                # segment idx
    start: float            # where to play from (the word's time where known, else the line's)
    line: str               # the line's current text
    char_start: int
    char_end: int
    word: str               # the span as written
    term: str | None        # the proposal (a lexicon term), if any
    probability: float | None  # Whisper's lowest probability over the span, if known
    low: bool               # Whisper was unsure
    start_tok: int
    end_tok: int

    @property
    def before(self) -> str:
        return self.line[:self.char_start]

    @property
    def after(self) -> str:
        return self.line[self.char_end:]

    @property
    def key(self) -> str:
        return self.word.casefold()


def _align(word_rows: Sequence, tokens: Sequence[lexicon.Token]) -> list[tuple[float | None, float | None]]:
    """(probability, start time) per token of the current text, from Whisper's words where they still match."""
    w_tokens: list[tuple[str, float | None, float]] = []
    for w in word_rows:
        # NULL: the transcription backend gave no probability (migration 0018); never doubtful then.
        p = None if w["probability"] is None else float(w["probability"])
        for t in lexicon.tokenize(w["word"]):
            w_tokens.append((t.text.casefold(), p, float(w["start"])))
    out: list[tuple[float | None, float | None]] = [(None, None)] * len(tokens)
    matcher = SequenceMatcher(a=[w[0] for w in w_tokens], b=[t.text.casefold() for t in tokens], autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            _, p, s = w_tokens[block.a + k]
            out[block.b + k] = (p, s)
    return out


def _capitalised(word: str, term: str) -> str:
    """Keep a sentence-initial capital: "Oros anmälan" → "Orosanmälan" (abbreviations stay as they are)."""
    if word[:1].isupper() and term[:1].islower():
        return term[:1].upper() + term[1:]
    return term


def _words_by_line(conn: Connection, rec_id: str) -> dict[int, list]:
    words: dict[int, list] = {}
    for r in conn.execute('SELECT s.idx AS sidx, w.word, w.probability, w.start FROM words w JOIN segments s '
                          "ON s.id = w.segment_id WHERE s.recording_id = ? ORDER BY s.idx, w.idx", (rec_id,)):
        words.setdefault(r["sidx"], []).append(r)
    return words


def _dismissed(conn: Connection, rec_id: str) -> dict[tuple[int, int, int], str]:
    return {(r["idx"], r["start_tok"], r["end_tok"]): r["span"] for r in conn.execute(
        "SELECT idx, start_tok, end_tok, span FROM suggestion_dismissals WHERE recording_id = ?", (rec_id,))}


@dataclass(frozen=True)
class Doubt:
    """A word Whisper was unsure of, in a line's current text: what the recording page marks (issue 15)."""

    idx: int            # segment idx
    char_start: int
    char_end: int
    start: float        # where to play it from
    probability: float


def doubtful_words(conn: Connection, rec_id: str) -> list[Doubt]:
    """Words below LOW_PROBABILITY in the lines' current text, in transcript order, less those dismissed as right,
    for a recording the caller has authorised. The lighter half of `for_recording` (no lexicon near-misses, which
    are the costly part): the marks on the recording page, where a 90-minute transcript has a thousand lines."""
    words, dismissed = _words_by_line(conn, rec_id), _dismissed(conn, rec_id)
    out: list[Doubt] = []
    for seg in recordings.transcript_segments(conn, rec_id):
        if not any(w["probability"] is not None and w["probability"] < LOW_PROBABILITY
                   for w in words.get(seg.idx, ())):
            continue  # most lines: nothing Whisper was unsure of, nothing to align
        tokens = lexicon.tokenize(seg.text)
        for i, (p, start) in enumerate(_align(words[seg.idx], tokens)):
            t = tokens[i]
            if p is not None and p < LOW_PROBABILITY and \
                    dismissed.get((seg.idx, i, i + 1)) != seg.text[t.start:t.end].casefold():
                out.append(Doubt(seg.idx, t.start, t.end, seg.start if start is None else start, p))
    return out


def for_recording(conn: Connection, rec_id: str, lex: lexicon.Lexicon | None = None, *,
                  confidence: bool = True) -> list[Suggestion]:
    """Suggestions for a recording the caller has authorised (access.require_recording), in transcript order.
    `confidence` False: lexicon near-misses only, Whisper's word probabilities unused (the audio is gone)."""
    lex = lex or lexicon.load(conn)
    words, dismissed = _words_by_line(conn, rec_id), _dismissed(conn, rec_id)
    out: list[Suggestion] = []
    for seg in recordings.transcript_segments(conn, rec_id):
        text = seg.text
        tokens = lexicon.tokenize(text)
        if not tokens:
            continue
        aligned = _align(words.get(seg.idx, []), tokens)
        low = [i for i, (p, _s) in enumerate(aligned) if confidence and p is not None and p < LOW_PROBABILITY]
        matches = lex.find([t.text for t in tokens], low, lexicon.breaks_between(text, tokens))
        spans: list[tuple[int, int, str | None]] = [(m.start, m.end, m.term.text) for m in matches]
        covered = {i for m in matches for i in range(m.start, m.end)}
        spans += [(i, i + 1, None) for i in low if i not in covered]
        for a, b, term in sorted(spans):
            cs, ce = tokens[a].start, tokens[b - 1].end
            word = text[cs:ce]
            if dismissed.get((seg.idx, a, b)) == word.casefold():
                continue
            probs = [aligned[i][0] for i in range(a, b) if aligned[i][0] is not None]
            start = next((aligned[i][1] for i in range(a, b) if aligned[i][1] is not None), seg.start)
            out.append(Suggestion(f"{seg.idx}-{a}-{b}", seg.idx, start, text, cs, ce, word,
                                  _capitalised(word, term) if term else None,
                                  min(probs) if probs else None, any(i in low for i in range(a, b)), a, b))
            if len(out) >= MAX_SUGGESTIONS:
                return out
    return out


def _confidence(conn: Connection, row) -> bool:
    """Whether suggestions may use Whisper's confidence: only while the audio lives."""
    return audio_life.life(conn.cfg, row).available


def list_for_user(conn: Connection, user: User, rec_id: str) -> list[Suggestion]:
    """The Förslag tab (viewer rights: audited read, NotFound otherwise)."""
    row = access.require_recording(conn, user, rec_id, "recording.suggestions")
    return for_recording(conn, rec_id, confidence=_confidence(conn, row))


def _find(conn: Connection, row, sid: str) -> tuple[Suggestion, list[Suggestion]]:
    rec_id = row["id"]
    current = for_recording(conn, rec_id, confidence=_confidence(conn, row))
    chosen = next((s for s in current if s.id == sid), None)
    if chosen is None:
        raise ApplianceError(MSG_STALE)
    return chosen, current


def _occurrences(conn: Connection, rec_id: str, chosen: Suggestion) -> dict[int, list[tuple[int, int, str]]]:
    """Every occurrence of the chosen span's words in the recording: {segment idx: [(char start, end, text)]}."""
    want = [t.text.casefold() for t in lexicon.tokenize(chosen.word)]
    dismissed = _dismissed(conn, rec_id)
    found: dict[int, list[tuple[int, int, str]]] = {}
    for seg in recordings.transcript_segments(conn, rec_id):
        tokens = lexicon.tokenize(seg.text)
        folded = [t.text.casefold() for t in tokens]
        i = 0
        while i + len(want) <= len(tokens):
            j = i + len(want)
            if folded[i:j] == want and not lexicon.breaks_between(seg.text, tokens[i:j]):
                cs, ce = tokens[i].start, tokens[j - 1].end
                if dismissed.get((seg.idx, i, j)) != seg.text[cs:ce].casefold():
                    found.setdefault(seg.idx, []).append((cs, ce, seg.text[cs:ce]))
                i = j
            else:
                i += 1
    return found


def accept(conn: Connection, user: User, rec_id: str, sid: str, *, all_occurrences: bool = False,
           replacement: str | None = None) -> int:
    """Replace the suggestion's word (or every occurrence of it) by the proposed term or `replacement`.

    Editor rights (NotFound otherwise). Each changed line becomes an edit with history. Returns how many
    occurrences were replaced."""
    row = access.require_recording(conn, user, rec_id, "recording.suggestion_accept")
    chosen, _current = _find(conn, row, sid)
    new = edits.clean_text(replacement) if replacement and replacement.strip() else chosen.term
    if not new:
        raise ApplianceError("Skriv vad ordet ska ersättas med, eller avfärda förslaget.")
    if all_occurrences:
        targets = _occurrences(conn, rec_id, chosen)
    else:
        targets = {chosen.idx: [(chosen.char_start, chosen.char_end, chosen.word)]}
    segments = {s.idx: s for s in recordings.transcript_segments(conn, rec_id)}
    count = 0
    changed: list[int] = []
    for idx, spans in sorted(targets.items()):
        seg = segments[idx]
        text = seg.text
        for cs, ce, word in sorted(spans, reverse=True):  # right to left: offsets stay valid
            text = text[:cs] + (_capitalised(word, new) if not replacement else new) + text[ce:]
        if text != seg.text:
            edits.edit_segment(conn, user, rec_id, idx, text, base=seg.edit_id)
            count += len(spans)
            changed.append(idx)
    with transaction(conn):
        audit.record(conn, user.actor, "suggestion.accept", f"recording:{rec_id}", role=access.content_role(user),
                     data={"scope": "all" if all_occurrences else "one", "count": count, "segments": changed})
    return count


def dismiss(conn: Connection, user: User, rec_id: str, sid: str, *, all_occurrences: bool = False) -> int:
    """The word is right: hide this suggestion (or every current suggestion for the same word). Editor rights."""
    row = access.require_recording(conn, user, rec_id, "recording.suggestion_dismiss")
    with transaction(conn):
        chosen, current = _find(conn, row, sid)
        targets = [s for s in current if s.key == chosen.key] if all_occurrences else [chosen]
        conn.executemany(
            "INSERT OR REPLACE INTO suggestion_dismissals (recording_id, idx, start_tok, end_tok, span, "
            "dismissed_by, dismissed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(rec_id, s.idx, s.start_tok, s.end_tok, s.word.casefold(), user.id, clock.now()) for s in targets])
        audit.record(conn, user.actor, "suggestion.dismiss", f"recording:{rec_id}", role=access.content_role(user),
                     data={"scope": "all" if all_occurrences else "one", "count": len(targets),
                           "segments": sorted({s.idx for s in targets})})
    return len(targets)
