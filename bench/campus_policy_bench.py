#!/usr/bin/env python3
"""Campus-sized policy: 200 profiles and 5,000 devices against one profile and one device, and how fast a
change reaches every node of a campus.

1. **CPU per query** (`hearth dns`, pinned to one core, dnsperf and an upstream dnsmasq on the other, 127.0.0.1
   only; the processes, engine and query-set helpers of dns_bench.py). Two policies, each made once into a
   template SQLite store that every start copies:

   - *one*: one profile (``p001``, as in the campus set) and one device, ``127.0.0.0/8``;
   - *campus*: 200 profiles (presets in turn, each with ads blocked, services, custom block and allow rules,
     half with a bedtime and a homework schedule placed hours away from now) and 5,000 devices: 2,000 by IP,
     1,000 by network (prefix lengths /16 to /30), 2,000 by MAC.

   dnsperf asks through three identities at once, one dnsperf process each (``-a`` source address): an IP
   device (127.0.1.1), an address inside a network device (127.2.0.1 in 127.2.0.0/16, the shortest prefix, so
   the longest match tries every length first) and a MAC device named in EDNS0 option 65001 (``-E``, as a
   router's ``dnsmasq --add-mac`` sends it) by a trusted forwarder (127.0.3.1). Under *one* all three are the
   one device. Before each run the script checks that every source gets its own profile's verdict.
   Cases: cached hits (the first ``--hits`` distinct A/AAAA lines of the query file) and blocked names (a
   ``--blocked-names`` list in category ads, dnsperf asking the listed names that are not hit names).
   CPU µs/query = (utime + stime of the engine, /proc/PID/stat) / queries completed, over the measured run.

2. **Propagation**: a PostgreSQL server started as tests/pg.py does, the campus set loaded into it, three
   ``hearth dns`` nodes on it (distinct ports). ``hearth profile set p004 --add-block NAME`` on node 1; the
   time from starting that command (and from its exit, when the change is committed) until nodes 2 and 3
   answer NAME blocked for a device of p004, asked every 10 ms.

    python bench/campus_policy_bench.py --data ../shared/data [--duration 8] [--repeat 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dns_bench as db  # noqa: E402  (processes, engines, query sets, dnsperf parsing)

sys.path.insert(0, str(db.REPO))
from resolver.policy.profiles import PRESETS, Device, Schedule, profile_from_preset  # noqa: E402

PROFILES, IP_DEVICES, NET_DEVICES, MAC_DEVICES = 200, 2000, 1000, 2000
SERVICES = ("tiktok", "youtube", "facebook", "instagram", "roblox", "discord", "fortnite", "minecraft")
# the dnsperf identities: (label, source address, EDNS MAC or None, profile under "campus")
SOURCES = (("ip", "127.0.1.1", None, "p001"), ("cidr", "127.2.0.1", None, "p002"),
           ("mac", "127.0.3.1", "02:00:5e:00:00:03", "p003"))
PROPAGATION_DEVICE = ("127.0.4.1", "p004")
NET_PREFIXES = (30, 28, 26, 24, 22, 20)
SETUPS = {"one": "one profile (p001), one device (127.0.0.0/8)",
          "campus": "200 profiles, 5,000 devices, the three sources in three profiles (three views: the answer "
                    "cache holds each name once per profile)",
          "campus-1p": "the same 200 profiles and 5,000 devices, the three sources' devices in p001 (one view, as "
                       "under one: the cost of the bigger tables alone)"}


def log(msg: str) -> None:
    print(f"[campus_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the policies

def campus_profile(i: int):
    from dataclasses import replace
    presets = [p for p in PRESETS if p != "adult"]
    base = profile_from_preset(f"p{i:03d}", presets[i % len(presets)])
    return replace(base, categories=tuple(dict.fromkeys((*base.categories, "ads"))),
                   services=SERVICES[:i % len(SERVICES)],
                   block=(f"only-p{i:03d}.example", f"*.games{i}.example"), allow=(f"*.school{i}.example",))


def campus_schedules(i: int, hour: int) -> list:
    if i % 2:
        return []
    at = [f"{(hour + k) % 24:02d}:00" for k in (3, 5, 6, 8)]   # never in force during a run (timezone UTC)
    name = f"p{i:03d}"
    return [Schedule(profile=name, name="bedtime", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                     start=at[0], end=at[1], action="block_all"),
            Schedule(profile=name, name="homework", days=("mon", "tue", "wed", "thu", "fri"), start=at[2],
                     end=at[3], action="block_categories", categories=("games", "social"))]


def source_profile(which: str, k: int) -> str:
    """The profile of dnsperf source ``k`` under a setup: its own under "campus", p001 under the others."""
    return SOURCES[k][3] if which == "campus" else "p001"


def campus_devices(which: str = "campus") -> list[Device]:
    """5,000 devices: 2,000 by IP, 1,000 by network, 2,000 by MAC, profiles in turn; the bench's own sources
    among them (127.0.0.1 is p000's, so the start-up probe of dns_bench is blocked as under "one")."""
    devices = [Device(name="bench-probe", kind="ip", value="127.0.0.1", profile="p000"),
               Device(name="src-ip", kind="ip", value=SOURCES[0][1], profile=source_profile(which, 0)),
               Device(name="src-net", kind="cidr", value="127.2.0.0/16", profile=source_profile(which, 1)),
               Device(name="src-mac", kind="mac", value=SOURCES[2][2], profile=source_profile(which, 2)),
               Device(name="propagation", kind="ip", value=PROPAGATION_DEVICE[0], profile=PROPAGATION_DEVICE[1])]
    kinds = {"ip": 3, "cidr": 1, "mac": 1}
    for d in range(IP_DEVICES - kinds["ip"]):
        devices.append(Device(name=f"ip{d:04d}", kind="ip", value=f"10.{d // 250}.{d % 250}.{10 + d % 7}",
                              profile=f"p{d % PROFILES:03d}"))
    for d in range(NET_DEVICES - kinds["cidr"]):
        plen = NET_PREFIXES[d % len(NET_PREFIXES)]
        base = (172 << 24) | (16 << 16) | (d << 10)          # 172.16.0.0/12, one 1,024-address block each
        net = base & (0xFFFFFFFF << (32 - plen))
        devices.append(Device(name=f"net{d:04d}", kind="cidr",
                              value=f"{socket.inet_ntoa(struct.pack('>I', net))}/{plen}",
                              profile=f"p{(d * 7) % PROFILES:03d}"))
    for d in range(MAC_DEVICES - kinds["mac"]):
        devices.append(Device(name=f"mac{d:04d}", kind="mac", value=f"02:11:{d >> 8 & 255:02x}:{d & 255:02x}:00:01",
                              profile=f"p{(d * 3) % PROFILES:03d}"))
    return devices


def load_campus(store, hour: int, which: str = "campus") -> dict:
    """The campus set into ``store`` (any backend) through the store's own methods; counts and seconds."""
    t0 = time.monotonic()
    schedules = 0
    for i in range(PROFILES):
        store.add_profile(campus_profile(i))
        for s in campus_schedules(i, hour):
            store.add_schedule(s)
            schedules += 1
    devices = campus_devices(which)
    for d in devices:
        store.add_device(d)
    kinds = {k: sum(1 for d in devices if d.kind == k) for k in ("ip", "cidr", "mac")}
    return {"profiles": PROFILES, "devices": len(devices), "by_kind": kinds, "schedules": schedules,
            "load_s": round(time.monotonic() - t0, 1)}


def load_one(store) -> dict:
    store.add_profile(campus_profile(1))
    store.add_device(Device(name="lan", kind="cidr", value="127.0.0.0/8", profile="p001"))
    return {"profiles": 1, "devices": 1}


def template_store(workdir: Path, which: str, hour: int) -> tuple[Path, dict]:
    from resolver.store.sqlite import open_store
    data = workdir / f"policy-{which}"
    store = open_store(str(data))
    try:
        info = load_one(store) if which == "one" else load_campus(store, hour, which)
    finally:
        store.close()
    return data / "hearth.db", info


# ---------------------------------------------------------------- asking as a device

def query(qid: int, name: str, mac: str | None = None) -> bytes:
    """A query for ``name``; with ``mac``, an OPT record carrying it as EDNS0 option 65001 (dnsmasq --add-mac)."""
    msg = db.a_query(qid, name)
    if mac is None:
        return msg
    opt = struct.pack(">HH", 65001, 6) + bytes.fromhex(mac.replace(":", ""))
    return msg[:10] + b"\x00\x01" + msg[12:] + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, len(opt)) + opt


def ask_from(src: str, port: int, name: str, mac: str | None = None, timeout: float = 1.0):
    """(rcode, A addresses) of a query for ``name`` sent from ``src``; None when nothing came back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((src, 0))
        s.settimeout(timeout)
        qid = random.randrange(65536)
        s.sendto(query(qid, name, mac), (db.HOST, port))
        try:
            while True:
                data = s.recv(4096)
                rid, rcode, addrs = db.a_answers(data)
                if rid == qid:
                    return rcode, addrs
        except OSError:
            return None


def check_identities(port: int, which: str) -> dict:
    """Every source must get its profile's verdict: its own custom block rule blocks, another's does not."""
    out, ok = {}, True
    for k, (label, src, mac, _profile) in enumerate(SOURCES):
        own = f"only-{source_profile(which, k)}.example"
        other = "only-p199.example"
        got_own, got_other = ask_from(src, port, own, mac), ask_from(src, port, other, mac)
        good = bool(got_own and got_own[1] == [db.BLOCKED_A] and got_other and got_other[1] == [db.UPSTREAM_A])
        ok &= good
        out[label] = f"{own}: {got_own}, {other}: {got_other}"
    return {"ok": ok, "replies": out}


# ---------------------------------------------------------------- one measured run

def dnsperf_argv(cpu: int, port: int, src: str, mac: str | None, datafile: Path, *, duration: float | None,
                 passes: int | None, clients: int, outstanding: int, timeout: float) -> list[str]:
    argv = ["taskset", "-c", str(cpu), "dnsperf", "-s", db.HOST, "-p", str(port), "-a", src, "-d", str(datafile),
            "-c", str(clients), "-q", str(outstanding), "-t", f"{timeout:g}"]
    if mac:
        argv += ["-E", "65001:" + mac.replace(":", "")]
    argv += ["-l", f"{duration:g}"] if duration else ["-n", str(passes)]
    return argv


def run_together(procs: db.Procs, argvs: list[list[str]], outdir: Path, tag: str, limit: float) -> list[dict]:
    """Start every dnsperf at once and wait for all; their parsed outputs."""
    started = []
    for k, argv in enumerate(argvs):
        path = outdir / f"dnsperf-{tag}-{k}.txt"
        path.unlink(missing_ok=True)
        started.append((procs.start(argv, log_path=path), path, argv))
    t0 = time.monotonic()
    try:
        for proc, _path, _argv in started:
            proc.wait(max(1.0, limit - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        raise db.BenchError(f"dnsperf did not finish within {limit:.0f} s") from None
    finally:
        for proc, _path, _argv in started:
            procs.stop(proc)
    out = []
    for proc, path, argv in started:
        text = path.read_text(errors="replace")
        res = db.parse_dnsperf(text)
        if proc.returncode != 0 or "qps" not in res:
            raise db.BenchError(f"dnsperf failed (exit {proc.returncode}): {' '.join(argv)}\n{text[-1500:]}")
        out.append(res)
    return out


def measure(procs: db.Procs, engine: db.HearthEngine, which: str, case: str, files: dict, args, cpus) -> dict:
    client_cpu, engine_cpu = cpus
    engine.start(wait=120.0)
    res: dict = {"setup": which, "case": case}
    try:
        res["waited_for_start_up_children_s"] = db.wait_start_up_work(engine.pid)
        res["identities"] = check_identities(engine.port, which)
        if not res["identities"]["ok"]:
            raise db.BenchError(f"{which}: a source did not get its profile's verdict: {res['identities']}")
        datafile = files[case]
        per = max(1, args.outstanding // len(SOURCES))
        for _label, src, mac, _p in SOURCES:   # warm: every (view, name) answered once
            run_together(procs, [dnsperf_argv(client_cpu, engine.port, src, mac, datafile, duration=None, passes=1,
                                              clients=1, outstanding=50, timeout=args.timeout)],
                         engine.workdir, f"warm-{which}-{case}", limit=300)
        argvs = [dnsperf_argv(client_cpu, engine.port, src, mac, datafile, duration=args.duration, passes=None,
                              clients=args.clients, outstanding=per, timeout=args.timeout)
                 for _label, src, mac, _p in SOURCES]
        busy0 = db.core_jiffies(client_cpu), db.core_jiffies(engine_cpu)
        cpu0 = db.cpu_seconds(engine.pid)
        runs = run_together(procs, argvs, engine.workdir, f"{which}-{case}", limit=args.duration + 60)
        cpu1 = db.cpu_seconds(engine.pid)
        busy1 = db.core_jiffies(client_cpu), db.core_jiffies(engine_cpu)
        completed = sum(r.get("completed", 0) for r in runs)
        wall = max(r.get("run_time_s", 0) for r in runs)
        res.update({
            "completed": completed, "qps": round(completed / wall) if wall else None,
            "lost": sum(r.get("lost", 0) for r in runs), "server_cpu_s": round(cpu1 - cpu0, 3),
            "cpu_us_per_query": round(1e6 * (cpu1 - cpu0) / completed, 2) if completed else None,
            "per_source": {s[0]: {k: r.get(k) for k in ("completed", "qps", "lost", "rcodes")}
                           for s, r in zip(SOURCES, runs)},
            "client_core_busy_pct": _busy(busy0[0], busy1[0]), "engine_core_busy_pct": _busy(busy0[1], busy1[1]),
            "spawn_to_run_end_s": round(time.monotonic() - engine.spawned, 1),
            "dnsperf_argv": [a[3:] for a in argvs]})
        if case == "blocked":
            names = [line.split("\t")[0] for line in datafile.read_text().splitlines()][:500]
            res["blocked_check"] = db.check_blocked(engine.port, names)   # from 127.0.0.1: p000 / the one device
    finally:
        code = engine.stop()
        if code not in (0, -signal.SIGTERM, None):
            res["stop_exit_code"] = code
    log(f"{which:6s} {case:7s}: {res.get('cpu_us_per_query')} µs/query, {res.get('qps')} qps, "
        f"lost {res.get('lost')}, engine core {res.get('engine_core_busy_pct')}%, "
        f"client core {res.get('client_core_busy_pct')}%")
    return res


def _busy(a: tuple[int, int], b: tuple[int, int]) -> float | None:
    return round(100 * (b[0] - a[0]) / (b[1] - a[1]), 1) if b[1] > a[1] else None


def in_process(workdir: Path, data: Path, hour: int, rounds: int, queries: int = 10000) -> dict:
    """The cached-hit path alone (``Pipeline.answer_cached``, what the UDP listener calls), without sockets or
    other processes: the three setups' pipelines built side by side in this process (one heap, so allocation
    luck does not favour one), warmed, then timed in rotating order. CPU µs per hit, median of ``rounds``."""
    import profiles_bench as pb
    from resolver.store.sqlite import open_store

    names = [line.split("\t")[0].rstrip(".").lower()
             for line in (data / db.QUERY_FILE).read_text().splitlines() if line]
    names = [n for n in dict.fromkeys(names) if n and all(0 < len(x) < 64 for x in n.split("."))][:queries]
    (workdir / "inproc").mkdir(exist_ok=True)
    index, meta = pb.compile_index(workdir / "inproc")
    pipes = {}
    for which in SETUPS:
        store = open_store(str(workdir / f"inproc-{which}"))
        load_one(store) if which == "one" else load_campus(store, hour, which)
        policy = (store.list_profiles(), store.list_schedules(), store.list_devices())
        store.close()
        p = pb.make_pipeline(index, meta, *policy)
        packets = [(query(j & 0xFFFF, names[j % len(names)], SOURCES[k][2]), SOURCES[k][1])
                   for k in range(len(SOURCES)) for j in range(len(names))]
        pb.run_case(p, packets, "misses")   # every (view, name) answered once, then cached
        hits = packets * 5
        random.Random(1).shuffle(hits)
        pipes[which] = (p, hits)
    runs: dict[str, list[float]] = {w: [] for w in SETUPS}
    order = list(SETUPS)
    for r in range(rounds):
        for which in order[r % len(order):] + order[:r % len(order)]:
            p, hits = pipes[which]
            runs[which].append(round(pb.run_case(p, hits, "hits") * 1e6, 3))
    base = statistics.median(runs["one"])
    return {w: {"us": statistics.median(v), "ratio": round(statistics.median(v) / base, 3), "runs_us": v}
            for w, v in runs.items()}


# ---------------------------------------------------------------- propagation across nodes

def propagation(procs: db.Procs, workdir: Path, upstream_port: int, hour: int, trials: int) -> dict:
    from resolver.store.postgres import PostgresStore
    from tests.pg import PostgresServer

    server = PostgresServer().start()
    nodes: list[tuple[subprocess.Popen, int, Path]] = []
    try:
        url = server.new_database("campus")
        store = PostgresStore(url, node="loader")
        store.migrate()
        try:
            loaded = load_campus(store, hour)
        finally:
            store.close()
        log(f"PostgreSQL: campus set loaded in {loaded['load_s']} s")
        for k, port in enumerate(db.free_ports(3), 1):
            ndir = workdir / f"node{k}"
            ndir.mkdir()
            cfg = ndir / "hearth.yaml"
            cfg.write_text(f"data_dir: {ndir / 'data'}\nstore: {url}\nnode_name: gw{k}\nlog_level: warning\n"
                           f"timezone: UTC\ndns:\n  listen: [\"{db.HOST}:{port}\"]\n"
                           f"  upstreams: [\"udp://{db.HOST}:{upstream_port}\"]\n  rate_limit: {{qps: 0}}\n"
                           "blocking: {starter_lists: false}\n", encoding="utf-8")
            proc = procs.start([sys.executable, "-m", "resolver.cli", "dns", "-c", str(cfg)],
                               log_path=ndir / "node.log", cwd=db.REPO, env=db.hearth_env())
            nodes.append((proc, port, cfg))
        src, profile = PROPAGATION_DEVICE
        deadline = time.monotonic() + 60
        for proc, port, cfg in nodes:
            while ask_from(src, port, "only-p004.example", timeout=0.2) != (0, [db.BLOCKED_A]):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise db.BenchError(f"node {cfg.parent.name} did not come up with the campus policy:\n"
                                        + (cfg.parent / "node.log").read_text(errors="replace")[-2000:])
                time.sleep(0.1)
        results = [_trial(procs, workdir, nodes, trial, None) for trial in range(trials)]
        # the same through the store in this process: the clock starts when the change is committed
        store = PostgresStore(url, node="bench")
        try:
            direct = [_trial(procs, workdir, nodes, trial, store) for trial in range(trials, 2 * trials)]
        finally:
            store.close()
        worst = max(r["nodes_2_3_s"] for r in results)
        return {"loaded": loaded, "cli": results, "store": direct, "worst_from_start_s": worst,
                "median_from_start_s": statistics.median(r["nodes_2_3_s"] for r in results),
                "median_cli_s": statistics.median(r["cli_s"] for r in results),
                "median_from_commit_s": statistics.median(r["nodes_2_3_s"] for r in direct),
                "worst_from_commit_s": max(r["nodes_2_3_s"] for r in direct), "pass": worst <= 2.0}
    finally:
        for proc, _port, _cfg in nodes:
            procs.stop(proc)
        server.destroy()


def _trial(procs: db.Procs, workdir: Path, nodes: list, trial: int, store) -> dict:
    """One change: ``hearth profile set p004 --add-block NAME`` on node 1 (``store`` None: the clock starts with
    the command), or ``store.update_profile`` here (the clock starts when it has committed); then the seconds
    until each node answers NAME blocked for p004's device."""
    from dataclasses import replace
    src, profile = PROPAGATION_DEVICE
    name = f"change-{trial}-{random.randrange(1 << 30):x}.example.org"
    for _proc, port, _cfg in nodes:   # allowed and cached everywhere before the change
        if ask_from(src, port, name) != (0, [db.UPSTREAM_A]):
            raise db.BenchError(f"{name} not answered by the upstream before the change")
    cli = None
    if store is None:
        t0 = time.monotonic()
        cli = procs.start([sys.executable, "-m", "resolver.cli", "profile", "set", profile, "--add-block", name,
                           "-c", str(nodes[0][2])], log_path=workdir / "cli.log", cwd=db.REPO, env=db.hearth_env())
    else:
        current = store.get_profile(profile)
        store.update_profile(replace(current, block=(*current.block, name)))
        t0 = time.monotonic()
    seen: dict[str, float] = {}
    cli_done = None
    while len(seen) < len(nodes) and time.monotonic() - t0 < 30:
        if cli is not None and cli_done is None and cli.poll() is not None:
            cli_done = time.monotonic() - t0
            if cli.returncode != 0:
                raise db.BenchError("hearth profile set failed:\n"
                                    + (workdir / "cli.log").read_text(errors="replace")[-2000:])
        for k, (_proc, port, _cfg) in enumerate(nodes, 1):
            if f"gw{k}" not in seen:
                got = ask_from(src, port, name, timeout=0.5)
                if got is not None and got[1] != [db.UPSTREAM_A]:
                    seen[f"gw{k}"] = time.monotonic() - t0
        time.sleep(0.01)
    if cli is not None:
        cli.wait(30)
        if cli_done is None:
            cli_done = time.monotonic() - t0
    row = {"via": "store" if cli is None else "cli", "name": name, **{k: round(v, 3) for k, v in sorted(seen.items())}}
    if cli_done is not None:
        row["cli_s"] = round(cli_done, 3)
    row["nodes_2_3_s"] = round(max(seen.get("gw2", 99.0), seen.get("gw3", 99.0)), 3)
    log(f"propagation {trial + 1}: {row}")
    return row


# ---------------------------------------------------------------- report

def markdown(report: dict) -> str:
    s = report["summary"]
    lines = [f"# Campus-sized policy: {report['campus']['profiles']} profiles, {report['campus']['devices']} devices "
             f"({report['campus']['by_kind']}) vs one profile and one device", "",
             f"`{report['command']}`; medians of {report['args']['repeat']} runs of {report['args']['duration']} s, "
             "hearth dns pinned to CPU 1, dnsperf (3 processes: IP, network, EDNS0-MAC identities) and the upstream "
             "dnsmasq on CPU 0. Setups: " + "; ".join(f"*{k}*: {v}" for k, v in SETUPS.items()) + ".", "",
             "| case | setup | CPU µs/query (median) | vs one | best run | vs one's best | qps | runs (µs/query) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for case in ("hits", "blocked"):
        for w in SETUPS:
            c = s[case][w]
            verdict = "" if w == "one" else (" ✓" if c["ratio"] <= 1.2 else " ✗ (> 1.2x)")
            lines.append(f"| {case} | {w} | {c['us']:.2f} | {c['ratio']:.2f}x{verdict} | {c['best_us']:.2f} | "
                         f"{c['best_ratio']:.2f}x | {c['qps']:,} | "
                         + ", ".join(f"{u:.2f}" for u in c["runs_us"]) + " |")
    ip = report.get("in_process")
    if ip:
        lines += ["", "In process (the cached-hit path alone, `Pipeline.answer_cached`, the three setups' pipelines "
                  "side by side in one process, median of rotating rounds): " + ", ".join(
                      f"{w} {v['us']:.2f} µs ({v['ratio']:.2f}x)" for w, v in ip.items()) + "."]
    p = report.get("propagation")
    if p:
        lines += ["", f"Propagation, 3 nodes on one PostgreSQL with the campus set ({p['loaded']['load_s']} s to load "
                  f"through the store): `hearth profile set` on node 1 → changed answer on nodes 2 and 3: median "
                  f"{p['median_from_start_s']:.2f} s from starting the command (which itself runs "
                  f"{p['median_cli_s']:.2f} s: Python start-up, config, store), worst {p['worst_from_start_s']:.2f} s "
                  f"of {len(p['cli'])} ({'PASS' if p['pass'] else 'FAIL'}: ≤ 2 s); from the store's commit (the same "
                  f"change made through the store in the bench's process) median {p['median_from_commit_s']:.3f} s, "
                  f"worst {p['worst_from_commit_s']:.3f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=db.DEFAULT_DATA, help="the shared data folder (queries)")
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hits", type=int, default=10000)
    ap.add_argument("--blocked-names", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=3, help="dnsperf -c per source")
    ap.add_argument("--outstanding", type=int, default=510, help="dnsperf -q, shared by the 3 sources")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--trials", type=int, default=5, help="propagation changes")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--in-process", type=int, default=9, metavar="ROUNDS",
                    help="also time the hit path in-process, ROUNDS rotating rounds (0: no)")
    ap.add_argument("--skip-propagation", action="store_true")
    ap.add_argument("--json", type=Path, default=db.REPO / "bench" / "results" / "campus_policy_bench.json")
    args = ap.parse_args(argv)
    for tool in ("dnsmasq", "dnsperf", "taskset"):
        if shutil.which(tool) is None:
            print(f"campus_policy_bench: {tool} not found on PATH", file=sys.stderr)
            return 2
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("campus_policy_bench: needs 2 CPUs", file=sys.stderr)
        return 2
    client_cpu, engine_cpu = cpus[0], cpus[1]

    def _interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    procs = db.Procs()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-campus-bench-"))
    hour = time.gmtime().tm_hour
    report: dict = {"command": "python bench/campus_policy_bench.py " + " ".join(sys.argv[1:] if argv is None
                                                                                 else argv),
                    "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "runs": []}
    try:
        upstream_port, hearth_port = db.free_ports(2)
        db.start_upstream(procs, tmp, client_cpu, upstream_port)
        templates = {}
        for which in SETUPS:
            templates[which], info = template_store(tmp, which, hour)
            report[which] = info
        log(f"policies: {report['one']} / {report['campus']}")
        if not args.skip_cpu:
            lines = db.read_queries(args.data / db.QUERY_FILE, {"A", "AAAA"})
            hits, rest = db.build_sets(lines, args.hits, 20001, 100000)
            hit_names = {n.lower().rstrip(".") for n, _t in hits}
            blocked = db.prepare_blocked(tmp, [(n, t) for n, t in rest if n.lower().rstrip(".") not in hit_names],
                                         args.blocked_names)
            report["compile"] = db.compile_hearth_lists(procs, tmp, engine_cpu, blocked)
            files = {"hits": db.write_queries(tmp / "hits.txt", hits), "blocked": blocked["query_file"]}
            report["sets"] = {"hits": len(hits), "blocked_asked": blocked["query_names"],
                              "blocked_listed": blocked["names_total"]}
            engine = db.HearthEngine(procs, tmp, engine_cpu, hearth_port, upstream_port)
            for r in range(args.repeat):
                for case in ("hits", "blocked"):
                    names = list(SETUPS)
                    order = names[r % len(names):] + names[:r % len(names)]   # who goes first rotates
                    for which in order:
                        engine.store_template = templates[which]
                        engine.blocked = blocked   # the same list and config in both cases: no start-up compile
                        report["runs"].append(measure(procs, engine, which, case, files, args,
                                                      (client_cpu, engine_cpu)))
            summary: dict = {}
            for case in ("hits", "blocked"):
                for w in SETUPS:
                    mine = [x for x in report["runs"] if x["setup"] == w and x["case"] == case]
                    summary.setdefault(case, {})[w] = {
                        "us": statistics.median(x["cpu_us_per_query"] for x in mine),
                        "best_us": min(x["cpu_us_per_query"] for x in mine),
                        "qps": int(statistics.median(x["qps"] for x in mine)),
                        "runs_us": [x["cpu_us_per_query"] for x in mine]}
                base = summary[case]["one"]["us"]
                best = summary[case]["one"]["best_us"]
                for w in SETUPS:
                    summary[case][w]["ratio"] = round(summary[case][w]["us"] / base, 3)
                    summary[case][w]["best_ratio"] = round(summary[case][w]["best_us"] / best, 3)
            report["summary"] = summary
        if args.in_process:
            report["in_process"] = in_process(tmp, args.data, hour, args.in_process)
            log(f"in process: {report['in_process']}")
        if not args.skip_propagation:
            report["propagation"] = propagation(procs, tmp, upstream_port, hour, args.trials)
    except db.BenchError as exc:
        print(f"campus_policy_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=str))
    if "summary" in report:
        text = markdown(report)
        args.json.with_suffix(".md").write_text(text)
        print(text)
    else:
        print(json.dumps(report.get("propagation"), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
