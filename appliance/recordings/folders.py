"""Folders: a private default folder per content user, more on demand, shared by name with one user at a
time as `editor` or `viewer` (typically the nearest manager as editor). No "everyone" option.

Access decisions live in `appliance.users.access` (require_folder / require_recording); this module keeps the
folder rows and shares, and audits every change with ids only (never folder names).
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance import clock
from appliance.errors import ApplianceError
from appliance.ids import parse_id
from appliance.platform import audit
from appliance.platform.db import Connection, transaction
from appliance.users import access
from appliance.users.accounts import CONTENT_ROLES, User

DEFAULT_NAME = "Mina inspelningar"
SHARE_ROLES = ("editor", "viewer")
MAX_NAME = 100


@dataclass(frozen=True)
class Share:
    user_id: int
    display_name: str
    role: str


@dataclass(frozen=True)
class Folder:
    id: int
    owner_id: int
    owner_name: str
    name: str
    is_default: bool
    permission: str  # the viewing user's: owner, editor or viewer
    shares: tuple[Share, ...] = ()

    @property
    def is_owner(self) -> bool:
        return self.permission == access.OWNER

    @property
    def can_edit(self) -> bool:
        return access.allows(self.permission, access.EDITOR)


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())[:MAX_NAME]
    if not name:
        raise ApplianceError("Ge mappen ett namn.")
    return name


def default_id(conn: Connection, user: User) -> int | None:
    row = conn.execute("SELECT id FROM folders WHERE owner_id = ? AND is_default = 1", (user.id,)).fetchone()
    return row["id"] if row else None


def ensure_default(conn: Connection, user: User) -> int | None:
    """The user's default folder id, created on first need (idempotent, also across workers).

    None for users without a content role: they have no folders. Recordings of the user that lie in no
    folder (rows written outside the upload path) are moved into it.
    """
    if not user.can_read_content:
        return None
    fid = default_id(conn, user)
    if fid is not None:
        return fid
    with transaction(conn):
        cur = conn.execute("INSERT OR IGNORE INTO folders (owner_id, name, is_default, created_at) "
                           "VALUES (?, ?, 1, ?)", (user.id, DEFAULT_NAME, clock.now()))
        fid = default_id(conn, user)
        conn.execute("UPDATE recordings SET folder_id = ? WHERE owner_id = ? AND folder_id IS NULL", (fid, user.id))
        if cur.rowcount:
            audit.record(conn, user.actor, "folder.create", f"folder:{fid}", detail="default",
                         role=access.content_role(user))
    return fid


def _shares(conn: Connection, folder_id: int) -> tuple[Share, ...]:
    rows = conn.execute("SELECT s.user_id, u.display_name, s.role FROM folder_shares s JOIN users u "
                        "ON u.id = s.user_id WHERE s.folder_id = ? ORDER BY u.display_name, u.id", (folder_id,))
    return tuple(Share(r["user_id"], r["display_name"], r["role"]) for r in rows)


def _folder(conn: Connection, row, permission: str) -> Folder:
    owner = conn.execute("SELECT display_name FROM users WHERE id = ?", (row["owner_id"],)).fetchone()
    return Folder(row["id"], row["owner_id"], owner["display_name"] if owner else "", row["name"],
                  bool(row["is_default"]), permission, _shares(conn, row["id"]))


def list_for_user(conn: Connection, user: User) -> list[Folder]:
    """The user's own folders (default first), then the folders shared with them, with their share lists."""
    if not user.can_read_content or user.disabled:
        return []
    ensure_default(conn, user)
    own = conn.execute("SELECT * FROM folders WHERE owner_id = ? ORDER BY is_default DESC, name COLLATE NOCASE, id",
                       (user.id,)).fetchall()
    shared = conn.execute("SELECT f.*, s.role AS share_role FROM folders f JOIN folder_shares s ON s.folder_id = f.id "
                          "WHERE s.user_id = ? ORDER BY f.name COLLATE NOCASE, f.id", (user.id,)).fetchall()
    return ([_folder(conn, r, access.OWNER) for r in own]
            + [_folder(conn, r, r["share_role"]) for r in shared])


def writable(conn: Connection, user: User) -> list[Folder]:
    """Folders the user may put recordings in (owner or editor): the upload form's and move form's choices."""
    return [f for f in list_for_user(conn, user) if f.can_edit]


def get_folder(conn: Connection, user: User, folder_id: int | str) -> Folder:
    row = access.require_folder(conn, user, folder_id, "folder.read")
    return _folder(conn, row, access.folder_permission(conn, user, row["id"], row["owner_id"]) or access.VIEWER)


def create_folder(conn: Connection, user: User, name: str) -> int:
    if not user.can_read_content:
        raise ApplianceError("Ditt konto har ingen behörighet att skapa mappar.")
    name = _clean_name(name)
    ensure_default(conn, user)
    with transaction(conn):
        fid = int(conn.execute("INSERT INTO folders (owner_id, name, is_default, created_at) VALUES (?, ?, 0, ?)",
                               (user.id, name, clock.now())).lastrowid)
        audit.record(conn, user.actor, "folder.create", f"folder:{fid}", role=access.content_role(user))
    return fid


def rename_folder(conn: Connection, user: User, folder_id: int | str, name: str) -> None:
    row = access.require_folder(conn, user, folder_id, "folder.rename")
    name = _clean_name(name)
    with transaction(conn):
        conn.execute("UPDATE folders SET name = ? WHERE id = ?", (name, row["id"]))
        audit.record(conn, user.actor, "folder.renamed", f"folder:{row['id']}", role=access.content_role(user))


def share_candidates(conn: Connection, user: User) -> list[tuple[int, str]]:
    """Users the owner may share with: active users holding a content role, not the owner themselves."""
    marks = ",".join("?" for _ in CONTENT_ROLES)
    rows = conn.execute(
        f"SELECT DISTINCT u.id, u.display_name FROM users u JOIN user_roles r ON r.user_id = u.id "  # noqa: S608
        f"WHERE r.role IN ({marks}) AND u.disabled = 0 AND u.id != ? ORDER BY u.display_name, u.id",
        (*sorted(CONTENT_ROLES), user.id))
    return [(r["id"], r["display_name"]) for r in rows]


def share(conn: Connection, user: User, folder_id: int | str, target_user_id: int | str, role: str) -> None:
    """Share (or change the role of a share of) the owner's folder with one content user."""
    row = access.require_folder(conn, user, folder_id, "folder.share")
    if role not in SHARE_ROLES:
        raise ApplianceError("Välj behörighet: redigera eller läsa.")
    target = parse_id(target_user_id)
    if target is None or target not in {uid for uid, _ in share_candidates(conn, user)}:
        raise ApplianceError("Välj en användare med handläggar- eller chefsbehörighet.")
    with transaction(conn):
        conn.execute("INSERT INTO folder_shares (folder_id, user_id, role, created_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT(folder_id, user_id) DO UPDATE SET role = excluded.role",
                     (row["id"], target, role, clock.now()))
        audit.record(conn, user.actor, "folder.shared", f"folder:{row['id']}", detail=role,
                     role=access.content_role(user), data={"user": f"user:{target}"})


def unshare(conn: Connection, user: User, folder_id: int | str, target_user_id: int | str) -> bool:
    """Take a share back; the other user loses access from their next request. False if there was none."""
    row = access.require_folder(conn, user, folder_id, "folder.unshare")
    target = parse_id(target_user_id)
    if target is None:
        return False
    with transaction(conn):
        removed = conn.execute("DELETE FROM folder_shares WHERE folder_id = ? AND user_id = ?",
                               (row["id"], target)).rowcount
        if removed:
            audit.record(conn, user.actor, "folder.unshared", f"folder:{row['id']}",
                         role=access.content_role(user), data={"user": f"user:{target}"})
    return bool(removed)
