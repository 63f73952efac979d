"""The asr unit: claims transcription jobs, decrypts audio in memory, runs Whisper, stores segments.

The model is loaded once per process. Database connections are short-lived (claim, progress, result),
never held across the transcription itself, so a purge can re-key the database meanwhile. A lease
heartbeat runs in a thread so a long segment never lets the lease lapse; if the worker is killed, the
lease expires and the job is retried. Results are written in one transaction that first checks the
lease is still ours, so each job lands exactly once.
Run: `appliance asr` or `python -m services.asr`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import closing

from appliance import clock
from appliance.config import Config, load_config
from appliance.errors import ApplianceError, BadAudio, IntegrityError
from appliance.platform import audit, jobs, sdnotify
from appliance.platform.context import Appliance, open_appliance
from appliance.platform.db import Connection, transaction
from appliance.ports import Diarizer, Segment, Transcriber
from appliance.recordings.recordings import TRANSCRIBE_JOB
from appliance.transcripts import speakers
from models import load_transcriber
from services.lease import LeaseKeeper
from services.live_asr import LiveTranscriber
from services.signals import stop_on_signals
from services.transcription import (
    diarize_options_for,
    diarize_stored,
    load_diarizer_for,
    options_for,
    transcribe_audio,
)

log = logging.getLogger(__name__)

ACTOR = "service:asr"
_PROGRESS_WRITE_INTERVAL = 1.0


class Stopping(Exception):
    """Raised inside the transcription loop when the service was asked to stop."""


class AsrWorker:
    def __init__(self, app: Appliance, transcriber: Transcriber, worker_id: str | None = None,
                 diarizer: Diarizer | None = None) -> None:
        self.app = app
        self.cfg: Config = app.cfg
        self.transcriber = transcriber
        self.diarizer = diarizer  # None: transcripts without speakers (diarization off)
        self.worker = worker_id or f"asr:{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.live = LiveTranscriber(app, transcriber, self.worker)

    def run_forever(self) -> None:
        log.info("asr worker %s ready (model %s)", self.worker, self.transcriber.name)
        sdnotify.ready("transcribing")
        while not self.stopping.is_set():
            sdnotify.watchdog_ping()
            # Live recordings first (a bounded step each); an upload job runs to its end, meanwhile the
            # live transcripts wait (their audio is safe in the store) and catch up afterwards.
            busy = self.run_live_once()
            busy = self.run_diarize_once() or busy
            if not self.run_once() and not busy:
                self.stopping.wait(self.cfg.asr.poll_seconds)
        log.info("asr worker %s stopped", self.worker)

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
            row = conn.execute("SELECT r.id FROM recordings r JOIN live_sessions l ON l.recording_id = r.id "
                               "WHERE r.status = 'ready' AND r.diarization IS NULL ORDER BY r.created_at LIMIT 1"
                               ).fetchone()
        if row is None:
            return False
        try:
            diarize_stored(self.app, self.diarizer, row["id"])
        except Exception:  # never retried in a loop: the transcript stays, without speakers
            log.exception("diarizing live recording %s failed", row["id"])
            with closing(self.app.connect()) as conn:
                conn.execute("UPDATE recordings SET diarization = 'failed' WHERE id = ?", (row["id"],))
        return True

    def run_once(self) -> bool:
        """Process one job if there is one. Returns whether a job was claimed."""
        with closing(self.app.connect()) as conn:
            job = jobs.claim(conn, self.worker, TRANSCRIBE_JOB, self.cfg.asr.lease_seconds, self.cfg.asr.max_attempts)
        if job is None:
            return False
        log.info("job %s claimed (recording %s, attempt %s)", job.id, job.recording_id, job.attempts)
        keeper = LeaseKeeper(self.app, job.id, self.worker, self.cfg.asr.lease_seconds)
        keeper.start()
        try:
            self._process(job, keeper)
        except Stopping:
            self._release(job)
        except (BadAudio, IntegrityError) as exc:
            self._fail(job, "bad_audio" if isinstance(exc, BadAudio) else "integrity", str(exc))
        except Exception:
            # Unexpected: log without content; the lease lapses and the job is retried (bounded attempts).
            log.exception("job %s failed unexpectedly; it will be retried", job.id)
            self._release(job)
        finally:
            keeper.stop()
        return True

    def _process(self, job: jobs.Job, keeper: LeaseKeeper) -> None:
        with closing(self.app.connect()) as conn:
            row = conn.execute("SELECT dek, language, duration, speakers_hint FROM recordings WHERE id = ?",
                               (job.recording_id,)).fetchone()
            if row is None:  # deleted meanwhile; the job row went with it
                return
            conn.execute("UPDATE recordings SET status = 'transcribing', progress = 0, error = NULL WHERE id = ?",
                         (job.recording_id,))
            options = options_for(self.cfg.asr, language=row["language"], conn=conn)
        with self.app.blobs.open(job.recording_id, row["dek"]) as reader:
            data = reader.read_all()  # decrypted into memory only
        last_write = 0.0

        def on_segment(_segment: Segment, progress: float) -> None:
            nonlocal last_write
            sdnotify.watchdog_ping()
            if self.stopping.is_set():
                raise Stopping
            if keeper.lost:
                raise Stopping
            now = time.monotonic()
            if now - last_write >= _PROGRESS_WRITE_INTERVAL:
                with closing(self.app.connect()) as conn:
                    conn.execute("UPDATE recordings SET progress = ? WHERE id = ?",
                                 (min(progress, 0.99), job.recording_id))
                last_write = now

        started = time.monotonic()
        transcript = transcribe_audio(self.transcriber, data, options, on_segment=on_segment, diarizer=self.diarizer,
                                      diarize_options=diarize_options_for(self.cfg.diarization, row["speakers_hint"]))
        del data
        with closing(self.app.connect()) as conn, transaction(conn):
            if not jobs.holds_lease(conn, job.id, self.worker):
                log.warning("job %s: lease lost before commit; result discarded", job.id)
                return
            _store_segments(conn, job.recording_id, transcript.segments)
            speakers.store_machine(conn, job.recording_id, transcript)
            if transcript.diarization == "failed":  # the transcript is delivered; the failure is on record
                audit.record(conn, ACTOR, "recording.diarize", f"recording:{job.recording_id}", result="failed")
            conn.execute(
                "UPDATE recordings SET status = 'ready', progress = 1, error = NULL, language = ?, "
                "duration = coalesce(duration, ?) WHERE id = ?",
                (transcript.info.language, transcript.info.duration, job.recording_id))
            jobs.mark_done(conn, job.id)
            audit.record(conn, ACTOR, "recording.transcribed", f"recording:{job.recording_id}",
                         detail=f"segments:{len(transcript.segments)}")
        log.info("job %s done: %d segments, %.1f s audio in %.1f s", job.id, len(transcript.segments),
                 transcript.info.duration, time.monotonic() - started)

    def _fail(self, job: jobs.Job, code: str, message: str) -> None:
        with closing(self.app.connect()) as conn, transaction(conn):
            jobs.mark_failed(conn, job.id, code)
            conn.execute("UPDATE recordings SET status = 'failed', error = ? WHERE id = ?",
                         (message, job.recording_id))
            audit.record(conn, ACTOR, "recording.transcribe", f"recording:{job.recording_id}",
                         result="failed", detail=code)
        log.warning("job %s failed permanently: %s", job.id, code)

    def _release(self, job: jobs.Job) -> None:
        """Give the job back to the queue now instead of waiting for the lease to lapse."""
        with closing(self.app.connect()) as conn, transaction(conn):
            if jobs.holds_lease(conn, job.id, self.worker):
                conn.execute(
                    "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL, updated_at = ? "
                    "WHERE id = ?", (clock.now(), job.id))
                conn.execute("UPDATE recordings SET status = 'queued' WHERE id = ?", (job.recording_id,))


def _store_segments(conn: Connection, recording_id: str, segments: list[Segment]) -> None:
    """Replace the recording's segments (a retried job never duplicates them)."""
    conn.execute("DELETE FROM segments WHERE recording_id = ?", (recording_id,))
    for idx, seg in enumerate(segments):
        cur = conn.execute('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                           (recording_id, idx, seg.start, seg.end, seg.text.strip()))
        conn.executemany(
            'INSERT INTO words (segment_id, idx, start, "end", word, probability) VALUES (?, ?, ?, ?, ?, ?)',
            [(cur.lastrowid, i, w.start, w.end, w.word, w.probability) for i, w in enumerate(seg.words)])


def main(config_path: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(config_path)
        app = open_appliance(cfg)
        transcriber = load_transcriber(cfg.asr, cfg.paths.models)
    except ApplianceError as exc:
        log.error("asr cannot start: %s", exc)
        return 2
    worker = AsrWorker(app, transcriber, diarizer=load_diarizer_for(cfg.diarization))

    stop_on_signals(worker.stopping, "stopping after the current segment")
    worker.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
