#!/usr/bin/env python3
"""Time-budget counting on the cached-hit path: Hearth with budgets off vs on, side by side.

Starts an upstream dnsmasq (answers every name), then alternately a fresh `hearth dns` whose store has no
budgets ("off") and one whose client 127.0.0.1 is in a profile with an "all internet", a Roblox and a
games budget that never run out ("on": every answered query is matched and counted by the budget meter in
the query log's writer thread). Each run warms the cache with one pass of the query file, then drives
cached hits with dnsperf for --duration seconds and reads the engine's CPU time from /proc. 127.0.0.1 only.

    python bench/budget_bench.py [--duration 10] [--repeat 3] [--names 2000] [--json out.json]

Reuses bench/dns_bench.py's process, dnsperf and upstream helpers.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("dns_bench", REPO / "bench" / "dns_bench.py")
db = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(db)


class BudgetHearth(db.HearthEngine):
    """Hearth with (``budgets=True``) or without the budget meter doing work for every answer."""

    budgets = False

    def argv(self, rundir: Path) -> list[str]:
        argv = super().argv(rundir)
        if self.budgets:
            from resolver.policy.budgets import ALL, Budget
            from resolver.policy.profiles import Device, Profile
            from resolver.store.sqlite import open_store

            store = open_store(str(rundir / "hearth-data"))
            try:
                store.add_profile(Profile(name="Kids"))
                store.add_device(Device(name="bench", kind="ip", value=db.HOST, profile="Kids"))
                for target in (ALL, "service:roblox", "category:games"):
                    store.set_budget(Budget("Kids", target, 1440, 1440))
            finally:
                store.close()
        return argv


def query_file(workdir: Path, n: int) -> Path:
    """Half Roblox names (counted for two budgets), half others (counted for all internet)."""
    lines = [f"t{i}.rbxcdn.com A" if i % 2 else f"n{i}.example.com A" for i in range(n)]
    path = workdir / "queries.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def one_run(engine: BudgetHearth, perf, queries: Path, duration: float) -> dict:
    engine.start(wait=30.0)
    try:
        out = engine.workdir / f"dnsperf-{engine.starts}.txt"
        perf.run(perf.argv(engine.port, queries, passes=1, clients=1, outstanding=50), limit=120, out_path=out)
        time.sleep(1.5)                      # the warm-up's log batches written and counted
        cpu0 = db.cpu_seconds(engine.pid)
        run = perf.run(perf.argv(engine.port, queries, duration=duration), limit=duration + 60, out_path=out)
        cpu1 = db.cpu_seconds(engine.pid)
        done = run.get("completed") or 0
        return {"budgets": engine.budgets, "qps": run.get("qps"), "completed": done, "lost": run.get("lost"),
                "cpu_us_per_query": round(1e6 * (cpu1 - cpu0) / done, 2) if done else None}
    finally:
        engine.stop()


def meter_cost(rows_n: int = 70000, names_n: int = 2000, trials: int = 5) -> float:
    """The meter's own CPU per answered query (µs, median): a second's batch at 70k qps over 2000 names,
    counted for "all internet" and Roblox, in this process (no engine, no noise from other processes)."""
    from resolver.engine.budget_meter import BudgetMeter
    from resolver.policy.budgets import ALL, Budget

    class _Store:
        def count_budget_minutes(self, activity, tz):
            return []

    meter = BudgetMeter(lambda _client: "Kids")
    meter.configure([Budget("Kids", t, 1440, 1440) for t in (ALL, "service:roblox")], [], None, None, {}, "UTC",
                    time.time())
    names = [f"t{i}.rbxcdn.com" if i % 2 else f"n{i}.example.com" for i in range(names_n)]
    t0, costs = 1_780_000_000.0, []
    for trial in range(trials):
        rows = [(t0 + trial * 60 + i * 1e-5, "127.0.0.1", names[i % names_n], 1, 0, "", "", 0.0, True, None)
                for i in range(rows_n)]
        a = time.perf_counter()
        meter.observe(rows, _Store())
        costs.append(1e6 * (time.perf_counter() - a) / rows_n)
    return statistics.median(costs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--names", type=int, default=2000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    procs = db.Procs()
    runs: list[dict] = []
    try:
        with tempfile.TemporaryDirectory(prefix="budget-bench-") as tmp:
            work = Path(tmp)
            up_port, port = db.free_ports(2)
            db.start_upstream(procs, work, 0, up_port)
            perf = db.Dnsperf(procs, cpu=0, clients=4, outstanding=100, timeout=2.0)
            queries = query_file(work, args.names)
            engine = BudgetHearth(procs, work, 1, port, up_port)
            for i in range(args.repeat):
                for on in ((False, True) if i % 2 == 0 else (True, False)):
                    engine.budgets = on
                    res = one_run(engine, perf, queries, args.duration)
                    db.log(f"budgets {'on ' if on else 'off'}: {res['qps']:.0f} qps, "
                           f"{res['cpu_us_per_query']} us CPU/query")
                    runs.append(res)
    finally:
        procs.stop_all()
    summary = {}
    for on in (False, True):
        mine = [r for r in runs if r["budgets"] is on]
        summary["on" if on else "off"] = {"qps": statistics.median(r["qps"] for r in mine),
                                          "cpu_us_per_query": statistics.median(r["cpu_us_per_query"]
                                                                                for r in mine)}
    change = summary["on"]["qps"] / summary["off"]["qps"] - 1
    cpu = summary["on"]["cpu_us_per_query"] / summary["off"]["cpu_us_per_query"] - 1
    print("| budgets | cached-hit qps (median) | engine CPU µs/query |\n|---|---|---|")
    for k in ("off", "on"):
        print(f"| {k} | {summary[k]['qps']:.0f} | {summary[k]['cpu_us_per_query']:.1f} |")
    print(f"\nqps with counting on: {change:+.1%}; CPU per query: {cpu:+.1%} ({len(runs)} runs, "
          f"{args.duration:g} s each)")
    micro = meter_cost()
    print(f"the meter's own cost: {micro:.2f} µs per answered query, in the query log's writer thread "
          f"({micro / summary['off']['cpu_us_per_query']:.1%} of the engine's CPU per cached hit)")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "summary": summary, "qps_change": change,
                                         "cpu_change": cpu, "meter_us_per_query": micro}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
