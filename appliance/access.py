"""The one authorization function for content. Every content read goes through `require_recording`.

A recording is visible to its owner if the owner holds a content role. Admin and responsible-person
roles never grant content access. Material past its retention deadline is hidden even before the
purge has run. A denied or unknown id raises NotFound (no existence leak), and
both outcomes are audited.
"""

from __future__ import annotations

from appliance import audit, retention
from appliance.accounts import User
from appliance.config import Config
from appliance.db import Connection, transaction
from appliance.errors import NotFound


def can_read(user: User, recording_row, cfg: Config | None = None) -> bool:
    """Owner with a content role, and the recording not past its retention deadline."""
    if not (user.can_read_content and not user.disabled and recording_row["owner_id"] == user.id):
        return False
    return cfg is None or retention.visible(cfg, recording_row)


def content_role(user: User) -> str | None:
    """The role under which the user reads content, for the audit record."""
    return next((r for r in ("caseworker", "manager") if r in user.roles), None)


def require_recording(conn: Connection, user: User, recording_id: str, action: str):
    """Return the recording row if `user` may perform `action` on it; audit either way."""
    row = conn.execute("SELECT * FROM recordings WHERE id = ?", (recording_id,)).fetchone()
    allowed = row is not None and can_read(user, row, conn.cfg)
    safe_target = recording_id if recording_id.isalnum() and len(recording_id) <= 64 else "invalid"
    with transaction(conn):
        audit.record(conn, user.actor, action, f"recording:{safe_target}", result="ok" if allowed else "denied",
                     role=content_role(user))
    if not allowed:
        raise NotFound("Inspelningen finns inte eller så saknar du behörighet.")
    return row
