"""STAND-IN for NVIDIA's TensorRT-LLM Whisper model (the `whisper_bls` example of tensorrtllm_backend).

A TensorRT-LLM engine needs an NVIDIA GPU, so this model speaks that example's interface with faster-whisper
(CTranslate2) underneath: TEXT_PREFIX (the decoder prompt, e.g.
`<|startoftranscript|><|sv|><|transcribe|><|notimestamps|>`), WAV (float32, 16 kHz, at most 30 s) and
WAV_LENS (the valid samples of WAV) in, TRANSCRIPTS (the text) out. Like the engine it decodes one 30-second
window per request and gives text only: no timestamps, no word probabilities. The appliance's client
(models/triton_asr.py, protocol "trtllm-whisper") is tested against it; a GPU site serves the real engine
behind the same tensors.

Self-contained (faster-whisper and numpy only); logs nothing of the audio or text; local model files only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

MAX_SAMPLES = 30 * 16_000
_PREFIX = re.compile(r"^<\|startoftranscript\|>(?:<\|([a-z]{2,3}|haw|yue)\|>)?<\|(transcribe|translate)\|>"
                     r"(<\|notimestamps\|>)?$")


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        model_dir = Path(params["model_dir"])
        if not (model_dir / "model.bin").is_file() or not (model_dir / "tokenizer.json").is_file():
            raise pb_utils.TritonModelException(f"{model_dir} is not a CTranslate2 Whisper model directory")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import ctranslate2
        from faster_whisper import WhisperModel

        ctranslate2.set_random_seed(int(params.get("seed", "1234")))
        device = params.get("device", "cpu")
        device_index = int(args.get("model_instance_device_id", "0")) if device == "cuda" else 0
        self.model = WhisperModel(str(model_dir), device=device, device_index=device_index,
                                  compute_type=params.get("compute_type", "int8"),
                                  cpu_threads=int(params.get("cpu_threads", "0")), local_files_only=True)

    def execute(self, requests: list) -> list:
        return [self._one(r) for r in requests]

    def _one(self, request) -> pb_utils.InferenceResponse:
        try:
            prefix = pb_utils.get_input_tensor_by_name(request, "TEXT_PREFIX").as_numpy().reshape(-1)[0]
            match = _PREFIX.match(prefix.decode("utf-8") if isinstance(prefix, bytes) else str(prefix))
            if match is None:
                return _error("TEXT_PREFIX must look like <|startoftranscript|><|sv|><|transcribe|><|notimestamps|>")
            language, task = match.group(1), match.group(2)
            if language is not None and language not in self.model.supported_languages:
                return _error(f"unsupported language {language!r}")
            wav = pb_utils.get_input_tensor_by_name(request, "WAV").as_numpy().reshape(-1)
            lens = pb_utils.get_input_tensor_by_name(request, "WAV_LENS")
            if lens is not None:
                wav = wav[:int(lens.as_numpy().reshape(-1)[0])]
            if len(wav) > MAX_SAMPLES:
                return _error("WAV is longer than 30 s: cut it first (the engine decodes one window)")
            segments, _info = self.model.transcribe(
                wav.astype(np.float32, copy=False), language=language, task=task, beam_size=5,
                vad_filter=False, without_timestamps=True, condition_on_previous_text=False)
            text = " ".join(s.text.strip() for s in segments).strip()
            return pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("TRANSCRIPTS", np.array([[text.encode("utf-8")]], dtype=np.object_))])
        except Exception as exc:  # noqa: BLE001 - one request's failure must not take the others down
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"transcription failed ({type(exc).__name__})"))


def _error(message: str) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG))
