"""Purge time for 1 000 and 10 000 recordings (synthetic rows + small blobs), half of them expired.

Prints the whole purge (delete + blob removal + re-key + receipt) against the raw library doing only
its part of the work in the same run: SQLCipher's `sqlcipher_export` of the same database into a new
key. Run: `.venv/bin/python bench/purge.py [--sizes 1000 10000]`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import retention  # noqa: E402
from appliance.clock import Reading  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.platform import db, keys
from appliance.platform.context import init_state  # noqa: E402
from appliance.users import accounts

SEGMENTS_PER_RECORDING = 20
WORDS_PER_SEGMENT = 8


def build(state: Path, n: int, now: float):
    app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(state)}))
    with closing(app.connect()) as conn:
        user, _ = accounts.create_user(conn, "bench", ["caseworker"])
        with db.transaction(conn):
            for i in range(n):
                rid = secrets.token_hex(12)
                dek = secrets.token_bytes(32)
                app.blobs.put(rid, dek, os.urandom(2048))
                created = now - (5 * 86400 if i % 2 else 3600)  # every other one is expired
                conn.execute("INSERT INTO recordings (id, owner_id, title, mime, size, dek, status, created_at, "
                             "created_at_rtc) VALUES (?, ?, 'bench', 'audio/wav', 2048, ?, 'ready', ?, ?)",
                             (rid, user.id, dek, created, created))
                for s in range(SEGMENTS_PER_RECORDING):
                    cur = conn.execute('INSERT INTO segments (recording_id, idx, start, "end", text) '
                                       "VALUES (?, ?, ?, ?, ?)", (rid, s, s, s + 1, "ord " * WORDS_PER_SEGMENT))
                    conn.executemany('INSERT INTO words (segment_id, idx, start, "end", word, probability) '
                                     "VALUES (?, ?, 0, 0, 'ord', 0.9)", [(cur.lastrowid, w)
                                                                         for w in range(WORDS_PER_SEGMENT)])
    return app


def raw_export_seconds(app) -> float:
    """The raw library's share: sqlcipher_export of the same database into a fresh key."""
    current = app.current_db()
    target = app.cfg.paths.state_dir / "raw-export.db"
    with closing(db.connect(keys.db_path(app.cfg, current.generation), current.key)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        t = time.perf_counter()
        conn.execute(f"ATTACH DATABASE ? AS raw KEY \"x'{keys.new_key().hex()}'\"", (str(target),))
        conn.execute("SELECT sqlcipher_export('raw')")
        conn.execute("DETACH DATABASE raw")
        elapsed = time.perf_counter() - t
    target.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    now = time.time()
    print(f"{'recordings':>10} {'db MB':>7} {'purge s':>8} {'export s':>9} {'ratio':>6} {'ms/expired':>10}")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            app = build(Path(tmp) / "state", n, now)
            size = app.db_file.stat().st_size / 1e6
            export = raw_export_seconds(app)
            t = time.perf_counter()
            report = retention.purge(app, reading=Reading(now, now))
            purge = time.perf_counter() - t
            assert len(report.expired) == n // 2
            print(f"{n:>10} {size:>7.1f} {purge:>8.2f} {export:>9.2f} {purge / export:>6.1f} "
                  f"{purge / max(1, len(report.expired)) * 1000:>10.2f}")


if __name__ == "__main__":
    main()
