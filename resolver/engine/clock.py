"""The engine's wall clock, and the test-only ways to move it.

Schedules, pauses, temporary allows and time budgets read the *wall* clock; the query path stamps
entries with the monotonic clock. Two environment variables move the wall clock, for tests only (a
warning is logged when either is set):

* ``HEARTH_TIME_OFFSET`` = seconds added to the real time (start at 23:55 to test a reset at midnight);
* ``HEARTH_TIME_SCALE`` = how many wall-clock seconds pass per real second (60: a minute a second, so a
  time budget of a few minutes runs out in seconds).
* ``HEARTH_TIME_SCALE_FROM`` = the real UNIX time the scaled clock runs from (default: when the process
  started), so several nodes started one after another in a test share one scaled clock.

:func:`wall_clock_from_env` returns ``(wall, to_wall)``: ``wall()`` is the UNIX time now and
``to_wall(m)`` the UNIX time at monotonic time ``m``; ``to_wall`` is None for the real clock (the query
log then converts with the current offset, as it always has).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, Optional, Tuple

TIME_OFFSET_ENV = "HEARTH_TIME_OFFSET"
TIME_SCALE_ENV = "HEARTH_TIME_SCALE"
TIME_SCALE_FROM_ENV = "HEARTH_TIME_SCALE_FROM"

log = logging.getLogger("hearth.clock")


def wall_clock_from_env() -> Tuple[Callable[[], float], Optional[Callable[[float], float]]]:
    offset = float(os.environ.get(TIME_OFFSET_ENV) or 0)
    scale = float(os.environ.get(TIME_SCALE_ENV) or 1)
    if scale <= 0:
        raise ValueError(f"{TIME_SCALE_ENV} must be above 0, not {scale}")
    if not offset and scale == 1:
        return time.time, None
    log.warning("wall clock shifted by %+.0f seconds and running %gx (%s, %s: tests only)", offset, scale,
                TIME_OFFSET_ENV, TIME_SCALE_ENV)
    base_mono, real = time.monotonic(), time.time()
    start = float(os.environ.get(TIME_SCALE_FROM_ENV) or real)
    base_wall = start + offset + (real - start) * scale

    def to_wall(mono: float) -> float:
        return base_wall + (mono - base_mono) * scale

    return (lambda: to_wall(time.monotonic())), to_wall
