"""Per-weekday budgets through the CLI and the running engine (`hearth dns`), on a fast test clock.

The engine's clock is moved to a Friday (HEARTH_TIME_OFFSET) and runs a minute a second (HEARTH_TIME_SCALE);
Friday has 2 minutes of Roblox of its own while every other day has an hour: the child is blocked after
about 2 (fast) minutes, the sibling's profile plays on. Helpers are tests/e2e/test_budgets.py's.
"""
from __future__ import annotations

import datetime

from resolver.store.sqlite import open_store

from tests.e2e.test_budgets import (CHILD, SCALE, SIBLING, Player, _config, _setup, _show, cli, eventually,
                                    is_blocked, roblox, upstream)  # noqa: F401  (upstream: the fixture)


def _offset_to_weekday(weekday: int, clock: str) -> float:
    """Seconds to add to now so that the wall clock (UTC) reads ``clock`` on the next ``weekday`` (0 = Monday)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    h, m = (int(x) for x in clock.split(":"))
    target = now.replace(hour=h, minute=m, second=0, microsecond=0)
    target += datetime.timedelta(days=(weekday - target.weekday()) % 7)
    if target < now:
        target += datetime.timedelta(days=7)
    return target.timestamp() - now.timestamp()


def test_cli_weekday_minutes_contract_and_bad_input(upstream, start_engine):  # noqa: F811
    eng = start_engine(_config(upstream))
    _setup(eng)
    r = cli(eng, "profile", "budget", "Kids", "games", "60", "--weekend", "120", "--day", "fri=90",
            "--day", "sat,sun=150")
    assert ('budget for games in profile "Kids": 60 minutes on school days, 120 at the weekend; '
            'fri 90, sat 150, sun 150') in r.stdout
    (row,) = _show(eng)
    assert row["days"] == {"fri": 90, "sat": 150, "sun": 150}
    today = datetime.datetime.now(datetime.timezone.utc).weekday()
    assert row["limit"] == [60, 60, 60, 60, 90, 150, 150][today]
    # the contract form keeps working and replaces the weekdays
    r = cli(eng, "profile", "budget", "Kids", "games", "45", "--weekend", "100")
    assert 'budget for games in profile "Kids": 45 minutes on school days, 100 at the weekend' in r.stdout
    assert _show(eng)[0]["days"] == {}
    cli(eng, "profile", "budget", "Kids", "roblox", "30", "--day", "mon-thu=20")
    assert {r["target"]: r["days"] for r in _show(eng)}["service:roblox"] == {d: 20 for d in
                                                                               ("mon", "tue", "wed", "thu")}
    for args, message in [
        (("--day", "fry=90"), "--day: unknown day 'fry'"),
        (("--day", "fri=-5"), "--day fri: minutes must be between 0 and 1440"),
        (("--day", "fri=lots"), "--day fri: minutes are a whole number, not 'lots'"),
        (("--day", "fri"), "--day: write DAYS=MINUTES"),
        (("--day", "weekdays=30", "--day", "fri=90"), "--day: fri is given twice"),
    ]:
        r = cli(eng, "profile", "budget", "Kids", "roblox", "60", *args, ok=False)
        assert r.returncode == 1 and message in r.stderr, (args, r.stderr)
    r = cli(eng, "profile", "budget", "Kids", "--show", "--day", "fri=3", ok=False)
    assert r.returncode == 2 and "--show prints today's use" in r.stderr
    assert {r["target"]: r["days"] for r in _show(eng)}["service:roblox"] == {d: 20 for d in
                                                                               ("mon", "tue", "wed", "thu")}


def test_a_friday_of_its_own_blocks_after_its_own_minutes(upstream, start_engine):  # noqa: F811
    offset = _offset_to_weekday(4, "10:00")
    eng = start_engine(_config(upstream), env={"HEARTH_TIME_OFFSET": str(offset), "HEARTH_TIME_SCALE": str(SCALE)})
    _setup(eng)
    cli(eng, "profile", "budget", "Kids", "roblox", "60", "--weekend", "60", "--day", "fri=2")
    cli(eng, "profile", "budget", "Teen", "roblox", "60")
    child, sibling = Player(eng.port, CHILD), Player(eng.port, SIBLING)
    child.start()
    sibling.start()
    try:
        took = eventually(lambda: is_blocked(roblox(eng.port, CHILD)), timeout=25)
        assert took <= 15, took                      # Friday's 2 minutes, not the hour of the other days
        assert not is_blocked(roblox(eng.port, SIBLING))
        assert {r["target"]: r for r in _show(eng)}["service:roblox"]["days"] == {"fri": 2}
    finally:
        child.stop.set()
        sibling.stop.set()
    store = open_store(str(eng.data_dir))
    try:
        used = {(u.profile, u.day): u.used for u in store.budget_usage()}
    finally:
        store.close()
    friday = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)).date()
    assert friday.weekday() == 4 and 2 <= used[("Kids", friday.isoformat())] <= 4, used
