"""What the server-backed transcribers (Triton, Riva) share: a recording sent piece by piece, with retries.

`transcribe_chunked` cuts the audio at silences (`models.asr_chunks`), sends up to `in_flight` pieces at once
(the server's dynamic batcher groups them), retries a piece whose request failed for a transient reason
(server down, restarting, overloaded, timed out) with exponential backoff, and yields the segments in order
with times in the recording. Pieces already transcribed are kept while a later one is retried. When a piece
still fails, `AsrUnavailable` ends the transcription with a message for the recording page; the asr unit puts
the job back in the queue (services/asr.py) and nothing is lost. Only audio and settings go to the server;
nothing of the transcript is logged.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from appliance.errors import AsrUnavailable
from appliance.ports import SAMPLE_RATE, Segment, TranscribeOptions, TranscriptInfo, Word
from models import asr_chunks

log = logging.getLogger(__name__)

PAD_SAMPLES = SAMPLE_RATE // 5  # 0.2 s of the pause kept around speech when a piece is trimmed to its speech


class Transient(Exception):
    """A backend's request failed in a way a retry may cure (the message names the server, never content)."""


@dataclass(frozen=True)
class PieceResult:
    segments: list[Segment]  # times from the start of the audio that was sent
    language: str | None = None


@dataclass(frozen=True)
class Retry:
    retries: int
    backoff_seconds: float
    unavailable_message: str  # Swedish, for the recording page: which server, that the job is retried


Send = Callable[[np.ndarray, TranscribeOptions], PieceResult]


def call_with_retries(fn: Callable[[], PieceResult], retry: Retry, what: str) -> PieceResult:
    """`fn()`, retried on `Transient` after backoff_seconds, 2x, 4x …; then AsrUnavailable."""
    for attempt in range(retry.retries + 1):
        try:
            return fn()
        except Transient as exc:
            if attempt == retry.retries:
                log.warning("%s failed %d time(s), giving up: %s", what, attempt + 1, exc)
                raise AsrUnavailable(retry.unavailable_message) from exc
            wait = retry.backoff_seconds * 2 ** attempt
            log.warning("%s failed (%s); retry %d of %d in %.1f s", what, exc, attempt + 1, retry.retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def shift(segment: Segment, seconds: float) -> Segment:
    """The segment `seconds` later (a piece's times made the recording's)."""
    if not seconds:
        return segment
    return replace(segment, start=segment.start + seconds, end=segment.end + seconds,
                   words=tuple(Word(w.start + seconds, w.end + seconds, w.word, w.probability) for w in segment.words))


def transcribe_chunked(audio: np.ndarray, options: TranscribeOptions, send: Send, *, max_seconds: float,
                       in_flight: int, retry: Retry, trim_to_speech: bool = False,
                       name: str = "server") -> tuple[TranscriptInfo, Iterator[Segment]]:
    """Transcribe `audio` through `send` (one request per piece of at most `max_seconds`).

    `trim_to_speech`: send only each piece's speech (plus a little pause) and skip pieces without speech, for
    servers that run no VAD of their own (the TensorRT-LLM protocol). Otherwise a piece is sent whole and only
    a piece VAD found silent is skipped, when `options.vad_filter` asks to skip silence."""
    duration = len(audio) / SAMPLE_RATE
    stretches = asr_chunks.speech_stretches(audio, max_seconds) if trim_to_speech else None
    pieces = asr_chunks.plan(audio, max_seconds, stretches)
    skip = trim_to_speech or options.vad_filter
    todo = [c for c in pieces if not (skip and c.silent)]
    log.info("%s: %.1f s of audio in %d piece(s) of at most %.0f s (%d silent, skipped)", name, duration,
             len(todo), max_seconds, len(pieces) - len(todo))

    def run(chunk: asr_chunks.Chunk, index: int) -> tuple[float, PieceResult]:
        a, b = chunk.speech_span(PAD_SAMPLES) if trim_to_speech else (chunk.start, chunk.end)
        piece = audio[a:b]
        return a / SAMPLE_RATE, call_with_retries(lambda: send(piece, options), retry,
                                                  f"{name}: piece {index + 1}/{len(todo)}")

    language = options.language or None
    first: tuple[float, PieceResult] | None = None
    if not language and todo:  # language detection: the first piece answers it before the info is returned
        first = run(todo[0], 0)
        language = first[1].language
    info = TranscriptInfo(language=language or "", duration=duration)
    return info, _in_order(todo, first, run, in_flight)


def _in_order(todo: list[asr_chunks.Chunk], first: tuple[float, PieceResult] | None,
              run: Callable[[asr_chunks.Chunk, int], tuple[float, PieceResult]], in_flight: int) -> Iterator[Segment]:
    """The pieces' segments in recording order, up to `in_flight` requests running at once."""
    start = 0
    if first is not None:
        offset, result = first
        yield from (shift(s, offset) for s in result.segments)
        start = 1
    if start >= len(todo):
        return
    pool = ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="asr-request")
    pending: deque[Future] = deque()
    try:
        nxt = start
        while nxt < len(todo) or pending:
            while nxt < len(todo) and len(pending) < in_flight:
                pending.append(pool.submit(run, todo[nxt], nxt))
                nxt += 1
            offset, result = pending.popleft().result()
            yield from (shift(s, offset) for s in result.segments)
    finally:  # also when the consumer stops early (a stopping worker): drop what was not started
        for f in pending:
            f.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
