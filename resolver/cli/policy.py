"""The `hearth` commands that edit the per-device policy: profiles, devices, pauses, temporary allows, schedules.

Every command reads the configuration like the other commands (``-c/--config FILE`` or ``$HEARTH_CONFIG``),
opens the store in ``data_dir`` and makes at most one change through :class:`resolver.store.protocol.Store`. All the
checks run before that change, so bad input (an unknown profile or service, a malformed name, a device
identity another device has, bad times, duplicates) prints one line on standard error, exits 1 and changes
nothing; argparse usage errors exit 2. After a change the running engine is nudged to reload its policy
(it also polls the store's ``policy_version()``, so a missed nudge only delays it by a second).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import sys
import time
from typing import Any, Callable, Iterable, Optional, Sequence

from resolver.service.config import load_for_command
from resolver.policy.profiles import (ALL_CATEGORIES, BLOCK_MODES, CATEGORIES, DEFAULT_PROFILE_NAME, PRESET_NAMES,
                                      YOUTUBE_MODES, Device, Profile, Schedule, TempAllow, check_domain,
                                      profile_from_preset)

MAX_MINUTES = 366 * 24 * 60     # a pause or a temporary allow lasts at most a year


class CommandError(Exception):
    """Bad input found by the CLI itself: printed as ``hearth <command>: <message>``, exit 1."""


class UsageError(CommandError):
    """Like CommandError, but exit 2 (nothing to do: a usage problem argparse cannot see)."""


# ---------------------------------------------------------------------------------------------
# plumbing: config, store, errors, the engine nudge

def _load_config(args: argparse.Namespace, command: str):
    return load_for_command(getattr(args, "config", None), command)[0]


def _nudge(config: Any) -> None:
    """Ask a running engine to reload its policy now; it polls the store anyway, so failures don't matter."""
    from resolver.service.control import call

    try:
        call(config.control_socket, "policy-reload", timeout=2)
    except (OSError, ValueError):
        pass


def _command(name: str, impl: Callable[..., Optional[bool]]) -> Callable[[argparse.Namespace], int]:
    """Wrap ``impl(args, config, store, out)`` into a ``func(args)`` for cli.main.

    ``impl`` returns True when it changed the policy (the engine is then nudged). ValueError (from the
    model's checks and from the store) and CommandError become one line on stderr and exit 1.
    """

    def run(args: argparse.Namespace) -> int:
        from resolver.store.open import STORE_ERRORS, describe_store, open_store

        config = _load_config(args, name)
        ctx = _Context(name, config)
        try:
            store = open_store(config, connections=1)
            store.policy_version()     # a shared store that is down fails here, before anything is done
        except STORE_ERRORS as exc:
            print(f"hearth {name}: cannot open the store {describe_store(config)}: {exc}", file=sys.stderr)
            return 1
        try:
            changed = impl(args, ctx, store)
        except UsageError as exc:
            print(f"hearth {name}: {exc}", file=sys.stderr)
            return 2
        except (CommandError, ValueError) as exc:
            print(f"hearth {name}: {exc}", file=sys.stderr)
            return 1
        except STORE_ERRORS as exc:
            print(f"hearth {name}: the store failed, nothing was changed: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()
        for line in ctx.warnings:
            print(f"hearth {name}: warning: {line}", file=sys.stderr)
        for line in ctx.lines:
            print(line)
        if changed:
            _nudge(config)
        return 0

    return run


class _Context:
    """What a command needs besides its arguments; output is held back until the change succeeded."""

    def __init__(self, name: str, config: Any):
        self.name = name
        self.config = config
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self._tz: Any = None

    def say(self, line: str) -> None:
        self.lines.append(line)

    def warn(self, line: str) -> None:
        self.warnings.append(line)

    @property
    def tz(self) -> Any:
        if self._tz is None:
            from zoneinfo import ZoneInfo

            try:
                self._tz = ZoneInfo(self.config.timezone)
            except (KeyError, ValueError):
                self._tz = _dt.timezone.utc
        return self._tz

    def when(self, ts: Optional[float], never: str = "never") -> str:
        """A UNIX time as local wall-clock time of the appliance's time zone."""
        if not ts:
            return never
        return _dt.datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d %H:%M")

    def until(self, ts: float) -> str:
        """Like when(), without the date when it is today."""
        then = _dt.datetime.fromtimestamp(ts, self.tz)
        if then.date() == _dt.datetime.now(self.tz).date():
            return then.strftime("%H:%M")
        return then.strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------------------
# argument types

def _csv(text: str) -> list[str]:
    """"a,b, c" -> ["a", "b", "c"]; "" -> [] (so ``--categories ""`` clears the list)."""
    return [w.strip() for w in text.split(",") if w.strip()]


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"use on or off, not {text!r}")


def _lower(text: str) -> str:
    return text.strip().lower()


def _minutes(value: int) -> int:
    if not 1 <= value <= MAX_MINUTES:
        raise CommandError(f"--minutes must be between 1 and {MAX_MINUTES} (a year), not {value}")
    return value


# ---------------------------------------------------------------------------------------------
# categories and services

def _categories(words: Iterable[str]) -> list[str]:
    """Category words as given; "all" and "*" mean every category the lists provide."""
    return [ALL_CATEGORIES if w.strip().lower() == "all" else w for w in words]


def _services(words: Iterable[str]) -> list[str]:
    from blocklists.services import validate_service_ids

    return list(validate_service_ids(list(words)))


def _edit_words(current: Sequence[str], replace: Optional[list[str]], add: Optional[list[str]],
                remove: Optional[list[str]], what: str, *, lower: bool = True) -> tuple[str, ...]:
    """``current`` replaced by ``replace`` (when given), then ``add`` added and ``remove`` removed."""
    norm = (lambda w: w.strip().lower()) if lower else (lambda w: w)
    words = list(current if replace is None else replace)
    for w in add or ():
        if norm(w) not in {norm(x) for x in words}:
            words.append(w)
    if remove:
        drop = {norm(w) for w in remove}
        if what == "categories" and ALL_CATEGORIES in {norm(w) for w in words} and drop - {ALL_CATEGORIES}:
            raise CommandError("categories: the profile blocks every category (*): give the ones to block with "
                               "--categories instead of removing some")
        missing = sorted(drop - {norm(w) for w in words})
        if missing:
            raise CommandError(f"{what}: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in the "
                               "profile, nothing to remove")
        words = [w for w in words if norm(w) not in drop]
    return tuple(words)


def _list_categories(data_dir: str) -> Optional[set[str]]:
    """The categories of the compiled lists, or None when no index is compiled yet."""
    try:
        from blocklists.manager import load_index

        index, meta = load_index(data_dir)
    except Exception:   # a damaged index is not this command's business: skip the check
        return None
    if index is None:
        return None
    close = getattr(index, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass
    return {str(m.get("category", "")) for m in meta.values() if isinstance(m, dict)}


def _warn_categories(ctx: _Context, new: Iterable[str], old: Iterable[str] = ()) -> None:
    """Warn about categories (newly named here) that no standard set nor compiled list knows."""
    odd = sorted(set(new) - set(old) - set(CATEGORIES) - {ALL_CATEGORIES})
    if not odd:
        return
    known = _list_categories(ctx.config.data_dir)
    if known is None:
        for c in odd:
            ctx.warn(f"{c!r} is not a standard category and no lists are compiled yet: it blocks nothing until a "
                     "list of that category is subscribed")
        return
    for c in odd:
        if c not in known:
            ctx.warn(f"no list provides category {c!r} (not a standard category either): it blocks nothing until "
                     "a list of that category is subscribed")


# ---------------------------------------------------------------------------------------------
# descriptions

def _short(words: Sequence[str], limit: int = 6) -> str:
    if len(words) <= limit:
        return ", ".join(words)
    return ", ".join(words[:limit]) + ", …"


def _blocks(p: Profile, limit: int = 6) -> str:
    if p.blocks_all_categories:
        cats = "every category"
    elif p.categories:
        cats = _short(p.categories, limit)
    else:
        cats = "no categories"
    text = f"blocks {cats}"
    if p.services:
        text += f" and {'service' if len(p.services) == 1 else 'services'} {_short(p.services, limit)}"
    return text


def _describe(p: Profile) -> str:
    head = f"preset {p.preset}: " if p.preset else ""
    return (f"{head}{_blocks(p)}; safe search {'on' if p.safe_search else 'off'}, YouTube {p.youtube}, "
            f"block mode {p.block_mode}")


def _preset_changed(p: Profile) -> bool:
    """Whether the profile's preset-governed settings differ from its preset's."""
    if not p.preset:
        return False
    t = profile_from_preset(p.name, p.preset)
    return (p.categories, p.safe_search, p.youtube, p.bypass_prevention) != (
        t.categories, t.safe_search, t.youtube, t.bypass_prevention)


def _days(days: Sequence[str]) -> str:
    if len(days) == 7:
        return "every day"
    if tuple(days) == ("mon", "tue", "wed", "thu", "fri"):
        return "weekdays"
    if tuple(days) == ("sat", "sun"):
        return "weekends"
    return ",".join(days)


def _period(s: Schedule) -> str:
    return f"{s.start}-{s.end}" + (" (next day)" if s.end < s.start else "")


def _action(s: Schedule) -> str:
    if s.action == "block_all":
        return "blocks everything"
    if s.action == "block_categories":
        return "blocks every category" if s.categories == (ALL_CATEGORIES,) else "blocks " + ", ".join(s.categories)
    return "blocks " + ", ".join(s.services)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def _clip(text: str, width: int = 44) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _json(ctx: _Context, data: Any) -> None:
    ctx.say(json.dumps(data, indent=1, ensure_ascii=False))


# ---------------------------------------------------------------------------------------------
# profiles

def _apply_profile_flags(args: argparse.Namespace, p: Profile) -> Profile:
    """``p`` with the given flags applied (those not given keep their value); checked by Profile()."""
    changes: dict[str, Any] = {}
    if args.categories is not None or args.add_categories or args.remove_categories:
        changes["categories"] = _edit_words(
            p.categories, None if args.categories is None else _categories(args.categories),
            _categories(args.add_categories or ()), _categories(args.remove_categories or ()), "categories")
    if args.services is not None or args.add_services or args.remove_services:
        replace_ = None if args.services is None else _services(args.services)
        add = _services(args.add_services) if args.add_services else None
        changes["services"] = _edit_words(p.services, replace_, add, args.remove_services, "services")
    if args.block is not None or args.add_block or args.remove_block:
        changes["block"] = _edit_words(p.block, args.block, args.add_block,
                                       _domains(args.remove_block, "--remove-block"), "block", lower=False)
    if args.allow is not None or args.add_allow or args.remove_allow:
        changes["allow"] = _edit_words(p.allow, args.allow, args.add_allow,
                                       _domains(args.remove_allow, "--remove-allow"), "allow", lower=False)
    if args.safe_search is not None:
        changes["safe_search"] = args.safe_search
    if args.youtube is not None:
        changes["youtube"] = args.youtube
    if args.block_mode is not None:
        changes["block_mode"] = args.block_mode
    if args.bypass_prevention is not None:
        changes["bypass_prevention"] = args.bypass_prevention
    if getattr(args, "rename", None) is not None:
        changes["name"] = args.rename
    return dataclasses.replace(p, **changes)


def _domains(values: Optional[list[str]], what: str) -> Optional[list[str]]:
    """Domains normalised as the profile stores them (so removing ``Example.COM.`` finds ``example.com``)."""
    if not values:
        return values
    return [check_domain(v, what) for v in values]


def _preset_template(name: str, preset: str) -> Profile:
    return profile_from_preset(name, preset)


def profile_add(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    name = args.name
    base = _preset_template(name, args.preset) if args.preset is not None else Profile(name=name)
    profile = _apply_profile_flags(args, base)
    _warn_categories(ctx, profile.categories)
    stored = store.add_profile(profile)
    ctx.say(f'profile "{stored.name}" added ({_describe(stored)})')
    return True


def profile_set(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    flags = ("preset", "categories", "add_categories", "remove_categories", "services", "add_services",
             "remove_services", "block", "add_block", "remove_block", "allow", "add_allow", "remove_allow",
             "safe_search", "youtube", "block_mode", "bypass_prevention", "rename")
    if all(getattr(args, f) is None for f in flags):
        raise UsageError("nothing to change: give at least one option (see `hearth profile set --help`)")
    old = store.get_profile(args.name)
    if old is None:
        raise CommandError(f"unknown profile {args.name.strip()!r} (see `hearth profile list`)")
    base = old
    if args.preset is not None:
        # re-apply the preset's settings; the profile's own services, domains and block mode stay
        t = _preset_template(old.name, args.preset)
        base = dataclasses.replace(old, preset=t.preset, categories=t.categories, safe_search=t.safe_search,
                                   youtube=t.youtube, bypass_prevention=t.bypass_prevention)
    profile = _apply_profile_flags(args, base)
    _warn_categories(ctx, profile.categories, old.categories)
    if dataclasses.replace(profile, updated=old.updated) == old:
        ctx.say(f'profile "{old.name}" unchanged ({_describe(old)})')
        return False
    stored = store.update_profile(profile)
    renamed = f' (renamed from "{old.name}")' if stored.name != old.name else ""
    ctx.say(f'profile "{stored.name}" updated{renamed} ({_describe(stored)})')
    return True


def _profile_dict(p: Profile, devices: int, schedules: int) -> dict:
    d = dataclasses.asdict(p)
    d.update(devices=devices, schedules=schedules, preset_changed=_preset_changed(p))
    return d


def profile_list(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    profiles = store.list_profiles()
    devices = store.list_devices()
    schedules = store.list_schedules()

    def count(items: Iterable[Any], name: str) -> int:
        return sum(1 for x in items if x.profile.lower() == name.lower())

    if args.json:
        _json(ctx, [_profile_dict(p, count(devices, p.name), count(schedules, p.name)) for p in profiles])
        return False
    rows = []
    changed = False
    for p in profiles:
        mark = "*" if _preset_changed(p) else ""
        changed = changed or bool(mark)
        cats = "all" if p.blocks_all_categories else (",".join(p.categories) or "-")
        rows.append((p.name, (p.preset or "-") + mark, _clip(cats), _clip(",".join(p.services) or "-", 30),
                     "on" if p.safe_search else "off", p.youtube, p.block_mode, str(count(devices, p.name)),
                     str(count(schedules, p.name))))
    ctx.say(_table(("NAME", "PRESET", "CATEGORIES", "SERVICES", "SAFE SEARCH", "YOUTUBE", "BLOCK MODE", "DEVICES",
                    "SCHEDULES"), rows))
    if changed:
        ctx.say("* changed from the preset's settings")
    return False


def profile_show(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    p = store.get_profile(args.name)
    if p is None:
        raise CommandError(f"unknown profile {args.name.strip()!r} (see `hearth profile list`)")
    devices = [d for d in store.list_devices() if d.profile.lower() == p.name.lower()]
    schedules = store.list_schedules(p.name)
    if args.json:
        d = _profile_dict(p, len(devices), len(schedules))
        d["device_names"] = [x.name for x in devices]
        d["schedule_list"] = [dataclasses.asdict(s) for s in schedules]
        _json(ctx, d)
        return False
    preset = (p.preset + (" (changed since)" if _preset_changed(p) else "")) if p.preset else "-"
    cats = "every category the lists provide (*)" if p.blocks_all_categories else (", ".join(p.categories) or "none")
    lines = [f"profile:           {p.name}",
             f"preset:            {preset}",
             f"categories:        {cats}",
             f"services:          {', '.join(p.services) or 'none'}",
             f"safe search:       {'on' if p.safe_search else 'off'}",
             f"youtube:           {p.youtube}",
             f"block mode:        {p.block_mode}",
             f"bypass prevention: {'on' if p.bypass_prevention else 'off'}",
             f"blocked domains:   {', '.join(p.block) or 'none'}",
             f"allowed domains:   {', '.join(p.allow) or 'none'}",
             f"devices:           {', '.join(d.name for d in devices) or 'none'}",
             f"updated:           {ctx.when(p.updated)}"]
    if schedules:
        lines.append("schedules:")
        lines += [f"  {s.name}: {_days(s.days)} {_period(s)}, {_action(s)}{'' if s.enabled else ' (disabled)'}"
                  for s in schedules]
    else:
        lines.append("schedules:         none")
    ctx.say("\n".join(lines))
    return False


def profile_remove(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    p = store.get_profile(args.name)
    if p is None:
        raise CommandError(f"unknown profile {args.name.strip()!r} (see `hearth profile list`)")
    schedules = store.list_schedules(p.name)
    store.remove_profile(p.name)
    extra = f" with its {len(schedules)} schedule{'s' if len(schedules) != 1 else ''}" if schedules else ""
    ctx.say(f'profile "{p.name}" removed{extra}')
    return True


# ---------------------------------------------------------------------------------------------
# devices

def _identity(args: argparse.Namespace) -> Optional[tuple[str, str]]:
    for kind in ("ip", "cidr", "mac"):
        value = getattr(args, kind, None)
        if value is not None:
            return kind, value
    return None


def _kind_label(kind: str) -> str:
    return {"ip": "IP", "cidr": "network", "mac": "MAC"}[kind]


def device_add(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    kind, value = _identity(args)
    device = Device(name=args.name, kind=kind, value=value, profile=args.profile)
    stored = store.add_device(device)
    ctx.say(f'device "{stored.name}" added ({_kind_label(stored.kind)} {stored.value}, profile {stored.profile})')
    return True


def _get_device(store: Any, name: str) -> Device:
    d = store.get_device(name)
    if d is None:
        raise CommandError(f"unknown device {name.strip()!r} (see `hearth device list`)")
    return d


def device_set(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    ident = _identity(args)
    if ident is None and args.profile is None and args.rename is None:
        raise UsageError("nothing to change: give --profile, --ip, --cidr, --mac or --rename")
    old = _get_device(store, args.name)
    changes: dict[str, Any] = {}
    if ident is not None:
        changes["kind"], changes["value"] = ident
    if args.profile is not None:
        changes["profile"] = args.profile
    if args.rename is not None:
        changes["name"] = args.rename
    device = dataclasses.replace(old, **changes)
    if device == old:
        ctx.say(f'device "{old.name}" unchanged')
        return False
    stored = store.update_device(device)
    renamed = f' (renamed from "{old.name}")' if stored.name != old.name else ""
    ctx.say(f'device "{stored.name}" updated{renamed} ({_kind_label(stored.kind)} {stored.value}, '
            f'profile {stored.profile})')
    return True


def device_list(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    devices = store.list_devices()
    now = time.time()
    if args.json:
        _json(ctx, [dict(dataclasses.asdict(d), paused=d.paused(now)) for d in devices])
        return False
    if not devices:
        ctx.say("no devices yet: every client gets the default profile (add one with `hearth device add`)")
        return False
    rows = [(d.name, d.value, _kind_label(d.kind), d.profile,
             ctx.when(d.paused_until) if d.paused(now) else "-", ctx.when(d.last_seen), d.hostname or "-")
            for d in devices]
    ctx.say(_table(("NAME", "IDENTITY", "KIND", "PROFILE", "PAUSED UNTIL", "LAST SEEN", "HOSTNAME"), rows))
    return False


def device_show(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    d = _get_device(store, args.name)
    now = time.time()
    allows = [a for a in store.list_temp_allows(now) if a.device.lower() == d.name.lower()]
    if args.json:
        _json(ctx, dict(dataclasses.asdict(d), paused=d.paused(now),
                        temp_allows=[dataclasses.asdict(a) for a in allows]))
        return False
    lines = [f"device:       {d.name}",
             f"identity:     {_kind_label(d.kind)} {d.value}",
             f"profile:      {d.profile}",
             f"paused until: {ctx.when(d.paused_until) if d.paused(now) else 'not paused'}",
             f"hostname:     {d.hostname or '-'}",
             f"first seen:   {ctx.when(d.first_seen)}",
             f"last seen:    {ctx.when(d.last_seen)}"]
    if allows:
        lines.append("allowed for now:")
        lines += [f"  {a.domain} until {ctx.when(a.until)}" for a in allows]
    ctx.say("\n".join(lines))
    return False


def device_remove(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    d = _get_device(store, args.name)
    store.remove_device(d.name)
    ctx.say(f'device "{d.name}" removed (its clients now get the default profile)')
    return True


def device_pause(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    minutes = _minutes(args.minutes)
    d = _get_device(store, args.name)
    until = time.time() + minutes * 60
    store.set_pause(d.name, until)
    ctx.say(f'device "{d.name}" paused for {minutes} minute{"s" if minutes != 1 else ""} (until {ctx.until(until)})')
    return True


def device_resume(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    d = _get_device(store, args.name)
    if d.paused_until is None:
        ctx.say(f'device "{d.name}" was not paused')
        return False
    store.set_pause(d.name, None)
    ctx.say(f'device "{d.name}" resumed')
    return True


def _covering(devices: Sequence[Device], address: str, mac: str) -> tuple[Optional[Device], Optional[Device]]:
    """(the ip/mac device naming this client, the most specific network device containing it)."""
    import ipaddress

    exact = next((d for d in devices if (d.kind == "ip" and d.value == address)
                  or (d.kind == "mac" and mac and d.value == mac)), None)
    net_dev, best = None, -1
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return exact, None
    for d in devices:
        if d.kind == "cidr":
            net = ipaddress.ip_network(d.value)
            if ip.version == net.version and ip in net and net.prefixlen > best:
                net_dev, best = d, net.prefixlen
    return exact, net_dev


def device_seen(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    devices = store.list_devices()
    rows, data = [], []
    for c in store.list_seen(args.limit):
        exact, net = _covering(devices, c.address, c.mac)
        if exact is not None and not args.all:
            continue
        data.append(dict(dataclasses.asdict(c), device=exact.name if exact else None,
                         network_device=net.name if net else None))
        rows.append((c.address, c.mac or "-", c.hostname or "-", ctx.when(c.first_seen), ctx.when(c.last_seen),
                     exact.name if exact else (f"(in {net.name})" if net else "-")))
    if args.json:
        _json(ctx, data)
        return False
    if not rows:
        ctx.say("no unknown clients seen" if not args.all else "no clients seen yet")
        return False
    ctx.say(_table(("ADDRESS", "MAC", "HOSTNAME", "FIRST SEEN", "LAST SEEN", "DEVICE"), rows))
    if not args.all:
        ctx.say("name one with `hearth device add NAME --ip ADDRESS --profile P` (or --mac)")
    return False


# ---------------------------------------------------------------------------------------------
# temporary allows

def allow_add(args: argparse.Namespace, ctx: _Context, store: Any) -> bool:
    minutes = _minutes(args.minutes)
    d = _get_device(store, args.device)
    until = time.time() + minutes * 60
    stored = store.add_temp_allow(TempAllow(device=d.name, domain=args.domain, until=until))
    ctx.say(f'{stored.domain} allowed for device "{d.name}" for {minutes} minute{"s" if minutes != 1 else ""} '
            f'(until {ctx.until(until)})')
    return True


# ---------------------------------------------------------------------------------------------
# schedules

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


# ---------------------------------------------------------------------------------------------
# argparse wiring

def _profile_options(p: argparse.ArgumentParser, *, new: bool) -> None:
    g = p.add_argument_group("what the profile blocks")
    g.add_argument("--preset", metavar="P", type=_lower,
                   help=("start from a preset: " if new else "re-apply a preset's categories, safe search, YouTube "
                         "and bypass settings (services, domains and block mode stay): ") + ", ".join(PRESET_NAMES))
    g.add_argument("--categories", metavar="A,B", type=_csv,
                   help=f"categories to block, replacing the list ({', '.join(CATEGORIES)}, or any word a list "
                        "uses; all or * = every category; \"\" = none)")
    g.add_argument("--add-categories", metavar="A,B", type=_csv, help="block these categories too")
    g.add_argument("--remove-categories", metavar="A,B", type=_csv, help="stop blocking these categories")
    g.add_argument("--services", metavar="S1,S2", type=_csv,
                   help="services to block, replacing the list (see `hearth services list`; \"\" = none)")
    g.add_argument("--add-services", metavar="S1,S2", type=_csv, help="block these services too")
    g.add_argument("--remove-services", metavar="S1,S2", type=_csv, help="stop blocking these services")
    g.add_argument("--block", metavar="D1,D2", type=_csv,
                   help="the profile's own blocked domains, replacing the list: example.com blocks that name only, "
                        "*.example.com also its subdomains")
    g.add_argument("--add-block", metavar="D1,D2", type=_csv, help="block these domains too")
    g.add_argument("--remove-block", metavar="D1,D2", type=_csv, help="remove these from the blocked domains")
    g.add_argument("--allow", metavar="D1,D2", type=_csv,
                   help="domains always allowed (they win over the lists), replacing the list; same forms as --block")
    g.add_argument("--add-allow", metavar="D1,D2", type=_csv, help="allow these domains too")
    g.add_argument("--remove-allow", metavar="D1,D2", type=_csv, help="remove these from the allowed domains")
    g.add_argument("--safe-search", metavar="on|off", type=_on_off, help="force safe search on search engines")
    g.add_argument("--youtube", type=_lower, choices=YOUTUBE_MODES, help="YouTube restricted mode")
    g.add_argument("--block-mode", type=_lower, choices=BLOCK_MODES,
                   help="how blocked names are answered for this profile")
    g.add_argument("--bypass-prevention", metavar="on|off", type=_on_off,
                   help="block VPNs, proxies and encrypted DNS that would get around the filter")
    if not new:
        g.add_argument("--rename", metavar="NEW", help="give the profile a new name (not the default profile)")


def add_policy_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `profile`, `device`, `allow` and `schedule` to the `hearth` parser's sub-commands."""

    def group(name: str, help: str) -> Any:
        gp = sub.add_parser(name, help=help, description=help, parents=[common])
        subs = gp.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
        subs.required = True
        return subs

    def command(subs: Any, name: str, impl: Callable[..., Optional[bool]], help: str,
                label: str) -> argparse.ArgumentParser:
        p = subs.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=_command(label, impl))
        return p

    # -- profile
    subs = group("profile", "profiles: what a kind of user (young child, teen, guest, …) may reach")
    p = command(subs, "add", profile_add, "add a profile (without --preset: blocks nothing, safe search off)",
                "profile add")
    p.add_argument("name", metavar="NAME")
    _profile_options(p, new=True)
    p = command(subs, "set", profile_set, "change a profile's settings (only the options given)", "profile set")
    p.add_argument("name", metavar="NAME")
    _profile_options(p, new=False)
    p = command(subs, "list", profile_list, "the profiles and what they block", "profile list")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command(subs, "show", profile_show, "one profile in full, with its devices and schedules", "profile show")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command(subs, "remove", profile_remove,
                f"remove a profile and its schedules (not {DEFAULT_PROFILE_NAME!r}, not while devices use it)",
                "profile remove")
    p.add_argument("name", metavar="NAME")

    # -- device
    subs = group("device", "devices: which profile a client gets, pausing its internet")
    p = command(subs, "add", device_add, "name a device by its IP address, network or MAC address", "device add")
    p.add_argument("name", metavar="NAME")
    ident = p.add_mutually_exclusive_group(required=True)
    ident.add_argument("--ip", metavar="A", help="the device's IP address")
    ident.add_argument("--cidr", metavar="C", help="a network (e.g. 192.168.1.0/26): every client in it")
    ident.add_argument("--mac", metavar="M", help="the device's MAC address")
    p.add_argument("--profile", metavar="P", default=DEFAULT_PROFILE_NAME,
                   help=f"the profile it gets (default: {DEFAULT_PROFILE_NAME})")
    p = command(subs, "set", device_set, "change a device's profile, identity or name", "device set")
    p.add_argument("name", metavar="NAME")
    ident = p.add_mutually_exclusive_group()
    ident.add_argument("--ip", metavar="A", help="identify it by this IP address")
    ident.add_argument("--cidr", metavar="C", help="identify it by this network")
    ident.add_argument("--mac", metavar="M", help="identify it by this MAC address")
    p.add_argument("--profile", metavar="P", help="give it this profile")
    p.add_argument("--rename", metavar="NEW", help="give it a new name")
    p = command(subs, "list", device_list, "the devices: identity, profile, paused until, last seen", "device list")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command(subs, "show", device_show, "one device in full, with its temporary allows", "device show")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command(subs, "remove", device_remove, "forget a device (its clients get the default profile)",
                "device remove")
    p.add_argument("name", metavar="NAME")
    p = command(subs, "pause", device_pause, "pause a device's internet for N minutes", "device pause")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--minutes", metavar="N", type=int, required=True, help="how long")
    p = command(subs, "resume", device_resume, "end a device's pause now", "device resume")
    p.add_argument("name", metavar="NAME")
    p = command(subs, "seen", device_seen, "clients the engine has answered that no device names yet",
                "device seen")
    p.add_argument("--all", action="store_true", help="every seen client, named or not")
    p.add_argument("--limit", metavar="N", type=int, default=200, help="at most N clients (default 200)")
    p.add_argument("--json", action="store_true", help="print JSON")

    # -- allow
    p = sub.add_parser("allow", help="allow a domain for one device for N minutes (e.g. for homework)",
                       description="allow a domain (or *.domain) for one device for N minutes, whatever its profile "
                                   "blocks", parents=[common])
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("domain", metavar="DOMAIN")
    p.add_argument("--minutes", metavar="N", type=int, required=True, help="how long")
    p.set_defaults(func=_command("allow", allow_add))

    # -- schedule
    subs = group("schedule", "schedules: periods when a profile blocks more (bedtime, homework)")
    p = command(subs, "add", schedule_add, "add a recurring period to a profile", "schedule add")
    p.add_argument("profile", metavar="PROFILE")
    p.add_argument("--name", dest="sched_name", metavar="N", required=True, help="the schedule's name")
    p.add_argument("--days", metavar="DAYS", required=True,
                   help="mon,tue,… or mon-fri, all, weekdays, weekends (the day the period starts)")
    p.add_argument("--from", dest="start", metavar="HH:MM", required=True, help="start (local time)")
    p.add_argument("--to", dest="end", metavar="HH:MM", required=True,
                   help="end; earlier than --from crosses midnight (24:00 = midnight)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--block-all", action="store_true", help="block everything during the period")
    what.add_argument("--categories", metavar="A,B", type=_csv, help="block these categories during the period")
    what.add_argument("--services", metavar="S1,S2", type=_csv, help="block these services during the period")
    p.add_argument("--disabled", action="store_true", help="store it switched off")
    p = command(subs, "list", schedule_list, "the schedules, of one profile or all", "schedule list")
    p.add_argument("profile", metavar="PROFILE", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON")
    for name, impl, help in (("remove", schedule_remove, "remove a schedule"),
                             ("enable", _schedule_enable(True), "switch a schedule on"),
                             ("disable", _schedule_enable(False), "switch a schedule off (kept for later)")):
        p = command(subs, name, impl, help, f"schedule {name}")
        p.add_argument("profile", metavar="PROFILE")
        p.add_argument("sched_name", metavar="NAME")
