"""Ports: the Protocols that backends in `models/` implement, and the typed values they return.

The core and the services talk to these, never to a library directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000  # Whisper's input rate; decoded audio is mono float32 at this rate.


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: int | None = None  # 1..n from diarization (the speaker with the most overlap); None: unknown


@dataclass(frozen=True)
class TranscribeOptions:
    language: str = "sv"
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    initial_prompt: str | None = None


@dataclass(frozen=True)
class TranscriptInfo:
    language: str
    duration: float


@dataclass
class Transcript:
    info: TranscriptInfo
    segments: list[Segment] = field(default_factory=list)
    # Diarization outcome: "done", "failed" (the transcript is still delivered, speakers missing) or "off".
    diarization: str = "off"
    speakers: int = 0  # how many speakers the segments were given

    def to_json_dict(self) -> dict:
        return {
            "language": self.info.language,
            "duration": round(self.info.duration, 3),
            "diarization": self.diarization,
            "speakers": self.speakers,
            "segments": [
                {
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "speaker": s.speaker,
                    "text": s.text,
                    "words": [
                        {"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                         "probability": round(w.probability, 4)}
                        for w in s.words
                    ],
                }
                for s in self.segments
            ],
        }


class Transcriber(Protocol):
    """A loaded speech-to-text model. Loaded once per process, reused for every job."""

    name: str

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[TranscriptInfo, Iterator[Segment]]:
        """Transcribe mono float32 audio at SAMPLE_RATE. Segments are yielded lazily as decoded."""
        ...



@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of speech by one speaker (numbered 1..n in order of first appearance)."""

    start: float
    end: float
    speaker: int


@dataclass(frozen=True)
class DiarizeOptions:
    num_speakers: int | None = None  # the caseworker's hint; None: estimate the count
    max_speakers: int = 10  # upper bound when estimating


@dataclass(frozen=True)
class Diarization:
    turns: list[SpeakerTurn]
    num_speakers: int


class Diarizer(Protocol):
    """A loaded speaker-diarization model. Loaded once per process, reused for every job."""

    name: str

    def diarize(self, audio: np.ndarray, options: DiarizeOptions) -> Diarization:
        """Who spoke when in mono float32 audio at SAMPLE_RATE."""
        ...
