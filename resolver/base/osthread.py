"""The calling thread as the operating system sees it: its name and its priority.

Python's own thread names stay inside Python: :func:`name_os_thread` sets the kernel's (Linux
``prctl(PR_SET_NAME)``), so ``top -H``, ``ps -L`` and ``/proc/PID/task/TID/comm`` tell the engine's threads
apart. :func:`nice_os_thread` lowers one thread's priority: on Linux niceness belongs to each thread, so a
helper thread can yield the core to the event loop without the process changing. Elsewhere, or where the
call is refused, nothing happens.
"""
from __future__ import annotations

import os
import sys
import threading

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


def nice_os_thread(by: int) -> None:
    """Raise the calling thread's niceness by ``by`` (at most to 19), on Linux only; never raises."""
    if by <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except (OSError, AttributeError):
        pass
