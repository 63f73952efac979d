"""Purge reminders: what of a user's material goes at the next purge, and what of it is not yet
marked as transferred to the case system. A user's material is what lies in folders they own or that
were shared with them as editor (so the nearest manager gets the caseworker's reminders too).
Shown in the UI from the first reminder before a purge; optionally e-mailed (counts and a link only,
never titles or names) through the office SMTP relay."""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from appliance import clock
from appliance.config import Config
from appliance.platform import audit, retention
from appliance.platform.db import Connection, transaction
from appliance.recordings import recordings
from appliance.users import access
from appliance.users.accounts import User, get_user

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reminder:
    purge_at: float
    recording_ids: tuple[str, ...]
    not_transferred: int

    @property
    def count(self) -> int:
        return len(self.recording_ids)


def window_start(cfg: Config, purge_at: float) -> float:
    """The latest configured reminder moment before `purge_at` that is at most a week earlier."""
    r = cfg.retention
    starts = [retention.next_occurrence(spec, purge_at - 7 * 86400 + 1, r.timezone) for spec in r.reminders]
    before = [s for s in starts if s <= purge_at]
    return min(before) if before else purge_at


def due(cfg: Config, conn: Connection, user: User, reading: clock.Reading | None = None) -> Reminder | None:
    """The user's recordings (own folders and folders shared as editor) that the next purge deletes, if we
    are inside the reminder window."""
    reading = reading or clock.read(cfg.retention.rtc_path)
    now = reading.latest
    purge_at = retention.next_purge(cfg.retention, now)
    if now < window_start(cfg, purge_at):
        return None
    rows = recordings.visible_rows(conn, user, min_permission=access.EDITOR, reading=reading)
    going = [r for r in rows if retention.is_past_deadline(cfg.retention, r["created_at"], r["created_at_rtc"],
                                                          clock.Reading(purge_at, None))
             and retention.visible(cfg, r, reading)]
    if not going:
        return None
    return Reminder(purge_at, tuple(r["id"] for r in going), sum(1 for r in going if r["transferred_at"] is None))


def note_shown(conn: Connection, user: User, reminder: Reminder) -> None:
    """The user was shown the reminder in the product (the first time per purge is kept: the before-deletion
    page's reminder history)."""
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO reminders_shown (user_id, purge_at, first_shown_at) VALUES (?, ?, ?)",
                     (user.id, reminder.purge_at, clock.now()))


def _message(cfg: Config, to: str, reminder: Reminder) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.mail.sender
    msg["To"] = to
    msg["Subject"] = "Samtalsstöd: material raderas snart"
    msg.set_content(
        f"Vid nästa gallring raderas {reminder.count} av dina inspelningar (i dina mappar och mappar"
        " som delats med dig för redigering)"
        f" ({reminder.not_transferred} är inte markerade som överförda till verksamhetssystemet).\n\n"
        f"Logga in och se vilka: {cfg.mail.base_url}/\n")
    return msg


def send_due(cfg: Config, conn: Connection, reading: clock.Reading | None = None) -> int:
    """E-mail each user with an address whose material goes at the next purge, once per reminder slot."""
    if not cfg.mail.enabled:
        return 0
    reading = reading or clock.read(cfg.retention.rtc_path)
    purge_at = retention.next_purge(cfg.retention, reading.latest)
    slot = window_start(cfg, purge_at)
    sent = 0
    users = conn.execute("SELECT id, email FROM users WHERE email IS NOT NULL AND disabled = 0").fetchall()
    for row in users:
        user = get_user(conn, row["id"])
        reminder = due(cfg, conn, user, reading)
        if reminder is None:
            continue
        if conn.execute("SELECT 1 FROM reminders_sent WHERE user_id = ? AND purge_at = ? AND reminder_at = ?",
                        (user.id, purge_at, slot)).fetchone():
            continue
        with smtplib.SMTP(cfg.mail.smtp_host, cfg.mail.smtp_port, timeout=30) as smtp:
            if cfg.mail.starttls:
                smtp.starttls()
            smtp.send_message(_message(cfg, row["email"], reminder))
        with transaction(conn):
            conn.execute("INSERT INTO reminders_sent (user_id, purge_at, reminder_at) VALUES (?, ?, ?)",
                         (user.id, purge_at, slot))
            audit.record(conn, "service:remind", "reminder.mail", user.actor, detail=f"count:{reminder.count}")
        sent += 1
    log.info("sent %d reminder e-mails", sent)
    return sent
