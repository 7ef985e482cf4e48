"""`hearth schedule add|list|remove|enable|disable`: periods when a profile blocks more (bedtime, homework)."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
from typing import Any, Callable

from resolver.cli.policy_base import (CommandError, _Context, _action, _categories, _clip, _days, _json, _period,
                                      _services, _table, _warn_categories)
from resolver.policy.profiles import Schedule


def _schedule_times(start_text: str, end_text: str) -> tuple[str, str]:
    from resolver.policy.schedule import END_OF_DAY, parse_hhmm

    start, end = parse_hhmm(start_text), parse_hhmm(end_text)
    if start == END_OF_DAY:
        raise CommandError("--from can't be 24:00 (24:00 is allowed only as an end); use 00:00")
    if end == END_OF_DAY:
        if start == _dt.time(0, 0):
            raise CommandError("a schedule can't cover the whole day (00:00-24:00); pause the device or end at "
                               "23:59 instead")
        end = _dt.time(0, 0)   # midnight at the end of the start day: crossing midnight to 00:00 is the same
    if start == end:
        raise CommandError(f"--from and --to are both {start.strftime('%H:%M')}: a schedule needs a period")
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def schedule_add(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    from resolver.policy.schedule import parse_days

    profile = store.get_profile(args.profile)
    if profile is None:
        raise CommandError(f"unknown profile {args.profile.strip()!r} (see `hearth profile list`)")
    days = parse_days(args.days)
    start, end = _schedule_times(args.start, args.end)
    if args.block_all:
        action, categories, services = "block_all", (), ()
    elif args.categories is not None:
        action, categories, services = "block_categories", tuple(_categories(args.categories)), ()
    else:
        action, categories, services = "block_services", (), tuple(_services(args.services))
    schedule = Schedule(profile=profile.name, name=args.sched_name, days=days, start=start, end=end, action=action,
                        categories=categories, services=services, enabled=not args.disabled)
    _warn_categories(ctx, schedule.categories)
    stored = store.add_schedule(schedule)
    ctx.say(f'schedule "{stored.name}" added to profile "{stored.profile}": {_days(stored.days)} {_period(stored)}, '
            f'{_action(stored)}{"" if stored.enabled else " (disabled)"}')
    return True


def schedule_list(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    if args.profile is not None and store.get_profile(args.profile) is None:
        raise CommandError(f"unknown profile {args.profile.strip()!r} (see `hearth profile list`)")
    schedules = store.list_schedules(args.profile)
    if args.json:
        _json(ctx, [dataclasses.asdict(s) for s in schedules])
        return False
    if not schedules:
        ctx.say("no schedules" + (f" in profile {args.profile.strip()!r}" if args.profile else "")
                + " (add one with `hearth schedule add`)")
        return False
    rows = [(s.profile, s.name, _days(s.days), _period(s), _clip(_action(s)), "yes" if s.enabled else "no")
            for s in schedules]
    ctx.say(_table(("PROFILE", "NAME", "DAYS", "TIME", "ACTION", "ENABLED"), rows))
    ctx.say(f"times are local to {ctx.config.timezone}")
    return False


def _get_schedule(store: Any, profile: str, name: str) -> Schedule:
    if store.get_profile(profile) is None:
        raise CommandError(f"unknown profile {profile.strip()!r} (see `hearth profile list`)")
    for s in store.list_schedules(profile):
        if s.name.lower() == name.strip().lower():
            return s
    raise CommandError(f"unknown schedule {name.strip()!r} in profile {profile.strip()!r}")


def schedule_remove(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    s = _get_schedule(store, args.profile, args.sched_name)
    store.remove_schedule(s.profile, s.name)
    ctx.say(f'schedule "{s.name}" removed from profile "{s.profile}"')
    return True


def _schedule_enable(enabled: bool) -> Callable[..., bool]:
    def impl(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
        s = _get_schedule(store, args.profile, args.sched_name)
        word = "enabled" if enabled else "disabled"
        if s.enabled == enabled:
            ctx.say(f'schedule "{s.name}" of profile "{s.profile}" was already {word}')
            return False
        store.update_schedule(dataclasses.replace(s, enabled=enabled))
        ctx.say(f'schedule "{s.name}" of profile "{s.profile}" {word}')
        return True

    return impl
