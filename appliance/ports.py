"""Ports: the Protocols that backends implement (speech in `models/`, the chat model in
`appliance/assistant/llm_client.py`), and the typed values they return.

The core and the services talk to these, never to a library directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


# --- the language model ---------------------------------------------------------------------------

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    completion_tokens: int  # from the server's usage figures, else the number of streamed pieces
    first_token_seconds: float | None  # time to the first text piece
    seconds: float  # the whole request


class ChatModel(Protocol):
    """A chat model reached over the OpenAI chat-completions protocol (appliance/assistant/llm_client.py).

    Failures raise `LlmError` / `LlmUnavailable` (appliance/assistant/llm_client.py) with Swedish messages.
    """

    def stream_events(self, messages: list[Message], *, max_tokens: int | None = None,
                      temperature: float | None = None, response_format: dict | None = None,
                      stop: list[str] | None = None) -> Iterator[dict]:
        """The parsed chunks of a streaming chat completion."""
        ...

    def stream(self, messages: list[Message], **kwargs) -> Iterator[str]:
        """The answer's text, piece by piece as the model writes it."""
        ...

    def complete(self, messages: list[Message], *, response_format: dict | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 stop: list[str] | None = None, on_piece: Callable[[str], None] | None = None) -> Completion:
        """The whole answer; `response_format` constrains it to a JSON schema where the server can; `on_piece`
        sees each piece of text as it arrives."""
        ...

    def models(self) -> list[str]:
        """The model names the server offers (a health check)."""
        ...
