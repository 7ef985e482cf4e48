"""Daily time budgets: "one hour of games on school days, two at the weekend", "30 minutes of TikTok".

A :class:`Budget` gives one profile a number of minutes a day for one *target*:

* ``service:<id>``: a blocked-services catalogue entry (``service:roblox``), its domains and subdomains;
* ``category:<name>``: a list category (``category:games``): every name the compiled lists put in it;
* ``all``: all internet (every name but the background ones, see :mod:`resolver.policy.budget_count`).

School days (Monday to Friday) and weekend days (Saturday, Sunday) have their own minutes, and any weekday
may have its own instead (``days``: "fri=90 sat,sun=150"; a day without one takes the school-day or
weekend minutes). A budget
*day* starts at the budget's ``reset`` time (``HH:MM``, default 00:00) in the appliance's time zone: with
reset 04:00, Tuesday's budget day runs from Tuesday 04:00 to Wednesday 04:00 and is a school day.

All the devices of a profile share its budgets (a child's phone and tablet spend the same hour).
What counts as a used minute is decided in :mod:`resolver.policy.budget_count`; how a used-up budget
blocks is step 9 of :mod:`resolver.policy.profile_policy`'s order.

Clock jumps
-----------
A Raspberry Pi has no real-time clock: it boots in 1970 and jumps to the right time when NTP answers;
NTP may also correct a clock that was ahead. The rule, so that a jump neither resets nor burns a
budget: **the budget day never goes backwards.** :func:`effective_now` keeps the latest time the store
has seen (the newest usage update, its *high-water mark*): a clock behind it counts and enforces as of
that mark (the stored day's minutes stay spent: a reboot into 1970 resets nothing, and the minutes
used meanwhile go to the stored day, the day they were really used). A clock that is set (after
:data:`CLOCK_FLOOR`) and more than :data:`TRUST_BACKWARD` behind the mark is believed instead: the mark
was the mistake (a clock that ran days ahead). A clock jumping *forward* is believed: if it crosses a
reset, a new day starts, as it would have. :class:`SteadyClock` applies the same rule to the counter's
stream of timestamps, so a jump mid-session neither adds nor removes the minutes in between.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, NamedTuple, Optional, Tuple

from resolver.policy.profiles import CATEGORIES
from resolver.policy.schedule import DAYS, parse_days

__all__ = ["Budget", "BudgetUsage", "Spent", "ALL", "MAX_MINUTES", "parse_target", "target_label",
           "budget_day", "effective_now", "SteadyClock", "spent_budgets", "EXTRA_MINUTES", "BUDGET_TTL",
           "parse_day_minutes", "day_minutes_text"]

ALL = "all"
MAX_MINUTES = 24 * 60              # a day's budget: 0 (none today) to 1440 (the whole day)
EXTRA_MINUTES = 15                 # what the block page's "ask for 15 more minutes" asks for
CLOCK_FLOOR = 1_700_000_000.0      # 2023-11-14: a clock before this has not been set yet (Pi boot in 1970)
TRUST_BACKWARD = 2 * 86400.0       # a set clock this far behind the high-water mark is believed
BUDGET_TTL = 60                    # seconds a budgeted name's answer may be cached (devices re-ask, then blocked)
_ALL_WORDS = {"all", "internet", "all-internet", "*"}
NO_DAYS: Tuple[Optional[int], ...] = (None,) * 7


def _hhmm(text: str, field: str = "reset") -> str:
    try:
        t = _dt.datetime.strptime(str(text).strip(), "%H:%M").time()
    except ValueError:
        raise ValueError(f"{field}: use HH:MM (00:00-23:59), not {text!r}") from None
    return t.strftime("%H:%M")


def _minutes(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ValueError(f"{field}: minutes are a whole number, not {value!r}") from None
    if not 0 <= value <= MAX_MINUTES:
        raise ValueError(f"{field}: minutes must be between 0 and {MAX_MINUTES} (a whole day), not {value}")
    return value


def parse_day_minutes(value: object, field: str = "days") -> Tuple[Optional[int], ...]:
    """Per-weekday minutes (Monday first, None = the school-day or weekend minutes) from what a parent
    gives: text "fri=90 sat,sun=150" (items split by spaces or ";"), a list of such items, a mapping
    {"fri": 90, "sat-sun": 150}, or the 7-tuple itself. Days are written as schedules write them (mon,
    mon-thu, weekends, ...). A day given twice (also through overlapping items) is an error naming it."""
    if value is None or value == "" or value == () or value == [] or value == {}:
        return NO_DAYS
    if isinstance(value, (tuple, list)) and len(value) == 7 and all(v is None or isinstance(v, int)
                                                                      for v in value):
        return tuple(None if v is None else _minutes(v, f"{field} {DAYS[i]}") for i, v in enumerate(value))
    items: list = []
    if isinstance(value, str):
        for item in value.replace(";", " ").split():
            items.append(item)
    elif isinstance(value, dict):
        items = [(k, v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"{field}: give days and minutes such as fri=90, not {value!r}")
    out: list = [None] * 7
    for item in items:
        if isinstance(item, tuple):
            days_text, minutes = item
        elif isinstance(item, str) and "=" in item:
            days_text, _, minutes = item.partition("=")
        else:
            raise ValueError(f"{field}: write DAYS=MINUTES, such as fri=90 or sat,sun=150, not {item!r}")
        if not isinstance(days_text, str) or not days_text.strip():
            raise ValueError(f"{field}: which day? write DAYS=MINUTES, such as fri=90, not {item!r}")
        try:
            days = parse_days(days_text)
        except ValueError as exc:
            raise ValueError(f"{field}: {exc}") from None
        for day in days:
            i = DAYS.index(day)
            if out[i] is not None:
                raise ValueError(f"{field}: {day} is given twice")
            out[i] = _minutes(minutes, f"{field} {day}")
    return tuple(out)


def day_minutes_text(days: Tuple[Optional[int], ...]) -> str:
    """The stored (and shown) form of per-weekday minutes: "fri=90 sat=150" ("" when none)."""
    return " ".join(f"{DAYS[i]}={m}" for i, m in enumerate(days) if m is not None)


def parse_target(text: str, services: Optional[Iterable[str]] = None,
                 categories: Iterable[str] = ()) -> str:
    """A budget target from what a parent types: a service id (``roblox``), a category (``games``), ``all``
    (also "internet"), or the stored forms ``service:roblox`` / ``category:games``. ``categories`` adds the
    compiled lists' categories to the standard ones. ValueError names the field and the choices."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("service or category: give a service id (see `hearth services list`), a category "
                         "or all")
    word = text.strip().lower()
    if services is None:
        from blocklists.services import service_ids
        services = service_ids()
    services = set(services)
    cats = set(CATEGORIES) | set(categories)
    kind, _, name = word.partition(":")
    if name:
        if kind == "service" and name in services:
            return f"service:{name}"
        if kind == "category" and name in cats:
            return f"category:{name}"
        raise ValueError(f"service or category: unknown {kind} {name!r}")
    if word in _ALL_WORDS:
        return ALL
    if word in services:
        return f"service:{word}"
    if word in cats:
        return f"category:{word}"
    raise ValueError(f"service or category: {text.strip()!r} is neither a service (see `hearth services list`) "
                     f"nor a category ({', '.join(CATEGORIES)}) nor all")


def target_label(target: str, service_names: Optional[Dict[str, str]] = None) -> str:
    """What a parent reads: "Roblox", "games", "all internet"."""
    if target == ALL:
        return "all internet"
    kind, _, name = target.partition(":")
    if kind == "service":
        if service_names is None:
            from blocklists.services import load_services
            svc = load_services().get(name)
            return svc.name if svc else name
        return service_names.get(name, name)
    return name


@dataclass(frozen=True)
class Budget:
    """``minutes`` on school days (Mon-Fri), ``weekend`` on Saturday and Sunday, for ``target``; ``days``
    = a weekday's own minutes (Monday first, None = the school-day or weekend value; any form
    :func:`parse_day_minutes` reads)."""

    profile: str
    target: str
    minutes: int
    weekend: int
    reset: str = "00:00"
    id: Optional[int] = None
    days: Tuple[Optional[int], ...] = NO_DAYS

    def __post_init__(self) -> None:
        if not isinstance(self.profile, str) or not self.profile.strip():
            raise ValueError("profile: a budget needs a profile")
        t = self.target
        if not isinstance(t, str) or not (t == ALL or t.startswith(("service:", "category:"))):
            raise ValueError(f"target: use service:<id>, category:<name> or all, not {t!r}")
        object.__setattr__(self, "minutes", _minutes(self.minutes, "minutes"))
        object.__setattr__(self, "weekend", _minutes(self.weekend, "weekend"))
        object.__setattr__(self, "reset", _hhmm(self.reset))
        object.__setattr__(self, "days", parse_day_minutes(self.days))

    def limit(self, day: _dt.date) -> int:
        """The minutes of budget ``day`` (the date its budget day starts on)."""
        own = self.days[day.weekday()]
        if own is not None:
            return own
        return self.weekend if day.weekday() >= 5 else self.minutes

    @property
    def days_text(self) -> str:
        """The weekdays with their own minutes, "fri=90 sat=150" ("" = none)."""
        return day_minutes_text(self.days)

    def day_map(self) -> Dict[str, int]:
        """{"fri": 90, ...}: the weekdays with their own minutes (the API's form)."""
        return {DAYS[i]: m for i, m in enumerate(self.days) if m is not None}


class BudgetUsage(NamedTuple):
    """A profile's use of one budget on one budget day (``day`` is ISO ``YYYY-MM-DD``)."""

    profile: str
    target: str
    day: str
    used: int            # minutes counted
    extra: int = 0       # minutes a parent added today ("15 more minutes")
    last_minute: int = 0  # the UNIX minute of the last foreground minute seen (gap filling across batches)
    pending: bool = False  # that minute has not been counted yet (it waits for a second one nearby)
    updated: float = 0.0  # the (effective) UNIX time of the last update: the clock's high-water mark


def budget_day(now: float, tz: _dt.tzinfo, reset: str = "00:00") -> Tuple[_dt.date, float]:
    """(the budget day containing UNIX time ``now``, the UNIX time of its end = the next reset)."""
    h, m = (int(x) for x in reset.split(":"))
    local = _dt.datetime.fromtimestamp(now, tz)
    start_date = local.date() if (local.hour, local.minute) >= (h, m) else local.date() - _dt.timedelta(days=1)
    nxt = _dt.datetime.combine(start_date + _dt.timedelta(days=1), _dt.time(h, m), tzinfo=tz)
    return start_date, nxt.timestamp()


def effective_now(now: float, high_water: Optional[float]) -> float:
    """The time budgets count and enforce at: ``now``, or the high-water mark when the clock is behind it
    (see the module docstring)."""
    if high_water is None or now >= high_water:
        return now
    if now >= CLOCK_FLOOR and high_water - now > TRUST_BACKWARD:
        return now
    return high_water


class SteadyClock:
    """Timestamps that never run backwards: a jump back (> ``slack`` seconds) is absorbed into an offset,
    a jump forward ends the offset when the clock has caught up with where it was."""

    def __init__(self, high_water: Optional[float] = None, slack: float = 120.0):
        self.slack = slack
        self.last_raw: Optional[float] = high_water
        self.last: Optional[float] = high_water
        self.offset = 0.0

    def __call__(self, raw: float) -> float:
        if self.last_raw is None:
            self.last_raw = self.last = raw
            return raw
        if raw < self.last_raw - self.slack:                  # jumped back: continue from where we were
            if raw >= CLOCK_FLOOR and self.last - raw > TRUST_BACKWARD:
                self.offset = 0.0                              # a set clock far behind: the old time was wrong
                self.last = raw
            else:
                self.offset = self.last - raw
        elif raw > self.last_raw + self.slack and self.offset:  # jumped forward: drop the offset if caught up
            self.offset = max(0.0, self.last - raw)
        self.last_raw = raw
        eff = raw + self.offset
        if eff > self.last:
            self.last = eff
        return eff


class Spent(NamedTuple):
    """The budgets of one profile: the used-up ones (``until`` = when each ends, the next reset, by target)
    and ``watched``, every target with a budget (used up or not), whose answers carry a short TTL
    (:data:`BUDGET_TTL`) so devices re-ask soon and are blocked promptly once the minutes are gone."""

    services: Dict[str, float]
    categories: Dict[str, float]
    all_until: Optional[float]
    labels: Dict[str, str]
    watched: FrozenSet[str] = frozenset()

    def key(self) -> tuple:
        return (tuple(sorted(self.services.items())), tuple(sorted(self.categories.items())), self.all_until,
                tuple(sorted(self.watched)))

    @property
    def used_up(self) -> bool:
        """Some budget of the profile is used up."""
        return bool(self.services or self.categories or self.all_until is not None)

    @property
    def ends(self) -> Iterable[float]:
        yield from self.services.values()
        yield from self.categories.values()
        if self.all_until is not None:
            yield self.all_until


def day_of(budget: Budget, now: float, tz: _dt.tzinfo) -> Tuple[str, int, float]:
    """(ISO budget day, its limit in minutes, its end) of ``budget`` at effective time ``now``."""
    day, end = budget_day(now, tz, budget.reset)
    return day.isoformat(), budget.limit(day), end


def spent_budgets(budgets: Iterable[Budget], usage: Iterable[BudgetUsage], now: float,
                  tz: _dt.tzinfo) -> Dict[str, Spent]:
    """The budgets at effective time ``now`` by profile (lower-case), from the stored usage: every profile
    with a budget gets a :class:`Spent` (its used-up budgets, possibly none, and its watched targets)."""
    used: Dict[tuple, BudgetUsage] = {(u.profile.lower(), u.target, u.day): u for u in usage}
    out: Dict[str, Spent] = {}
    watched: Dict[str, set] = {}
    for b in budgets:
        watched.setdefault(b.profile.lower(), set()).add(b.target)
    for b in budgets:
        day, limit, end = day_of(b, now, tz)
        s = out.setdefault(b.profile.lower(), Spent({}, {}, None, {}, frozenset(watched[b.profile.lower()])))
        u = used.get((b.profile.lower(), b.target, day))
        spent = (u.used if u else 0) >= limit + (u.extra if u else 0)
        if not spent:
            continue
        kind, _, name = b.target.partition(":")
        if b.target == ALL:
            out[b.profile.lower()] = s._replace(all_until=end)
        elif kind == "service":
            s.services[name] = end
        else:
            s.categories[name] = end
    return out


def minutes_left(budget: Budget, usage: Optional[BudgetUsage], now: float, tz: _dt.tzinfo) -> Tuple[int, int, int]:
    """(used, limit including extra minutes, left) of ``budget`` today."""
    _day, limit, _end = day_of(budget, now, tz)
    used = usage.used if usage else 0
    total = limit + (usage.extra if usage else 0)
    return used, total, max(0, total - used)


def unix_minute(ts: float) -> int:
    return math.floor(ts / 60)


def targets_of(budgets: Iterable[Budget]) -> FrozenSet[str]:
    return frozenset(b.target for b in budgets)
