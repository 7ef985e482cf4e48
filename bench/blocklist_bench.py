#!/usr/bin/env python3
"""Hearth's list pipeline on the real shared lists: compile time and memory, and what the
compiled index costs the DNS engine.

1. Subscribes every list of ../shared/data (stevenblack, hagezi, oisd, blocklistproject,
   ut1; not eval/) as a file:// list, each with the format its authors meant, in one config
   and runs `hearth lists update` on it (real lists only).
2. Adds one list of synthetic names so that the index holds about ``--target`` names
   (1,000,000) and runs `hearth lists update` again.
   Each update: wall time, CPU, peak RSS (/usr/bin/time -v, else the child's rusage),
   approximate phases from its progress lines, index size, bytes per name, entries per list.
3. Starts `hearth dns` (three variants, same config otherwise: no lists, the real lists, the
   1 M index) ``--starts`` times each, and reports the start-up to first answer and the RSS
   after start-up; RSS added = with lists - without.

Compiles and engines run on the second CPU (taskset), the upstream and this script on the
first, all on 127.0.0.1. Prints a Markdown report (progress on stderr) and writes JSON to
bench/results/blocklist_bench.json (and the report beside it as .md). See bench/README.md.

    python bench/blocklist_bench.py [--target 1000000] [--starts 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dns_bench import (  # noqa: E402  (the sibling script, for its process and DNS helpers)
    BLOCKED_A,
    REPO,
    UPSTREAM_A,
    BenchError,
    Procs,
    check_blocked,
    core_jiffies,
    cpu_model,
    dig,
    filler_name,
    first_blocked_answer,
    first_line,
    fmt,
    free_ports,
    hearth_env,
    proc_memory,
    random_name,
    start_upstream,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_JSON = REPO / "bench" / "results" / "blocklist_bench.json"
LIST_DIRS = ("stevenblack", "hagezi", "oisd", "blocklistproject", "ut1")
GOALS = {"rss_added_mb": 40.0, "startup_s": 1.0, "compile_s": 15.0}

# Category of each list: (directory, file name prefix) -> category; the longest prefix wins.
CATEGORIES = {
    ("stevenblack", "hosts"): "ads",                  # unified hosts: adware + malware
    ("stevenblack", "gambling-only"): "gambling",
    ("stevenblack", "porn-only"): "adult",
    ("hagezi", "gambling"): "gambling",
    ("hagezi", "tif"): "malware",
    ("hagezi", "doh-vpn-proxy-bypass"): "bypass",
    ("hagezi", "nosafesearch"): "bypass",
    ("hagezi", "native.tiktok"): "trackers",
    ("oisd", "oisd_small"): "ads",
    ("oisd", "oisd_nsfw_small"): "adult",
    ("blocklistproject", "facebook"): "social",
    ("blocklistproject", "tiktok"): "social",
    ("blocklistproject", "youtube"): "video",
    ("blocklistproject", "fortnite"): "games",
    ("ut1", "agressif"): "violence",
    ("ut1", "chat"): "chat",
    ("ut1", "dating"): "dating",
    ("ut1", "drogue"): "drugs",
    ("ut1", "gambling"): "gambling",
    ("ut1", "games"): "games",
    ("ut1", "hacking"): "hacking",
    ("ut1", "lingerie"): "adult",
    ("ut1", "adult"): "adult",
    ("ut1", "mixed_adult"): "adult",
    ("ut1", "sect"): "sect",
    ("ut1", "social_networks"): "social",
}
# Not subscribed, with the reason (reported).
LEFT_OUT = {
    "ut1/child.domains": "UT1 'child' is an allowlist (sites for children), not a blocklist",
}


def log(msg: str) -> None:
    print(f"[blocklist_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- which lists

def list_format(directory: str, name: str) -> str | None:
    """The format each list is written in, as its authors mean it (docs/list-formats.md and the
    data README): None for what is not a list."""
    if directory == "ut1":
        # UT1 lists are bare names, but each entry covers itself and its subdomains.
        if name.endswith(".domains"):
            return "wildcard"
        return "regex" if name.endswith("_expression") else None    # POSIX ERE, one per line
    if name == "hosts" or name.endswith(".hosts"):
        return "hosts"
    if name.endswith(".adblock.txt"):
        return "adblock"
    if name.endswith((".wildcard.txt", ".domainswild.txt", ".domainswild2.txt", ".onlydomains.txt")):
        # hagezi "onlydomains" and oisd "domainswild2": bare names with wildcard semantics
        return "wildcard"
    if name.endswith(".domains.txt"):
        # Block List Project "-nl" lists stand for each name's subtree (docs/list-formats.md);
        # hagezi domains/ lists write every blocked name out: exact
        return "wildcard" if directory == "blocklistproject" else "domains"
    return None


def category_of(directory: str, name: str) -> str:
    best = ""
    for (d, prefix), _cat in CATEGORIES.items():
        if d == directory and name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return CATEGORIES.get((directory, best), "other")


def list_id(directory: str, name: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", f"{directory}-{name}".lower())[:64]


def discover(data: Path) -> tuple[list[dict], list[dict]]:
    """(subscribed lists, files left out with the reason)."""
    lists, left_out = [], []
    for directory in LIST_DIRS:
        for path in sorted((data / directory).iterdir()):
            rel = f"{directory}/{path.name}"
            if not path.is_file() or path.name.startswith("LICENSE"):
                continue
            fmt_ = list_format(directory, path.name)
            if rel in LEFT_OUT or fmt_ is None:
                left_out.append({"file": rel, "why": LEFT_OUT.get(rel, "not a list this script knows")})
                continue
            lists.append({"id": list_id(directory, path.name), "file": rel, "path": path,
                          "format": fmt_, "category": category_of(directory, path.name),
                          "bytes": path.stat().st_size})
    return lists, left_out


def lists_yaml(lists: list[dict]) -> str:
    if not lists:
        return "blocking: {starter_lists: false}\n"
    out = ["blocking: {starter_lists: false}", "lists:"]
    for entry in lists:
        out.append(f'  - {{id: {entry["id"]}, url: "file://{entry["path"]}", '
                   f'format: {entry["format"]}, category: {entry["category"]}}}')
    return "\n".join(out) + "\n"


def hearth_yaml(data_dir: Path, port: int, upstream_port: int, lists: list[dict]) -> str:
    """The same engine settings as bench/dns_bench.py, plus the lists."""
    return (f"data_dir: {data_dir}\n"
            "log_level: warning\n"
            "dns:\n"
            f'  listen: ["127.0.0.1:{port}"]\n'
            f'  upstreams: ["udp://127.0.0.1:{upstream_port}"]\n'
            "  rate_limit: {qps: 0}\n"
            "cache: {size: 200000}\n" + lists_yaml(lists))


# ---------------------------------------------------------------- compile

_TIME_V = {
    "max_rss_kb": r"Maximum resident set size \(kbytes\): (\d+)",
    "user_s": r"User time \(seconds\): ([\d.]+)",
    "sys_s": r"System time \(seconds\): ([\d.]+)",
}


def run_update(procs: Procs, workdir: Path, cfg: Path, cpu: int, client_cpu: int) -> dict:
    """`hearth lists update --config cfg` on ``cpu``: wall, CPU, peak RSS, timestamped output."""
    time_file = workdir / "time-v.txt"
    base = ["taskset", "-c", str(cpu), sys.executable, "-m", "resolver.cli", "lists", "update",
            "--config", str(cfg)]
    gnu_time = Path("/usr/bin/time")
    argv = ([str(gnu_time), "-v", "-o", str(time_file)] + base) if os.access(gnu_time, os.X_OK) else base
    lines: list[tuple[float, str]] = []
    core0 = (core_jiffies(cpu), core_jiffies(client_cpu))
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=REPO, env=hearth_env(), start_new_session=True)
    procs.live.append(proc)

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append((time.monotonic() - t0, raw.decode("utf-8", "replace").rstrip("\n")))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if proc.returncode is None:
            procs.stop(proc)
        elif proc in procs.live:
            procs.live.remove(proc)
    core1 = (core_jiffies(cpu), core_jiffies(client_cpu))
    thread.join(5)
    res: dict[str, Any] = {"argv": base[3:], "exit_code": proc.returncode, "wall_s": round(wall, 2),
                           "output": [f"{t:6.2f}s {text}" for t, text in lines]}
    if time_file.exists():
        text = time_file.read_text(errors="replace")
        for key, pattern in _TIME_V.items():
            m = re.search(pattern, text)
            if m:
                res[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
        res["rss_source"] = "/usr/bin/time -v"
    if "max_rss_kb" not in res:
        res["max_rss_kb"] = usage.ru_maxrss
        res["user_s"], res["sys_s"] = round(usage.ru_utime, 2), round(usage.ru_stime, 2)
        res["rss_source"] = "wait4 rusage of the update process"
    cpu_s = res.get("user_s", 0) + res.get("sys_s", 0)
    res["cpu_s"] = round(cpu_s, 2)
    # Noise: what else ran on the two cores meanwhile (another user's tests show up here).
    tick = os.sysconf("SC_CLK_TCK")
    (b0, _), (b1, _) = core0[0], core1[0]
    res["engine_core_other_pct"] = round(max(0.0, 100 * ((b1 - b0) / tick - cpu_s) / wall), 1) if wall else None
    (c0, _), (c1, _) = core0[1], core1[1]
    res["client_core_busy_pct"] = round(100 * (c1 - c0) / tick / wall, 1) if wall else None
    res.update(phases(lines))
    if proc.returncode != 0:
        raise BenchError(f"hearth lists update failed (exit {proc.returncode}):\n"
                         + "\n".join(text for _t, text in lines[-20:]))
    return res


def phases(lines: list[tuple[float, str]]) -> dict:
    """Approximate phases of an update from its progress lines (seconds)."""
    out: dict[str, Any] = {}
    downloads = [t for t, text in lines if ": downloading " in text]
    parsed = [(t, float(m.group(1))) for t, text in lines
              if (m := re.search(r": \d+ entries .* in ([\d.]+)s$", text))]
    built = [float(m.group(1)) for _t, text in lines if (m := re.search(r"^index: .* built in ([\d.]+)s", text))]
    if downloads:
        out["first_output_s"] = round(downloads[0], 2)   # interpreter start-up, imports, config
    if downloads and parsed:
        # every list is fetched and checked (parsed once) before the compile parses it again
        out["fetch_and_check_s"] = round(parsed[0][0] - parsed[0][1] - downloads[0], 2)
        out["parse_and_add_s"] = round(sum(p for _t, p in parsed), 2)
    if built:
        out["index_build_s"] = built[0]
    return out


def compile_variant(procs: Procs, workdir: Path, lists: list[dict], cpu: int, client_cpu: int,
                    ports: tuple[int, int]) -> dict:
    workdir.mkdir()
    cfg = workdir / "hearth.yaml"
    cfg.write_text(hearth_yaml(workdir / "data", ports[0], ports[1], lists), encoding="utf-8")
    res = run_update(procs, workdir, cfg, cpu, client_cpu)
    lists_dir = workdir / "data" / "lists"
    index = lists_dir / "index.bin"
    res["index_bytes"] = index.stat().st_size
    meta = json.loads((lists_dir / "status.json").read_text())
    res["lists"] = {k: {"entries": v.get("entries"), "invalid": v.get("invalid"), "skipped": v.get("skipped"),
                        "error": v.get("error")} for k, v in meta.items()}
    m = [re.search(r"index: (\d+) names", text) for text in res["output"]]
    names = [int(x.group(1)) for x in m if x]
    res["index_names"] = names[0] if names else None
    res["bytes_per_name"] = round(res["index_bytes"] / names[0], 2) if names and names[0] else None
    res["list_entries_total"] = sum(v["entries"] or 0 for v in res["lists"].values())
    res["lists_dir"] = str(lists_dir)
    return res


# ---------------------------------------------------------------- engines

def start_engine(procs: Procs, rundir: Path, cpu: int, port: int, upstream_port: int, lists: list[dict],
                 lists_dir: Path | None, probe: str, want: str, checks: dict | None) -> dict:
    """One start of `hearth dns`: seconds to the first A ``want`` answer for ``probe``, RSS then
    and 1 s later, and (``checks``) a few answers; stopped afterwards."""
    rundir.mkdir(parents=True)
    data = rundir / "data"
    if lists_dir is not None:
        (data / "lists").mkdir(parents=True)
        for name in ("index.bin", "index.json", "status.json"):
            shutil.copy2(lists_dir / name, data / "lists" / name)
    cfg = rundir / "hearth.yaml"
    cfg.write_text(hearth_yaml(data, port, upstream_port, lists), encoding="utf-8")
    argv = ["taskset", "-c", str(cpu), sys.executable, "-m", "resolver.cli", "dns", "-c", str(cfg)]
    log_path = rundir / "server.log"
    spawned = time.monotonic()
    proc = procs.start(argv, log_path=log_path, cwd=REPO, env=hearth_env())
    res: dict[str, Any] = {}
    try:
        try:
            ready = first_blocked_answer(proc, port, probe, spawned, 60.0, want=want)
        except BenchError as exc:
            raise BenchError(f"hearth dns: {exc}\n{log_path.read_text(errors='replace')[-2000:]}") from None
        res["first_answer_s"] = ready["seconds"]
        res["early_other_replies"] = ready["other_reply_count"]
        res["rss_at_first_answer_kb"] = proc_memory(proc.pid)
        time.sleep(1.0)
        res["rss_kb"] = proc_memory(proc.pid)
        if checks:
            res["checks"] = run_checks(port, checks)
    finally:
        alive = proc.poll() is None
        code = procs.stop(proc)
        if not alive:
            res["error"] = f"hearth dns exited (code {code}):\n{log_path.read_text(errors='replace')[-2000:]}"
    text = log_path.read_text(errors="replace").splitlines()
    warnings = [line for line in text if " WARNING " in line or " ERROR " in line or "Traceback" in line]
    if warnings:
        res["server_warnings"] = warnings[:5]
    return res


def run_checks(port: int, checks: dict) -> dict:
    """Blocked names must get A 0.0.0.0, unlisted ones the upstream's address."""
    out: dict[str, Any] = {"ok": True}
    blocked = check_blocked(port, checks["blocked"])
    out["blocked"] = f"{blocked['blocked_ok']}/{blocked['asked']} A {BLOCKED_A}"
    if not blocked["ok"]:
        out["ok"] = False
        out["blocked_wrong"] = blocked["examples"]
    for name in checks["unlisted"]:
        reply = dig(port, name, "A")
        got = f"{reply['status']} {'; '.join(reply['answers'])}"
        out[f"unlisted {name}"] = got
        if reply["status"] != "NOERROR" or not any(a.split()[-1] == UPSTREAM_A for a in reply["answers"]):
            out["ok"] = False
    return out


def probe_names(lists: list[dict], synthetic_names: int) -> dict:
    """Names to probe: the first rule of each real list (and a subdomain of it for the subtree
    formats), a synthetic name, and unlisted names."""
    sys.path.insert(0, str(REPO))
    from blocklists.parsers import parse_file

    blocked, subtree = [], []
    for entry in lists:
        rule = next(parse_file(entry["path"], entry["format"]), None)
        if rule is None or rule.regex is not None:
            continue
        blocked.append(rule.name)
        if rule.subdomains:
            subtree.append("hearth-bench-sub." + rule.name)
    synthetic = [filler_name(0), filler_name(synthetic_names - 1)] if synthetic_names else []
    return {"real": blocked, "subtree": subtree, "synthetic": synthetic,
            "unlisted": [random_name().rstrip("."), "hearth-bench-unlisted.example.org"]}


# ---------------------------------------------------------------- report

def mb(kb: float | None) -> float | None:
    return None if kb is None else kb / 1024


def verdict(value: float | None, goal: float) -> str:
    return "n/a" if value is None else ("PASS" if value <= goal else "FAIL")


def markdown(report: dict) -> str:
    meta, comp, eng, goals = report["meta"], report["compile"], report["engines"], report["goals"]
    lines = [
        f"# Hearth blocklist pipeline benchmark ({meta['date']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"- Hearth: {meta['hearth']} (git {meta['git']}); Python {meta['python']}; {meta['host']}",
        (f"- Lists: {len(report['lists'])} files from `{meta['data']}` ({meta['list_bytes'] / 1e6:.1f} MB), "
         f"each subscribed as `file://` with its own format and category; left out: "
         + ("; ".join(f"`{x['file']}` ({x['why']})" for x in report["left_out"]) or "none")),
        (f"- Synthetic: {meta['synthetic_names']:,} names (`{filler_name(0)}` ...) in one more `domains` "
         f"list, to reach --target {meta['target']:,} index entries"),
        (f"- Pinning: `lists update` and `hearth dns` on CPU {meta['engine_cpu']}; this script and the "
         f"upstream dnsmasq on CPU {meta['client_cpu']}. Load average at start {meta['loadavg_start']}, "
         f"at end {meta['loadavg_end']}"),
        "",
        "## `hearth lists update`",
        "",
        ("| index | lists | list entries | index names | wall s | CPU s | peak RSS MB | index MB | bytes/name "
         "| fetch+check s | parse+add s | build s | other load on its core |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("real", "real lists"), ("full", f"real + synthetic (~{meta['target'] / 1e6:g} M)")):
        c = comp.get(key)
        if not c:
            continue
        lines.append(
            f"| {label} | {len(c['lists'])} | {c['list_entries_total']:,} | {fmt(c['index_names'], ',')} "
            f"| {c['wall_s']:.2f} | {c['cpu_s']:.2f} | {mb(c['max_rss_kb']):.0f} | {c['index_bytes'] / 1e6:.2f} "
            f"| {fmt(c['bytes_per_name'], '.2f')} | {fmt(c.get('fetch_and_check_s'), '.2f')} "
            f"| {fmt(c.get('parse_and_add_s'), '.2f')} | {fmt(c.get('index_build_s'), '.2f')} "
            f"| {fmt(c.get('engine_core_other_pct'), '.0f', '%')} |")
    lines += [
        "",
        ("peak RSS: " + (comp.get("full") or comp.get("real") or {}).get("rss_source", "") + ". Phases are read "
         "off the update's progress lines: fetch+check = copying every file:// list beside its last good "
         "copy and parsing it once to check it; parse+add = the per-list times it prints (parsing again and "
         "adding to the builder); build = sort, write, verify, rename. The rest of the wall time is "
         "interpreter start-up, imports and status files. other load = the core's busy time not spent "
         "by the update (noise from other processes)."),
        "",
        "## `hearth dns` on the index",
        "",
        ("| engine | index names | start-ups | start-up to first answer s (median, min-max) "
         "| RSS MB (anon + file) | RSS added MB | answers |"),
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    base = eng.get("none", {})
    for key, label in (("none", "no lists"), ("real", "real lists"), ("full", "real + synthetic")):
        e = eng.get(key)
        if not e:
            continue
        added = e.get("rss_added_kb")
        anon = "" if e.get("rss_anon_added_kb") is None else f" (anon {mb(e['rss_anon_added_kb']):+.1f})"
        checks = e.get("checks_ok")
        lines.append(
            f"| {label} | {fmt(e.get('index_names'), ',') if key != 'none' else '-'} | {e['starts']} "
            f"| {fmt(e.get('first_answer_s'), '.2f')} ({fmt(e.get('first_answer_min_s'), '.2f')}-"
            f"{fmt(e.get('first_answer_max_s'), '.2f')}) "
            f"| {fmt(mb(e.get('rss_kb')), '.1f')} ({fmt(mb(e.get('rss_anon_kb')), '.1f')} + "
            f"{fmt(mb(e.get('rss_file_kb')), '.1f')}) "
            f"| {fmt(mb(added), '+.1f') + anon if key != 'none' else '-'} "
            f"| {'n/a' if checks is None else 'right' if checks else 'WRONG (see notes)'} |")
    lines += [
        "",
        ("start-up = from spawning `taskset ... python -m resolver.cli dns` to the first UDP reply that "
         "holds A 0.0.0.0 for a listed name (no lists: the upstream's A for that name), asked every 10 ms; "
         "the index is already compiled and in the page cache. RSS = VmRSS from /proc/PID/status 1 s after "
         "that answer, median over the start-ups; file = mapped file pages (the index is mmap-ed: shared "
         "page cache, counted in VmRSS once touched), anon = private memory. RSS added = this engine - "
         f"the no-lists engine ({fmt(mb(base.get('rss_kb')), '.1f')} MB). answers: listed names (the first "
         "rule of each list, a subdomain of each subtree rule, synthetic names) A 0.0.0.0, unlisted names "
         "the upstream's address."),
        "",
        "## Goals (1 M names)",
        "",
        "| goal | measured | |",
        "|---|---:|---|",
    ]
    for g in goals:
        lines.append(f"| {g['goal']} | {g['measured']} | {g['verdict']} |")
    if report.get("notes"):
        lines += ["", "Notes:", *[f"- {n}" for n in report["notes"]]]
    lines += ["", "## Entries per list", "",
              "| list | file | format | category | entries | invalid | skipped |",
              "|---|---|---|---|---:|---:|---:|"]
    per = (comp.get("full") or comp.get("real") or {}).get("lists", {})
    files = {x["id"]: x for x in report["lists"]}
    for list_id_, st in per.items():
        info = files.get(list_id_, {"file": "(synthetic)", "format": "domains", "category": "synthetic"})
        skipped = sum((st.get("skipped") or {}).values())
        lines.append(f"| {list_id_} | `{info['file']}` | {info['format']} | {info['category']} "
                     f"| {fmt(st.get('entries'), ',')} | {fmt(st.get('invalid'), ',')} | {skipped:,} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Compile time and memory of Hearth's list pipeline on the shared "
                                "lists, and the index's cost to the DNS engine (127.0.0.1 only).")
    p.add_argument("--target", type=int, default=1000000,
                   help="index entries to reach with synthetic names (default 1000000; 0: real lists only)")
    p.add_argument("--starts", type=int, default=3, help="engine start-ups per variant, median shown (default 3)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data directory (default {DEFAULT_DATA})")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, indexes, logs)")
    args = p.parse_args(argv)
    if args.starts < 1 or args.target < 0:
        p.error("--starts must be positive and --target not negative")
    return args


def summarise_engine(starts: list[dict], index_names: int | None) -> dict:
    ok = [s for s in starts if "first_answer_s" in s and not s.get("error")]
    out: dict[str, Any] = {"starts": len(ok), "index_names": index_names}
    if ok:
        firsts = [s["first_answer_s"] for s in ok]
        out["first_answer_s"] = statistics.median(firsts)
        out["first_answer_min_s"], out["first_answer_max_s"] = min(firsts), max(firsts)
        for key, field in (("rss_kb", "VmRSS"), ("rss_anon_kb", "RssAnon"), ("rss_file_kb", "RssFile")):
            vals = [s["rss_kb"][field] for s in ok if field in s.get("rss_kb", {})]
            out[key] = statistics.median(vals) if vals else None
    checks = [s["checks"]["ok"] for s in ok if "checks" in s]
    out["checks_ok"] = all(checks) if checks else None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [tool for tool in ("dnsmasq", "dig", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"blocklist_bench: required tool(s) not found on PATH: {', '.join(missing)}", file=sys.stderr)
        return 2
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("blocklist_bench: needs at least 2 CPUs", file=sys.stderr)
        return 2
    if not all((args.data / d).is_dir() for d in LIST_DIRS):
        print(f"blocklist_bench: list directories {', '.join(LIST_DIRS)} not all found under {args.data}",
              file=sys.stderr)
        return 2
    client_cpu, engine_cpu = cpus[0], cpus[1]
    os.sched_setaffinity(0, {client_cpu})  # this script's probing never competes with the engine

    def _interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)

    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-blocklist-bench-"))
    started = time.monotonic()
    loadavg_start = Path("/proc/loadavg").read_text().split()[:3]
    notes: list[str] = []
    try:
        upstream_port, port = free_ports(2)
        log(f"ports: upstream {upstream_port}, hearth {port}; temp dir {tmp}")
        start_upstream(procs, tmp, client_cpu, upstream_port)
        lists, left_out = discover(args.data)
        log(f"{len(lists)} lists ({sum(x['bytes'] for x in lists) / 1e6:.1f} MB); left out: "
            + ", ".join(x["file"] for x in left_out))

        compiled: dict[str, dict] = {}
        log("lists update: real lists only ...")
        compiled["real"] = compile_variant(procs, tmp / "compile-real", lists, engine_cpu, client_cpu,
                                           (port, upstream_port))
        c = compiled["real"]
        log(f"  {fmt(c['index_names'], ',')} names in {c['wall_s']:.1f} s, peak RSS {mb(c['max_rss_kb']):.0f} MB")
        synthetic = max(0, args.target - (c["index_names"] or 0))
        full_lists = list(lists)
        if synthetic:
            path = tmp / "synthetic.txt"
            with open(path, "w", encoding="ascii") as fh:
                for start in range(0, synthetic, 100000):
                    fh.write("".join(filler_name(i) + "\n" for i in range(start, min(start + 100000, synthetic))))
            full_lists.append({"id": "synthetic", "file": "(synthetic)", "path": path, "format": "domains",
                               "category": "synthetic", "bytes": path.stat().st_size})
            log(f"lists update: real lists + {synthetic:,} synthetic names ...")
            compiled["full"] = compile_variant(procs, tmp / "compile-full", full_lists, engine_cpu, client_cpu,
                                               (port, upstream_port))
            c = compiled["full"]
            log(f"  {fmt(c['index_names'], ',')} names in {c['wall_s']:.1f} s, peak RSS "
                f"{mb(c['max_rss_kb']):.0f} MB")
        for key, c in compiled.items():
            failed = {k: v["error"] for k, v in c["lists"].items() if v.get("error")}
            if failed:
                notes.append(f"{key}: lists with errors: {failed}")
            if (c.get("engine_core_other_pct") or 0) > 10:
                notes.append(f"compile {key}: its core was {c['engine_core_other_pct']:.0f}% busy with other "
                             "processes meanwhile: the wall time is inflated")

        probes = probe_names(lists, synthetic)
        variants = [("none", [], None), ("real", lists, compiled["real"])]
        if "full" in compiled:
            variants.append(("full", full_lists, compiled["full"]))
        probe = probes["real"][0]
        engines: dict[str, dict] = {}
        all_starts: dict[str, list[dict]] = {}
        for rep in range(args.starts):
            for key, vlists, comp in variants:
                checks = None
                if rep == 0 and key != "none":
                    checks = {"blocked": probes["real"] + probes["subtree"]
                              + (probes["synthetic"] if key == "full" else []),
                              "unlisted": probes["unlisted"]}
                log(f"hearth dns, {key} (start {rep + 1}/{args.starts}) ...")
                res = start_engine(procs, tmp / f"engine-{key}-{rep + 1}", engine_cpu, port, upstream_port,
                                   vlists, Path(comp["lists_dir"]) if comp else None, probe,
                                   UPSTREAM_A if key == "none" else BLOCKED_A, checks)
                all_starts.setdefault(key, []).append(res)
                log(f"  first answer {fmt(res.get('first_answer_s'), '.2f')} s, RSS "
                    f"{fmt(mb(res.get('rss_kb', {}).get('VmRSS')), '.1f')} MB"
                    + ("" if "checks" not in res else f", answers {'right' if res['checks']['ok'] else 'WRONG'}"))
                if res.get("error"):
                    notes.append(f"engine {key} start {rep + 1}: {res['error']}")
                if "checks" in res and not res["checks"]["ok"]:
                    notes.append(f"engine {key}: wrong answers: {res['checks']}")
                if res.get("early_other_replies"):
                    notes.append(f"engine {key} start {rep + 1}: {res['early_other_replies']} replies before the "
                                 "expected one (answering before the lists were in force)")
        for key, _vlists, comp in variants:
            engines[key] = summarise_engine(all_starts[key], comp["index_names"] if comp else None)
        for key in ("real", "full"):
            e, base = engines.get(key), engines["none"]
            if e and e.get("rss_kb") is not None and base.get("rss_kb") is not None:
                e["rss_added_kb"] = e["rss_kb"] - base["rss_kb"]
                if e.get("rss_anon_kb") is not None and base.get("rss_anon_kb") is not None:
                    e["rss_anon_added_kb"] = e["rss_anon_kb"] - base["rss_anon_kb"]

        top = "full" if "full" in compiled else "real"
        c, e = compiled[top], engines.get(top, {})
        n = f"{fmt(c['index_names'], ',')} names"
        added = mb(e.get("rss_added_kb"))
        goals = [
            {"goal": f"RSS added ≤ {GOALS['rss_added_mb']:g} MB ({n})", "measured": fmt(added, ".1f", " MB"),
             "verdict": verdict(added, GOALS["rss_added_mb"]), "value": added},
            {"goal": f"start-up to first answer ≤ {GOALS['startup_s']:g} s ({n})",
             "measured": fmt(e.get("first_answer_s"), ".2f", " s"),
             "verdict": verdict(e.get("first_answer_s"), GOALS["startup_s"]), "value": e.get("first_answer_s")},
            {"goal": f"compile ≤ {GOALS['compile_s']:g} s ({n}, `lists update` wall)",
             "measured": fmt(c["wall_s"], ".1f", " s"), "verdict": verdict(c["wall_s"], GOALS["compile_s"]),
             "value": c["wall_s"]},
        ]
        if c.get("index_names") and c["index_names"] < 0.9 * args.target:
            notes.append(f"the index holds {c['index_names']:,} names, short of --target {args.target:,}")

        git = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=False).stdout.strip()
        report = {
            "meta": {
                "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "hearth": first_line([sys.executable, "-m", "resolver.cli", "version"]),
                "git": git + ("+uncommitted changes" if dirty else ""),
                "python": platform.python_version(),
                "host": f"{platform.system()} {platform.release()}, {cpu_model()}, {os.cpu_count()} CPUs",
                "data": str(args.data), "target": args.target, "synthetic_names": synthetic,
                "list_bytes": sum(x["bytes"] for x in lists), "starts": args.starts,
                "engine_cpu": engine_cpu, "client_cpu": client_cpu,
                "loadavg_start": " ".join(loadavg_start),
                "loadavg_end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
                "elapsed_s": round(time.monotonic() - started, 1),
            },
            "lists": [{k: (str(v) if isinstance(v, Path) else v) for k, v in x.items()} for x in lists],
            "left_out": left_out,
            "compile": compiled,
            "engines": engines,
            "engine_starts": all_starts,
            "probes": probes,
            "goals": goals,
            "notes": notes,
        }
        text = markdown(report)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        args.json.with_suffix(".md").write_text(text, encoding="utf-8")
        print(text)
        log(f"wrote {args.json} and {args.json.with_suffix('.md')} in {report['meta']['elapsed_s']} s")
        return 0
    except BenchError as exc:
        print(f"blocklist_bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("blocklist_bench: interrupted; stopping every process it started", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
