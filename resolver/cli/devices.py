"""`hearth device …` and `hearth allow`: which profile a client gets, pauses, temporary allows."""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, Optional, Sequence

from resolver.cli.policy_base import CommandError, UsageError, _Context, _json, _minutes, _table
from resolver.policy.profiles import Device, TempAllow


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


