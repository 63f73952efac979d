"""The one job loop: claim a job, keep its lease alive, run the unit's `process`, finish or fail or release it.

Each worker unit (asr: transcription; assistant: summaries and case drafts) hands `JobWorker` its handlers, one
per job kind, in priority order, plus optional steps that run before the queue on every turn (the asr unit's
live transcripts). A handler only does the work: it reads its input on short-lived connections, reports
progress through `JobContext.progress` (which also notices a stop request or a lost lease), and writes its
result inside `JobContext.commit()`, the transaction that first checks the lease is still ours and marks the job
done, so each job lands exactly once.

What happens to errors, the same for every unit:
- the unit is stopping, or the lease was lost: the job goes back to the queue (`jobs.release`);
- an error the handler names permanent (`failure_code` returns a code): the job fails and its subject shows
  the error's message, which is safe to show (a domain error);
- an error that says a server the job needs is down (`postpone_on`, e.g. the Triton server): the job goes back
  to the queue without using up an attempt, its subject shows why it waits, and the unit pauses
  `postpone_seconds` before it claims again;
- anything else: logged without content, the lease lapses and the job is retried, at most `max_attempts`
  times in all, after which the subject shows the kind's "stopped repeatedly" message.

Database connections are short-lived, never held across the work, so a purge can re-key the database meanwhile.
Under systemd the loop tells it when it is ready and feeds the watchdog on every turn and every progress report
(appliance/platform/sdnotify.py): a hung worker is killed and restarted, and the restart is audited.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Protocol

from appliance.platform import jobs, sdnotify
from appliance.platform.context import Appliance
from appliance.platform.db import Connection, transaction

log = logging.getLogger(__name__)


class Stopping(Exception):
    """Raised inside a job when the unit was asked to stop or lost the job's lease."""


class LeaseLost(Exception):
    """The lease lapsed before the result was written: another worker has the job; the result is discarded."""


class LeaseKeeper(threading.Thread):
    """Renews a job's lease every third of its length on its own connection."""

    def __init__(self, app: Appliance, job_id: int, worker: str, lease_s: float) -> None:
        super().__init__(daemon=True, name=f"lease-{job_id}")
        self._app, self._job_id, self._worker, self._lease_s = app, job_id, worker, lease_s
        self._done = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self._done.wait(self._lease_s / 3):
            with closing(self._app.connect()) as conn:
                if not jobs.heartbeat(conn, self._job_id, self._worker, self._lease_s):
                    self.lost = True
                    return

    def stop(self) -> None:
        self._done.set()
        self.join()


@dataclass
class JobContext:
    """What a handler's `process` gets besides the job: connections, progress, the result transaction."""

    app: Appliance
    job: jobs.Job
    worker: str
    stopping: threading.Event
    keeper: LeaseKeeper

    def connect(self):
        """A short-lived connection (use with `contextlib.closing`)."""
        return self.app.connect()

    def check(self) -> None:
        """Raise Stopping when the unit is stopping or the lease is gone; otherwise the unit is alive (a long job
        keeps the systemd watchdog fed through its progress callbacks)."""
        if self.stopping.is_set() or self.keeper.lost:
            raise Stopping
        sdnotify.watchdog_ping()

    def progress(self, write: Callable[[Connection, float], None], interval: float) -> Callable[[float], None]:
        """A progress callback for long work: checks for a stop at every call and writes the fraction done
        (below 1: the result write says done) with `write` at most every `interval` seconds."""
        last = 0.0

        def report(fraction: float) -> None:
            nonlocal last
            self.check()
            now = time.monotonic()
            if now - last >= interval:
                with closing(self.app.connect()) as conn:
                    write(conn, min(fraction, 0.99))
                last = now

        return report

    @contextmanager
    def commit(self) -> Iterator[Connection]:
        """The result transaction: yields a connection if the lease still holds (LeaseLost otherwise) and
        marks the job done in the same transaction."""
        with closing(self.app.connect()) as conn, transaction(conn):
            if not jobs.complete(conn, self.job.id, self.worker):
                raise LeaseLost
            yield conn


class JobHandler(Protocol):
    """One job kind's work inside a worker unit."""

    kind: jobs.JobKind
    lease_seconds: float
    max_attempts: int
    postpone_on: tuple[type[Exception], ...]  # errors meaning "a server it needs is down: try again later"
    postpone_seconds: float

    def process(self, job: jobs.Job, ctx: JobContext) -> None:
        """Do the job; write the result inside `ctx.commit()`."""
        ...

    def failure_code(self, exc: Exception) -> str | None:
        """A short code when `exc` fails the job for good (its message is shown); None: retry it."""
        ...


class JobWorker:
    """Runs the handlers' jobs until asked to stop (`stopping`, set by the unit's signal handler)."""

    def __init__(self, app: Appliance, worker: str, handlers: Sequence[JobHandler], *, poll_seconds: float,
                 steps: Sequence[Callable[[], bool]] = ()) -> None:
        self.app, self.worker, self.handlers, self.poll_seconds = app, worker, list(handlers), poll_seconds
        self.steps = list(steps)  # run before the queue on every turn; each returns whether it did something
        self.stopping = threading.Event()

    def run_forever(self) -> None:
        kinds = ", ".join(h.kind.name for h in self.handlers)
        log.info("worker %s ready (%s)", self.worker, kinds)
        sdnotify.ready(kinds)  # systemd (Type=notify): up; the watchdog is fed while this loop turns
        while not self.stopping.is_set():
            sdnotify.watchdog_ping()
            busy = False
            for step in self.steps:
                busy = step() or busy
            if not self.run_once() and not busy:
                self.stopping.wait(self.poll_seconds)
        log.info("worker %s stopped", self.worker)

    def run_once(self) -> bool:
        """Run one job of the first handler (in priority order) that has one. Returns whether one was claimed."""
        return any(self.run_one(h) for h in self.handlers)

    def run_one(self, handler: JobHandler) -> bool:
        kind = handler.kind
        with closing(self.app.connect()) as conn:
            job = jobs.claim(conn, self.worker, kind, handler.lease_seconds, handler.max_attempts)
        if job is None:
            return False
        log.info("job %s claimed (%s %s, attempt %s)", job.id, kind.name, job.subject_id, job.attempts)
        keeper = LeaseKeeper(self.app, job.id, self.worker, handler.lease_seconds)
        keeper.start()
        started = time.monotonic()
        try:
            handler.process(job, JobContext(self.app, job, self.worker, self.stopping, keeper))
        except Stopping:
            self._release(job, kind)
        except LeaseLost:
            log.warning("job %s: lease lost before commit; result discarded", job.id)
        except handler.postpone_on as exc:
            with closing(self.app.connect()) as conn:
                jobs.postpone(conn, job, kind, self.worker, str(exc))
            log.warning("job %s postponed: a server it needs is unavailable; next try in %.0f s", job.id,
                        handler.postpone_seconds)
            self.stopping.wait(handler.postpone_seconds)
        except Exception as exc:
            code = handler.failure_code(exc)
            if code is None:
                # Unexpected: logged without content; the job is retried (bounded attempts).
                log.exception("job %s failed unexpectedly; it will be retried", job.id)
                self._release(job, kind)
            else:
                with closing(self.app.connect()) as conn:
                    failed = jobs.fail(conn, job, kind, self.worker, code, str(exc))
                if failed:
                    log.warning("job %s failed permanently: %s", job.id, code)
        else:
            log.info("job %s done in %.1f s", job.id, time.monotonic() - started)
        finally:
            keeper.stop()
        return True

    def _release(self, job: jobs.Job, kind: jobs.JobKind) -> None:
        with closing(self.app.connect()) as conn:
            jobs.release(conn, job, kind, self.worker)
