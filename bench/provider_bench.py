"""Load on one provider process: a simulated fleet polling the feed manifest (conditional GET, mostly 304) and
checking in, at the rate a fleet of N appliances polling every 5 minutes makes; then a burst after a publish.

    python bench/provider_bench.py                               # 10,000 appliances, 60 s, SQLite
    python bench/provider_bench.py --fleet 10000,20000,40000 --duration 30
    python bench/provider_bench.py --database postgresql://USER@127.0.0.1:PORT/DB

It starts `hearth provider run` (this checkout, this interpreter) on a free loopback port in a temporary
folder, enrols --enrol appliances through the API (requests of larger fleets reuse their tokens), publishes a
feed, then for each fleet size runs an open-loop schedule (requests start on time whether or not earlier ones
finished): per poll one GET /feed/manifest.json with If-None-Match and one POST /api/v1/checkin. Reports
p50/p99/max latency, errors, the provider's CPU (from /proc) and the largest fleet with p99 < 100 ms.
Loopback only.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLL = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body=None, headers=None) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cli(config: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "resolver.cli", "provider", *args, "-c", str(config)],
                         capture_output=True, text=True, cwd=REPO, check=True)
    return out.stdout.strip()


def run_load(port: int, tokens: list[str], etag: str, fleet: int, duration: float, workers: int) -> dict:
    rate = fleet / POLL                      # polls per second; each poll = manifest GET + check-in POST
    lat: dict[str, list[float]] = {"manifest": [], "checkin": []}
    errors = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        token = tokens[i % len(tokens)]
        for kind in ("manifest", "checkin"):
            t0 = time.perf_counter()
            try:
                if kind == "manifest":
                    status, _, _ = request(port, "GET", "/feed/manifest.json", headers={"If-None-Match": etag})
                    ok = status in (200, 304)
                else:
                    status, _, _ = request(port, "POST", "/api/v1/checkin",
                                           {"feed_version": 1, "entries": 1000, "last_error": ""},
                                           {"Authorization": f"Bearer {token}"})
                    ok = status == 200
            except OSError:
                ok = False
            took = time.perf_counter() - t0
            with lock:
                lat[kind].append(took)
                if not ok:
                    errors[0] += 1

    start = time.perf_counter()
    n = int(rate * duration)
    with ThreadPoolExecutor(workers) as pool:
        for i in range(n):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i)
    elapsed = time.perf_counter() - start
    every = sorted(lat["manifest"] + lat["checkin"])
    return {"fleet": fleet, "polls_per_s": round(rate, 1), "requests_per_s": round(len(every) / elapsed, 1),
            "requests": len(every), "errors": errors[0],
            "p50_ms": round(statistics.median(every) * 1000, 1) if every else None,
            "p99_ms": round(every[int(len(every) * 0.99) - 1] * 1000, 1) if every else None,
            "max_ms": round(every[-1] * 1000, 1) if every else None,
            "manifest_p99_ms": _p99(lat["manifest"]), "checkin_p99_ms": _p99(lat["checkin"])}


def _p99(values: list[float]):
    v = sorted(values)
    return round(v[int(len(v) * 0.99) - 1] * 1000, 1) if v else None


def burst(port: int, count: int, workers: int) -> dict:
    """After a publish: ``count`` appliances fetch the new manifest (200) at once."""
    times: list[float] = []

    def one(_i: int) -> None:
        t0 = time.perf_counter()
        request(port, "GET", "/feed/manifest.json")
        times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(count)))
    took = time.perf_counter() - t0
    times.sort()
    return {"burst": count, "seconds": round(took, 2), "p50_ms": round(statistics.median(times) * 1000, 1),
            "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fleet", default="10000", help="comma-separated fleet sizes (default 10000)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per fleet size (default 60)")
    ap.add_argument("--enrol", type=int, default=10000, help="appliances enrolled through the API (default 10000)")
    ap.add_argument("--burst", type=int, default=1000, help="manifest fetches right after a publish (default 1000)")
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--database", default="", help="provider database (default: SQLite in the temporary folder)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="provider-bench-"))
    port = free_port()
    config = tmp / "provider.yaml"
    config.write_text(json.dumps({"data_dir": str(tmp / "data"), "database": args.database, "log_level": "warning",
                                  "web": {"listen": f"127.0.0.1:{port}", "threads": 16}}))
    enrol = cli(config, "org", "add", "Bench")
    admin = cli(config, "token", "create", "--user", "bench", "--role", "admin")
    proc = subprocess.Popen([sys.executable, "-m", "resolver.cli", "provider", "run", "-c", str(config)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp / "provider.log", "wb"))
    try:
        for _ in range(300):
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        print(f"enrolling {args.enrol} appliances…", file=sys.stderr)
        t0 = time.perf_counter()

        def enrol_one(i: int) -> str:
            status, body, _ = request(port, "POST", "/api/v1/enrol",
                                      {"token": enrol, "appliance_id": f"bench-appliance-{i:08d}"})
            assert status == 201, body
            return json.loads(body)["token"]

        with ThreadPoolExecutor(16) as pool:
            tokens = list(pool.map(enrol_one, range(args.enrol)))
        enrol_rate = args.enrol / (time.perf_counter() - t0)
        request(port, "POST", "/api/v1/orders", {"authority": "Bench", "reference": "1", "category": "gambling",
                                                  "domains": [f"bench{i}.example" for i in range(1000)]},
                {"Authorization": f"Bearer {admin}"})
        request(port, "POST", "/api/v1/publish", None, {"Authorization": f"Bearer {admin}"})
        etag = request(port, "GET", "/feed/manifest.json")[2].get("ETag", "")
        results = []
        for fleet in [int(x) for x in args.fleet.split(",")]:
            print(f"fleet {fleet}: {fleet / POLL:.1f} polls/s for {args.duration:g}s…", file=sys.stderr)
            c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
            r = run_load(port, tokens, etag, fleet, args.duration, args.workers)
            r["provider_cpu_pct"] = round(100 * (cpu_seconds(proc.pid) - c0) / (time.perf_counter() - w0), 1)
            results.append(r)
        request(port, "POST", "/api/v1/orders", {"authority": "Bench", "reference": "2", "category": "gambling",
                                                  "domains": ["burst.example"]}, {"Authorization": f"Bearer {admin}"})
        request(port, "POST", "/api/v1/publish", None, {"Authorization": f"Bearer {admin}"})
        b = burst(port, args.burst, args.workers)
    finally:
        proc.terminate()
        proc.wait(20)
    ok = [r["fleet"] for r in results if r["p99_ms"] is not None and r["p99_ms"] < 100 and not r["errors"]]
    print(f"\nenrolment: {enrol_rate:.0f} appliances/s; database: {args.database.split('@')[-1] or 'SQLite'}; "
          f"{os.cpu_count()} CPUs\n")
    print("| fleet | polls/s | requests/s | p50 ms | p99 ms | max ms | errors | provider CPU |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['fleet']} | {r['polls_per_s']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} | {r['errors']} | {r['provider_cpu_pct']}% |")
    print(f"\nburst after a publish: {b['burst']} manifest fetches in {b['seconds']} s, p50 {b['p50_ms']} ms, "
          f"p99 {b['p99_ms']} ms")
    print(f"largest fleet measured with p99 < 100 ms: {max(ok) if ok else 'none'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": results, "burst": b, "enrol_per_s": enrol_rate}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
