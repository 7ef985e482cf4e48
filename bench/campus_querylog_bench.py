#!/usr/bin/env python3
"""The query log at district scale on PostgreSQL: 30 daily partitions, 10,000 devices, 3 nodes.

    python bench/campus_querylog_bench.py [--rows-per-day 2000000] [--days 30] [--clients 10000]
                                          [--live-rows 1000000] [--repeat 5] [--json FILE] [--backend sqlite]

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

A fourth node (gw0) wrote a few rows on the oldest day only: the query log filtered by it is the case an index
on (node, id) is for. The pages also include the devices page (first, searched, last) and the dashboard and
/api/v1/stats right after a device change (the devices a page names are re-read once per policy version).

``--backend sqlite`` runs the same on the embedded store (one file; the older days generated in Python with the
store's roll-up rules and written in one transaction a day, no partitions: retention deletes rows).
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import signal
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolver.policy.blocking import BlockingConfig  # noqa: E402
from resolver.policy.profiles import Device  # noqa: E402
from resolver.service.config import Config  # noqa: E402
from resolver.store.protocol import QueryRow, is_blocked  # noqa: E402
from resolver.store.querylog_rooms import (_INSERT_ROWS, _UPSERT_HOURS, _UPSERT_NAMES,  # noqa: E402
                                           _UPSERT_REASONS)
from resolver.store.sqlcommon import NAMES_KEPT_ALL, NAMES_KEPT_CLIENT  # noqa: E402

DAY_MS = 86_400_000
NODES = ("gw1", "gw2", "gw3")
IDLE_NODE = "gw0"         # wrote on the oldest day only
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


def prepare(store, clients: int, names: list[str], postgres: bool = True) -> dict:
    """The strings the generated rows point at (client addresses, nodes, reasons, upstreams) and, on PostgreSQL,
    a names table."""
    with store._transaction(lock=False) as db:
        for text in [address(i) for i in range(clients)] + list(NODES) + [IDLE_NODE] + list(REASONS) + list(UPSTREAMS):
            db.execute("INSERT INTO ql_strings (text) VALUES (?) ON CONFLICT (text) DO NOTHING", (text,))
        codes = dict(db.execute("SELECT text, id FROM ql_strings").fetchall())
        if postgres:
            db.execute("CREATE TABLE bench_names (i INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            with db.conn.cursor().copy("COPY bench_names (i, name) FROM STDIN") as copy:
                for i, name in enumerate(names):
                    copy.write_row((i, name))
    return codes


def idle_node_rows(store, day: int, codes: dict, n: int = 200) -> None:
    """``n`` rows written by IDLE_NODE early on ``day`` (the oldest), none since (no roll-ups: too few to matter)."""
    rows = [(day * DAY_MS + 1000 * i, codes[address(i % 50)], f"idle{i}.example", 1, 0, f"A 93.184.216.{i % 250}",
             None, 0, 1, None, codes[IDLE_NODE]) for i in range(n)]
    with store._transaction(lock=False) as db:
        db.executemany(_INSERT_ROWS, rows)


def fill_day_sqlite(store, day: int, rows: int, clients: int, codes: dict, names: list[str], seed: int) -> dict:
    """One older day for the SQLite store: the rows fill_day draws in PostgreSQL, drawn in Python, and their
    roll-ups by the store's rules (names pruned to an hour's most asked), written in one transaction."""
    rng = random.Random(seed)
    rand = rng.random
    c0 = codes[address(0)]
    nodes = [codes[n] for n in NODES]
    reasons = [codes[r] for r in REASONS]
    blocked_codes = {codes[r] for r in REASONS if is_blocked(r)}
    ups = [codes[u] for u in UPSTREAMS]
    n_names = len(names)
    t0 = time.perf_counter()
    written = 0.0
    with store._transaction(lock=False) as db:
        for hour in range(24):
            h = day * 24 + hour
            raw, hours_, reasons_, names_ = [], {}, {}, {}
            for g in range(rows * hour // 24, rows * (hour + 1) // 24):
                ts = day * DAY_MS + g * DAY_MS // rows
                c = c0 + int(rand() * clients)
                qname = names[int(n_names * rand() ** 4)]
                r1, r2, r3 = rand(), rand(), rand()
                stopped = r2 < 0.08
                reason = reasons[g % len(reasons)] if stopped else None
                cached = r3 < 0.7
                raw.append((ts, c, qname, 1 if r1 < 0.7 else 28, 0, "" if stopped else f"A 93.184.216.{g % 250}",
                            None if cached or stopped else ups[g % 2], 0 if cached else int(2000 + r1 * 60000),
                            int(cached), reason, nodes[g % 3]))
                b = 1 if reason in blocked_codes else 0
                minute = 1 << (ts // 60000 % 60)
                for who in (c, 0):                     # each client, and client 0 = all clients
                    x = hours_.get((h, who))
                    if x is None:
                        x = hours_[(h, who)] = [0, 0, 0]
                    x[0] += 1
                    x[1] += b
                    x[2] |= minute
                    k = (h, who, reason or 0)
                    reasons_[k] = reasons_.get(k, 0) + 1
                    k2 = (who, h, b, qname)
                    names_[k2] = names_.get(k2, 0) + 1
            groups: dict = {}
            for (who, hh, b, q), n in names_.items():
                groups.setdefault((who, hh, b), []).append((-n, q))
            kept = []
            for (who, hh, b), items in groups.items():
                keep = NAMES_KEPT_ALL if who == 0 else NAMES_KEPT_CLIENT
                kept.extend((who, hh, b, q, -n) for n, q in (heapq.nsmallest(keep, items) if len(items) > keep
                                                             else items))
            t1 = time.perf_counter()
            db.executemany(_INSERT_ROWS, raw)
            db.executemany(_UPSERT_HOURS, sorted((*k, *v) for k, v in hours_.items()))
            db.executemany(_UPSERT_REASONS, sorted((*k, v) for k, v in reasons_.items()))
            db.executemany(_UPSERT_NAMES, sorted(kept))
            written += time.perf_counter() - t1
    total = time.perf_counter() - t0
    return {"day": day, "rows": rows, "insert_s": round(written, 1), "rollups_s": round(total - written, 1)}


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
        for who, by in (("client", ", client"), ("0", "")):       # each client, and client 0 = all clients
            db.execute(f"""INSERT INTO ql_hours (hour, client, total, blocked, minutes)
                           SELECT (ts / 3600000)::int, {who}, count(*), sum({blocked}),
                                  bit_or(1::bigint << ((ts / 60000) % 60)::int)
                           FROM {part} GROUP BY 1{by}""")
            db.execute(f"""INSERT INTO ql_reasons (hour, client, reason, n)
                           SELECT (ts / 3600000)::int, {who}, coalesce(reason, 0), count(*)
                           FROM {part} GROUP BY 1{by}, 3""")
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
                        ("query log, an idle node", f"/querylog?node={IDLE_NODE}"),
                        ("device weekly report", f"/devices/{device}/report"),
                        ("devices page", "/devices"), ("devices page, searched", "/devices?q=pupil-042"),
                        ("devices page, last", "/devices?page=100000"),
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
    # a device change moves the policy version: the first page after it reads the devices it names again
    store = app.extensions["hearth_store"]
    for label, path in (("dashboard after a device change", "/"), ("api stats after a device change",
                                                                     "/api/v1/stats")):
        times = []
        for k in range(repeat):
            store.set_pause(device, time.time() + 600 if k % 2 == 0 else None)
            t0 = time.perf_counter()
            resp = browser.client.get(path)
            times.append(time.perf_counter() - t0)
            assert resp.status_code == 200, (path, resp.status_code)
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


def sqlite_sizes(store) -> dict:
    with store._read() as db:
        page = db.execute("PRAGMA page_size").fetchone()[0] * db.execute("PRAGMA page_count").fetchone()[0]
        counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("query_log", "ql_hours", "ql_reasons", "ql_names")}
    return {"database_bytes": page, "rows": counts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--rows-per-day", type=int, default=2_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--live-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None,
                    help="default: bench/results/campus_querylog_bench[_sqlite].json")
    args = ap.parse_args()
    postgres = args.backend == "postgresql"
    if args.json is None:
        args.json = REPO / "bench" / "results" / f"campus_querylog_bench{'' if postgres else '_sqlite'}.json"

    def _interrupt(signum, _frame):   # SIGTERM ends the run like Ctrl-C: the server is stopped and removed
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, _interrupt)
    names = names_list(args.data)
    report: dict = {"command": "python bench/campus_querylog_bench.py " + " ".join(sys.argv[1:]),
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    stores: list = []
    server = tmp = None
    try:
        if postgres:
            from resolver.store.postgres import PostgresStore
            from tests.pg import PostgresServer

            server = PostgresServer().start()
            url = server.new_database("district")
            data_dir = Path(server.tmp) / "hearth-data"
            stores = [PostgresStore(url, node=n, max_connections=2) for n in NODES]
        else:
            from resolver.store.sqlite import SQLiteStore

            tmp = tempfile.mkdtemp(prefix="hearth-campus-")
            url, data_dir = "", Path(tmp) / "hearth-data"
            stores = [SQLiteStore(str(data_dir / "hearth.db")) for _n in NODES]
            for store, node in zip(stores, NODES):
                store.node = node
        stores[0].migrate()
        codes = prepare(stores[0], args.clients, names, postgres)
        today = int(time.time() // 86400)
        days = []
        t0 = time.perf_counter()
        for day in range(today - args.days + 1, today):
            if postgres:
                days.append(fill_day(stores[0], day, args.rows_per_day, args.clients, codes, len(names)))
            else:
                days.append(fill_day_sqlite(stores[0], day, args.rows_per_day, args.clients, codes, names, day))
            log(f"day {day}: {days[-1]}")
        idle_node_rows(stores[0], today - args.days + 1, codes)
        generated = sum(d["rows"] for d in days)
        report["generated"] = {"days": len(days), "rows": generated, "seconds": round(time.perf_counter() - t0, 1),
                               "rows_per_s": round(generated / (time.perf_counter() - t0)), "per_day": days}
        log(f"live rows through add_queries: {args.live_rows:,}")
        report["live"] = live_rows(stores, args.live_rows, args.clients, names)
        if postgres:
            import psycopg
            with psycopg.connect(url, autocommit=True) as conn:
                t1 = time.perf_counter()
                conn.execute("ANALYZE")
                report["analyze_s"] = round(time.perf_counter() - t1, 1)
            report["size"] = sizes(stores[0])
        else:   # no ANALYZE: the appliance never runs one on its SQLite store
            report["size"] = sqlite_sizes(stores[0])
        log(f"sizes: {report['size']}")
        report["devices_s"] = add_devices(stores[0], args.clients)
        log(f"{args.clients} devices added in {report['devices_s']} s")
        busy = min(4242, args.clients - 1)
        report["pages"] = time_pages(data_dir, url, f"pupil-{busy:05d}", address(busy), args.repeat)
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
        if server is not None:
            server.destroy()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "generated"}, indent=1))
    print(json.dumps({k: v for k, v in report["generated"].items() if k != "per_day"}))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HEARTH_LOG_LEVEL", "warning")
    raise SystemExit(main())
