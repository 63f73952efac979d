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
    probability: float | None  # the model's confidence in the word (0..1); None: the backend gives none


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    speaker: int | None = None  # 1..n from diarization (the speaker with the most overlap); None: unknown
    # An interpreted meeting (TranscribeOptions.languages): the language this line was spoken in; None: the
    # recording's language.
    language: str | None = None
    # The decoder's mean token log-probability where the backend reports one (faster-whisper: of the whole
    # 30-second decoding window the line came from); how well the text fits the audio, which models/languages.py
    # compares across languages. None: not reported.
    avg_logprob: float | None = None


@dataclass(frozen=True)
class TranscribeOptions:
    language: str = "sv"
    beam_size: int = 5
    vad_filter: bool = True
    word_timestamps: bool = True
    initial_prompt: str | None = None
    # An interpreted meeting: the languages spoken (the recording's first, then the interpreter's other one).
    # With two or more, every stretch of speech is transcribed in the one that fits it best and each Segment
    # says which (models/languages.py does this for any Transcriber); empty: one language, `language`.
    languages: tuple[str, ...] = ()
    # A step of the live transcript (services/live_asr.py): a short window where latency matters more than
    # throughput. A backend that streams (capabilities().streaming) streams it; batched pipelines are for files.
    live: bool = False
    # Whisper feeds its previous text into the next window; after a stretch of noise that invites repeating or
    # inventing text (bench/hallucination.py), so it is off unless the config says otherwise.
    condition_on_previous_text: bool = False


@dataclass(frozen=True)
class TranscriberCapabilities:
    """What a transcription backend delivers, so the rest of the product degrades cleanly without it.

    Without word timestamps the transcript is seekable line by line only; without word probabilities there
    are no confidence-based correction suggestions (the recording page says both, from the stored words)."""

    word_timestamps: bool
    word_probabilities: bool
    streaming: bool  # the live transcript is streamed to the server (else sent window by window)
    languages: frozenset[str] | None  # language codes it accepts; None: not known until asked
    longest_chunk_seconds: float | None  # longest audio per request the server accepts; None: any length

    def accepts_language(self, language: str) -> bool:
        """Whether `language` ("sv", or a BCP-47 code like "sv-SE") is one the backend offers (True if unknown)."""
        if self.languages is None or not language:
            return True
        primary = language.split("-")[0].lower()
        return language in self.languages or any(code.split("-")[0].lower() == primary for code in self.languages)


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
                    **({"language": s.language} if s.language else {}),
                    "text": s.text,
                    "words": [
                        {"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                         "probability": None if w.probability is None else round(w.probability, 4)}
                        for w in s.words
                    ],
                }
                for s in self.segments
            ],
        }


class Transcriber(Protocol):
    """A speech-to-text backend: a model loaded in this process (faster-whisper) or a client of an inference
    server (Triton, Riva). Made once per process (`models.load_transcriber`), reused for every job.

    Any length of audio is accepted: a backend whose server takes shorter requests cuts the audio itself
    (at silences, so no word is lost at a cut). Failures: `AsrUnavailable` when the server cannot be reached
    after retries (the job waits and is retried), `AsrRejected` when it refuses the request (retrying does
    not help), both with messages fit for the recording page."""

    name: str

    def capabilities(self) -> TranscriberCapabilities:
        """What this backend delivers. Never fails: a server-backed one answers from what it knows (its protocol,
        an earlier probe of the server) and leaves unknown what it could not learn."""
        ...

    def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> tuple[TranscriptInfo, Iterator[Segment]]:
        """Transcribe mono float32 audio at SAMPLE_RATE. Segments are yielded lazily as decoded."""
        ...


@dataclass(frozen=True)
class ServerStatus:
    """What a server-backed transcriber learnt from its server (for `appliance doctor`)."""

    reachable: bool
    model_ready: bool
    languages: frozenset[str] | None  # None: the server does not say
    detail: str  # what was asked and answered, for IT (no content)


class ServerTranscriber(Transcriber, Protocol):
    """A transcriber that is a client of an inference server (Triton, Riva)."""

    def probe(self) -> ServerStatus:
        """Ask the server now (short timeouts, no retries): reachable, model loaded, languages offered."""
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
