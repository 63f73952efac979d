"""Interpreted meetings: a language per line, for any transcriber behind the `Transcriber` port.

When `TranscribeOptions.languages` names two or more languages (the recording's and the interpreter's other
one), `PerLineLanguages` cuts the audio into stretches of speech with Silero VAD (models/vad.py), transcribes
every stretch once in each language with the wrapped transcriber and keeps the transcription that fits the audio
best: the highest mean token log-probability (`Segment.avg_logprob`, weighted by line length; the mean log word
probability for a backend that reports none). Each kept line carries its language (`Segment.language`).

What was measured (bench/interpreted.py, embedded Whisper base, espeak-ng speech):
- Whisper's own language detection per stretch, restricted to the two languages, took espeak-ng's Swedish for
  English in 6 of 12 stretches of a Swedish–English meeting; comparing the two transcriptions got them right.
  Whisper forced into the wrong language tends to translate rather than transcribe, with visibly lower
  confidence.
- Transcribing whole windows of several stretches once per language (cheaper: Whisper encodes 30 s at a time)
  failed: on a window that mixes the languages base Whisper returned nothing at all in either language for the
  first 30 s of a Swedish–Arabic meeting (lines lost), and faster-whisper reports one log-probability per
  30-second window, so stretches inside a window cannot be told apart by it.
So each stretch is transcribed on its own, in each language: several times the work of a plain transcription
(every call encodes a padded 30-second window), paid only by recordings marked as interpreted. With fewer than
two languages the wrapper hands the call straight to the transcriber it wraps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from appliance.ports import SAMPLE_RATE, Segment, TranscribeOptions, Transcriber, TranscriptInfo, Word
from models.vad import speech_regions

MIN_SILENCE_MS = 500   # a pause this long ends a stretch: turns between speaker and interpreter are longer
PAD_S = 0.2            # audio kept around a stretch, so its first and last words are not clipped


def _score(segments: list[Segment]) -> float:
    """How well a transcription fits its audio: higher is better; an empty one fits nothing."""
    weighted = [(s.avg_logprob, max(len(s.text), 1)) for s in segments if s.avg_logprob is not None]
    if weighted:
        return sum(lp * n for lp, n in weighted) / sum(n for _, n in weighted)
    words = [w.probability for s in segments for w in s.words if w.probability is not None]
    if words:
        return sum(math.log(max(p, 1e-6)) for p in words) / len(words)
    return -math.inf


def _shifted(segment: Segment, offset: float, language: str) -> Segment:
    words = tuple(Word(w.start + offset, w.end + offset, w.word, w.probability) for w in segment.words)
    return replace(segment, start=segment.start + offset, end=segment.end + offset, words=words, language=language)


class PerLineLanguages:
    """A Transcriber that gives every stretch of speech the best-fitting of `options.languages`."""

    def __init__(self, inner: Transcriber) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, attr: str):  # the wrapped backend's own attributes (model_dir …) stay reachable
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[TranscriptInfo, Iterator[Segment]]:
        languages = tuple(dict.fromkeys(options.languages))
        if len(languages) < 2:
            return self.inner.transcribe(audio, options)
        duration = len(audio) / SAMPLE_RATE
        regions = speech_regions(audio, MIN_SILENCE_MS) if options.vad_filter else [(0, len(audio))]
        return TranscriptInfo(languages[0], duration), self._lines(audio, regions, languages, options)

    def _lines(self, audio: np.ndarray, regions: list[tuple[int, int]], languages: tuple[str, ...],
               options: TranscribeOptions) -> Iterator[Segment]:
        pad = int(PAD_S * SAMPLE_RATE)
        for start, end in regions:
            lo, hi = max(0, start - pad), min(len(audio), end + pad)
            best: tuple[float, str, list[Segment]] | None = None
            for language in languages:
                one = replace(options, language=language, languages=(), vad_filter=False)
                _info, segments = self.inner.transcribe(audio[lo:hi].copy(), one)
                found = [s for s in segments if s.text.strip()]
                score = _score(found)
                if best is None or score > best[0]:
                    best = (score, language, found)
            _, language, found = best
            for s in found:
                yield _shifted(s, lo / SAMPLE_RATE, language)


def per_line_languages(transcriber: Transcriber) -> Transcriber:
    """`transcriber`, able to transcribe interpreted meetings (idempotent)."""
    return transcriber if isinstance(transcriber, PerLineLanguages) else PerLineLanguages(transcriber)
