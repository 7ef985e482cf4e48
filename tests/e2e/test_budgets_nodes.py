"""Time budgets on a campus: two `hearth dns` nodes on one PostgreSQL store, a fast shared test clock.

The child's tablet plays Roblox on node 1 for a while, then on node 2 (its resolver failed over): node 2 goes
on from node 1's minutes (the stored count never drops back to node 2's own) and blocks when the budget is
used up; node 1 blocks too. Then, after a parent's extra minutes, the tablet uses both nodes at once (every
other query): the minutes are counted once, not once per node.
"""
from __future__ import annotations

import threading
import time

import pytest

from resolver.store.postgres import PostgresStore
from tests.dnsclient import ask
from tests.e2e.test_budgets import (CHILD, FOREGROUND, SCALE, SIBLING, _offset_to, _setup, cli, eventually,
                                    is_blocked, roblox, upstream)  # noqa: F401  (upstream: the fixture)

BUDGET = 12


class Player(threading.Thread):
    """The tablet playing Roblox: three distinct Roblox names every 0.3 s, sent to ``ports`` in turn."""

    def __init__(self, ports: list[int], source: str = CHILD):
        super().__init__(daemon=True)
        self.ports, self.source = ports, source
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            for _ in range(3):
                ask(FOREGROUND[i % len(FOREGROUND)], "A", self.ports[i % len(self.ports)], source=self.source)
                i += 1
            self.stop.wait(0.3)

    def halt(self) -> None:
        self.stop.set()
        self.join(5)


def used(store: PostgresStore) -> int:
    return sum(u.used for u in store.budget_usage(profile="Kids") if u.target == "service:roblox")


@pytest.fixture
def nodes(upstream, start_engine, postgres_url):  # noqa: F811
    env = {"HEARTH_TIME_OFFSET": str(_offset_to("10:00")), "HEARTH_TIME_SCALE": str(SCALE),
           "HEARTH_TIME_SCALE_FROM": str(time.time())}
    return [start_engine({"timezone": "UTC", "store": postgres_url, "node_name": f"node{i}",
                          "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                          "querylog": {"flush_interval": 0.2}}, env=env) for i in (1, 2)]


def test_minutes_counted_on_one_node_block_on_the_other(nodes, postgres_url):
    one, two = nodes
    _setup(one)
    cli(one, "profile", "budget", "Kids", "roblox", str(BUDGET))
    store = PostgresStore(postgres_url)
    try:
        # about 5 (fast) minutes on node 1
        player = Player([one.port])
        player.start()
        eventually(lambda: used(store) >= 5, timeout=20)
        player.halt()
        on_one = used(store)
        assert on_one < BUDGET and not is_blocked(roblox(two.port, CHILD))
        # then on node 2: the count goes on from node 1's (never back to node 2's own), blocked at the budget
        player = Player([two.port])
        player.start()
        seen = [on_one]
        started = time.monotonic()

        def blocked_on_two() -> bool:
            seen.append(used(store))
            return is_blocked(roblox(two.port, CHILD))

        try:
            eventually(blocked_on_two, timeout=40)
        finally:
            player.halt()
        took = time.monotonic() - started
        assert all(b >= a for a, b in zip(seen, seen[1:])), seen       # the stored count never drops
        assert BUDGET <= used(store) <= BUDGET + 2
        assert took <= (BUDGET - on_one) + 6, (took, on_one)            # node 2 did not start from 0
        # node 1 blocks too, the sibling on another profile does not
        eventually(lambda: is_blocked(roblox(one.port, CHILD)), timeout=5)
        assert not is_blocked(roblox(one.port, SIBLING)) and not is_blocked(roblox(two.port, SIBLING))

        # 5 more minutes from a parent; the tablet now asks both nodes in turn: counted once, not twice
        cli(two, "profile", "budget", "Kids", "roblox", "--more", "5")
        for eng in nodes:
            eventually(lambda e=eng: not is_blocked(roblox(e.port, CHILD)), timeout=5)
        before = used(store)
        player = Player([one.port, two.port])
        player.start()
        started = time.monotonic()
        try:
            eventually(lambda: is_blocked(roblox(one.port, CHILD)) and is_blocked(roblox(two.port, CHILD)),
                       timeout=30)
        finally:
            player.halt()
        took = time.monotonic() - started
        assert 5 <= used(store) - before <= 7
        assert took >= 3.5, took              # 5 minutes counted twice would block after about 2.5
    finally:
        store.close()
