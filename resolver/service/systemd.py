"""systemd's notify protocol (Type=notify, WatchdogSec=) without python-systemd."""
from __future__ import annotations

import os


def watchdog_interval() -> float:
    """Half of systemd's WATCHDOG_USEC in seconds, or 0 when the service has no watchdog."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0.0
    return usec / 2e6 if usec > 0 else 0.0


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) without depending on python-systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    import socket

    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), path)
    except OSError:
        pass
