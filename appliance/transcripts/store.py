"""Transcript storage: the one place segment and word rows are written (the asr unit's results).

`save_transcript` writes a whole transcript (an upload's job result, replacing what a retried job wrote);
`append_live_step` writes one step of a live transcript together with the session's new position, and marks
the transcript final at the end (services/live_asr.py); its lines carry provisional speakers
(services/live_speakers.py), settled by `store_speaker_labels` once the whole recording is diarized. Both run
inside the caller's result transaction.
Reading goes through `appliance.recordings.recordings.transcript_segments` (with edits and speakers applied).
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.platform import audit
from appliance.platform.db import Connection
from appliance.ports import Segment, Transcript
from appliance.recordings import live, recordings
from appliance.transcripts import speakers

ACTOR = recordings.ASR_ACTOR


def _insert(conn: Connection, rec_id: str, first: int, segments: Sequence[Segment]) -> None:
    for idx, seg in enumerate(segments, first):
        cur = conn.execute('INSERT INTO segments (recording_id, idx, start, "end", text, speaker, language) '
                           'VALUES (?, ?, ?, ?, ?, ?, ?)',
                           (rec_id, idx, seg.start, seg.end, seg.text.strip(), seg.speaker, seg.language))
        conn.executemany(
            'INSERT INTO words (segment_id, idx, start, "end", word, probability) VALUES (?, ?, ?, ?, ?, ?)',
            [(cur.lastrowid, i, w.start, w.end, w.word, w.probability) for i, w in enumerate(seg.words)])


def replace_segments(conn: Connection, rec_id: str, segments: Sequence[Segment]) -> None:
    """Replace the recording's segments (a retried job never duplicates them)."""
    conn.execute("DELETE FROM segments WHERE recording_id = ?", (rec_id,))
    _insert(conn, rec_id, 0, segments)


def save_transcript(conn: Connection, rec_id: str, transcript: Transcript) -> None:
    """An upload's finished transcript: segments, the machine's speakers, the recording ready; audited by
    counts only. A failed diarization is on record, the transcript delivered all the same."""
    replace_segments(conn, rec_id, transcript.segments)
    speakers.store_machine(conn, rec_id, transcript)
    if transcript.diarization == "failed":
        audit.record(conn, ACTOR, "recording.diarize", f"recording:{rec_id}", result="failed")
    recordings.mark_transcribed(conn, rec_id, language=transcript.info.language, duration=transcript.info.duration)
    audit.record(conn, ACTOR, "recording.transcribed", f"recording:{rec_id}",
                 detail=f"segments:{len(transcript.segments)}")


def segment_times(conn: Connection, rec_id: str) -> dict[int, Segment]:
    """The stored lines' times by idx, in order, without text (for diarizing a finished live transcript)."""
    return {r["idx"]: Segment(r["start"], r["end"], "") for r in conn.execute(
        'SELECT idx, start, "end" FROM segments WHERE recording_id = ? ORDER BY idx', (rec_id,))}


def speakers_since(conn: Connection, rec_id: str, since: float) -> tuple[list[Segment], int]:
    """The machine's speakers of the lines ending after `since` s (times only, no text) and the next speaker number
    not yet used: what a live step needs to keep its provisional speakers' numbers (services/live_speakers.py)."""
    lines = [Segment(r["start"], r["end"], "", speaker=r["speaker"]) for r in conn.execute(
        'SELECT start, "end", speaker FROM segments WHERE recording_id = ? AND "end" > ? ORDER BY idx',
        (rec_id, since))]
    top = conn.execute("SELECT coalesce(max(speaker), 0) FROM segments WHERE recording_id = ?", (rec_id,)).fetchone()[0]
    return lines, int(top) + 1


def store_speaker_labels(conn: Connection, rec_id: str, labels: dict[int, int | None] | None) -> str:
    """Speakers (by line idx) of a transcript stored earlier; None: diarization failed (audited)."""
    if labels is None:
        speakers.store_labels(conn, rec_id, {}, "failed")
        audit.record(conn, ACTOR, "recording.diarize", f"recording:{rec_id}", result="failed")
        return "failed"
    speakers.store_labels(conn, rec_id, labels, "done")
    return "done"


def append_live_step(conn: Connection, rec_id: str, worker: str, *, start: int, end: int,
                     segments: Sequence[Segment], final: bool, available: int) -> bool:
    """One live step's lines and the session's new position (samples), if the step's lease still holds and no
    one moved the position meanwhile; False otherwise (the result is discarded). At the end of a stopped
    recording the transcript becomes final (the recording ready, audited with its line count)."""
    if not live.asr_still_owns(conn, rec_id, worker, start):
        return False
    first = conn.execute("SELECT coalesce(max(idx) + 1, 0) FROM segments WHERE recording_id = ?",
                         (rec_id,)).fetchone()[0]
    _insert(conn, rec_id, first, segments)
    done = final and end >= available
    live.advance_asr(conn, rec_id, end, None if done else worker)
    if final:
        recordings.set_transcription_progress(conn, rec_id, 1.0 if done else min(0.99, end / max(available, 1)))
    if done:
        total = conn.execute("SELECT count(*) FROM segments WHERE recording_id = ?", (rec_id,)).fetchone()[0]
        recordings.mark_transcribed(conn, rec_id)
        audit.record(conn, ACTOR, "recording.transcribed", f"recording:{rec_id}", detail=f"segments:{total}")
    return True
