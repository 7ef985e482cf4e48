"""Counting the minutes of a time budget from the names devices resolve.

DNS shows *activity*, not screen time: a phone resolves a name when an app needs it, and then keeps the
answer for its TTL. So Hearth counts a minute when the device shows *foreground* activity for the
budget's service, category or (for "all internet") anything, by this rule:

1. **Background names never count**: push, telemetry, crash reports, connectivity and time checks, listed
   as data beside the services catalogue (``blocklists/data/services-background.json``: ``global`` and, by
   service, the apps' own telemetry endpoints; every entry is background for every budget, "all internet"
   too). Blocked answers never count either.
2. **An active minute**: in one UNIX minute, one device resolved at least :data:`MIN_NAMES` *distinct*
   foreground names of the target (A, AAAA and HTTPS of the same name are one name). An app in use
   loads feeds, images, game servers: several names a minute; an app idling in the background pings one
   endpoint now and then.
3. **Sessions, not blips**: an active minute counts only when another active minute of the same profile
   and target lies at most :data:`MAX_GAP` minutes before it; then every minute from that one to this is
   counted (the quiet minutes in between are the device's DNS cache at work, not a pause). A lone active
   minute (a sync burst from a locked phone) counts nothing.
4. **Per profile**: a minute is counted once for the profile, whichever and however many of its devices
   were active in it (a child's phone and tablet share the budget, and two at once is still one minute).

Validated on recorded traces (``tests/data/budget-traces.json``): an app opened for 10 minutes counts 10 ± 2;
an app idle in the background for an hour and a phone locked overnight count (almost) 0.

:class:`TargetMatcher` says which budget targets of one profile a name belongs to; :class:`MinuteCounter`
applies rules 2-4 to a stream of (time, device, profile, targets, name) and keeps per-day totals.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from resolver.base.names import normalise_name
from resolver.policy.budgets import ALL, Budget, BudgetUsage, budget_day, unix_minute

MIN_NAMES = 2        # distinct foreground names of a target, from one device, in one minute
MAX_GAP = 3          # minutes between two active minutes that still make one session

BACKGROUND_JSON = "services-background.json"


@functools.lru_cache(maxsize=1)
def background_names() -> Tuple[FrozenSet[str], Dict[str, FrozenSet[str]]]:
    """(names in the background for every service, names per service id), from the bundled data."""
    from blocklists.services import SERVICES_JSON

    data = json.loads((SERVICES_JSON.parent / BACKGROUND_JSON).read_text(encoding="utf-8"))
    common = frozenset(normalise_name(n) for n in data.get("global", ()))
    per = {sid: frozenset(normalise_name(n) for n in names) for sid, names in data.get("services", {}).items()}
    return common, per


def _suffixes(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


class TargetMatcher:
    """Which of one profile's budget targets a (normalised, text) name counts for."""

    def __init__(self, budgets: Iterable[Budget], index=None, meta: Optional[dict] = None,
                 services: Optional[dict] = None):
        targets = {b.target for b in budgets}
        self.all = ALL in targets
        common, per = background_names()
        self._background = common.union(*per.values())   # a service's telemetry is background for every budget
        self._domains: Dict[str, List[Tuple[str, bool]]] = {}   # domain -> [(target, subdomains too)]
        sids = [t.partition(":")[2] for t in targets if t.startswith("service:")]
        if sids and services is None:
            from blocklists.services import load_services
            services = load_services()
        for sid in sids:
            svc = (services or {}).get(sid)
            if svc is None:
                continue
            for domain, sub in svc.domains:
                self._domains.setdefault(domain, []).append(("service:" + sid, sub))
        self._memo: Dict[str, FrozenSet[str]] = {}
        self._index = index
        self._cats: List[Tuple[str, int]] = []
        cats = [t.partition(":")[2] for t in targets if t.startswith("category:")]
        if cats and index is not None:
            meta = meta or {}
            for cat in cats:
                mask = 0
                for bit, name in enumerate(index.categories):
                    shown = (meta.get(name) or {}).get("category", name)
                    if shown == cat or name == cat:
                        mask |= 1 << bit
                if mask:
                    self._cats.append(("category:" + cat, mask))

    def targets(self, name: str) -> FrozenSet[str]:
        """The targets ``name`` counts for (empty when it is a background name or matches none); memoised."""
        found = self._memo.get(name)
        if found is None:
            if len(self._memo) >= 50000:
                self._memo.clear()
            found = self._memo[name] = self._targets(name)
        return found

    def _targets(self, name: str) -> FrozenSet[str]:
        suffixes = _suffixes(name)
        bg = self._background
        if any(s in bg for s in suffixes):
            return frozenset()
        out: Set[str] = set()
        if self._domains:
            for i, s in enumerate(suffixes):
                for target, sub in self._domains.get(s, ()):
                    if sub or i == 0:
                        out.add(target)
        for target, mask in self._cats:
            try:
                if self._index.lookup(name, mask) is not None:
                    out.add(target)
            except ValueError:   # the index was closed by a reload: the next rebuild brings a new one
                pass
        if self.all:
            out.add(ALL)
        return frozenset(out)


class MinuteCounter:
    """Rules 2-4 over a time-ordered stream of resolved names; usage per (profile, target, day).

    ``budget_of(profile, target)`` gives the Budget (for its reset time), ``tz`` the appliance's zone.
    State from the store (:class:`BudgetUsage` rows) is loaded with :meth:`load`, so a restart continues
    a session and today's totals. :meth:`take_changes` returns the rows changed since the last call.
    """

    def __init__(self, tz: _dt.tzinfo, budget_of: Callable[[str, str], Optional[Budget]]):
        self.tz = tz
        self.budget_of = budget_of
        self._names: Dict[Tuple[str, str, int], Set[str]] = {}   # (device, target, minute) -> names seen
        self._done: Set[Tuple[str, str, int]] = set()            # (device, target, minute) already active
        self._minute = 0                                          # newest minute seen (pruning)
        self.usage: Dict[Tuple[str, str, str], BudgetUsage] = {}  # (profile lower, target, day) -> usage
        self._last: Dict[Tuple[str, str], Tuple[int, bool]] = {}  # (profile, target) -> (last minute, pending)
        self._changed: Set[Tuple[str, str, str]] = set()
        self._activity: List[Tuple[str, str, int]] = []         # (profile, target, minute) newly active

    def load(self, rows: Iterable[BudgetUsage]) -> None:
        for u in rows:
            key = (u.profile.lower(), u.target, u.day)
            self.usage[key] = u
            pk = (u.profile.lower(), u.target)
            if u.last_minute >= self._last.get(pk, (0, False))[0]:
                self._last[pk] = (u.last_minute, u.pending)

    def observe(self, ts: float, device: str, profile: str, targets: Iterable[str], name: str) -> None:
        minute = unix_minute(ts)
        if minute > self._minute:
            if minute > self._minute + 1:
                self._prune(minute)
            self._minute = minute
        for target in targets:
            key = (device, target, minute)
            if key in self._done:
                continue
            names = self._names.setdefault(key, set())
            names.add(name)
            if len(names) >= MIN_NAMES:
                self._done.add(key)
                del self._names[key]
                self._active(profile, target, minute)

    def _prune(self, minute: int) -> None:
        self._names = {k: v for k, v in self._names.items() if k[2] >= minute - 1}
        self._done = {k for k in self._done if k[2] >= minute - 1}

    def _active(self, profile: str, target: str, minute: int) -> None:
        pk = (profile.lower(), target)
        last, pending = self._last.get(pk, (0, False))
        if minute <= last:
            return                                   # already counted (another device, the same minute)
        self._activity.append((profile, target, minute))
        if last and minute - last <= MAX_GAP:
            self._add(profile, target, minute, minute - last + (1 if pending else 0), False)
        else:
            self._add(profile, target, minute, 0, True)

    def _add(self, profile: str, target: str, minute: int, minutes: int, pending: bool) -> None:
        budget = self.budget_of(profile, target)
        reset = budget.reset if budget is not None else "00:00"
        day = budget_day(minute * 60, self.tz, reset)[0].isoformat()
        key = (profile.lower(), target, day)
        u = self.usage.get(key) or BudgetUsage(budget.profile if budget else profile, target, day, 0)
        self.usage[key] = u._replace(used=u.used + minutes, last_minute=minute, pending=pending,
                                     updated=max(u.updated, minute * 60.0))
        self._last[(profile.lower(), target)] = (minute, pending)
        self._changed.add(key)

    def used(self, profile: str, target: str, day: str) -> int:
        u = self.usage.get((profile.lower(), target, day))
        return u.used if u else 0

    def take_activity(self) -> List[Tuple[str, str, int]]:
        """The (profile, target, UNIX minute) that became active since the last call, in time order: what a
        node adds to a store shared with other nodes (:func:`merge_activity`)."""
        out, self._activity = self._activity, []
        return out

    def take_changes(self) -> List[BudgetUsage]:
        rows = [self.usage[k] for k in sorted(self._changed)]
        self._changed.clear()
        return rows

    def forget_before(self, day: str) -> None:
        """Drop in-memory totals of days before ``day`` (ISO) (the store keeps them for reports)."""
        self.usage = {k: v for k, v in self.usage.items() if k[2] >= day}


def merge_activity(stored: Iterable[BudgetUsage], activity: Iterable[Tuple[str, str, int]], budget: Budget,
                   tz: _dt.tzinfo) -> List[BudgetUsage]:
    """Rules 3-4 applied to one budget's stored usage (its recent days' rows, any node's) and the active minutes
    one node saw since its last write: the changed rows, with the totals of every node. A minute another node
    already counted (at or before the stored last minute) counts nothing again; a session another node began
    goes on across nodes. Used by the store under its write lock (:mod:`resolver.store.budget_rooms`)."""
    counter = MinuteCounter(tz, lambda _p, _t: budget)
    counter.load(stored)
    for profile, target, minute in sorted(activity, key=lambda a: a[2]):
        counter._active(profile, target, minute)
    return counter.take_changes()


def counted_minutes(events: Iterable[Tuple[float, str, str]], matcher: TargetMatcher) -> Dict[str, List[int]]:
    """The UNIX minutes counted per target from time-ordered ``(unix time, device, name)`` events of one
    profile: the same rules 1-4 as :class:`MinuteCounter`, over a whole stretch at once (reports)."""
    names: Dict[Tuple[str, str, int], Set[str]] = {}
    active: Dict[str, Set[int]] = {}
    for ts, device, name in events:
        minute = unix_minute(ts)
        for target in matcher.targets(name):
            seen = names.setdefault((device, target, minute), set())
            if len(seen) < MIN_NAMES:
                seen.add(name)
                if len(seen) == MIN_NAMES:
                    active.setdefault(target, set()).add(minute)
    out: Dict[str, List[int]] = {}
    for target, minutes in active.items():
        ordered = sorted(minutes)
        counted: Set[int] = set()
        for a, b in zip(ordered, ordered[1:]):
            if b - a <= MAX_GAP:
                counted.update(range(a, b + 1))
        out[target] = sorted(counted)
    return out


def count_trace(events: Iterable[Tuple[float, str, str]], budgets: Iterable[Budget], tz: _dt.tzinfo,
                profile: str = "child") -> Dict[str, int]:
    """Minutes per target counted from ``(unix time, device, name)`` events (tests and `hearth` tools)."""
    budgets = list(budgets)
    matcher = TargetMatcher(budgets)
    by_target = {b.target: b for b in budgets}
    counter = MinuteCounter(tz, lambda _p, t: by_target.get(t))
    for ts, device, name in events:
        counter.observe(ts, device, profile, matcher.targets(normalise_name(name)), name)
    totals: Dict[str, int] = {}
    for (_p, target, _day), u in counter.usage.items():
        totals[target] = totals.get(target, 0) + u.used
    return totals
