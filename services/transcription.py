"""The transcription pipeline: the one code path shared by the asr unit and `appliance transcribe`.

decode in memory (PyAV) -> transcriber (a loaded model behind appliance.ports.Transcriber) -> Transcript.
Segments are reported as they are decoded so the asr unit can store progress and stop early (an
exception raised by `on_segment` propagates and ends the job).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import BinaryIO

from appliance import audit, lexicon, speakers
from contextlib import closing
from dataclasses import replace
from appliance.audio import decode_audio
from appliance.config import AsrConfig, DiarizationConfig
from appliance.context import Appliance
from appliance.db import Connection, transaction
from appliance.errors import ModelError
from appliance.ports import (
    SAMPLE_RATE,
    Diarization,
    DiarizeOptions,
    Diarizer,
    Segment,
    TranscribeOptions,
    Transcriber,
    Transcript,
)

log = logging.getLogger(__name__)

SegmentCallback = Callable[[Segment, float], None]
"""Called with each segment and the fraction of the audio transcribed so far (0..1)."""


def options_for(asr: AsrConfig, *, language: str | None = None, conn: Connection | None = None) -> TranscribeOptions:
    """The transcription settings from the config: the service and `appliance transcribe` use the same ones.

    `conn` lets the "lexicon" prompt include the office's own terms (the CLI, without a database, uses
    the shipped terms only)."""
    return TranscribeOptions(language=language or asr.language, beam_size=asr.beam_size, vad_filter=asr.vad_filter,
                             initial_prompt=lexicon.prompt_for(asr.initial_prompt, conn))


def transcribe_audio(transcriber: Transcriber, data: bytes | BinaryIO, options: TranscribeOptions,
                     on_segment: SegmentCallback | None = None, *, diarizer: Diarizer | None = None,
                     diarize_options: DiarizeOptions | None = None) -> Transcript:
    """Decode `data` (any supported format; BadAudio if unusable) and transcribe it completely; with a
    `diarizer`, label the segments by speaker."""
    t0 = time.perf_counter()
    holder = [decode_audio(data)]
    t_decoded = time.perf_counter()
    # The audio is passed on without a reference kept here, so the transcriber can free it as soon as
    # it no longer needs it (faster-whisper swaps it for a VAD-trimmed copy): one less full copy at peak.
    info, segments = transcriber.transcribe(holder.pop(), options)
    duration = info.duration or 1.0
    transcript = Transcript(info=info)
    for segment in segments:
        transcript.segments.append(segment)
        if on_segment is not None:
            on_segment(segment, min(1.0, max(0.0, segment.end / duration)))
    t_done = time.perf_counter()
    # Figures only, never text: the transcript is personal data.
    log.info("transcribed %.1f s of audio (%s, %d segments, %d speakers): decode %.2f s, diarization %.2f s, "
             "model %.2f s (%.2fx real time)", info.duration, info.language, len(transcript.segments),
             transcript.speakers, t_decoded - t0, t_diarized - t_decoded, t_done - t_diarized,
             (t_done - t_diarized) / max(info.duration, 1.0 / SAMPLE_RATE))
    return transcript
    # Diarization runs before Whisper, on the same decoded audio, so the audio is still handed to the
    # transcriber without a reference kept here (see below) and never decoded twice.
    diarization = None
    if diarizer is not None:
        diarization = _diarize(diarizer, holder[0], diarize_options or DiarizeOptions())
    t_diarized = time.perf_counter()
    if diarizer is not None:
        transcript.diarization = "failed" if diarization is None else "done"
    if diarization is not None:
        labels = speakers.assign(transcript.segments, diarization.turns)
        transcript.segments = [replace(s, speaker=n) for s, n in zip(transcript.segments, labels, strict=True)]
        transcript.speakers = len({n for n in labels if n is not None})
