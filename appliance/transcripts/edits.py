"""Editing transcript lines, with history: who, when, before and after; any earlier version can be restored
(a revert is itself a new edit).

Edits are keyed by (recording, segment idx) in `segment_edits` and the latest one is applied on read
(`recordings.transcript_segments`), so they survive the asr worker replacing segment rows. The search index
follows edits through triggers (migration 0005). The audit log gets ids only, never the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from appliance import clock
from appliance.errors import ApplianceError, NotFound
from appliance.ids import parse_id
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.recordings import recordings
from appliance.users import access
from appliance.users.accounts import User

MAX_TEXT = 4000
MSG_SEGMENT = "Raden finns inte i utskriften."
MSG_CONFLICT = ("Raden har ändrats av någon annan sedan du öppnade sidan. Ladda om sidan, se den nya "
                "texten och gör om ändringen.")
_SPACE = re.compile(r"\s+")


class EditConflict(ApplianceError):
    """Someone else changed the line since the user opened it; nothing was saved."""


@dataclass(frozen=True)
class Version:
    """One version of a line: the machine text (edit_id 0) or an edit."""
    edit_id: int
    text: str
    user_name: str | None
    created_at: float | None
    reverted_to: int | None = None  # a revert: the version it restored


def clean_text(text: str | None) -> str:
    """One line of text: control and format characters out, whitespace collapsed, NFC, bounded."""
    text = unicodedata.normalize("NFC", text or "")
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp") else ch for ch in text)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > MAX_TEXT:
        raise ApplianceError(f"Texten är för lång (högst {MAX_TEXT} tecken per rad).")
    return text


def _segment(conn: Connection, rec_id: str, idx: int) -> recordings.TranscriptSegment:
    seg = recordings.transcript_segment(conn, rec_id, idx)
    if seg is None:
        raise NotFound(MSG_SEGMENT)
    return seg


def _write(conn: Connection, user: User, rec_id: str, seg: recordings.TranscriptSegment, text: str, *,
           reverted_to: int | None = None) -> int | None:
    with transaction(conn):
        latest = conn.execute("SELECT max(id) FROM segment_edits WHERE recording_id = ? AND idx = ?",
                              (rec_id, seg.idx)).fetchone()[0] or 0
        if latest != seg.edit_id:
            raise EditConflict(MSG_CONFLICT)
        if text == seg.text:
            return None  # nothing changed: no version
        cur = conn.execute(
            "INSERT INTO segment_edits (recording_id, idx, before, after, user_id, created_at, reverted_to) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (rec_id, seg.idx, seg.text, text, user.id, clock.now(), reverted_to))
        edit_id = int(cur.lastrowid)
        data = {"segment": seg.idx, "edit": edit_id}
        if reverted_to is not None:
            data["reverted_to"] = reverted_to
        audit.record(conn, user.actor, "segment.revert" if reverted_to is not None else "segment.edit",
                     f"recording:{rec_id}", role=access.content_role(user), data=data)
    return edit_id


def edit_segment(conn: Connection, user: User, rec_id: str, idx: int, text: str | None, *,
                 base: int | None = None) -> int | None:
    """Replace a line's text (editor rights; NotFound otherwise). `base` is the edit id the user saw
    (0: the machine text): if someone else edited the line since, nothing changes (ApplianceError).
    Returns the new edit's id, or None when the text did not change."""
    access.require_recording(conn, user, rec_id, "recording.edit")
    seg = _segment(conn, rec_id, idx)
    text = clean_text(text)
    if base is not None and base != seg.edit_id:
        raise EditConflict(MSG_CONFLICT)
    return _write(conn, user, rec_id, seg, text)


def history(conn: Connection, user: User, rec_id: str, idx: int) -> tuple[recordings.TranscriptSegment,
                                                                           list[Version]]:
    """The line as it is now and every version of it, oldest first (the machine text first)."""
    access.require_recording(conn, user, rec_id, "recording.edit_history")
    seg = _segment(conn, rec_id, idx)
    rows = conn.execute(
        "SELECT e.id, e.after, e.created_at, e.reverted_to, coalesce(nullif(u.display_name, ''), u.username) "
        "AS name FROM segment_edits e LEFT JOIN users u ON u.id = e.user_id "
        "WHERE e.recording_id = ? AND e.idx = ? ORDER BY e.id", (rec_id, idx)).fetchall()
    versions = [Version(0, seg.machine_text, None, None)]
    versions += [Version(r["id"], r["after"], r["name"], r["created_at"], r["reverted_to"]) for r in rows]
    return seg, versions


def revert(conn: Connection, user: User, rec_id: str, idx: int, to: int | str) -> int | None:
    """Restore an earlier version (`to`: an edit id of this line, 0 for the machine text) as a new edit."""
    access.require_recording(conn, user, rec_id, "recording.revert")
    seg = _segment(conn, rec_id, idx)
    to_id = parse_id(to)
    if to_id is None:
        raise ApplianceError("Välj en version att återställa.")
    if to_id == 0:
        text = seg.machine_text
    else:
        row = conn.execute("SELECT after FROM segment_edits WHERE id = ? AND recording_id = ? AND idx = ?",
                           (to_id, rec_id, idx)).fetchone()
        if row is None:
            raise ApplianceError("Versionen finns inte för den här raden.")
        text = row["after"]
    return _write(conn, user, rec_id, seg, text, reverted_to=to_id)
