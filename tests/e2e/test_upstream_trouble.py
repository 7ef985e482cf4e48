"""Upstream trouble through the real `hearth dns` (issue 14, item 7).

* When the upstream goes silent, only the first expired name waits for the client-response timer: after
  that failure, expired answers are served stale at once (RFC 8767's failure recheck) and refreshed in the
  background, until the upstream answers again.
* Answers a client provokes (REFUSED for odd types, FORMERR, NOTIMP) never mark the upstream unhealthy.
"""
from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import time

from dnslib import DNSRecord

from tests.dnsclient import answers, ask, ede, exchange, make_query
from tests.dnsfake import FakeDNS

NAMES = [f"s{i}.example.com" for i in range(8)]


def _stats(eng) -> dict:
    out = subprocess.run([sys.executable, "-m", "resolver.cli", "stats", "--json", "-c", str(eng.config_path)],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_log(eng, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in eng.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{eng.log()[-3000:]}"
        time.sleep(0.05)


def _timed_ask(name: str, port: int):
    t0 = time.monotonic()
    reply = ask(name, "A", port, timeout=8)
    return time.monotonic() - t0, reply


def test_stale_answers_come_at_once_after_the_first_failure(start_engine):
    records = {f"{n}.": [f"{n}. 1 IN A 192.0.2.{i + 1}"] for i, n in enumerate(NAMES)}
    with FakeDNS(records) as upstream:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"], "upstream_timeout": 1.0,
                                    "upstream_attempts": 2, "health_check_interval": 300}})
        for i, name in enumerate(NAMES):
            assert answers(ask(name, "A", eng.port)) == [f"192.0.2.{i + 1}"]
        upstream.mode = "drop"   # silently drops every packet from now on
        time.sleep(1.5)          # every 1 s TTL has run out

        seconds, first = _timed_ask(NAMES[0], eng.port)
        assert answers(first) == ["192.0.2.1"] and first.rr[0].ttl == 30 and ede(first)[0] == 3
        assert seconds < 2.5     # the client-response timer (1.8 s), at most
        _wait_log(eng, "no upstream answers")   # the first failure is known (after 2 tries of 1 s)

        for i, name in enumerate(NAMES[1:], 2):
            seconds, reply = _timed_ask(name, eng.port)
            assert answers(reply) == [f"192.0.2.{i}"] and reply.rr[0].ttl == 30 and ede(reply)[0] == 3
            assert seconds < 0.2, f"stale answer for {name} took {seconds:.2f}s"
        asked = len(upstream.queries)
        assert asked > len(NAMES)   # ... and each was refreshed in the background

        upstream.mode = "answer"   # back: the next refresh succeeds and fresh answers follow
        deadline = time.monotonic() + 10
        while True:
            reply = ask(NAMES[1], "A", eng.port, timeout=5)
            if reply.rr and reply.rr[0].ttl <= 1 and ede(reply) is None:
                break
            assert time.monotonic() < deadline, "no fresh answer after the upstream came back"
            time.sleep(0.2)
        _wait_log(eng, "answers again")
    stats = _stats(eng)
    assert stats["stale_answers"] >= len(NAMES)


def _odd_query(qtype: int, name: str = "www.example.com") -> bytes:
    packet = make_query(name, edns=None).pack()
    packet = bytes(packet[:-4]) + struct.pack(">H", qtype) + bytes(packet[-2:])
    return struct.pack(">H", random.getrandbits(16)) + packet[2:]


def test_answers_a_client_provokes_leave_the_upstream_healthy(start_engine):
    with FakeDNS({"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"]}) as upstream:
        # what real resolvers answer to odd types: REFUSED, FORMERR, NOTIMP
        upstream.type_modes = {"NULL": "refused", "HINFO": "formerr", "65280": "notimp",
                               "65281": "refused", "11": "refused"}
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"], "upstream_timeout": 0.5,
                                    "upstream_attempts": 2}})
        for round_ in range(20):
            for qtype in (10, 13, 65280, 65281, 11):
                raw = exchange(_odd_query(qtype, f"n{round_}.example.com"), eng.port, timeout=5)
                assert raw is not None
                assert DNSRecord.parse(raw).header.rcode in (1, 2, 4, 5)
            assert answers(ask("www.example.com", "A", eng.port)) == ["192.0.2.10"]
        assert len([q for q in upstream.queries if q[2] == "NULL"]) >= 20   # they did reach the upstream
    stats = _stats(eng)
    up = stats["upstreams"][0]
    assert up["healthy"] and up["health_changes"] == 0 and up["last_error"] is None
    assert "marked unhealthy" not in eng.log()
    assert "no upstream answers" not in eng.log()
