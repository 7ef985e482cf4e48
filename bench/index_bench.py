#!/usr/bin/env python3
"""The compiled blocklist index (blocklists/index.py) at about a million names.

Collects every name of the shared lists (plain-domain files, the second field of
hosts files, adblock ``||name^``, wildcard ``*.name``), adds synthetic subdomains of
them up to ``--names`` distinct names, then, each step in a fresh subprocess so the
figures are the index's own:

1. build: add every name to an ``IndexBuilder`` and ``build()`` the file (time, peak
   RSS growth of the builder process, file size, bytes per entry);
2. open: ``BlockIndex.open`` with the file in the page cache and after evicting just
   this file from it (``posix_fadvise DONTNEED``); VmRSS before / after opening and
   after touching every page; the mapping's Pss while a second process maps it too;
3. lookups: µs per ``lookup()`` and ``lookup_wire()`` over 100,000 three-label names,
   hits (listed names) and misses;
4. micro: hash functions per call, and one key search by bisect over the directory
   bucket, by bisect over the whole array and by a pure-Python binary search.

    python bench/index_bench.py [--names 1000000] [--lookups 100000] [--json FILE]

Prints a table and writes JSON to bench/results/index_bench.json (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_JSON = REPO / "bench" / "results" / "index_bench.json"
_VALID = re.compile(r"(?:[a-z0-9_-]{1,63}\.)+[a-z0-9_-]{1,63}")     # two labels or more, as a parser keeps
_TLD = re.compile(r"[a-z0-9-]{2,63}")                                 # adblock ||tld^ (oisd nsfw: porn, xxx...)
_HOSTS_SKIP = {"localhost", "localhost.localdomain", "local", "broadcasthost", "ip6-localhost", "ip6-loopback",
               "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0"}
_SYNTH_PREFIXES = ("www", "cdn", "img", "api", "static", "m", "ads", "track", "media", "login")


def log(msg: str) -> None:
    print(f"[index_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- names


def _names_in(path: Path) -> Iterator[tuple[str, bool]]:
    """(name, subtree) for each rule line of a list file, whatever its syntax."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#!":
                continue
            subtree = False
            if line.startswith("||"):
                end = line.find("^")
                if end < 0 or (len(line) > end + 1 and line[end + 1] != "$"):
                    continue
                if "$" in line[end:]:
                    continue                       # modifiers ($dnsrewrite, $important...): not a plain rule
                name, subtree = line[2:end], True
            elif line.startswith("*."):
                name, subtree = line[2:], True
            else:
                parts = line.split()
                if len(parts) >= 2 and (parts[0][0].isdigit() or ":" in parts[0]):
                    name = parts[1]                # hosts file: address name
                elif len(parts) == 1:
                    name = parts[0]
                else:
                    continue
            name = name.lower().rstrip(".")
            if name in _HOSTS_SKIP or len(name) > 253:
                continue
            if not _VALID.fullmatch(name) and not (line.startswith("||") and _TLD.fullmatch(name)):
                continue
            yield name, subtree


def _list_files(data: Path) -> list[tuple[Path, str]]:
    files = []
    for p in sorted(data.rglob("*")):
        if not p.is_file() or p.suffix in (".md", ".pdf", ".json", ".jsonl", ".go", ".tsv") or "LICENSE" in p.name:
            continue
        if p.name == "SHA256SUMS" or p.parent.name == "safesearch" or p.name.endswith("_expression"):
            continue
        rel = p.relative_to(data)
        if rel.parts[0] == "eval":
            continue  # held apart for measuring accuracy (bench/eval_lists.py), not load filler
        files.append((p, rel.parts[0]))
    return files


def collect(data: Path, target: int, seed: int = 1) -> tuple[list[tuple[str, str, bool]], dict]:
    """Rows (name, category, subtree) with exactly ``target`` distinct names (real ones first)."""
    seen: set[str] = set()
    rows: list[tuple[str, str, bool]] = []
    per_file = {}
    for path, category in _list_files(data):
        n0 = len(rows)
        for name, subtree in _names_in(path):
            if name not in seen:
                seen.add(name)
                rows.append((name, category, subtree))
        per_file[str(path.relative_to(data))] = len(rows) - n0
    real = len(rows)
    if real > target:
        rows = rows[:target]
        real = target
    rng = random.Random(seed)
    base = rows[:real]
    i = 0
    while len(rows) < target:
        name, category, _ = base[i % real]
        new = f"{_SYNTH_PREFIXES[(i // real) % len(_SYNTH_PREFIXES)]}{i // (real * len(_SYNTH_PREFIXES)) or ''}.{name}"
        i += 1
        if len(new) <= 253 and new not in seen:
            seen.add(new)
            rows.append((new, category, rng.random() < 0.5))
    return rows, {"real_names": real, "synthetic_names": len(rows) - real, "files": per_file}


def to_wire(name: str) -> bytes:
    return b"".join(bytes([len(lb)]) + lb.encode() for lb in name.split(".")) + b"\0"


# ---------------------------------------------------------------- /proc


def proc_status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(val.split()[0]) * 1024
    return out


def mapping_usage(path: str) -> dict:
    """Rss and Pss (bytes) of this process's mappings of ``path``, from /proc/self/smaps."""
    rss = pss = 0
    inside = False
    real = os.path.realpath(path)
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(None, 1)[0]
            if "-" in first and not first.endswith(":"):
                inside = line.rstrip("\n").endswith(real)
            elif inside and first == "Rss:":
                rss += int(line.split()[1]) * 1024
            elif inside and first == "Pss:":
                pss += int(line.split()[1]) * 1024
    return {"rss": rss, "pss": pss}


# ---------------------------------------------------------------- workers (run in fresh subprocesses)


def worker_build(rows_path: str, index_path: str) -> dict:
    from blocklists.index_build import IndexBuilder
    before = proc_status()
    b = IndexBuilder()
    t0 = time.perf_counter()
    with open(rows_path, encoding="utf-8") as f:
        for line in f:
            name, category, flag = line.rstrip("\n").split("\t")
            b.add(name, category, subdomains=flag == "1")
    t1 = time.perf_counter()
    stats = b.build(index_path)
    t2 = time.perf_counter()
    after = proc_status()
    return {"add_seconds": t1 - t0, "build_seconds": t2 - t1, "total_seconds": t2 - t0, "stats": stats,
            "rss_before": before["VmRSS"], "peak_rss": after["VmHWM"],
            "peak_rss_growth": after["VmHWM"] - before["VmRSS"]}


def worker_open(index_path: str, cold: bool) -> dict:
    from blocklists.index import BlockIndex
    if cold:
        fd = os.open(index_path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    rss0 = proc_status()
    t0 = time.perf_counter()
    ix = BlockIndex.open(index_path)
    t1 = time.perf_counter()
    rss1 = proc_status()
    mm = ix._mm
    total = 0
    for off in range(0, len(mm), 4096):
        total += mm[off]
    rss2 = proc_status()
    out = {"open_seconds": t1 - t0, "cold": cold, "rss_before": rss0, "rss_after_open": rss1,
           "rss_after_touch": rss2, "rss_added_open": rss1["VmRSS"] - rss0["VmRSS"],
           "rss_added_touch": rss2["VmRSS"] - rss0["VmRSS"], "mapping_alone": mapping_usage(index_path)}
    if not cold:
        # A second process maps and touches the same file: the pages are shared, each one's Pss halves.
        code = (f"import sys\nsys.path.insert(0, {str(REPO)!r})\nfrom blocklists.index import BlockIndex\n"
                f"ix = BlockIndex.open({index_path!r})\nprint(ix.lookup('x.y.z'), flush=True)\n"
                "sys.stdin.readline()\n")
        other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        try:
            other.stdout.readline()
            out["mapping_shared_with_second_process"] = mapping_usage(index_path)
        finally:
            other.stdin.close()
            other.wait(30)
    ix.close()
    return out


def worker_lookup(index_path: str, names_path: str) -> dict:
    from blocklists.index import BlockIndex
    ix = BlockIndex.open(index_path)
    with open(names_path, encoding="utf-8") as f:
        sets = json.load(f)
    out: dict[str, Any] = {}
    for label in ("hit", "miss"):
        names = sets[label]
        wires = [to_wire(n) for n in names]
        results = [ix.lookup(n) for n in names]
        blocked = sum(r is not None for r in results)
        same = all(ix.lookup_wire(w) == r for w, r in zip(wires, results))
        best_str = best_wire = float("inf")
        lookup, lookup_wire = ix.lookup, ix.lookup_wire
        for _ in range(3):
            t0 = time.perf_counter()
            for n in names:
                lookup(n)
            t1 = time.perf_counter()
            for w in wires:
                lookup_wire(w)
            t2 = time.perf_counter()
            best_str = min(best_str, (t1 - t0) / len(names))
            best_wire = min(best_wire, (t2 - t1) / len(names))
        out[label] = {"count": len(names), "blocked": blocked, "wire_equals_str": same,
                      "lookup_us": best_str * 1e6, "lookup_wire_us": best_wire * 1e6}
    out["micro"] = micro(ix, sets["hit"][:20000])
    ix.close()
    return out


def micro(ix: Any, names: list[str]) -> dict:
    """Per-call costs behind a lookup, on the open index."""
    import hashlib
    from bisect import bisect_left

    encoded = [n.encode() for n in names]
    fb = int.from_bytes
    res: dict[str, Any] = {}
    for label, fn in (("blake2b", hashlib.blake2b), ("blake2s", hashlib.blake2s)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for b in encoded:
                fb(fn(b, digest_size=8).digest(), "little")
            best = min(best, time.perf_counter() - t0)
        res[f"hash_{label}_8_ns"] = best / len(encoded) * 1e9
    keys, _midx, _pal, dirv, shift = ix._block
    hs = [fb(hashlib.blake2s(b, digest_size=8).digest(), "little") & -4 for b in encoded]

    def with_dir() -> None:
        for h in hs:
            b = h >> shift
            bisect_left(keys, h, dirv[b], dirv[b + 1])

    def full() -> None:
        for h in hs:
            bisect_left(keys, h)

    def python_search() -> None:
        n = len(keys)
        for h in hs:
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) >> 1
                if keys[mid] < h:
                    lo = mid + 1
                else:
                    hi = mid
    for label, fn in (("bisect_directory", with_dir), ("bisect_whole_array", full), ("python_binary_search",
                                                                                      python_search)):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        res[f"search_{label}_ns"] = best / len(hs) * 1e9
    res["directory_buckets"] = len(dirv) - 1
    res["keys_per_bucket"] = len(keys) / max(1, len(dirv) - 1)
    return res


def run_worker(kind: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", kind, *args],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    if proc.returncode != 0:
        raise SystemExit(f"worker {kind} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- main


def mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark the compiled blocklist index.")
    p.add_argument("--names", type=int, default=1_000_000, help="distinct names in the index (default 1,000,000)")
    p.add_argument("--lookups", type=int, default=100_000, help="lookups per case (default 100,000)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON results")
    p.add_argument("--workdir", type=Path, default=None, help="keep the rows and the index file here")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        kind, *rest = args.worker
        if kind == "build":
            res = worker_build(*rest)
        elif kind == "open":
            res = worker_open(rest[0], rest[1] == "cold")
        else:
            res = worker_lookup(*rest)
        print(json.dumps(res))
        return 0

    if not args.data.is_dir():
        raise SystemExit(f"shared data not found at {args.data} (use --data)")
    tmp_ctx = None
    if args.workdir is None:
        tmp_ctx = tempfile.TemporaryDirectory(prefix="index_bench-")
        work = Path(tmp_ctx.name)
    else:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work)
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()


def _run(args: argparse.Namespace, work: Path) -> int:
    log(f"collecting names from {args.data}")
    t0 = time.perf_counter()
    rows, origin = collect(args.data, args.names)
    log(f"{len(rows):,} distinct names ({origin['real_names']:,} from the lists, "
        f"{origin['synthetic_names']:,} synthetic) in {time.perf_counter() - t0:.1f} s")
    rows_path = work / "rows.tsv"
    with open(rows_path, "w", encoding="utf-8") as f:
        for name, category, subtree in rows:
            f.write(f"{name}\t{category}\t{int(subtree)}\n")
    # Lookup sets: listed three-label names (hits) and three-label names under an unlisted parent (misses).
    rng = random.Random(7)
    three = [r[0] for r in rows if r[0].count(".") == 2]
    hits = [three[rng.randrange(len(three))] for _ in range(args.lookups)] if three else []
    misses = [f"w{i}.nosuch-{rng.randrange(10**9)}.com" for i in range(args.lookups)]
    names_path = work / "lookups.json"
    names_path.write_text(json.dumps({"hit": hits, "miss": misses}))
    index_path = str(work / "blocklist.idx")
    categories = sorted({r[1] for r in rows})
    del rows, three

    log("build (fresh process)")
    build = run_worker("build", str(rows_path), index_path)
    log(f"built in {build['total_seconds']:.2f} s")
    warm = run_worker("open", index_path, "warm")
    cold = run_worker("open", index_path, "cold")
    log("lookups")
    look = run_worker("lookup", index_path, str(names_path))

    st = build["stats"]
    entries = st["entries"] + st["allow_entries"]
    result = {
        "names": args.names, "categories": categories, "origin": origin, "build": build,
        "open_warm": warm, "open_cold": cold, "lookups": look,
        "summary": {
            "entries": entries, "file_bytes": st["bytes"], "bytes_per_entry": st["bytes"] / max(1, entries),
            "add_seconds": build["add_seconds"], "build_seconds": build["build_seconds"],
            "add_and_build_seconds": build["total_seconds"], "builder_peak_rss_growth": build["peak_rss_growth"],
            "open_seconds_warm": warm["open_seconds"], "open_seconds_cold": cold["open_seconds"],
            "rss_added_open": warm["rss_added_open"], "rss_added_touch_all": warm["rss_added_touch"],
            "lookup_hit_us": look["hit"]["lookup_us"], "lookup_miss_us": look["miss"]["lookup_us"],
            "lookup_wire_hit_us": look["hit"]["lookup_wire_us"],
            "lookup_wire_miss_us": look["miss"]["lookup_wire_us"],
        },
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "byteorder": sys.byteorder},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    s = result["summary"]
    shared = warm.get("mapping_shared_with_second_process", {})
    alone = warm["mapping_alone"]
    mic = look["micro"]
    rows_out = [
        ("distinct names / index entries", f"{args.names:,} / {entries:,} ({origin['real_names']:,} from the lists)"),
        ("categories", f"{len(categories)}"),
        ("add() x N", f"{s['add_seconds']:.2f} s ({s['add_seconds'] / max(1, args.names) * 1e6:.2f} µs/name)"),
        ("build() (sort, merge, write, fsync, verify, rename)", f"{s['build_seconds']:.2f} s"),
        ("builder peak RSS growth", mib(s["builder_peak_rss_growth"])),
        ("file size", f"{mib(s['file_bytes'])} ({s['bytes_per_entry']:.2f} bytes/entry)"),
        ("open(), file in page cache", f"{s['open_seconds_warm'] * 1e3:.1f} ms"),
        ("open(), file evicted from page cache", f"{s['open_seconds_cold'] * 1e3:.1f} ms"),
        ("VmRSS added by open() (checksum reads every page)", mib(s["rss_added_open"])),
        ("VmRSS added by open() + touching every page", mib(s["rss_added_touch_all"])),
        ("mapping Rss / Pss, one process", f"{mib(alone['rss'])} / {mib(alone['pss'])}"),
        ("mapping Rss / Pss, two processes", f"{mib(shared.get('rss', 0))} / {mib(shared.get('pss', 0))}"),
        ("lookup() hit, 3 labels", f"{s['lookup_hit_us']:.2f} µs"),
        ("lookup() miss, 3 labels", f"{s['lookup_miss_us']:.2f} µs"),
        ("lookup_wire() hit, 3 labels", f"{s['lookup_wire_hit_us']:.2f} µs"),
        ("lookup_wire() miss, 3 labels", f"{s['lookup_wire_miss_us']:.2f} µs"),
        ("hash: blake2b-8 / blake2s-8 per call", f"{mic['hash_blake2b_8_ns']:.0f} / {mic['hash_blake2s_8_ns']:.0f} ns"),
        ("key search: bisect in directory bucket", f"{mic['search_bisect_directory_ns']:.0f} ns "
                                                    f"({mic['keys_per_bucket']:.1f} keys/bucket)"),
        ("key search: bisect whole array", f"{mic['search_bisect_whole_array_ns']:.0f} ns"),
        ("key search: pure-Python binary search", f"{mic['search_python_binary_search_ns']:.0f} ns"),
    ]
    width = max(len(a) for a, _ in rows_out)
    print(f"| {'measure':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for a, b in rows_out:
        print(f"| {a:<{width}} | {b} |")
    for label in ("hit", "miss"):
        lk = look[label]
        if not lk["wire_equals_str"]:
            print(f"WARNING: lookup_wire and lookup disagree on some {label} names")
        print(f"{label}: {lk['blocked']:,} of {lk['count']:,} names blocked")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
