"""Time budgets through the running engine (`hearth dns`) and the CLI, on a fast test clock.

HEARTH_TIME_SCALE=60 makes a wall-clock minute pass every real second and HEARTH_TIME_OFFSET starts the
day where the test needs it (resolver/engine/clock.py: test-only). The child's tablet is 127.0.0.2 in
profile Kids; the sibling's laptop is 127.0.0.3 in profile Teen; the upstream is a FakeDNS on loopback.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import threading
import time
from typing import Callable

import pytest

from resolver.store.sqlite import open_store
from tests.dnsclient import answers, ask, ede
from tests.dnsfake import FakeDNS

CLI = [sys.executable, "-m", "resolver.cli"]
CHILD, SIBLING = "127.0.0.2", "127.0.0.3"
SCALE = 60
FOREGROUND = ["www.roblox.com", "apis.roblox.com", "games.roblox.com", "thumbnails.roblox.com",
              "t1.rbxcdn.com", "t2.rbxcdn.com", "c3.rbxcdn.com"]
BACKGROUND = ["ecsv2.roblox.com", "ephemeralcounters.api.roblox.com", "presence.roblox.com"]
RECORDS = {f"{n}.": [f"{n}. 300 IN A 192.0.2.{10 + i}"] for i, n in enumerate(FOREGROUND + BACKGROUND)}
RECORDS["www.example.com."] = ["www.example.com. 300 IN A 192.0.2.99"]


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


def _offset_to(clock: str) -> float:
    """Seconds to add to now so that the wall clock reads ``clock`` (UTC) today, or tomorrow if that is past."""
    now = datetime.datetime.now(datetime.timezone.utc)
    h, m = (int(x) for x in clock.split(":"))
    target = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if target < now:
        target += datetime.timedelta(days=1)
    return target.timestamp() - now.timestamp()


def cli(engine, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(CLI + list(args) + ["-c", str(engine.config_path)], capture_output=True, text=True,
                       timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def eventually(check: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - start


def roblox(port: int, source: str, name: str = "www.roblox.com"):
    reply = ask(name, "A", port, source=source)
    assert reply is not None
    return reply


def is_blocked(reply) -> bool:
    return answers(reply, "A") == ["0.0.0.0"]


class Player(threading.Thread):
    """A device playing Roblox: a few distinct Roblox names every third of a (real) second."""

    def __init__(self, port: int, source: str, names=FOREGROUND, every: float = 0.3):
        super().__init__(daemon=True)
        self.port, self.source, self.names, self.every = port, source, names, every
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            for _ in range(3):
                ask(self.names[i % len(self.names)], "A", self.port, source=self.source)
                i += 1
            self.stop.wait(self.every)


def _setup(eng) -> None:
    cli(eng, "profile", "add", "Kids")
    cli(eng, "profile", "add", "Teen")
    cli(eng, "device", "add", "tablet", "--ip", CHILD, "--profile", "Kids")
    cli(eng, "device", "add", "laptop", "--ip", SIBLING, "--profile", "Teen")


def _config(upstream) -> dict:
    return {"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
            "querylog": {"flush_interval": 0.2}}


def _show(eng, profile: str = "Kids") -> list[dict]:
    return json.loads(cli(eng, "profile", "budget", profile, "--show", "--json").stdout)


def test_cli_budget_contract_and_bad_input(upstream, start_engine):
    eng = start_engine(_config(upstream))
    _setup(eng)
    r = cli(eng, "profile", "budget", "Kids", "roblox", "60", "--weekend", "120")
    assert 'budget for Roblox in profile "Kids": 60 minutes on school days, 120 at the weekend' in r.stdout
    cli(eng, "profile", "budget", "Kids", "games", "90")
    cli(eng, "profile", "budget", "Kids", "all", "180", "--reset", "04:00")
    rows = {r["target"]: r for r in _show(eng)}
    assert set(rows) == {"service:roblox", "category:games", "all"}
    assert rows["service:roblox"]["used"] == 0 and rows["all"]["reset"] == "04:00"
    text = cli(eng, "profile", "budget", "Kids", "--show").stdout
    assert "Roblox" in text and "all internet" in text and "not screen time" in text
    for args, message in [
        (("Kids", "roblox", "-5"), "MINUTES: minutes must be between 0 and 1440"),
        (("Kids", "roblox", "60", "--weekend", "5000"), "--weekend: minutes must be between 0 and 1440"),
        (("Kids", "robloks", "60"), "'robloks' is neither a service"),
        (("Nobody", "roblox", "60"), "unknown profile 'Nobody'"),
        (("Kids", "roblox", "60", "--reset", "7pm"), "--reset: use HH:MM"),
        (("Kids", "tiktok", "--more", "15"), 'profile "Kids" has no budget for TikTok'),
    ]:
        r = cli(eng, "profile", "budget", *args, ok=False)
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
    assert cli(eng, "profile", "budget", "Kids", ok=False).returncode == 2
    cli(eng, "profile", "budget", "Kids", "games", "--remove")
    assert {r["target"] for r in _show(eng)} == {"service:roblox", "all"}


def test_foreground_play_is_blocked_after_the_budget_until_more_minutes_or_the_reset(upstream, start_engine):
    """Kids get 5 minutes of Roblox; the clock starts at 23:20 and runs a minute a second."""
    offset = _offset_to("23:20")
    started = time.monotonic()
    eng = start_engine(_config(upstream), env={"HEARTH_TIME_OFFSET": str(offset), "HEARTH_TIME_SCALE": str(SCALE)})
    midnight = started + (40 * 60) / SCALE      # real monotonic time of the reset (the engine started later)
    _setup(eng)
    cli(eng, "profile", "budget", "Kids", "roblox", "5", "--weekend", "5")
    cli(eng, "profile", "budget", "Teen", "roblox", "120")
    child, sibling = Player(eng.port, CHILD), Player(eng.port, SIBLING)
    child.start()
    sibling.start()
    try:
        took = eventually(lambda: is_blocked(roblox(eng.port, CHILD)), timeout=25)
        reply = roblox(eng.port, CHILD, "t1.rbxcdn.com")
        assert is_blocked(reply) and ede(reply) == (17, ede(reply)[1])
        assert "time budget for Roblox used up today" in ede(reply)[1]
        assert 4 <= took <= 20, took                                   # about 5 (fast) minutes of play
        # the sibling on another profile plays on; other names stay open for the child
        assert answers(roblox(eng.port, SIBLING), "A") == ["192.0.2.10"]
        assert answers(ask("www.example.com", "A", eng.port, source=CHILD), "A") == ["192.0.2.99"]
        used = {r["target"]: r for r in _show(eng)}["service:roblox"]
        assert used["used_up"] and 5 <= used["used"] <= 7
        # a parent grants 15 more minutes: open again at once, blocked again about 15 minutes later
        cli(eng, "profile", "budget", "Kids", "roblox", "--more", "15")
        eventually(lambda: not is_blocked(roblox(eng.port, CHILD)), timeout=3)
        opened = time.monotonic()
        eventually(lambda: is_blocked(roblox(eng.port, CHILD)), timeout=30)
        assert 10 <= time.monotonic() - opened <= 22
        # blocked until the reset at midnight, open after it
        child.stop.set()
        while time.monotonic() < midnight - 1.0:
            assert is_blocked(roblox(eng.port, CHILD)), "unblocked before the reset"
            time.sleep(0.5)
        eventually(lambda: not is_blocked(roblox(eng.port, CHILD)), timeout=6)
        assert answers(roblox(eng.port, SIBLING), "A") == ["192.0.2.10"]
    finally:
        child.stop.set()
        sibling.stop.set()
    store = open_store(str(eng.data_dir))
    try:
        reasons = {q.reason for q in store.recent_queries(2000, client=CHILD)}
        used = sum(u.used for u in store.budget_usage(profile="Kids"))
    finally:
        store.close()
    assert "time-budget:Roblox" in reasons
    # the weekly report counts the same minutes with the same rule (the meter's numbers agree)
    report = json.loads(cli(eng, "report", "Kids", "--week", "--json").stdout)
    counted = {s["target"]: sum(s["minutes"]) for s in report["services"]}["service:roblox"]
    assert abs(counted - used) <= 2, (counted, used)
    assert report["blocked"]["by_reason"].get("time-budget:Roblox", 0) > 0
    assert sum(report["all"]) >= counted and sum(map(sum, report["heat"])) == sum(report["all"])
    csv_text = cli(eng, "report", "Kids", "--week", "--csv").stdout
    assert csv_text.startswith("date,profile,service,minutes") and ",Kids,Roblox," in csv_text
    text = cli(eng, "report", "Kids", "--week").stdout
    assert "Roblox" in text and "not screen time" in text


def test_background_burns_nothing_and_counters_survive_a_restart(upstream, start_engine):
    offset = _offset_to("10:00")
    eng = start_engine(_config(upstream), env={"HEARTH_TIME_OFFSET": str(offset), "HEARTH_TIME_SCALE": str(SCALE)})
    _setup(eng)
    cli(eng, "profile", "budget", "Kids", "roblox", "60")
    # the app idles in the background for 20 (fast) minutes: telemetry, presence, one API name now and then
    end = time.monotonic() + 20
    i = 0
    while time.monotonic() < end:
        for name in BACKGROUND:
            ask(name, "A", eng.port, source=CHILD)
        if i % 2:
            ask("apis.roblox.com", "A", eng.port, source=CHILD)
        i += 1
        time.sleep(2.5)
    time.sleep(1)
    assert _show(eng)[0]["used"] <= 1
    # then it is played for about 6 minutes
    child = Player(eng.port, CHILD)
    child.start()
    time.sleep(6)
    child.stop.set()
    child.join()
    eventually(lambda: _show(eng)[0]["used"] >= 4, timeout=5)
    eng.stop()
    before = _show(eng)[0]["used"]
    assert 4 <= before <= 9
    # restarted (the test clock starts again from the offset: a jump back, which must not reset the day)
    eng.start()
    assert _show(eng)[0]["used"] == before
    child = Player(eng.port, CHILD)
    child.start()
    try:
        eventually(lambda: _show(eng)[0]["used"] >= before + 3, timeout=15)
    finally:
        child.stop.set()
