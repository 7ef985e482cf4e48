"""Time budgets in the web UI and the API: today's use per profile, setting and removing budgets, and a
parent's "more minutes" (from the requests page when a child asked from the block page).

The checks are the model's (:mod:`resolver.policy.budgets`); every change is audited and nudged to the
engine like the other policy changes.
"""
from __future__ import annotations

import time
from typing import Any, Optional
from zoneinfo import ZoneInfo

from resolver.policy.budgets import (EXTRA_MINUTES, Budget, budget_day, effective_now, minutes_left, parse_target,
                                     target_label)

from . import core

MAX_EXTRA = 24 * 60


def _dict(budget: Optional[Budget]) -> Optional[dict]:
    import dataclasses

    return dataclasses.asdict(budget) if budget is not None else None


def _tz() -> Any:
    import datetime as _dt

    try:
        return ZoneInfo(core.config().timezone)
    except (KeyError, ValueError):
        return _dt.timezone.utc


def now() -> float:
    """The time budgets count at (the store's high-water mark when this clock is behind it)."""
    return _now()


def _now() -> float:
    return effective_now(time.time(), core.store().budget_high_water())


def today(profile: Optional[str] = None) -> list[dict]:
    """Today's use of every budget (of one profile, or all), for the dashboard and the API."""
    store = core.store()
    now, tz = _now(), _tz()
    rows = []
    budgets = store.list_budgets(profile)
    if not budgets:
        return rows
    since = budget_day(now - 86400, tz)[0].isoformat()
    usage = {(u.profile.lower(), u.target, u.day): u for u in store.budget_usage(since, profile)}
    for b in budgets:
        day, end = budget_day(now, tz, b.reset)
        u = usage.get((b.profile.lower(), b.target, day.isoformat()))
        used, total, left = minutes_left(b, u, now, tz)
        rows.append({"profile": b.profile, "target": b.target, "label": target_label(b.target),
                     "minutes": b.minutes, "weekend": b.weekend, "days": b.day_map(), "reset": b.reset,
                     "day": day.isoformat(),
                     "weekend_day": day.weekday() >= 5, "extra": u.extra if u else 0, "limit": total,
                     "used": used, "left": left, "used_up": used >= total, "resets_at": end,
                     "percent": min(100, round(100 * used / total)) if total else 100})
    return rows


def budget_from_fields(profile: str, data: dict) -> Budget:
    """A Budget from JSON or form fields {target, minutes, weekend?, days?, reset?}; errors name the field.
    ``days``: a weekday's own minutes, {"fri": 90, "sat,sun": 150} or "fri=90 sat,sun=150"."""
    if not isinstance(data, dict):
        raise ValueError("send a JSON object")
    target = parse_target(str(data.get("target") or ""))
    minutes = data.get("minutes")
    if minutes is None or minutes == "":
        raise ValueError("minutes: give the minutes a school day may use (0-1440)")
    weekend = data.get("weekend")
    if weekend is None or weekend == "":
        weekend = minutes
    return Budget(profile=profile, target=target, minutes=minutes, weekend=weekend,
                  reset=str(data.get("reset") or "00:00"), days=data.get("days") or ())


def set_budget(budget: Budget) -> Budget:
    store = core.store()
    if store.get_profile(budget.profile) is None:
        raise ValueError(f"unknown profile {budget.profile!r}")
    before = {b.target: b for b in store.list_budgets(budget.profile)}.get(budget.target)
    stored = store.set_budget(budget)
    core.audit("budget.set", f"{stored.profile}: {stored.target}", _dict(before),
               _dict(stored))
    core.nudge()
    return stored


def set_budgets(profile: str, items: list) -> list[Budget]:
    """Replace a profile's budgets with ``items`` (a list of field dicts); a target given twice is refused."""
    if not isinstance(items, list):
        raise ValueError("budgets: send a list of {target, minutes, weekend, days, reset}")
    wanted = [budget_from_fields(profile, x) for x in items]
    seen: set[str] = set()
    for b in wanted:
        if b.target in seen:
            raise ValueError(f"budgets: {target_label(b.target)} is given twice")
        seen.add(b.target)
    store = core.store()
    for old in store.list_budgets(profile):
        if old.target not in seen:
            remove_budget(profile, old.target)
    return [set_budget(b) for b in wanted]


def remove_budget(profile: str, target: str) -> None:
    store = core.store()
    target = parse_target(target)
    before = {b.target: b for b in store.list_budgets(profile)}.get(target)
    store.remove_budget(profile, target)
    core.audit("budget.remove", f"{profile}: {target}", _dict(before), None)
    core.nudge()


def add_minutes(profile: str, target: str, minutes: Any = EXTRA_MINUTES) -> dict:
    """A parent's extra minutes for today (1 to 1440)."""
    try:
        n = int(minutes)
    except (TypeError, ValueError):
        raise ValueError(f"minutes: a whole number, not {minutes!r}") from None
    if not 1 <= n <= MAX_EXTRA:
        raise ValueError(f"minutes: between 1 and {MAX_EXTRA}, not {n}")
    store = core.store()
    target = parse_target(target)
    b = {x.target: x for x in store.list_budgets(profile)}.get(target)
    if b is None:
        raise ValueError(f"profile {profile!r} has no budget for {target_label(target)}")
    day = budget_day(_now(), _tz(), b.reset)[0].isoformat()
    after = store.add_budget_extra(b.profile, target, day, n)
    core.audit("budget.more", f"{b.profile}: {target}", None, {"day": day, "minutes": n, "extra": after.extra})
    core.nudge()
    return {"profile": b.profile, "target": target, "day": day, "added": n, "extra": after.extra}


def request_budget(req: Any, device_profile: Optional[str] = None) -> Optional[tuple[str, str]]:
    """(profile, target) of the budget a block-page request was about ("time-budget:Roblox"), or None.
    ``device_profile``: the asking device's profile now (it wins over the one stored with the request)."""
    reason = getattr(req, "reason", "") or ""
    if not reason.startswith("time-budget:"):
        return None
    label = reason.split(":", 1)[1]
    profile = device_profile or req.profile
    if not profile or core.store().get_profile(profile) is None:
        return None
    for b in core.store().list_budgets(profile):
        if target_label(b.target) == label:
            return b.profile, b.target
    return None
