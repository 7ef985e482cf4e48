"""Time budgets: the model's checks, the budget day, the counting rule on recorded traces, clock jumps,
and step 9 of the profile policy (a used-up budget blocks with its own reason)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from resolver.base.names import wire_name
from resolver.policy.blocking import Reason
from resolver.policy.budget_count import MinuteCounter, TargetMatcher, count_trace
from resolver.policy.budgets import (ALL, Budget, BudgetUsage, SteadyClock, budget_day, effective_now, parse_target,
                                     spent_budgets)
from resolver.policy.profile_policy import ProfilePolicy
from resolver.policy.profiles import Profile, Schedule

TRACES = json.loads((Path(__file__).resolve().parents[1] / "data" / "budget-traces.json").read_text())
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
BUDGETS = [Budget("child", "service:roblox", 60, 120), Budget("child", "service:tiktok", 30, 30),
           Budget("child", ALL, 180, 240)]


def _ts(text: str, tz=HCM) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


# ------------------------------------------------------------------ the model

def test_targets_from_what_a_parent_types():
    assert parse_target("Roblox") == "service:roblox"
    assert parse_target(" games ") == "category:games"
    assert parse_target("all") == ALL and parse_target("internet") == ALL
    assert parse_target("category:video") == "category:video"
    assert parse_target("homework", categories=["homework"]) == "category:homework"
    with pytest.raises(ValueError, match="service or category: 'robloks' is neither"):
        parse_target("robloks")
    with pytest.raises(ValueError, match="unknown service 'nosuch'"):
        parse_target("service:nosuch")


@pytest.mark.parametrize("field,value,message", [
    ("minutes", -5, "minutes: minutes must be between 0 and 1440"),
    ("weekend", 100000, "weekend: minutes must be between 0 and 1440"),
    ("minutes", "lots", "minutes: minutes are a whole number"),
    ("reset", "25:00", "reset: use HH:MM"),
    ("target", "roblox", "target: use service:<id>"),
])
def test_bad_budgets_name_the_field(field, value, message):
    kwargs = dict(profile="child", target="service:roblox", minutes=60, weekend=60, reset="00:00")
    kwargs[field] = value
    with pytest.raises(ValueError, match=message):
        Budget(**kwargs)


def test_school_days_and_weekend_and_the_reset_time():
    b = Budget("child", "category:games", 60, 120, reset="04:00")
    # Friday 03:00 still belongs to Thursday's budget day; Saturday 05:00 is a weekend day
    day, end = budget_day(_ts("2026-12-04T03:00"), HCM, b.reset)
    assert day == dt.date(2026, 12, 3) and end == _ts("2026-12-04T04:00") and b.limit(day) == 60
    day, _ = budget_day(_ts("2026-12-05T05:00"), HCM, b.reset)
    assert day == dt.date(2026, 12, 5) and b.limit(day) == 120
    # Sunday night before the reset is still Sunday: weekend minutes
    day, _ = budget_day(_ts("2026-12-07T03:59"), HCM, b.reset)
    assert day == dt.date(2026, 12, 6) and b.limit(day) == 120


# ------------------------------------------------------------------ counting on recorded traces


@pytest.mark.parametrize("trace", TRACES["traces"], ids=lambda t: t["name"])
def test_counting_matches_the_truth_on_recorded_traces(trace):
    got = count_trace([(e[0], "phone", e[1]) for e in trace["events"]], BUDGETS, dt.timezone.utc)
    for target, truth in trace["truth"].items():
        n = got.get(target, 0)
        if truth:
            assert abs(n - truth) <= 2, f"{target}: counted {n}, truth {truth}"
        else:
            assert n <= 1, f"{target}: counted {n} minutes of background activity"


def test_background_names_and_lone_minutes_count_nothing():
    m = TargetMatcher([Budget("child", "service:roblox", 60, 60), Budget("child", ALL, 60, 60)])
    assert m.targets("ecsv2.roblox.com") == frozenset()           # Roblox's telemetry
    assert m.targets("mtalk.google.com") == frozenset()           # push, for every budget
    assert m.targets("www.roblox.com") == {"service:roblox", ALL}
    assert m.targets("en.wikipedia.org") == {ALL}
    t0 = 1_780_000_020
    # one burst of names in one minute: a lone active minute, nothing counted
    lone = [(t0, "phone", n) for n in ("www.roblox.com", "apis.roblox.com", "t1.rbxcdn.com")]
    assert count_trace(lone, [Budget("child", "service:roblox", 60, 60)], dt.timezone.utc) == {"service:roblox": 0}
    # two active minutes three minutes apart: one session of four minutes
    two = lone + [(t0 + 180, "phone", "games.roblox.com"), (t0 + 181, "phone", "t2.rbxcdn.com")]
    assert count_trace(two, [Budget("child", "service:roblox", 60, 60)], dt.timezone.utc) == {"service:roblox": 4}


def test_two_devices_of_one_profile_share_the_minutes():
    b = Budget("child", "service:roblox", 60, 60)
    counter = MinuteCounter(dt.timezone.utc, lambda _p, _t: b)
    t0 = 1_780_000_020
    for minute in range(5):
        for device in ("phone", "tablet"):
            for n in ("a.roblox.com", "b.roblox.com"):
                counter.observe(t0 + minute * 60, device, "child", {"service:roblox"}, n)
    (usage,) = counter.take_changes()
    assert usage.used == 5


def test_counting_resumes_after_a_restart_from_stored_rows():
    b = Budget("child", "service:roblox", 60, 60)
    t0 = 1_780_000_020
    first = MinuteCounter(dt.timezone.utc, lambda _p, _t: b)
    for minute in range(3):
        for n in ("a.roblox.com", "b.roblox.com"):
            first.observe(t0 + minute * 60, "phone", "child", {"service:roblox"}, n)
    saved = first.take_changes()
    assert saved[0].used == 3
    second = MinuteCounter(dt.timezone.utc, lambda _p, _t: b)
    second.load(saved)
    for minute in range(4, 6):   # one quiet minute (the restart), the session goes on
        for n in ("a.roblox.com", "b.roblox.com"):
            second.observe(t0 + minute * 60, "phone", "child", {"service:roblox"}, n)
    assert second.take_changes()[0].used == 6


# ------------------------------------------------------------------ clock jumps

def test_a_pi_booting_in_1970_neither_resets_nor_burns_the_budget():
    high_water = _ts("2026-12-04T19:30")
    # enforcement: a clock in 1970 enforces the stored day
    assert effective_now(5.0, high_water) == high_water
    # counting: timestamps continue from the high-water mark, then the clock is set by NTP
    clock = SteadyClock(high_water)
    boot = [clock(5.0 + i * 60) for i in range(3)]
    assert boot[0] == pytest.approx(high_water) and boot[2] - boot[0] == pytest.approx(120)
    later = clock(high_water + 600)                         # NTP: the real time, a little later
    assert later == pytest.approx(high_water + 600)
    b = Budget("child", "service:roblox", 60, 60)
    used = [BudgetUsage("child", "service:roblox", "2026-12-04", 60)]
    assert "child" in spent_budgets([b], used, effective_now(5.0, high_water), HCM)   # still used up


def test_ntp_correcting_a_clock_that_ran_ahead():
    high_water = _ts("2026-12-04T19:30")
    # a small step back (a few minutes): the stored day is kept, nothing counted twice
    clock = SteadyClock(high_water)
    assert clock(high_water - 300) == pytest.approx(high_water)
    # a set clock days behind a high-water mark from a clock that ran ahead: the real time wins
    assert effective_now(high_water - 5 * 86400, high_water) == high_water - 5 * 86400
    assert SteadyClock(high_water)(high_water - 5 * 86400) == high_water - 5 * 86400


# ------------------------------------------------------------------ step 9: used-up budgets block

class _Svc:
    def __init__(self, sid, name, domains):
        self.id, self.name, self.domains = sid, name, tuple((d, True) for d in domains)


SERVICES = {"roblox": _Svc("roblox", "Roblox", ["roblox.com", "rbxcdn.com"]),
            "tiktok": _Svc("tiktok", "TikTok", ["tiktok.com"])}


def _policy(spent_for, profile=None):
    profile = profile or Profile(name="child", allow=("*.wikipedia.org",), block=("bad.example",))
    return ProfilePolicy(profile, None, {}, (), "UTC", services=SERVICES, spent=spent_for)


def test_a_used_up_service_budget_blocks_that_service_only_until_the_reset():
    now = _ts("2026-12-04T18:00", dt.timezone.utc)
    b = Budget("child", "service:roblox", 60, 60)
    spent = spent_budgets([b], [BudgetUsage("child", "service:roblox", "2026-12-04", 60)], now, dt.timezone.utc)
    pol = _policy(spent["child"])
    v = pol.decide(wire_name("www.roblox.com"), now)
    assert v.action == "block" and v.decision.reason is Reason.BUDGET and v.decision.category == "Roblox"
    assert v.decision.text.startswith("time budget for Roblox used up today")
    assert v.decision.log_reason == "time-budget:Roblox"
    assert v.ttl_cap == 6 * 3600                                         # until midnight
    assert pol.decide(wire_name("www.tiktok.com"), now).action == "allow"
    # the profile's own block list keeps its own reason; the allow list beats the budget
    assert pol.decide(wire_name("bad.example"), now).decision.reason is Reason.CUSTOM
    # after the reset the budget block is over even before the policy is rebuilt
    assert pol.decide(wire_name("www.roblox.com"), now + 6 * 3600 + 1).action == "allow"


def test_extra_minutes_lift_the_block_and_all_internet_budget_spares_the_allow_list():
    now = _ts("2026-12-04T18:00", dt.timezone.utc)
    b = Budget("child", ALL, 120, 120)
    assert not spent_budgets([b], [BudgetUsage("child", ALL, "2026-12-04", 120, extra=15)], now,
                             dt.timezone.utc)["child"].used_up
    spent = spent_budgets([b], [BudgetUsage("child", ALL, "2026-12-04", 135, extra=15)], now, dt.timezone.utc)
    pol = _policy(spent["child"])
    v = pol.decide(wire_name("www.example.com"), now)
    assert v.decision.reason is Reason.BUDGET and v.decision.category == "all internet"
    assert pol.decide(wire_name("en.wikipedia.org"), now).action == "allow"
    # a paused device is paused (step 2 comes first)
    assert pol.decide(wire_name("www.example.com"), now, paused_until=now + 60).decision.reason is Reason.PAUSED


def test_names_that_count_against_a_running_budget_are_cached_for_a_minute_at_most():
    """Roblox has minutes left: its answers (and only its) carry a 60 s TTL cap, so a device re-asks soon
    and is blocked promptly once they are gone; an "all internet" budget caps every name; allowed names
    (the profile's allow list), which a budget never blocks, keep their TTL."""
    from resolver.policy.budgets import BUDGET_TTL

    now = _ts("2026-12-04T18:00", dt.timezone.utc)
    b = Budget("child", "service:roblox", 60, 60)
    spent = spent_budgets([b], [BudgetUsage("child", "service:roblox", "2026-12-04", 10)], now, dt.timezone.utc)
    assert not spent["child"].used_up and spent["child"].watched == {"service:roblox"}
    pol = _policy(spent["child"])
    assert BUDGET_TTL == 60
    assert pol.decide(wire_name("www.roblox.com"), now) == ("allow", None, None, 60)
    assert pol.decide(wire_name("t1.rbxcdn.com"), now).ttl_cap == 60
    assert pol.decide(wire_name("www.tiktok.com"), now).ttl_cap is None
    assert pol.decide(wire_name("notroblox.com"), now).ttl_cap is None
    everything = spent_budgets([Budget("child", ALL, 120, 120)], [], now, dt.timezone.utc)["child"]
    pol = _policy(everything)
    assert pol.decide(wire_name("www.example.com"), now).ttl_cap == 60
    assert pol.decide(wire_name("en.wikipedia.org"), now).ttl_cap is None      # the allow list: never blocked
    # a schedule's shorter cap still wins
    sched = Schedule(profile="child", name="soon", days=("fri",), start="23:00", end="23:30",
                     action="block_categories", categories=("adult",))
    pol = ProfilePolicy(Profile(name="child"), None, {}, (sched,), "UTC", services=SERVICES, spent=everything)
    assert pol.decide(wire_name("www.example.com"), now + 3600 * 5 - 20).ttl_cap == 20


@pytest.mark.parametrize("trace", TRACES["traces"], ids=lambda t: t["name"])
def test_the_report_counts_exactly_what_the_budget_counts(trace):
    """The weekly report (counted_minutes, over a whole stretch) and the live meter (MinuteCounter, a
    stream) apply one rule: the same minutes."""
    from resolver.policy.budget_count import counted_minutes

    events = [(e[0], "phone", e[1]) for e in trace["events"]]
    live = count_trace(events, BUDGETS, dt.timezone.utc)
    whole = counted_minutes(events, TargetMatcher(BUDGETS))
    assert {t: len(m) for t, m in whole.items() if m} == {t: n for t, n in live.items() if n}


def test_a_used_up_category_budget_blocks_the_categorys_names_and_counts_them(tmp_path):
    from blocklists.index import BlockIndex
    from blocklists.index_build import IndexBuilder

    b = IndexBuilder()
    b.add("minecraft.example", "games", subdomains=True)
    b.add("bet.example", "gambling", subdomains=True)
    b.add_source("games-list", "games", 1)
    b.add_source("gambling-list", "gambling", 1)
    b.build(str(tmp_path / "index.bin"))
    index = BlockIndex.open(str(tmp_path / "index.bin"))
    meta = {"games": {"category": "games", "lists": ["games-list"]},
            "gambling": {"category": "gambling", "lists": ["gambling-list"]}}
    try:
        games = Budget("child", "category:games", 60, 60)
        m = TargetMatcher([games], index, meta)
        assert m.targets("play.minecraft.example") == {"category:games"} and m.targets("bet.example") == set()
        now = _ts("2026-12-04T18:00", dt.timezone.utc)
        spent = spent_budgets([games], [BudgetUsage("child", "category:games", "2026-12-04", 61)], now,
                              dt.timezone.utc)
        pol = ProfilePolicy(Profile(name="child", categories=("gambling",)), index, meta, (), "UTC",
                            services=SERVICES, spent=spent["child"])
        v = pol.decide(wire_name("play.minecraft.example"), now)
        assert v.decision.reason is Reason.BUDGET and v.decision.category == "games"
        assert pol.decide(wire_name("bet.example"), now).decision.reason is Reason.CATEGORY   # blocked for good
        assert pol.decide(wire_name("www.example.com"), now).action == "allow"
    finally:
        index.close()
