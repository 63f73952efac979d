"""The live transcript, inside the asr unit: transcribe finished speech while a recording goes on.

A live recording's audio grows chunk by chunk (appliance/live.py). Once `[recording] live_step_seconds` of
new audio have arrived, a step takes the audio after what is already transcribed
(`live_sessions.transcribed_samples`), finds with VAD where the last finished stretch of speech ended
(followed by `[recording] live_silence_ms` of silence), transcribes up to there and stores those segments —
provisional while the recording's status is 'recording' — and the new position in one transaction. A pause
or resume mark is always a cut, so no line straddles a pause. When the recording is stopped only the tail is
left; the step that reaches the end marks the transcript final (status 'ready').

Whisper is weak on a few seconds padded to its 30-second window (and slow: it keeps falling back to
sampling), so a step is transcribed as a whole-file pass would see it: a full window, the new audio plus up
to CONTEXT_S of the audio before it; the lines of that context are dropped again.
bench/live_latency.py measures stop -> final and compares with a whole-file pass.

Everything the worker knows lives in the database, so a killed worker loses nothing: the next one goes on
from `transcribed_samples`. A lease on the session (like the job queue's) keeps two workers off the same
recording. Steps are bounded (at most WINDOW_S of audio), so one long recording never blocks the others and
the lease never lapses mid-step.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from dataclasses import replace

import numpy as np

from appliance.errors import NotFound
from appliance.platform.context import Appliance
from appliance.platform.db import transaction
from appliance.ports import SAMPLE_RATE, Diarizer, Segment, Transcriber, Word
from appliance.recordings import live, recordings
from appliance.transcripts import store
from models.vad import speech_regions
from services import live_speakers
from services.transcription import options_for

log = logging.getLogger(__name__)

WINDOW_S = 28  # Whisper's own window is 30 s; a step never takes more than this much audio
# Whisper on a few seconds of speech padded to its 30-second window does badly and slowly (it falls back to
# sampling again and again); a step is transcribed with the already-transcribed audio before it, up to this
# much in all, as a whole-file pass would see it, and the lines that belong to that context are dropped.
CONTEXT_S = 28
MIN_WINDOW_S = 12  # the first step (no audio before it) waits until it has this much


def find_cut(audio: np.ndarray, *, final: bool, min_silence_ms: int, window: int) -> int:
    """Where to end this step, in samples of `audio` (0: wait for more).

    Final (stopped): everything, in windows. Capturing: the middle of the silence after the last finished
    stretch of speech; nothing while the only stretch is still going on, unless it has grown past the window.
    """
    n = len(audio)
    if final and n <= window:
        return n
    view = audio[:window]
    regions = speech_regions(view, min_silence_ms)
    silence = min_silence_ms * SAMPLE_RATE // 1000
    if not regions:
        return len(view) if (final or len(view) > silence) else 0  # no speech: skip it
    ends_open = regions[-1][1] > len(view) - silence  # not yet followed by enough silence: may go on
    if not ends_open:
        return (regions[-1][1] + len(view)) // 2
    if len(regions) > 1:
        return (regions[-2][1] + regions[-1][0]) // 2
    return len(view) if (final or n >= window) else 0


class LiveTranscriber:
    """One step at a time, called from the asr worker's loop (services/asr.py)."""

    def __init__(self, app: Appliance, transcriber: Transcriber, worker: str, diarizer: Diarizer | None = None) -> None:
        self.app, self.transcriber, self.worker = app, transcriber, worker
        self.diarizer = diarizer  # None: no provisional speakers (diarization off)
        self._seen: dict[str, int] = {}  # recording -> audio length at the last look that found nothing to do

    def run_once(self) -> bool:
        """Do one step on one live recording that has work. Returns whether anything was done."""
        with closing(self.app.connect()) as conn:
            ids = live.asr_candidates(conn, self.worker)
        return any(self.step(rid) for rid in ids)

    def step(self, rec_id: str) -> bool:
        cfg = self.app.cfg
        with closing(self.app.connect()) as conn:
            if not live.claim_for_asr(conn, rec_id, self.worker, cfg.asr.lease_seconds):
                return False
            session = live.session(conn, rec_id)
            if session is None:
                return False
            final = session.state == "stopped"
            start = session.transcribed_samples
            available = live.audio_samples(self.app, conn, rec_id)
            if not final and self._seen.get(rec_id) == available:
                return False  # nothing new since the last look
            # Pause/resume marks inside the new audio are cuts: the audio on either side was not continuous.
            cuts = sorted({round(m.at_seconds * SAMPLE_RATE) for m in live.marks(conn, rec_id)
                           if m.kind in ("pause", "resume")} | {available})
            limit = next((c for c in cuts if c > start), available)
            # Whisper costs about as much for one second as for ten (it works on 30-second windows): while
            # capturing, wait for a few seconds of new audio rather than transcribe every short sentence.
            if not final and limit == available and available - start < cfg.recording.live_step_seconds * SAMPLE_RATE:
                return False
            try:
                lead = min(start, CONTEXT_S * SAMPLE_RATE)
                pcm = live.read_pcm(self.app, conn, rec_id, start - lead, limit)
            except NotFound:  # stopped meanwhile: the chunks became the WAV; the next step reads that
                return False
            found = recordings.transcription_input(conn, rec_id)
            # live: a backend that streams (Riva) streams the window; batched pipelines are for whole files.
            options = replace(options_for(cfg.asr, language=found.language if found else None, conn=conn,
                                          interpreter_language=found.interpreter_language if found else None),
                              live=True)
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        del pcm
        at_mark = limit < available or final
        cut = find_cut(audio[lead:], final=at_mark, min_silence_ms=cfg.recording.live_silence_ms,
                       window=WINDOW_S * SAMPLE_RATE)
        too_short = not at_mark and lead + cut < MIN_WINDOW_S * SAMPLE_RATE  # the first seconds: wait for more
        if (cut <= 0 or too_short) and not (final and start >= available):  # (stopped after a cut: finalise)
            self._seen[rec_id] = available
            return False
        self._seen.pop(rec_id, None)
        t0 = time.monotonic()
        context = min(lead, max(0, CONTEXT_S * SAMPLE_RATE - cut))
        segments = self._transcribe(audio[lead - context:lead + cut], context, options,
                                    offset=(start - context) / SAMPLE_RATE) if cut > 0 else []
        # Provisional speakers while the recording goes on; once it is stopped the whole recording is diarized right
        # after its tail (which settles them), so the tail's steps skip this and the final transcript comes sooner.
        if segments and self.diarizer is not None and not final:
            segments = live_speakers.provisional(self.app, self.diarizer, rec_id, audio[lead - context:lead + cut],
                                                 (start - context) / SAMPLE_RATE, segments,
                                                 found.speakers_hint if found else None)
        end = start + cut
        done = final and end >= available
        with closing(self.app.connect()) as conn, transaction(conn):
            if not store.append_live_step(conn, rec_id, self.worker, start=start, end=end, segments=segments,
                                          final=final, available=available):
                log.warning("live %s: lease lost during a step; result discarded", rec_id)
                return False
        log.info("live %s: %.1f s transcribed in %.2f s (%d segments)%s", rec_id, cut / SAMPLE_RATE,
                 time.monotonic() - t0, len(segments), ", final" if done else "")
        return True

    def _transcribe(self, audio: np.ndarray, context: int, options, offset: float) -> list[Segment]:
        """Segments of audio[context:] (absolute times); audio[:context] is context, already transcribed."""
        if not speech_regions(audio[context:], self.app.cfg.recording.live_silence_ms):
            return []  # silence (a pause, a quiet room): nothing for Whisper to invent text from
        _info, segments = self.transcriber.transcribe(audio, options)
        boundary = context / SAMPLE_RATE
        out = []
        for s in segments:
            if (s.start + s.end) / 2 < boundary:
                continue  # a line of the context: the previous step stored it
            text, start = s.text, s.start
            if start < boundary and s.words:  # it began in the context: keep only its words after the boundary
                kept = [w for w in s.words if (w.start + w.end) / 2 >= boundary]
                text, start = "".join(w.word for w in kept).strip(), max(boundary, kept[0].start if kept else boundary)
                s = Segment(s.start, s.end, text, tuple(kept), language=s.language)
            start = max(start, boundary)
            words = tuple(Word(w.start + offset, w.end + offset, w.word, w.probability) for w in s.words)
            if text.strip():
                out.append(Segment(start + offset, s.end + offset, text, words, language=s.language))
        return out

