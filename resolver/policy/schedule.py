"""Weekly time windows for per-profile schedules ("bedtime", "homework"), DST-correct.

A :class:`Window` is one weekly rule in the local wall-clock time of the appliance's
time zone (config ``timezone``): on each of its ``days`` it starts at ``start`` and
ends at ``end`` the same day, or the next day when ``end <= start``. ``24:00`` as the
end means midnight at the end of the start day. A window that crosses midnight
belongs to the day it starts: "sat 22:00-02:00" is active early on Sunday morning,
not early on Saturday morning. ``start == end`` is rejected (it would be ambiguous
between "never" and "all day"; write ``00:00-24:00`` for a whole day).

Turning wall-clock times into instants: one rule, for starts and ends alike
--------------------------------------------------------------------------
A local date and time is *reached* at the first instant the wall clock shows that
time or later. A window is active from the instant its start is reached until the
instant its end is reached (start included, end excluded). Concretely:

* A time that occurs once is that instant.
* A time that occurs twice (fall back) means its first occurrence (``fold=0``).
  On Europe/Berlin's 2026-10-25, where 02:00-03:00 is repeated: 01:00-03:00 lasts
  3 real hours; 02:30-04:00 lasts 2.5 real hours (through the repeated hour);
  01:00-02:30 ends at the first 02:30 and is not active during the repeat;
  02:30-02:45 runs 15 minutes during the first pass only.
* A time that does not exist (spring-forward gap) means the first instant after the
  gap, i.e. the transition itself. On Europe/Berlin's 2026-03-29, where 02:00-03:00
  is skipped: a window starting 02:30 starts at 03:00 CEST; 01:00-04:00 lasts 2 real
  hours; a window ending at 02:30 ends at 03:00 CEST; a window lying entirely in the
  gap (02:10-02:40) is empty and does not happen that day.

The rule is monotonic (a later wall-clock time never maps to an earlier instant), so
occurrences of a window never overlap themselves and windows that touch in local time
touch in real time.

Boundaries
----------
:meth:`WeeklySchedule.next_change` is the next instant strictly after ``now`` at which
the set of active windows changes (a window opening or closing). A window that closes
at the very instant it reopens (``all 00:00-24:00``) is not a change. It is ``None``
when there are no windows or the active set never changes. The engine caps TTLs of
affected answers at ``next_change(now) - now``.

Cost: occurrences are computed per local start date (from the window list, a handful
of zone conversions each) and memoised; :meth:`WeeklySchedule.state` looks at the
days around ``now`` (two days back, eight ahead, further only if nothing changes in
that span) and never iterates over minutes.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union
from zoneinfo import ZoneInfo

__all__ = ["DAYS", "END_OF_DAY", "Window", "WeeklySchedule", "parse_days", "parse_hhmm"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# What parse_hhmm("24:00") returns: midnight at the end of the day, valid only as a window's end.
END_OF_DAY = _dt.time.max

_DAY_GROUPS = {
    "all": DAYS,
    "daily": DAYS,
    "everyday": DAYS,
    "weekdays": DAYS[:5],
    "weekends": DAYS[5:],
    "weekend": DAYS[5:],
}
_DAY_NAMES = {name: i for i, name in enumerate(DAYS)}
_DAY_NAMES.update({full: i for i, full in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))})
_DAYS_HELP = "use mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, all, weekdays or weekends"

_HHMM = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_MIDNIGHT = _dt.time(0, 0)
_ONE_DAY = _dt.timedelta(days=1)


def _day_index(token: str, text: str) -> int:
    try:
        return _DAY_NAMES[token]
    except KeyError:
        raise ValueError(f"unknown day {token!r} in {text!r}: {_DAYS_HELP}") from None


def parse_days(text: str) -> tuple[str, ...]:
    """Days from "mon,tue", "mon-fri", "fri-mon" (wraps), "all", "weekdays", "weekends".

    Case-insensitive; commas and/or spaces separate items. Returns day names in week
    order (mon first) without duplicates. Raises ValueError with a readable message.
    """
    if not isinstance(text, str):
        raise ValueError(f"days must be text such as 'mon-fri', not {text!r}")
    norm = re.sub(r"\s*-\s*", "-", text.strip().lower())
    tokens = [tok for tok in re.split(r"[,\s]+", norm) if tok]
    if not tokens:
        raise ValueError(f"no days given in {text!r}: {_DAYS_HELP}")
    chosen = set()
    for tok in tokens:
        if tok in _DAY_GROUPS:
            chosen.update(_DAY_NAMES[d] for d in _DAY_GROUPS[tok])
        elif "-" in tok:
            parts = tok.split("-")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"bad day range {tok!r} in {text!r}: write it as first-last, e.g. mon-fri")
            first, last = _day_index(parts[0], text), _day_index(parts[1], text)
            i = first
            chosen.add(i)
            while i != last:
                i = (i + 1) % 7
                chosen.add(i)
        else:
            chosen.add(_day_index(tok, text))
    return tuple(DAYS[i] for i in sorted(chosen))


def parse_hhmm(text: str) -> _dt.time:
    """"21:00", "7:05" -> time; "24:00" -> END_OF_DAY (a window may end, not start, then).

    Hours 0-23, minutes 00-59 (two digits). Raises ValueError otherwise.
    """
    m = _HHMM.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"invalid time {text!r}: expected HH:MM between 00:00 and 23:59, or 24:00 for the end of "
                         "the day")
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour == 24 and minute == 0:
        return END_OF_DAY
    if hour > 23:
        raise ValueError(f"invalid time {text!r}: the hour must be 0-23 (24:00 is allowed only as an end)")
    if minute > 59:
        raise ValueError(f"invalid time {text!r}: the minutes must be 00-59")
    return _dt.time(hour, minute)


def _fmt_time(t: _dt.time) -> str:
    if t == END_OF_DAY:
        return "24:00"
    return t.strftime("%H:%M:%S" if t.second or t.microsecond else "%H:%M")


@dataclass(frozen=True)
class Window:
    """One weekly rule: starts on each of ``days`` at ``start``, ends at ``end``.

    ``end <= start`` means the window ends the next day (crosses midnight); ``end ==
    END_OF_DAY`` (24:00) means midnight at the end of the start day. ``days`` may be
    given as text ("mon-fri") or day names/groups ("all"); it is normalised to day
    names in week order. ``tag`` carries the caller's payload (the action) untouched.
    """

    days: tuple[str, ...]
    start: _dt.time
    end: _dt.time
    tag: Any = None

    def __post_init__(self) -> None:
        days = self.days
        if isinstance(days, str):
            norm = parse_days(days)
        else:
            items = list(days)
            if not items:
                raise ValueError("a window needs at least one day")
            if not all(isinstance(d, str) for d in items):
                raise ValueError(f"days must be day names such as 'mon', got {days!r}")
            norm = parse_days(",".join(items))
        object.__setattr__(self, "days", norm)
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, _dt.time) or value.tzinfo is not None:
                raise ValueError(f"window {name} must be a local datetime.time without tzinfo, got {value!r}")
        if self.start == END_OF_DAY:
            raise ValueError("a window cannot start at 24:00 (24:00 is allowed only as an end); use 00:00")
        if self.start == self.end:
            raise ValueError(f"window starts and ends at {_fmt_time(self.start)}: give different times "
                             "(00:00-24:00 for a whole day)")

    @classmethod
    def parse(cls, days: str, start: str, end: str, tag: Any = None) -> Window:
        """Build from text, e.g. ``Window.parse("mon-fri", "16:00", "18:00", tag=...)``."""
        return cls(parse_days(days), parse_hhmm(start), parse_hhmm(end), tag)

    @property
    def crosses_midnight(self) -> bool:
        """True when the window ends on the day after it starts (24:00 counts as the start day)."""
        return self.end != END_OF_DAY and self.end <= self.start

    def _end_on(self) -> tuple[int, _dt.time]:
        """(days after the start date, local time) of the end."""
        if self.end == END_OF_DAY:
            return 1, _MIDNIGHT
        return (1, self.end) if self.end <= self.start else (0, self.end)

    def __str__(self) -> str:
        return f"{','.join(self.days)} {_fmt_time(self.start)}-{_fmt_time(self.end)}"


_Occurrence = Tuple[float, float, int]   # (start instant, end instant, window index)


class WeeklySchedule:
    """A set of windows evaluated in one time zone; answers "what is active now, until when"."""

    _CACHE_DAYS = 64

    def __init__(self, windows: Iterable[Window], tz: Union[str, _dt.tzinfo]):
        self.windows: tuple[Window, ...] = tuple(windows)
        for w in self.windows:
            if not isinstance(w, Window):
                raise TypeError(f"expected Window, got {w!r}")
        if isinstance(tz, _dt.tzinfo):
            self.tz = tz
        else:
            try:
                self.tz = ZoneInfo(tz)
            except (KeyError, ValueError, TypeError):   # ZoneInfoNotFoundError is a KeyError
                raise ValueError(f"unknown time zone {tz!r} (use an IANA name such as Asia/Ho_Chi_Minh)") from None
        # Per weekday (0 = Monday): (window index, start time, end day offset, end time).
        self._by_weekday: List[List[tuple[int, _dt.time, int, _dt.time]]] = [[] for _ in DAYS]
        for i, w in enumerate(self.windows):
            offset, end = w._end_on()
            for day in w.days:
                self._by_weekday[_DAY_NAMES[day]].append((i, w.start, offset, end))
        self._occurrences: Dict[_dt.date, tuple[_Occurrence, ...]] = {}

    # -- public API ---------------------------------------------------------------------------------------

    def active(self, now: float) -> list[Window]:
        """Windows containing the UNIX time ``now`` (start included, end excluded), in definition order."""
        if not self.windows:
            return []
        now = float(now)
        return [self.windows[i] for i in sorted(self._active_at(now, self._local_date(now)))]

    def next_change(self, now: float) -> Optional[float]:
        """UNIX time of the next instant after ``now`` at which the active set changes; None if it never does."""
        return self.state(now)[1]

    def state(self, now: float) -> tuple[list[Window], Optional[float]]:
        """``(active(now), next_change(now))`` computed together."""
        if not self.windows:
            return [], None
        now = float(now)
        day = self._local_date(now)
        current = self._active_at(now, day)
        change = self._next_change(now, day, current, 8)
        if change is None:
            # Nothing changes for a week: only possible around a window that is empty on a DST day,
            # or for windows that cover all time. Look three weeks ahead to tell the two apart.
            change = self._next_change(now, day, current, 22)
        return [self.windows[i] for i in sorted(current)], change

    # -- internals ----------------------------------------------------------------------------------------

    def _local_date(self, now: float) -> _dt.date:
        return _dt.datetime.fromtimestamp(now, self.tz).date()

    def _wall(self, ts: float) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(ts, self.tz).replace(tzinfo=None)

    def _instant(self, day: _dt.date, at: _dt.time) -> float:
        """The instant local ``day at`` is reached: fold=0 when repeated, the end of the gap when skipped."""
        naive = _dt.datetime.combine(day, at)
        first = naive.replace(tzinfo=self.tz).timestamp()
        if self._wall(first) == naive:          # exists (naive comparison ignores fold)
            return first
        # In a gap: fold=0 and fold=1 give the instants computed with the offsets before and after the
        # transition; the transition lies between them. Find it (to the second) by bisection.
        other = naive.replace(tzinfo=self.tz, fold=1).timestamp()
        lo, hi = math.floor(min(first, other)), math.ceil(max(first, other))
        if not (self._wall(lo) < naive <= self._wall(hi)):
            return first                        # not a plain gap (should not happen); keep zoneinfo's answer
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._wall(mid) >= naive:
                hi = mid
            else:
                lo = mid
        return float(hi)

    def _day_occurrences(self, day: _dt.date) -> tuple[_Occurrence, ...]:
        """Non-empty occurrences of the windows that start on local date ``day``."""
        cached = self._occurrences.get(day)
        if cached is not None:
            return cached
        found = []
        for i, start, offset, end in self._by_weekday[day.weekday()]:
            s = self._instant(day, start)
            e = self._instant(day + _dt.timedelta(days=offset), end)
            if e > s:
                found.append((s, e, i))
        result = tuple(found)
        if len(self._occurrences) >= self._CACHE_DAYS:
            self._occurrences.clear()
        self._occurrences[day] = result
        return result

    def _active_at(self, now: float, day: _dt.date) -> frozenset[int]:
        # An occurrence lasts at most ~25 h and ends on the local day after it starts, so only those starting
        # the day before, the day of, or (when a fall-back repeats the end of the day) the day after `now`
        # can contain it; two days back is a spare margin.
        found = set()
        for k in range(-2, 2):
            for s, e, i in self._day_occurrences(day + _dt.timedelta(days=k)):
                if s <= now < e:
                    found.add(i)
        return frozenset(found)

    def _next_change(self, now: float, day: _dt.date, current: frozenset[int], ahead: int) -> Optional[float]:
        """First instant in (now, start of local day+ahead+1) where the active set differs from ``current``."""
        events: Dict[float, List[tuple[int, int]]] = {}
        counts: Dict[int, int] = {}
        for k in range(-2, ahead + 1):
            for s, e, i in self._day_occurrences(day + _dt.timedelta(days=k)):
                if e <= now:
                    continue
                if s <= now:
                    counts[i] = counts.get(i, 0) + 1
                else:
                    events.setdefault(s, []).append((i, 1))
                events.setdefault(e, []).append((i, -1))
        # Occurrences starting after the covered dates start at or after this instant, so every event before
        # it is known.
        horizon = self._instant(day + _dt.timedelta(days=ahead + 1), _MIDNIGHT)
        for t in sorted(events):
            if t >= horizon:
                break
            for i, delta in events[t]:
                counts[i] = counts.get(i, 0) + delta
            if frozenset(i for i, n in counts.items() if n > 0) != current:
                return t
        return None
