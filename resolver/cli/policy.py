"""The `hearth` commands that edit the per-device policy: profiles, devices, pauses, temporary allows, schedules
and time budgets. This module wires them into argparse; each room holds its commands: :mod:`.profiles`,
:mod:`.devices` (and `allow`), :mod:`.schedules`, :mod:`.budgets`; :mod:`.policy_base` the shared plumbing
(how every command reads the config, opens the store, reports bad input and nudges the engine).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Optional

from resolver.cli.budgets import add_budget_command, add_report_command
from resolver.cli.devices import (allow_add, device_add, device_list, device_pause, device_remove, device_resume,
                                  device_seen, device_set, device_show)
from resolver.cli.policy_base import CommandError, UsageError, _command, _csv, _load_config  # noqa: F401 - used by cli.web
from resolver.cli.profiles import _profile_options, profile_add, profile_list, profile_remove, profile_set, profile_show
from resolver.cli.schedules import _schedule_enable, schedule_add, schedule_list, schedule_remove
from resolver.policy.profiles import DEFAULT_PROFILE_NAME


def add_policy_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `profile` (with `profile budget`), `device`, `allow` and `schedule` to the `hearth` sub-commands."""

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
    add_budget_command(subs, command)

    add_report_command(sub, common, _command)

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
