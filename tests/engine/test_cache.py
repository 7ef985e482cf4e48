"""The answer cache without sockets: TTL decrement, case echo, LRU, stale."""
from __future__ import annotations

from dnslib import RR, DNSRecord

from resolver.engine.cache import AnswerCache, CacheConfig, CacheEntry
from resolver.engine.wire import parse_question


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _reply(name="www.example.com", ttl=300):
    q = DNSRecord.question(name, "A")
    r = q.reply()
    r.add_answer(*RR.fromZone(f"{name}. {ttl} IN A 192.0.2.1"))
    r.add_answer(*RR.fromZone(f"{name}. {ttl + 100} IN A 192.0.2.2"))
    return bytes(q.pack()), bytes(r.pack())


def test_hit_patches_id_case_and_ttl():
    clock = Clock()
    cache = AnswerCache(CacheConfig(), clock)
    query, reply = _reply()
    q = parse_question(query)
    cache.put(q.key, CacheEntry(reply, q.qend, 300, clock()))
    clock.now += 42.7
    other = DNSRecord.question("WWW.example.COM", "A")
    other.header.id = 4242
    data = bytes(other.pack())
    q2 = parse_question(data)
    entry = cache.get(q2.key)
    out = DNSRecord.parse(entry.reply(data, q2.qend, clock()))
    assert out.header.id == 4242
    assert str(out.q.qname) == "WWW.example.COM."
    assert [r.ttl for r in out.rr] == [258, 358]
    clock.now += 1000
    out = DNSRecord.parse(entry.reply(data, q2.qend, clock()))
    assert [r.ttl for r in out.rr] == [0, 0]  # floored, never wraps


def test_eviction_gives_recently_hit_entries_a_second_chance():
    clock = Clock()
    cache = AnswerCache(CacheConfig(size=2), clock)
    keys = []
    for name in ("a.test", "b.test", "c.test"):
        query, reply = _reply(name)
        q = parse_question(query)
        keys.append(q.key)
        if name == "c.test":
            cache.get(keys[0]).hits += 1  # a.test was hit: b.test is the one to go
        cache.put(q.key, CacheEntry(reply, q.qend, 300, clock()))
    assert cache.get(keys[0]) is not None and cache.get(keys[1]) is None and cache.get(keys[2]) is not None
    assert cache.evictions == 1


def test_clamps_and_stale_window():
    cache = AnswerCache(CacheConfig(min_ttl=60, max_ttl=3600, negative_max_ttl=600))
    assert cache.clamp(5) == 60 and cache.clamp(100000) == 3600 and cache.negative_ttl(86400) == 600
    clock = Clock()
    query, reply = _reply()
    q = parse_question(query)
    entry = CacheEntry(reply, q.qend, 300, clock(), stale_for=86400)
    assert entry.stale_until == clock() + 300 + 86400
    stale = DNSRecord.parse(entry.stale_reply(query, q.qend, 30))
    assert [r.ttl for r in stale.rr] == [30, 30]
    cache = AnswerCache(CacheConfig(), clock)
    cache.put(q.key, entry)
    clock.now += 300 + 86400 + 1
    assert cache.expire_stale() == 1 and len(cache) == 0


def test_min_ttl_above_max_ttl_is_rejected():
    import pytest
    with pytest.raises(ValueError):
        CacheConfig(min_ttl=100, max_ttl=10)


def test_a_views_copy_under_a_distant_cap_keeps_the_bytes_and_counts_down_alike():
    """A profile with schedules caps every answer at the next change (hours away): its copy of a fresh answer
    shares the bytes when no TTL reaches the cap, and answers exactly as a copy made the long way."""
    query, reply = _reply()
    q = parse_question(query)
    base = CacheEntry(reply, q.qend, 300, 1000.0)
    for now, cap in ((1000.4, 10800), (1000.9, 400), (1000.9, 399), (1000.2, 150), (1001.5, 10800)):
        copy = base.derive(now, cap)
        ttls = [min(t - int(now - 1000.0), cap) for t in (300, 400)]
        assert list(copy.ttls) == ttls
        assert copy.expires == min(1300.0, now + cap) and copy.stored == now
        for later in (0.0, 1.0, 55.5, 299.0):
            out = DNSRecord.parse(copy.reply(query, q.qend, now + later))
            assert [r.ttl for r in out.rr] == [max(0, t - int(later)) for t in ttls]
        assert (copy.tail is base.tail) == (int(now - 1000.0) == 0 and cap >= 400)
