"""Shared plumbing of the `hearth` policy commands (profile, device, allow, schedule, budget).

Every command reads the configuration like the other commands (``-c/--config FILE`` or ``$HEARTH_CONFIG``),
opens the store the config names and makes at most one change through :class:`resolver.store.protocol.Store`. All the
checks run before that change, so bad input (an unknown profile or service, a malformed name, a device
identity another device has, bad times, duplicates) prints one line on standard error, exits 1 and changes
nothing; argparse usage errors exit 2. After a change the running engine is nudged to reload its policy
(it also polls the store's ``policy_version()``, so a missed nudge only delays it by a second).

This module holds what every room shares: the command wrapper, the output context, argument types, and
the checks and descriptions of categories, services and schedules.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from typing import Any, Callable, Iterable, Optional, Sequence

from resolver.service.config import load_for_command
from resolver.policy.profiles import (ALL_CATEGORIES, CATEGORIES, Profile, Schedule, profile_from_preset)

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


