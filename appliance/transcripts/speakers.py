"""Speakers of a transcript: the machine's labels (diarization, run by the asr unit), the names caseworkers give
them once per recording ("Handläggare", "Mamma") and corrections of single lines, with history.

The machine's speaker is stored on the segment row; names live in `recording_speakers` and corrected lines in
`segment_speakers`, keyed by (recording, idx) so a correction survives the asr worker replacing segment rows,
and every change is kept in `speaker_edits` (who, when, before, after). `recordings.transcript_segments`
applies all of it on read, so the page, the assistant and exports see the same names. The audit log gets ids
only, never a name.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from appliance import clock
from appliance.errors import ApplianceError, NotFound
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.ports import Segment, SpeakerTurn, Transcript
from appliance.recordings import recordings
from appliance.transcripts import edits
from appliance.users import access
from appliance.users.accounts import User

MAX_NAME = 60
MAX_SPEAKERS = 20  # machine speakers (at most 10) plus the ones caseworkers add
NEAREST_TURN_S = 1.0  # a line that overlaps no speech turn takes the nearest turn within this distance
NEW = "new"


default_name = recordings.default_speaker_name


def assign(segments: Sequence[Segment], turns: Sequence[SpeakerTurn]) -> list[int | None]:
    """The speaker of each segment: the one whose turns overlap it most (ties: the earlier-numbered); a segment
    overlapping no turn takes the nearest turn within NEAREST_TURN_S, else None. Speakers are renumbered
    1..n in order of their first line, so a speaker heard only between lines leaves no gap."""
    turns = sorted(turns, key=lambda t: t.start)
    starts = [t.start for t in turns]
    longest = max((t.end - t.start for t in turns), default=0.0)
    out: list[int | None] = []
    for seg in segments:
        overlap: dict[int, float] = {}
        # Only turns starting before the segment ends and not ending before it starts can overlap it.
        lo = bisect.bisect_left(starts, seg.start - longest)
        hi = bisect.bisect_right(starts, seg.end)
        for t in turns[lo:hi]:
            o = min(seg.end, t.end) - max(seg.start, t.start)
            if o > 0:
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
        if overlap:
            out.append(max(sorted(overlap), key=lambda s: overlap[s]))
            continue
        near = [t for t in turns[max(0, lo - 1):hi + 1]
                if min(abs(t.end - seg.start), abs(t.start - seg.end)) <= NEAREST_TURN_S]
        out.append(min(near, key=lambda t: min(abs(t.end - seg.start), abs(t.start - seg.end))).speaker
                   if near else None)
    number: dict[int, int] = {}
    for s in out:
        if s is not None:
            number.setdefault(s, len(number) + 1)
    return [None if s is None else number[s] for s in out]


def store_machine(conn: Connection, rec_id: str, transcript: Transcript) -> None:
    """Write the machine's speakers of freshly stored segments and how diarization went (inside the asr
    worker's result transaction, after the segment rows were written)."""
    store_labels(conn, rec_id, {idx: seg.speaker for idx, seg in enumerate(transcript.segments)},
                 transcript.diarization)


def store_labels(conn: Connection, rec_id: str, labels: dict[int, int | None], status: str) -> None:
    """The machine's speaker per segment idx (None: unknown) and the diarization status of the recording."""
    conn.executemany("UPDATE segments SET speaker = ? WHERE recording_id = ? AND idx = ?",
                     [(speaker, rec_id, idx) for idx, speaker in labels.items()])
    conn.execute("UPDATE recordings SET diarization = ? WHERE id = ?", (status, rec_id))


def diarization(conn: Connection, rec_id: str) -> str | None:
    """How diarization went for the recording's transcript: done, failed, off, or None (not transcribed)."""
    row = conn.execute("SELECT diarization FROM recordings WHERE id = ?", (rec_id,)).fetchone()
    return row["diarization"] if row else None


@dataclass(frozen=True)
class Speaker:
    number: int
    name: str
    named: bool  # a caseworker gave the name (else the default "Talare N")
    lines: int  # how many transcript lines are theirs now


def names(conn: Connection, rec_id: str) -> dict[int, str]:
    """The names caseworkers gave (speaker → name); the caller has authorised the recording."""
    return {r["speaker"]: r["name"] for r in conn.execute(
        "SELECT speaker, name FROM recording_speakers WHERE recording_id = ?", (rec_id,))}


def list_speakers(conn: Connection, rec_id: str, segments: Sequence | None = None) -> list[Speaker]:
    """Every speaker that has a line, a name or was found by the machine, in number order (the caller has
    authorised the recording). `segments` (from recordings.transcript_segments) saves reading them again."""
    if segments is None:
        segments = recordings.transcript_segments(conn, rec_id)
    given = names(conn, rec_id)
    counts: dict[int, int] = {}
    for seg in segments:
        if seg.speaker is not None:
            counts[seg.speaker] = counts.get(seg.speaker, 0) + 1
    # The machine's speakers stay listed after all their lines were moved, so a line can be moved back.
    machine = {r[0] for r in conn.execute(
        "SELECT DISTINCT speaker FROM segments WHERE recording_id = ? AND speaker IS NOT NULL", (rec_id,))}
    return [Speaker(n, given.get(n, default_name(n)), n in given, counts.get(n, 0))
            for n in sorted(set(counts) | set(given) | machine)]


def _speaker_number(value: int | str | None) -> int:
    try:
        n = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= MAX_SPEAKERS:
        raise ApplianceError("Välj en av talarna i listan.")
    return n


def rename(conn: Connection, user: User, rec_id: str, speaker: int | str, name: str | None) -> str:
    """Give a speaker a name for the whole recording (editor rights; NotFound otherwise); an empty name goes
    back to "Talare N". Returns the name now shown."""
    access.require_recording(conn, user, rec_id, "recording.speaker_rename")
    number = _speaker_number(speaker)
    if number not in {s.number for s in list_speakers(conn, rec_id)}:
        raise ApplianceError("Den talaren finns inte i utskriften.")
    name = edits.clean_text(name)
    if len(name) > MAX_NAME:
        raise ApplianceError(f"Namnet är för långt (högst {MAX_NAME} tecken).")
    with transaction(conn):
        before = names(conn, rec_id).get(number, default_name(number))
        after = name or default_name(number)
        if after == before:
            return after
        if name and name != default_name(number):
            conn.execute("INSERT INTO recording_speakers (recording_id, speaker, name) VALUES (?, ?, ?) "
                         "ON CONFLICT (recording_id, speaker) DO UPDATE SET name = excluded.name",
                         (rec_id, number, name))
        else:
            conn.execute("DELETE FROM recording_speakers WHERE recording_id = ? AND speaker = ?", (rec_id, number))
        edit_id = _history(conn, user, rec_id, "name", number, None, before, after)
        audit.record(conn, user.actor, "speaker.rename", f"recording:{rec_id}", role=access.content_role(user),
                     data={"speaker": number, "edit": edit_id})
    return after


def set_line_speaker(conn: Connection, user: User, rec_id: str, idx: int, speaker: int | str) -> int:
    """Give one line another speaker (editor rights; NotFound otherwise): an existing one, or NEW for a speaker
    not seen before. Returns the line's speaker number."""
    access.require_recording(conn, user, rec_id, "recording.speaker_assign")
    seg = recordings.transcript_segment(conn, rec_id, idx)
    if seg is None:
        raise NotFound(edits.MSG_SEGMENT)
    known = {s.number for s in list_speakers(conn, rec_id)}
    if speaker == NEW:
        number = max(known, default=0) + 1
        if number > MAX_SPEAKERS:
            raise ApplianceError(f"Utskriften kan ha högst {MAX_SPEAKERS} talare.")
    else:
        number = _speaker_number(speaker)
        if number not in known:
            raise ApplianceError("Den talaren finns inte i utskriften.")
    if number == seg.speaker:
        return number
    with transaction(conn):
        conn.execute("INSERT INTO segment_speakers (recording_id, idx, speaker) VALUES (?, ?, ?) "
                     "ON CONFLICT (recording_id, idx) DO UPDATE SET speaker = excluded.speaker", (rec_id, idx, number))
        edit_id = _history(conn, user, rec_id, "line", number, idx,
                           "" if seg.speaker is None else str(seg.speaker), str(number))
        audit.record(conn, user.actor, "speaker.assign", f"recording:{rec_id}", role=access.content_role(user),
                     data={"segment": idx, "speaker": number, "edit": edit_id})
    return number


def _history(conn: Connection, user: User, rec_id: str, kind: str, speaker: int, idx: int | None,
             before: str, after: str) -> int:
    cur = conn.execute(
        "INSERT INTO speaker_edits (recording_id, kind, speaker, idx, before, after, user_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (rec_id, kind, speaker, idx, before, after, user.id, clock.now()))
    return int(cur.lastrowid)


@dataclass(frozen=True)
class SpeakerEdit:
    kind: str  # name or line
    speaker: int
    idx: int | None
    before: str
    after: str
    user_name: str | None
    created_at: float


def history(conn: Connection, rec_id: str) -> list[SpeakerEdit]:
    """Every speaker change of a recording, oldest first (the caller has authorised the recording)."""
    rows = conn.execute(
        "SELECT e.kind, e.speaker, e.idx, e.before, e.after, e.created_at, "
        "coalesce(nullif(u.display_name, ''), u.username) AS name FROM speaker_edits e "
        "LEFT JOIN users u ON u.id = e.user_id WHERE e.recording_id = ? ORDER BY e.id", (rec_id,))
    return [SpeakerEdit(r["kind"], r["speaker"], r["idx"], r["before"], r["after"], r["name"], r["created_at"])
            for r in rows]
