"""faster-whisper (CTranslate2) transcriber backend.

The model is loaded from a local directory only: `load_transcriber` has verified it against the
manifest and passes its path, and WhisperModel is given that path (plus local_files_only) so it never
falls back to a model hub. faster_whisper is imported when a model is loaded, not at module import.

GPU path: with `[asr] batch_size > 0` (meant for `device = "cuda"`), files are transcribed with faster-whisper's
BatchedInferencePipeline (VAD cuts the audio into pieces of at most 30 s, decoded `batch_size` at a time, no
conditioning on the previous piece's text); live steps stay on the sequential path (a short window, latency
first). bench/asr_gpu.py measures both on a GPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from appliance.config import AsrConfig
from appliance.errors import ModelError
from appliance.ports import Segment, TranscribeOptions, TranscriberCapabilities, TranscriptInfo, Word
from models import register_transcriber

if TYPE_CHECKING:  # pragma: no cover
    from faster_whisper.transcribe import Segment as FwSegment

log = logging.getLogger(__name__)


@register_transcriber("faster-whisper", kinds=("whisper-ct2",))
class FasterWhisperTranscriber:
    """A loaded Whisper model; one per process, reused for every job (thread-compatible, not parallel)."""

    def __init__(self, model_dir: Path, asr_config: AsrConfig) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "model.bin").is_file() or not (model_dir / "tokenizer.json").is_file():
            # Without tokenizer.json faster-whisper would fetch one from the hub: refuse instead.
            raise ModelError(f"{model_dir} is not a CTranslate2 Whisper model directory "
                             "(model.bin and tokenizer.json are required)")
        # Belt and braces: even if something below tried the hub, it may not.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import ctranslate2
        from faster_whisper import WhisperModel

        from models.whisper_features import ChunkedFeatureExtractor

        # Whisper falls back to sampling (temperature > 0) on doubtful audio; a fixed seed makes the same
        # file give the same transcript. CTranslate2 seeds each worker thread when it first samples.
        ctranslate2.set_random_seed(asr_config.seed)

        self.name = f"faster-whisper:{model_dir.name}"
        self.model_dir = model_dir
        try:
            self._model = WhisperModel(str(model_dir), device=asr_config.device,
                                       compute_type=asr_config.compute_type,
                                       cpu_threads=asr_config.cpu_threads, local_files_only=True)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"Could not load Whisper model {model_dir.name} on {asr_config.device} "
                             f"({asr_config.compute_type}): {exc}") from exc
        # faster-whisper's FeatureExtractor computes the STFT of the whole recording at once (~500 MB of
        # temporaries for 10 minutes, growing with the file). The chunked one gives the same features,
        # bit for bit, in blocks of 30 s; transcribe() reaches features only through this attribute.
        self._model.feature_extractor = ChunkedFeatureExtractor.like(self._model.feature_extractor)
        self._batch_size = asr_config.batch_size
        self._batched = None
        if self._batch_size > 0:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(self._model)
            log.info("files are transcribed in batches of %d (BatchedInferencePipeline on %s)", self._batch_size,
                     asr_config.device)
        self._capabilities = TranscriberCapabilities(
            word_timestamps=True, word_probabilities=True, streaming=False,
            languages=frozenset(self._model.supported_languages), longest_chunk_seconds=None)

    def capabilities(self) -> TranscriberCapabilities:
        return self._capabilities

    def transcribe(self, audio: np.ndarray,
                   options: TranscribeOptions) -> tuple[TranscriptInfo, Iterator[Segment]]:
        # faster-whisper runs VAD, feature extraction and language handling here; decoding of the
        # segments happens lazily as the returned iterator is consumed.
        # Hand over the only reference to the audio: faster-whisper replaces it with a VAD-trimmed copy
        # before computing features, and if this frame kept the original alive, peak memory would
        # carry a second copy of the whole recording (38 MB per 10 minutes) through feature extraction.
        holder = [audio]
        del audio
        batched = self._batched is not None and not options.live
        extra = {"batch_size": self._batch_size} if batched else {}
        segments, info = (self._batched if batched else self._model).transcribe(
            holder.pop(),
            language=options.language or None,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            word_timestamps=options.word_timestamps,
            initial_prompt=options.initial_prompt,
            condition_on_previous_text=options.condition_on_previous_text,
            **extra,
        )
        return TranscriptInfo(language=info.language, duration=float(info.duration)), _convert(segments)


def _convert(segments: Iterable[FwSegment]) -> Iterator[Segment]:
    for s in segments:
        words = tuple(Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in s.words or ())
        yield Segment(start=float(s.start), end=float(s.end), text=s.text.strip(), words=words,
                      avg_logprob=float(s.avg_logprob))
