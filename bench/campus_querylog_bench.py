#!/usr/bin/env python3
"""The query log at district scale on PostgreSQL: 30 daily partitions, 10,000 devices, 3 nodes.

    python bench/campus_querylog_bench.py [--rows-per-day 2000000] [--days 30] [--clients 10000]
                                          [--live-rows 1000000] [--repeat 5] [--json FILE]

The issue's volume is 10 M rows a day kept 30 days (300 M rows, about 60 GB at the ~200 bytes a row the
PostgreSQL store takes): more than this 2-core machine's time allows. This bench measures the largest honest
approximation and says how it extrapolates:

1. a PostgreSQL server started as tests/pg.py does (initdb in a temporary folder, loopback port; note its
   settings: fsync, synchronous_commit and full_page_writes off, as for the tests), a Hearth store migrated in it;
2. **the older days** (``--days`` - 1 of them, ``--rows-per-day`` rows each) generated *inside the server*
   (INSERT ... SELECT from generate_series into each day's partition, as the store makes them), from
   ``--clients`` device addresses (uniform: each device asks about the same), three nodes (gw1-gw3), names
   Zipf-like from the popularity list, about 8 % blocked; then their hourly roll-ups (ql_hours, ql_reasons,
   ql_names with the store's pruning rule: an hour's 30 most asked names per client, 200 overall) by SQL.
   This is data generation, reported as such, not the engine's write path;
3. **today** through the real write path: ``--live-rows`` rows through ``PostgresStore.add_queries`` (COPY plus
   the roll-ups, 5,000-row batches as the engine's query-log writer sends them), three store objects in turn
   (one per node). Its rows/s is the insert throughput;
4. a device for each of the ``--clients`` addresses (by IP, through the store), and with everything in place
   (ANALYZE as autovacuum would): the web UI's pages through the Flask test client
   (the query log's first page, filtered by client, by device, by node, blocked only; a device's weekly report;
   the dashboard; /api/v1/stats), median and max of ``--repeat``;
5. retention: ``purge_queries`` for the oldest day (drops its partition) and ``purge_query_stats`` for it
   (row deletes in the roll-ups), timed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolver.policy.blocking import BlockingConfig  # noqa: E402
from resolver.policy.profiles import Device  # noqa: E402
from resolver.service.config import Config  # noqa: E402
from resolver.store.protocol import QueryRow, is_blocked  # noqa: E402
from resolver.store.sqlcommon import NAMES_KEPT_ALL, NAMES_KEPT_CLIENT  # noqa: E402

DAY_MS = 86_400_000
NODES = ("gw1", "gw2", "gw3")
REASONS = ("category:adult", "category:gambling", "category:ads", "service:TikTok", "schedule:school", "bypass")
UPSTREAMS = ("udp://192.0.2.53:53", "udp://198.51.100.53:53")


def log(msg: str) -> None:
    print(f"[campus_querylog {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def address(i: int) -> str:
    return f"10.{20 + i // 250}.{i % 250}.10"


def names_list(data: Path) -> list[str]:
    for path in (data / "popular" / "umbrella-top-80k.txt", REPO / "tests" / "data" / "popular" /
                 "umbrella-top-20k.txt"):
        if path.exists():
            return path.read_text().split()
    raise SystemExit("no popularity list found")


def prepare(store, clients: int, names: list[str]) -> dict:
    """The strings the generated rows point at (client addresses, nodes, reasons, upstreams) and a names table."""
    with store._transaction(lock=False) as db:
        for text in [address(i) for i in range(clients)] + list(NODES) + list(REASONS) + list(UPSTREAMS):
            db.execute("INSERT INTO ql_strings (text) VALUES (?) ON CONFLICT (text) DO NOTHING", (text,))
        codes = dict(db.execute("SELECT text, id FROM ql_strings").fetchall())
        db.execute("CREATE TABLE bench_names (i INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        with db.conn.cursor().copy("COPY bench_names (i, name) FROM STDIN") as copy:
            for i, name in enumerate(names):
                copy.write_row((i, name))
    return codes


def fill_day(store, day: int, rows: int, clients: int, codes: dict, n_names: int) -> dict:
    """One day's partition filled inside the server, then its roll-ups; seconds for each."""
    c0 = codes[address(0)]   # the client codes are consecutive (inserted in order into an empty table)
    nodes = [codes[n] for n in NODES]
    reasons = [codes[r] for r in REASONS]
    ups = [codes[u] for u in UPSTREAMS]
    store.ensure_days([day])
    t0 = time.perf_counter()
    with store._transaction(lock=False) as db:
        db.execute(f"""
            INSERT INTO query_log (ts, client, qname, qtype, rcode, answer, upstream, latency_us, cached, reason, node)
            SELECT {day * DAY_MS} + (s.g * {DAY_MS}::bigint) / {rows}, {c0} + s.c, n.name,
                   CASE WHEN s.r1 < 0.7 THEN 1 ELSE 28 END, 0,
                   CASE WHEN s.r2 < 0.08 THEN '' ELSE 'A 93.184.216.' || (s.g % 250) END,
                   CASE WHEN s.r3 < 0.7 OR s.r2 < 0.08 THEN NULL
                        ELSE (ARRAY[{ups[0]}, {ups[1]}])[1 + s.g % 2] END,
                   CASE WHEN s.r3 < 0.7 THEN 0 ELSE (2000 + s.r1 * 60000)::int END,
                   CASE WHEN s.r3 < 0.7 THEN 1 ELSE 0 END,
                   CASE WHEN s.r2 < 0.08 THEN (ARRAY{reasons})[1 + (s.g % {len(reasons)})] END,
                   (ARRAY{nodes})[1 + s.g % 3]
            FROM (SELECT g, floor(random() * {clients})::int AS c, floor({n_names} * power(random(), 4))::int AS ni,
                         random() AS r1, random() AS r2, random() AS r3
                  FROM generate_series(0, {rows - 1}) AS g) s
            JOIN bench_names n ON n.i = s.ni""")
    t1 = time.perf_counter()
    part = f"query_log_d{day}"
    blocked = f"CASE WHEN reason IN ({','.join(str(codes[r]) for r in REASONS if is_blocked(r))}) THEN 1 ELSE 0 END"
    with store._transaction(lock=False) as db:
        db.execute(f"""INSERT INTO ql_hours (hour, client, total, blocked, minutes)
                       SELECT (ts / 3600000)::int, client, count(*), sum({blocked}),
                              bit_or(1::bigint << ((ts / 60000) % 60)::int)
                       FROM {part} GROUP BY 1, 2""")
        db.execute(f"""INSERT INTO ql_reasons (hour, client, reason, n)
                       SELECT (ts / 3600000)::int, client, coalesce(reason, 0), count(*)
                       FROM {part} GROUP BY 1, 2, 3""")
        for who, keep in (("client", NAMES_KEPT_CLIENT), ("0", NAMES_KEPT_ALL)):
            db.execute(f"""INSERT INTO ql_names (client, hour, blocked, qname, n)
                           SELECT client, hour, blocked, qname, n FROM (
                             SELECT client, hour, blocked, qname, n, row_number() OVER (
                               PARTITION BY client, hour, blocked ORDER BY n DESC, qname) AS rank
                             FROM (SELECT {who} AS client, (ts / 3600000)::int AS hour, {blocked} AS blocked, qname,
                                          count(*) AS n FROM {part} GROUP BY 1, 2, 3, 4) AS counted) AS ranked
                           WHERE rank <= {keep}""")
    t2 = time.perf_counter()
    return {"day": day, "rows": rows, "insert_s": round(t1 - t0, 1), "rollups_s": round(t2 - t1, 1)}


def live_rows(stores: list, rows: int, clients: int, names: list[str], seed: int = 1) -> dict:
    """``rows`` of today through add_queries (5,000-row batches, the nodes' stores in turn); rows/s."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(names))]
    end = time.time()
    day_start = end // 86400 * 86400
    span = end - day_start - 1
    batch = 5000
    done, busy = 0, 0.0
    while done < rows:
        n = min(batch, rows - done)
        qnames = rng.choices(names, weights, k=n)
        out = []
        for i in range(n):
            ts = day_start + span * (done + i) / rows
            r = rng.random()
            reason = REASONS[i % len(REASONS)] if r < 0.08 else None
            cached = rng.random() < 0.7
            upstream = "" if cached or reason else UPSTREAMS[i % 2]
            out.append(QueryRow(ts, address(rng.randrange(clients)), qnames[i], 1 if rng.random() < 0.7 else 28, 0,
                                "" if reason else f"A 93.184.216.{i % 250}", upstream,
                                0.0 if cached else rng.uniform(2, 62), cached, reason))
        t0 = time.perf_counter()
        stores[(done // batch) % len(stores)].add_queries(out)
        busy += time.perf_counter() - t0
        done += n
        if done % 200_000 == 0:
            log(f"  live: {done:,} rows, {done / busy:,.0f} rows/s")
    return {"rows": rows, "write_s": round(busy, 1), "rows_per_s": round(rows / busy)}


def add_devices(store, clients: int) -> float:
    """A device for every client address (``pupil-NNNNN``, by IP), through the store; seconds."""
    t0 = time.perf_counter()
    for i in range(clients):
        store.add_device(Device(name=f"pupil-{i:05d}", kind="ip", value=address(i), profile="default"))
    return round(time.perf_counter() - t0, 1)


def time_pages(data_dir: Path, url: str, device: str, device_address: str, repeat: int) -> dict:
    from tests.webui.conftest import Browser, run_wizard
    from webui import create_app

    app = create_app(Config(data_dir=str(data_dir), store=url, node_name="gw1",
                            blocking=BlockingConfig(starter_lists=False)))
    app.config["TESTING"] = True
    browser = Browser(app.test_client())
    assert run_wizard(browser).status_code == 302
    out = {}
    for label, path in (("query log, first page", "/querylog"),
                        ("query log, one client", f"/querylog?client={device_address}"),
                        ("query log, one device", f"/querylog?device={device}"),
                        ("query log, one node", "/querylog?node=gw2"),
                        ("query log, blocked only", "/querylog?result=blocked"),
                        ("device weekly report", f"/devices/{device}/report"),
                        ("dashboard", "/"), ("api stats", "/api/v1/stats")):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            resp = browser.client.get(path)
            times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, (path, resp.status_code)
        if label.startswith("query log"):   # the page must show rows, not an empty result
            assert b"93.184.216." in resp.data or b"blocked" in resp.data.lower(), label
        out[label] = {"median_ms": round(1000 * statistics.median(times), 1), "max_ms": round(1000 * max(times), 1)}
        log(f"  {label}: {out[label]}")
    return out


def sizes(store) -> dict:
    with store._read() as db:
        total = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        rows = db.execute("SELECT coalesce(p.relname, c.relname), SUM(pg_total_relation_size(c.oid))"
                          " FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
                          " LEFT JOIN pg_class p ON p.oid = i.inhparent"
                          " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace"
                          " GROUP BY 1 ORDER BY 2 DESC").fetchall()
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("query_log", "ql_hours", "ql_reasons", "ql_names")}
    return {"database_bytes": total, "tables_mb": {k: round(int(v) / 1e6, 1) for k, v in rows if v > 1e6},
            "rows": counts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows-per-day", type=int, default=2_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--live-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "campus_querylog_bench.json")
    args = ap.parse_args()
    from resolver.store.postgres import PostgresStore
    from tests.pg import PostgresServer

    def _interrupt(signum, _frame):   # SIGTERM ends the run like Ctrl-C: the server is stopped and removed
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _interrupt)
    names = names_list(args.data)
    server = PostgresServer().start()
    report: dict = {"command": "python bench/campus_querylog_bench.py " + " ".join(sys.argv[1:]),
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    stores = []
    try:
        url = server.new_database("district")
        stores = [PostgresStore(url, node=n, max_connections=2) for n in NODES]
        stores[0].migrate()
        codes = prepare(stores[0], args.clients, names)
        today = int(time.time() // 86400)
        days = []
        t0 = time.perf_counter()
        for day in range(today - args.days + 1, today):
            days.append(fill_day(stores[0], day, args.rows_per_day, args.clients, codes, len(names)))
            log(f"day {day}: {days[-1]}")
        generated = sum(d["rows"] for d in days)
        report["generated"] = {"days": len(days), "rows": generated, "seconds": round(time.perf_counter() - t0, 1),
                               "rows_per_s": round(generated / (time.perf_counter() - t0)), "per_day": days}
        log(f"live rows through add_queries: {args.live_rows:,}")
        report["live"] = live_rows(stores, args.live_rows, args.clients, names)
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            t1 = time.perf_counter()
            conn.execute("ANALYZE")
            report["analyze_s"] = round(time.perf_counter() - t1, 1)
        report["size"] = sizes(stores[0])
        log(f"sizes: {report['size']}")
        report["devices_s"] = add_devices(stores[0], args.clients)
        log(f"{args.clients} devices added in {report['devices_s']} s")
        busy = min(4242, args.clients - 1)
        report["pages"] = time_pages(Path(server.tmp) / "hearth-data", url, f"pupil-{busy:05d}", address(busy),
                                     args.repeat)
        oldest = today - args.days + 1
        t1 = time.perf_counter()
        dropped = stores[0].purge_queries((oldest + 1) * 86400)
        report["retention"] = {"purge_queries_s": round(time.perf_counter() - t1, 2), "rows_dropped": dropped}
        t1 = time.perf_counter()
        report["retention"]["rollup_rows_deleted"] = stores[0].purge_query_stats((oldest + 1) * 86400)
        report["retention"]["purge_query_stats_s"] = round(time.perf_counter() - t1, 2)
        log(f"retention: {report['retention']}")
    finally:
        for s in stores:
            s.close()
        server.destroy()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "generated"}, indent=1))
    print(json.dumps({k: v for k, v in report["generated"].items() if k != "per_day"}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HEARTH_LOG_LEVEL", "warning")
    raise SystemExit(main())
