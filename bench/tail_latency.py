#!/usr/bin/env python3
"""Hearth's tail latency: p99 at half its peak rate, steady and during a list swap and a policy change.

Hearth as in dns_bench.py (as installed: query log, profiles with CIDR/MAC/IP devices, schedules,
bypass prevention; the --blocked-names list compiled once before start), pinned to one core, dnsperf
on the other, 127.0.0.1 only. dnsperf asks a mix of the cached-hit set and blocked names:

1. peak: `-l 5` unthrottled, its qps is the peak;
2. steady: `-Q peak/2 -l D -v` (every response's latency), p50 / p99 / max;
3. list swap: the same, while the engine runs a `lists update` of the whole list (the control socket's
   `lists-update`, what the web UI's "Update now" does: a child process on the engine's core compiles
   the list, the engine opens the new index: new generation, every cached answer re-checked);
4. policy change: the same, while `hearth profile set` changes the dnsperf clients' profile (the engine
   polls the store: new generation).

Reported per phase: p50, p99, max, lost, and the worst p99 of any 1-second window (responses in order,
at a fixed rate: window k = responses k*rate .. (k+1)*rate); the goal is phase p99 <= 2x steady.

On a virtual machine the hypervisor sometimes takes a core away for 10-100 ms (steal time): the queries that
arrive meanwhile wait, whatever the server. Each phase therefore also reports the steal time of the two
cores (sampled from /proc/stat every 20 ms, ``steal_at``) and a second p99 over the responses outside the
quarter seconds around a steal (``p99_steal_free_ms``, with the share of responses it keeps), so that an
engine's own tail can be told from the machine's. dnsperf's output goes to /dev/shm when there is one (its
writeback to a virtual disk caused most of the steal), and every phase starts with a warm-up pass.

    python bench/tail_latency.py [--blocked-names 1000000] [--duration 20] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dns_bench as db  # noqa: E402  (the sibling benchmark: processes, engines, query sets)

sys.path.insert(0, str(db.REPO))
from resolver.service.control import call  # noqa: E402


def latencies(path: Path) -> array:
    """Per-response latencies (s) from dnsperf -v output, in response order. Read line by line into an array
    of doubles: a 240 s phase has 17 million lines, which as one string and its lines took several GB, and
    on a virtual machine the memory churn showed up as steal in the next phase."""
    out = array("d")
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("> "):
                try:
                    out.append(float(line.rsplit(None, 1)[1]))
                except (ValueError, IndexError):
                    continue
    return out


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


STEAL_SAMPLE_S = 0.02   # how often the cores' steal time is read
# responses from this long before a steal sample that grew to this long after it are "around a steal":
# the sample is up to 20 ms late, /proc/stat counts in 10 ms ticks, and the queue the pause left drains after it
STEAL_BEFORE_S, STEAL_AFTER_S = 0.25, 0.5
TIMELINE_STEP_S = 0.25   # the resolution of a phase's timeline (by responses, at the fixed rate)
EVENT_AT_S = 2.0   # a phase's event (list update, policy change) starts this long into its dnsperf run


def phase_stats(lat: Sequence[float], rate: int, run: dict) -> dict:
    windows = [lat[i:i + rate] for i in range(0, len(lat), rate) if len(lat[i:i + rate]) >= rate // 2]
    step = max(1, int(rate * TIMELINE_STEP_S))
    return {"responses": len(lat), "p50_ms": _ms(pct(lat, 0.5)), "p99_ms": _ms(pct(lat, 0.99)),
            "max_ms": _ms(max(lat) if lat else None), "lost": run.get("lost"), "qps": run.get("qps"),
            "worst_window_p99_ms": _ms(max((pct(w, 0.99) for w in windows), default=None)),
            # the phase second by second, finer: where in it the slow answers were
            "timeline_max_ms": [_ms(max(lat[i:i + step])) for i in range(0, len(lat), step)]}


class StealWatch:
    """Steal time (the hypervisor running something else on a virtual CPU) of some cores, from /proc/stat,
    sampled in a thread: the moments it grew, and by how much."""

    def __init__(self, cpus: list[int]) -> None:
        self.cpus = cpus
        self.events: list[tuple[float, int, float]] = []   # (monotonic time, cpu, ms stolen since last sample)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steal-watch", daemon=True)

    @staticmethod
    def _read(cpus: list[int]) -> dict[int, int]:
        out = {}
        with open("/proc/stat", encoding="ascii") as fh:
            for line in fh:
                name = line.split(None, 1)[0]
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                    out[int(name[3:])] = int(line.split()[8])
        return out

    def _run(self) -> None:
        tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
        last = self._read(self.cpus)
        while not self._stop.wait(STEAL_SAMPLE_S):
            now, cur = time.monotonic(), self._read(self.cpus)
            for cpu, value in cur.items():
                if value > last.get(cpu, value):
                    self.events.append((now, cpu, (value - last[cpu]) * tick_ms))
            last = cur

    def __enter__(self) -> StealWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def steal_stats(lat: Sequence[float], rate: int, started: float, watch: StealWatch, engine_cpu: int) -> dict:
    """The phase's steal time per core, and its p99 without the responses around a steal (response i is
    taken to have been asked at ``started + i / rate``: dnsperf sends at a fixed rate)."""
    bad = [False] * len(lat)
    for at, _cpu, _ms_stolen in watch.events:
        lo = max(0, int((at - STEAL_BEFORE_S - started) * rate))
        hi = min(len(lat), int((at + STEAL_AFTER_S - started) * rate))
        for i in range(lo, hi):
            bad[i] = True
    kept = [v for v, b in zip(lat, bad) if not b]
    stolen = {cpu: 0.0 for cpu in watch.cpus}
    for _at, cpu, ms_stolen in watch.events:
        stolen[cpu] += ms_stolen
    return {"steal_ms_engine_core": round(stolen.get(engine_cpu, 0.0), 1),
            "steal_ms_client_core": round(sum(v for c, v in stolen.items() if c != engine_cpu), 1),
            "steal_events": len(watch.events),
            "p99_steal_free_ms": _ms(pct(kept, 0.99)),
            "steal_free_share": round(len(kept) / len(lat), 4) if lat else None,
            # (seconds into the phase, core, ms stolen): to lay beside timeline_max_ms
            "steal_at": [(round(at - started, 2), cpu, ms_stolen) for at, cpu, ms_stolen in watch.events]}


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=db.DEFAULT_DATA)
    p.add_argument("--blocked-names", type=int, default=1000000)
    p.add_argument("--duration", type=float, default=20.0, help="seconds of each measured phase (default 20)")
    p.add_argument("--swap-duration", type=float, default=240.0,
                   help="seconds of the list-swap phase (default 240): the compile runs at a lower priority than "
                        "the engine and takes far longer under load than idle; the phase must hold the swap")
    p.add_argument("--json", type=Path, default=db.REPO / "bench" / "results" / "tail_latency.json")
    p.add_argument("--phases", default="steady,list swap,policy change",
                   help="the phases to measure, comma-separated (steady is always measured: the others are "
                        "compared with it)")
    p.add_argument("--hearth-yaml", default="", help="extra lines for Hearth's config, e.g. to compare settings")
    args = p.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("tail_latency: needs 2 CPUs", file=sys.stderr)
        return 2
    client_cpu, engine_cpu = cpus[0], cpus[1]
    procs = db.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-tail-"))
    out_dir = None
    try:
        up_port, port = db.free_ports(2)
        db.start_upstream(procs, tmp, client_cpu, up_port)
        lines = db.read_queries(args.data / db.QUERY_FILE, {"A", "AAAA"})
        hits, _ = db.build_sets(lines, 10000, 20001, 100000)
        blocked = db.prepare_blocked(tmp, hits, args.blocked_names)
        db.log("compiling the blocked list ...")
        blocked["hearth_compile"] = db.compile_hearth_lists(procs, tmp, engine_cpu, blocked)
        mix = db.write_queries(tmp / "mix.txt", hits + [(line.split("\t")[0], "A") for line in
                                                       blocked["query_file"].read_text().splitlines()])
        policy = db.setup_hearth_policy(procs, tmp)
        eng = db.HearthEngine(procs, tmp, engine_cpu, port, up_port)
        eng.store_template = policy["store"]
        eng.blocked = dict(blocked, hearth_yaml=blocked["hearth_yaml"] + args.hearth_yaml)
        eng.start(wait=120)
        eng.blocked = None
        db.wait_start_up_work(eng.pid)
        # the engine's own first scheduled list update (a child on its core, 30 s after start) must not fall in
        # a measured phase: the steady phase would be measured during a swap, and the swap phase's
        # `lists-update` refused as already running. Let it run and finish first.
        while time.monotonic() - eng.spawned < db.HEARTH_FIRST_LIST_UPDATE_S + 3:
            time.sleep(0.2)
        db.log(f"waited out the first scheduled list update ({db.wait_start_up_work(eng.pid, limit=300)} s)")
        rundir = tmp / f"hearth-{eng.starts}"
        cfg, sock = rundir / "hearth.yaml", rundir / "hearth-data" / "hearth.sock"
        perf = db.Dnsperf(procs, client_cpu, 8, 500, 2.0, engine_cpu=engine_cpu)
        # dnsperf's -v output (about 3 MB a second) goes to memory when it can: on a virtual machine the
        # kernel's writeback of it every 30 s made the hypervisor take both cores away for 10-100 ms (steal)
        shm = Path("/dev/shm")
        out_dir = Path(tempfile.mkdtemp(prefix="hearth-tail-", dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) \
            else tmp
        out = out_dir / "dnsperf.txt"
        perf.run(perf.argv(port, mix, passes=1, clients=1, outstanding=50), limit=120, out_path=out)  # warm
        peak = perf.run(perf.argv(port, mix, duration=5), limit=60, out_path=out)
        rate = int(peak["qps"] / 2)
        db.log(f"peak {peak['qps']:,.0f} qps; measuring at {rate:,} qps")

        def throttled(label: str, during=None, duration: float = args.duration) -> dict:
            # every phase starts warm, as the first does: the previous phase's output took up to a minute to
            # read, the engine sat idle meanwhile, and the blocked answers' TTLs ran out (a burst of 8,000
            # re-checks in the phase's first quarter second, which is not the event it measures)
            # (the warm-up also deletes the last phase's output, which takes a second after a swap phase: before
            # the phase's clock starts, not between it and dnsperf's start)
            perf.run(perf.argv(port, mix, passes=1, clients=1, outstanding=50), limit=120, out_path=out)
            argv = perf.argv(port, mix, duration=duration) + ["-Q", str(rate), "-v"]
            holder: dict = {}
            with StealWatch([client_cpu, engine_cpu]) as watch:
                started = time.monotonic()
                if during is not None:
                    t = threading.Timer(EVENT_AT_S, lambda: holder.update(during(duration)))
                    t.start()
                run = perf.run(argv, limit=duration + 60, out_path=out)
            if during is not None:
                t.join()
            lat = latencies(out)
            res = phase_stats(lat, rate, run)
            res.update(steal_stats(lat, rate, started, watch, engine_cpu))
            res.update(holder)
            if holder.get("swap_at_s") is not None:   # the seconds around the moment the new index went in
                at = holder["swap_at_s"]
                around = lat[max(0, int((at - 1) * rate)):int((at + 2) * rate)]
                res["around_swap_p99_ms"] = _ms(pct(around, 0.99)) if around else None
            db.log(f"{label}: { {k: v for k, v in res.items() if k not in ('timeline_max_ms', 'steal_at')} }")
            return res

        def generation() -> int:
            return call(str(sock), "stats")["stats"].get("policy_generation")

        def list_swap(duration: float) -> dict:
            gen0 = generation()
            t0 = time.monotonic()
            reply = call(str(sock), "lists-update")
            # the update compiles in a child of the engine at a lower priority; the new lists are in force when
            # the engine's generation moves on (polled every 0.1 s: the swap's moment within ±0.1 s)
            gen1, swapped = gen0, None
            while time.monotonic() - t0 < duration - EVENT_AT_S - 2:
                time.sleep(0.1)
                gen1 = generation()
                if gen1 != gen0:
                    swapped = time.monotonic() - t0
                    break
            return {"event": "lists-update", "started": reply.get("started"), "generation_before": gen0,
                    "generation_after": gen1,
                    "swap_at_s": None if swapped is None else round(EVENT_AT_S + swapped, 1),
                    "update_s": None if swapped is None else round(swapped, 1)}

        def policy_change(_duration: float) -> dict:
            before = call(str(sock), "stats")["stats"]
            gen0 = before.get("policy_generation")
            t0 = time.monotonic()
            # the change is made as from a parent's phone: the CLI's start-up (a second of Python importing) takes
            # neither the engine's core nor dnsperf's time (the client's core, in what dnsperf leaves idle)
            r = subprocess.run(["nice", "-n", "19", "taskset", "-c", str(client_cpu), sys.executable, "-m",
                                "resolver.cli", "profile", "set", "-c", str(cfg), "teens", "--add-block",
                                "tail-latency.example"], cwd=db.REPO, env=db.hearth_env(),
                               capture_output=True, text=True, check=False)
            cli_s = time.monotonic() - t0
            applied = None   # the engine polls the store every second: the new policy is in force when its
            while time.monotonic() - t0 < 10:   # generation moves on
                if generation() != gen0:
                    applied = time.monotonic() - t0
                    break
                time.sleep(0.05)
            time.sleep(3)
            after = call(str(sock), "stats")["stats"]
            return {"event": "profile set", "exit_code": r.returncode, "cli_s": round(cli_s, 2),
                    "applied_at_s": None if applied is None else round(EVENT_AT_S + applied, 2),
                    "apply_ms": after.get("policy_apply_ms"),
                    # answers made again (not served from the cache) from before the change to 3 s after it
                    "slow_queries": after["slow_queries"] - before["slow_queries"],
                    "blocked_made": after["blocked"] - before["blocked"]}

        wanted = {name.strip() for name in args.phases.split(",")}
        phases = {"steady": throttled("steady")}
        if "list swap" in wanted:
            phases["list swap"] = throttled("list swap", list_swap, args.swap_duration)
        if "policy change" in wanted:
            # an update still compiling (a swap phase too short for it) would fall in this phase: wait it out
            waited = db.wait_start_up_work(eng.pid, limit=600)
            if waited:
                db.log(f"waited {waited} s for the list update to end")
            phases["policy change"] = throttled("policy change", policy_change)
        base, base_free = phases["steady"]["p99_ms"], phases["steady"]["p99_steal_free_ms"]
        for ph in phases.values():
            ph["p99_vs_steady"] = round(ph["p99_ms"] / base, 2) if base and ph["p99_ms"] else None
            ph["p99_steal_free_vs_steady"] = (round(ph["p99_steal_free_ms"] / base_free, 2)
                                              if base_free and ph["p99_steal_free_ms"] else None)
        end_stats = call(str(sock), "stats")["stats"]
        report = {"peak_qps": peak["qps"], "rate": rate, "blocked_names": blocked["names_total"],
                  "engine_gc": {k: v for k, v in end_stats.items() if k.startswith("gc_")},
                  "queries": f"{len(hits)} cached-hit queries + {blocked['query_names']} blocked names",
                  "phases": phases, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"peak {peak['qps']:,.0f} qps, measured at {rate:,} qps, {blocked['names_total']:,} names listed\n")
        print("| phase | p50 ms | p99 ms | p99 vs steady | worst 1 s p99 ms | max ms | lost | steal ms (engine, "
              "client core) | p99 away from steal ms | vs steady | responses kept |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, ph in phases.items():
            print(f"| {name} | {ph['p50_ms']} | {ph['p99_ms']} | {ph['p99_vs_steady']}x | "
                  f"{ph['worst_window_p99_ms']} | {ph['max_ms']} | {ph['lost']} | {ph['steal_ms_engine_core']}, "
                  f"{ph['steal_ms_client_core']} | {ph['p99_steal_free_ms']} | {ph['p99_steal_free_vs_steady']}x | "
                  f"{ph['steal_free_share']:.1%} |")
        swap = phases.get("list swap")
        if swap is None:
            pass
        elif swap.get("swap_at_s") is not None:
            print(f"\nlist swap: the new index in force {swap['update_s']} s after the update started "
                  f"({swap['swap_at_s']} s into the phase); p99 of the 3 s around it {swap['around_swap_p99_ms']} ms")
        else:
            print("\nlist swap: the update did not finish within the phase (raise --swap-duration)")
        db.log(f"engine's full collections: {report['engine_gc']}")
        med = statistics.median([ph["p99_ms"] for ph in phases.values() if ph["p99_ms"]])
        db.log(f"median p99 {med} ms; wrote {args.json}")
        return 0
    except db.BenchError as exc:
        print(f"tail_latency: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        if out_dir is not None:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
