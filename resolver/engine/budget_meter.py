"""The budget meter: counts time-budget minutes from the query log's batches, off the query path.

The query log's writer thread hands every written batch to :meth:`BudgetMeter.observe` (the rows are
already decoded there, so counting adds no work per answered query on the event loop). The meter maps
each client to its profile through the engine's current policy, each name to that profile's budget
targets (:class:`resolver.policy.budget_count.TargetMatcher`), applies the counting rule
(:class:`resolver.policy.budget_count.MinuteCounter`) and adds the minutes that became active to the
store in one transaction per batch: at most one write a second, none while nothing is counted. When a
budget is used up the store bumps its policy version so the engine re-reads the policy and blocks.

Several nodes on one store: the meter never writes its own totals (two nodes would overwrite each other's
count); :meth:`count_budget_minutes` adds its active minutes to the stored count of every node under the
store's write lock (a minute two nodes saw counts once, a session goes on across nodes) and hands back the
merged rows, which the meter takes as its own, so its totals follow the other nodes' too.

Time: every timestamp goes through a :class:`resolver.policy.budgets.SteadyClock` started at the store's
high-water mark, so a clock jump neither resets nor burns a budget (see :mod:`resolver.policy.budgets`).
A restart reloads the recent usage rows: today's minutes and an open session carry on.
"""
from __future__ import annotations

import datetime as _dt
import logging
import threading
from typing import Callable, Dict, Optional, Sequence, Tuple

from resolver.policy.budget_count import MinuteCounter, TargetMatcher
from resolver.policy.budgets import (Budget, BudgetUsage, Spent, SteadyClock, budget_day, effective_now,
                                     spent_budgets)
from resolver.store.protocol import is_blocked

log = logging.getLogger("hearth.budgets")


def zone(name: str) -> _dt.tzinfo:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return _dt.timezone.utc


class BudgetMeter:
    """``profile_of(client)`` names the profile (the engine's current policy) of a client address."""

    def __init__(self, profile_of: Callable[[str], Optional[str]]):
        self.profile_of = profile_of
        self._lock = threading.Lock()
        self._matchers: Dict[str, TargetMatcher] = {}
        self._budgets: Dict[Tuple[str, str], Budget] = {}
        self._tz: _dt.tzinfo = _dt.timezone.utc
        self._counter: Optional[MinuteCounter] = None
        self._clock: Optional[SteadyClock] = None
        self.writes = 0           # usage transactions written
        self._unsent: list = []   # active minutes a failed write left to send with the next batch

    # -- from the event loop, when the policy is (re)applied

    def configure(self, budgets: Sequence[Budget], usage: Sequence[BudgetUsage], high_water: Optional[float],
                  index, meta: dict, tz: str, now: float) -> Dict[str, Spent]:
        """Take the store's budgets; return the used-up ones at ``now`` (by lower-case profile)."""
        tzinfo = zone(tz)
        by_profile: Dict[str, list] = {}
        for b in budgets:
            by_profile.setdefault(b.profile.lower(), []).append(b)
        matchers = {p: TargetMatcher(bs, index, meta) for p, bs in by_profile.items()}
        with self._lock:
            self._matchers = matchers
            self._budgets = {(b.profile.lower(), b.target): b for b in budgets}
            self._tz = tzinfo
            if self._counter is None or self._counter.tz != tzinfo:
                self._counter = MinuteCounter(tzinfo, self._budget_of)
                self._counter.load(usage)
            if self._clock is None:
                self._clock = SteadyClock(high_water)
        return spent_budgets(budgets, usage, effective_now(now, high_water), tzinfo)

    def _budget_of(self, profile: str, target: str) -> Optional[Budget]:
        return self._budgets.get((profile.lower(), target))

    # -- from the query log's writer thread

    def observe(self, rows: Sequence[tuple], store) -> None:
        """Count a written batch of query-log rows (ts, client, qname, qtype, rcode, answer, upstream,
        latency, cached, reason) and store the usage that changed.

        Cost: a batch is about a second of answers, so nearly always within one clock minute; its rows
        are reduced to the distinct (client, name) pairs of each minute by one set comprehension, and
        only those are matched and counted (one clock reading per batch, not per row)."""
        if not rows:
            return
        with self._lock:
            matchers, counter, clock = self._matchers, self._counter, self._clock
            if not matchers or counter is None or clock is None:
                return
            first, last = rows[0][0], rows[-1][0]
            shift = clock(first) - first             # the steady clock's correction, for this batch
            clock(last)
            m0, m1 = int((first + shift) // 60), int((last + shift) // 60)
            if m0 == m1:
                chunks = [(m0, rows)]
            else:                                    # the batch crosses a minute: split it there
                by_minute: Dict[int, list] = {}
                for r in rows:
                    by_minute.setdefault(int((r[0] + shift) // 60), []).append(r)
                chunks = sorted(by_minute.items())
            profiles: Dict[str, Optional[str]] = {}
            for minute, chunk in chunks:
                pairs = {(r[1], r[2]) for r in chunk if r[9] is None or not is_blocked(r[9])}
                ts = minute * 60.0
                for client, name in pairs:
                    profile = profiles.get(client, "")
                    if profile == "":
                        profile = profiles[client] = self.profile_of(client)
                    if profile is None:
                        continue
                    matcher = matchers.get(profile.lower())
                    if matcher is None:
                        continue
                    found = matcher.targets(name)
                    if found:
                        counter.observe(ts, client, profile, found, name)
            counter.take_changes()                   # the node's own totals: the store's merge replaces them
            activity = self._unsent + counter.take_activity()
            self._unsent = []
            if not activity:
                return
            tz = self._tz
        try:
            merged = store.count_budget_minutes(activity, tz)
            self.writes += 1
        except Exception as exc:  # noqa: BLE001 - a locked store: the minutes are sent with the next batch
            log.warning("time budgets: could not store usage: %s", exc)
            with self._lock:
                self._unsent = (activity + self._unsent)[-100_000:]
            return
        with self._lock:
            counter.load(merged)

    def today(self, now: float) -> Dict[Tuple[str, str], int]:
        """Minutes counted today by (profile, target) (for /status)."""
        with self._lock:
            counter = self._counter
            if counter is None:
                return {}
            out = {}
            for (p, t), b in self._budgets.items():
                day = budget_day(now, self._tz, b.reset)[0].isoformat()
                out[(p, t)] = counter.used(p, t, day)
            return out
