"""The shared PostgreSQL store stopped under running nodes: they keep answering with the policy they had, a
change through the CLI is refused with one clear line, the query log is held and written when the database is
back, and the nodes reconnect by themselves. A server of its own (it is stopped), not the session's."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from resolver.service.control import call
from resolver.store.postgres import PostgresStore
from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS
from tests.e2e.test_campus import CHILD, CLI, IN_FORCE_WITHIN, RECORDS, blocked, cli, node_config, within


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


@pytest.fixture
def own_server():
    from tests.pg import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


def test_nodes_ride_out_a_database_outage(own_server, upstream, start_engine):
    url = own_server.new_database()
    nodes = [start_engine(node_config(upstream, url, f"gw{i}")) for i in (1, 2)]
    cli(nodes[0], "profile", "add", "Kids", "--block", "www.example.com")
    cli(nodes[0], "device", "add", "tablet", "--ip", CHILD, "--profile", "Kids")
    for eng in nodes:
        within(lambda e=eng: blocked(e.port, "www.example.com"), IN_FORCE_WITHIN + 1)

    own_server.stop()
    # every node answers with the policy it had: blocked stays blocked, the rest is answered
    for eng in nodes:
        for _ in range(3):
            assert blocked(eng.port, "www.example.com")
            reply = ask("www.example.org", "A", eng.port, source=CHILD)
            assert reply is not None and answers(reply, "A") == ["192.0.2.11"]
    # a change is refused with one line naming the problem, and nothing is done
    t0 = time.monotonic()
    r = subprocess.run(CLI + ["profile", "set", "Kids", "--block", "www.example.net", "-c", str(nodes[0].config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and time.monotonic() - t0 < 15
    assert r.stderr.count("\n") == 1 and "cannot open the store postgresql://" in r.stderr, r.stderr
    assert "refused" in r.stderr or "unavailable" in r.stderr, r.stderr
    # the query log is held in memory meanwhile (each write attempt waits up to the pool's 5 s for a
    # connection before it gives up, so two batches may take ten seconds and more on a loaded machine)
    within(lambda: all(call(os.path.join(e.data_dir, "hearth.sock"), "stats")["stats"]["querylog_held"] >= 6
                       for e in nodes), 30)

    own_server.restart()
    # the nodes reconnect by themselves: a change on one is in force on the other again
    cli(nodes[0], "profile", "set", "Kids", "--block", "www.example.net")
    within(lambda: blocked(nodes[1].port, "www.example.net"), 10)
    # and nothing is lost from the log: the queries asked during the outage are written
    store = PostgresStore(url)
    try:
        within(lambda: sum(1 for r in store.recent_queries(1000) if r.qname == "www.example.org") == 6, 15)
    finally:
        store.close()
    for eng in nodes:
        stats = call(os.path.join(eng.data_dir, "hearth.sock"), "stats")["stats"]
        assert stats["querylog_held"] == 0 and stats["querylog_dropped"] == 0
