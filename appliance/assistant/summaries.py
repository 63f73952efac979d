"""Summaries stored with their recording, and the review gate.

A caseworker asks for a summary under a template (`request_summary`): a row in `summaries` (queued) and a
job of kind "summarize" that the assistant worker (services/assistant.py) runs with
`appliance.assistant.summarize`. The page polls `status`; a failure (the language model down or too slow)
is stored with its Swedish message and the caseworker can retry.

Review gate: every summary starts as `utkast` (draft); the caseworker may correct or remove its statements
(`edit_statement`: re-checked against the cited lines, marked as edited), then marks it `granskad` (reviewed;
only a finished summary), copies the plain text (headings kept) into the case system and marks it `overford`
(transferred), which also marks the recording transferred (used by purge reminders). A reviewed summary can
be taken back to draft. Everything lives in rows that cascade with the recording, so the purge removes it.

Access: reading needs `recording.summaries` (viewer), asking, retrying and reviewing `recording.summarize`
and `recording.summary_review` (editor). Audited by ids and states only, never text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from appliance import clock
from appliance.assistant import grounding, templates
from appliance.assistant.summarize import plain_text
from appliance.assistant.transcript import numbered_segments
from appliance.errors import ApplianceError, NotFound
from appliance.ids import parse_id
from appliance.platform import audit, jobs
from appliance.platform.db import Connection, transaction
from appliance.users import access
from appliance.users.accounts import User

SUMMARIZE_JOB = "summarize"
UTKAST, GRANSKAD, OVERFORD = "utkast", "granskad", "overford"
REVIEW_STATES = {UTKAST: "Utkast", GRANSKAD: "Granskad", OVERFORD: "Överförd till verksamhetssystemet"}
STATUS_TEXT = {"queued": "I kö", "running": "Skrivs", "done": "Klar", "failed": "Misslyckades"}
MSG_NOT_READY = "Transkriptet är inte klart än. Vänta tills transkriberingen är färdig."
MSG_SUMMARY = "Sammanfattningen finns inte."
MAX_STATEMENT_EDIT = 2000


class ReviewedDraft:
    """What summaries and case drafts show alike: the job's status, the review state, the plain text to copy
    and how many statements the grounding checker flagged. Needs `status`, `review_state` and `content`."""

    status: str
    review_state: str
    content: dict | None

    @property
    def review_text(self) -> str:
        return REVIEW_STATES[self.review_state]

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]

    @property
    def plain_text(self) -> str:
        return plain_text(self.content) if self.content else ""

    @property
    def flagged(self) -> int:
        return int((self.content or {}).get("flagged", 0))


@dataclass(frozen=True)
class Summary(ReviewedDraft):
    id: int
    recording_id: str
    template_key: str
    template_name: str
    status: str
    progress: float
    error: str | None
    reveal: bool
    review_state: str
    created_at: float
    finished_at: float | None
    reviewed_at: float | None
    transferred_at: float | None
    content: dict | None
    created_by: int | None = None

    def status_json(self) -> dict:
        """What the page polls: no content, only the job's state."""
        return {"id": self.id, "status": self.status, "status_text": self.status_text,
                "progress": round(self.progress, 3), "error": self.error, "review_state": self.review_state}


def _row(r) -> Summary:
    return Summary(r["id"], r["recording_id"], r["template_key"], r["template_name"], r["status"], r["progress"],
                   r["error"], bool(r["reveal"]), r["review_state"], r["created_at"], r["finished_at"],
                   r["reviewed_at"], r["transferred_at"], json.loads(r["content"]) if r["content"] else None,
                   r["created_by"])


def _sid(summary_id: int | str) -> int:
    sid = parse_id(summary_id)
    if sid is None:
        raise NotFound(MSG_SUMMARY)
    return sid


def request_summary(conn: Connection, user: User, rec_id: str, template_key: str, *, reveal: bool = False) -> int:
    """Queue a summary of the recording under the template; returns its id."""
    row = access.require_recording(conn, user, rec_id, "recording.summarize")
    if row["status"] != "ready":
        raise ApplianceError(MSG_NOT_READY)
    template = templates.get(conn, conn.cfg, template_key)
    t = clock.now()
    with transaction(conn):
        job_id = jobs.enqueue(conn, SUMMARIZE_JOB, rec_id)
        cur = conn.execute(
            "INSERT INTO summaries (recording_id, job_id, template_key, template_name, status, reveal, created_by, "
            "created_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            (rec_id, job_id, template.key, template.name, int(reveal), user.id, t))
        sid = int(cur.lastrowid)
        audit.record(conn, user.actor, "summary.request", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{sid}", "template": template.key, "reveal": bool(reveal)})
    return sid


def list_summaries(conn: Connection, user: User, rec_id: str) -> list[Summary]:
    access.require_recording(conn, user, rec_id, "recording.summaries")
    return [_row(r) for r in conn.execute("SELECT * FROM summaries WHERE recording_id = ? ORDER BY id DESC",
                                          (rec_id,))]


def get_summary(conn: Connection, user: User, rec_id: str, summary_id: int | str,
                action: str = "recording.summaries") -> Summary:
    access.require_recording(conn, user, rec_id, action)
    r = conn.execute("SELECT * FROM summaries WHERE id = ? AND recording_id = ?", (_sid(summary_id), rec_id)).fetchone()
    if r is None:
        raise NotFound(MSG_SUMMARY)
    return _row(r)


def set_review_state(conn: Connection, user: User, rec_id: str, summary_id: int | str, state: str) -> Summary:
    """Move a summary through the review gate (utkast ↔ granskad → overford)."""
    s = get_summary(conn, user, rec_id, summary_id, "recording.summary_review")
    if state not in REVIEW_STATES:
        raise ApplianceError("Okänt granskningsläge.")
    if s.status != "done":
        raise ApplianceError("Sammanfattningen är inte klar än och kan inte granskas.")
    if state == OVERFORD and s.review_state == UTKAST:
        raise ApplianceError("Markera sammanfattningen som granskad innan du markerar den som överförd.")
    t = clock.now()
    with transaction(conn):
        if state == UTKAST:
            conn.execute("UPDATE summaries SET review_state = ?, reviewed_by = NULL, reviewed_at = NULL, "
                         "transferred_at = NULL WHERE id = ?", (state, s.id))
        elif state == GRANSKAD:
            conn.execute("UPDATE summaries SET review_state = ?, reviewed_by = ?, reviewed_at = ?, "
                         "transferred_at = NULL WHERE id = ?", (state, user.id, t, s.id))
        else:
            conn.execute("UPDATE summaries SET review_state = ?, transferred_at = ? WHERE id = ?", (state, t, s.id))
            # The recording counts as documented in the case system (purge reminders use this).
            conn.execute("UPDATE recordings SET transferred_at = coalesce(transferred_at, ?) WHERE id = ?", (t, rec_id))
        audit.record(conn, user.actor, "summary.review", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{s.id}", "from": s.review_state, "to": state})
    return get_summary(conn, user, rec_id, s.id)


def edit_statement(conn: Connection, user: User, rec_id: str, summary_id: int | str, section: int | str,
                   statement: int | str, text: str) -> Summary:
    """The caseworker corrects a statement of a draft (empty text removes it). The new text is checked against
    the lines the statement cites, like the model's, and marked as edited; audited by ids only."""
    s = get_summary(conn, user, rec_id, summary_id, "recording.summary_edit")
    if s.status != "done" or s.content is None:
        raise ApplianceError("Sammanfattningen är inte klar än.")
    if s.review_state != UTKAST:
        raise ApplianceError("Bara ett utkast kan ändras. Gör sammanfattningen till ett utkast igen först.")
    try:
        sec, idx = int(section), int(statement)
        stmts = s.content["sections"][sec]["statements"]
        old = stmts[idx]
    except (TypeError, ValueError, IndexError, KeyError):
        raise ApplianceError("Påståendet finns inte längre. Ladda om sidan.") from None
    text = " ".join((text or "").split())
    if len(text) > MAX_STATEMENT_EDIT:
        raise ApplianceError(f"Ett påstående får vara högst {MAX_STATEMENT_EDIT} tecken.")
    if not text:
        del stmts[idx]
    else:
        lines = {n.number: n.text for n in numbered_segments(conn, rec_id, reveal=s.reveal, user=user)}
        checked = grounding.check_statement(grounding.Statement(text, tuple(old["citations"])), lines)
        stmts[idx] = {**checked.as_dict(), "edited": True}
    content = dict(s.content)
    content["flagged"] = sum(st["status"] != grounding.OK for sec_ in content["sections"] for st in sec_["statements"])
    with transaction(conn):
        conn.execute("UPDATE summaries SET content = ? WHERE id = ?", (json.dumps(content, ensure_ascii=False), s.id))
        audit.record(conn, user.actor, "summary.edit", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{s.id}", "section": sec, "statement": idx, "removed": not text})
    return get_summary(conn, user, rec_id, s.id)


def retry(conn: Connection, user: User, rec_id: str, summary_id: int | str) -> Summary:
    """Queue a failed summary again (the model was down or too slow)."""
    s = get_summary(conn, user, rec_id, summary_id, "recording.summarize")
    if s.status != "failed":
        raise ApplianceError("Bara en misslyckad sammanfattning kan göras om.")
    with transaction(conn):
        job_id = jobs.enqueue(conn, SUMMARIZE_JOB, rec_id)
        conn.execute("UPDATE summaries SET status = 'queued', progress = 0, error = NULL, job_id = ?, content = NULL, "
                     "finished_at = NULL WHERE id = ?", (job_id, s.id))
        audit.record(conn, user.actor, "summary.retry", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{s.id}"})
    return get_summary(conn, user, rec_id, s.id)


def review_counts(conn: Connection, rec_ids: list[str]) -> dict[str, dict[str, int]]:
    """Finished summaries per review state for recordings the caller already lists (not a content read)."""
    out: dict[str, dict[str, int]] = {}
    if not rec_ids:
        return out
    marks = ",".join("?" * len(rec_ids))
    for r in conn.execute(f"SELECT recording_id, review_state, count(*) AS n FROM summaries "  # noqa: S608 (marks only)
                          f"WHERE status = 'done' AND recording_id IN ({marks}) GROUP BY recording_id, review_state",
                          rec_ids):
        out.setdefault(r["recording_id"], {})[r["review_state"]] = r["n"]
    return out


# ------------------------------------------------------------------------------------------ worker side

def for_job(conn: Connection, job_id: int) -> Summary | None:
    r = conn.execute("SELECT * FROM summaries WHERE job_id = ?", (job_id,)).fetchone()
    return _row(r) if r is not None else None


def set_progress(conn: Connection, summary_id: int, progress: float) -> None:
    conn.execute("UPDATE summaries SET status = 'running', progress = ? WHERE id = ?", (progress, summary_id))


def store_result(conn: Connection, summary_id: int, content: dict) -> None:
    """Call inside the worker's transaction that also marks the job done."""
    conn.execute("UPDATE summaries SET status = 'done', progress = 1, error = NULL, content = ?, finished_at = ? "
                 "WHERE id = ?", (json.dumps(content, ensure_ascii=False), clock.now(), summary_id))


def store_failure(conn: Connection, summary_id: int, message: str) -> None:
    conn.execute("UPDATE summaries SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                 (message, clock.now(), summary_id))
