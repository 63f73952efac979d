"""First audit log: who did what to which id, with what result. Never personal data.

Writing is fail-closed: if the entry cannot be written the caller's action must not happen,
so callers audit inside the same transaction as the action, or before returning content.
Entries are mirrored to the logger `appliance.audit` (journald in production).
"""

from __future__ import annotations

import logging
import re

from appliance import clock
from appliance.db import Connection

log = logging.getLogger("appliance.audit")

# Actions are dotted identifiers; targets are ids. Reject anything that looks like free text.
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{1,63}$")
_TARGET = re.compile(r"^[A-Za-z0-9_:.+\-]{0,80}$")


def record(conn: Connection, actor: str, action: str, target: str = "", result: str = "ok",
           detail: str = "") -> None:
    if not _ACTION.match(action) or not _TARGET.match(target) or not _TARGET.match(actor):
        raise ValueError("audit entries take identifiers only (no free text, no personal data)")
    if not _TARGET.match(result) or not _TARGET.match(detail):
        raise ValueError("audit result/detail must be short identifiers")
    conn.execute(
        "INSERT INTO audit (ts, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (clock.now(), actor, action, target, result, detail),
    )
    log.info("audit actor=%s action=%s target=%s result=%s detail=%s", actor, action, target, result, detail)


def entries(conn: Connection, *, action: str | None = None, target: str | None = None) -> list[dict]:
    sql = "SELECT ts, actor, action, target, result, detail FROM audit WHERE 1=1"
    args: list[str] = []
    if action:
        sql += " AND action = ?"
        args.append(action)
    if target:
        sql += " AND target = ?"
        args.append(target)
    return [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]
