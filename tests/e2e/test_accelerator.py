"""`hearth dns` with the compiled UDP accelerator and with it switched off (HEARTH_NO_ACCEL=1): the same answers.

Each run: a burst bigger than one read batch (misses, whose answers and upstream queries leave in batches),
the same burst again (cache hits answered in C when the accelerator is on), a repeat with another case and a
lower TTL, IPv6, truncation, and stale answers once the upstream stops answering."""
from __future__ import annotations

import importlib.util
import socket
import time

import pytest
from dnslib import DNSRecord

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS

RECORDS = {
    "www.example.com.": ["www.example.com. 300 IN A 192.0.2.10", "www.example.com. 300 IN AAAA 2001:db8::10"],
    "big.example.com.": [f'big.example.com. 300 IN TXT "{"x" * 200}"' for _ in range(5)],
    **{f"n{i}.burst.example.": [f"n{i}.burst.example. 300 IN A 192.0.2.{i % 250 + 1}"] for i in range(150)},
}
BUILT = importlib.util.find_spec("resolver.engine._fastpath") is not None


def _burst(port: int, count: int, timeout: float = 10.0) -> dict[int, DNSRecord]:
    """One A query per burst name, all sent at once from one socket; the replies by query ID."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for i in range(count):
            q = DNSRecord.question(f"n{i}.burst.example", "A")
            q.header.id = i
            s.sendto(q.pack(), ("127.0.0.1", port))
        replies: dict[int, DNSRecord] = {}
        deadline = time.monotonic() + timeout
        while len(replies) < count and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                r = DNSRecord.parse(s.recv(65535))
            except socket.timeout:
                break
            replies[r.header.id] = r
    return replies


@pytest.mark.parametrize("mode", ["accelerated", "python"])
def test_answers_are_the_same_with_and_without_the_accelerator(mode, start_engine):
    if mode == "accelerated" and not BUILT:
        pytest.skip("the accelerator was not built on this machine (no C compiler)")
    env = {"HEARTH_NO_ACCEL": "1"} if mode == "python" else {"HEARTH_NO_ACCEL": "0"}
    with FakeDNS(RECORDS) as upstream:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"], "upstream_timeout": 0.4,
                                    "upstream_attempts": 2, "listen": ["127.0.0.1:0", "[::1]:0"]}}, env=env)
        for _ in range(2):   # misses, then hits
            replies = _burst(eng.port, 150)
            assert sorted(replies) == list(range(150))
            for i, r in replies.items():
                assert str(r.q.qname) == f"n{i}.burst.example."
                assert answers(r) == [f"192.0.2.{i % 250 + 1}"]
        assert len([q for q in upstream.queries if q[1].endswith(".burst.example.")]) == 150

        first = ask("www.example.com", "A", eng.port)
        time.sleep(1.2)
        second = ask("WwW.ExAmPlE.cOm", "A", eng.port)
        third = ask("WwW.ExAmPlE.cOm", "A", eng.port)
        assert str(second.q.qname) == str(third.q.qname) == "WwW.ExAmPlE.cOm."
        assert answers(second) == answers(third) == answers(first) == ["192.0.2.10"]
        assert second.rr[0].ttl < first.rr[0].ttl

        v6 = [p for h, p in eng.ports if h == "::1"][0]
        for _ in range(3):
            assert answers(ask("www.example.com", "AAAA", v6, host="::1")) == ["2001:db8::10"]

        for _ in range(3):   # 1,000+ bytes of TXT: truncated for a client without EDNS
            small = ask("big.example.com", "TXT", eng.port, edns=None)
            assert small.header.tc and not small.rr
        for _ in range(3):   # with EDNS it fits in 1232 bytes
            assert len(ask("big.example.com", "TXT", eng.port).rr) == 5
        assert len(ask("big.example.com", "TXT", eng.port, tcp=True, edns=None).rr) == 5

        upstream.mode = "drop"
        time.sleep(1.0)
        for i in range(150, 153):   # unknown names: SERVFAIL once every try timed out
            r = ask(f"gone{i}.example.com", "A", eng.port, timeout=5)
            assert r is not None and r.header.rcode == 2
        assert answers(ask("www.example.com", "A", eng.port)) == ["192.0.2.10"]   # still cached
        # the engine's log says which path it runs
        assert ("compiled accelerator: on" if mode == "accelerated" else
                "compiled accelerator: off (HEARTH_NO_ACCEL)") in eng.log()
