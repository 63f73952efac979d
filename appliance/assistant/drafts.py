"""Reviewed drafts: the one concept behind a summary of a recording (`summaries`) and a case draft across
recordings (`case_drafts`).

A draft is written by the assistant unit as a job (queued → running → done | failed, with progress), holds the
model's sections and cited statements as JSON (`content`), and then goes through the caseworker's review gate:
utkast (draft) → granskad (reviewed: now its text may be copied) → överförd (transferred into the case system,
which also marks its recordings transferred for the purge reminders); a reviewed draft can be taken back to
utkast. Both kinds live in tables of the same shape (migration 0017: status, progress, error, reveal, content,
review_state, created_at, finished_at, reviewed_by, reviewed_at, transferred_at), so the state names, the review
transitions, the worker's writes, the status the page polls and the page's markup (web/templates/_draft.html)
are one each. What differs — how the input is gathered, who may read it, what the audit log names — stays in
`summaries` and `case_drafts`, each describing itself with a `DraftTable`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance import clock
from appliance.assistant import grounding
from appliance.assistant.summarize import SummaryResult, accept_statement, needs_review, plain_text
from appliance.assistant.templates import Template
from appliance.assistant.transcript import NumberedSegment
from appliance.errors import ApplianceError
from appliance.platform import audit, jobs
from appliance.platform.db import Connection

UTKAST, GRANSKAD, OVERFORD = "utkast", "granskad", "overford"
REVIEW_STATES = {UTKAST: "Utkast", GRANSKAD: "Granskad", OVERFORD: "Överförd till verksamhetssystemet"}
STATUS_TEXT = {"queued": "I kö", "running": "Skrivs", "done": "Klar", "failed": "Misslyckades"}
ACTOR = "service:assistant"
MAX_STATEMENT_EDIT = 2000
MSG_UNKNOWN_STATE = "Okänt granskningsläge."
MSG_STATEMENT_GONE = "Påståendet finns inte längre. Ladda om sidan."


@dataclass(frozen=True)
class Wording:
    """The Swedish sentences of one kind of draft ("Sammanfattningen är …" / "Utkastet är …")."""

    not_ready: str          # review or edit before the draft is written
    review_first: str       # "transferred" asked of a draft not yet reviewed
    only_failed_retry: str
    only_utkast_edits: str
    attempts: str           # shown when the job was stopped too many times


@dataclass(frozen=True)
class DraftTable:
    """One kind of draft: its table, the name the audit log uses ("summary" → summary.done …), its wording,
    and `audit_target(conn, draft_id)`: what the audit record of a worker result names (ids only)."""

    table: str
    noun: str
    wording: Wording
    audit_target: Callable[[Connection, int], str]

    def row(self, conn: Connection, draft_id: int):
        return conn.execute(f"SELECT * FROM {self.table} WHERE id = ?", (draft_id,)).fetchone()  # noqa: S608


class ReviewedDraft:
    """What every draft shows alike: the job's status, the review state, the plain text to copy and how many
    statements the grounding checker flagged. Subclasses are frozen dataclasses with these fields."""

    id: int
    status: str
    progress: float
    error: str | None
    review_state: str
    content: dict | None

    @property
    def review_text(self) -> str:
        return REVIEW_STATES[self.review_state]

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]

    @property
    def pending(self) -> bool:
        return self.status in ("queued", "running")

    @property
    def plain_text(self) -> str:
        return plain_text(self.content) if self.content else ""

    @property
    def flagged(self) -> int:
        return int((self.content or {}).get("flagged", 0))

    def status_json(self) -> dict:
        """What the page polls: no content, only the job's state."""
        return {"id": self.id, "status": self.status, "status_text": self.status_text,
                "progress": round(self.progress, 3), "error": self.error, "review_state": self.review_state}


def load_content(raw: str | None) -> dict | None:
    return json.loads(raw) if raw else None


# --- the caseworker's side: review gate, corrections, retry -------------------------------------------

def set_review_state(conn: Connection, t: DraftTable, d: ReviewedDraft, state: str, *, user_id: int,
                     transferred_recordings: list[str]) -> None:
    """Move a draft through the review gate (the caller has authorised and audits it). Marking it transferred
    marks `transferred_recordings` as documented in the case system (purge reminders use this)."""
    if state not in REVIEW_STATES:
        raise ApplianceError(MSG_UNKNOWN_STATE)
    if d.status != "done":
        raise ApplianceError(t.wording.not_ready)
    if state == OVERFORD and d.review_state == UTKAST:
        raise ApplianceError(t.wording.review_first)
    now = clock.now()
    if state == UTKAST:
        conn.execute(f"UPDATE {t.table} SET review_state = ?, reviewed_by = NULL, reviewed_at = NULL, "  # noqa: S608
                     "transferred_at = NULL WHERE id = ?", (state, d.id))
    elif state == GRANSKAD:
        conn.execute(f"UPDATE {t.table} SET review_state = ?, reviewed_by = ?, reviewed_at = ?, "  # noqa: S608
                     "transferred_at = NULL WHERE id = ?", (state, user_id, now, d.id))
    else:
        conn.execute(f"UPDATE {t.table} SET review_state = ?, transferred_at = ? WHERE id = ?",  # noqa: S608
                     (state, now, d.id))
        conn.executemany("UPDATE recordings SET transferred_at = coalesce(transferred_at, ?) WHERE id = ?",
                         [(now, rid) for rid in transferred_recordings])


def _statement_of(t: DraftTable, d: ReviewedDraft, section: int | str, statement: int | str) -> tuple[dict, int, int]:
    """A deep copy of a draft's content (the draft value stays as it was) and the indexes of one of its
    statements, for a change the caseworker makes while the draft is utkast."""
    if d.status != "done" or d.content is None:
        raise ApplianceError(t.wording.not_ready)
    if d.review_state != UTKAST:
        raise ApplianceError(t.wording.only_utkast_edits)
    content = json.loads(json.dumps(d.content))
    try:
        sec, idx = int(section), int(statement)
        content["sections"][sec]["statements"][idx]  # noqa: B018 - it must exist
    except (TypeError, ValueError, IndexError, KeyError):
        raise ApplianceError(MSG_STATEMENT_GONE) from None
    return content, sec, idx


def edited_content(t: DraftTable, d: ReviewedDraft, section: int | str, statement: int | str, text: str,
                   lines: Callable[[], dict[int, str]]) -> tuple[dict, int, int, bool]:
    """The draft's content with one statement corrected (re-checked against the lines it cites, marked as
    edited) or removed (empty text). `lines()` gives the numbered lines as the model saw them. Returns the new
    content, the section and statement index, and whether it was removed."""
    content, sec, idx = _statement_of(t, d, section, statement)
    stmts = content["sections"][sec]["statements"]
    old = stmts[idx]
    text = " ".join((text or "").split())
    if len(text) > MAX_STATEMENT_EDIT:
        raise ApplianceError(f"Ett påstående får vara högst {MAX_STATEMENT_EDIT} tecken.")
    if not text:
        del stmts[idx]
    else:
        checked = grounding.check_statement(grounding.Statement(text, tuple(old["citations"])), lines())
        stmts[idx] = {**checked.as_dict(), "edited": True}
    content["flagged"] = needs_review(content)
    return content, sec, idx, not text


def accepted_content(t: DraftTable, d: ReviewedDraft, section: int | str,
                     statement: int | str) -> tuple[dict, int, int]:
    """The draft's content with one statement the checker flagged accepted as it stands: the caseworker has
    checked it against the recording, so it is copied from now on (a flagged statement is left out of the copied
    text until it is edited or accepted)."""
    content, sec, idx = _statement_of(t, d, section, statement)
    return accept_statement(content, sec, idx), sec, idx


def store_content(conn: Connection, t: DraftTable, draft_id: int, content: dict) -> None:
    conn.execute(f"UPDATE {t.table} SET content = ? WHERE id = ?",  # noqa: S608
                 (json.dumps(content, ensure_ascii=False), draft_id))


def requeue(conn: Connection, t: DraftTable, job_kind: jobs.JobKind, d: ReviewedDraft, *,
            recording_id: str | None = None) -> None:
    """Write a failed draft again (the model was down or too slow): a new job, the old result cleared."""
    if d.status != "failed":
        raise ApplianceError(t.wording.only_failed_retry)
    jobs.enqueue(conn, job_kind, d.id, recording_id=recording_id)
    conn.execute(f"UPDATE {t.table} SET status = 'queued', progress = 0, error = NULL, content = NULL, "  # noqa: S608
                 "finished_at = NULL WHERE id = ?", (d.id,))


# --- the worker's side (services/assistant.py) ----------------------------------------------------------

@dataclass(frozen=True)
class DraftWork:
    """What the assistant unit needs to write one draft: the numbered lines, the template, whether personal
    data is revealed to the model, and how the summary's JSON becomes what is stored (`finish`)."""

    table: DraftTable
    draft_id: int
    segments: list[NumberedSegment]
    template: Template
    reveal: bool
    finish: Callable[[dict], dict] = lambda content: content
    audit_data: dict = field(default_factory=dict)


def set_progress(conn: Connection, t: DraftTable, draft_id: int, progress: float) -> None:
    conn.execute(f"UPDATE {t.table} SET status = 'running', progress = ? WHERE id = ?",  # noqa: S608
                 (progress, draft_id))


def store_done(conn: Connection, t: DraftTable, draft_id: int, content: dict) -> None:
    """The draft is written: `content` stored, status done."""
    conn.execute(f"UPDATE {t.table} SET status = 'done', progress = 1, error = NULL, content = ?, "  # noqa: S608
                 "finished_at = ? WHERE id = ?", (json.dumps(content, ensure_ascii=False), clock.now(), draft_id))


def store_result(conn: Connection, work: DraftWork, result: SummaryResult) -> None:
    """Inside the worker's result transaction (which also marks the job done): the draft is written."""
    t = work.table
    store_done(conn, t, work.draft_id, work.finish(result.to_json()))
    audit.record(conn, ACTOR, f"{t.noun}.done", t.audit_target(conn, work.draft_id),
                 data={t.noun: f"{t.noun}:{work.draft_id}", **work.audit_data, "chunks": result.chunks,
                       "flagged": result.flagged})


def failure_reporter(t: DraftTable) -> Callable[[Connection, str, str, str], None]:
    """The job kind's report of a failed job: the draft shows the message (safe to show); audited by code."""

    def report(conn: Connection, draft_id: str, message: str, code: str) -> None:
        did = int(draft_id)
        if t.row(conn, did) is None:
            return  # deleted meanwhile (its recording purged): nothing to tell
        conn.execute(f"UPDATE {t.table} SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",  # noqa: S608
                     (message, clock.now(), did))
        audit.record(conn, ACTOR, f"{t.noun}.failed", t.audit_target(conn, did), result="failed",
                     data={t.noun: f"{t.noun}:{did}", "error": code})

    return report


def job_kind(name: str, t: DraftTable) -> jobs.JobKind:
    """The job kind that writes drafts of table `t`."""
    return jobs.JobKind(name, t.wording.attempts, failure_reporter(t), _released(t))


def _released(t: DraftTable) -> Callable[[Connection, str], None]:
    def released(conn: Connection, draft_id: str) -> None:
        conn.execute(f"UPDATE {t.table} SET status = 'queued' WHERE id = ?", (int(draft_id),))  # noqa: S608

    return released
