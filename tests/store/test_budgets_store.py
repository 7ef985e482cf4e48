"""The store's time budgets (SQLite and PostgreSQL): budgets per profile, daily use in batches, extra minutes."""
from __future__ import annotations

import pytest

from resolver.policy.budgets import ALL, Budget, BudgetUsage
from resolver.policy.profiles import Profile


@pytest.fixture
def store(store):
    """The backends' store (tests/store/conftest.py: SQLite and PostgreSQL) with two profiles."""
    store.add_profile(Profile(name="Kids"))
    store.add_profile(Profile(name="Teen"))
    return store


def test_budgets_are_set_replaced_listed_and_removed(store):
    v0 = store.policy_version()
    b = store.set_budget(Budget("kids", "service:roblox", 60, 120))
    assert (b.profile, b.target, b.minutes, b.weekend, b.reset) == ("Kids", "service:roblox", 60, 120, "00:00")
    assert store.policy_version() > v0
    store.set_budget(Budget("Kids", "service:roblox", 45, 90, reset="04:00"))   # the same target: replaced
    store.set_budget(Budget("Teen", ALL, 180, 240))
    assert [(x.profile, x.target, x.minutes) for x in store.list_budgets()] == [
        ("Kids", "service:roblox", 45), ("Teen", "all", 180)]
    assert [x.target for x in store.list_budgets("teen")] == ["all"]
    store.remove_budget("Kids", "service:roblox")
    with pytest.raises(ValueError, match="has no budget for 'service:roblox'"):
        store.remove_budget("Kids", "service:roblox")
    with pytest.raises(ValueError, match="unknown profile 'Nobody'"):
        store.set_budget(Budget("Nobody", ALL, 1, 1))


def test_usage_is_written_in_batches_and_keeps_the_parents_extra_minutes(store):
    store.set_budget(Budget("Kids", "service:roblox", 60, 60))
    v0 = store.policy_version()
    rows = [BudgetUsage("Kids", "service:roblox", "2026-12-04", 12, last_minute=29666660, updated=1_780_000_000.0)]
    assert store.save_budget_usage(rows) == 1
    assert store.policy_version() == v0                      # counting alone does not reload the policy
    store.add_budget_extra("Kids", "service:roblox", "2026-12-04", 15)
    assert store.policy_version() > v0
    store.save_budget_usage([rows[0]._replace(used=20, updated=1_780_000_060.0)], bump=True)
    (u,) = store.budget_usage("2026-12-04", "Kids")
    assert (u.used, u.extra, u.last_minute) == (20, 15, 29666660)
    assert store.budget_high_water() == 1_780_000_060.0
    assert store.budget_usage("2026-12-05") == []
    with pytest.raises(ValueError, match="minutes: between 1 and 1440"):
        store.add_budget_extra("Kids", "service:roblox", "2026-12-04", 0)


def test_removing_a_profile_removes_its_budgets_and_usage(store):
    store.set_budget(Budget("Teen", ALL, 180, 240))
    store.save_budget_usage([BudgetUsage("Teen", ALL, "2026-12-04", 3)])
    store.remove_profile("Teen")
    assert store.list_budgets() == [] and store.budget_usage() == []


def test_a_budgets_weekdays_with_their_own_minutes_are_stored_and_replaced(store):
    import datetime as _dt

    b = store.set_budget(Budget("Kids", "category:games", 60, 120, days="fri=90 sat,sun=150"))
    assert b.days_text == "fri=90 sat=150 sun=150" and b.day_map() == {"fri": 90, "sat": 150, "sun": 150}
    (got,) = store.list_budgets("Kids")
    assert got.days == (None, None, None, None, 90, 150, 150)
    assert [got.limit(_dt.date(2026, 11, 30) + _dt.timedelta(days=i)) for i in range(7)] == [
        60, 60, 60, 60, 90, 150, 150]
    store.set_budget(Budget("Kids", "category:games", 45, 100))     # replaced: no weekdays of their own
    (got,) = store.list_budgets("Kids")
    assert got.days_text == "" and got.limit(_dt.date(2026, 12, 4)) == 45


def test_nodes_sharing_the_store_add_their_minutes_to_one_count(store):
    """Two nodes each send the minutes they saw active: the store adds them to one count with the counting
    rule's sessions, a minute both saw counts once, and the merged totals come back to each node."""
    import datetime as _dt

    utc = _dt.timezone.utc
    store.set_budget(Budget("Kids", "service:roblox", 6, 6))
    m0 = int(_dt.datetime(2026, 12, 4, 10, 0, tzinfo=utc).timestamp()) // 60
    v0 = store.policy_version()
    # node 1: the game opens at m0 (a lone minute counts nothing yet), then m0+1, m0+2
    (u,) = store.count_budget_minutes([("Kids", "service:roblox", m0)], utc)
    assert (u.used, u.pending, u.day) == (0, True, "2026-12-04")
    (u,) = store.count_budget_minutes([("Kids", "service:roblox", m0 + 1), ("Kids", "service:roblox", m0 + 2)], utc)
    assert u.used == 3
    # node 2 saw m0+2 too (counted already) and then m0+3, m0+5 (the gap is the device's cache at work)
    (u,) = store.count_budget_minutes([("Kids", "service:roblox", m0 + 2), ("Kids", "service:roblox", m0 + 3),
                                       ("Kids", "service:roblox", m0 + 5)], utc)
    assert u.used == 6 and u.last_minute == m0 + 5
    assert store.policy_version() > v0                          # 6 of 6: used up, the nodes re-read
    store.add_budget_extra("Kids", "service:roblox", "2026-12-04", 15)
    (u,) = store.count_budget_minutes([("Kids", "service:roblox", m0 + 6)], utc)
    assert (u.used, u.extra) == (7, 15)
    (stored,) = store.budget_usage("2026-12-04", "Kids")
    assert (stored.used, stored.extra) == (7, 15)
    # a budget removed meanwhile: its minutes are dropped
    store.remove_budget("Kids", "service:roblox")
    assert store.count_budget_minutes([("Kids", "service:roblox", m0 + 7)], utc) == []
