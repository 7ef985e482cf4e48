"""sd_notify: READY=1 once the engine answers, WATCHDOG=1 pings while its event loop runs."""
from __future__ import annotations

import socket
import time

from tests.dnsclient import ask


def test_ready_then_watchdog_pings(start_engine, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        eng = start_engine({}, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        assert ask("example.com", "A", eng.port, timeout=2) is not None   # answering (SERVFAIL: no upstream)
        messages, deadline = [], time.monotonic() + 3
        while time.monotonic() < deadline and messages.count(b"WATCHDOG=1") < 3:
            messages.append(sock.recv(256))
        assert messages[0] == b"READY=1"
        assert messages.count(b"WATCHDOG=1") >= 3
