"""The pipeline without sockets: a fake clock and a scripted upstream pool."""
from __future__ import annotations

import asyncio

from dnslib import RR, DNSRecord

from resolver.policy.access import ClientAccess, RateLimitConfig
from resolver.engine.cache import AnswerCache, CacheConfig
from resolver.engine.localrecords import LocalZone
from resolver.engine.pipeline import Pipeline
from resolver.engine.querylog import QueryLog, QueryLogConfig
from resolver.engine.stats import Stats
from resolver.engine.upstream import UpstreamError


class Clock:
    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now


class ScriptedPool:
    """Answers every name with A 192.0.2.<n> (n = upstream calls so far), TTL ``ttl``."""

    def __init__(self, ttl=60, delay=0.0):
        self.ttl, self.delay, self.calls, self.fail = ttl, delay, 0, False

    async def query(self, packet: bytes):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise UpstreamError("scripted failure")
        q = DNSRecord.parse(packet)
        r = q.reply()
        r.add_answer(*RR.fromZone(f"{q.q.qname} {self.ttl} IN A 192.0.2.{self.calls}"))
        return bytes(r.pack()), "udp://scripted"

    def forward(self, packet: bytes, done, question=None):
        async def run():
            try:
                reply, url = await self.query(packet)
            except UpstreamError as exc:
                done(None, "", str(exc))
            else:
                done(reply, url, None)
        asyncio.ensure_future(run())

    def known_down(self, recheck: float) -> bool:
        return False


def _pipeline(pool, clock, **cache):
    return Pipeline(access=ClientAccess(["127.0.0.0/8"], RateLimitConfig(qps=0)),
                    cache=AnswerCache(CacheConfig(**cache), clock), local=LocalZone([]), upstreams=pool,
                    querylog=QueryLog(QueryLogConfig(enabled=False), None), stats=Stats(), clock=clock)


def _q(name="www.example.com"):
    return bytes(DNSRecord.question(name, "A").pack())


def _ask(p, data, client="127.0.0.1"):
    """Fast path first, then the miss path, as the listener does."""
    async def go():
        out = p.answer_cached(data, client, True)
        if out is None:
            fut = asyncio.get_running_loop().create_future()
            p.resolve_later(data, client, True, lambda b: fut.done() or fut.set_result(b))
            out = await fut
        return out

    return DNSRecord.parse(asyncio.get_event_loop().run_until_complete(go()))


def test_concurrent_misses_share_one_upstream_query():
    pool, clock = ScriptedPool(delay=0.05), Clock()
    p = _pipeline(pool, clock)

    async def main():
        futs = [asyncio.get_running_loop().create_future() for _ in range(20)]
        for f in futs:
            p.resolve_later(_q(), "127.0.0.1", True, f.set_result)
        return await asyncio.gather(*futs)

    replies = asyncio.run(main())
    assert pool.calls == 1 and len({DNSRecord.parse(r).rr[0].rdata.__str__() for r in replies}) == 1


def test_popular_names_are_prefetched_before_expiry():
    pool, clock = ScriptedPool(ttl=100), Clock()
    p = _pipeline(pool, clock, prefetch_min_hits=3)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        assert str(_ask(p, _q()).rr[0].rdata) == "192.0.2.1"
        for _ in range(3):
            _ask(p, _q())
        clock.now += 91  # past 90% of the TTL
        hit = _ask(p, _q())  # still answered from cache, and triggers the refresh
        assert str(hit.rr[0].rdata) == "192.0.2.1" and hit.rr[0].ttl == 9
        loop.run_until_complete(asyncio.sleep(0.01))
        assert pool.calls == 2 and p.stats.prefetches == 1
        fresh = _ask(p, _q())
        assert str(fresh.rr[0].rdata) == "192.0.2.2" and fresh.rr[0].ttl == 100
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_slow_upstream_gets_the_stale_answer_after_the_client_timeout():
    pool, clock = ScriptedPool(ttl=10), Clock()
    p = _pipeline(pool, clock, stale_client_timeout=0.1)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        _ask(p, _q())
        clock.now += 11
        pool.delay = 0.5
        t0 = loop.time()
        stale = _ask(p, _q())
        assert loop.time() - t0 < 0.4
        assert str(stale.rr[0].rdata) == "192.0.2.1" and stale.rr[0].ttl == 30
        loop.run_until_complete(asyncio.sleep(0.6))  # the refresh finished in the background
        assert str(_ask(p, _q()).rr[0].rdata) == "192.0.2.2"
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_serve_stale_off_gives_servfail():
    pool, clock = ScriptedPool(ttl=10), Clock()
    p = _pipeline(pool, clock, serve_stale=0)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        _ask(p, _q())
        clock.now += 11
        pool.fail = True
        assert _ask(p, _q()).header.rcode == 2
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def test_ttl_clamps_apply_to_what_clients_see():
    pool, clock = ScriptedPool(ttl=5), Clock()
    p = _pipeline(pool, clock, min_ttl=60)
    assert asyncio.run(_resolve(p)).rr[0].ttl == 60
    pool2 = ScriptedPool(ttl=10 ** 6)
    p2 = _pipeline(pool2, clock, max_ttl=3600)
    assert asyncio.run(_resolve(p2)).rr[0].ttl == 3600


async def _resolve(p):
    return DNSRecord.parse(await p.resolve(_q(), "127.0.0.1", True))
