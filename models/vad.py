"""Voice activity detection for the live transcript: where speech is in a stretch of audio.

Silero VAD as faster-whisper ships it (the same model its `vad_filter` uses; ONNX, bundled in the wheel,
no hub). faster_whisper is imported on first use, not when the package is discovered.
"""

from __future__ import annotations

import numpy as np

from appliance.ports import SAMPLE_RATE


def speech_regions(audio: np.ndarray, min_silence_ms: int) -> list[tuple[int, int]]:
    """[(start, end)] sample ranges of speech in mono float32 16 kHz audio; regions are separated by at
    least `min_silence_ms` of non-speech (shorter pauses are part of the speech around them)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=min_silence_ms, speech_pad_ms=0)
    return [(int(r["start"]), int(r["end"])) for r in get_speech_timestamps(audio, options, SAMPLE_RATE)]
