"""Time budgets under `dns.workers: 2`: the tablet's queries land on both workers (a fresh source port each),
each worker's meter adds the minutes it saw to the one stored count, and the budget blocks on time, not
twice as late (each worker counting only its own share) nor twice as early (a minute counted per worker)."""
from __future__ import annotations

import time

from resolver.store.sqlite import open_store
from tests.e2e.test_budgets import (CHILD, SCALE, SIBLING, Player, _offset_to, _setup, cli, eventually,
                                    is_blocked, roblox, upstream)  # noqa: F401  (upstream: the fixture)
from tests.e2e.test_workers import _worker_stats

BUDGET = 8


def test_a_budget_counts_the_minutes_of_both_workers_once(upstream, start_engine):  # noqa: F811
    env = {"HEARTH_TIME_OFFSET": str(_offset_to("10:00")), "HEARTH_TIME_SCALE": str(SCALE),
           "HEARTH_TIME_SCALE_FROM": str(time.time())}
    eng = start_engine({"timezone": "UTC", "dns": {"listen": ["127.0.0.1:0"], "workers": 2,
                                                   "upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                        "querylog": {"flush_interval": 0.2}}, env=env, timeout=60)
    _setup(eng)
    cli(eng, "profile", "budget", "Kids", "roblox", str(BUDGET))
    before = [_worker_stats(eng, n)["queries"] for n in (0, 1)]
    child = Player(eng.port, CHILD)
    child.start()
    try:
        took = eventually(lambda: is_blocked(roblox(eng.port, CHILD)), timeout=40)
    finally:
        child.stop.set()
        child.join(5)
    after = [_worker_stats(eng, n)["queries"] for n in (0, 1)]
    assert all(a - b > 10 for a, b in zip(after, before)), (before, after)     # both workers answered the child
    assert BUDGET - 2 <= took <= BUDGET * 1.3 + 2, took       # each counting its own share: about 2x BUDGET
    store = open_store(str(eng.data_dir))
    try:
        used = sum(u.used for u in store.budget_usage(profile="Kids") if u.target == "service:roblox")
    finally:
        store.close()
    assert BUDGET <= used <= BUDGET + 2, used
    assert not is_blocked(roblox(eng.port, SIBLING))
