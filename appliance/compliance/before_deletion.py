"""Documentation before deletion, checked: for managers and the responsible person, the recordings in their teams
that the purge deletes within the next 24 hours without a transferred draft — counts per caseworker and the
reminder history, never content (no titles, no text: ids, owners, times, draft states).

"Their teams": a manager sees the recordings they may see (their own, and those in folders caseworkers shared
with them — the same rule as every content page, appliance/recordings/recordings.py `visible_rows`); the
responsible person sees the whole box. "Without a transferred draft": neither the recording nor any summary or
case draft of it is marked transferred to the case system. The reminder history per caseworker: when the
in-product reminder for this purge was first shown to them (`reminders_shown`) and the reminder e-mails sent
(`reminders_sent`), with the configured reminder times.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance import clock
from appliance.config import Config
from appliance.errors import NotFound
from appliance.platform import audit, retention
from appliance.platform.db import Connection, transaction
from appliance.recordings import recordings
from appliance.users.accounts import User

WINDOW_HOURS = 24
ROLES = ("manager", "responsible")


@dataclass(frozen=True)
class AtRisk:
    recording_id: str
    owner_id: int
    created_at: float
    deadline: float
    drafts: int             # summaries and case drafts made of it (none transferred)
    reviewed: int           # of which marked reviewed (granskad)
    linkable: bool          # the viewer may open it (a manager's team; never for the responsible role alone)


@dataclass(frozen=True)
class Caseworker:
    user_id: int
    name: str
    count: int
    reminder_shown_at: float | None
    reminders_mailed: tuple[float, ...]


@dataclass(frozen=True)
class BeforeDeletion:
    scope: str                 # "team" (a manager's) or "all" (the responsible person's)
    now: float
    until: float
    purge_at: float            # the next purge
    reminder_times: tuple[str, ...]
    mail_enabled: bool
    recordings: tuple[AtRisk, ...]
    caseworkers: tuple[Caseworker, ...]


def _candidates(conn: Connection, user: User, scope: str, reading: clock.Reading):
    if scope == "team":
        return recordings.visible_rows(conn, user, reading=reading)
    cfg = conn.cfg
    return [r for r in conn.execute("SELECT * FROM recordings").fetchall() if retention.visible(cfg, r, reading)]


def _drafts(conn: Connection, rec_id: str) -> tuple[int, int, bool]:
    """(drafts, reviewed, any transferred) of the recording's summaries and case drafts."""
    rows = conn.execute(
        "SELECT review_state FROM summaries WHERE recording_id = ? AND status = 'done' UNION ALL "
        "SELECT d.review_state FROM case_drafts d JOIN case_draft_sources s ON s.draft_id = d.id "
        "WHERE s.recording_id = ? AND d.status = 'done'", (rec_id, rec_id)).fetchall()
    states = [r[0] for r in rows]
    return len(states), states.count("granskad"), "overford" in states


def _name(conn: Connection, user_id: int) -> str:
    row = conn.execute("SELECT username, display_name FROM users WHERE id = ?", (user_id,)).fetchone()
    return (row["display_name"] or row["username"]) if row else f"user:{user_id}"


def at_risk(cfg: Config, conn: Connection, user: User, reading: clock.Reading | None = None,
            hours: float = WINDOW_HOURS) -> BeforeDeletion:
    """The page's data for a manager (their teams) or the responsible person (everything); NotFound for anyone
    else. Audited as one list read (counts only)."""
    if user.disabled or not any(r in user.roles for r in ROLES):
        raise NotFound("Sidan finns inte.")
    scope = "all" if "responsible" in user.roles else "team"
    reading = reading or clock.read(cfg.retention.rtc_path)
    now = reading.latest
    later = clock.Reading(reading.system + hours * 3600, None if reading.rtc is None else reading.rtc + hours * 3600)
    rows = [r for r in _candidates(conn, user, scope, reading)
            if r["status"] != "recording" and r["transferred_at"] is None
            and retention.is_past_deadline(cfg.retention, r["created_at"], r["created_at_rtc"], later)]
    found: list[AtRisk] = []
    for r in rows:
        n, reviewed, transferred = _drafts(conn, r["id"])
        if transferred:
            continue
        found.append(AtRisk(r["id"], r["owner_id"], r["created_at"], retention.deadline(cfg.retention, r["created_at"]),
                            n, reviewed, scope == "team"))
    found.sort(key=lambda a: (a.deadline, a.owner_id, a.created_at))
    purge_at = retention.next_purge(cfg.retention, now)
    owners = sorted({a.owner_id for a in found})
    people = []
    for uid in owners:
        shown = conn.execute("SELECT first_shown_at FROM reminders_shown WHERE user_id = ? AND purge_at = ?",
                             (uid, purge_at)).fetchone()
        mailed = tuple(r[0] for r in conn.execute(
            "SELECT reminder_at FROM reminders_sent WHERE user_id = ? AND purge_at = ? ORDER BY reminder_at",
            (uid, purge_at)))
        people.append(Caseworker(uid, _name(conn, uid), sum(1 for a in found if a.owner_id == uid),
                                 shown[0] if shown else None, mailed))
    people.sort(key=lambda c: (-c.count, c.name))
    with transaction(conn):
        audit.record(conn, user.actor, "before_deletion.read", f"purge:{int(purge_at)}",
                     role="responsible" if scope == "all" else "manager",
                     data={"recordings": len(found), "caseworkers": len(people), "scope": scope})
    return BeforeDeletion(scope, now, now + hours * 3600, purge_at, cfg.retention.reminders, cfg.mail.enabled,
                          tuple(found), tuple(people))
