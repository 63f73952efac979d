"""Search latency at 1 000 and 10 000 transcripts of synthetic Swedish text (20 lines each); hits come newest first.

Times `appliance.transcripts.search.search` (query parsing, folder rights and the retention cut-off in SQL, FTS5 match
newest first, snippets, the audit record), for a user who sees three quarters of the transcripts and one who
sees a quarter, against the raw library in the same run: a bare `MATCH ... ORDER BY rank LIMIT 50` of the
same FTS5 expression on the same table (what search did before). Goal: p95 <= 50 ms
at 10 000. Run: `.venv/bin/python bench/search.py [--sizes 1000 10000] [--queries 200]`.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance import search  # noqa: E402
from appliance.config import load_config  # noqa: E402
from appliance.platform import db
from appliance.platform.context import init_state  # noqa: E402
from appliance.recordings import folders
from appliance.users import accounts

LINES_PER_TRANSCRIPT = 20
SUBJECTS = ["Mamma", "Pappa", "Pojken", "Flickan", "Barnet", "Skolan", "Handläggaren", "Socialsekreteraren",
            "Förskolan", "Familjen", "Mormor", "Kuratorn", "Läraren", "Vårdnadshavaren"]
VERBS = ["berättar", "säger", "menar", "beskriver", "uppger", "tycker", "oroar sig för", "vill prata om",
         "har svårt med", "får stöd i", "frågar om", "kontaktar"]
OBJECTS = ["utredningen", "en utredning", "tidigare utredningar", "orosanmälan", "flera orosanmälningar",
           "skolgången", "ekonomin", "boendet", "sömnen", "fritidsaktiviteter", "läxorna", "umgänget",
           "vårdnaden", "ekonomiskt bistånd", "en insats enligt LVU", "BBIC-triangeln", "familjebehandling",
           "kontaktpersonen", "hälsan", "kamraterna", "missbruket", "våldet i hemmet", "skulderna"]
TAILS = ["sedan i höstas", "varje vecka", "när pappa är hemma", "på helgerna", "efter skolan", "i dag",
         "enligt journalen", "som vi kom överens om", "inför nästa möte", "", "", ""]
QUERIES = ["utredningen", "orosanmälan", "orosanmälningar", "skolan", '"oroar sig för"', "utred*",
           "mamma sömnen", "ekonomiskt bistånd", "LVU", "familjebehandling", '"våldet i hemmet"', "kurator*",
           "umgänget helgerna", "vårdnadshavare"]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}".strip() + "."


def build(state: Path, n: int, rng: random.Random):
    app = init_state(load_config(environ={"APPLIANCE_PATHS__STATE_DIR": str(state)}))
    with closing(app.connect()) as conn:
        user, _ = accounts.create_user(conn, "bench", ["caseworker"])
        other, _ = accounts.create_user(conn, "other", ["caseworker"])
        mine, theirs = folders.ensure_default(conn, user), folders.ensure_default(conn, other)
        now = time.time()
        with db.transaction(conn):
            for i in range(n):
                rid = secrets.token_hex(12)
                owner, folder = (user.id, mine) if i % 4 else (other.id, theirs)  # a quarter not visible
                conn.execute("INSERT INTO recordings (id, owner_id, folder_id, title, mime, size, dek, status, "
                             "created_at, created_at_rtc) VALUES (?, ?, ?, ?, 'audio/wav', 1, ?, 'ready', ?, ?)",
                             (rid, owner, folder, f"Samtal {i} om {rng.choice(OBJECTS)}", secrets.token_bytes(32),
                              now - 60, now - 60))
                conn.executemany('INSERT INTO segments (recording_id, idx, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                                 [(rid, s, s * 5.0, s * 5.0 + 5, " ".join(sentence(rng) for _ in range(2)))
                                  for s in range(LINES_PER_TRANSCRIPT)])
        conn.execute("INSERT INTO search_fts(search_fts) VALUES ('optimize')")
    return app, user, other


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run(n: int, queries: int) -> None:
    rng = random.Random(n)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        app, user, other = build(Path(tmp) / "state", n, rng)
        built = time.perf_counter() - t0
        ours, raw, hits, few = [], [], [], []
        with closing(app.connect()) as conn:
            for i in range(queries + 10):
                q = QUERIES[i % len(QUERIES)]
                expr = search.parse_query(q).expression
                t = time.perf_counter()
                conn.execute("SELECT rowid, recording_id, idx FROM search_fts WHERE search_fts MATCH ? "
                             "ORDER BY rank LIMIT ?", (expr, search.DEFAULT_LIMIT)).fetchall()
                r = time.perf_counter() - t
                t = time.perf_counter()
                res = search.search(conn, user, q)
                o = time.perf_counter() - t
                t = time.perf_counter()
                search.search(conn, other, q)  # sees a quarter: more index entries walked per hit
                f = time.perf_counter() - t
                if i >= 10:  # warm-up
                    few.append(f * 1000)
                    raw.append(r * 1000)
                    ours.append(o * 1000)
                    hits.append(len(res.hits))
        size = sum(p.stat().st_size for p in (Path(tmp) / "state").glob("appliance-*.db*"))
    p50, p95, r50, r95 = pct(ours, 50), pct(ours, 95), pct(raw, 50), pct(raw, 95)
    print(f"{n:>6} transcripts ({n * LINES_PER_TRANSCRIPT} lines, db {size / 2**20:.0f} MiB, built in {built:.1f} s): "
          f"search p50 {p50:.1f} ms p95 {p95:.1f} ms | raw FTS5 MATCH p50 {r50:.1f} ms p95 {r95:.1f} ms | "
          f"ratio p50 {p50 / r50:.1f}x p95 {p95 / r95:.1f}x | mean hits {statistics.mean(hits):.0f} | "
          f"user seeing 1/4: p50 {pct(few, 50):.1f} ms p95 {pct(few, 95):.1f} ms | "
          f"goal p95 <= 50 ms: {'met' if max(p95, pct(few, 95)) <= 50 else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    for n in args.sizes:
        run(n, args.queries)


if __name__ == "__main__":
    main()
