"""The assistant unit: writes summaries and case drafts (reviewed drafts, appliance/assistant/drafts.py) with
the language model, one job at a time through the one job loop (services/worker.py), summaries first.

It loads no model: it talks to the llm unit (or the server at `llm.base_url`) through the `ChatModel` port
(appliance/assistant/llm_client.py), so it needs loopback or the llm socket and nothing else. When the model
server is down or too slow, the draft fails at once with the client's Swedish message and the caseworker
retries from the page; an unexpected error lets the job be retried (at most `assistant.max_attempts` times).
Run: `appliance assistant` or `python -m services.assistant`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from contextlib import closing

from appliance.assistant import case_drafts, drafts, summaries
from appliance.assistant.drafts import DraftWork
from appliance.assistant.llm_client import LlmClient
from appliance.assistant.summarize import summarize
from appliance.config import AssistantConfig, load_config
from appliance.errors import ApplianceError
from appliance.platform import jobs
from appliance.platform.context import Appliance, open_appliance
from appliance.platform.db import Connection
from appliance.ports import ChatModel
from services.signals import stop_on_signals
from services.worker import JobContext, JobWorker

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 0.5


class WriteDraft:
    """The job handler for one kind of draft: gather its input (`work`), summarize it, store it."""

    def __init__(self, kind: jobs.JobKind, work: Callable[[Connection, str], DraftWork | None], client: ChatModel,
                 cfg: AssistantConfig) -> None:
        self.kind, self.work, self.client, self.cfg = kind, work, client, cfg
        self.lease_seconds, self.max_attempts = cfg.lease_seconds, cfg.max_attempts
        # The model server down fails the draft at once with a retry button (the caseworker is waiting).
        self.postpone_on, self.postpone_seconds = (), 0.0

    def process(self, job: jobs.Job, ctx: JobContext) -> None:
        with closing(ctx.connect()) as conn:
            work = self.work(conn, job.subject_id)
            if work is None:  # deleted meanwhile (its recording deleted or purged)
                raise ApplianceError("Utkastet finns inte längre.")
            drafts.set_progress(conn, work.table, work.draft_id, 0.0)
        progress = ctx.progress(lambda c, p: drafts.set_progress(c, work.table, work.draft_id, p),
                                PROGRESS_WRITE_INTERVAL)
        result = summarize(self.client, work.segments, work.template, self.cfg, on_progress=progress,
                           reveal=work.reveal)
        with ctx.commit() as conn:
            drafts.store_result(conn, work, result)
        log.info("job %s: %s of %d lines, %d chunks, %d requests", job.id, work.table.noun, len(work.segments),
                 result.chunks, result.requests)

    def failure_code(self, exc: Exception) -> str | None:
        # LlmUnavailable, LlmError, a template gone: the message is safe to show, a retry would not help.
        return type(exc).__name__ if isinstance(exc, ApplianceError) else None


class AssistantWorker(JobWorker):
    def __init__(self, app: Appliance, client: ChatModel | None = None, worker_id: str | None = None) -> None:
        client = client or LlmClient(app.cfg.llm)
        a = app.cfg.assistant
        super().__init__(app, worker_id or f"assistant:{socket.gethostname()}:{os.getpid()}",
                         [WriteDraft(summaries.SUMMARIZE, summaries.work, client, a),
                          WriteDraft(case_drafts.CASE_DRAFT, case_drafts.work, client, a)],
                         poll_seconds=a.poll_seconds)


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
