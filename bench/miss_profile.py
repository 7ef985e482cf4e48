#!/usr/bin/env python3
"""The forwarded-miss path in one process, per query: where a miss's CPU goes without sockets (issue 19).

Drives ``Pipeline.answer_cached`` + ``resolve_later`` + the upstream reply path (``Fetcher``, the view's copy,
the cache inserts, the reply, the query-log tuple) with an upstream stub that answers at once, for N distinct
names from the bench's query file, with the bench's policy: the ``teens`` profile (plus ads) with two
schedules, a CIDR device, the bundled starter lists compiled into a real index, the query log on, GC on
(the engine's thresholds and frozen start-up heap).
Then (``--writer``) the query log's writer: the same misses' ring entries written to a real SQLite store by
``QueryLog._write`` in batches of ``querylog.batch_size``, as the engine's writer thread does.

    taskset -c 1 python bench/miss_profile.py [--data DIR] [--queries 30000] [--writer] [--profile miss|writer]
                                              [--meter] [--prefill ROWS]

``--meter`` hands each written batch to the engine's time-budget meter too, wired as ``resolver.service.server``
does (``BudgetMeter.observe`` as the query log's observer), with two budgets on the ``teens`` profile ("all"
and category:games) so it counts; ``--prefill`` starts from a log already holding that many rows (the size cap
checks the log with every batch).
Prints µs per miss (process CPU time) for each part; ``--profile`` adds cProfile's top functions of one part.
Run it pinned to one core on a quiet machine; it is a scratch measure beside dns_bench.py, not a benchmark
of the whole engine (no kernel, no event loop).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data"   # as dns_bench.py: --data elsewhere

from blocklists.manager import load_index  # noqa: E402
from resolver.engine.budget_meter import BudgetMeter  # noqa: E402
from resolver.engine.cache import AnswerCache, CacheConfig  # noqa: E402
from resolver.engine.localrecords import LocalZone  # noqa: E402
from resolver.engine.pipeline import Pipeline  # noqa: E402
from resolver.engine.querylog import QueryLog, QueryLogConfig  # noqa: E402
from resolver.engine.stats import Stats  # noqa: E402
from resolver.service.process import ENGINE_GC_THRESHOLDS  # noqa: E402
from resolver.policy.budgets import Budget  # noqa: E402
from resolver.policy.access import ClientAccess, RateLimitConfig  # noqa: E402
from resolver.policy.profiles import Device, Schedule, profile_from_preset  # noqa: E402
from resolver.policy.views import PolicySet  # noqa: E402
from resolver.store.sqlite import open_store  # noqa: E402

ANSWER = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02\x01"   # A 192.0.2.1, TTL 3600


class StubUpstream:
    """Answers every forwarded query at once with one A record (the reply the bench's upstream gives)."""

    def forward(self, packet: bytes, done, question=None) -> None:
        end = packet.index(0, 12) + 5
        done(packet[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x01" + packet[12:end] + ANSWER + packet[end:],
             "udp://stub", None)

    def known_down(self, r) -> bool:
        return False


def query(qid: int, name: str) -> bytes:
    w = b"".join(bytes((len(x),)) + x.encode() for x in name.split(".")) + b"\x00"
    return (qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01" + w + b"\x00\x01\x00\x01"
            + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")


def pipeline(tmp: str, querylog: QueryLog) -> Pipeline:
    cfg = Path(tmp) / "h.yaml"
    cfg.write_text(f"data_dir: {tmp}/data\ndns:\n  upstreams: ['udp://127.0.0.1:9']\n")
    subprocess.run([sys.executable, "-m", "resolver.cli", "lists", "update", "--offline", "--no-notify", "-c",
                    str(cfg)], check=True, cwd=str(REPO), stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))
    index, meta = load_index(f"{tmp}/data")
    teens = profile_from_preset("teens", "teen")
    teens = replace(teens, categories=tuple(teens.categories) + ("ads",))
    h = (time.gmtime().tm_hour + 4) % 24
    every = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
    schedules = [Schedule(profile="teens", name="bedtime", days=every, start=f"{h:02d}:00",
                          end=f"{(h + 1) % 24:02d}:00", action="block_all"),
                 Schedule(profile="teens", name="homework", days=every, start=f"{(h + 2) % 24:02d}:00",
                          end=f"{(h + 3) % 24:02d}:00", action="block_categories", categories=("games", "social"))]
    devices = [Device(name="all", kind="cidr", value="127.0.0.0/8", profile="teens", id=1)]
    p = Pipeline(access=ClientAccess(["0.0.0.0/0"], RateLimitConfig(qps=0)),
                 cache=AnswerCache(CacheConfig(size=200000)), local=LocalZone([]), upstreams=StubUpstream(),
                 querylog=querylog, stats=Stats())
    p.set_policies(PolicySet(p.registry, [teens], devices, schedules, [], index, meta, "UTC"))
    return p


def meter(store, qlog: QueryLog, p: Pipeline, tmp: str) -> None:
    """The engine's budget meter as the query log's observer (resolver.service.server), configured as
    policy_sync does, with budgets on the bench's profile."""
    budgets = BudgetMeter(lambda client: None if p.policies is None else p.policies.view_for(client)[0].profile)
    qlog.observers.append(budgets.observe)
    index, meta = load_index(f"{tmp}/data")
    budgets.configure([Budget("teens", "all", 600, 600), Budget("teens", "category:games", 600, 600)], [],
                      store.budget_high_water(), index, meta, "UTC", time.time())


def prefill(store, rows: int) -> None:
    """``rows`` query-log rows (one client, distinct names) an hour ago, written in SQL."""
    start = int((time.time() - 3600) * 1000)
    with store._transaction() as db:
        db.execute("INSERT INTO ql_strings (text) VALUES ('10.9.9.9') ON CONFLICT (text) DO NOTHING")
        db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT ?)"
                   " INSERT INTO query_log (ts, client, qname, qtype, rcode, answer, upstream, latency_us, cached)"
                   " SELECT ? + i / 40, (SELECT id FROM ql_strings WHERE text = '10.9.9.9'), 'n' || i || '.example',"
                   " 1, 0, 'A 192.0.2.1', NULL, 2500, 0 FROM n", (rows, start))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=30000)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the bench data (queries/dnsperf_queries_100k.tsv)")
    ap.add_argument("--writer", action="store_true", help="also time the query log's writer on the same misses")
    ap.add_argument("--meter", action="store_true", help="the writer also feeds the engine's time-budget meter")
    ap.add_argument("--batch-size", type=int, default=QueryLogConfig.batch_size, metavar="N",
                    help="entries a writer transaction (querylog.batch_size; default %(default)s)")
    ap.add_argument("--prefill", type=int, default=0, metavar="ROWS", help="rows in the log before the writer runs")
    ap.add_argument("--profile", choices=("miss", "writer"), help="cProfile one part, top 30 by own time")
    args = ap.parse_args()
    lines = (args.data / "queries" / "dnsperf_queries_100k.tsv").read_text().splitlines()
    names = [line.split("\t")[0].rstrip(".").lower() for line in lines if line]
    names = [n for n in dict.fromkeys(names) if n and all(0 < len(x) < 64 and x.isascii() for x in n.split("."))]
    packets = [query(i & 0xFFFF, n) for i, n in enumerate(names[5000:5000 + args.queries])]
    with tempfile.TemporaryDirectory() as tmp:
        config = QueryLogConfig(enabled=True, buffer_size=len(packets) + 10, batch_size=args.batch_size)
        store = open_store(tmp) if args.writer or args.profile == "writer" else None
        qlog = QueryLog(config, (lambda: store) if store is not None else None)
        p = pipeline(tmp, qlog)
        if store is not None and args.meter:
            meter(store, qlog, p, tmp)
        if store is not None and args.prefill:
            prefill(store, args.prefill)
        sent: list = []

        gc.set_threshold(*ENGINE_GC_THRESHOLDS)   # as `hearth dns` runs
        gc.collect()
        gc.freeze()

        async def misses() -> float:
            t0 = time.process_time()
            for data in packets:
                if p.answer_cached(data, "127.0.0.1", True) is None:
                    p.resolve_later(data, "127.0.0.1", True, sent.append)
            return (time.process_time() - t0) / len(packets)

        def writer() -> float:
            batches = []
            while qlog.ring:
                batches.append(qlog._take())
            gc.collect()
            t0 = time.process_time()
            for batch in batches:
                qlog._write(batch)
            return (time.process_time() - t0) / len(packets)

        prof = cProfile.Profile()
        if args.profile == "miss":
            prof.enable()
        per_miss = asyncio.run(misses())
        prof.disable()
        print(f"miss path: {per_miss * 1e6:.2f} us/miss ({len(sent)} answered, {p.stats.blocked} blocked)")
        if store is not None:
            if args.profile == "writer":
                prof.enable()
            per_row = writer()
            prof.disable()
            print(f"query log writer: {per_row * 1e6:.2f} us/miss ({qlog.written} rows written)")
            store.close()
        if args.profile:
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
