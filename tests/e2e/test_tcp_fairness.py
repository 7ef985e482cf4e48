"""One client address cannot take every TCP slot (issue 14, item 4).

A client at 127.0.0.2 holds 1,000 idle TCP connections and keeps reopening 300 more, while a client at
127.0.0.3 asks over TCP: its queries are answered at once, through the real `hearth dns`."""
from __future__ import annotations

import json
import resource
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from dnslib import DNSRecord

from tests.dnsclient import answers, make_query
from tests.dnsfake import FakeDNS

HOG, VICTIM = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def many_files():
    """Room for 1,300+ sockets in this test process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < 2000:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low for 1,300 sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _connect(port: int) -> socket.socket | None:
    s = socket.socket()
    s.settimeout(5)
    try:
        s.bind((HOG, 0))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def _tcp_query(port: int, name: str) -> tuple[float, list[str] | None]:
    """(seconds, answers or None) for one TCP query from the victim's address."""
    t0 = time.monotonic()
    packet = make_query(name, edns=None).pack()
    try:
        with socket.socket() as s:
            s.settimeout(5)
            s.bind((VICTIM, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(struct.pack(">H", len(packet)) + packet)
            head = s.recv(2)
            if len(head) < 2:
                return time.monotonic() - t0, None
            size = struct.unpack(">H", head)[0]
            body = b""
            while len(body) < size:
                chunk = s.recv(size - len(body))
                if not chunk:
                    return time.monotonic() - t0, None
                body += chunk
    except OSError:
        return time.monotonic() - t0, None
    return time.monotonic() - t0, answers(DNSRecord.parse(body))


def test_one_address_cannot_take_every_tcp_slot(start_engine, many_files):
    records = {f"n{i}.example.com.": [f"n{i}.example.com. 300 IN A 192.0.2.{i}"] for i in range(1, 30)}
    with FakeDNS(records) as upstream:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"], "upstream_timeout": 1.0}})
        port = eng.port
        held = [s for s in (_connect(port) for _ in range(1000)) if s is not None]
        assert len(held) >= 900, f"only {len(held)} of the hog's 1,000 connections opened"

        stop = threading.Event()
        reopened = [0]

        def churn() -> None:  # the hog keeps reopening 300 connections
            ring: list[socket.socket] = []
            while not stop.is_set():
                s = _connect(port)
                if s is not None:
                    ring.append(s)
                    reopened[0] += 1
                if len(ring) >= 300:
                    ring.pop(0).close()
            for s in ring:
                s.close()

        hog = threading.Thread(target=churn, daemon=True)
        hog.start()
        try:
            time.sleep(0.5)
            results = []
            deadline = time.monotonic() + 60
            # ask while the hog reopens its 300 twice over (and at least 20 times)
            while (len(results) < 20 or reopened[0] < 600) and time.monotonic() < deadline:
                results.append(_tcp_query(port, f"n{len(results) % 29 + 1}.example.com"))
                time.sleep(0.05)
        finally:
            stop.set()
            hog.join(30)
            for s in held:
                s.close()
        assert reopened[0] >= 600, "the hog did not keep reopening"
        for i, (seconds, got) in enumerate(results):
            assert got == [f"192.0.2.{i % 29 + 1}"], f"query {i} from {VICTIM} failed: {got} after {seconds:.2f}s"
            assert seconds < 1.0, f"query {i} from {VICTIM} took {seconds:.2f}s"

    out = subprocess.run([sys.executable, "-m", "resolver.cli", "stats", "--json", "-c", str(eng.config_path)],
                         capture_output=True, text=True, timeout=10)
    stats = json.loads(out.stdout)
    assert stats["tcp_evicted"] >= 1000 - 32   # the hog's surplus was closed, not the victim's
