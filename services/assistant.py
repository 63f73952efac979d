"""The assistant unit: claims summary jobs and writes grounded summaries with the language model.

Like the asr worker (same lease keeper, short-lived connections, result written in one transaction that
first checks the lease is still ours), but it loads no model: it talks to the llm unit (or the server at
`llm.base_url`) through appliance/llm_client.py, so it needs loopback or the llm socket and nothing else.
When the model server is down or too slow, the summary fails at once with the client's Swedish message and
the caseworker retries from the page; an unexpected error lets the lease lapse and the job is retried
(at most `assistant.max_attempts` times).
Run: `appliance assistant` or `python -m services.assistant`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import closing

from appliance.assistant import summaries, templates
from appliance.assistant.llm_client import LlmClient
from appliance.assistant.summarize import summarize
from appliance.assistant.transcript import numbered_segments
from appliance.config import load_config
from appliance.errors import ApplianceError
from appliance.platform import audit, jobs, sdnotify
from appliance.platform.context import Appliance, open_appliance
from appliance.platform.db import transaction
from appliance.users import accounts
from services import case_draft_jobs
from services.lease import LeaseKeeper
from services.signals import stop_on_signals

log = logging.getLogger(__name__)

ACTOR = "service:assistant"
MSG_ATTEMPTS = "Sammanfattningen avbröts upprepade gånger. Försök igen; om felet kvarstår, kontakta IT."
_PROGRESS_WRITE_INTERVAL = 0.5


class Stopping(Exception):
    """Raised from the progress callback when the service was asked to stop or lost its lease."""


class AssistantWorker:
    def __init__(self, app: Appliance, client: LlmClient | None = None, worker_id: str | None = None) -> None:
        self.app = app
        self.cfg = app.cfg
        self.client = client or LlmClient(app.cfg.llm)
        self.worker = worker_id or f"assistant:{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()

    def run_forever(self) -> None:
        log.info("assistant worker %s ready (model server %s)", self.worker, self.cfg.llm.base_url)
        sdnotify.ready("summarizing")
        while not self.stopping.is_set():
            sdnotify.watchdog_ping()
            # Summaries first, then case drafts (services/case_draft_jobs.py), then wait.
            if not self.run_once() and not case_draft_jobs.run_once(self):
                self.stopping.wait(self.cfg.assistant.poll_seconds)
        log.info("assistant worker %s stopped", self.worker)

    def run_once(self) -> bool:
        """Process one summary job if there is one. Returns whether a job was claimed."""
        a = self.cfg.assistant
        with closing(self.app.connect()) as conn:
            # Attempts are bounded here (not by jobs.claim, which would mark the recording's transcription failed).
            job = jobs.claim(conn, self.worker, summaries.SUMMARIZE_JOB, a.lease_seconds, max_attempts=1 << 30)
            if job is None:
                return False
            summary = summaries.for_job(conn, job.id)
            if summary is None or job.attempts > a.max_attempts:
                with transaction(conn):
                    if summary is not None:
                        summaries.store_failure(conn, summary.id, MSG_ATTEMPTS)
                    jobs.mark_failed(conn, job.id, "too_many_attempts" if summary else "no_summary")
                return True
        log.info("job %s claimed (summary %s, attempt %s)", job.id, summary.id, job.attempts)
        keeper = LeaseKeeper(self.app, job.id, self.worker, a.lease_seconds)
        keeper.start()
        try:
            self._process(job, summary, keeper)
        except Stopping:
            self._release(job)
        except ApplianceError as exc:  # LlmUnavailable, LlmError, a template gone: the message is safe to show
            self._fail(job, summary, str(exc), type(exc).__name__)
        except Exception:
            log.exception("job %s failed unexpectedly; it will be retried", job.id)
            self._release(job)
        finally:
            keeper.stop()
        return True

    def _process(self, job: jobs.Job, summary: summaries.Summary, keeper: LeaseKeeper) -> None:
        with closing(self.app.connect()) as conn:
            # Who chose to reveal personal data to the model is named in the pii.reveal audit record.
            requester = accounts.get_user(conn, summary.created_by) if summary.reveal and summary.created_by else None
            segments = numbered_segments(conn, job.recording_id, reveal=summary.reveal, user=requester)
            template = templates.get(conn, self.cfg, summary.template_key)
            summaries.set_progress(conn, summary.id, 0.0)
        last_write = 0.0

        def on_progress(progress: float) -> None:
            nonlocal last_write
            sdnotify.watchdog_ping()
            if self.stopping.is_set() or keeper.lost:
                raise Stopping
            now = time.monotonic()
            if now - last_write >= _PROGRESS_WRITE_INTERVAL:
                with closing(self.app.connect()) as conn:
                    summaries.set_progress(conn, summary.id, min(progress, 0.99))
                last_write = now

        started = time.monotonic()
        result = summarize(self.client, segments, template, self.cfg.assistant, on_progress=on_progress,
                           reveal=summary.reveal)
        with closing(self.app.connect()) as conn, transaction(conn):
            if not jobs.holds_lease(conn, job.id, self.worker):
                log.warning("job %s: lease lost before commit; result discarded", job.id)
                return
            summaries.store_result(conn, summary.id, result.to_json())
            jobs.mark_done(conn, job.id)
            audit.record(conn, ACTOR, "summary.done", f"recording:{job.recording_id}",
                         data={"summary": f"summary:{summary.id}", "chunks": result.chunks,
                               "flagged": result.flagged})
        log.info("job %s done: %d segments, %d chunks, %d requests in %.1f s", job.id, len(segments), result.chunks,
                 result.requests, time.monotonic() - started)

    def _fail(self, job: jobs.Job, summary: summaries.Summary, message: str, code: str) -> None:
        with closing(self.app.connect()) as conn, transaction(conn):
            if not jobs.holds_lease(conn, job.id, self.worker):
                return
            summaries.store_failure(conn, summary.id, message)
            jobs.mark_failed(conn, job.id, code)
            audit.record(conn, ACTOR, "summary.failed", f"recording:{job.recording_id}", result="failed",
                         data={"summary": f"summary:{summary.id}", "error": code})
        log.warning("job %s failed: %s", job.id, code)

    def _release(self, job: jobs.Job) -> None:
        with closing(self.app.connect()) as conn, transaction(conn):
            if jobs.holds_lease(conn, job.id, self.worker):
                conn.execute("UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL WHERE id = ?",
                             (job.id,))


def main(config_path: str | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        app = open_appliance(load_config(config_path))
    except ApplianceError as exc:
        log.error("assistant cannot start: %s", exc)
        return 2
    worker = AssistantWorker(app)

    stop_on_signals(worker.stopping, "stopping after the current request")
    worker.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
