"""Memory after start on an appliance's defaults: `hearth run` (supervisor, DNS engine, web UI) with the
bundled starter lists, against a router's 256 MB budget.

    python bench/rss_bench.py [--queries 2000] [--json]

Starts a fake upstream on 127.0.0.1, `hearth run` on loopback ports with a fresh data_dir (so the
first start compiles the bundled lists), sends queries (half repeated, half distinct names) and
reads VmRSS / RssAnon / RssFile of each process from /proc. Nothing leaves the machine.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.dnsclient import ask  # noqa: E402
from tests.dnsfake import FakeDNS  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mem(pid: int) -> dict:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024.0
    return out


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import yaml

    with tempfile.TemporaryDirectory(prefix="hearth-rss-") as tmp, FakeDNS() as upstream:
        upstream.add("www.example.com.", "www.example.com. 300 IN A 192.0.2.1")
        dns_port, web_port = free_port(), free_port()
        cfg = Path(tmp) / "hearth.yaml"
        cfg.write_text(yaml.safe_dump({
            "data_dir": f"{tmp}/data", "log_level": "warning",
            "dns": {"listen": [f"127.0.0.1:{dns_port}"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
            "web": {"listen": f"127.0.0.1:{web_port}"}}))   # blocking.starter_lists: default (on)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "resolver.cli", "run", "-c", str(cfg)], cwd=str(REPO),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (Path(tmp) / "data" / "engine.json").exists():
                if proc.poll() is not None or time.monotonic() - t0 > 120:
                    raise SystemExit("hearth run did not start")
                time.sleep(0.05)
            ready = time.monotonic() - t0
            for i in range(args.queries):
                ask("www.example.com" if i % 2 else f"n{i}.example.net", "A", dns_port, timeout=2)
            time.sleep(2)   # the web UI imports Flask lazily at its first start
            procs = {"supervisor": proc.pid}
            for child in children(proc.pid):
                line = cmdline(child)
                procs["dns engine" if " dns" in line else "web ui" if " web" in line else line] = child
            result = {"python": sys.version.split()[0], "ready_s": round(ready, 2), "queries": args.queries,
                      "processes": {name: {k: round(v, 1) for k, v in mem(pid).items()}
                                    for name, pid in procs.items()}}
            result["total_rss_mb"] = round(sum(p["VmRSS"] for p in result["processes"].values()), 1)
            result["total_rss_anon_mb"] = round(sum(p.get("RssAnon", 0) for p in result["processes"].values()), 1)
        finally:
            proc.terminate()
            proc.wait(20)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"Python {result['python']}, ready in {result['ready_s']} s (first start: bundled lists compiled), "
              f"{args.queries} queries")
        for name, m in result["processes"].items():
            print(f"  {name:<11} RSS {m['VmRSS']:6.1f} MB (anon {m.get('RssAnon', 0):5.1f}, "
                  f"file {m.get('RssFile', 0):5.1f}), peak {m.get('VmHWM', 0):6.1f} MB")
        print(f"  total RSS {result['total_rss_mb']} MB (private anon {result['total_rss_anon_mb']} MB) "
              f"of a 256 MB router's memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
