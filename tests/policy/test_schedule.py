"""Weekly schedule windows: days, midnight crossing, boundaries, DST, parsing, and a brute-force cross-check.

Every instant is a plain UNIX timestamp built from a zoned datetime; the real clock is never read.
"""
from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from resolver.policy.schedule import DAYS, END_OF_DAY, WeeklySchedule, Window, parse_days, parse_hhmm

HCM = "Asia/Ho_Chi_Minh"
BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
HOUR = 3600.0


def at(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, fold: int = 0) -> float:
    """UNIX time of an existing local wall-clock time (fold=1 picks the second of a repeated time)."""
    return dt.datetime(y, mo, d, h, mi, s, fold=fold, tzinfo=ZoneInfo(zone)).timestamp()


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=dt.timezone.utc).timestamp()


def win(days: str, start: str, end: str, tag=None) -> Window:
    return Window.parse(days, start, end, tag)


def tags(schedule: WeeklySchedule, now: float) -> list:
    return [w.tag for w in schedule.active(now)]


# 2026-06-01 is a Monday.
MON, TUE, WED, THU, FRI, SAT, SUN = ((2026, 6, d) for d in range(1, 8))


# -- simple windows, Asia/Ho_Chi_Minh (UTC+7, no DST) ---------------------------------------------------------


def test_simple_window_and_exact_boundaries():
    s = WeeklySchedule([win("mon-fri", "16:00", "18:00", "homework")], HCM)
    assert at(HCM, *MON, 16) == utc(2026, 6, 1, 9)          # sanity: UTC+7
    assert tags(s, at(HCM, *MON, 15, 59, 59)) == []
    assert tags(s, at(HCM, *MON, 16)) == ["homework"]       # start is inside
    assert tags(s, at(HCM, *MON, 17, 59, 59)) == ["homework"]
    assert tags(s, at(HCM, *MON, 18)) == []                 # end is outside
    assert s.next_change(at(HCM, *MON, 12)) == at(HCM, *MON, 16)
    assert s.next_change(at(HCM, *MON, 16)) == at(HCM, *MON, 18)
    assert s.next_change(at(HCM, *MON, 18)) == at(HCM, *TUE, 16)


def test_days_filter():
    s = WeeklySchedule([win("mon-fri", "16:00", "18:00", "homework")], HCM)
    for day in (MON, TUE, WED, THU, FRI):
        assert tags(s, at(HCM, *day, 17)) == ["homework"]
    for day in (SAT, SUN):
        assert tags(s, at(HCM, *day, 17)) == []
    # Friday evening: next opening is Monday.
    assert s.next_change(at(HCM, *FRI, 18)) == at(HCM, 2026, 6, 8, 16)

    s = WeeklySchedule([win("tue,thu,sun", "08:00", "09:00", "x")], HCM)
    active_days = [day for day in (MON, TUE, WED, THU, FRI, SAT, SUN) if tags(s, at(HCM, *day, 8, 30))]
    assert active_days == [TUE, THU, SUN]


def test_state_combines_active_and_next_change():
    s = WeeklySchedule([win("all", "21:00", "07:00", "bed"), win("mon-fri", "16:00", "18:00", "hw")], HCM)
    for now in (at(HCM, *MON, 3), at(HCM, *MON, 16, 30), at(HCM, *SAT, 12), at(HCM, *SUN, 22)):
        assert s.state(now) == (s.active(now), s.next_change(now))
    assert s.state(at(HCM, *MON, 17)) == ([s.windows[1]], at(HCM, *MON, 18))


def test_overlapping_windows_in_definition_order():
    a, b = win("all", "20:00", "23:00", "a"), win("mon", "21:00", "22:00", "b")
    s = WeeklySchedule([b, a], HCM)
    assert s.active(at(HCM, *MON, 21, 30)) == [b, a]
    assert s.next_change(at(HCM, *MON, 20, 30)) == at(HCM, *MON, 21)
    assert s.next_change(at(HCM, *MON, 21)) == at(HCM, *MON, 22)


def test_no_windows():
    s = WeeklySchedule([], HCM)
    assert s.active(at(HCM, *MON, 12)) == []
    assert s.next_change(at(HCM, *MON, 12)) is None
    assert s.state(at(HCM, *MON, 12)) == ([], None)


def test_whole_day_windows():
    always = WeeklySchedule([win("all", "00:00", "24:00", "on")], HCM)
    now = at(HCM, *WED, 5)
    assert tags(always, now) == ["on"]
    assert always.next_change(now) is None                  # closes and reopens at the same instant: no change
    weekend = WeeklySchedule([win("sat", "00:00", "24:00", "sat"), win("sun", "00:00", "24:00", "sun")], HCM)
    assert tags(weekend, at(HCM, *SAT, 23, 59, 59)) == ["sat"]
    assert tags(weekend, at(HCM, *SUN, 0)) == ["sun"]
    assert weekend.next_change(at(HCM, *SAT, 10)) == at(HCM, *SUN, 0)
    assert weekend.next_change(at(HCM, *SUN, 10)) == at(HCM, 2026, 6, 8, 0)


def test_adjacent_windows_change_where_they_meet():
    s = WeeklySchedule([win("mon", "16:00", "18:00", "a"), win("mon", "18:00", "19:00", "b")], HCM)
    assert s.next_change(at(HCM, *MON, 17)) == at(HCM, *MON, 18)
    assert tags(s, at(HCM, *MON, 18)) == ["b"]


# -- crossing midnight ------------------------------------------------------------------------------------


def test_friday_night_window_crosses_midnight():
    s = WeeklySchedule([win("fri", "21:00", "07:00", "bed")], HCM)
    assert s.windows[0].crosses_midnight
    assert tags(s, at(HCM, *FRI, 20, 59)) == []
    assert tags(s, at(HCM, *FRI, 21)) == ["bed"]
    assert tags(s, at(HCM, *FRI, 23)) == ["bed"]
    assert tags(s, at(HCM, *SAT, 6, 59)) == ["bed"]
    assert tags(s, at(HCM, *SAT, 7)) == []
    assert tags(s, at(HCM, *SAT, 23)) == []                 # only Friday is listed
    assert tags(s, at(HCM, *FRI, 6)) == []                  # Thursday night is not listed
    assert s.next_change(at(HCM, *FRI, 12)) == at(HCM, *FRI, 21)
    assert s.next_change(at(HCM, *FRI, 23)) == at(HCM, *SAT, 7)     # across midnight
    assert s.next_change(at(HCM, *SAT, 7)) == at(HCM, 2026, 6, 12, 21)   # next week


def test_window_belongs_to_the_day_it_starts():
    s = WeeklySchedule([win("sat", "22:00", "02:00", "late")], HCM)
    assert tags(s, at(HCM, *SUN, 1)) == ["late"]
    assert tags(s, at(HCM, *SAT, 1)) == []


def test_every_day_overnight():
    s = WeeklySchedule([win("all", "21:00", "07:00", "bed")], HCM)
    for day in (MON, TUE, WED, THU, FRI, SAT, SUN):
        assert tags(s, at(HCM, *day, 6, 59)) == ["bed"]
        assert tags(s, at(HCM, *day, 7)) == []
        assert tags(s, at(HCM, *day, 20, 59)) == []
        assert tags(s, at(HCM, *day, 21)) == ["bed"]
        assert tags(s, at(HCM, *day, 23, 59)) == ["bed"]
        assert tags(s, at(HCM, *day, 0)) == ["bed"]
    assert s.next_change(at(HCM, *SUN, 22)) == at(HCM, 2026, 6, 8, 7)


def test_end_at_24_00():
    s = WeeklySchedule([win("sun", "20:00", "24:00", "eve")], HCM)
    assert not s.windows[0].crosses_midnight
    assert tags(s, at(HCM, *SUN, 23, 59, 59)) == ["eve"]
    assert tags(s, at(HCM, 2026, 6, 8, 0)) == []
    assert s.next_change(at(HCM, *SUN, 21)) == at(HCM, 2026, 6, 8, 0)


def test_next_change_across_weeks():
    s = WeeklySchedule([win("sun", "10:00", "11:00", "x")], HCM)
    assert s.next_change(at(HCM, *SUN, 12)) == at(HCM, 2026, 6, 14, 10)
    assert s.next_change(at(HCM, *MON, 0)) == at(HCM, *SUN, 10)
    # Year boundary: 2026-12-31 is a Thursday; the next Sunday is 2027-01-03.
    assert s.next_change(at(HCM, 2026, 12, 31, 12)) == at(HCM, 2027, 1, 3, 10)


def test_next_change_is_strictly_after_now():
    s = WeeklySchedule([win("mon", "16:00", "18:00")], HCM)
    start = at(HCM, *MON, 16)
    assert s.next_change(start) == at(HCM, *MON, 18)
    assert s.next_change(start - 0.5) == start


# -- DST: Europe/Berlin -----------------------------------------------------------------------------------
# 2026-03-29 (Sunday): 02:00 CET -> 03:00 CEST at 01:00 UTC; 02:00-03:00 does not exist.
# 2026-10-25 (Sunday): 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:00-03:00 happens twice.


def test_berlin_spring_forward_start_in_gap_starts_when_gap_ends():
    s = WeeklySchedule([win("sun", "02:30", "05:00", "x")], BERLIN)
    assert tags(s, utc(2026, 3, 29, 0, 59)) == []
    assert tags(s, utc(2026, 3, 29, 1, 0)) == ["x"]         # 03:00 CEST, the first instant after the gap
    assert s.next_change(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert s.next_change(utc(2026, 3, 29, 1)) == at(BERLIN, 2026, 3, 29, 5) == utc(2026, 3, 29, 3)
    # The week after, 02:30 exists again.
    assert s.next_change(utc(2026, 3, 29, 4)) == at(BERLIN, 2026, 4, 5, 2, 30)


def test_berlin_spring_forward_window_spanning_gap_is_two_hours():
    s = WeeklySchedule([win("sun", "01:00", "04:00", "x")], BERLIN)
    start = at(BERLIN, 2026, 3, 29, 1)
    end = s.next_change(start)
    assert end == at(BERLIN, 2026, 3, 29, 4)
    assert end - start == 2 * HOUR
    assert tags(s, start) == ["x"]
    assert tags(s, end - 1) == ["x"]
    assert tags(s, end) == []


def test_berlin_spring_forward_end_in_gap_and_window_inside_gap():
    s = WeeklySchedule([win("sat", "22:00", "02:30", "late")], BERLIN)
    assert s.next_change(at(BERLIN, 2026, 3, 28, 23)) == utc(2026, 3, 29, 1)    # 03:00 CEST
    assert tags(s, utc(2026, 3, 29, 0, 59)) == ["late"]
    assert tags(s, utc(2026, 3, 29, 1)) == []
    # 02:10-02:40 lies in the gap: the window does not happen that Sunday, but does the next one.
    s = WeeklySchedule([win("sun", "02:10", "02:40", "ghost")], BERLIN)
    assert s.next_change(at(BERLIN, 2026, 3, 28, 12)) == at(BERLIN, 2026, 4, 5, 2, 10)
    assert tags(s, utc(2026, 3, 29, 1)) == []
    # And the look-ahead covers the two-week stretch without a change.
    assert s.next_change(at(BERLIN, 2026, 3, 22, 3)) == at(BERLIN, 2026, 4, 5, 2, 10)


def test_berlin_fall_back_window_over_repeated_hour_is_three_hours():
    s = WeeklySchedule([win("sun", "01:00", "03:00", "x")], BERLIN)
    start = at(BERLIN, 2026, 10, 25, 1)
    assert start == utc(2026, 10, 24, 23)
    end = s.next_change(start)
    assert end == utc(2026, 10, 25, 2)                      # 03:00 CET
    assert end - start == 3 * HOUR
    assert tags(s, at(BERLIN, 2026, 10, 25, 2, 30, fold=0)) == ["x"]
    assert tags(s, at(BERLIN, 2026, 10, 25, 2, 30, fold=1)) == ["x"]
    assert tags(s, end) == []


def test_berlin_fall_back_repeated_times_mean_first_occurrence():
    first_230, second_230 = at(BERLIN, 2026, 10, 25, 2, 30, fold=0), at(BERLIN, 2026, 10, 25, 2, 30, fold=1)
    assert second_230 - first_230 == HOUR
    # Starting in the repeated hour: starts at the first 02:30 and runs through the repeat (2.5 h).
    s = WeeklySchedule([win("sun", "02:30", "04:00", "a")], BERLIN)
    assert s.next_change(utc(2026, 10, 24, 12)) == first_230
    assert s.next_change(first_230) - first_230 == 2.5 * HOUR
    assert tags(s, at(BERLIN, 2026, 10, 25, 2, 10, fold=1)) == ["a"]
    # Ending in the repeated hour: ends at the first 02:30 and stays off during the repeat.
    s = WeeklySchedule([win("sun", "01:00", "02:30", "b")], BERLIN)
    assert s.next_change(at(BERLIN, 2026, 10, 25, 1)) == first_230
    assert tags(s, at(BERLIN, 2026, 10, 25, 2, 10, fold=1)) == []
    assert s.next_change(first_230) == at(BERLIN, 2026, 11, 1, 1)
    # Entirely inside the repeated hour: the first pass only.
    s = WeeklySchedule([win("sun", "02:30", "02:45", "c")], BERLIN)
    assert tags(s, first_230) == ["c"]
    assert tags(s, second_230) == []
    assert s.next_change(first_230) == first_230 + 15 * 60


def test_berlin_every_night_across_both_transitions():
    s = WeeklySchedule([win("all", "21:00", "07:00", "bed")], BERLIN)
    assert s.next_change(at(BERLIN, 2026, 3, 28, 22)) - at(BERLIN, 2026, 3, 28, 21) == 9 * HOUR
    assert s.next_change(at(BERLIN, 2026, 10, 24, 22)) - at(BERLIN, 2026, 10, 24, 21) == 11 * HOUR


# -- DST: America/New_York --------------------------------------------------------------------------------
# 2026-03-08 (Sunday): 02:00 EST -> 03:00 EDT at 07:00 UTC. 2026-11-01 (Sunday): 02:00 EDT -> 01:00 EST at 06:00 UTC.


def test_new_york_spring_forward():
    s = WeeklySchedule([win("sat", "21:00", "02:30", "late"), win("sun", "02:15", "06:00", "early")], NEW_YORK)
    assert tags(s, utc(2026, 3, 8, 6, 59)) == ["late"]
    assert tags(s, utc(2026, 3, 8, 7)) == ["early"]         # 03:00 EDT: one ends, the other starts
    assert s.next_change(at(NEW_YORK, 2026, 3, 7, 22)) == utc(2026, 3, 8, 7)
    s = WeeklySchedule([win("sun", "01:00", "04:00", "x")], NEW_YORK)
    assert s.next_change(at(NEW_YORK, 2026, 3, 8, 1)) - at(NEW_YORK, 2026, 3, 8, 1) == 2 * HOUR


def test_new_york_fall_back():
    s = WeeklySchedule([win("sun", "00:30", "02:00", "x")], NEW_YORK)
    start = at(NEW_YORK, 2026, 11, 1, 0, 30)
    assert s.next_change(start) == utc(2026, 11, 1, 7)      # 02:00 EST
    assert s.next_change(start) - start == 2.5 * HOUR
    s = WeeklySchedule([win("sun", "01:30", "01:45", "y")], NEW_YORK)
    assert tags(s, utc(2026, 11, 1, 5, 30)) == ["y"]        # 01:30 EDT
    assert tags(s, utc(2026, 11, 1, 6, 30)) == []           # 01:30 EST, the repeat
    assert s.next_change(utc(2026, 11, 1, 5, 40)) == utc(2026, 11, 1, 5, 45)


# -- parsing ----------------------------------------------------------------------------------------------


def test_parse_hhmm():
    assert parse_hhmm("21:00") == dt.time(21, 0)
    assert parse_hhmm("7:05") == dt.time(7, 5)
    assert parse_hhmm(" 00:00 ") == dt.time(0, 0)
    assert parse_hhmm("24:00") == END_OF_DAY


@pytest.mark.parametrize("text", ["25:00", "12:60", "24:01", "24:30", "", "12", "1200", "12:5", "-1:00", "12:00:00",
                                  "123:00", "ab:cd", "１２:００", "12.00"])
def test_parse_hhmm_rejects(text):
    with pytest.raises(ValueError, match="invalid time"):
        parse_hhmm(text)


def test_parse_days():
    assert parse_days("mon,tue") == ("mon", "tue")
    assert parse_days("all") == DAYS
    assert parse_days("weekdays") == DAYS[:5]
    assert parse_days("weekends") == ("sat", "sun")
    assert parse_days("mon-fri") == DAYS[:5]
    assert parse_days("Fri - Mon") == ("mon", "fri", "sat", "sun")
    assert parse_days("sun, wed mon,wed") == ("mon", "wed", "sun")
    assert parse_days("saturday,sunday") == ("sat", "sun")


@pytest.mark.parametrize("text, message", [
    ("mon,funday", "unknown day 'funday'"),
    ("", "no days"),
    (" , ", "no days"),
    ("mon-", "bad day range"),
    ("mon-fri-sat", "bad day range"),
    ("mon-xyz", "unknown day 'xyz'"),
])
def test_parse_days_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        parse_days(text)


def test_window_validation():
    with pytest.raises(ValueError, match="starts and ends at 07:00"):
        Window.parse("mon", "07:00", "07:00")
    with pytest.raises(ValueError, match="starts and ends"):
        Window(("mon",), dt.time(7), dt.time(7))
    with pytest.raises(ValueError, match="cannot start at 24:00"):
        Window.parse("mon", "24:00", "07:00")
    with pytest.raises(ValueError, match="at least one day"):
        Window((), dt.time(7), dt.time(8))
    with pytest.raises(ValueError, match="unknown day"):
        Window(("mon", "funday"), dt.time(7), dt.time(8))
    with pytest.raises(ValueError, match="tzinfo"):
        Window(("mon",), dt.time(7, tzinfo=dt.timezone.utc), dt.time(8))
    with pytest.raises(ValueError, match="unknown time zone"):
        WeeklySchedule([], "Mars/Olympus_Mons")
    # Days are normalised: "all" expands, text is parsed, order is the week's.
    assert Window(("all",), dt.time(1), dt.time(2)).days == DAYS
    assert Window("fri,mon", dt.time(1), dt.time(2)).days == ("mon", "fri")
    assert Window.parse("mon", "00:00", "24:00").end == END_OF_DAY
    assert str(Window.parse("mon-fri", "21:00", "7:00")) == "mon,tue,wed,thu,fri 21:00-07:00"


# -- randomized cross-check against a brute-force reference -----------------------------------------------


def _high_water_wall(ts: float, tz: ZoneInfo) -> dt.datetime:
    """The latest local wall-clock reading so far around `ts` (naive).

    That is the wall time itself, except during the repeated stretch after a fall back (fold=1), where the
    clock has already shown the end of the repeated stretch: step back second by second to the last instant
    before the repeat began and take its reading.
    """
    local = dt.datetime.fromtimestamp(ts, tz)
    if not local.fold:
        return local.replace(tzinfo=None)
    t = float(int(ts))
    while dt.datetime.fromtimestamp(t - 60, tz).fold:
        t -= 60
    while dt.datetime.fromtimestamp(t, tz).fold:
        t -= 1
    return dt.datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def reference_active(windows: list[Window], tz: ZoneInfo, ts: float) -> list:
    """Brute force per the documented rule: a window is active while start <= wall-clock high-water < end.

    Wall times in a gap are never shown, so a start or end in a gap is reached at the first reading after the
    gap; repeated times are reached at their first occurrence because the high-water mark does not go back.
    """
    wall = _high_water_wall(ts, tz)
    out = []
    for w in windows:
        for start_day in (wall.date() - dt.timedelta(days=1), wall.date()):
            if DAYS[start_day.weekday()] not in w.days:
                continue
            begin = dt.datetime.combine(start_day, w.start)
            if w.end == END_OF_DAY:
                end = dt.datetime.combine(start_day + dt.timedelta(days=1), dt.time(0))
            elif w.end <= w.start:
                end = dt.datetime.combine(start_day + dt.timedelta(days=1), w.end)
            else:
                end = dt.datetime.combine(start_day, w.end)
            if begin <= wall < end:
                out.append(w.tag)
                break
    return out


def _random_window(rng: random.Random, tag: int) -> Window:
    days = tuple(d for d in DAYS if rng.random() < 0.4) or (rng.choice(DAYS),)
    if rng.random() < 0.15:
        days = ("all",)

    def quarter() -> dt.time:
        # Favour the small hours, where the transitions are.
        hour = rng.choice((0, 1, 2, 2, 2, 3, 3)) if rng.random() < 0.5 else rng.randrange(24)
        return dt.time(hour, rng.choice((0, 15, 30, 45)))

    start = quarter()
    end = END_OF_DAY if rng.random() < 0.1 else quarter()
    while end == start:
        end = quarter()
    return Window(days, start, end, tag)


@pytest.mark.parametrize("zone, transitions, schedules, samples", [
    (BERLIN, [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1)], 40, 150),
    (NEW_YORK, [utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)], 15, 100),
    ("Australia/Lord_Howe", [utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30)], 10, 100),   # 30-minute DST
])
def test_active_matches_brute_force(zone, transitions, schedules, samples):
    tz = ZoneInfo(zone)
    rng = random.Random(f"schedule-{zone}")
    year_start, year_end = at(zone, 2026, 1, 1), at(zone, 2027, 1, 1)
    for _ in range(schedules):
        windows = [_random_window(rng, i) for i in range(rng.randint(1, 4))]
        s = WeeklySchedule(windows, zone)
        instants = [float(rng.randrange(int(year_start), int(year_end))) for _ in range(samples)]
        # Quarter-hour instants near the transitions hit the window edges and the gap/repeat exactly.
        for tr in transitions:
            instants += [tr + 900 * rng.randint(-40, 40) for _ in range(samples // 3)]
            instants += [tr - 1, tr, tr + 1]
        for ts in instants:
            active, change = s.state(ts)
            expected = reference_active(windows, tz, ts)
            assert [w.tag for w in active] == expected, (zone, [str(w) for w in windows], ts)
            if change is None:      # only when every window is on all the time
                assert all(w.days == DAYS and w.start == dt.time(0) and w.end == END_OF_DAY for w in windows)
                continue
            # The active set holds until `change` and differs at it.
            assert change > ts
            assert reference_active(windows, tz, change - 0.5) == expected
            assert reference_active(windows, tz, change) != expected


def test_next_change_matches_brute_force_steps():
    """Walk a quarter-hour grid (every edge in Berlin lies on it) and compare the first change with next_change."""
    tz = ZoneInfo(BERLIN)
    rng = random.Random("schedule-steps")
    for start in (utc(2026, 3, 27, 12), utc(2026, 10, 23, 12), utc(2026, 6, 10, 3, 15)):
        for _ in range(12):
            windows = [_random_window(rng, i) for i in range(rng.randint(1, 3))]
            s = WeeklySchedule(windows, BERLIN)
            ts = start + 900 * rng.randrange(0, 4 * 48)
            expected_now = reference_active(windows, tz, ts)
            t = ts + 900
            while t < ts + 22 * 86400 and reference_active(windows, tz, t) == expected_now:
                t += 900
            expected = t if t < ts + 22 * 86400 else None
            assert s.next_change(ts) == expected, ([str(w) for w in windows], ts)
