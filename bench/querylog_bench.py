"""The query log at a busy school's scale: bytes per query on disk and the dashboard's time.

    python bench/querylog_bench.py [--rows 10000000] [--qps 2000] [--clients 1000] [--dir DIR] [--json]
                                   [--store postgresql://… | --postgres]

Writes ``--rows`` queries straight into a real SQLite store (through ``SQLiteStore.add_queries``, in
5,000-row batches as the engine's writer does, so the hourly roll-ups are kept as in production),
timestamped at ``--qps`` up to now from ``--clients`` addresses. Names come from the popularity list
(``../shared/data/popular/umbrella-top-80k.txt``, else tests/data's 20k slice), Zipf-like; about 8% of the
queries are blocked by a category, service or schedule. Then it measures the store's bytes per query
(file size after a WAL checkpoint) and times, through the Flask test client on that store, the
dashboard (/), a device's weekly report, /api/v1/stats and the query log page. Nothing leaves the machine.

``--store URL`` runs it on a PostgreSQL store instead (an empty database; sizes from pg_total_relation_size);
``--postgres`` starts a throw-away PostgreSQL server on loopback for the run (tests/pg.py, Debian's postgresql).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resolver.service.config import Config  # noqa: E402
from resolver.policy.blocking import BlockingConfig  # noqa: E402
from resolver.policy.profiles import Device  # noqa: E402
from resolver.store.protocol import QueryRow  # noqa: E402
from resolver.store.open import is_postgres, open_store  # noqa: E402

REASONS = ["category:adult", "category:gambling", "category:ads", "service:TikTok", "schedule:school",
           "bypass", "safe-search:google", "local-record"]


def names_list() -> list[str]:
    for path in (REPO.parent / "shared" / "data" / "popular" / "umbrella-top-80k.txt",
                 REPO / "tests" / "data" / "popular" / "umbrella-top-20k.txt"):
        if path.exists():
            return path.read_text().split()
    raise SystemExit("no popularity list found (tests/data/popular is part of the checkout)")


def generate(store, rows: int, qps: float, clients: int, seed: int = 1) -> float:
    rng = random.Random(seed)
    names = names_list()
    weights = [1.0 / (i + 1) for i in range(len(names))]
    addresses = [f"10.{(i >> 8) & 255}.{i & 255}.{10 + i % 200}" for i in range(clients)]
    upstreams = ["udp://9.9.9.9:53", "udp://149.112.112.112:53", ""]
    end = time.time()
    start = end - rows / qps
    t0 = time.perf_counter()
    batch = 5000
    done = 0
    while done < rows:
        n = min(batch, rows - done)
        qnames = rng.choices(names, weights, k=n)
        out = []
        for i in range(n):
            ts = start + (done + i) / qps
            r = rng.random()
            reason = REASONS[int(r * 100) % len(REASONS)] if r < 0.09 else None
            cached = rng.random() < 0.7
            out.append(QueryRow(ts, addresses[int(rng.paretovariate(1.2)) % clients], qnames[i],
                                1 if rng.random() < 0.7 else 28, 0,
                                "" if reason and reason != "local-record" else f"A 93.184.{i % 256}.{done % 256}",
                                "" if cached or reason else upstreams[i % 2], 0.0 if cached else rng.uniform(2, 80),
                                cached, reason))
        store.add_queries(out)
        done += n
        if done % 500_000 == 0:
            print(f"  {done:,} rows, {done / (time.perf_counter() - t0):,.0f} rows/s", file=sys.stderr)
    return time.perf_counter() - t0


def store_bytes(data_dir: Path) -> int:
    db = sqlite3.connect(data_dir / "hearth.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return sum(p.stat().st_size for p in data_dir.glob("hearth.db*"))


def table_bytes(data_dir: Path) -> dict:
    db = sqlite3.connect(data_dir / "hearth.db")
    try:
        rows = db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.OperationalError:       # SQLite built without dbstat
        rows = []
    db.close()
    return {name: size for name, size in rows}


def pg_bytes(store) -> tuple[int, dict]:
    """(database size, {table: bytes with its indexes and partitions}) of a PostgreSQL store."""
    with store._read() as db:
        size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = db.execute("SELECT coalesce(p.relname, c.relname), SUM(pg_total_relation_size(c.oid))"
                          " FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
                          " LEFT JOIN pg_class p ON p.oid = i.inhparent"
                          " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
                          " GROUP BY 1 ORDER BY 2 DESC").fetchall()
    return size, {name: int(n) for name, n in rows}


def time_pages(data_dir: Path, device_address: str, repeat: int, store_url: str = "") -> dict:
    from webui import create_app
    from tests.webui.conftest import Browser, run_wizard

    app = create_app(Config(data_dir=str(data_dir), store=store_url, blocking=BlockingConfig(starter_lists=False)))
    app.config["TESTING"] = True
    browser = Browser(app.test_client())
    assert run_wizard(browser).status_code == 302
    store = app.extensions["hearth_store"]
    store.add_device(Device(name="Lab-PC", kind="ip", value=device_address, profile="default"))
    out = {}
    for label, url in (("dashboard", "/"), ("device report", "/devices/Lab-PC/report"),
                       ("api stats", "/api/v1/stats"), ("query log page", "/querylog")):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            resp = browser.client.get(url)
            times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, (url, resp.status_code)
        out[label] = {"median_s": statistics.median(times), "max_s": max(times)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--qps", type=float, default=2000)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", help="data dir to fill (default: a temporary one, removed afterwards)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--store", default="", help="a PostgreSQL URL (an empty database) instead of SQLite")
    ap.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL server for the run")
    args = ap.parse_args()
    tmp = Path(args.dir or tempfile.mkdtemp(prefix="hearth-qlbench-"))
    data_dir = tmp / "data"
    server = None
    if args.postgres:
        from tests.pg import PostgresServer

        server = PostgresServer().start()
        args.store = server.new_database("bench")
    pg = is_postgres(args.store)
    try:
        store = open_store(Config(data_dir=str(data_dir), store=args.store))
        print(f"writing {args.rows:,} queries ({args.qps:g} qps, {args.clients} clients) into {data_dir}",
              file=sys.stderr)
        seconds = generate(store, args.rows, args.qps, args.clients)
        rows = store.count_queries()
        if pg:
            size, tables = pg_bytes(store)
        store.close()
        if not pg:
            size, tables = store_bytes(data_dir), table_bytes(data_dir)
        raw = sum(v for k, v in tables.items() if k in ("query_log", "query_log_client", "ql_strings"))
        result = {"rows": rows, "write_s": round(seconds, 1), "rows_per_s": round(rows / seconds),
                  "store_bytes": size, "bytes_per_query": round(size / rows, 1),
                  "raw_log_bytes_per_query": round(raw / rows, 1) if raw else None,
                  "tables_mb": {k: round(v / 1e6, 1) for k, v in tables.items() if v > 1e5},
                  "store": "postgresql" if pg else "sqlite",
                  "pages": time_pages(data_dir, "10.0.1.11", args.repeat, args.store)}
        if args.json:
            print(json.dumps(result, indent=2))
            return
        print(f"\n{rows:,} queries written in {seconds:.0f} s ({result['rows_per_s']:,}/s, with the roll-ups)")
        print(f"store: {size / 1e6:,.1f} MB, {result['bytes_per_query']} bytes per query"
              + (f" (raw log and its index: {result['raw_log_bytes_per_query']})" if raw else ""))
        for k, v in result["tables_mb"].items():
            print(f"  {k}: {v} MB")
        for label, t in result["pages"].items():
            print(f"{label}: median {t['median_s'] * 1000:.0f} ms, max {t['max_s'] * 1000:.0f} ms")
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
        if server is not None:
            server.destroy()


if __name__ == "__main__":
    os.environ.setdefault("HEARTH_LOG_LEVEL", "warning")
    main()
