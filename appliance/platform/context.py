"""The opened appliance: config plus unlocked keys. Built once per process, passed explicitly."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from appliance.config import Config
from appliance.platform import audit, db, keys
from appliance.platform.blobstore import BlobStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Appliance:
    cfg: Config
    master_key: bytes
    blobs: BlobStore

    def current_db(self) -> keys.DbKey:
        """Read on every connect: a purge may have re-keyed the database into a new generation."""
        return keys.load_db_key(self.cfg, self.master_key)

    @property
    def db_file(self):
        return keys.db_path(self.cfg, self.current_db().generation)

    def connect(self, *, lock: bool = True) -> db.Connection:
        """A connection to the current database generation.

        `lock=False` is only for the purge, which already holds the lock exclusively.
        """
        fd = db.lock_shared(self.cfg.paths.db_lock) if lock else None
        try:
            current = self.current_db()
            conn = db.connect(keys.db_path(self.cfg, current.generation), current.key, lock_fd=fd)
            conn.cfg = self.cfg  # lets the access check apply the retention deadline
            conn.audit_sink = audit.AuditLog.for_state(self.cfg, self.master_key)  # where audit.record() writes
            return conn
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise


def init_state(cfg: Config) -> Appliance:
    """Create the state directories, the dev master key (if no credential), the database key and schema.

    Idempotent: re-running on an initialised state dir only applies pending migrations.
    """
    for d in (cfg.paths.state_dir, cfg.paths.blobs, cfg.paths.tls):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.paths.state_dir, 0o700)
    master = keys.load_master_key(cfg, create_dev_key=True)
    keys.load_db_key(cfg, master, create=True)
    app = Appliance(cfg, master, BlobStore(cfg.paths.blobs))
    conn = app.connect()
    try:
        db.migrate(conn)
    finally:
        conn.close()
    return app


def open_appliance(cfg: Config) -> Appliance:
    """Unlock an initialised state dir (raises KeyError_ with a fix-it hint when it is not)."""
    master = keys.load_master_key(cfg)
    app = Appliance(cfg, master, BlobStore(cfg.paths.blobs))
    app.current_db()  # fail now, with the fix-it hint, if the state dir is not initialised
    return app
