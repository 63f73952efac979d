"""Summaries stored with their recording, and the review gate.

A caseworker asks for a summary under a template (`request_summary`): a row in `summaries` (queued) and a
job of kind "summarize" that the assistant worker (services/assistant.py) runs with
`appliance.assistant.summarize`. The page polls `status`; a failure (the language model down or too slow)
is stored with its Swedish message and the caseworker can retry.

Review gate (one for every kind of draft: appliance/assistant/drafts.py): every summary starts as `utkast`;
the caseworker may correct or remove its statements (`edit_statement`: re-checked against the cited lines,
marked as edited) or accept a flagged one as it stands (`accept_statement`; a flagged statement is left out of
the copied text until it is edited or accepted), then marks it `granskad` (reviewed; only a finished summary),
copies the plain text (headings kept) into the case system and marks it `overford` (transferred), which also
marks the recording transferred (used by purge reminders). A reviewed summary can be taken back to draft.
Everything lives in rows that cascade with the recording, so the purge removes it.

Access: reading needs `recording.summaries` (viewer), asking, retrying and reviewing `recording.summarize`
and `recording.summary_review` (editor). Audited by ids and states only, never text.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance import clock
from appliance.assistant import drafts, templates
from appliance.assistant.drafts import GRANSKAD, OVERFORD, REVIEW_STATES, UTKAST, DraftWork, ReviewedDraft
from appliance.assistant.transcript import numbered_segments
from appliance.errors import ApplianceError, NotFound
from appliance.ids import parse_id
from appliance.platform import audit, jobs
from appliance.platform.db import Connection, transaction
from appliance.users import access
from appliance.users.accounts import User, get_user

__all__ = ["GRANSKAD", "OVERFORD", "REVIEW_STATES", "UTKAST", "Summary"]

MSG_NOT_READY = "Transkriptet är inte klart än. Vänta tills transkriberingen är färdig."
MSG_SUMMARY = "Sammanfattningen finns inte."


def _recording_of(conn: Connection, summary_id: int) -> str:
    row = conn.execute("SELECT recording_id FROM summaries WHERE id = ?", (summary_id,)).fetchone()
    return f"recording:{row['recording_id']}" if row else f"summary:{summary_id}"


TABLE = drafts.DraftTable(
    "summaries", "summary",
    drafts.Wording(
        not_ready="Sammanfattningen är inte klar än och kan inte granskas.",
        review_first="Markera sammanfattningen som granskad innan du markerar den som överförd.",
        only_failed_retry="Bara en misslyckad sammanfattning kan göras om.",
        only_utkast_edits="Bara ett utkast kan ändras. Gör sammanfattningen till ett utkast igen först.",
        attempts="Sammanfattningen avbröts upprepade gånger. Försök igen; om felet kvarstår, kontakta IT."),
    _recording_of)
SUMMARIZE = drafts.job_kind("summarize", TABLE)


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


def _row(r) -> Summary:
    return Summary(r["id"], r["recording_id"], r["template_key"], r["template_name"], r["status"], r["progress"],
                   r["error"], bool(r["reveal"]), r["review_state"], r["created_at"], r["finished_at"],
                   r["reviewed_at"], r["transferred_at"], drafts.load_content(r["content"]), r["created_by"])


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
        cur = conn.execute(
            "INSERT INTO summaries (recording_id, template_key, template_name, status, reveal, created_by, "
            "created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?)",
            (rec_id, template.key, template.name, int(reveal), user.id, t))
        sid = int(cur.lastrowid)
        jobs.enqueue(conn, SUMMARIZE, sid, recording_id=rec_id)
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
    with transaction(conn):
        drafts.set_review_state(conn, TABLE, s, state, user_id=user.id, transferred_recordings=[rec_id])
        audit.record(conn, user.actor, "summary.review", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{s.id}", "from": s.review_state, "to": state})
    return get_summary(conn, user, rec_id, s.id)


def edit_statement(conn: Connection, user: User, rec_id: str, summary_id: int | str, section: int | str,
                   statement: int | str, text: str) -> Summary:
    """The caseworker corrects a statement of a draft (empty text removes it). The new text is checked against
    the lines the statement cites, like the model's, and marked as edited; audited by ids only."""
    s = get_summary(conn, user, rec_id, summary_id, "recording.summary_edit")
    content, sec, idx, removed = drafts.edited_content(
        TABLE, s, section, statement, text,
        lambda: {n.number: n.text for n in numbered_segments(conn, rec_id, reveal=s.reveal, user=user)})
    with transaction(conn):
        drafts.store_content(conn, TABLE, s.id, content)
        audit.record(conn, user.actor, "summary.edit", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{s.id}", "section": sec, "statement": idx, "removed": removed})
    return get_summary(conn, user, rec_id, s.id)


def accept_statement(conn: Connection, user: User, rec_id: str, summary_id: int | str, section: int | str,
                     statement: int | str) -> Summary:
    """The caseworker accepts a flagged statement as it stands (she checked it against the recording): it is
    copied with the rest from now on. Audited by ids only."""
    s = get_summary(conn, user, rec_id, summary_id, "recording.summary_edit")
    content, sec, idx = drafts.accepted_content(TABLE, s, section, statement)
    with transaction(conn):
        drafts.store_content(conn, TABLE, s.id, content)
        audit.record(conn, user.actor, "summary.accept", f"recording:{rec_id}", role=access.content_role(user),
                     data={"summary": f"summary:{s.id}", "section": sec, "statement": idx})
    return get_summary(conn, user, rec_id, s.id)


def retry(conn: Connection, user: User, rec_id: str, summary_id: int | str) -> Summary:
    """Queue a failed summary again (the model was down or too slow)."""
    s = get_summary(conn, user, rec_id, summary_id, "recording.summarize")
    with transaction(conn):
        drafts.requeue(conn, TABLE, SUMMARIZE, s, recording_id=rec_id)
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

def work(conn: Connection, summary_id: str) -> DraftWork | None:
    """What the assistant unit needs to write the summary (None: deleted meanwhile). Who chose to reveal
    personal data to the model is named in the pii.reveal audit record."""
    r = TABLE.row(conn, int(summary_id))
    if r is None:
        return None
    s = _row(r)
    requester = get_user(conn, s.created_by) if s.reveal and s.created_by else None
    segments = numbered_segments(conn, s.recording_id, reveal=s.reveal, user=requester)
    template = templates.get(conn, conn.cfg, s.template_key)
    return DraftWork(TABLE, s.id, segments, template, s.reveal)
