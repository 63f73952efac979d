"""SQLCipher database: connections and numbered migrations.

Connections run in autocommit mode; writers use `transaction()` (BEGIN IMMEDIATE)
so that the web workers, the asr worker and the CLI serialise cleanly in WAL mode.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import sqlcipher3

from appliance.errors import KeyError_

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class Connection(sqlcipher3.Connection):
    """A SQLCipher connection that may hold the state dir's shared "database in use" lock.

    The purge re-keys the database into a new file; it takes the lock exclusively, so no process
    keeps writing to the old file after the switch. The lock is released when the connection closes.
    """

    lock_fd: int | None = None
    cfg = None  # the Config of the appliance that opened it (set by Appliance.connect)

    def close(self) -> None:
        try:
            super().close()
        finally:
            fd, self.lock_fd = self.lock_fd, None
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the flock


def lock_shared(lock_path: Path) -> int:
    """Block until no re-key is in progress, then hold a shared lock (returned as an fd)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_exclusive(lock_path: Path, timeout_s: float) -> int:
    """Wait until every connection is closed (polling, so new readers cannot starve us forever)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError(f"database still in use after {timeout_s:.0f} s") from None
            time.sleep(0.05)


def connect(path: Path, key: bytes, *, lock_fd: int | None = None) -> Connection:
    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30,
                              factory=Connection)
    conn.lock_fd = lock_fd
    # Raw 256-bit key: no passphrase KDF needed, the key is random.
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        raise KeyError_(f"Cannot open database {path}: wrong key or not a SQLCipher database") from exc
    conn.row_factory = sqlcipher3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA secure_delete = ON")
    return conn


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("appliance.platform.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations in order; each one in its own transaction. Returns names applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in _migrations():
        if version in done:
            continue
        with transaction(conn):
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (version, name))
        log.info("applied migration %s", name)
        applied.append(name)
    return applied


def _split_sql(sql: str) -> list[str]:
    # Whole statements as SQLite sees them (a trigger's BEGIN ... END stays one); comment lines are dropped.
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    statements, current = [], ""
    for piece in code.split(";"):
        current += piece + ";"
        if sqlcipher3.complete_statement(current):
            if current.strip(" \n\t;"):
                statements.append(current.strip().removesuffix(";").strip())
            current = ""
    if current.strip(" \n\t;"):
        statements.append(current.strip().removesuffix(";").strip())
    return statements


def schema_version(conn: Connection) -> int:
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] or 0
