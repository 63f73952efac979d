"""Log follow-up that leaves a record (logguppföljning): the responsible person's reviews of the audit log.

The log-review page (web/review.py) offers a targeted review (a user, a recording id, a period) and a random
sample of content accesses (`is_content_access`: reads that showed transcript, audio or derived text). When done,
the responsible person records it here (`record`): what kind of review, its scope (the filters: ids and dates
only), what was checked and any finding, audited as `review.recorded`. The records are the office's evidence that
the log is followed up: `report_data` hands them to the compliance report (`appliance report`), and `overdue`
lets `appliance doctor` warn when none was recorded for `[log_review] warn_after_days` (default 30).

Free text is the responsible person's own; it must not hold personal data — a personnummer is refused — and
ids (user:3, recording ids) are the way to name what was looked at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date

from appliance import clock
from appliance.config import Config
from appliance.errors import ApplianceError, NotFound
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.transcripts import pseudonymize
from appliance.users.accounts import User

ROLE = "responsible"
KINDS = {"targeted": "Riktad granskning", "sample": "Stickprov av innehållsåtkomster", "general": "Genomgång av loggen"}
MAX_TEXT = 2000
# Audited actions that showed content (transcript, audio or text derived from them) to the actor.
CONTENT_READS = frozenset({
    "recording.read", "recording.audio", "recording.edit_history", "recording.suggestions", "recording.pii",
    "recording.export", "recording.summaries", "recording.live", "recording.chat", "recording.topics",
    "recording.case_draft", "pii.reveal",
})
_REC_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")

MSG_CHECKED = f"Beskriv vad som granskades (högst {MAX_TEXT} tecken)."
MSG_FINDING = f"Beskriv avvikelsen (högst {MAX_TEXT} tecken), eller välj att inget avvikande hittades."
MSG_KIND = "Välj vilken sorts granskning det var."
MSG_PNR = "Skriv inte personnummer i granskningen; ange användare och inspelningar med deras id."


def is_content_access(rec: dict) -> bool:
    """An audit record of someone being shown content (allowed)."""
    return rec["action"] in CONTENT_READS and rec["result"] == "ok" and rec["actor"].startswith("user:")


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    reviewer: str            # "user:3"
    reviewer_name: str
    reviewed_at: float
    kind: str
    scope: dict
    checked: str
    finding: str
    has_finding: bool

    @property
    def kind_text(self) -> str:
        return KINDS[self.kind]

    def as_dict(self) -> dict:
        return {"id": self.id, "reviewer": self.reviewer, "reviewer_name": self.reviewer_name,
                "reviewed_at": self.reviewed_at, "kind": self.kind, "scope": self.scope, "checked": self.checked,
                "finding": self.finding, "has_finding": self.has_finding}


def _clean(text: str | None, message: str, *, required: bool) -> str:
    text = "\n".join(line.rstrip() for line in (text or "").replace("\r\n", "\n").split("\n")).strip()
    if (required and not text) or len(text) > MAX_TEXT:
        raise ApplianceError(message)
    if pseudonymize.identity_numbers(text):
        raise ApplianceError(MSG_PNR)
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())


def clean_scope(scope: dict) -> dict:
    """The review's scope as ids, dates and counts only (anything else is dropped)."""
    out: dict = {}
    user = str(scope.get("user") or "").removeprefix("user:")
    if user.isdigit() and len(user) <= 12:
        out["user"] = f"user:{int(user)}"
    rec = str(scope.get("recording") or "").removeprefix("recording:")
    if _REC_ID.match(rec):
        out["recording"] = rec
    for key in ("since", "until"):
        try:
            out[key] = date.fromisoformat(str(scope.get(key) or "")).isoformat()
        except ValueError:
            pass
    for key in ("sample", "records"):
        value = str(scope.get(key) or "")
        if value.isdigit() and len(value) <= 9:
            out[key] = int(value)
    return out


def _row(r) -> ReviewRecord:
    who = f"user:{r['reviewer_id']}" if r["reviewer_id"] is not None else "user:?"
    return ReviewRecord(r["id"], who, r["reviewer_name"] or who, r["reviewed_at"], r["kind"],
                        json.loads(r["scope"]), r["checked"], r["finding"], bool(r["has_finding"]))


_SELECT = ("SELECT l.*, coalesce(nullif(u.display_name, ''), u.username) AS reviewer_name FROM log_reviews l "
           "LEFT JOIN users u ON u.id = l.reviewer_id")


def record(conn: Connection, user: User, *, kind: str, scope: dict, checked: str | None,
           finding: str | None = None) -> ReviewRecord:
    """The responsible person records a finished review (NotFound for anyone else). Audited: ids only."""
    if ROLE not in user.roles or user.disabled:
        raise NotFound("Sidan finns inte.")
    if kind not in KINDS:
        raise ApplianceError(MSG_KIND)
    checked = _clean(checked, MSG_CHECKED, required=True)
    has_finding = finding is not None
    finding = _clean(finding, MSG_FINDING, required=True) if has_finding else ""
    scope = clean_scope(scope)
    with transaction(conn):
        review_id = conn.execute(
            "INSERT INTO log_reviews (reviewer_id, reviewed_at, kind, scope, checked, finding, has_finding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user.id, clock.now(), kind, json.dumps(scope), checked, finding, int(has_finding))).lastrowid
        audit.record(conn, user.actor, "review.recorded", f"log_review:{review_id}", role=ROLE,
                     data={"kind": kind, "has_finding": has_finding, **scope})
        return _row(conn.execute(_SELECT + " WHERE l.id = ?", (review_id,)).fetchone())


def recent(conn: Connection, limit: int = 20) -> list[ReviewRecord]:
    return [_row(r) for r in conn.execute(_SELECT + " ORDER BY l.reviewed_at DESC, l.id DESC LIMIT ?", (limit,))]


def for_report(conn: Connection, since: float | None = None, until: float | None = None) -> list[ReviewRecord]:
    """Recorded reviews in [since, until), oldest first: what the compliance report lists."""
    sql, params = _SELECT + " WHERE 1 = 1", []
    if since is not None:
        sql, params = sql + " AND l.reviewed_at >= ?", [*params, since]
    if until is not None:
        sql, params = sql + " AND l.reviewed_at < ?", [*params, until]
    return [_row(r) for r in conn.execute(sql + " ORDER BY l.reviewed_at, l.id", params)]


def last_review_at(conn: Connection) -> float | None:
    return conn.execute("SELECT max(reviewed_at) FROM log_reviews").fetchone()[0]


def overdue(cfg: Config, conn: Connection, now: float | None = None) -> bool:
    """No review recorded within `[log_review] warn_after_days` (counted from installation if none ever was)."""
    now = clock.now() if now is None else now
    last = last_review_at(conn)
    if last is None:
        last = conn.execute("SELECT min(created_at) FROM users").fetchone()[0] or now
    return now - last > cfg.log_review.warn_after_days * 86400


def report_data(cfg: Config, conn: Connection, since: float | None = None, until: float | None = None,
                now: float | None = None) -> dict:
    """The compliance report's section on log follow-up (JSON-ready; provisioning/report.py prints it). The
    reviewer is named by id only; what was checked and found is the responsible person's own record."""
    reviews = for_report(conn, since, until)
    return {"reviews": [{k: v for k, v in r.as_dict().items() if k != "reviewer_name"} for r in reviews],
            "count": len(reviews), "with_findings": sum(1 for r in reviews if r.has_finding),
            "last_review_at": last_review_at(conn), "warn_after_days": cfg.log_review.warn_after_days,
            "overdue": overdue(cfg, conn, now)}
