"""Case-draft jobs in the assistant unit (services/assistant.py calls `run_once` when no summary is waiting).

Same discipline as summaries: a lease kept alive while the model works, progress written as it goes, the
result written in one transaction that first checks the lease is still ours; the model server down or too
slow fails the draft at once with the client's Swedish message (the page offers a retry); an unexpected error
lets the lease lapse so the job is retried, at most `assistant.max_attempts` times. The work itself is
`appliance.assistant.case_drafts` + `summarize.summarize` (the same code as a summary).
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from typing import TYPE_CHECKING

from appliance.assistant import case_drafts
from appliance.assistant.summarize import summarize
from appliance.errors import ApplianceError
from appliance.platform import audit, jobs, sdnotify
from appliance.platform.db import transaction
from services.lease import LeaseKeeper

if TYPE_CHECKING:
    from services.assistant import AssistantWorker

log = logging.getLogger(__name__)

ACTOR = "service:assistant"
MSG_ATTEMPTS = "Utkastet avbröts upprepade gånger. Försök igen; om felet kvarstår, kontakta IT."
_PROGRESS_WRITE_INTERVAL = 0.5


class _Stopping(Exception):
    pass


def run_once(w: AssistantWorker) -> bool:
    """Process one case-draft job if there is one. Returns whether a job was claimed."""
    a = w.cfg.assistant
    with closing(w.app.connect()) as conn:
        job = jobs.claim(conn, w.worker, case_drafts.CASE_DRAFT_JOB, a.lease_seconds, max_attempts=1 << 30)
        if job is None:
            return False
        draft = case_drafts.for_job(conn, job.id)
        if draft is None or job.attempts > a.max_attempts:
            with transaction(conn):
                if draft is not None:
                    case_drafts.store_failure(conn, draft.id, MSG_ATTEMPTS)
                jobs.mark_failed(conn, job.id, "too_many_attempts" if draft else "no_draft")
            return True
    log.info("job %s claimed (case draft %s, attempt %s)", job.id, draft.id, job.attempts)
    keeper = LeaseKeeper(w.app, job.id, w.worker, a.lease_seconds)
    keeper.start()
    try:
        _process(w, job, draft, keeper)
    except _Stopping:
        _release(w, job)
    except ApplianceError as exc:  # LlmUnavailable and friends: the message is safe to show
        _finish_failed(w, job, draft, str(exc), type(exc).__name__)
    except Exception:
        log.exception("job %s failed unexpectedly; it will be retried", job.id)
        _release(w, job)
    finally:
        keeper.stop()
    return True


def _process(w: AssistantWorker, job: jobs.Job, draft: case_drafts.CaseDraft, keeper: LeaseKeeper) -> None:
    with closing(w.app.connect()) as conn:
        segments, refs = case_drafts.combined_segments(conn, draft)
        template = case_drafts.template(conn)
        case_drafts.set_progress(conn, draft.id, 0.0)
    last_write = 0.0

    def on_progress(progress: float) -> None:
        nonlocal last_write
        sdnotify.watchdog_ping()
        if w.stopping.is_set() or keeper.lost:
            raise _Stopping
        now = time.monotonic()
        if now - last_write >= _PROGRESS_WRITE_INTERVAL:
            with closing(w.app.connect()) as c:
                case_drafts.set_progress(c, draft.id, min(progress, 0.99))
            last_write = now

    started = time.monotonic()
    result = summarize(w.client, segments, template, w.cfg.assistant, on_progress=on_progress, reveal=draft.reveal)
    content = case_drafts.content_for(result.to_json(), draft, refs)
    with closing(w.app.connect()) as conn, transaction(conn):
        if not jobs.holds_lease(conn, job.id, w.worker):
            log.warning("job %s: lease lost before commit; result discarded", job.id)
            return
        case_drafts.store_result(conn, draft.id, content)
        jobs.mark_done(conn, job.id)
        audit.record(conn, ACTOR, "case_draft.done", f"case_draft:{draft.id}",
                     data={"sources": len(draft.sources), "chunks": result.chunks, "flagged": result.flagged})
    log.info("job %s done: case draft of %d sources, %d lines, %d chunks in %.1f s", job.id, len(draft.sources),
             len(segments), result.chunks, time.monotonic() - started)


def _finish_failed(w: AssistantWorker, job: jobs.Job, draft: case_drafts.CaseDraft, message: str, code: str) -> None:
    with closing(w.app.connect()) as conn, transaction(conn):
        if not jobs.holds_lease(conn, job.id, w.worker):
            return
        case_drafts.store_failure(conn, draft.id, message)
        jobs.mark_failed(conn, job.id, code)
        audit.record(conn, ACTOR, "case_draft.failed", f"case_draft:{draft.id}", result="failed",
                     data={"error": code})
    log.warning("job %s failed: %s", job.id, code)


def _release(w: AssistantWorker, job: jobs.Job) -> None:
    with closing(w.app.connect()) as conn, transaction(conn):
        if jobs.holds_lease(conn, job.id, w.worker):
            conn.execute("UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires = NULL WHERE id = ?",
                         (job.id,))
