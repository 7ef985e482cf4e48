"""`dns.workers: 2`: two engine processes on the same 127.0.0.1 sockets (SO_REUSEPORT) under one parent.

Through the real entry points only: `hearth dns`, UDP and TCP queries from many source ports, the parent's
control socket (`hearth stats`) and each worker's own (hearth.sock.N), the CLI for policy and list changes,
and signals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests
import yaml

from resolver.service.control import call
from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS
from tests.e2e.test_supervisor import _wait as wait_for, free_port

CLI = [sys.executable, "-m", "resolver.cli"]


def _cli(*args: str, config) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args) + ["-c", str(config)], capture_output=True, text=True, timeout=120)


def _wait(predicate, timeout: float = 30.0, step: float = 0.1):
    return wait_for(predicate, timeout, step)


def _worker_stats(eng, n: int) -> dict:
    return call(str(eng.data_dir / f"hearth.sock.{n}"), "stats")["stats"]


def _parent(eng) -> dict:
    return call(str(eng.data_dir / "hearth.sock"), "ping")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def upstream():
    with FakeDNS({"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"],
                  "later.example.": ["later.example. 300 IN A 192.0.2.20"],
                  "listed.example.": ["listed.example. 300 IN A 192.0.2.30"]}) as fake:
        yield fake


def _config(upstream, **extra) -> dict:
    return {"dns": {"listen": ["127.0.0.1:0"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"], "workers": 2},
            "local_records": [{"name": "hearth.lan", "type": "A", "value": "192.168.1.2"}], **extra}


def test_two_workers_answer_udp_and_tcp_and_stats_add_up(upstream, start_engine):
    eng = start_engine(_config(upstream), timeout=60)
    ping = _parent(eng)
    assert [w["up"] for w in ping["workers"]] == [True, True]
    pids = {w["pid"] for w in ping["workers"]}
    assert len(pids) == 2 and ping["pid"] not in pids and eng.proc.pid == ping["pid"]

    # every query on a fresh socket, so from a fresh source port: the kernel spreads them over both workers
    for i in range(120):
        reply = ask("hearth.lan" if i % 2 else "www.example.com", "A", eng.port, timeout=5)
        assert reply is not None and answers(reply) == (["192.168.1.2"] if i % 2 else ["192.0.2.10"])
    for _ in range(40):
        reply = ask("www.example.com", "A", eng.port, tcp=True, timeout=5)
        assert reply is not None and answers(reply) == ["192.0.2.10"]

    per = [_worker_stats(eng, n) for n in (0, 1)]
    assert all(s["queries"] > 0 for s in per), [s["queries"] for s in per]
    assert all(s["tcp_connections"] > 0 for s in per), [s["tcp_connections"] for s in per]
    assert sum(s["queries"] for s in per) == 160

    out = _cli("stats", "--json", config=eng.config_path)
    assert out.returncode == 0, out.stderr
    total = json.loads(out.stdout)
    assert total["queries"] == 160 and total["tcp_connections"] == 40
    assert total["workers_up"] == 2
    assert sorted(w["queries"] for w in total["workers"]) == sorted(s["queries"] for s in per)
    assert total["upstreams"][0]["queries"] == sum(s["upstreams"][0]["queries"] for s in per)
    text = _cli("stats", config=eng.config_path).stdout
    assert "worker 0 (pid" in text and "worker 1 (pid" in text
    # each worker writes its own query-log batches into the one SQLite store
    _wait(lambda: json.loads(_cli("stats", "--json", config=eng.config_path).stdout)["querylog_written"] == 160)
    assert all(s["querylog_write_errors"] == 0 for s in (_worker_stats(eng, 0), _worker_stats(eng, 1)))


def test_policy_and_list_changes_reach_every_worker(tmp_path, upstream, start_engine):
    listed = tmp_path / "adult.txt"
    listed.write_text("other.example\n")
    cfg = _config(upstream, lists=[{"id": "adult", "url": f"file://{listed}", "format": "domains",
                                    "category": "adult"}])
    eng = start_engine(cfg, timeout=60)

    def all_answers(name: str, n: int = 40) -> set:
        seen = set()
        for _ in range(n):
            reply = ask(name, "A", eng.port, timeout=5)
            seen.add("timeout" if reply is None else (reply.header.rcode, tuple(answers(reply))))
        return seen

    assert all_answers("later.example") == {(0, ("192.0.2.20",))}   # now cached in both workers
    before = [_worker_stats(eng, n)["policy_generation"] for n in (0, 1)]
    out = _cli("profile", "set", "default", "--add-block", "later.example", "--block-mode", "nxdomain",
               config=eng.config_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _wait(lambda: all_answers("later.example") == {(3, ())}, timeout=20)
    after = [_worker_stats(eng, n) for n in (0, 1)]
    assert all(a["policy_generation"] > b for a, b in zip(after, before))
    assert all(a["blocked"] > 0 for a in after), [a["blocked"] for a in after]

    # a list update whose engine is not told (--no-notify): every worker sees the new index file and loads it
    assert all_answers("listed.example") == {(0, ("192.0.2.30",))}
    listed.write_text("listed.example\n")
    out = _cli("lists", "update", "--no-notify", config=eng.config_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _wait(lambda: all_answers("listed.example") == {(3, ())}, timeout=20)
    assert all(_worker_stats(eng, n)["index_entries"] >= 1 for n in (0, 1))


def test_a_killed_worker_comes_back_while_the_other_answers_and_sigterm_stops_all(upstream, start_engine):
    eng = start_engine(_config(upstream), timeout=60)
    workers = _parent(eng)["workers"]
    victim = workers[1]["pid"]
    os.kill(victim, signal.SIGKILL)
    # reaped by the parent, not only a zombie: a zombie leader's other threads may still hold its sockets
    # open in the SO_REUSEPORT group for a moment, and a datagram hashed there is lost
    _wait(lambda: not os.path.exists(f"/proc/{victim}"), timeout=10)
    for _ in range(40):   # fresh source ports, some of which hashed to the dead worker's sockets
        reply = ask("www.example.com", "A", eng.port, timeout=5)
        assert reply is not None and answers(reply) == ["192.0.2.10"]
    for _ in range(10):
        assert answers(ask("www.example.com", "A", eng.port, tcp=True, timeout=5)) == ["192.0.2.10"]

    back = _wait(lambda: [w for w in _parent(eng)["workers"]
                          if w["worker"] == 1 and w["up"] and w["pid"] != victim], timeout=30)[0]
    assert back["restarts"] == 1 and _alive(back["pid"])
    for _ in range(40):
        assert answers(ask("www.example.com", "A", eng.port, timeout=5)) == ["192.0.2.10"]
    assert _worker_stats(eng, 1)["queries"] > 0   # the new worker 1 takes its share again
    assert f"worker 1 (pid {victim}) exited with code -9; restarting" in eng.log()

    pids = [w["pid"] for w in _parent(eng)["workers"]]
    parent = eng.proc.pid
    eng.signal(signal.SIGTERM)
    assert eng.proc.wait(30) == 0
    assert not any(_alive(p) for p in pids + [parent])
    assert not (eng.data_dir / "engine.json").exists() and not (eng.data_dir / "hearth.sock").exists()
    assert ask("www.example.com", "A", eng.port, timeout=1) is None


@pytest.mark.parametrize("value, why", [(0, "got 0"), ("lots", "got lots"), (65, "got 65")])
def test_a_bad_workers_value_is_a_config_error_naming_file_line_and_key(tmp_path, value, why):
    path = tmp_path / "hearth.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\ndns:\n  listen: ['127.0.0.1:0']\n  workers: {value}\n")
    for command in ("check-config", "dns"):
        out = subprocess.run(CLI + [command, "-c", str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        text = out.stdout + out.stderr
        assert f"{path}:4: dns.workers: expected auto or a whole number of engine processes from 1 to 64, " \
               f"{why}" in text, text


def test_auto_means_one_worker_per_core(tmp_path):
    from resolver.engine.dnsconfig import worker_count
    from resolver.service.config import load_config

    path = tmp_path / "hearth.yaml"
    path.write_text("dns:\n  workers: auto\n")
    assert load_config(str(path)).dns.workers == "auto"
    assert worker_count("auto") == len(os.sched_getaffinity(0))
    path.write_text("dns:\n  workers: '3'\n")
    assert worker_count(load_config(str(path)).dns.workers) == 3


def test_hearth_run_with_workers_serves_summed_metrics(tmp_path, upstream):
    dns_port, web_port = free_port(), free_port()
    cfg = {"data_dir": str(tmp_path / "data"), "blocking": {"starter_lists": False},
           "dns": {"listen": [f"127.0.0.1:{dns_port}"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"],
                   "workers": 2},
           "web": {"listen": f"127.0.0.1:{web_port}"}}
    path = tmp_path / "hearth.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "run.log", "wb")
    proc = subprocess.Popen(CLI + ["run", "-c", str(path)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait(lambda: (tmp_path / "data" / "engine.json").exists(), timeout=60)
        for _ in range(50):
            assert answers(ask("www.example.com", "A", dns_port, timeout=5)) == ["192.0.2.10"]

        def metrics() -> str:
            try:
                r = requests.get(f"http://127.0.0.1:{web_port}/metrics", timeout=5)
            except requests.RequestException:
                return ""
            return r.text if r.status_code == 200 else ""

        text = _wait(metrics, timeout=30)
        assert "hearth_dns_queries_total 50.0" in text and "hearth_dns_workers_up 2.0" in text
        assert "hearth_engine_up 1.0" in text
        health = requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=5).json()
        assert health["engine"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_workers_stop_when_their_parent_is_killed(upstream, start_engine):
    eng = start_engine(_config(upstream), timeout=60)
    pids = [w["pid"] for w in _parent(eng)["workers"]]
    eng.signal(signal.SIGKILL)
    eng.proc.wait(10)
    _wait(lambda: not any(_alive(p) for p in pids), timeout=30)
    _wait(lambda: ask("www.example.com", "A", eng.port, timeout=0.5) is None, timeout=10)
