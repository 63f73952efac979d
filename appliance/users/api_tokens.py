"""Admin-scope API tokens: for monitoring the box (`Authorization: Bearer` on /api/admin/* only).

A token is shown once when created; the database keeps its SHA-256. A token works only while it is not
revoked and its creator is still an enabled admin. It never grants content access: the web app honours
it on the admin API alone.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from appliance import clock
from appliance.errors import ApplianceError
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.users.accounts import User, get_user

PREFIX = "sst_"
MAX_NAME = 60


@dataclass(frozen=True)
class ApiToken:
    id: int
    name: str
    created_by: int
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def actor(self) -> str:
        return f"token:{self.id}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row(row) -> ApiToken:
    return ApiToken(row["id"], row["name"], row["created_by"], row["created_at"], row["last_used_at"],
                    row["revoked_at"])


def create(conn: Connection, creator: User, name: str) -> tuple[ApiToken, str]:
    if "admin" not in creator.roles:
        raise ApplianceError("Bara administratörer kan skapa API-nycklar.")
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise ApplianceError(f"Ge nyckeln ett namn (högst {MAX_NAME} tecken).")
    token = PREFIX + secrets.token_urlsafe(32)
    with transaction(conn):
        cur = conn.execute("INSERT INTO api_tokens (name, token_hash, created_by, created_at) VALUES (?, ?, ?, ?)",
                           (name, _hash(token), creator.id, clock.now()))
        tid = int(cur.lastrowid)
        audit.record(conn, creator.actor, "api_token.create", f"token:{tid}", role="admin")
    return get(conn, tid), token


def get(conn: Connection, token_id: int) -> ApiToken:
    row = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        from appliance.errors import NotFound

        raise NotFound("Ingen sådan API-nyckel.")
    return _row(row)


def list_tokens(conn: Connection) -> list[ApiToken]:
    return [_row(r) for r in conn.execute("SELECT * FROM api_tokens ORDER BY revoked_at IS NOT NULL, id DESC")]


def revoke(conn: Connection, token_id: int, *, actor: str) -> None:
    with transaction(conn):
        get(conn, token_id)
        conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                     (clock.now(), token_id))
        audit.record(conn, actor, "api_token.revoke", f"token:{token_id}", role="admin")


def authenticate(conn: Connection, token: str) -> ApiToken | None:
    """The live token, or None (unknown, revoked, or its creator no longer an enabled admin)."""
    if not token.startswith(PREFIX) or len(token) > 128:
        return None
    row = conn.execute("SELECT * FROM api_tokens WHERE token_hash = ?", (_hash(token),)).fetchone()
    if row is None or row["revoked_at"] is not None:
        return None
    creator = get_user(conn, row["created_by"])
    if creator.disabled or "admin" not in creator.roles:
        return None
    t = clock.now()
    if row["last_used_at"] is None or t - row["last_used_at"] > 15:
        conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (t, row["id"]))
    return _row(row)
