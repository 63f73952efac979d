"""The one place that decides access to content: `require_recording` and `require_folder`.

Access follows folders. A recording lies in a folder; the folder's owner and the users the owner shared
it with (as `editor` or `viewer`) may act on it, as far as the action's permission allows:

| permission | who                          | actions                                                        |
| ---------- | ---------------------------- | -------------------------------------------------------------- |
| viewer     | viewer, editor, owner        | recording.read/audio/list/status/edit_history, folder.read     |
| editor     | editor, owner                | recording.rename/mark_transferred/delete_*, folder.upload/move_in |
|            |                              | recording.edit/revert (transcript lines)                       |
| owner      | the folder's owner           | folder.rename/share/unshare                                    |
|            | the recording's owner, or the owner of the folder it lies in | recording.move           |

The recording's creator (`recordings.owner_id`) is its owner wherever it lies: a move never takes it away
from her. Moving a recording out of a folder needs owner rights (its creator, or the owner of the folder it
lies in), so an editor of a shared folder cannot carry a recording off into a folder of their own and share
that onward.

Correction suggestions: recording.suggestions needs viewer, recording.suggestion_accept/_dismiss editor.
Summaries: recording.summaries and recording.summarize need viewer, recording.summary_review/_edit editor.
Speakers: recording.speaker_rename/_assign need editor (reading them is recording.read).
Assistant: recording.chat (ask, rewrite, suggested questions), recording.topics and recording.case_draft (a
source of a case draft) need viewer: they read the content and store only derived material; recording.chat_clear
needs editor.
Live recordings: recording.live (the live transcript) needs viewer, recording.record (audio, pause, resume,
stop) editor.
Desk microphones: recording.desk_status needs viewer, recording.desk_pause/_resume/_stop editor.

Only content roles (caseworker, manager) count; admin and responsible-person roles never grant content
access and add nothing to a user who also holds a content role. Material past its retention deadline is
hidden even before the purge has run. A denied or unknown id raises NotFound (404 in the web, never 403:
no existence leak), and every allow and deny is audited with the role the user acted in.
"""

from __future__ import annotations

from appliance.config import Config
from appliance.errors import NotFound
from appliance.ids import parse_id
from appliance.platform import audit, retention
from appliance.platform.db import Connection, transaction
from appliance.users.accounts import User

VIEWER, EDITOR, OWNER = "viewer", "editor", "owner"
_RANK = {VIEWER: 1, EDITOR: 2, OWNER: 3}

RECORDING_ACTIONS: dict[str, str] = {
    "recording.read": VIEWER,
    "recording.audio": VIEWER,
    "recording.list": VIEWER,
    "recording.status": VIEWER,
    "recording.edit_history": VIEWER,
    "recording.suggestions": VIEWER,
    "recording.pii": VIEWER,
    "recording.export": VIEWER,
    "recording.rename": EDITOR,
    "recording.move": OWNER,  # out of its folder: never an editor's (it could be shared onward from there)
    "recording.mark_transferred": EDITOR,
    "recording.delete_confirm": EDITOR,
    "recording.delete_request": EDITOR,
    "recording.edit": EDITOR,
    "recording.revert": EDITOR,
    "recording.suggestion_accept": EDITOR,
    "recording.suggestion_dismiss": EDITOR,
    "recording.summaries": VIEWER,       # read the recording's summaries (appliance/assistant/summaries.py)
    "recording.summarize": VIEWER,       # ask for (or retry) a summary: reads content, stores derived material
    "recording.summary_review": EDITOR,  # the review gate: utkast → granskad → överförd
    "recording.summary_edit": EDITOR,    # correct or remove a statement of a draft
    "recording.speaker_rename": EDITOR,   # name a speaker for the whole recording (appliance/speakers.py)
    "recording.speaker_assign": EDITOR,   # give one transcript line another speaker
    "recording.live": VIEWER,     # the live transcript while recording (appliance/live.py)
    "recording.record": EDITOR,   # send audio, pause, resume, stop a live recording
    "recording.desk_status": VIEWER,  # a desk microphone's capture state (appliance/desk.py)
    "recording.desk_pause": EDITOR,
    "recording.desk_resume": EDITOR,
    "recording.desk_stop": EDITOR,
    "recording.pii_decide": EDITOR,
    "recording.chat": VIEWER,         # ask / rewrite / suggested questions (appliance/assistant/chat.py)
    "recording.chat_clear": EDITOR,   # delete the recording's questions and answers
    "recording.topics": VIEWER,       # generate the topic table of contents (appliance/assistant/topics.py)
    "recording.case_draft": VIEWER,   # use the recording as a source of a case draft (case_drafts.py)
    "recording.interpreter": EDITOR,  # mark a new recording as held through an interpreter (which language)
}

FOLDER_ACTIONS: dict[str, str] = {
    "folder.read": VIEWER,
    "folder.upload": EDITOR,
    "folder.move_in": EDITOR,
    "folder.rename": OWNER,
    "folder.share": OWNER,
    "folder.unshare": OWNER,
}

MSG_RECORDING = "Inspelningen finns inte eller så saknar du behörighet."
MSG_FOLDER = "Mappen finns inte eller så saknar du behörighet."


def allows(permission: str | None, needed: str) -> bool:
    return permission is not None and _RANK[permission] >= _RANK[needed]


def content_role(user: User) -> str | None:
    """The role under which the user reads content, for the audit record."""
    return next((r for r in ("caseworker", "manager") if r in user.roles), None)


def folder_permission(conn: Connection, user: User, folder_id: int | None, owner_id: int | None) -> str | None:
    """`owner`, `editor`, `viewer` or None: the user's right in a folder (given its id and owner)."""
    if not user.can_read_content or user.disabled or folder_id is None:
        return None
    if owner_id == user.id:
        return OWNER
    row = conn.execute("SELECT role FROM folder_shares WHERE folder_id = ? AND user_id = ?",
                       (folder_id, user.id)).fetchone()
    return row["role"] if row else None


def retention_config(conn: Connection) -> Config:
    """The config that carries the retention rules. Content is only read through connections opened by
    Appliance.connect; anything else fails closed rather than skip the deadline check."""
    if conn.cfg is None:
        raise RuntimeError("content access needs a connection from Appliance.connect (retention rules unknown)")
    return conn.cfg


def recording_permission(conn: Connection, user: User, recording_row, cfg: Config) -> str | None:
    """The user's permission on a recording, None once past the retention deadline.

    Its creator is its owner wherever it lies (also outside any folder: a row written outside the upload
    path); everyone else has the right they hold in its folder.
    """
    if not user.can_read_content or user.disabled:
        return None
    folder_id = recording_row["folder_id"]
    if recording_row["owner_id"] == user.id:
        permission = OWNER
    elif folder_id is None:
        permission = None
    else:
        folder = conn.execute("SELECT owner_id FROM folders WHERE id = ?", (folder_id,)).fetchone()
        permission = folder_permission(conn, user, folder_id, folder["owner_id"]) if folder else None
    if permission is None or not retention.visible(cfg, recording_row):
        return None
    return permission


def _safe(value: object) -> str:
    text = str(value)
    return text if text.isalnum() and len(text) <= 64 else "invalid"


def _audit(conn: Connection, user: User, action: str, target: str, allowed: bool) -> None:
    with transaction(conn):
        audit.record(conn, user.actor, action, target, result="ok" if allowed else "denied",
                     role=content_role(user))


def require_recording(conn: Connection, user: User, recording_id: str, action: str):
    """Return the recording row if `user` may perform `action` on it; audit either way (404 on deny).

    Callers that need the user's permission (to show or hide edit controls) ask `recording_permission`.
    """
    needed = RECORDING_ACTIONS[action]  # an unknown action is a programming error (KeyError)
    row = conn.execute("SELECT * FROM recordings WHERE id = ?", (recording_id,)).fetchone()
    allowed = row is not None and allows(recording_permission(conn, user, row, retention_config(conn)), needed)
    _audit(conn, user, action, f"recording:{_safe(recording_id)}", allowed)
    if not allowed:
        raise NotFound(MSG_RECORDING)
    return row


def require_folder(conn: Connection, user: User, folder_id: int | str, action: str):
    """Return the folder row if `user` may perform `action` on it; audit either way (404 on deny)."""
    needed = FOLDER_ACTIONS[action]
    fid = parse_id(folder_id)
    row = conn.execute("SELECT * FROM folders WHERE id = ?", (fid,)).fetchone() if fid is not None else None
    allowed = row is not None and allows(folder_permission(conn, user, row["id"], row["owner_id"]), needed)
    _audit(conn, user, action, f"folder:{_safe(folder_id)}", allowed)
    if not allowed:
        raise NotFound(MSG_FOLDER)
    return row
