#!/usr/bin/env python3
"""Hearth vs dnsmasq vs Unbound, side by side, in one run.

Starts an upstream dnsmasq that answers every name itself (no cache), then for
each case starts a fresh engine under test (Hearth as installed: query log,
profiles with IP, CIDR and MAC devices, schedules and bypass prevention on;
dnsmasq and Unbound as caching forwarders; the order rotates on --repeat),
drives it with dnsperf and reads the engine's CPU time from /proc. Everything listens on and talks to 127.0.0.1
only. Prints a Markdown report on stdout (progress goes to stderr) and writes
the same data as JSON. See bench/README.md.

Cases: cached hits, cache misses and blocked names (every engine loaded with
the same 1,000,000 blocked names: a compiled Hearth list, a dnsmasq
--addn-hosts file, Unbound local-data; also their RSS and start-up time with
those names).

    python bench/dns_bench.py [--duration 10] [--repeat 1] [--cases hits,misses,blocked]
                              [--blocked-names 1000000] [--json out.json]
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import re
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
QUERY_FILE = Path("queries") / "dnsperf_queries_100k.tsv"
DEFAULT_JSON = REPO / "bench" / "results" / "dns_bench.json"
HOST = "127.0.0.1"  # the only address this benchmark ever talks to

UPSTREAM_A = "192.0.2.1"
UPSTREAM_AAAA = "2001:db8::1"
PROBE_TYPES = ("A", "AAAA", "MX", "PTR", "SRV")
ENGINES = ("hearth", "dnsmasq", "unbound")
CASES = ("cached hits", "cache misses", "blocked names")
CASE_KEYS = {"hits": "cached hits", "misses": "cache misses", "blocked": "blocked names"}
BLOCKED_A = "0.0.0.0"  # how both engines answer a blocked name (Hearth's blocking.mode null; the hosts file)
# Hearth runs its first scheduled `lists update` this long after start-up (resolver/service/server.py,
# _start_scheduler): a child process on the engine's core whose CPU time counts as the engine's.
HEARTH_FIRST_LIST_UPDATE_S = 30.0
_HOST_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$)(?:{_HOST_LABEL}\.)+(?=[a-z0-9_-]*[a-z_-])" + _HOST_LABEL)


def log(msg: str) -> None:
    print(f"[dns_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A problem that ends the benchmark with a clear message."""


# ---------------------------------------------------------------- processes

class Procs:
    """Every process this script starts, so that all of them are stopped in the end."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, argv: list[str], *, log_path: Path | None = None, cwd: Path | None = None,
              env: dict | None = None) -> subprocess.Popen:
        """Start ``argv`` with stdout and stderr to ``log_path`` (or nowhere)."""
        out = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
        try:
            # Own session: a Ctrl-C in the terminal reaches only this script, which then
            # stops the children itself (in the finally blocks).
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=out if out is not None else subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    start_new_session=True)
        finally:
            if out is not None:
                out.close()  # the child has its own copy
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            except ProcessLookupError:
                pass
        if proc in self.live:
            self.live.remove(proc)
        return proc.returncode

    def run_to_end(self, argv: list[str], *, log_path: Path | None = None, cwd: Path | None = None,
                   env: dict | None = None, timeout: float = 600.0) -> dict:
        """Run ``argv`` to its end; exit code, wall seconds and the child's own rusage (wait4:
        peak RSS and CPU of it and of the children it waited for)."""
        t0 = time.monotonic()
        proc = self.start(argv, log_path=log_path, cwd=cwd, env=env)
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    wall = time.monotonic() - t0
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() - t0 > timeout:
                    raise BenchError(f"did not finish within {timeout:.0f} s: {' '.join(argv)}")
                time.sleep(0.02)
        finally:
            if proc.returncode is None:
                self.stop(proc)
            elif proc in self.live:
                self.live.remove(proc)
        return {"exit_code": proc.returncode, "wall_s": round(wall, 3),
                "max_rss_kb": usage.ru_maxrss, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc, timeout=3.0)
            except (OSError, subprocess.SubprocessError) as exc:  # keep going with the others
                log(f"could not stop pid {proc.pid}: {exc}")


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` (all its threads: /proc/PID/stat fields 14+15) and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14, 15 (1-based, after pid and comm)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / tick


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                out.extend(int(c) for c in fh.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def wait_start_up_work(pid: int, limit: float = 60.0) -> float:
    """Wait until ``pid`` has no child process (Hearth compiles its bundled starter lists in a child
    right after start-up: start-up work, not the cost of the queries measured next). Seconds waited."""
    t0 = time.monotonic()
    while children_of(pid) and time.monotonic() - t0 < limit:
        time.sleep(0.05)
    return round(time.monotonic() - t0, 2)


def proc_memory(pid: int) -> dict:
    """VmRSS, VmHWM, RssAnon, RssFile and RssShmem of ``pid`` in kB (from /proc/PID/status)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- DNS helpers

def udp_drops(port: int) -> int:
    """Datagrams dropped so far by the UDP sockets bound to 127.0.0.1:port (full receive buffer)."""
    want = f"0100007F:{port:04X}"
    drops = 0
    try:
        with open("/proc/net/udp", encoding="ascii") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                if fields[1] == want:
                    drops += int(fields[-1])
    except OSError:
        pass
    return drops


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free for both UDP and TCP on 127.0.0.1."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind((HOST, 0))
            held.append(tcp)
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((HOST, port))
            except OSError:
                udp.close()
                continue
            held.append(udp)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def udp_probe(port: int, name: str, timeout: float = 0.3) -> bool:
    """True when an A query for ``name`` sent to 127.0.0.1:port gets any reply."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.strip(".").split("."))
    msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(msg, (HOST, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = s.recv(4096)
                if data[:2] == msg[:2]:
                    return True
        except OSError:  # timeout, or ICMP port unreachable while nothing listens yet
            return False
    return False


def a_query(qid: int, name: str) -> bytes:
    """A query (RD set) for ``name`` with id ``qid``."""
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.strip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + struct.pack("!HH", 1, 1)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length >= 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def a_answers(data: bytes) -> tuple[int, int, list[str]]:
    """(id, rcode, IPv4 addresses of the A records in the answer section) of a reply."""
    qid, flags, qd, an = struct.unpack("!HHHH", data[:8])
    pos = 12
    for _ in range(qd):
        pos = _skip_name(data, pos) + 4
    addrs = []
    for _ in range(an):
        pos = _skip_name(data, pos)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlen
    return qid, flags & 0xF, addrs


def first_blocked_answer(proc: subprocess.Popen, port: int, name: str, spawned: float,
                         wait: float, want: str = BLOCKED_A) -> dict:
    """Ask 127.0.0.1:port for A ``name`` every 10 ms from now on until a reply holds A ``want``
    (0.0.0.0: blocked). Returns seconds from ``spawned`` (time.monotonic() just before the
    spawn) to that reply, and the replies of any other kind seen before it (an engine
    answering before its list is loaded)."""
    other: list[str] = []
    deadline = time.monotonic() + wait
    first_other = None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.01)
        qid = random.randrange(65536)
        sent: set[int] = set()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"exited with code {proc.returncode} while starting")
            qid = (qid + 1) & 0xFFFF
            sent.add(qid)
            try:
                s.sendto(a_query(qid, name), (HOST, port))
            except OSError:
                pass
            t_end = time.monotonic() + 0.01
            while time.monotonic() < t_end:
                try:
                    data = s.recv(4096)
                except OSError:  # timeout, or ICMP port unreachable while nothing listens yet
                    break
                now = time.monotonic()
                try:
                    rid, rcode, addrs = a_answers(data)
                except (struct.error, IndexError):
                    other.append("malformed reply")
                    continue
                if rid not in sent:
                    continue
                if rcode == 0 and want in addrs:
                    return {"seconds": round(now - spawned, 3), "other_replies": other[:5],
                            "other_reply_count": len(other)}
                if len(other) < 1000:
                    other.append(f"rcode {rcode} {' '.join(addrs) or 'no A'}")
                first_other = first_other or now
            if first_other and time.monotonic() - first_other > 5:
                # Both engines load their names before they answer anything: 5 s of answers
                # that are not 0.0.0.0 means the name is not blocked, not that loading is slow.
                raise BenchError(f"answers {name} with {other[-1]}, not A {want} "
                                 f"({len(other)} replies over 5 s)")
    raise BenchError(f"no A {want} answer for {name} within {wait:.0f} s (other replies: {other[:5]})")


def check_blocked(port: int, names: list[str], window: int = 50, timeout: float = 1.0) -> dict:
    """Ask A for every name (``window`` in flight, one retry); count replies that are A 0.0.0.0.
    Returns counts and up to 5 examples of anything else."""
    todo = list(enumerate(names))
    ok = 0
    bad: list[str] = []
    unanswered: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        for attempt in range(2):
            retry = []
            for start in range(0, len(todo), window):
                chunk = dict(todo[start:start + window])
                for i, name in chunk.items():
                    s.sendto(a_query(i & 0xFFFF, name), (HOST, port))
                waiting = {i & 0xFFFF: i for i in chunk}
                while waiting:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        break
                    try:
                        rid, rcode, addrs = a_answers(data)
                    except (struct.error, IndexError):
                        continue
                    i = waiting.pop(rid, None)
                    if i is None:
                        continue
                    if rcode == 0 and addrs == [BLOCKED_A]:
                        ok += 1
                    elif len(bad) < 1000:
                        bad.append(f"{chunk[i]}: rcode {rcode} {' '.join(addrs) or 'no A'}")
                retry += [(i, chunk[i]) for i in waiting.values()]
            todo = retry
            if not todo or attempt == 1:
                unanswered = [name for _i, name in todo]
                break
    return {"asked": len(names), "blocked_ok": ok, "other": len(bad), "unanswered": len(unanswered),
            "ok": ok == len(names), "examples": (bad + [f"{n}: no reply" for n in unanswered])[:5]}


def random_name(kind: str = "A") -> str:
    tag = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    if kind == "PTR":
        return ".".join(str(random.randrange(1, 255)) for _ in range(4)) + ".in-addr.arpa."
    if kind == "SRV":
        return f"_bench{tag}._tcp.example.com."
    return f"bench-{tag}.example.com."


def dig(port: int, name: str, qtype: str) -> dict:
    """Ask 127.0.0.1:port with dig; status, answer records and whether an SOA came along."""
    argv = ["dig", f"@{HOST}", "-p", str(port), "+tries=1", "+time=2", "+noall", "+comments",
            "+answer", "+authority", name, qtype]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
    m = re.search(r"status: (\w+)", out)
    section = ""
    answers: list[str] = []
    soa = False
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = "answer"
        elif line.startswith(";; AUTHORITY SECTION"):
            section = "authority"
        elif line.startswith(";") or not line.strip():
            continue
        else:
            parts = line.split()
            if section == "answer" and len(parts) >= 5:
                answers.append(f"{parts[3]} {' '.join(parts[4:])}")
            elif section == "authority" and len(parts) >= 4 and parts[3] == "SOA":
                soa = True
    return {"status": m.group(1) if m else "NO ANSWER", "answers": answers, "soa": soa}


def cacheable(reply: dict) -> bool:
    """NOERROR with an answer, or a negative answer (NXDOMAIN / no data) carrying an SOA."""
    if reply["status"] == "NOERROR" and reply["answers"]:
        return True
    return reply["status"] in ("NOERROR", "NXDOMAIN") and not reply["answers"] and reply["soa"]


# ---------------------------------------------------------------- dnsperf

_DNSPERF = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "lost_pct": r"Queries lost:\s+\d+ \(([\d.]+)%\)",
    "run_time_s": r"Run time \(s\):\s+([\d.]+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "avg_latency_s": r"Average Latency \(s\):\s+([\d.]+)",
    "min_latency_s": r"Average Latency \(s\):\s+[\d.]+ \(min ([\d.]+)",
    "max_latency_s": r"Average Latency \(s\):.*max ([\d.]+)\)",
    "latency_stddev_s": r"Latency StdDev \(s\):\s+([\d.]+)",
}


def parse_dnsperf(text: str) -> dict:
    res: dict[str, Any] = {}
    for key, pattern in _DNSPERF.items():
        m = re.search(pattern, text)
        if m:
            res[key] = float(m.group(1)) if "." in m.group(1) or key.endswith("_s") else int(m.group(1))
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        res["rcodes"] = {code: int(n) for code, n in re.findall(r"([A-Z]+) (\d+) \(", m.group(1))}
    return res


class Dnsperf:
    def __init__(self, procs: Procs, cpu: int, clients: int, outstanding: int, timeout: float,
                 engine_cpu: int | None = None):
        self.procs, self.cpu, self.engine_cpu = procs, cpu, engine_cpu
        self.clients, self.outstanding, self.timeout = clients, outstanding, timeout

    def argv(self, port: int, datafile: Path, *, duration: float | None = None,
             passes: int | None = None, clients: int | None = None,
             outstanding: int | None = None) -> list[str]:
        argv = ["taskset", "-c", str(self.cpu), "dnsperf", "-s", HOST, "-p", str(port),
                "-d", str(datafile), "-c", str(clients or self.clients),
                "-q", str(outstanding or self.outstanding), "-t", f"{self.timeout:g}"]
        if duration is not None:
            argv += ["-l", f"{duration:g}"]
        if passes is not None:
            argv += ["-n", str(passes)]
        return argv  # no -Q: the query rate is never capped

    def run(self, argv: list[str], limit: float, out_path: Path) -> dict:
        """Run dnsperf to the end; its numbers, plus how busy its core was meanwhile."""
        out_path.unlink(missing_ok=True)
        proc = self.procs.start(argv, log_path=out_path)
        t0 = time.monotonic()
        samples: list[tuple[float, tuple[int, int]]] = []
        engine_samples: list[tuple[float, tuple[int, int]]] = []
        try:
            while proc.poll() is None:
                now = time.monotonic() - t0
                if now > limit:
                    raise BenchError(f"dnsperf did not finish within {limit:.0f} s: {' '.join(argv)}")
                samples.append((now, core_jiffies(self.cpu)))
                if self.engine_cpu is not None:
                    engine_samples.append((now, core_jiffies(self.engine_cpu)))
                time.sleep(0.1)
        finally:
            self.procs.stop(proc)
        text = out_path.read_text(errors="replace")
        if proc.returncode != 0:
            raise BenchError(f"dnsperf failed (exit {proc.returncode}): {' '.join(argv)}\n{text[-2000:]}")
        res = parse_dnsperf(text)
        if "qps" not in res:
            raise BenchError(f"could not read dnsperf's output:\n{text[-2000:]}")
        # Load of the client core (dnsperf, plus the upstream on misses) while queries flow:
        # from 0.3 s after the start (file read) to the end of dnsperf's run time. dnsperf
        # spins while it waits for the last answers, so its own CPU time would overstate it.
        res["client_core_busy_pct"] = busy_pct(samples, res.get("run_time_s", 0))
        if self.engine_cpu is not None:
            # Whole-core load of the engine's core over the same window (the engine, softirq
            # work, and anything else that runs there, e.g. another user's tests).
            res["engine_core_busy_pct"] = busy_pct(engine_samples, res.get("run_time_s", 0))
        return res


def busy_pct(samples: list[tuple[float, tuple[int, int]]], run_time: float) -> float | None:
    """Busy % of a core between the samples taken 0.3 s after the start and ``run_time``."""
    window = [s for t, s in samples if 0.3 <= t <= run_time]
    if len(window) < 5:
        return None
    (b0, t0), (b1, t1) = window[0], window[-1]
    return round(100 * (b1 - b0) / (t1 - t0), 1) if t1 > t0 else None


def core_jiffies(cpu: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:9]]  # user nice system idle iowait irq softirq steal
                return sum(v) - v[3] - v[4], sum(v)
    raise BenchError(f"cpu{cpu} not in /proc/stat")


# ---------------------------------------------------------------- engines

class Engine:
    name = ""

    def __init__(self, procs: Procs, workdir: Path, cpu: int, port: int, upstream_port: int):
        self.procs, self.workdir, self.cpu = procs, workdir, cpu
        self.port, self.upstream_port = port, upstream_port
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0
        # Set for the blocked-names case (see prepare_blocked): the engine loads the blocked names
        # and start() waits for, and times, the first A 0.0.0.0 answer to a blocked name.
        self.blocked: dict | None = None
        self.spawned = 0.0           # time.monotonic() just before the last spawn
        self.ready: dict | None = None

    def argv(self, rundir: Path) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict | None:
        return None

    def log_counters(self) -> dict | None:
        """The engine's query-log counters (written, dropped, pending), or None if it keeps no log."""
        return None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, wait: float = 30.0) -> None:
        self.starts += 1
        rundir = self.workdir / f"{self.name}-{self.starts}"
        rundir.mkdir(parents=True)
        self.log_path = rundir / "server.log"
        argv = ["taskset", "-c", str(self.cpu)] + self.argv(rundir)
        self.ready = None
        self.spawned = time.monotonic()
        self.proc = self.procs.start(argv, log_path=self.log_path, cwd=REPO, env=self.env())
        try:
            if self.blocked is not None:
                try:
                    self.ready = first_blocked_answer(self.proc, self.port, self.blocked["probe"],
                                                      self.spawned, wait)
                except BenchError as exc:
                    raise BenchError(f"{self.name}: {exc}:\n{self.log_tail()}") from None
            else:
                self._wait_ready(wait)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, wait: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with code {self.proc.returncode} while starting:\n"
                                 + self.log_tail())
            if udp_probe(self.port, random_name()):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not answer on {HOST}:{self.port} within {wait:.0f} s:\n"
                         + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = self.procs.stop(self.proc)
        self.proc = None
        return code

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"


class HearthEngine(Engine):
    name = "hearth"
    store_template: Path | None = None  # hearth.db with the policy of setup_hearth_policy

    def argv(self, rundir: Path) -> list[str]:
        cfg = rundir / "hearth.yaml"
        self.control = rundir / "hearth-data" / "hearth.sock"
        cfg.write_text(
            f"data_dir: {rundir / 'hearth-data'}\n"
            "log_level: warning\n"
            "dns:\n"
            f'  listen: ["{HOST}:{self.port}"]\n'
            f'  upstreams: ["udp://{HOST}:{self.upstream_port}"]\n'
            "  rate_limit: {qps: 0}\n"
            "cache: {size: 200000}\n"
            "timezone: UTC\n"
            + (self.blocked["hearth_yaml"] if self.blocked else ""), encoding="utf-8")
        if self.store_template is not None:
            # profiles, devices and schedules made once by setup_hearth_policy (hearth CLI)
            (rundir / "hearth-data").mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.store_template, rundir / "hearth-data" / self.store_template.name)
        if self.blocked:
            # The index compiled once by compile_hearth_lists, copied into this fresh data_dir:
            # the engine opens it at start-up (no compile, the file is in the page cache).
            lists = rundir / "hearth-data" / "lists"
            lists.mkdir(parents=True, exist_ok=True)
            for name in ("index.bin", "index.json", "status.json"):
                shutil.copy2(self.blocked["hearth_lists_dir"] / name, lists / name)
        # The repo's own code: python -m resolver.cli from the repo root, repo first on the path.
        return [sys.executable, "-m", "resolver.cli", "dns", "-c", str(cfg)]

    def env(self) -> dict:
        return hearth_env()

    def log_counters(self) -> dict | None:
        """From the engine's control socket (what `hearth stats` reads)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.control))
            s.sendall(b"stats\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        stats = json.loads(data)["stats"]
        return {k: stats.get(f"querylog_{k}", 0) for k in ("written", "dropped", "pending")}


def thread_cpu(pid: int) -> dict[str, float]:
    """utime+stime of each thread of ``pid`` by thread name (threads of one name summed): the engine's event
    loop (``main``) and its query-log writer (``hearth-querylog``) apart; other threads by their OS name."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = "main" if task == str(pid) else text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def wait_log_written(engine: Engine, limit: float = 60.0) -> float:
    """Wait until the engine has written (or dropped) every query-log entry of the run; the seconds waited.
    The writer works behind the answers (a batch a flush interval): its CPU belongs to the run's queries."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        counters = engine.log_counters()
        if not counters or not counters["pending"]:
            break
        time.sleep(0.25)
    return round(time.monotonic() - t0, 2)


def hearth_env() -> dict:
    """Environment for running the repo's own Hearth: repo first on the path, no $HEARTH_CONFIG."""
    env = dict(os.environ)
    env.pop("HEARTH_CONFIG", None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


DNSMASQ_BASE = ["--conf-file=/dev/null", "--pid-file=", "--log-facility=-", "--keep-in-foreground",
                "--no-resolv", "--no-hosts", "--bind-interfaces", f"--listen-address={HOST}"]


class DnsmasqEngine(Engine):
    name = "dnsmasq"
    cache_size = 150000

    def argv(self, rundir: Path) -> list[str]:
        argv = ["dnsmasq", *DNSMASQ_BASE, f"--port={self.port}",
                f"--server={HOST}#{self.upstream_port}", f"--cache-size={self.cache_size}",
                "--dns-forward-max=1000"]
        if self.blocked:
            argv.append(f"--addn-hosts={self.blocked['hosts_file']}")
        return argv


UNBOUND_DEFAULT_ZONES = ("localhost.", "127.in-addr.arpa.", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                         "0.0.0.0.0.0.0.ip6.arpa.", "onion.", "test.", "invalid.", "home.arpa.", "resolver.arpa.",
                         "service.arpa.", "local.")


class UnboundEngine(Engine):
    """Unbound as a forwarding cache: forward-zone "." to the same upstream, one thread, no
    validator (the upstream's names are not signed), caches big enough for every query set."""
    name = "unbound"

    def argv(self, rundir: Path) -> list[str]:
        conf = rundir / "unbound.conf"
        extra = f'    include: "{self.blocked["unbound_file"]}"\n' if self.blocked else ""
        conf.write_text(
            "server:\n"
            f"    interface: {HOST}\n"
            f"    port: {self.port}\n"
            "    do-ip6: no\n"
            "    num-threads: 1\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    directory: "{rundir}"\n'
            '    pidfile: ""\n'
            '    logfile: ""\n'
            "    use-syslog: no\n"
            "    verbosity: 0\n"
            '    module-config: "iterator"\n'
            "    do-not-query-localhost: no\n"
            "    access-control: 127.0.0.0/8 allow\n"
            "    msg-cache-size: 64m\n"
            "    rrset-cache-size: 128m\n"
            "    num-queries-per-thread: 1024\n"
            "    outgoing-range: 2048\n"
            "    qname-minimisation: no\n"
            "    minimal-responses: yes\n"
            # Unbound answers RFC 6761 / 6762 / AS112 names itself (NXDOMAIN); the other engines
            # forward them, and some are in the query file: let them go to the upstream too.
            "    unblock-lan-zones: yes\n"
            "    insecure-lan-zones: yes\n"
            + "".join(f'    local-zone: "{zone}" nodefault\n' for zone in UNBOUND_DEFAULT_ZONES)
            + extra +
            "remote-control:\n"
            "    control-enable: no\n"
            "forward-zone:\n"
            '    name: "."\n'
            f"    forward-addr: {HOST}@{self.upstream_port}\n", encoding="utf-8")
        return ["unbound", "-d", "-p", "-c", str(conf)]


def start_upstream(procs: Procs, workdir: Path, cpu: int, port: int) -> subprocess.Popen:
    argv = ["taskset", "-c", str(cpu), "dnsmasq", *DNSMASQ_BASE, f"--port={port}",
            "--local-ttl=3600", "--neg-ttl=3600", "--cache-size=0",
            f"--address=/#/{UPSTREAM_A}", f"--address=/#/{UPSTREAM_AAAA}"]
    proc = procs.start(argv, log_path=workdir / "upstream.log", cwd=workdir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"upstream dnsmasq exited with code {proc.returncode}:\n"
                             + (workdir / "upstream.log").read_text(errors="replace")[-2000:])
        if udp_probe(port, random_name()):
            return proc
        time.sleep(0.05)
    raise BenchError("upstream dnsmasq did not answer within 10 s")


# ---------------------------------------------------------------- query sets

def read_queries(path: Path, types: set[str]) -> list[tuple[int, str, str]]:
    """(1-based line number, name, type) of every line whose type is in ``types``."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if len(parts) >= 2 and parts[1].upper() in types:
                out.append((lineno, parts[0], parts[1].upper()))
    return out


def build_sets(lines: list[tuple[int, str, str]], hits_n: int, miss_from: int, miss_to: int
               ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The cached-hit set (first ``hits_n`` distinct lines) and the miss set (lines
    ``miss_from``..``miss_to`` deduplicated, minus anything in the hit set)."""
    seen: set[tuple[str, str]] = set()
    hits: list[tuple[str, str]] = []
    for _n, name, qtype in lines:
        key = (name.lower().rstrip("."), qtype)
        if key not in seen:
            seen.add(key)
            hits.append((name, qtype))
            if len(hits) == hits_n:
                break
    asked = set(seen)
    misses: list[tuple[str, str]] = []
    for n, name, qtype in lines:
        if miss_from <= n <= miss_to:
            key = (name.lower().rstrip("."), qtype)
            if key not in asked:
                asked.add(key)
                misses.append((name, qtype))
    return hits, misses


def write_queries(path: Path, queries: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{name}\t{qtype}\n" for name, qtype in queries), encoding="utf-8")
    return path


def filler_name(i: int) -> str:
    return f"n{i:06d}.filler-{i // 1000}.example"


def prepare_blocked(workdir: Path, hits: list[tuple[str, str]], total: int) -> dict:
    """The blocked-names setup: the distinct A names of the hit set (what dnsperf asks) plus
    synthetic filler names up to ``total``, written as a Hearth ``domains`` list, a dnsmasq
    hosts file (``0.0.0.0 name``) and a dnsperf query file (the A names only)."""
    names: list[str] = []
    seen: set[str] = set()
    skipped = 0
    for name, qtype in hits:
        if qtype != "A":
            continue
        norm = name.lower().rstrip(".")
        if norm in seen:
            continue
        seen.add(norm)
        if _HOST_NAME.fullmatch(norm):  # escapes, IP-like or bad labels: not listable in both engines
            names.append(norm)
        else:
            skipped += 1
    if not names:
        raise BenchError("the hit set holds no A query with a plain host name to block")
    names = names[:total]
    list_file, hosts_file = workdir / "blocked-list.txt", workdir / "blocked-hosts.txt"
    unbound_file = workdir / "blocked-unbound.conf"
    query_file = write_queries(workdir / "blocked-queries.txt", [(n, "A") for n in names])
    fillers = max(0, total - len(names))
    # dnsmasq reads --addn-hosts files after dropping root (user nobody): the file must be
    # world-readable and the temp dir (mkdtemp: 0700) traversable.
    workdir.chmod(0o711)
    with open(list_file, "w", encoding="ascii") as lf, open(hosts_file, "w", encoding="ascii") as hf, \
            open(unbound_file, "w", encoding="ascii") as uf:
        for chunk in range(0, len(names) + fillers, 100000):
            part = [names[i] if i < len(names) else filler_name(i - len(names))
                    for i in range(chunk, min(chunk + 100000, len(names) + fillers))]
            lf.write("\n".join(part) + "\n")
            hf.write("".join(f"{BLOCKED_A} {n}\n" for n in part))
            # local-data alone: a transparent zone per name, so subdomains still go upstream
            uf.write("".join(f'    local-data: "{n}. 3600 IN A {BLOCKED_A}"\n' for n in part))
    hosts_file.chmod(0o644)
    return {
        "names_total": len(names) + fillers, "query_names": len(names), "filler_names": fillers,
        "hit_a_names_not_listable": skipped,
        "list_file": list_file, "hosts_file": hosts_file, "query_file": query_file,
        "unbound_file": unbound_file,
        "probe": names[0],
        "samples": random.Random(7).sample(names, min(20, len(names)))
        + ([filler_name(0), filler_name(fillers - 1)] if fillers else []),
        "hearth_yaml": ("blocking: {starter_lists: false}\n"
                        "lists:\n"
                        f'  - {{id: big, url: "file://{list_file}", format: domains, category: ads}}\n'),
    }


def compile_hearth_lists(procs: Procs, workdir: Path, cpu: int, blocked: dict) -> dict:
    """`hearth lists update` of the blocked list, on the engine core, before any engine starts.
    Sets blocked["hearth_lists_dir"]; returns wall time, CPU, peak RSS and what it reported."""
    cdir = workdir / "hearth-compile"
    cdir.mkdir()
    cfg = cdir / "hearth.yaml"
    cfg.write_text(f"data_dir: {cdir / 'data'}\nlog_level: warning\n" + blocked["hearth_yaml"], encoding="utf-8")
    argv = ["taskset", "-c", str(cpu), sys.executable, "-m", "resolver.cli", "lists", "update",
            "--config", str(cfg)]
    log_path = cdir / "update.log"
    busy0, _ = core_jiffies(cpu)
    res = procs.run_to_end(argv, log_path=log_path, cwd=REPO, env=hearth_env(), timeout=900)
    busy1, _ = core_jiffies(cpu)
    if res["wall_s"]:  # the core's load besides the update (other processes: noise)
        other = (busy1 - busy0) / os.sysconf("SC_CLK_TCK") - res["cpu_s"]
        res["engine_core_other_pct"] = round(max(0.0, 100 * other / res["wall_s"]), 1)
    text = log_path.read_text(errors="replace")
    res["argv"] = argv[3:]
    res["output"] = text.splitlines()[-10:]
    m = re.search(r"^big: (\d+) entries \(\w+; (\d+) invalid, (\d+) skipped\)", text, re.M)
    if m:
        res["list_entries"], res["list_invalid"], res["list_skipped"] = (int(g) for g in m.groups())
    m = re.search(r"^index: (\d+) names", text, re.M)
    res["index_names"] = int(m.group(1)) if m else None
    index = cdir / "data" / "lists" / "index.bin"
    if res["exit_code"] != 0 or not index.exists():
        raise BenchError(f"hearth lists update failed (exit {res['exit_code']}):\n{text[-2000:]}")
    res["index_bytes"] = index.stat().st_size
    blocked["hearth_lists_dir"] = index.parent
    return res


def setup_hearth_policy(procs: Procs, workdir: Path) -> dict:
    """Hearth as a household installs it, made once with the `hearth` CLI into a template store
    that every Hearth start copies: three profiles from presets (teens also blocks ads, the blocked
    case's category), devices by CIDR (127.0.0.0/8, where dnsperf asks from: teens), MAC and IP,
    and two schedules on teens, placed hours away from now (time zone UTC) so that neither is in
    force during the run. The query log and bypass prevention are on by default."""
    pdir = workdir / "hearth-policy"
    pdir.mkdir()
    cfg = pdir / "hearth.yaml"
    cfg.write_text(f"data_dir: {pdir / 'data'}\nlog_level: warning\ntimezone: UTC\n", encoding="utf-8")
    hour = time.gmtime().tm_hour
    at = [f"{(hour + k) % 24:02d}:00" for k in (3, 5, 6, 8)]
    steps = [
        ["profile", "add", "kids", "--preset", "child"],
        ["profile", "add", "teens", "--preset", "teen", "--add-categories", "ads"],
        ["profile", "add", "little", "--preset", "young-child"],
        ["device", "add", "lan", "--cidr", "127.0.0.0/8", "--profile", "teens"],
        ["device", "add", "guest-wifi", "--cidr", "10.1.0.0/16", "--profile", "kids"],
        ["device", "add", "tablet", "--mac", "02:00:00:00:00:01", "--profile", "kids"],
        ["device", "add", "phone", "--mac", "02:00:00:00:00:02", "--profile", "little"],
        ["device", "add", "pc", "--ip", "10.0.0.5", "--profile", "little"],
        ["schedule", "add", "teens", "--name", "bedtime", "--days", "all", "--from", at[0], "--to", at[1],
         "--block-all"],
        ["schedule", "add", "teens", "--name", "homework", "--days", "all", "--from", at[2], "--to", at[3],
         "--categories", "games,social"],
    ]
    for step in steps:
        argv = [sys.executable, "-m", "resolver.cli", step[0], "-c", str(cfg), *step[1:]]
        res = procs.run_to_end(argv, log_path=pdir / "setup.log", cwd=REPO, env=hearth_env(), timeout=120)
        if res["exit_code"] != 0:
            raise BenchError(f"hearth {' '.join(step)} failed:\n"
                             + (pdir / "setup.log").read_text(errors="replace")[-2000:])
    store = pdir / "data" / "hearth.db"
    if not store.is_file():
        raise BenchError(f"hearth CLI made no store at {store}")
    return {"store": store, "steps": [" ".join(step) for step in steps]}


# ---------------------------------------------------------------- the runs

def sanity_check(port: int) -> dict:
    """A and AAAA of a fresh name, asked twice (miss, then hit): the upstream's addresses?"""
    name = random_name()
    out: dict[str, Any] = {"name": name, "ok": True, "replies": {}}
    for attempt in ("miss", "hit"):
        for qtype, want in (("A", UPSTREAM_A), ("AAAA", UPSTREAM_AAAA)):
            reply = dig(port, name, qtype)
            out["replies"][f"{qtype} {attempt}"] = f"{reply['status']} {'; '.join(reply['answers'])}"
            if reply["status"] != "NOERROR" or not any(a.split()[-1] == want for a in reply["answers"]):
                out["ok"] = False
    return out


def odd_names_check(port: int, queries: list[tuple[str, str]]) -> dict[str, str]:
    """Status of every query whose name needs escapes (binary or special bytes in a label)."""
    return {f"{name} {qtype}": dig(port, name, qtype)["status"] for name, qtype in queries}


def blocked_sanity(port: int, blocked: dict) -> dict:
    """Listed names (some asked by dnsperf, two fillers) must get A 0.0.0.0; a fresh unlisted
    name and a subdomain of a listed one (the list blocks exact names) the upstream's address."""
    out: dict[str, Any] = {"ok": True, "replies": {}}
    listed = check_blocked(port, blocked["samples"])
    out["replies"]["listed names"] = (f"{listed['blocked_ok']}/{listed['asked']} A {BLOCKED_A}"
                                      + (f"; {listed['examples']}" if not listed["ok"] else ""))
    out["ok"] = listed["ok"]
    for label, name in (("unlisted", random_name()), ("subdomain of listed", "sub-x." + blocked["probe"])):
        reply = dig(port, name, "A")
        out["replies"][f"{label} {name}"] = f"{reply['status']} {'; '.join(reply['answers'])}"
        if reply["status"] != "NOERROR" or not any(a.split()[-1] == UPSTREAM_A for a in reply["answers"]):
            out["ok"] = False
    return out


def measure(engine: Engine, case: str, perf: Dnsperf, files: dict[str, Path], odd: list[tuple[str, str]],
            args: argparse.Namespace, blocked: dict | None = None) -> dict:
    """Start ``engine`` fresh, run one case, stop it. Returns the numbers."""
    engine.blocked = blocked if case == "blocked names" else None
    t0 = time.monotonic()
    engine.start(wait=120.0 if engine.blocked else 30.0)
    res: dict[str, Any] = {"case": case, "engine": engine.name, "startup_s": round(time.monotonic() - t0, 2)}
    if engine.blocked:
        assert engine.ready is not None
        res["first_blocked_answer_s"] = engine.ready["seconds"]
        mem = res["rss_after_start_kb"] = proc_memory(engine.pid)
        res["rss_start_kb"], res["rss_start_anon_kb"], res["rss_start_file_kb"] = (
            mem.get("VmRSS"), mem.get("RssAnon"), mem.get("RssFile"))
        if engine.ready["other_reply_count"]:
            res["replies_before_blocking"] = engine.ready
            log(f"WARNING: {engine.name} answered {engine.ready['other_reply_count']} probes for a blocked "
                f"name with something else before blocking it: {engine.ready['other_replies']}")
    out_path = engine.workdir / f"dnsperf-{engine.name}-{engine.starts}.txt"
    try:
        res["waited_for_start_up_children_s"] = wait_start_up_work(engine.pid)
        if case in ("cached hits", "blocked names"):
            if case == "cached hits":
                res["sanity"] = sanity_check(engine.port)
                queries = files["hits"]
            else:
                res["sanity"] = blocked_sanity(engine.port, engine.blocked or {})
                queries = files["blocked"]
            if not res["sanity"]["ok"]:
                log(f"WARNING: {engine.name} gave unexpected answers: {res['sanity']['replies']}")
            warm = []
            for _ in range(3):  # one pass normally; again if the warm-up lost queries
                w = perf.run(perf.argv(engine.port, queries, passes=1, clients=1, outstanding=50),
                             limit=120, out_path=out_path)
                warm.append({k: w.get(k) for k in ("completed", "lost", "qps", "rcodes")})
                if not w.get("lost"):
                    break
            res["warmup"] = warm
            argv = perf.argv(engine.port, queries, duration=args.duration)
            limit = args.duration + perf.timeout + 30
        else:
            argv = perf.argv(engine.port, files["misses"], passes=1)
            limit = 300
        wait_log_written(engine)   # the warm-up's log entries are not this run's
        log0 = engine.log_counters()
        drops0 = udp_drops(engine.port)
        threads0 = thread_cpu(engine.pid)
        cpu0 = cpu_seconds(engine.pid)
        run = perf.run(argv, limit=limit, out_path=out_path)
        cpu_answers = cpu_seconds(engine.pid)
        threads_answers = thread_cpu(engine.pid)
        res["log_drain_s"] = wait_log_written(engine)
        cpu1 = cpu_seconds(engine.pid)
        threads1 = thread_cpu(engine.pid)
        # CPU seconds per thread: to dnsperf's end, then in the query log's catch-up
        res["thread_cpu_s"] = {name: [round(threads_answers.get(name, 0) - threads0.get(name, 0), 3),
                                      round(t1 - threads_answers.get(name, 0), 3)]
                               for name, t1 in threads1.items() if t1 - threads0.get(name, 0) > 0}
        if log0 is not None:
            log1 = engine.log_counters() or {}
            res["querylog_written"] = log1.get("written", 0) - log0["written"]
            res["querylog_dropped"] = log1.get("dropped", 0) - log0["dropped"]
        res["spawn_to_run_end_s"] = round(time.monotonic() - engine.spawned, 1)
        res["engine_socket_drops"] = udp_drops(engine.port) - drops0
        res["dnsperf_argv"] = argv[3:]  # without the taskset prefix
        res.update(run)
        res["server_cpu_s"] = round(cpu1 - cpu0, 3)
        completed = run.get("completed") or 0
        res["cpu_us_per_query"] = round(1e6 * (cpu1 - cpu0) / completed, 2) if completed else None
        # the figure before the log's writing was counted (the writer finishes after dnsperf)
        res["cpu_us_per_query_answers"] = (round(1e6 * (cpu_answers - cpu0) / completed, 2)
                                           if completed else None)
        wall = run.get("run_time_s") or 0
        res["server_cpu_busy_pct"] = round(100 * (cpu_answers - cpu0) / wall, 1) if wall else None
        if run.get("engine_core_busy_pct") is not None and res["server_cpu_busy_pct"] is not None:
            # the engine core's load that is not the engine's own CPU time: softirq work for its
            # packets, and anything else scheduled there (another user's tests or builds)
            res["engine_core_other_pct"] = round(run["engine_core_busy_pct"] - res["server_cpu_busy_pct"], 1)
        bad = {k: v for k, v in run.get("rcodes", {}).items() if k != "NOERROR"}
        if bad:
            log(f"WARNING: {engine.name} answered {case} with non-NOERROR codes: {bad}")
        if case == "cached hits" and odd and engine.alive():
            res["odd_names"] = odd_names_check(engine.port, odd)
        if engine.blocked and engine.alive():
            names = [line.split("\t")[0] for line in files["blocked"].read_text().splitlines()]
            res["blocked_check"] = check_blocked(engine.port, names)
            res["rss_after_run_kb"] = proc_memory(engine.pid)
            res["rss_run_kb"] = res["rss_after_run_kb"].get("VmRSS")
            if not res["blocked_check"]["ok"]:
                log(f"WARNING: {engine.name}: not every asked name is answered A {BLOCKED_A}: "
                    f"{res['blocked_check']}")
        if engine.blocked and engine.log_path and engine.name == "dnsmasq":
            m = re.search(r"read \S+ - (\d+) names", engine.log_path.read_text(errors="replace"))
            res["names_loaded"] = int(m.group(1)) if m else None
    finally:
        alive = engine.alive()
        code = engine.stop()
        engine.blocked = None
        if not alive:
            res["error"] = f"{engine.name} exited (code {code}) during the run"
            res["server_log_tail"] = engine.log_tail()
            log(f"ERROR: {res['error']}:\n{res['server_log_tail']}")
        elif code not in (0, -signal.SIGTERM):
            res["stop_exit_code"] = code
            res["server_log_tail"] = engine.log_tail()
            log(f"WARNING: {engine.name} exited with code {code} on SIGTERM")
        log_lines = (engine.log_path.read_text(errors="replace").splitlines()
                     if engine.log_path and engine.log_path.exists() else [])
        warnings = [line for line in log_lines
                    if " WARNING " in line or " ERROR " in line or "Traceback" in line]
        if warnings:
            res["server_warnings"] = {"count": len(warnings), "first": warnings[:5]}
    return res


SUMMARY_KEYS = ("qps", "cpu_us_per_query", "lost_pct", "avg_latency_s", "server_cpu_busy_pct",
                "client_core_busy_pct", "engine_core_other_pct", "completed")
LOG_KEYS = ("cpu_us_per_query_answers", "querylog_written", "querylog_dropped", "log_drain_s")
BLOCKED_KEYS = ("first_blocked_answer_s", "rss_start_kb", "rss_start_anon_kb", "rss_start_file_kb",
                "rss_run_kb", "names_loaded")


def median_row(runs: list[dict]) -> dict:
    ok = [r for r in runs if "qps" in r and not r.get("error")]  # a crashed run's numbers don't count
    row: dict[str, Any] = {"runs": len(runs), "ok_runs": len(ok)}
    for key in SUMMARY_KEYS + BLOCKED_KEYS + LOG_KEYS:
        vals = [r[key] for r in ok if r.get(key) is not None]
        if vals or key in SUMMARY_KEYS:
            row[key] = statistics.median(vals) if vals else None
    errors = [r["error"] for r in runs if r.get("error")]
    if errors:
        row["errors"] = errors
    return row


# ---------------------------------------------------------------- report

def fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def markdown(report: dict) -> str:
    meta = report["meta"]
    v = meta["versions"]
    types = ", ".join(meta["query_types"])
    if meta.get("query_types_note"):
        types += f" ({meta['query_types_note']})"
    lines = [
        f"# Hearth vs dnsmasq vs Unbound DNS benchmark ({meta['date']})",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"- dnsmasq: {v['dnsmasq']}",
        f"- Unbound: {v['unbound']}",
        f"- dnsperf: {v['dnsperf']}",
        f"- Python: {v['python']} ({meta['python_executable']}); uvloop: {v['uvloop'] or 'not installed'}; "
        f"Hearth's UDP accelerator: {v.get('accelerator') or 'unknown'}",
        f"- Hearth: {v['hearth']} (git {v['git']}), as installed: query log on, bypass prevention on, "
        "policy made with the `hearth` CLI: " + "; ".join(f"`{step}`" for step in meta.get("hearth_policy") or []),
        f"- Host: {meta['host']}",
        (f"- Pinning: engines under test on CPU {meta['engine_cpu']}; dnsperf and the upstream "
         f"dnsmasq on CPU {meta['client_cpu']}"),
        (f"- dnsperf: `{meta['dnsperf_flags']}`; hits and blocked: warm-up `-n 1 -c 1 -q 50`, then "
         f"`-l {meta['duration']:g}`; misses: `-n 1`; never `-Q`"),
        f"- Query types: {types}",
        (f"- Query sets: {meta['hits_queries']} distinct cached-hit queries; {meta['miss_queries']} "
         f"distinct miss queries (file lines {meta['miss_lines']}, minus the hit set)"),
    ]
    blocked = report.get("blocked")
    if blocked:
        comp = blocked.get("hearth_compile") or {}
        left_out = blocked.get("hit_a_names_not_listable")
        left_out = f"; {left_out} left out: not plain host names" if left_out else ""
        lines.append(
            f"- Blocked names: {blocked['names_total']:,} names, the same in every engine: "
            f"{blocked['query_names']:,} asked by dnsperf (the distinct A names of the hit set, A queries "
            f"only{left_out}) + {blocked['filler_names']:,} synthetic fillers (`{filler_name(0)}` ...). Hearth: one "
            "`domains` list (`hearth lists update`, run once before the engines start; each start "
            "opens a copy of the compiled index); dnsmasq: `--addn-hosts` file of `0.0.0.0 name` lines; "
            "Unbound: an included file of `local-data: \"name. 3600 IN A 0.0.0.0\"` lines")
        if comp:
            lines.append(
                f"- Hearth compile of the {blocked['names_total']:,} names: {comp['wall_s']:.1f} s wall, "
                f"{comp['cpu_s']:.1f} s CPU, peak RSS {comp['max_rss_kb'] / 1024:.0f} MB, index "
                f"{comp['index_bytes'] / 1e6:.1f} MB ({fmt(comp.get('index_names'), ',')} names, "
                f"{comp['index_bytes'] / max(1, comp.get('index_names') or 1):.1f} bytes/name)"
                + (f"; other load on its core {comp['engine_core_other_pct']:.0f}%"
                   if comp.get("engine_core_other_pct") else ""))
    lines += [
        f"- Repeats: {meta['repeat']} per case and engine, alternating; median shown",
        "",
        ("| case | engine | qps | ratio vs dnsmasq | CPU µs/query | CPU vs dnsmasq | CPU vs Unbound "
         "| lost | avg latency ms | engine core busy | client core busy |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["summary"]:
        latency = None if row["avg_latency_s"] is None else row["avg_latency_s"] * 1000
        lines.append(
            f"| {row['case']} | {row['engine']} | {fmt(row['qps'], ',.0f')} "
            f"| {fmt(row.get('ratio_vs_dnsmasq'), '.2f')} | {fmt(row['cpu_us_per_query'], '.1f')} "
            f"| {fmt(row.get('cpu_ratio_vs_dnsmasq'), '.2f', 'x')} "
            f"| {fmt(row.get('cpu_ratio_vs_unbound'), '.2f', 'x')} "
            f"| {fmt(row['lost_pct'], '.2f', '%')} | {fmt(latency, '.2f')} "
            f"| {fmt(row['server_cpu_busy_pct'], '.0f', '%')} "
            f"| {fmt(row['client_core_busy_pct'], '.0f', '%')} |")
    lines += [
        "",
        ("ratio = engine qps / dnsmasq qps, same case; CPU vs dnsmasq / Unbound = engine CPU µs/query / "
         "theirs, same case (medians). CPU µs/query = the engine process's "
         "utime+stime over the measured run / queries completed; for Hearth the run ends when its query "
         "log has written (or dropped) every entry of the run, since the writer works behind the answers. "
         "engine core busy = the CPU time to dnsperf's end / dnsperf's run time (about 100% = the engine "
         "is the bottleneck). client core busy = load of the dnsperf core while queries flowed (dnsperf, "
         "plus the upstream on misses)."),
    ]
    logged = [r for r in report["summary"] if r.get("querylog_written") is not None]
    if logged:
        lines += ["", "Hearth's query log in these runs (medians of a run): entries written to the store and "
                  "dropped (the writer takes `querylog.batch_size` entries a `querylog.flush_interval`; past that "
                  "rate the ring keeps the newest `querylog.buffer_size`), and the CPU per query up to dnsperf's "
                  "end, before the writer's catch-up (the figure before this column was added):", "",
                  "| case | entries written | dropped | CPU µs/query to dnsperf's end | catch-up s |",
                  "|---|---:|---:|---:|---:|"]
        for row in logged:
            lines.append(f"| {row['case']} | {fmt(row['querylog_written'], ',.0f')} "
                         f"| {fmt(row.get('querylog_dropped'), ',.0f')} "
                         f"| {fmt(row.get('cpu_us_per_query_answers'), '.1f')} "
                         f"| {fmt(row.get('log_drain_s'), '.1f')} |")
    brows = [r for r in report["summary"] if r["case"] == "blocked names"]
    if brows:
        lines += [
            "",
            f"Blocked names: loading {blocked['names_total']:,} names" if blocked else "Blocked names",
            "",
            ("| engine | names loaded | compile s | start-up to first blocked answer s "
             "| RSS after start-up MB (anon + file) | RSS after the run MB | all asked names A 0.0.0.0 |"),
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for row in brows:
            mb = {k: None if row.get(k) is None else row[k] / 1024
                  for k in ("rss_start_kb", "rss_start_anon_kb", "rss_start_file_kb", "rss_run_kb")}
            if row["engine"] == "hearth":
                comp = (blocked or {}).get("hearth_compile") or {}
                loaded, compile_s = comp.get("index_names"), comp.get("wall_s")
            else:
                loaded, compile_s = row.get("names_loaded"), None
            checks = [r.get("blocked_check") for r in report["runs"]
                      if r["case"] == row["case"] and r["engine"] == row["engine"] and r.get("blocked_check")]
            verdict = ("n/a" if not checks else "yes" if all(c["ok"] for c in checks)
                       else "NO: " + "; ".join(f"{c['blocked_ok']}/{c['asked']}" for c in checks))
            lines.append(
                f"| {row['engine']} | {fmt(loaded, ',')} | {fmt(compile_s, '.1f') if compile_s else '-'} "
                f"| {fmt(row.get('first_blocked_answer_s'), '.2f')} "
                f"| {fmt(mb['rss_start_kb'], '.1f')} ({fmt(mb['rss_start_anon_kb'], '.1f')} + "
                f"{fmt(mb['rss_start_file_kb'], '.1f')}) | {fmt(mb['rss_run_kb'], '.1f')} | {verdict} |")
        lines += [
            "",
            ("start-up = from spawning the engine (taskset + the server) to the first UDP reply "
             "holding A 0.0.0.0 for a blocked name, asked every 10 ms. RSS = VmRSS from "
             "/proc/PID/status just after that answer and after the measured run; file = "
             "mapped file pages (Hearth's index is mmap-ed, shared page cache), anon = private "
             "memory. Last column: after the run, every name dnsperf asked, asked again once."),
        ]
    notes = []
    for row in report["summary"]:
        for err in row.get("errors", []):
            notes.append(f"- ERROR {row['case']} / {row['engine']}: {err}")
    odd: dict[str, dict[str, str]] = {}
    for run in report["runs"]:
        where = f"{run['engine']} / {run['case']} (repeat {run.get('repeat')})"
        if run.get("sanity") and not run["sanity"]["ok"]:
            notes.append(f"- WRONG ANSWERS from {where}: {run['sanity']['replies']}")
        bad = {k: n for k, n in run.get("rcodes", {}).items() if k != "NOERROR"}
        if bad:
            notes.append(f"- {where}: non-NOERROR responses {bad}")
        if run.get("engine_socket_drops"):
            notes.append(f"- {where}: {run['engine_socket_drops']} queries dropped by the engine's "
                         "full UDP receive buffer (/proc/net/udp drops)")
        if run.get("server_warnings"):
            notes.append(f"- {where}: {run['server_warnings']['count']} warning/error lines in "
                         f"the engine's log, first: `{run['server_warnings']['first'][0]}`")
        check = run.get("blocked_check")
        if check and not check["ok"]:
            notes.append(f"- {where}: {check['blocked_ok']} of {check['asked']} asked names answered A "
                         f"{BLOCKED_A} ({check['other']} otherwise, {check['unanswered']} unanswered), "
                         f"e.g. {check['examples']}")
        if run.get("replies_before_blocking"):
            early = run["replies_before_blocking"]
            notes.append(f"- {where}: {early['other_reply_count']} replies other than A {BLOCKED_A} to the "
                         f"blocked start-up probe before the first blocked answer, e.g. {early['other_replies']}")
        if (run["engine"] == "hearth" and run.get("spawn_to_run_end_s") is not None
                and run["spawn_to_run_end_s"] > HEARTH_FIRST_LIST_UPDATE_S):
            notes.append(f"- {where}: the measured run ended {run['spawn_to_run_end_s']:.0f} s after the engine "
                         f"started; Hearth runs its first scheduled `lists update` (a child process on the "
                         f"same core, counted in its CPU) {HEARTH_FIRST_LIST_UPDATE_S:.0f} s after start-up")
        other = run.get("engine_core_other_pct")
        if other is not None and other > 10:  # about 1% on a quiet machine
            notes.append(f"- {where}: the engine core was {other:.0f}% busy with other work besides the "
                         "engine (softirq, or other load on the machine): expect noise")
        client, engine = run.get("client_core_busy_pct"), run.get("server_cpu_busy_pct")
        if client is not None and engine is not None and client > 95 and engine < 90:
            notes.append(f"- {where}: the client core was {client:.0f}% busy and the engine only "
                         f"{engine:.0f}%: dnsperf (or the upstream) limited this run, not the engine")
        for query, status in run.get("odd_names", {}).items():
            odd.setdefault(query, {})[run["engine"]] = status
    differing = {q: st for q, st in odd.items() if len(set(st.values())) > 1}
    for query, st in differing.items():
        notes.append(f"- engines disagree on `{query}`: "
                     + ", ".join(f"{e} {s}" for e, s in sorted(st.items())))
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (p.stdout + p.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def versions() -> dict:
    dnsperf = "unknown"
    p = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, timeout=10, check=False)
    m = re.search(r"Version\s+(\S+)", p.stdout + p.stderr)
    if m:
        dnsperf = m.group(1)
    uv = None
    if importlib.util.find_spec("uvloop") is not None:
        uv = first_line([sys.executable, "-c", "import uvloop; print(uvloop.__version__)"])
    git = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    unbound = "not installed"
    if shutil.which("unbound"):
        p = subprocess.run(["unbound", "-V"], capture_output=True, text=True, timeout=10, check=False)
        unbound = (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "unknown"
    return {"dnsmasq": first_line(["dnsmasq", "--version"]), "dnsperf": dnsperf, "unbound": unbound,
            "python": platform.python_version(), "uvloop": uv,
            "hearth": first_line([sys.executable, "-m", "resolver.cli", "version"]),
            # the compiled UDP accelerator, as the engine will see it (HEARTH_NO_ACCEL=1 switches it off)
            "accelerator": first_line([sys.executable, "-c", "from resolver.engine import accel; "
                                       "print('on (resolver/engine/_fastpath.c)' if accel.fastpath else "
                                       "'off (pure Python: not built, or HEARTH_NO_ACCEL=1)')"]),
            "git": git + ("+uncommitted changes" if dirty else "")}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark Hearth's DNS engine against dnsmasq (127.0.0.1 only).")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of the cached-hits run (default 10)")
    p.add_argument("--repeat", type=int, default=1, help="runs per case and engine, median reported (default 1)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"JSON output (default {DEFAULT_JSON})")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"shared data directory holding {QUERY_FILE} (default {DEFAULT_DATA})")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c: client sockets (default 8)")
    p.add_argument("--outstanding", type=int, default=500, help="dnsperf -q: most queries in flight (default 500)")
    p.add_argument("--timeout", type=float, default=2.0, help="dnsperf -t: seconds before a query is lost (default 2)")
    p.add_argument("--hits", type=int, default=10000, help="distinct queries in the cached-hit set (default 10000)")
    p.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of hearth,dnsmasq,unbound")
    p.add_argument("--cases", default=",".join(CASE_KEYS),
                   help="comma-separated subset of hits,misses,blocked (default: all three)")
    p.add_argument("--blocked-names", type=int, default=1000000,
                   help="names loaded in both engines for the blocked case (default 1000000)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, server logs)")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or set(args.engines) - set(ENGINES):
        p.error(f"--engines: choose from {', '.join(ENGINES)}")
    keys = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not keys or set(keys) - set(CASE_KEYS):
        p.error(f"--cases: choose from {', '.join(CASE_KEYS)}")
    args.cases = [case for key, case in CASE_KEYS.items() if key in keys]
    if args.blocked_names < 1:
        p.error("--blocked-names must be positive")
    if args.duration <= 0 or args.repeat < 1 or args.clients < 1 or args.outstanding < 1:
        p.error("--duration, --repeat, --clients and --outstanding must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tools = ["dnsmasq", "dnsperf", "dig", "taskset"] + (["unbound"] if "unbound" in args.engines else [])
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        print(f"dns_bench: required tool(s) not found on PATH: {', '.join(missing)} "
              "(install dnsmasq, dnsperf, unbound, dnsutils/bind9-dnsutils and util-linux; "
              "or leave unbound out with --engines hearth,dnsmasq)", file=sys.stderr)
        return 2
    qfile = args.data / QUERY_FILE
    if not qfile.is_file():
        print(f"dns_bench: query file not found: {qfile} (give the data directory with --data DIR)",
              file=sys.stderr)
        return 2
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("dns_bench: needs at least 2 CPUs (engines on one, dnsperf + upstream on another)",
              file=sys.stderr)
        return 2
    client_cpu, engine_cpu = cpus[0], cpus[1]

    # SIGTERM / SIGHUP end the run like Ctrl-C does, so the finally blocks stop the children.
    def _interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)  # also when started with SIGINT ignored (e.g. `cmd &`)

    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-dns-bench-"))
    started = time.monotonic()
    try:
        upstream_port, hearth_port, dnsmasq_port, unbound_port = free_ports(4)
        log(f"ports: upstream {upstream_port}, hearth {hearth_port}, dnsmasq {dnsmasq_port}, "
            f"unbound {unbound_port}; temp dir {tmp}")
        start_upstream(procs, tmp, client_cpu, upstream_port)

        probes = {}
        for qtype in PROBE_TYPES:
            reply = dig(upstream_port, random_name(qtype), qtype)
            probes[qtype] = {**reply, "cacheable": cacheable(reply)}
        types = [t for t in PROBE_TYPES if probes[t]["cacheable"]]
        dropped = [t for t in PROBE_TYPES if t not in types]
        note = ""
        if dropped:
            note = ("upstream gives uncacheable answers for " + ", ".join(
                f"{t} ({probes[t]['status']}{', no SOA' if not probes[t]['soa'] else ''})" for t in dropped)
                + f"; query sets restricted to {'/'.join(types)}")
            log(note)
        if not types:
            raise BenchError(f"the upstream dnsmasq gives no cacheable answer for any type: {probes}")

        lines = read_queries(qfile, set(types))
        hits, misses = build_sets(lines, args.hits, 20001, 100000)
        if len(hits) < args.hits:
            log(f"only {len(hits)} distinct queries available for the cached-hit set")
        files = {"hits": write_queries(tmp / "hits.txt", hits),
                 "misses": write_queries(tmp / "misses.txt", misses)}
        log(f"query sets: {len(hits)} cached-hit queries, {len(misses)} miss queries")
        odd = [q for q in hits + misses if "\\" in q[0]]

        blocked = None
        if "blocked names" in args.cases:
            blocked = prepare_blocked(tmp, hits, args.blocked_names)
            files["blocked"] = blocked["query_file"]
            log(f"blocked names: {blocked['names_total']:,} ({blocked['query_names']} asked by dnsperf, "
                f"{blocked['filler_names']:,} fillers)")
            if "hearth" in args.engines:
                log("hearth lists update (compile the blocked list) ...")
                blocked["hearth_compile"] = compile_hearth_lists(procs, tmp, engine_cpu, blocked)
                c = blocked["hearth_compile"]
                log(f"  compiled {fmt(c.get('index_names'), ',')} names in {c['wall_s']:.1f} s, peak RSS "
                    f"{c['max_rss_kb'] / 1024:.0f} MB, index {c['index_bytes'] / 1e6:.1f} MB")

        perf = Dnsperf(procs, client_cpu, args.clients, args.outstanding, args.timeout, engine_cpu=engine_cpu)
        hearth = HearthEngine(procs, tmp, engine_cpu, hearth_port, upstream_port)
        policy = None
        if "hearth" in args.engines:
            log("hearth policy (profiles, devices, schedules) ...")
            policy = setup_hearth_policy(procs, tmp)
            hearth.store_template = policy["store"]
        engines: dict[str, Engine] = {
            "hearth": hearth,
            "dnsmasq": DnsmasqEngine(procs, tmp, engine_cpu, dnsmasq_port, upstream_port),
            "unbound": UnboundEngine(procs, tmp, engine_cpu, unbound_port, upstream_port),
        }
        runs: list[dict] = []
        for rep in range(args.repeat):
            shift = rep % len(args.engines)  # each engine goes first in turn
            order = args.engines[shift:] + args.engines[:shift]
            for case in args.cases:
                for name in order:
                    log(f"repeat {rep + 1}/{args.repeat}: {case} / {name}")
                    try:
                        res = measure(engines[name], case, perf, files, odd, args, blocked)
                    except BenchError as exc:
                        log(f"ERROR: {exc}")
                        res = {"case": case, "engine": name, "error": str(exc).splitlines()[0],
                               "detail": str(exc)}
                    res["repeat"] = rep + 1
                    runs.append(res)
                    if "qps" in res:
                        log(f"  {res['qps']:,.0f} qps, {fmt(res['cpu_us_per_query'], '.1f')} µs CPU/query"
                            + (f" ({fmt(res['cpu_us_per_query_answers'], '.1f')} at dnsperf's end; query log "
                               f"{res['querylog_written']:,} written, {res['querylog_dropped']:,} dropped)"
                               if res.get("querylog_written") is not None else "") + ", "
                            f"lost {res.get('lost_pct', 0):.2f}%, server busy "
                            f"{fmt(res['server_cpu_busy_pct'], '.0f', '%')}, client core busy "
                            f"{fmt(res['client_core_busy_pct'], '.0f', '%')}"
                            + (f", first blocked answer {res['first_blocked_answer_s']:.2f} s after spawn, "
                               f"RSS {res['rss_start_kb'] / 1024:.0f} MB"
                               if res.get("first_blocked_answer_s") is not None else ""))

        summary = []
        for case in args.cases:
            base = median_row([r for r in runs if r["case"] == case and r["engine"] == "dnsmasq"])
            ubase = median_row([r for r in runs if r["case"] == case and r["engine"] == "unbound"])
            for name in ENGINES:
                if name not in args.engines:
                    continue
                row = {"case": case, "engine": name,
                       **median_row([r for r in runs if r["case"] == case and r["engine"] == name])}
                if row["qps"] is not None and base.get("qps"):
                    row["ratio_vs_dnsmasq"] = round(row["qps"] / base["qps"], 3)
                cpu = row.get("cpu_us_per_query")
                if cpu is not None and base.get("cpu_us_per_query"):
                    row["cpu_ratio_vs_dnsmasq"] = round(cpu / base["cpu_us_per_query"], 3)
                if cpu is not None and ubase.get("cpu_us_per_query"):
                    row["cpu_ratio_vs_unbound"] = round(cpu / ubase["cpu_us_per_query"], 3)
                summary.append(row)

        report = {
            "meta": {
                "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": " ".join([Path(sys.executable).name, *sys.argv]),
                "python_executable": sys.executable,
                "versions": versions(),
                "host": f"{platform.system()} {platform.release()}, {cpu_model()}, "
                        f"{os.cpu_count()} CPUs",
                "engine_cpu": engine_cpu, "client_cpu": client_cpu,
                "duration": args.duration, "repeat": args.repeat,
                "dnsperf_flags": f"-c {args.clients} -q {args.outstanding} -t {args.timeout:g}",
                "upstream_probe": probes, "query_types": types, "query_types_note": note,
                "hits_queries": len(hits), "miss_queries": len(misses), "miss_lines": "20001-100000",
                "dnsmasq_cache_size": DnsmasqEngine.cache_size, "hearth_cache_size": 200000,
                "cases": args.cases,
                "hearth_policy": policy["steps"] if policy else None,
                "elapsed_s": round(time.monotonic() - started, 1),
            },
            "blocked": None if blocked is None else {
                k: (str(v) if isinstance(v, Path) else v) for k, v in blocked.items()
                if k not in ("samples", "hearth_yaml")},
            "summary": summary,
            "runs": runs,
        }
        text = markdown(report)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        args.json.with_suffix(".md").write_text(text, encoding="utf-8")
        print(text)
        log(f"wrote {args.json} and {args.json.with_suffix('.md')} in {report['meta']['elapsed_s']} s")
        return 1 if any(r.get("error") for r in runs) else 0
    except BenchError as exc:
        print(f"dns_bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dns_bench: interrupted; stopping every process it started", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # finish the cleanup even if signalled again
        procs.stop_all()
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
