"""The operating system's name for the calling thread (Linux ``prctl(PR_SET_NAME)``), so ``top -H``,
``ps -L`` and ``/proc/PID/task/TID/comm`` tell the engine's threads apart: Python's own thread names stay
inside Python. Elsewhere, or without ctypes, nothing happens."""
from __future__ import annotations

import sys

_PR_SET_NAME = 15


def name_os_thread(name: str) -> None:
    """Name the calling thread (at most 15 bytes kept); never raises."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError, ValueError):
        pass
