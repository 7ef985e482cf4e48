"""The compiled UDP accelerator (``resolver/engine/_fastpath.c``) and the pure-Python reader answer alike.

The same conversation over a real socket runs with the accelerator forced off and (when pip built it) on:
the replies, the counters, the cache entries' hit counts and the query log's ring must be the same. The
accelerator answers only plain cache hits; every case it hands back (a new client, a TTL second that
needs re-patching, a re-checked generation, truncation, a due prefetch, a MAC forwarder's query) is
in the conversation."""
from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dnslib import EDNS0, RR, DNSRecord

from resolver.engine import accel
from resolver.engine.cache import AnswerCache, CacheConfig
from resolver.engine.listener import Listeners
from resolver.engine.localrecords import LocalZone
from resolver.engine.pipeline import Pipeline
from resolver.engine.querylog import QueryLog, QueryLogConfig
from resolver.engine.stats import Stats
from resolver.policy.access import ClientAccess, RateLimitConfig
from tests.engine.test_pipeline import Clock

REPO = Path(__file__).resolve().parents[2]
MODES = ["python", "accelerated"]


class BigPool:
    """Answers every name with ``count`` A records 192.0.2.1.. (TTL ``ttl``): 40 of them do not fit 512 bytes."""

    def __init__(self, ttl=300):
        self.ttl, self.calls = ttl, 0

    def forward(self, packet: bytes, done, question=None):
        self.calls += 1
        q = DNSRecord.parse(packet)
        r = q.reply()
        count = 40 if str(q.q.qname).startswith("big.") else 1
        for i in range(count):
            r.add_answer(*RR.fromZone(f"{q.q.qname} {self.ttl} IN A 192.0.2.{i + 1}"))
        asyncio.get_running_loop().call_soon(done, bytes(r.pack()), "udp://scripted", None)

    def known_down(self, _recheck):
        return False


def _query(name: str, qid: int, edns: bool = False, bufsize: int = 1232) -> bytes:
    q = DNSRecord.question(name, "A")
    q.header.id = qid
    if edns:
        q.add_ar(EDNS0(udp_len=bufsize))
    return bytes(q.pack())


async def _exchange(sock: socket.socket, port: int, packet: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    sock.sendto(packet, ("127.0.0.1", port))
    return await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)


def _conversation(mode: str, monkeypatch) -> dict:
    if mode == "python":
        monkeypatch.setattr(accel, "fastpath", None)
    elif accel.fastpath is None:
        pytest.skip("the accelerator was not built here (no compiler) or HEARTH_NO_ACCEL is set")
    clock = Clock()
    pipeline = Pipeline(access=ClientAccess(["127.0.0.0/8"], RateLimitConfig(qps=0)),
                        cache=AnswerCache(CacheConfig(prefetch_min_hits=1), clock), local=LocalZone([]),
                        upstreams=BigPool(), querylog=QueryLog(QueryLogConfig(enabled=True), None), stats=Stats(),
                        clock=clock)

    async def go():
        listeners = Listeners(pipeline, Stats(), idle_timeout=5, max_connections=10)
        _, port = await listeners.open("127.0.0.1", 0)
        reader = listeners.udp_by_addr[("127.0.0.1", port)]
        replies = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)

            async def ask(packet):
                replies.append(await _exchange(s, port, packet))

            plain = _query("www.example.com", 7)
            for _ in range(4):           # miss, key hit (alias made), alias hits
                await ask(plain)
            await ask(_query("WWW.Example.COM", 8))   # another case: another alias
            await ask(_query("www.example.com", 9))   # another ID: the same alias
            clock.now += 2.5                           # a new second: TTLs re-patched
            await ask(plain)
            await ask(plain)
            pipeline.generation += 1                   # re-checked under the new generation
            await ask(plain)
            await ask(plain)
            small = _query("big.example.com", 10, edns=True, bufsize=512)
            for _ in range(3):                         # 40 records: truncated for a 512-byte client
                await ask(small)
            large = _query("big.example.com", 11, edns=True, bufsize=4096)
            for _ in range(3):
                await ask(large)
            clock.now += 290                           # past the prefetch point (90 % of the TTL)
            await ask(plain)
            await ask(plain)
            await asyncio.sleep(0.05)
        counters = reader.batch.counters() if reader.batch is not None else None
        await listeners.close()
        return replies, counters, reader.accelerated

    replies, counters, accelerated = asyncio.run(go())
    entries = sorted(pipeline.cache._entries.items())
    return {
        "replies": replies,
        "accelerated": accelerated,
        "counters": counters,
        "stats": {k: v for k, v in vars(pipeline.stats).items() if k != "started"},
        "hits": [(k, e.hits) for k, e in entries],
        "ring": [(item[0], item[1], item[2].key if len(item) == 3 else item[2]) for item in pipeline.querylog.ring],
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the accelerator is built on Linux only")
def test_the_accelerator_answers_exactly_as_the_python_reader(monkeypatch):
    py = _conversation("python", monkeypatch)
    monkeypatch.undo()
    fast = _conversation("accelerated", monkeypatch)
    assert py["accelerated"] is False and fast["accelerated"] is True
    assert fast["counters"]["answered"] >= 6      # the plain repeats were answered in C ...
    assert fast["counters"]["received"] == len(fast["replies"])
    assert fast["counters"]["answered"] < fast["counters"]["received"]   # ... the rest in Python
    assert len(py["replies"]) == len(fast["replies"]) == 18
    for a, b in zip(py["replies"], fast["replies"]):
        assert a == b
    truncated = DNSRecord.parse(fast["replies"][10])
    assert truncated.header.tc and not truncated.rr
    assert len(DNSRecord.parse(fast["replies"][14]).rr) == 40
    assert DNSRecord.parse(fast["replies"][6]).rr[0].ttl == DNSRecord.parse(fast["replies"][0]).rr[0].ttl - 2
    assert py["stats"] == fast["stats"]
    assert py["stats"]["cache_hits"] >= 12 and py["stats"]["prefetches"] == 1
    assert py["hits"] == fast["hits"]
    assert py["ring"] == fast["ring"]


def test_hearth_no_accel_forces_the_python_reader():
    code = "from resolver.engine import accel; print(accel.fastpath is not None)"
    env = dict(os.environ, HEARTH_NO_ACCEL="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env.pop("HEARTH_NO_ACCEL")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    built = importlib.util.find_spec("resolver.engine._fastpath") is not None
    assert out.stdout.strip() == ("True" if built else "False")


@pytest.mark.skipif(accel.fastpath is None, reason="without the accelerator this suite runs the pure-Python path")
def test_listener_and_upstream_tests_pass_on_the_pure_python_path_too():
    """The suite runs on the accelerator where it was built: the socket tests again with it switched off."""
    env = dict(os.environ, HEARTH_NO_ACCEL="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "tests/engine/test_listener.py", "tests/engine/test_upstream.py"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout


@pytest.mark.parametrize("mode", MODES)
def test_a_refusing_upstream_fails_every_try_at_once(mode, monkeypatch):
    """ICMP port unreachable on each try (libuv stops watching a socket that reported an error: the batched
    endpoint must watch it again, or the next tries wait for their time-out)."""
    from resolver.engine.upstream import UpstreamPool
    from resolver.engine.upstream_spec import UpstreamError

    if mode == "python":
        monkeypatch.setattr(accel, "fastpath", None)
    elif accel.fastpath is None:
        pytest.skip("the accelerator was not built here")
    import uvloop

    async def go():
        pool = UpstreamPool(["udp://127.0.0.1:9"], timeout=2.0, attempts=3)
        started = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamError) as failed:
            await pool.query(_query("example.com", 5))
        took = asyncio.get_running_loop().time() - started
        await pool.close()
        return str(failed.value), took

    message, took = uvloop.run(go())
    assert message.count("connection refused") == 3 and took < 1.5
