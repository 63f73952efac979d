"""Provisional speakers for the live transcript: each live step's new lines get a speaker while the recording
goes on; the whole recording is diarized once it is final (services/asr.py `run_diarize_once`), which settles them
(the steps after stop, the tail, get theirs only then: the final transcript is not delayed for them).

A step diarizes its new stretch plus CONTEXT_S of the audio before it (which `services/live_asr.py` has read
anyway), so the cost per step is bounded however long the meeting. The numbers
must stay the same person from step to step, yet nothing but the stored transcript is kept between steps (a
restarted worker goes on from the database): the lines already stored in that stretch, with their provisional
speakers, anchor it. The stretch's speakers are matched to those stored speakers by how long they overlap
(Hungarian assignment); a speaker of the stretch that matches none is someone new (the next free number). A
voice last heard before the stretch and back now gets a new number until the recording is settled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace

import numpy as np

from appliance.platform.context import Appliance
from appliance.ports import SAMPLE_RATE, DiarizeOptions, Diarizer, Segment, SpeakerTurn
from appliance.transcripts import store

log = logging.getLogger(__name__)

# Seconds of already transcribed audio diarized with a step's new lines: enough for the stored lines' speakers to
# anchor the numbers (a few turns), little enough that a step's cost stays that of its own audio plus this.
CONTEXT_S = 12.0


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def match(turns: Sequence[SpeakerTurn], stored: Sequence[Segment], first_free: int) -> dict[int, int]:
    """The stretch's speaker -> transcript speaker number: by overlap with the stored lines' speakers (each
    stored speaker taken at most once), the rest new numbers from `first_free` in order of first appearance."""
    from scipy.optimize import linear_sum_assignment

    ours = sorted({t.speaker for t in turns}, key=lambda s: min(t.start for t in turns if t.speaker == s))
    theirs = sorted({s.speaker for s in stored if s.speaker is not None})
    mapping: dict[int, int] = {}
    if ours and theirs:
        cost = np.zeros((len(ours), len(theirs)))
        for t in turns:
            for seg in stored:
                if seg.speaker is not None:
                    cost[ours.index(t.speaker), theirs.index(seg.speaker)] -= _overlap(t.start, t.end, seg.start,
                                                                                        seg.end)
        for r, c in zip(*linear_sum_assignment(cost), strict=True):
            if cost[r, c] < 0:  # some overlap: the same person
                mapping[ours[r]] = theirs[c]
    for s in ours:
        if s not in mapping:
            mapping[s] = first_free
            first_free += 1
    return mapping


def provisional(app: Appliance, diarizer: Diarizer, rec_id: str, audio: np.ndarray, offset: float,
                new: Sequence[Segment], speakers_hint: int | None) -> list[Segment]:
    """`new` (absolute times) with provisional speakers; `audio` starts at `offset` s and holds the new lines and
    the context before them (already stored lines, whose speakers anchor the numbers), of which CONTEXT_S is used."""
    if not new:
        return []
    skip = max(0, int((min(s.start for s in new) - CONTEXT_S - offset) * SAMPLE_RATE))
    audio, offset = audio[skip:], offset + skip / SAMPLE_RATE
    with closing(app.connect()) as conn:
        stored, first_free = store.speakers_since(conn, rec_id, offset)
    return label(diarizer, audio, offset, new, stored, first_free, speakers_hint, app.cfg.diarization.max_speakers)


def label(diarizer: Diarizer, audio: np.ndarray, offset: float, new: Sequence[Segment], stored: Sequence[Segment],
          first_free: int, speakers_hint: int | None, max_speakers: int) -> list[Segment]:
    """`new` (absolute times) with provisional speakers, from diarizing `audio` (which starts at `offset` s and
    covers the new lines and the stored lines `stored` before them; `first_free` is the next unused number). A
    failure leaves the lines unlabelled: the final diarization labels them anyway."""
    if not new:
        return []
    try:
        result = diarizer.diarize(audio, DiarizeOptions(num_speakers=speakers_hint, max_speakers=max_speakers))
    except Exception:
        log.exception("provisional speakers failed for a live step; the final diarization will label the lines")
        return list(new)
    turns = [SpeakerTurn(t.start + offset, t.end + offset, t.speaker) for t in result.turns]
    end = offset + len(audio) / SAMPLE_RATE
    mapping = match(turns, [s for s in stored if s.end > offset and s.start < end], first_free)
    out = []
    for seg in new:
        share: dict[int, float] = {}
        for t in turns:
            o = _overlap(seg.start, seg.end, t.start, t.end)
            if o > 0:
                share[mapping[t.speaker]] = share.get(mapping[t.speaker], 0.0) + o
        out.append(replace(seg, speaker=max(sorted(share), key=share.__getitem__)) if share else seg)
    return out
