"""Cutting long audio into requests for an inference server, at silences, so no word is lost at a cut.

A server-backed transcriber (Triton, Riva) sends a recording as pieces of at most `max_seconds`. The pieces
cover the whole recording, one after another with no gap and no overlap, and every cut lies in the middle of a
pause that Silero VAD (as faster-whisper ships it) found between two stretches of speech. Only speech that runs
on for longer than a whole piece without any pause of 100 ms is cut inside (VAD's own `max_speech_duration_s`
rule: at its last short silence, else hard), which real conversations do not do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.ports import SAMPLE_RATE

# A pause at least this long between two stretches of speech may take a cut (each side keeps half of it).
MIN_PAUSE_MS = 300


@dataclass(frozen=True)
class Chunk:
    start: int  # samples, inclusive
    end: int  # samples, exclusive
    speech: tuple[tuple[int, int], ...] | None  # stretches of speech inside it (absolute samples); None: not
    # looked for (a recording short enough for one piece)

    @property
    def offset(self) -> float:
        """Where the piece starts in the recording, in seconds (added to the times the server returns)."""
        return self.start / SAMPLE_RATE

    @property
    def silent(self) -> bool:
        """VAD found no speech in it."""
        return self.speech == ()

    def speech_span(self, pad: int = 0) -> tuple[int, int]:
        """From the first speech to the last inside the piece, `pad` samples wider, within the piece (the whole
        piece if it was not looked at)."""
        if not self.speech:
            return self.start, self.end
        return max(self.start, self.speech[0][0] - pad), min(self.end, self.speech[-1][1] + pad)


def speech_stretches(audio: np.ndarray, max_seconds: float) -> list[tuple[int, int]]:
    """[(start, end)] samples of speech, separated by pauses of at least MIN_PAUSE_MS, none longer than
    `max_seconds` (longer speech is split by VAD at its last short silence)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=MIN_PAUSE_MS, speech_pad_ms=0,
                         max_speech_duration_s=max(1.0, max_seconds - 1.0))
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(audio, options, SAMPLE_RATE)]


def plan(audio: np.ndarray, max_seconds: float, stretches: list[tuple[int, int]] | None = None) -> list[Chunk]:
    """Contiguous pieces covering all of `audio`, each at most `max_seconds` long, cut only between stretches
    of speech (at the middle of the pause where it can, else as far from speech as the length allows)."""
    n = len(audio)
    limit = int(max_seconds * SAMPLE_RATE)
    if n <= limit:
        return [Chunk(0, n, None if stretches is None else tuple(stretches))]
    if stretches is None:
        stretches = speech_stretches(audio, max_seconds)
    chunks: list[Chunk] = []
    start, inside = 0, []  # the open piece: its start and the stretches already in it
    for s, e in [*stretches, (n, n)]:  # (n, n): the end of the audio closes the last piece
        while e - start > limit:
            if s > start:  # cut in the pause [end of the last stretch inside, s]
                prev_end = inside[-1][1] if inside else start
                # Within the limit, and where the pause allows, leaving (s, e) room to fit into the next piece.
                lo, hi = max(prev_end, e - limit), min(s, start + limit)
                cut = min(max((prev_end + s) // 2, lo), hi) if lo <= hi else hi
                chunks.append(Chunk(start, cut, tuple(inside)))
            else:  # a stretch longer than a piece from the piece's start (VAD found no pause in it): cut hard
                cut = start + limit
                chunks.append(Chunk(start, cut, ((s, cut),)))
                s = cut
            start, inside = cut, []
        if e > s:
            inside.append((s, e))
    chunks.append(Chunk(start, n, tuple(inside)))
    return chunks
