#!/usr/bin/env python3
"""Hearth with `dns.workers: 1` vs `2` on cached hits: throughput (qps) and CPU per query.

On a 2-core machine the load generator needs a core too, so three set-ups are measured, each with the
same engine setup as dns_bench.py (Hearth as installed: query log, profiles, devices, schedules, bypass
prevention; the same upstream dnsmasq on CPU 0 and the same hit set):

* ``1 worker, pinned``: Hearth on CPU 1, dnsperf on CPU 0 (dns_bench.py's baseline: one whole core each);
* ``1 worker, shared``: Hearth and dnsperf both free to run on both cores;
* ``2 workers, shared``: two Hearth workers (and their parent) and dnsperf, all on both cores.

For each: dnsperf's qps; Hearth's CPU µs/query (utime+stime of the parent and every worker, from /proc,
before and after the measured run); dnsperf's own CPU µs/query (its rusage from wait4); how busy both cores
were (/proc/stat); and with 2 workers each worker's share of the queries (its own control socket). Everything
on 127.0.0.1.

    python bench/workers_bench.py [--duration 10] [--repeat 3] [--clients 16] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dns_bench as db  # noqa: E402  (bench/ is not a package)

from resolver.service.control import call  # noqa: E402

SETUPS = (("1 worker, pinned", 1, "1", "0"), ("1 worker, shared", 1, "0,1", "0,1"),
          ("2 workers, shared", 2, "0,1", "0,1"),
          ("2 workers, both on CPU 1", 2, "1", "0"))   # (label, workers, engine CPUs, dnsperf CPUs)


class WorkersHearth(db.HearthEngine):
    """dns_bench's Hearth with ``dns.workers`` set; ready when the parent wrote engine.json."""

    def __init__(self, *args: Any, workers: int, extra_yaml: str = "", **kw: Any):
        super().__init__(*args, **kw)
        self.workers = workers
        self.extra_yaml = extra_yaml
        self.rundir: Path | None = None

    def argv(self, rundir: Path) -> list[str]:
        out = super().argv(rundir)
        cfg = rundir / "hearth.yaml"
        cfg.write_text(cfg.read_text().replace("dns:\n", f"dns:\n  workers: {self.workers}\n", 1)
                       + self.extra_yaml)
        self.rundir = rundir
        return out

    def _wait_ready(self, wait: float) -> None:
        assert self.rundir is not None
        deadline = time.monotonic() + wait
        while not (self.rundir / "hearth-data" / "engine.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise db.BenchError(f"hearth did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        super()._wait_ready(wait)

    def stats(self) -> dict:
        """The engine's statistics (summed over the workers by the parent)."""
        return call(str(self.rundir / "hearth-data" / "hearth.sock"), "stats")["stats"]

    def worker_queries(self) -> list[int]:
        if self.workers == 1:
            return []
        sock = self.rundir / "hearth-data" / "hearth.sock"
        return [call(f"{sock}.{i}", "stats")["stats"]["queries"] for i in range(self.workers)]


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of ``pid``'s threads and its descendants' so far."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/status", encoding="ascii", errors="replace") as fh:
                    for line in fh:
                        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                            total += int(line.split()[-1])
            todo.extend(db.children_of(p))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def machine_jiffies() -> tuple[int, int]:
    busy = total = 0
    for cpu in range(os.cpu_count() or 1):
        b, t = db.core_jiffies(cpu)
        busy, total = busy + b, total + t
    return busy, total


def measure(procs: db.Procs, workdir: Path, label: str, workers: int, engine_cpus: str, perf_cpus: str,
            port: int, upstream_port: int, hits: Path, args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=workdir))
    engine = WorkersHearth(procs, workdir, engine_cpus, port, upstream_port, workers=workers,
                           extra_yaml="querylog: {enabled: false}\n" if args.no_querylog else "")
    engine.start(wait=120)
    try:
        # the bundled lists are compiled in a child at first start (by worker 0 with 2 workers): start-up work
        for pid in (db.children_of(engine.pid) if workers > 1 else [engine.pid]):
            db.wait_start_up_work(pid)
        base = ["taskset", "-c", perf_cpus, "dnsperf", "-s", db.HOST, "-p", str(port), "-d", str(hits),
                "-t", "2"]
        # Each worker has its own cache and the kernel picks the worker by source port, so one pass
        # warms each worker with only part of the names: pass again until a pass sends nothing upstream.
        passes = 0
        while passes < 8:
            passes += 1
            up0 = engine.stats()["upstream_queries"]
            warm = procs.run_to_end(base + ["-n", "1", "-c", str(args.clients), "-q", "50"],
                                    log_path=workdir / "warm.txt")
            if warm["exit_code"] != 0:
                raise db.BenchError(f"dnsperf warm-up failed:\n{(workdir / 'warm.txt').read_text()[-2000:]}")
            if engine.stats()["upstream_queries"] == up0:
                break
        before_q, s0 = engine.worker_queries(), engine.stats()
        out = workdir / f"dnsperf-{label.replace(' ', '-').replace(',', '')}.txt"
        cpu0, j0, cs0 = db.cpu_seconds(engine.pid), machine_jiffies(), context_switches(engine.pid)
        run = procs.run_to_end(base + ["-l", f"{args.duration:g}", "-c", str(args.clients),
                                       "-q", str(args.outstanding)], log_path=out)
        cpu1, j1, cs1 = db.cpu_seconds(engine.pid), machine_jiffies(), context_switches(engine.pid)
        after_q, s1 = engine.worker_queries(), engine.stats()
    finally:
        engine.stop()
    res = db.parse_dnsperf(out.read_text(errors="replace"))
    if run["exit_code"] != 0 or "qps" not in res:
        raise db.BenchError(f"dnsperf failed:\n{out.read_text(errors='replace')[-2000:]}")
    done = res.get("completed") or 1
    wall = max(res.get("run_time_s") or args.duration, 0.1)
    machine_cores = (j1[0] - j0[0]) / max(1, j1[1] - j0[1]) * (os.cpu_count() or 1)
    row = {"setup": label, "workers": workers, "engine_cpus": engine_cpus, "dnsperf_cpus": perf_cpus,
           "qps": res["qps"], "lost_pct": res.get("lost_pct"), "completed": res.get("completed"),
           "hearth_cpu_us_per_query": round(1e6 * (cpu1 - cpu0) / done, 2),
           "dnsperf_cpu_us_per_query": round(1e6 * run["cpu_s"] / done, 2),
           "hearth_context_switches_per_1000_queries": round(1000 * (cs1 - cs0) / done, 1),
           "hearth_cores": round((cpu1 - cpu0) / wall, 2), "dnsperf_cores": round(run["cpu_s"] / wall, 2),
           "machine_busy_pct": round(100 * machine_cores / (os.cpu_count() or 1), 1), "warm_up_passes": passes,
           "cache_hit_pct": round(100 * (s1["cache_hits"] - s0["cache_hits"])
                                  / max(1, s1["queries"] - s0["queries"]), 2),
           "querylog": not args.no_querylog}
    # what else ran meanwhile: the upstream dnsmasq (idle on hits), kernel softirq work, other users' jobs
    row["other_cores"] = round(machine_cores - row["hearth_cores"] - row["dnsperf_cores"], 2)
    if after_q:
        share = [a - b for a, b in zip(after_q, before_q)]
        row["worker_share_pct"] = [round(100 * s / max(1, sum(share)), 1) for s in share]
    return row


def median(rows: list[dict], key: str) -> Any:
    values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return round(statistics.median(values), 2) if values else None


def markdown(report: dict) -> str:
    lines = [f"workers_bench: {report['when']}, {report['cpus']} CPUs, dnsperf -c {report['clients']} "
             f"-q {report['outstanding']}, {report['duration']:g} s runs, median of {report['repeat']}"
             + ("" if report["querylog"] else ", query log off"), "",
             "| setup | qps | Hearth CPU µs/query | dnsperf CPU µs/query | cores used: Hearth / dnsperf / other "
             "| machine busy | cache hits | Hearth context switches / 1000 queries | worker shares % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, *_ in SETUPS:
        rows = [r for r in report["runs"] if r["setup"] == label]
        if not rows:
            continue
        shares = "; ".join("/".join(f"{s:g}" for s in r["worker_share_pct"]) for r in rows
                           if r.get("worker_share_pct"))
        lines.append(f"| {label} | {median(rows, 'qps'):,.0f} | {median(rows, 'hearth_cpu_us_per_query')} | "
                     f"{median(rows, 'dnsperf_cpu_us_per_query')} | {median(rows, 'hearth_cores')} / "
                     f"{median(rows, 'dnsperf_cores')} / {median(rows, 'other_cores')} | "
                     f"{median(rows, 'machine_busy_pct')} % | {median(rows, 'cache_hit_pct')} % | "
                     f"{median(rows, 'hearth_context_switches_per_1000_queries')} | {shares or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=64, help="dnsperf -c: sockets, i.e. source ports the kernel "
                    "spreads over the workers (default 64)")
    ap.add_argument("--outstanding", type=int, default=500)
    ap.add_argument("--hits", type=int, default=10000)
    ap.add_argument("--data", type=Path, default=db.DEFAULT_DATA)
    ap.add_argument("--no-querylog", action="store_true", help="turn the query log off (to see its share)")
    ap.add_argument("--setups", default="", help="comma-separated numbers (1-based) of the set-ups to run; "
                    "default all")
    ap.add_argument("--json", type=Path, default=db.REPO / "bench" / "results" / "workers_bench.json")
    args = ap.parse_args(argv)
    for tool in ("dnsperf", "dnsmasq", "taskset"):
        if shutil.which(tool) is None:
            print(f"workers_bench: {tool} is not on PATH", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("workers_bench: needs at least 2 CPUs", file=sys.stderr)
        return 2
    procs = db.Procs()
    workdir = Path(tempfile.mkdtemp(prefix="hearth-workers-bench-"))
    try:
        upstream_port, port = db.free_ports(2)
        db.start_upstream(procs, workdir, 0, upstream_port)
        if not (args.data / db.QUERY_FILE).is_file():
            raise db.BenchError(f"no query file {args.data / db.QUERY_FILE} (give the shared data with --data DIR)")
        lines = db.read_queries(args.data / db.QUERY_FILE, {"A", "AAAA"})
        hits = db.write_queries(workdir / "hits.tsv", db.build_sets(lines, args.hits, 0, 0)[0])
        db.HearthEngine.store_template = db.setup_hearth_policy(procs, workdir)["store"]
        runs = []
        chosen = [SETUPS[int(n) - 1] for n in args.setups.split(",")] if args.setups else list(SETUPS)
        for rep in range(args.repeat):
            order = chosen[rep % len(chosen):] + chosen[:rep % len(chosen)]   # rotate who goes first
            for label, workers, ecpu, pcpu in order:
                db.log(f"run {rep + 1}/{args.repeat}: {label}")
                row = measure(procs, workdir, label, workers, ecpu, pcpu, port, upstream_port, hits, args)
                db.log(json.dumps(row))
                runs.append(row)
        report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                  "clients": args.clients, "outstanding": args.outstanding, "duration": args.duration,
                  "repeat": args.repeat, "querylog": not args.no_querylog, "runs": runs}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        text = markdown(report)
        args.json.with_suffix(".md").write_text(text)
        print(text)
        return 0
    except db.BenchError as exc:
        print(f"workers_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
