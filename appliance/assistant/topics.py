"""Topic table of contents: short titles for the stretches of a conversation, each with the segment (and so
the time) where it starts; the recording page lists them as links that jump the player there.

The transcript is cut into windows that fit the model's context (`windows`); for each window the model
names up to a few topics and the segment each starts at, as grammar-constrained JSON whose segment numbers
can only be those of that window. The windows' topics are merged in transcript order (a topic repeated across
a window boundary is kept once), so a 90-minute meeting gets a table of contents of the whole meeting, with
progress reported per window. Topics are stored with the recording (`topics`, migration 0014; deleted with
it) and replaced when generated again. Generating reads the transcript: an audited content read
(`recording.topics`, viewer rights).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance import clock
from appliance.assistant import prompts
from appliance.assistant.chat import MSG_NO_TRANSCRIPT, prompt_budget_chars, segment_positions
from appliance.assistant.transcript import NumberedSegment, numbered_segments
from appliance.errors import ApplianceError
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.ports import ChatModel
from appliance.transcripts import pseudonymize
from appliance.users import access
from appliance.users.accounts import User

log = logging.getLogger(__name__)

MAX_PER_WINDOW = 4
MAX_TITLE = 80
ANSWER_TOKENS = 300
TASK = ("Uppgift: gör en innehållsförteckning över samtalet. Ge varje ämne som samtalet tar upp en kort "
        "rubrik (högst sex ord) och numret på raden där ämnet börjar. Ämnena kommer i samtalets ordning.")
MSG_INTERRUPTED = "Innehållsförteckningen avbröts. Försök igen."


@dataclass(frozen=True)
class Topic:
    title: str
    segment: int     # the numbered segment where it starts (1-based)
    idx: int         # that segment's index (player link)
    start: float


@dataclass(frozen=True)
class TopicJob:
    user: User
    recording_id: str
    segments: list[NumberedSegment]
    windows: list[list[NumberedSegment]]
    revealed: bool


def windows(segments: list[NumberedSegment], budget_chars: int) -> list[list[NumberedSegment]]:
    """Consecutive runs of segments, each within `budget_chars` of prompt lines (at least one segment)."""
    out: list[list[NumberedSegment]] = []
    current: list[NumberedSegment] = []
    used = 0
    for s in segments:
        cost = len(s.line()) + 1
        if current and used + cost > budget_chars:
            out.append(current)
            current, used = [], 0
        current.append(s)
        used += cost
    if current:
        out.append(current)
    return out


def schema(numbers: list[int]) -> dict:
    return {"type": "json_object", "schema": {
        "type": "object",
        "properties": {"topics": {
            "type": "array", "minItems": 1, "maxItems": MAX_PER_WINDOW,
            "items": {"type": "object",
                      "properties": {"title": {"type": "string", "minLength": 2, "maxLength": 60},
                                     "segment": {"type": "integer", "enum": numbers}},
                      "required": ["title", "segment"]}}},
        "required": ["topics"]}}


def parse(text: str, allowed: set[int]) -> list[tuple[str, int]]:
    """(title, segment) pairs from the model's JSON; anything malformed or outside `allowed` is dropped."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    items = data.get("topics") if isinstance(data, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        title = " ".join(str(item.get("title", "")).split()).strip(" .:-")[:MAX_TITLE]
        segment = item.get("segment")
        if title and isinstance(segment, int) and not isinstance(segment, bool) and segment in allowed:
            out.append((title, segment))
    return out


def merge(found: list[tuple[str, int]], segments: dict[int, NumberedSegment]) -> list[Topic]:
    """In transcript order; one topic per start segment; a title repeated back to back is kept once."""
    out: list[Topic] = []
    seen_segments: set[int] = set()
    for title, number in sorted(found, key=lambda t: t[1]):
        if number in seen_segments or (out and out[-1].title.casefold() == title.casefold()):
            continue
        seen_segments.add(number)
        seg = segments[number]
        out.append(Topic(title, number, seg.idx, seg.start))
    return out


def prepare(conn: Connection, user: User, rec_id: str, *, reveal: bool = False, n_ctx: int = 4096) -> TopicJob:
    """Authorise (audited, NotFound otherwise) and cut the transcript into windows."""
    access.require_recording(conn, user, rec_id, "recording.topics")
    segments = numbered_segments(conn, rec_id, reveal=reveal, user=user)
    if not segments:
        raise ApplianceError(MSG_NO_TRANSCRIPT)
    return TopicJob(user, rec_id, segments, windows(segments, prompt_budget_chars(n_ctx, ANSWER_TOKENS)), reveal)


def generate(conn: Connection, client: ChatModel, job: TopicJob, *,
             progress: Callable[[int, int], None] | None = None,
             stop: threading.Event | None = None) -> list[Topic]:
    """Ask the model window by window, then store the merged table of contents (replacing the old one).
    Raises LlmError (a message to show; nothing stored) when the model fails."""
    found: list[tuple[str, int]] = []
    total = len(job.windows)
    if progress:
        progress(0, total)
    for i, win in enumerate(job.windows):
        if stop is not None and stop.is_set():
            raise ApplianceError(MSG_INTERRUPTED)
        numbers = [s.number for s in win]
        messages = [prompts.system_message(TASK),
                    {"role": "user", "content": prompts.transcript_block(win) + "\n\nInnehållsförteckning:"}]
        reply = client.complete(messages, response_format=schema(numbers), max_tokens=ANSWER_TOKENS)
        found.extend(parse(reply.text, set(numbers)))
        if progress:
            progress(i + 1, total)
    result = merge(found, {s.number: s for s in job.segments})
    if not result:  # the model named nothing usable: the conversation's start is still a topic
        first = job.segments[0]
        result = [Topic("Samtalets början", first.number, first.idx, first.start)]
    now = clock.now()
    with transaction(conn):
        conn.execute("DELETE FROM topics WHERE recording_id = ?", (job.recording_id,))
        conn.executemany(
            "INSERT INTO topics (recording_id, pos, title, segment, start, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(job.recording_id, i, t.title, t.segment, t.start, now) for i, t in enumerate(result)])
        audit.record(conn, job.user.actor, "topics.generated", f"recording:{job.recording_id}",
                     role=access.content_role(job.user),
                     data={"count": len(result), "windows": total, "revealed": job.revealed})
    log.info("topics for %s: %d from %d windows", job.recording_id, len(result), total)
    return result


def for_recording(conn: Connection, rec_id: str) -> list[Topic]:
    """The stored table of contents (the caller has authorised the recording). A topic whose segment no
    longer exists is dropped."""
    idx_of = segment_positions(conn, rec_id)
    out = []
    for r in conn.execute("SELECT title, segment, start FROM topics WHERE recording_id = ? ORDER BY pos", (rec_id,)):
        seg = idx_of.get(r["segment"])
        if seg is not None:
            title = pseudonymize.reidentify(conn, rec_id, r["title"])  # the real names, for the caseworker
            out.append(Topic(title, r["segment"], seg.idx, seg.start))  # the line's current start
    return out
