"""`hearth profile add|set|list|show|remove`: what a kind of user (young child, teen, guest) may reach."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Iterable, Optional

from resolver.cli.policy_base import (CommandError, UsageError, _Context, _action, _categories, _clip, _days,
                                      _describe, _edit_words, _json, _period, _preset_changed, _services, _table,
                                      _warn_categories, _csv, _lower, _on_off)
from resolver.policy.profiles import (BLOCK_MODES, CATEGORIES, PRESET_NAMES, YOUTUBE_MODES, Profile, check_domain,
                                      profile_from_preset)



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

