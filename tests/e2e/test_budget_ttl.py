"""Names that count against a time budget are answered with a short TTL (at most 60 s), through `hearth dns`
on loopback with a local upstream that gives day-long TTLs: a device that caches answers for their TTL asks
again within a minute, so once the budget is used up it is blocked promptly instead of playing on from its
cache for hours. Other names, and the same names for a profile without a budget, keep their long TTL.
"""
from __future__ import annotations

import threading

import pytest

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS
from tests.e2e.test_budgets import (BACKGROUND, CHILD, FOREGROUND, SCALE, SIBLING, _setup, cli, eventually, is_blocked,
                                    roblox)

DAY = 86400
RECORDS = {f"{n}.": [f"{n}. {DAY} IN A 192.0.2.{10 + i}"] for i, n in enumerate(FOREGROUND + BACKGROUND)}
RECORDS["www.example.com."] = [f"www.example.com. {DAY} IN A 192.0.2.99"]


@pytest.fixture
def long_ttl_upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


def ttl(reply) -> int:
    (rr,) = [r for r in reply.rr if r.rtype == 1]
    return rr.ttl


def test_budgeted_names_get_a_short_ttl_and_the_block_follows_within_it(long_ttl_upstream, start_engine):
    eng = start_engine({"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{long_ttl_upstream.port}"]},
                        "querylog": {"flush_interval": 0.2}},
                       env={"HEARTH_TIME_SCALE": str(SCALE)})
    _setup(eng)
    # before any budget: the upstream's day-long TTL reaches the child
    assert ttl(roblox(eng.port, CHILD, "games.roblox.com")) > 3600
    cli(eng, "profile", "budget", "Kids", "roblox", "3")
    eventually(lambda: ttl(roblox(eng.port, CHILD, "games.roblox.com")) <= 60, timeout=5)
    for _ in range(2):                                # a miss, then the engine's cache: both capped
        assert 0 < ttl(roblox(eng.port, CHILD)) <= 60
        assert 0 < ttl(roblox(eng.port, CHILD, "t1.rbxcdn.com")) <= 60
    # names outside the budget, and Roblox for the sibling's profile (no budget), keep the long TTL
    assert ttl(ask("www.example.com", "A", eng.port, source=CHILD)) > 3600
    assert ttl(roblox(eng.port, SIBLING)) > 3600

    # the child plays, caching every answer for its TTL as a device does; every answer it got said <= 60 s,
    # so when the budget is used up no cached Roblox answer is left after a minute
    got: list[int] = []
    stop = threading.Event()

    def play() -> None:
        i = 0
        while not stop.is_set():
            for _ in range(3):
                reply = ask(FOREGROUND[i % len(FOREGROUND)], "A", eng.port, source=CHILD)
                if reply is not None and not is_blocked(reply) and answers(reply, "A"):
                    got.append(ttl(reply))
                i += 1
            stop.wait(0.3)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    try:
        eventually(lambda: is_blocked(roblox(eng.port, CHILD)), timeout=30)
    finally:
        stop.set()
        player.join(5)
    assert got and max(got) <= 60, max(got)
    # the budget's "all internet" form caps every name of the profile
    cli(eng, "profile", "budget", "Kids", "all", "600")
    eventually(lambda: ttl(ask("www.example.com", "A", eng.port, source=CHILD)) <= 60, timeout=5)
    assert ttl(ask("www.example.com", "A", eng.port, source=SIBLING)) > 3600
