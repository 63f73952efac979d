"""Whisper in Triton Inference Server's Python backend, through faster-whisper (CTranslate2).

The server side of `[asr.triton] protocol = "samtalsstod"` (the client is models/triton_asr.py). A request
carries decoded audio (AUDIO: mono float32, 16 kHz) and the transcription settings (SETTINGS: JSON) and gets
back what in-process faster-whisper gives the appliance (RESULT: JSON with the segments, their words with
start, end and probability, the language and the duration), computed by the same library with the same
settings and seed, so a transcript is the same wherever the model runs. `{"probe": true}` answers what the
model offers (languages, word timestamps) for `appliance doctor` and the client's capabilities.

Self-contained on purpose: it imports faster-whisper and numpy only (models/triton/requirements.txt), so a
central GPU server needs no part of the appliance. It never logs or returns transcript text other than in
the response itself; an error names its kind only. The model is read from a local directory, never a hub.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

_SETTINGS = {"language", "beam_size", "vad_filter", "word_timestamps", "initial_prompt", "condition_on_previous_text"}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        model_dir = Path(params["model_dir"])
        if not (model_dir / "model.bin").is_file() or not (model_dir / "tokenizer.json").is_file():
            # Without tokenizer.json faster-whisper would fetch one from a hub: refuse instead.
            raise pb_utils.TritonModelException(f"{model_dir} is not a CTranslate2 Whisper model directory "
                                                "(model.bin and tokenizer.json are required)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import ctranslate2
        from faster_whisper import WhisperModel

        # Same seed as the appliance's in-process model: Whisper's temperature fallback samples, and the same
        # seed makes the same file give the same transcript.
        ctranslate2.set_random_seed(int(params.get("seed", "1234")))
        device = params.get("device", "cpu")
        self.workers = max(1, int(params.get("workers", "1")))
        device_index = int(args.get("model_instance_device_id", "0")) if device == "cuda" else 0
        self.model = WhisperModel(str(model_dir), device=device, device_index=device_index,
                                  compute_type=params.get("compute_type", "int8"),
                                  cpu_threads=int(params.get("cpu_threads", "0")), num_workers=self.workers,
                                  local_files_only=True)
        self.name = model_dir.name
        # Requests of one batch are decoded by `workers` CTranslate2 workers in parallel (a GPU keeps several
        # busy); with one worker they run one after another.
        self.pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    def execute(self, requests: list) -> list:
        if self.pool is None:
            return [self._one(r) for r in requests]
        return list(self.pool.map(self._one, requests))

    def _one(self, request) -> pb_utils.InferenceResponse:
        try:
            raw = pb_utils.get_input_tensor_by_name(request, "SETTINGS").as_numpy().reshape(-1)[0]
            settings = json.loads(raw)
            if not isinstance(settings, dict) or not set(settings) <= _SETTINGS | {"probe"}:
                return _error("SETTINGS must be a JSON object with the keys " + ", ".join(sorted(_SETTINGS)))
            if settings.get("probe"):
                return _result({"model": self.name, "languages": sorted(self.model.supported_languages),
                                "word_timestamps": True, "word_probabilities": True})
            audio = pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy().reshape(-1)
            language = settings.get("language") or None
            if language is not None and language not in self.model.supported_languages:
                return _error(f"unsupported language {language!r}")
            segments, info = self.model.transcribe(
                audio.astype(np.float32, copy=False), language=language,
                beam_size=int(settings.get("beam_size", 5)), vad_filter=bool(settings.get("vad_filter", True)),
                word_timestamps=bool(settings.get("word_timestamps", True)),
                initial_prompt=settings.get("initial_prompt"),
                condition_on_previous_text=bool(settings.get("condition_on_previous_text", False)))
            out = [[s.start, s.end, s.text, [[w.start, w.end, w.word, w.probability] for w in s.words or ()]]
                   for s in segments]
            return _result({"language": info.language, "duration": info.duration, "segments": out})
        except Exception as exc:  # noqa: BLE001 - one request's failure must not take the others down
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"transcription failed ({type(exc).__name__})"))

    def finalize(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _result(doc: dict) -> pb_utils.InferenceResponse:
    text = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("RESULT", np.array([[text]], dtype=np.object_))])


def _error(message: str) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))
