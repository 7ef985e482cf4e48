"""The UDP listener on a real socket: bursts larger than one read batch, hits and misses, closing."""
from __future__ import annotations

import asyncio
import socket

import pytest
from dnslib import DNSRecord

from resolver.engine.listener import UDP_BATCH, Listeners
from resolver.engine.stats import Stats
from tests.engine.test_pipeline import Clock, ScriptedPool, _pipeline

LOOPS = ["asyncio"]
try:
    import uvloop
    LOOPS.append("uvloop")
except ImportError:  # the optional [fast] extra
    uvloop = None


def _run(loop_kind: str, coro):
    if loop_kind == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


async def _burst(port: int, names: list[str], timeout: float = 10.0) -> dict[int, DNSRecord]:
    """Send one A query per name at once from one socket; the replies by query ID."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.setblocking(False)
        for i, name in enumerate(names):
            q = DNSRecord.question(name, "A")
            q.header.id = i
            s.sendto(q.pack(), ("127.0.0.1", port))
        replies: dict[int, DNSRecord] = {}
        deadline = loop.time() + timeout
        while len(replies) < len(names) and loop.time() < deadline:
            try:
                data = await asyncio.wait_for(loop.sock_recv(s, 4096), deadline - loop.time())
            except asyncio.TimeoutError:
                break
            r = DNSRecord.parse(data)
            replies[r.header.id] = r
    return replies


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_burst_bigger_than_one_read_batch_is_answered_in_full(loop_kind):
    n = UDP_BATCH * 3 + 7   # ScriptedPool numbers its answers 192.0.2.<n>: at most 255
    names = [f"host{i}.burst.example" for i in range(n)]

    async def go():
        pipeline = _pipeline(ScriptedPool(ttl=300), Clock())
        listeners = Listeners(pipeline, Stats(), idle_timeout=5, max_connections=10)
        _, port = await listeners.open("127.0.0.1", 0)
        try:
            misses = await _burst(port, names)       # every one goes upstream
            hits = await _burst(port, names)         # every one from the cache
        finally:
            await listeners.close()
        return misses, hits

    misses, hits = _run(loop_kind, go())
    for replies in (misses, hits):
        assert sorted(replies) == list(range(n))
        for i, r in replies.items():
            assert str(r.q.qname) == names[i] + "."
            assert [str(a.rdata).startswith("192.0.2.") for a in r.rr] == [True]
    assert [str(hits[i].rr[0].rdata) for i in range(n)] == [str(misses[i].rr[0].rdata) for i in range(n)]


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_closing_the_listener_frees_its_port_and_stops_answering(loop_kind):
    async def go():
        pipeline = _pipeline(ScriptedPool(), Clock())
        listeners = Listeners(pipeline, Stats(), idle_timeout=5, max_connections=10)
        _, port = await listeners.open("127.0.0.1", 0)
        assert len(await _burst(port, ["before.example"])) == 1
        await listeners.close()
        after = await _burst(port, ["after.example"], timeout=0.5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))   # the port is free again
        return after

    assert _run(loop_kind, go()) == {}
