"""Whisper on Triton Inference Server: the `triton` transcriber backend (a gRPC client of tritonclient).

Two protocols (`[asr.triton] protocol`):

* ``samtalsstod`` — the project's own model (models/triton/whisper): decoded audio plus the settings in, the
  same segments, words and probabilities as in-process faster-whisper out (same library, settings and seed on
  the server). Long recordings go as pieces of at most `chunk_seconds`, cut at silences
  (models/asr_chunks.py), several at once so the server's dynamic batcher can group them.
* ``trtllm-whisper`` — the tensors of NVIDIA's TensorRT-LLM Whisper example (TEXT_PREFIX, WAV, WAV_LENS ->
  TRANSCRIPTS), for a GPU site serving a TensorRT-LLM engine. The engine decodes one 30-second window of text
  per request: pieces are at most 30 s and trimmed to their speech (it has no VAD), and each becomes one
  transcript line spanning its speech. Lost: word timestamps (seeking is per line), word probabilities (no
  confidence-based correction suggestions), language detection (the configured language is sent), the
  initial prompt, and the beam size (the server decides).

Only audio and settings leave the box, over loopback or TLS (mutual with `cert_file`/`key_file`). A request
that fails for a transient reason is retried (models/remote_asr.py); a server still down after the retries
raises AsrUnavailable (the job waits in the queue), a refused request AsrRejected. tritonclient is imported
when the first request is made, not when the backend is discovered.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
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
from models.remote_asr import PieceResult, Retry, Transient, transcribe_chunked

log = logging.getLogger(__name__)

# gRPC status codes that a retry may cure: the server is down or restarting, its model not (yet) loaded,
# the request timed out or the server is overloaded.
_TRANSIENT = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED",
              "StatusCode.CANCELLED", "StatusCode.ABORTED", "StatusCode.UNKNOWN", "StatusCode.INTERNAL",
              "StatusCode.NOT_FOUND", "None"}
TRTLLM_PREFIX = "<|startoftranscript|><|{language}|><|transcribe|><|notimestamps|>"


def _whisper_languages() -> frozenset[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


@register_transcriber("triton", kinds=())
class TritonTranscriber:
    """Client of a Triton server; thread-safe (one gRPC client per thread)."""

    def __init__(self, _model_path: Path | None, asr_config: AsrConfig) -> None:
        self.cfg = asr_config.triton
        self.default_language = asr_config.language
        self.name = f"triton:{self.cfg.model_name}@{self.cfg.url}"
        self._local = threading.local()
        self._languages: frozenset[str] | None = None  # from a successful probe
        self._retry = Retry(
            self.cfg.retries, self.cfg.retry_backoff_seconds,
            f"Transkriberingsservern (Triton på {self.cfg.url}) svarar inte. Inspelningen är sparad och "
            "transkriberas automatiskt när servern svarar igen; kontakta IT om det dröjer.")

    # --- the port -------------------------------------------------------------------------------------

    def capabilities(self) -> TranscriberCapabilities:
        if self.cfg.protocol == "trtllm-whisper":
            return TranscriberCapabilities(word_timestamps=False, word_probabilities=False, streaming=False,
                                           languages=_whisper_languages(), longest_chunk_seconds=30.0)
        return TranscriberCapabilities(word_timestamps=True, word_probabilities=True, streaming=False,
                                       languages=self._languages, longest_chunk_seconds=self.cfg.chunk_seconds)

    def transcribe(self, audio: np.ndarray,
                   options: TranscribeOptions) -> tuple[TranscriptInfo, Iterator[Segment]]:
        if self.cfg.protocol == "trtllm-whisper":
            if not options.language:  # the engine cannot detect the language: the configured one is sent
                options = replace(options, language=self.default_language)
            return transcribe_chunked(audio, options, self._send_trtllm, max_seconds=min(30.0, self.cfg.chunk_seconds),
                                      in_flight=self.cfg.max_in_flight, retry=self._retry, trim_to_speech=True,
                                      name=self.name)
        return transcribe_chunked(audio, options, self._send, max_seconds=self.cfg.chunk_seconds,
                                  in_flight=self.cfg.max_in_flight, retry=self._retry, name=self.name)

    def probe(self) -> ServerStatus:
        """Is the server live, the model loaded, which languages does it take (one request each, no retries)."""
        from tritonclient.utils import InferenceServerException

        client, timeout = self._client(), self.cfg.connect_timeout_seconds
        try:
            if not client.is_server_live(client_timeout=timeout):
                return ServerStatus(False, False, None, f"{self.cfg.url} answers but is not live")
        except InferenceServerException as exc:
            return ServerStatus(False, False, None, f"{self.cfg.url} unreachable ({_status(exc)})")
        try:
            ready = client.is_model_ready(self.cfg.model_name, client_timeout=timeout)
        except InferenceServerException as exc:
            ready, _ = False, exc
        if not ready:
            return ServerStatus(True, False, None, f"model {self.cfg.model_name!r} is not loaded on {self.cfg.url}")
        if self.cfg.protocol == "trtllm-whisper":
            return ServerStatus(True, True, _whisper_languages(),
                                f"model {self.cfg.model_name!r} ready (TensorRT-LLM Whisper protocol: text only)")
        try:
            doc = self._infer_json(np.zeros(1, np.float32), {"probe": True}, timeout=max(timeout, 30.0))
        except (Transient, AsrRejected) as exc:
            return ServerStatus(True, False, None, f"model {self.cfg.model_name!r} does not answer a probe ({exc})")
        self._languages = frozenset(doc.get("languages") or ()) or None
        return ServerStatus(True, True, self._languages, f"model {self.cfg.model_name!r} ready ({doc.get('model')})")

    # --- requests -------------------------------------------------------------------------------------

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            import tritonclient.grpc as grpcclient

            tls = self.cfg.tls
            client = grpcclient.InferenceServerClient(
                url=self.cfg.url, ssl=tls,
                root_certificates=str(self.cfg.ca_file) if tls and self.cfg.ca_file else None,
                private_key=str(self.cfg.key_file) if tls and self.cfg.key_file else None,
                certificate_chain=str(self.cfg.cert_file) if tls and self.cfg.cert_file else None)
            self._local.client = client
        return client

    def _infer(self, inputs: list, outputs: list, timeout: float):
        from tritonclient.utils import InferenceServerException

        try:
            return self._client().infer(self.cfg.model_name, inputs, outputs=outputs, client_timeout=timeout)
        except InferenceServerException as exc:
            status = _status(exc)
            if status in _TRANSIENT:
                raise Transient(f"{self.cfg.url}: {status}") from None
            message = (exc.message() or "")[:200]
            if "unsupported language" in message:
                raise AsrRejected(f"Transkriberingsservern (Triton) kan inte språket i den här inspelningen "
                                  f"({message.split('language', 1)[1].strip()}). IT: kontrollera språket eller "
                                  "servera en flerspråkig Whisper-modell.") from None
            raise AsrRejected(f"Transkriberingsservern (Triton) avvisade ljudet ({status}: {message}). "
                              "Kontakta IT.") from None

    def _infer_json(self, audio: np.ndarray, settings: dict, timeout: float | None = None) -> dict:
        import tritonclient.grpc as grpcclient

        samples = grpcclient.InferInput("AUDIO", [1, len(audio)], "FP32")
        samples.set_data_from_numpy(np.ascontiguousarray(audio, dtype=np.float32)[None, :])
        config = grpcclient.InferInput("SETTINGS", [1, 1], "BYTES")
        config.set_data_from_numpy(np.array([[json.dumps(settings).encode("utf-8")]], dtype=np.object_))
        result = self._infer([samples, config], [grpcclient.InferRequestedOutput("RESULT")],
                             timeout or self.cfg.request_timeout_seconds)
        return json.loads(result.as_numpy("RESULT").reshape(-1)[0])

    def _send(self, audio: np.ndarray, options: TranscribeOptions) -> PieceResult:
        """One piece through the samtalsstod protocol: what in-process faster-whisper would return for it."""
        settings = {"language": options.language or None, "beam_size": options.beam_size,
                    "vad_filter": options.vad_filter, "word_timestamps": options.word_timestamps,
                    "initial_prompt": options.initial_prompt,
                    "condition_on_previous_text": options.condition_on_previous_text}
        doc = self._infer_json(audio, settings)
        segments = [Segment(start=float(s), end=float(e), text=text.strip(),
                            words=tuple(Word(float(ws), float(we), w, None if p is None else float(p))
                                        for ws, we, w, p in words))
                    for s, e, text, words in doc["segments"]]
        return PieceResult(segments, doc.get("language"))

    def _send_trtllm(self, audio: np.ndarray, options: TranscribeOptions) -> PieceResult:
        """One piece (at most 30 s of speech) through the TensorRT-LLM Whisper example's tensors: one line."""
        import tritonclient.grpc as grpcclient

        prefix = grpcclient.InferInput("TEXT_PREFIX", [1, 1], "BYTES")
        prefix.set_data_from_numpy(np.array([[TRTLLM_PREFIX.format(language=options.language).encode()]],
                                            dtype=np.object_))
        wav = grpcclient.InferInput("WAV", [1, len(audio)], "FP32")
        wav.set_data_from_numpy(np.ascontiguousarray(audio, dtype=np.float32)[None, :])
        lens = grpcclient.InferInput("WAV_LENS", [1, 1], "INT32")
        lens.set_data_from_numpy(np.array([[len(audio)]], dtype=np.int32))
        result = self._infer([prefix, wav, lens], [grpcclient.InferRequestedOutput("TRANSCRIPTS")],
                             self.cfg.request_timeout_seconds)
        raw = result.as_numpy("TRANSCRIPTS").reshape(-1)[0]
        text = (raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)).strip()
        if not text:
            return PieceResult([], options.language)
        return PieceResult([Segment(0.0, len(audio) / SAMPLE_RATE, text)], options.language)


def _status(exc) -> str:
    return str(exc.status()) if exc.status() is not None else "None"
