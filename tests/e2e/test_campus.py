"""Several `hearth dns` nodes on one PostgreSQL store: a change made through the CLI on node 1 is in force on
nodes 2 and 3 within 2 seconds (LISTEN/NOTIFY), and the query log shows every node's rows."""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Callable

import pytest

from resolver.store.postgres import PostgresStore
from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS

CLI = [sys.executable, "-m", "resolver.cli"]
CHILD = "127.0.0.2"
RECORDS = {
    "www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"],
    "www.example.org.": ["www.example.org. 300 IN A 192.0.2.11"],
    "www.example.net.": ["www.example.net. 300 IN A 192.0.2.12"],
}
IN_FORCE_WITHIN = 2.0


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


def cli(engine, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(CLI + list(args) + ["-c", str(engine.config_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def within(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not in force within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


def blocked(port: int, name: str) -> bool:
    reply = ask(name, "A", port, source=CHILD)
    assert reply is not None, f"no answer for {name} on port {port}"
    return answers(reply, "A") == ["0.0.0.0"] or reply.header.rcode == 3


def node_config(upstream, url: str, name: str) -> dict:
    return {"timezone": "UTC", "store": url, "node_name": name,
            "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
            "querylog": {"flush_interval": 0.1}}


@pytest.fixture
def campus(upstream, start_engine, postgres_url):
    return [start_engine(node_config(upstream, postgres_url, f"node{i}")) for i in (1, 2, 3)]


def test_a_change_on_one_node_is_in_force_on_the_others_within_two_seconds(campus, postgres_url):
    one, others = campus[0], campus[1:]
    cli(one, "profile", "add", "Kids", "--block", "www.example.com")
    for eng in campus:
        assert not blocked(eng.port, "www.example.com")          # no device in Kids yet

    def in_force(check: Callable[[int], bool]) -> list[float]:
        return [within(lambda e=eng: check(e.port), IN_FORCE_WITHIN + 1) for eng in others]

    # a new device
    cli(one, "device", "add", "tablet", "--ip", CHILD, "--profile", "Kids")
    took = in_force(lambda port: blocked(port, "www.example.com"))
    # a temporary allow
    cli(one, "allow", "tablet", "www.example.com", "--minutes", "10")
    took += in_force(lambda port: not blocked(port, "www.example.com"))
    # a profile change
    cli(one, "profile", "set", "Kids", "--block", "www.example.org")
    took += in_force(lambda port: blocked(port, "www.example.org"))
    assert not blocked(others[0].port, "www.example.net")
    # a pause
    cli(one, "device", "pause", "tablet", "--minutes", "30")
    took += in_force(lambda port: blocked(port, "www.example.net"))
    print(f"in force on nodes 2 and 3 after {min(took):.2f}-{max(took):.2f} s")
    assert max(took) <= IN_FORCE_WITHIN, took

    # one query log for the campus: every node's rows, each with its node
    store = PostgresStore(postgres_url)
    try:
        def all_nodes_logged() -> bool:
            return {r.node for r in store.recent_queries(500)} == {"node1", "node2", "node3"}
        within(all_nodes_logged, 10)
        assert {r.client for r in store.recent_queries(500)} == {CHILD}
        assert {lq.row.node for lq in store.query_page(100, node="node2")} == {"node2"}
    finally:
        store.close()


def test_a_node_killed_leaves_the_others_answering(campus):
    campus[0].stop()
    for eng in campus[1:]:
        reply = ask("www.example.com", "A", eng.port, source=CHILD)
        assert reply is not None and answers(reply, "A") == ["192.0.2.10"]
    cli(campus[1], "profile", "set", "default", "--block", "www.example.com")
    within(lambda: blocked(campus[2].port, "www.example.com"), IN_FORCE_WITHIN + 1)
