"""NVIDIA Riva's ASR service: the `riva` transcriber backend (riva.client.ASRService over gRPC).

Uploads go through offline recognition (`Recognize`), as pieces of at most `[asr.riva] chunk_seconds` cut at
silences (models/asr_chunks.py); a live step is streamed (`StreamingRecognize`) when the server's model for
the language streams, else recognised offline too. gRPC's default 4 MiB message limit holds only about two
minutes of 16 kHz 16-bit PCM: the channel's limits are raised to `max_message_mb` both ways (the server must
accept as much; a request it refuses as too large fails with a message saying so).

`GetRivaSpeechRecognitionConfig` is the capability probe: which languages the server's models take and
whether they stream. The language code sent is `[asr.riva] language_code` when it is the recording's
language (sv -> sv-SE), else the server's code for that language (from the probe), else the language as is.
Word time offsets (int milliseconds) and confidences become our words; a model that gives none (Riva's Whisper
NIM ignores `enable_word_time_offsets`) gives lines timed by `audio_processed`, without words, and a response
whose word confidences are all 0 has no probabilities (None). Failures as in models/remote_asr.py: retried,
then AsrUnavailable; refusals (an unsupported language, a message too large) AsrRejected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from appliance.config import AsrConfig
from appliance.errors import AsrRejected
from appliance.ports import (
    SAMPLE_RATE,
    Segment,
    ServerStatus,
    TranscribeOptions,
    TranscriberCapabilities,
    TranscriptInfo,
    Word,
)
from models import register_transcriber
from models.remote_asr import PieceResult, Retry, Transient, call_with_retries, transcribe_chunked

log = logging.getLogger(__name__)

STREAM_PIECE = SAMPLE_RATE // 10  # a live window is streamed in pieces of 100 ms, as a microphone would send it
_PROBE_RETRY_SECONDS = 30  # after a failed probe, answer capabilities from what is known for this long
_TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "ABORTED", "CANCELLED"}


@dataclass(frozen=True)
class RivaModel:
    name: str
    languages: tuple[str, ...]
    streaming: bool
    offline: bool
    word_timestamps: bool  # False for Whisper models (Riva's Whisper NIM gives no word offsets)


def parse_models(response) -> list[RivaModel]:
    """The models of a RivaSpeechRecognitionConfigResponse (parameters as Riva reports them: language_code
    "en-US" or "en-US,de-DE", type "online"/"offline", streaming/offline "True"/"False", model_family)."""
    out = []
    for config in response.model_config:
        p = dict(config.parameters)
        kind = p.get("type", "").lower()
        family = (p.get("model_family", "") + " " + config.model_name).lower()
        out.append(RivaModel(
            name=config.model_name,
            languages=tuple(c.strip() for c in p.get("language_code", "").split(",") if c.strip()),
            streaming=p.get("streaming", "").lower() == "true" or kind == "online",
            offline=p.get("offline", "").lower() == "true" or kind == "offline" or kind == "",
            word_timestamps="whisper" not in family))
    return out


@register_transcriber("riva", kinds=())
class RivaTranscriber:
    """Client of a Riva server; thread-safe (gRPC channels are)."""

    def __init__(self, _model_path: Path | None, asr_config: AsrConfig) -> None:
        self.cfg = asr_config.riva
        self.default_language = asr_config.language
        self.name = f"riva:{self.cfg.model_name or self.cfg.language_code}@{self.cfg.url}"
        self._lock = threading.Lock()
        self._service = None
        self._models: list[RivaModel] | None = None  # from the last successful probe
        self._probe_failed_at = 0.0
        self._retry = Retry(
            self.cfg.retries, self.cfg.retry_backoff_seconds,
            f"Taltjänsten (Riva på {self.cfg.url}) svarar inte. Inspelningen är sparad och transkriberas "
            "automatiskt när tjänsten svarar igen; kontakta IT om det dröjer.")

    # --- the port -------------------------------------------------------------------------------------

    def capabilities(self) -> TranscriberCapabilities:
        models = self._known_models()
        chosen = [m for m in models or () if self._matches(m, self.cfg.language_code)]
        return TranscriberCapabilities(
            word_timestamps=any(m.word_timestamps for m in chosen) if chosen else models is None,
            word_probabilities=any(m.word_timestamps for m in chosen) if chosen else models is None,
            streaming=any(m.streaming for m in chosen),
            languages=frozenset(c for m in models for c in m.languages) if models else None,
            longest_chunk_seconds=self.cfg.chunk_seconds)

    def transcribe(self, audio: np.ndarray,
                   options: TranscribeOptions) -> tuple[TranscriptInfo, Iterator[Segment]]:
        code = self.language_code(options.language or self.default_language)
        options = replace(options, language=code)
        if options.live and self.capabilities().streaming:
            info = TranscriptInfo(language=_primary(code), duration=len(audio) / SAMPLE_RATE)
            result = call_with_retries(lambda: self._stream(audio, options), self._retry, f"{self.name}: stream")
            return info, iter(result.segments)
        info, segments = transcribe_chunked(audio, options, self._recognize, max_seconds=self.cfg.chunk_seconds,
                                            in_flight=1, retry=self._retry, name=self.name)
        return replace(info, language=_primary(code)), segments

    def probe(self) -> ServerStatus:
        try:
            models = self._probe(timeout=self.cfg.connect_timeout_seconds)
        except Transient as exc:
            return ServerStatus(False, False, None, f"{self.cfg.url} unreachable ({exc})")
        except AsrRejected as exc:
            return ServerStatus(True, False, None, str(exc))
        usable = [m for m in models if not self.cfg.model_name or m.name == self.cfg.model_name]
        languages = frozenset(c for m in usable for c in m.languages)
        names = ", ".join(f"{m.name} ({','.join(m.languages)}; {'streaming' if m.streaming else 'offline'})"
                          for m in usable) or "none"
        return ServerStatus(True, bool(usable), languages or None, f"models: {names}")

    # --- language -------------------------------------------------------------------------------------

    def language_code(self, language: str) -> str:
        """The code Riva is asked for: the configured one for its own language, else the server's for it."""
        configured = self.cfg.language_code
        if configured == "multi" or _primary(configured) == _primary(language):
            return configured
        if "-" not in language:
            for model in self._known_models() or ():
                for code in model.languages:
                    if _primary(code) == _primary(language):
                        return code
        return language

    @staticmethod
    def _matches(model: RivaModel, code: str) -> bool:
        return code in model.languages or "multi" in model.languages or any(
            _primary(c) == _primary(code) for c in model.languages)

    def _check_language(self, code: str) -> None:
        models = self._known_models()
        if models is None:
            return  # not known: the server says so if it cannot
        if not any(self._matches(m, code) for m in models if not self.cfg.model_name or m.name == self.cfg.model_name):
            offered = sorted({c for m in models for c in m.languages})
            raise AsrRejected(_language_message(code, offered))

    # --- requests -------------------------------------------------------------------------------------

    def _asr(self):
        with self._lock:
            if self._service is None:
                import riva.client

                limit = self.cfg.max_message_mb * 1024 * 1024
                tls = self.cfg.tls
                auth = riva.client.Auth(
                    uri=self.cfg.url, use_ssl=tls,
                    ssl_root_cert=self.cfg.ca_file if tls else None,
                    ssl_client_cert=self.cfg.cert_file if tls else None,
                    ssl_client_key=self.cfg.key_file if tls else None,
                    options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)])
                self._service = riva.client.ASRService(auth)
            return self._service

    def _known_models(self) -> list[RivaModel] | None:
        """The probed models; probes once (and again only a while after a failure), never raises."""
        if self._models is None and time.monotonic() - self._probe_failed_at > _PROBE_RETRY_SECONDS:
            try:
                self._probe(timeout=self.cfg.connect_timeout_seconds)
            except (Transient, AsrRejected) as exc:
                log.warning("%s: capability probe failed (%s); capabilities unknown for now", self.name, exc)
                self._probe_failed_at = time.monotonic()
        return self._models

    def _probe(self, timeout: float) -> list[RivaModel]:
        from riva.client.proto import riva_asr_pb2 as rasr

        service = self._asr()
        request = rasr.RivaSpeechRecognitionConfigRequest(model_name=self.cfg.model_name)
        response = self._call(lambda: service.stub.GetRivaSpeechRecognitionConfig(
            request, metadata=service.auth.get_auth_metadata(), timeout=timeout), "capability probe")
        self._models = parse_models(response)
        return self._models

    def _config(self, options: TranscribeOptions):
        import riva.client

        return riva.client.RecognitionConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=SAMPLE_RATE,
            language_code=options.language, max_alternatives=1, audio_channel_count=1,
            enable_automatic_punctuation=self.cfg.punctuation,
            enable_word_time_offsets=options.word_timestamps, model=self.cfg.model_name)

    def _recognize(self, audio: np.ndarray, options: TranscribeOptions) -> PieceResult:
        """One piece through offline recognition."""
        self._check_language(options.language)
        service = self._asr()
        future = service.offline_recognize(_pcm16(audio), self._config(options), future=True)
        response = self._call(lambda: future.result(timeout=self.cfg.request_timeout_seconds), "recognition",
                              cancel=future.cancel)
        return PieceResult(_segments(response.results, final_only=False), options.language)

    def _stream(self, audio: np.ndarray, options: TranscribeOptions) -> PieceResult:
        """A live window through streaming recognition, sent in 100 ms pieces; the final results."""
        import riva.client
        from riva.client.asr import streaming_request_generator

        self._check_language(options.language)
        service = self._asr()
        pcm = _pcm16(audio)
        step = STREAM_PIECE * 2
        requests = streaming_request_generator(
            (pcm[i:i + step] for i in range(0, len(pcm), step)),
            riva.client.StreamingRecognitionConfig(config=self._config(options), interim_results=False))

        def run() -> list:
            responses = service.stub.StreamingRecognize(requests, metadata=service.auth.get_auth_metadata(),
                                                        timeout=self.cfg.request_timeout_seconds)
            return [r for response in responses for r in response.results]

        return PieceResult(_segments(self._call(run, "streaming recognition"), final_only=True), options.language)

    def _call(self, fn, what: str, cancel=None):
        import grpc

        try:
            return fn()
        except grpc.FutureTimeoutError:
            if cancel is not None:
                cancel()
            raise Transient(f"{self.cfg.url}: {what} timed out") from None
        except grpc.RpcError as exc:
            code = exc.code().name if exc.code() is not None else "UNKNOWN"
            details = (exc.details() or "")[:300]
            if code in _TRANSIENT:
                raise Transient(f"{self.cfg.url}: {what}: {code}") from None
            if code == "RESOURCE_EXHAUSTED":
                raise AsrRejected("Taltjänsten (Riva) tog inte emot så mycket ljud i ett meddelande. IT: höj "
                                  "serverns gräns för gRPC-meddelanden eller sänk [asr.riva] chunk_seconds.") from None
            if code == "INVALID_ARGUMENT" and "language_code" in details:
                raise AsrRejected(_language_message(_requested_language(details), None)) from None
            raise AsrRejected(f"Taltjänsten (Riva) avvisade begäran ({code}: {details}). Kontakta IT.") from None


def _segments(results, *, final_only: bool) -> list[Segment]:
    """Riva's results as our lines: words with their offsets and confidences where given, else the line
    spans from the end of the previous result to this one's `audio_processed`."""
    out: list[Segment] = []
    previous_end = 0.0
    for result in results:
        if final_only and not result.is_final:
            continue
        processed = float(result.audio_processed) if result.audio_processed else previous_end
        if not result.alternatives:
            previous_end = processed
            continue
        alt = result.alternatives[0]
        text = alt.transcript.strip()
        with_confidence = any(w.confidence for w in alt.words)
        words = tuple(Word(w.start_time / 1000.0, w.end_time / 1000.0, " " + w.word.strip(),
                           float(w.confidence) if with_confidence else None) for w in alt.words if w.word.strip())
        start = words[0].start if words else previous_end
        end = words[-1].end if words else max(processed, start)
        if text:
            out.append(Segment(start=start, end=end, text=text, words=words))
        previous_end = max(processed, end)
    return out


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _primary(code: str) -> str:
    return code.split("-")[0].lower()


def _requested_language(details: str) -> str:
    tail = details.split("language_code=", 1)[-1]
    return tail.split(";")[0].strip() or "?"


def _language_message(code: str, offered: list[str] | None) -> str:
    return (f"Taltjänsten (Riva) har ingen modell för språket {code}"
            + (f" (den erbjuder: {', '.join(offered)})" if offered else "")
            + ". IT: ange ett språk servern har i [asr.riva] language_code, eller installera en modell för det.")
