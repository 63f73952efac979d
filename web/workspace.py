"""The recording page as a workspace (issue 15): what its templates need beyond the recording itself.

The page (templates/recording.html) puts the transcript with the player on the left and the assistant's tabs on
the right. Each transcript line is rendered by the `line` macro of templates/_segment.html, both on the page and
for `GET /recordings/<id>/lines` (web/recordings.py), which static/edit.js asks for to refresh edited lines in
place. Doubtful words (appliance.transcripts.suggestions.doubtful_words: Whisper was unsure) are marked in the
line, so the "next doubtful word" shortcut (static/player.js) can walk them.

Only view helpers live here: access is checked (and audited) by the view that renders the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flask import Flask, url_for

from appliance.transcripts import suggestions
from web import db


def doubts(rec_id: str) -> dict[int, list[suggestions.Doubt]]:
    """Words Whisper was unsure of, by line idx, for a recording the caller has authorised (the Förslag tab lists
    them too, with the lexicon's near-misses)."""
    out: dict[int, list[suggestions.Doubt]] = {}
    for d in suggestions.doubtful_words(db(), rec_id):
        out.setdefault(d.idx, []).append(d)
    return out


def line_parts(text: str, spans: Sequence[suggestions.Doubt] | None) -> list[tuple[str, float | None]]:
    """A line's text cut at its doubtful words: (text, None) for plain parts, (word, time) for a doubtful one.
    Overlapping or out-of-range spans (the text changed since) are skipped, so the text is always whole."""
    if not spans:
        return [(text, None)]
    parts: list[tuple[str, float | None]] = []
    pos = 0
    for d in sorted(spans, key=lambda d: d.char_start):
        if d.char_start < pos or d.char_end > len(text) or d.char_end <= d.char_start:
            continue
        if d.char_start > pos:
            parts.append((text[pos:d.char_start], None))
        parts.append((text[d.char_start:d.char_end], d.start))
        pos = d.char_end
    if pos < len(text):
        parts.append((text[pos:], None))
    return parts


@dataclass(frozen=True)
class LineUrls:
    """URL prefixes for a line's links, built once per page instead of twice per line (a 90-minute transcript has
    over a thousand lines)."""

    segments: str  # /recordings/<id>/segments/ : + <idx>/edit, <idx>/history

    def edit(self, idx: int) -> str:
        return f"{self.segments}{idx}/edit"

    def history(self, idx: int) -> str:
        return f"{self.segments}{idx}/history"


def line_urls(rec_id: str) -> LineUrls:
    return LineUrls(url_for("rec.segment_history", rec_id=rec_id, idx=0).removesuffix("0/history"))


def max_edit_id(segments: Iterable) -> int:
    """The newest edit among the lines shown: the page asks for lines edited after it (static/edit.js)."""
    return max((s.edit_id for s in segments), default=0)


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(line_parts=line_parts, line_urls=line_urls)
