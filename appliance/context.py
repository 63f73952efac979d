"""The opened appliance: config plus unlocked keys. Built once per process, passed explicitly."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from appliance import db, keys
from appliance.blobstore import BlobStore
from appliance.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Appliance:
    cfg: Config
    db_key: bytes
    blobs: BlobStore

    def connect(self) -> db.Connection:
        return db.connect(self.cfg.paths.db, self.db_key)


def init_state(cfg: Config) -> Appliance:
    """Create the state directories, the dev master key (if no credential), the database key and schema.

    Idempotent: re-running on an initialised state dir only applies pending migrations.
    """
    for d in (cfg.paths.state_dir, cfg.paths.blobs, cfg.paths.tls):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.paths.state_dir, 0o700)
    master = keys.load_master_key(cfg, create_dev_key=True)
    app = Appliance(cfg, keys.load_db_key(cfg, master, create=True), BlobStore(cfg.paths.blobs))
    conn = app.connect()
    try:
        db.migrate(conn)
    finally:
        conn.close()
    return app


def open_appliance(cfg: Config) -> Appliance:
    """Unlock an initialised state dir (raises KeyError_ with a fix-it hint when it is not)."""
    master = keys.load_master_key(cfg)
    return Appliance(cfg, keys.load_db_key(cfg, master), BlobStore(cfg.paths.blobs))
