"""`hearth profile budget`: daily time budgets of a profile (see docs/budgets.md).

    hearth profile budget PROFILE SERVICE_OR_CATEGORY MINUTES [--weekend MINUTES] [--reset HH:MM]
    hearth profile budget PROFILE SERVICE_OR_CATEGORY --remove
    hearth profile budget PROFILE SERVICE_OR_CATEGORY --more MINUTES      (today only: a parent's extra time)
    hearth profile budget PROFILE --show [--json]                          (today's use)
"""
from __future__ import annotations

import argparse
import time
from typing import Any

from resolver.cli.policy_base import CommandError, UsageError, _Context, _json, _list_categories, _table
from resolver.policy.budgets import (ALL, Budget, budget_day, effective_now, minutes_left, parse_target,
                                     target_label)


def _target(ctx: _Context, text: str) -> str:
    return parse_target(text, categories=_list_categories(ctx.config.data_dir) or ())


def _profile(store: Any, name: str) -> Any:
    p = store.get_profile(name)
    if p is None:
        raise CommandError(f"unknown profile {name.strip()!r} (see `hearth profile list`)")
    return p


def _now(store: Any) -> float:
    """The time budgets count at (the store's high-water mark when this clock is behind it)."""
    return effective_now(time.time(), store.budget_high_water())


def _today(ctx: _Context, store: Any, profile: str) -> list[dict]:
    now = _now(store)
    usage = {(u.target, u.day): u for u in store.budget_usage(profile=profile)}
    out = []
    for b in store.list_budgets(profile):
        day, end = budget_day(now, ctx.tz, b.reset)
        u = usage.get((b.target, day.isoformat()))
        used, total, left = minutes_left(b, u, now, ctx.tz)
        out.append({"target": b.target, "label": target_label(b.target), "day": day.isoformat(),
                    "weekend": day.weekday() >= 5, "minutes": b.minutes, "weekend_minutes": b.weekend,
                    "extra": u.extra if u else 0, "limit": total, "used": used, "left": left,
                    "used_up": used >= total, "reset": b.reset, "resets_at": end})
    return out


def budget_command(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    p = _profile(store, args.profile)
    if args.show:
        if args.target is not None or args.minutes is not None or args.weekend is not None or args.more:
            raise UsageError("--show prints today's use: give only the profile")
        rows = _today(ctx, store, p.name)
        if args.json:
            _json(ctx, rows)
            return False
        if not rows:
            ctx.say(f'profile "{p.name}" has no time budgets (add one with `hearth profile budget {p.name} '
                    'SERVICE_OR_CATEGORY MINUTES`)')
            return False
        ctx.say(_table(("BUDGET", "TODAY", "USED", "LEFT", "RESETS"),
                       [(r["label"], f'{r["limit"]} min' + (" (weekend)" if r["weekend"] else ""),
                         f'{r["used"]} min', "used up" if r["used_up"] else f'{r["left"]} min',
                         ctx.until(r["resets_at"])) for r in rows]))
        ctx.say("minutes of foreground activity seen in DNS (not screen time; see docs/budgets.md)")
        return False
    if args.json:
        raise UsageError("--json goes with --show")
    if args.target is None:
        raise UsageError("give SERVICE_OR_CATEGORY and MINUTES, or --show")
    target = _target(ctx, args.target)
    label = target_label(target)
    if args.remove:
        if args.minutes is not None or args.weekend is not None or args.more:
            raise UsageError("--remove takes no minutes")
        store.remove_budget(p.name, target)
        ctx.say(f'budget for {label} removed from profile "{p.name}"')
        return True
    if args.more:
        if args.minutes is not None or args.weekend is not None:
            raise UsageError("--more adds minutes to today's budget: give no MINUTES or --weekend")
        budgets = {b.target: b for b in store.list_budgets(p.name)}
        b = budgets.get(target)
        if b is None:
            raise CommandError(f'profile "{p.name}" has no budget for {label}')
        day = budget_day(_now(store), ctx.tz, b.reset)[0].isoformat()
        store.add_budget_extra(p.name, target, day, args.more)
        ctx.say(f'{args.more} more minute{"s" if args.more != 1 else ""} of {label} today for profile "{p.name}"')
        return True
    if args.minutes is None:
        raise UsageError("give MINUTES (a day's minutes on school days), --remove, --more or --show")
    try:
        budget = Budget(profile=p.name, target=target, minutes=args.minutes,
                        weekend=args.minutes if args.weekend is None else args.weekend, reset=args.reset)
    except ValueError as exc:
        raise CommandError(str(exc).replace("minutes:", "MINUTES:", 1).replace("weekend:", "--weekend:", 1)
                           .replace("reset:", "--reset:", 1)) from None
    stored = store.set_budget(budget)
    days = (f"{stored.minutes} minutes a day" if stored.minutes == stored.weekend else
            f"{stored.minutes} minutes on school days, {stored.weekend} at the weekend")
    ctx.say(f'budget for {label} in profile "{p.name}": {days} (the day starts at {stored.reset})')
    if target == ALL:
        ctx.say("all internet: every name but the background ones counts (see docs/budgets.md)")
    return True


def add_budget_command(subs: Any, command: Any) -> None:
    """`profile budget` in the `profile` group (``command`` = policy.add_policy_commands' factory)."""
    p = command(subs, "budget", budget_command,
                "daily time budget of a service, category or all internet; --show: today's use", "profile budget")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("target", metavar="SERVICE_OR_CATEGORY", nargs="?",
                   help="a service id (see `hearth services list`), a category (games, social, video, …) or all")
    p.add_argument("minutes", metavar="MINUTES", nargs="?", type=int,
                   help="minutes a day on school days (Monday-Friday), 0-1440")
    p.add_argument("--weekend", metavar="MINUTES", type=int,
                   help="minutes a day on Saturday and Sunday (default: the same as MINUTES)")
    p.add_argument("--reset", metavar="HH:MM", default="00:00",
                   help="when the budget day starts, local time (default 00:00)")
    p.add_argument("--more", metavar="MINUTES", type=int,
                   help="add minutes to today's budget only (a parent's extra time)")
    p.add_argument("--remove", action="store_true", help="remove the budget")
    p.add_argument("--show", action="store_true", help="today's use of the profile's budgets")
    p.add_argument("--json", action="store_true", help="with --show: print JSON")
