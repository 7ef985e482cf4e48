"""`hearth profile budget`: daily time budgets of a profile (see docs/budgets.md).

    hearth profile budget PROFILE SERVICE_OR_CATEGORY MINUTES [--weekend MINUTES] [--day DAYS=MINUTES ...]
                                                              [--reset HH:MM]
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
                    "days": b.day_map(),
                    "extra": u.extra if u else 0, "limit": total, "used": used, "left": left,
                    "used_up": used >= total, "reset": b.reset, "resets_at": end})
    return out


def budget_command(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    p = _profile(store, args.profile)
    if args.show:
        if args.target is not None or args.minutes is not None or args.weekend is not None or args.more \
                or args.day:
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
        if args.minutes is not None or args.weekend is not None or args.more or args.day:
            raise UsageError("--remove takes no minutes")
        store.remove_budget(p.name, target)
        ctx.say(f'budget for {label} removed from profile "{p.name}"')
        return True
    if args.more:
        if args.minutes is not None or args.weekend is not None or args.day:
            raise UsageError("--more adds minutes to today's budget: give no MINUTES, --weekend or --day")
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
                        weekend=args.minutes if args.weekend is None else args.weekend, reset=args.reset,
                        days=args.day or ())
    except ValueError as exc:
        msg = str(exc)
        for field, flag in (("minutes:", "MINUTES:"), ("weekend:", "--weekend:"), ("reset:", "--reset:"),
                            ("days:", "--day:"), ("days ", "--day ")):
            if msg.startswith(field):
                msg = flag + msg[len(field):]
                break
        raise CommandError(msg) from None
    stored = store.set_budget(budget)
    days = (f"{stored.minutes} minutes a day" if stored.minutes == stored.weekend else
            f"{stored.minutes} minutes on school days, {stored.weekend} at the weekend")
    if stored.days_text:
        days += "; " + ", ".join(f"{d} {m}" for d, m in stored.day_map().items())
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
    p.add_argument("--day", metavar="DAYS=MINUTES", action="append",
                   help="a weekday's own minutes, e.g. fri=90, sat,sun=150 or mon-thu=45 (repeat for more days; "
                        "the other days keep MINUTES or --weekend)")
    p.add_argument("--reset", metavar="HH:MM", default="00:00",
                   help="when the budget day starts, local time (default 00:00)")
    p.add_argument("--more", metavar="MINUTES", type=int,
                   help="add minutes to today's budget only (a parent's extra time)")
    p.add_argument("--remove", action="store_true", help="remove the budget")
    p.add_argument("--show", action="store_true", help="today's use of the profile's budgets")
    p.add_argument("--json", action="store_true", help="with --show: print JSON")


# ---------------------------------------------------------------------------------------------
# hearth report PROFILE --week [--json | --csv]

def _load_index(data_dir: str) -> tuple:
    try:
        from blocklists.manager import load_index

        return load_index(data_dir)
    except Exception:   # no lists compiled (or a damaged index): category minutes are left out
        return None, {}


def report_command(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    from resolver.ops.usage_report import report_csv, week_report

    if args.json and args.csv:
        raise UsageError("--json or --csv, not both")
    index, meta = _load_index(ctx.config.data_dir)
    try:
        if args.device:
            report = week_report(store, device=args.device, tz=ctx.tz, now=_now(store), index=index, meta=meta)
        else:
            report = week_report(store, profile=args.profile, tz=ctx.tz, now=_now(store), index=index, meta=meta)
    finally:
        close = getattr(index, "close", None)
        if callable(close):
            close()
    if args.json:
        _json(ctx, report)
        return False
    if args.csv:
        ctx.say(report_csv(report).rstrip("\n"))
        return False
    import datetime as _dt

    days = [_dt.date.fromisoformat(d) for d in report["days"]]
    who = f'device "{report["device"]}"' if report["device"] else f'profile "{report["profile"]}"'
    ctx.say(f"{who}, {days[0]:%a %d %b} – {days[-1]:%a %d %b} (devices: {', '.join(report['devices']) or 'none'})")
    ctx.say("minutes of foreground activity seen in DNS, not screen time")
    header = ["", *[f"{d:%a %d}" for d in days], "TOTAL"]
    rows = [["all internet", *map(str, report["all"]), str(sum(report["all"]))]]
    rows += [[s["label"], *map(str, s["minutes"]), str(sum(s["minutes"]))] for s in report["services"][:12]]
    ctx.say(_table(header, rows))
    hours = [sum(day[h] for day in report["heat"]) for h in range(24)]
    if any(hours):
        top = sorted(range(24), key=lambda h: -hours[h])[:3]
        ctx.say("busiest hours: " + ", ".join(f"{h:02d}:00 ({hours[h]} min)" for h in sorted(top) if hours[h]))
    for b in report["budgets"]:
        ctx.say(f"budget {b['label']}: " + ", ".join(f"{u}/{lim}" for u, lim in zip(b["used"], b["limit"])))
    blocked = report["blocked"]
    ctx.say(f"blocked: {blocked['total']}" + (" (" + ", ".join(f"{k} {v}" for k, v in
                                                             list(blocked["by_reason"].items())[:5]) + ")"
                                            if blocked["total"] else ""))
    approved = sum(1 for r in report["requests"] if r["status"] == "approved")
    ctx.say(f"access requests: {len(report['requests'])} ({approved} approved)")
    if report["top_sites"]:
        ctx.say("top sites: " + ", ".join(f"{t['name']} ({t['total']})" for t in report["top_sites"][:8]))
    return False


def add_report_command(sub: Any, common: argparse.ArgumentParser, wrap: Any) -> None:
    """`hearth report PROFILE --week [--json|--csv] [--device NAME]` (``wrap`` = policy_base._command)."""
    p = sub.add_parser("report", help="a child's week: minutes per app per day, busiest hours, blocks, requests",
                       description="the last 7 days of a profile's devices (or one device with --device): minutes "
                                   "of foreground activity per app per day, counted as the time budgets count them",
                       parents=[common])
    p.add_argument("profile", metavar="PROFILE", nargs="?")
    p.add_argument("--week", action="store_true", help="the last 7 days (the only period for now; the default)")
    p.add_argument("--device", metavar="NAME", help="one device instead of a profile")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--csv", action="store_true", help="print CSV: date, profile, service, minutes")
    p.set_defaults(func=wrap("report", _report_checked))


def _report_checked(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    if (args.profile is None) == (args.device is None):
        raise UsageError("give a PROFILE or --device NAME")
    if args.profile is not None:
        _profile(store, args.profile)
    return report_command(args, ctx, store)
