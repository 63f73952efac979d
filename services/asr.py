"""The asr unit: transcribes uploads (the `transcribe` job, through the one job loop of services/worker.py),
keeps live transcripts going (services/live_asr.py) and labels finished live transcripts by speaker.

The model is loaded once per process. Audio is decrypted into memory only. Database connections are
short-lived (claim, progress, result), never held across the transcription itself, so a purge can re-key
the database meanwhile. If the worker is killed, the job's lease expires and it is retried; results are
written in one transaction that first checks the lease is still ours, so each job lands exactly once.
Run: `appliance asr` or `python -m services.asr`.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import closing

from appliance.config import Config, load_config
from appliance.errors import ApplianceError, AsrRejected, AsrUnavailable, BadAudio, IntegrityError
from appliance.platform import jobs
from appliance.platform.context import Appliance, open_appliance
from appliance.platform.db import transaction
from appliance.ports import Diarizer, Transcriber
from appliance.recordings import live, recordings
from appliance.transcripts import store
from models import load_transcriber
from models.languages import per_line_languages
from services.live_asr import LiveTranscriber
from services.signals import stop_on_signals
from services.transcription import (
    diarize_options_for,
    diarize_stored,
    load_diarizer_for,
    options_for,
    transcribe_audio,
)
from services.worker import JobContext, JobWorker

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 1.0


class Transcribe:
    """The job handler for an uploaded recording: decrypt, (diarize,) transcribe, store the transcript."""

    kind = recordings.TRANSCRIBE

    def __init__(self, cfg: Config, transcriber: Transcriber, diarizer: Diarizer | None) -> None:
        self.cfg, self.transcriber, self.diarizer = cfg, transcriber, diarizer
        self.lease_seconds, self.max_attempts = cfg.asr.lease_seconds, cfg.asr.max_attempts
        # A transcription server (Triton, Riva) that is down: the job waits, nothing lost, no attempt used up.
        self.postpone_on, self.postpone_seconds = (AsrUnavailable,), cfg.asr.unavailable_wait_seconds

    def process(self, job: jobs.Job, ctx: JobContext) -> None:
        rec_id = job.subject_id
        with closing(ctx.connect()) as conn:
            found = recordings.start_transcription(conn, rec_id)
            if found is None:  # deleted meanwhile; the job row went with it
                return
        if found.audio_gone:  # shredded ahead of the text (appliance/recordings/audio_life.py): nothing to do
            with ctx.commit() as conn:
                recordings.transcription_refused(conn, rec_id)
            return
        with closing(ctx.connect()) as conn:
            options = options_for(self.cfg.asr, language=found.language, conn=conn,
                                  interpreter_language=found.interpreter_language)
        with ctx.app.blobs.open(rec_id, found.dek) as reader:
            data = reader.read_all()  # decrypted into memory only
        progress = ctx.progress(lambda c, p: recordings.set_transcription_progress(c, rec_id, p),
                                PROGRESS_WRITE_INTERVAL)
        transcript = transcribe_audio(self.transcriber, data, options, on_segment=lambda _s, p: progress(p),
                                      diarizer=self.diarizer,
                                      diarize_options=diarize_options_for(self.cfg.diarization, found.speakers_hint))
        del data
        with ctx.commit() as conn:
            store.save_transcript(conn, rec_id, transcript)
        log.info("job %s: %d segments, %.1f s audio", job.id, len(transcript.segments), transcript.info.duration)

    def failure_code(self, exc: Exception) -> str | None:
        if isinstance(exc, BadAudio):
            return "bad_audio"
        if isinstance(exc, IntegrityError):
            return "integrity"
        if isinstance(exc, AsrRejected):  # the transcription server refuses it (e.g. its language): retrying won't help
            return "asr_rejected"
        return None


class AsrWorker(JobWorker):
    """The unit's loop: live transcript steps and diarization of finished live recordings first (bounded
    steps), then one queued upload; an upload runs to its end while live transcripts wait (their audio is
    safe in the store) and catch up afterwards."""

    def __init__(self, app: Appliance, transcriber: Transcriber, worker_id: str | None = None,
                 diarizer: Diarizer | None = None) -> None:
        worker = worker_id or f"asr:{socket.gethostname()}:{os.getpid()}"
        transcriber = per_line_languages(transcriber)  # interpreted meetings: a language per line
        super().__init__(app, worker, [Transcribe(app.cfg, transcriber, diarizer)],
                         poll_seconds=app.cfg.asr.poll_seconds, steps=[self.run_live_once, self.run_diarize_once])
        self.transcriber, self.diarizer = transcriber, diarizer  # diarizer None: transcripts without speakers
        self.live = LiveTranscriber(app, transcriber, worker, diarizer)

    def run_live_once(self) -> bool:
        """One step of a live transcript (services/live_asr.py); a failure is logged, never fatal."""
        try:
            return self.live.run_once()
        except Exception:
            log.exception("live transcription step failed; it is retried when its lease lapses")
            return False

    def run_diarize_once(self) -> bool:
        """Label the lines of one finished live transcript by speaker (uploads are diarized within their job;
        a live transcript is written stretch by stretch, so the whole recording is diarized once it is final).
        Returns whether there was one."""
        if self.diarizer is None:
            return False
        with closing(self.app.connect()) as conn:
            rec_id = live.next_undiarized(conn)
        if rec_id is None:
            return False
        try:
            diarize_stored(self.app, self.diarizer, rec_id)
        except Exception:  # never retried in a loop: the transcript stays, without speakers
            log.exception("diarizing live recording %s failed", rec_id)
            with closing(self.app.connect()) as conn, transaction(conn):
                store.store_speaker_labels(conn, rec_id, None)
        return True


def main(config_path: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(config_path)
        app = open_appliance(cfg)
        transcriber = load_transcriber(cfg.asr, cfg.paths.models)
    except ApplianceError as exc:
        log.error("asr cannot start: %s", exc)
        return 2
    worker = AsrWorker(app, transcriber, diarizer=load_diarizer_for(cfg.diarization, cfg.paths.models))
    stop_on_signals(worker.stopping, "stopping after the current segment")
    worker.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
