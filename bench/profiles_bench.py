#!/usr/bin/env python3
"""Per-query cost of profiles: 20 profiles and 500 devices against one profile, in one run.

dnsperf sends from one address, so it cannot play 500 devices; this benchmark drives the engine's
query path (``Pipeline.answer_cached`` and ``Pipeline.resolve_later``, the functions the UDP
listener calls) in-process, with the real compiled index of the bundled lists, the real profile
policies and client directory, and an upstream stub that answers at once (so misses cost Hearth's
own work only). Both setups run the same queries in the same process, alternating, and the figure
is the ratio of their CPU time per query.

    python bench/profiles_bench.py [--queries 50000] [--repeat 5] [--json out.json]

Cases (each query from a client address chosen round-robin among the 500 devices):

* cached hits: names already answered for that client's profile;
* misses: names never asked before (policy verdict, upstream stub, the profile's copy);
* blocked: names on the bundled adult list, first time for that profile (verdict and synthesized answer).

Single profile: the same 500 client addresses, no devices set up, so every one is in the default profile.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resolver.policy.access import ClientAccess, RateLimitConfig  # noqa: E402
from resolver.engine.cache import AnswerCache, CacheConfig  # noqa: E402
from resolver.engine.localrecords import LocalZone  # noqa: E402
from resolver.engine.pipeline import Pipeline  # noqa: E402
from resolver.policy.profiles import PRESETS, Device, Schedule, profile_from_preset  # noqa: E402
from resolver.engine.querylog import QueryLog, QueryLogConfig  # noqa: E402
from resolver.engine.stats import Stats  # noqa: E402
from resolver.policy.views import PolicySet  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SERVICES = ("tiktok", "youtube", "facebook", "instagram", "roblox", "discord", "fortnite", "minecraft", "zalo",
            "telegram")


class InstantUpstream:
    """Answers every forwarded query at once with A 192.0.2.1 (TTL 3600), built from the query's bytes."""

    def forward(self, packet: bytes, done, question=None) -> None:
        end = packet.index(0, 12) + 5
        qtype = packet[end - 4:end - 2]
        if qtype == b"\x00\x01":
            answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02\x01"
            reply = packet[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + packet[12:end] + answer
        else:
            reply = packet[:2] + b"\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + packet[12:end]
        done(reply, "udp://stub", None)


def compile_index(workdir: Path):
    """The bundled starter lists, compiled by `hearth lists update --offline` into ``workdir``."""
    cfg = workdir / "hearth.yaml"
    cfg.write_text(f"data_dir: {workdir / 'data'}\ndns:\n  upstreams: ['udp://127.0.0.1:9']\n")
    subprocess.run([sys.executable, "-m", "resolver.cli", "lists", "update", "--offline", "--no-notify", "-c",
                    str(cfg)], check=True, cwd=str(REPO), stdout=subprocess.DEVNULL)
    from blocklists.manager import load_index
    return load_index(str(workdir / "data"))


def many_profiles(n_profiles: int, n_devices: int):
    presets = [p for p in PRESETS if p != "default"]
    profiles, schedules, devices = [], [], []
    for i in range(n_profiles):
        base = profile_from_preset(f"p{i:02d}", presets[i % len(presets)])
        from dataclasses import replace
        profiles.append(replace(base, services=SERVICES[:i % len(SERVICES)],
                                block=(f"blocked{i}.example", f"*.games{i}.example"),
                                allow=(f"*.school{i}.example",)))
        schedules.append(Schedule(profile=f"p{i:02d}", name="homework", days=("mon", "tue", "wed", "thu", "fri"),
                                  start="14:00", end="17:00", action="block_services", services=("youtube",)))
        if i % 2:
            schedules.append(Schedule(profile=f"p{i:02d}", name="bedtime", days=("sun", "mon", "tue", "wed", "thu"),
                                      start="21:30", end="06:30", action="block_all"))
    for d in range(n_devices):
        devices.append(Device(name=f"dev{d:03d}", kind="ip", value=client_ip(d), profile=f"p{d % n_profiles:02d}",
                              id=d + 1))
    return profiles, schedules, devices


def client_ip(d: int) -> str:
    return f"10.{d // 250}.{d % 250}.{10 + d % 7}"


def make_pipeline(index, meta, profiles, schedules, devices) -> Pipeline:
    p = Pipeline(access=ClientAccess(["0.0.0.0/0"], RateLimitConfig(qps=0)),
                 cache=AnswerCache(CacheConfig(size=2_000_000)), local=LocalZone([]), upstreams=InstantUpstream(),
                 querylog=QueryLog(QueryLogConfig(enabled=False), None), stats=Stats())
    p.set_policies(PolicySet(p.registry, profiles, devices, schedules, [], index, meta, "Asia/Ho_Chi_Minh"))
    return p


def query(qid: int, name: str) -> bytes:
    wire = b"".join(bytes((len(x),)) + x.encode() for x in name.split(".")) + b"\x00"
    return qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01" + wire + b"\x00\x01\x00\x01" \
        + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"


def run_case(p: Pipeline, packets: list, kind: str) -> float:
    """CPU seconds per query for ``packets`` [(bytes, client)]."""
    sent = []
    send = sent.append

    async def go() -> float:
        gc.collect()
        gc.disable()
        t0 = time.process_time()
        if kind == "hits":
            for data, client in packets:
                if p.answer_cached(data, client, True) is None:
                    raise SystemExit(f"expected a cache hit for {client}")
        else:
            for data, client in packets:
                out = p.answer_cached(data, client, True)
                if out is None:
                    p.resolve_later(data, client, True, send)
            while p.pending:  # safe-search answers run as tasks
                await asyncio.sleep(0)
        took = time.process_time() - t0
        gc.enable()
        return took / len(packets)

    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=50000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profiles", type=int, default=20)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    names = [line.split("\t")[0].rstrip(".").lower()
             for line in (DATA / "queries" / "dnsperf_queries_100k.tsv").read_text().splitlines() if line]
    names = [n for n in dict.fromkeys(names) if n and all(0 < len(x) < 64 for x in n.split("."))]
    adult = [line.strip() for line in (REPO / "blocklists" / "data" / "adult-oisd-nsfw-small.txt").read_text()
             .splitlines() if line.startswith("||")]
    adult = [x[2:].split("^")[0] for x in adult]
    with tempfile.TemporaryDirectory() as tmp:
        index, meta = compile_index(Path(tmp))
        profiles, schedules, devices = many_profiles(args.profiles, args.devices)
        setups = {"one profile": ([], [], []), f"{args.profiles} profiles, {args.devices} devices":
                  (profiles, schedules, devices)}
        results: dict = {label: {"hits": [], "misses": [], "blocked": []} for label in setups}
        clients = [client_ip(d) for d in range(args.devices)]
        for r in range(args.repeat):
            offset = r * args.queries
            for label, (pr, sc, dv) in setups.items():
                p = make_pipeline(index, meta, pr, sc, dv)
                hit_names = names[:2000]
                hits = [(query(j & 0xFFFF, hit_names[j % len(hit_names)]), clients[j % len(clients)])
                        for j in range(args.queries)]
                run_case(p, hits, "misses")  # first round: every (profile, name) answered once, then cached
                miss_names = names[2000 + offset % (len(names) - 2000 - args.queries):][:args.queries]
                misses = [(query(i & 0xFFFF, n), clients[i % len(clients)]) for i, n in enumerate(miss_names)]
                blocked_names = [adult[(offset + i) % len(adult)] for i in range(min(args.queries, len(adult)))]
                blocked = [(query(i & 0xFFFF, n), clients[i % len(clients)]) for i, n in enumerate(blocked_names)]
                results[label]["hits"].append(run_case(p, hits, "hits"))
                results[label]["misses"].append(run_case(p, misses, "misses"))
                results[label]["blocked"].append(run_case(p, blocked, "misses"))
                print(f"round {r + 1} {label}: " + ", ".join(
                    f"{k} {v[-1] * 1e6:.2f} µs" for k, v in results[label].items()), file=sys.stderr)
        del index
    one, many = list(setups)
    print(f"# Profiles: {many} vs {one}\n")
    print(f"`python bench/profiles_bench.py --queries {args.queries} --repeat {args.repeat}`, "
          f"Python {sys.version.split()[0]}, median of {args.repeat} alternating runs, CPU time per query.\n")
    print(f"| case | {one} | {many} | ratio |\n|---|---|---|---|")
    summary = {}
    for case in ("hits", "misses", "blocked"):
        a = statistics.median(results[one][case])
        b = statistics.median(results[many][case])
        summary[case] = {"one": a, "many": b, "ratio": b / a}
        print(f"| {case} | {a * 1e6:.2f} µs | {b * 1e6:.2f} µs | {b / a:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
