"""The transcription pipeline: the one code path shared by the asr unit and `appliance transcribe`.

decode in memory (PyAV) -> diarizer (optional, appliance.ports.Diarizer) -> transcriber (a loaded model
behind appliance.ports.Transcriber) -> Transcript, each segment labelled with the speaker who overlaps it
most (`diarize_stored` does the same afterwards for a transcript written piece by piece, a live one).
Segments are reported as they are decoded so the asr unit can store progress and stop early (an exception
raised by `on_segment` propagates and ends the job). A diarization failure never fails the
transcript: it is delivered without speakers and `Transcript.diarization` says "failed".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from appliance.config import AsrConfig, DiarizationConfig
from appliance.errors import ModelError
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction
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
from appliance.recordings import recordings
from appliance.recordings.audio import decode_audio
from appliance.transcripts import lexicon, speakers, store

log = logging.getLogger(__name__)

SegmentCallback = Callable[[Segment, float], None]
"""Called with each segment and the fraction of the audio transcribed so far (0..1)."""


def options_for(asr: AsrConfig, *, language: str | None = None, conn: Connection | None = None,
                interpreter_language: str | None = None) -> TranscribeOptions:
    """The transcription settings from the config: the service and `appliance transcribe` use the same ones.

    `conn` lets the "lexicon" prompt include the office's own terms (the CLI, without a database, uses
    the shipped terms only). `interpreter_language`: an interpreted meeting, each line transcribed in its
    language (the transcriber must be wrapped by models.languages.per_line_languages)."""
    language = language or asr.language
    return TranscribeOptions(language=language, beam_size=asr.beam_size, vad_filter=asr.vad_filter,
                             initial_prompt=lexicon.prompt_for(asr.initial_prompt, conn),
                             condition_on_previous_text=asr.condition_on_previous_text,
                             languages=(language, interpreter_language) if interpreter_language else ())


class UnavailableDiarizer:
    """Stands in when the configured diarizer could not be loaded: every job records diarization as failed
    (and gets its transcript) instead of the whole unit refusing to start."""

    name = "unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def diarize(self, audio, options: DiarizeOptions) -> Diarization:
        raise ModelError(f"the diarizer could not be loaded: {self.reason}")


def load_diarizer_for(cfg: DiarizationConfig, models_dir: Path) -> Diarizer | None:
    """The configured diarizer, loaded once per process; None when diarization is off."""
    from models import load_diarizer

    if not cfg.enabled:
        return None
    try:
        return load_diarizer(cfg, models_dir)
    except Exception as exc:  # a missing package or bad weights must not stop transcription
        log.error("diarizer %s unavailable (%s): transcripts are delivered without speakers", cfg.backend, exc)
        return UnavailableDiarizer(str(exc))


def diarize_options_for(cfg: DiarizationConfig, speakers_hint: int | None = None) -> DiarizeOptions:
    """The caseworker's number-of-speakers hint when given (recordings.speakers_hint), else estimate."""
    return DiarizeOptions(num_speakers=speakers_hint, max_speakers=cfg.max_speakers)


def _diarize(diarizer: Diarizer, audio, options: DiarizeOptions) -> Diarization | None:
    """Who spoke when, or None when diarization failed (logged without content; the transcript goes on)."""
    t0 = time.perf_counter()
    try:
        result = diarizer.diarize(audio, options)
    except Exception:
        log.exception("diarization failed; the transcript is delivered without speakers")
        return None
    log.info("diarized %.1f s of audio: %d speakers (hint %s) in %.2f s", len(audio) / SAMPLE_RATE,
             result.num_speakers, options.num_speakers, time.perf_counter() - t0)
    return result


def transcribe_audio(transcriber: Transcriber, data: bytes | BinaryIO, options: TranscribeOptions,
                     on_segment: SegmentCallback | None = None, *, diarizer: Diarizer | None = None,
                     diarize_options: DiarizeOptions | None = None) -> Transcript:
    """Decode `data` (any supported format; BadAudio if unusable) and transcribe it completely; with a
    `diarizer`, label the segments by speaker."""
    t0 = time.perf_counter()
    holder = [decode_audio(data)]
    t_decoded = time.perf_counter()
    # Diarization runs before Whisper, on the same decoded audio, so the audio is still handed to the
    # transcriber without a reference kept here (see below) and never decoded twice.
    diarization = None
    if diarizer is not None:
        diarization = _diarize(diarizer, holder[0], diarize_options or DiarizeOptions())
    t_diarized = time.perf_counter()
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
    if diarizer is not None:
        transcript.diarization = "failed" if diarization is None else "done"
    if diarization is not None:
        labels = speakers.assign(transcript.segments, diarization.turns)
        # A line nowhere near speech the diarizer heard is Whisper writing into silence, noise or music (its VAD
        # lets more through): dropped. Only when diarization worked; without it every line stays.
        kept = [(s, n) for s, n in zip(transcript.segments, labels, strict=True)
                if n is not None or not diarization.turns]
        if len(kept) < len(labels):
            log.info("dropped %d of %d lines without speech", len(labels) - len(kept), len(labels))
        transcript.segments = [replace(s, speaker=n) for s, n in kept]
        transcript.speakers = len({n for _s, n in kept if n is not None})
    # Figures only, never text: the transcript is personal data.
    log.info("transcribed %.1f s of audio (%s, %d segments, %d speakers): decode %.2f s, diarization %.2f s, "
             "model %.2f s (%.2fx real time)", info.duration, info.language, len(transcript.segments),
             transcript.speakers, t_decoded - t0, t_diarized - t_decoded, t_done - t_diarized,
             (t_done - t_diarized) / max(info.duration, 1.0 / SAMPLE_RATE))
    return transcript


def diarize_stored(app: Appliance, diarizer: Diarizer, rec_id: str) -> str | None:
    """Label the lines of an already transcribed recording by speaker: for transcripts not made in one piece by
    `transcribe_audio` (a live recording's, written stretch by stretch). Decrypts and decodes the recording's
    audio in memory, diarizes it, gives each stored line the speaker overlapping it most. Returns the
    diarization status ("done" or "failed"; None when the recording is gone). A failure is logged and
    audited, never raised: the transcript stays as it is."""
    with closing(app.connect()) as conn:
        found = recordings.transcription_input(conn, rec_id)
    if found is None:
        return None
    diarization = None
    try:
        with app.blobs.open(rec_id, found.dek) as reader:
            audio = decode_audio(reader.read_all())
    except Exception:
        log.exception("recording %s: audio for diarization unreadable", rec_id)
    else:
        diarization = _diarize(diarizer, audio, diarize_options_for(app.cfg.diarization, found.speakers_hint))
        del audio
    with closing(app.connect()) as conn, transaction(conn):
        lines = store.segment_times(conn, rec_id)
        if diarization is None:
            return store.store_speaker_labels(conn, rec_id, None)
        labels = speakers.assign(list(lines.values()), diarization.turns)
        return store.store_speaker_labels(conn, rec_id, dict(zip(lines, labels, strict=True)))
