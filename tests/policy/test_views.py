"""Views: which policy a client gets, and how the answer cache keeps profiles apart (no sockets)."""
from __future__ import annotations

import asyncio

import pytest

from dnslib import DNSRecord

from resolver.policy.access import ClientAccess, RateLimitConfig
from resolver.engine.cache import AnswerCache, CacheConfig
from resolver.engine.localrecords import LocalZone
from resolver.engine.pipeline import Pipeline
from resolver.policy.profiles import Device, Profile, Schedule, TempAllow
from resolver.engine.querylog import QueryLog, QueryLogConfig
from resolver.engine.stats import Stats
from resolver.policy.views import PolicySet, ViewRegistry
from tests.engine.test_pipeline import Clock, ScriptedPool

KIDS = Profile(name="Kids", block=("www.example.com",), bypass_prevention=True)
DEVICES = [Device(name="tablet", kind="ip", value="127.0.0.2", profile="Kids", id=1),
           Device(name="class", kind="cidr", value="10.1.2.0/24", profile="Kids", id=2),
           Device(name="phone", kind="mac", value="02:00:00:00:00:07", profile="Kids", id=3),
           Device(name="console", kind="ip", value="127.0.0.4", profile="Kids", id=4, paused_until=2e9)]


def _policies(registry, now=1.7e9, allows=(), devices=DEVICES, schedules=()):
    return PolicySet(registry, [KIDS], devices, schedules, allows, None, {}, "UTC", now=now)


def test_clients_get_their_devices_profile_and_unknown_ones_the_default():
    ps = _policies(ViewRegistry())
    assert ps.view_for("127.0.0.2")[0].profile == "Kids"
    assert ps.view_for("10.1.2.77")[0].profile == "Kids"            # the classroom network
    assert ps.view_for("127.0.0.9", "02:00:00:00:00:07")[0].profile == "Kids"   # MAC named by a forwarder
    view, device = ps.view_for("127.0.0.1")
    assert view.profile == "default" and device is None


def test_a_paused_device_or_one_with_allows_gets_its_own_view_and_the_others_share():
    registry = ViewRegistry()
    ps = _policies(registry, allows=[TempAllow(device="tablet", domain="www.example.com", until=1.7e9 + 60)])
    tablet, console, classroom = ps.view_for("127.0.0.2")[0], ps.view_for("127.0.0.4")[0], ps.view_for("10.1.2.5")[0]
    assert len({tablet.tag, console.tag, classroom.tag}) == 3
    assert console.paused_until == 2e9 and tablet.temp_allows == (("www.example.com", 1.7e9 + 60),)
    assert ps.next_expiry == 1.7e9 + 60
    # rebuilt later (the allow expired): the tablet is back in the profile's view; tags are stable
    again = _policies(registry, now=1.7e9 + 61, allows=[])
    assert again.view_for("127.0.0.2")[0] is again.view_for("10.1.2.5")[0]
    assert again.view_for("10.1.2.5")[0].tag == classroom.tag


def test_tags_never_look_like_a_wire_name():
    registry = ViewRegistry()
    tags = {registry.get(f"p:{i}").tag for i in range(1000)}
    assert len(tags) == 1000 and all(len(t) == 2 and t[0] >= 0xC0 for t in tags)


def _pipeline(pool, clock, wall):
    p = Pipeline(access=ClientAccess(["127.0.0.0/8", "10.0.0.0/8"], RateLimitConfig(qps=0)),
                 cache=AnswerCache(CacheConfig(), clock), local=LocalZone([]), upstreams=pool,
                 querylog=QueryLog(QueryLogConfig(enabled=False), None), stats=Stats(), clock=clock,
                 wall=lambda: wall[0])
    return p


def _ask(p, name, client, qtype="A"):
    data = bytes(DNSRecord.question(name, qtype).pack())

    async def go():
        out = p.answer_cached(data, client, True)
        if out is None:
            fut = asyncio.get_running_loop().create_future()
            p.resolve_later(data, client, True, lambda b: fut.done() or fut.set_result(b))
            out = await fut
        return DNSRecord.parse(out)

    return asyncio.run(go())


def test_same_query_bytes_from_two_profiles_get_their_own_answers_and_one_upstream_fetch():
    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _pipeline(pool, clock, wall)
    p.set_policies(_policies(p.registry))
    assert str(_ask(p, "www.example.com", "127.0.0.1").rr[0].rdata) == "192.0.2.1"
    assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "0.0.0.0"
    for _ in range(3):  # cache hits, each profile its own
        assert str(_ask(p, "www.example.com", "127.0.0.1").rr[0].rdata) == "192.0.2.1"
        assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "0.0.0.0"
    assert pool.calls == 1
    # the classroom shares the tablet's profile: allowed names come from the same upstream answer
    assert str(_ask(p, "other.example", "10.1.2.3").rr[0].rdata) == "192.0.2.2"
    assert str(_ask(p, "other.example", "127.0.0.1").rr[0].rdata) == "192.0.2.2"
    assert pool.calls == 2


def test_a_new_policy_rechecks_cached_answers_without_refetching():
    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _pipeline(pool, clock, wall)
    p.set_policies(_policies(p.registry))
    assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "0.0.0.0"
    assert str(_ask(p, "www.example.com", "127.0.0.1").rr[0].rdata) == "192.0.2.1"
    unblocked = Profile(name="Kids", bypass_prevention=True)
    p.set_policies(PolicySet(p.registry, [unblocked], DEVICES, [], [], None, {}, "UTC", now=wall[0]))
    assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "192.0.2.1"
    assert pool.calls == 1


def _under_bedtime(start: str, end: str, ttl: int):
    """(pipeline, upstream, clock, wall) at 2023-11-14 22:13:20 UTC, the Kids devices under a block_all
    bedtime from ``start`` to ``end``; the upstream answers with ``ttl``."""
    pool, clock, wall = ScriptedPool(ttl=ttl), Clock(), [1_700_000_000.0]
    p = _pipeline(pool, clock, wall)
    bedtime = Schedule(profile="Kids", name="bedtime", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                       start=start, end=end, action="block_all")
    p.set_policies(_policies(p.registry, schedules=[bedtime], now=wall[0]))
    return p, pool, clock, wall


def test_answers_under_a_schedule_expire_when_the_window_changes():
    p, pool, clock, wall = _under_bedtime("22:00", "22:14", ttl=3600)
    blocked = _ask(p, "news.example", "127.0.0.2")
    assert str(blocked.rr[0].rdata) == "0.0.0.0" and blocked.rr[0].ttl == 40
    clock.now += 41
    wall[0] += 41
    allowed = _ask(p, "news.example", "127.0.0.2")
    assert str(allowed.rr[0].rdata) == "192.0.2.1"
    assert allowed.rr[0].ttl == 3600   # the next window opens tomorrow: no cap below the TTL
    assert _ask(p, "news.example", "127.0.0.1").rr[0].ttl == 3600


def test_refreshed_upstream_answer_replaces_every_profiles_copy():
    pool, clock, wall = ScriptedPool(ttl=100), Clock(), [1.7e9]
    p = _pipeline(pool, clock, wall)
    p.set_policies(_policies(p.registry))
    for _ in range(4):
        _ask(p, "popular.example", "127.0.0.1")
        _ask(p, "popular.example", "127.0.0.2")
    clock.now += 91
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        # the hit past 90 % of the TTL starts the refresh
        data = bytes(DNSRecord.question("popular.example", "A").pack())
        assert p.answer_cached(data, "127.0.0.1", True) is not None
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    assert pool.calls == 2
    assert str(_ask(p, "popular.example", "127.0.0.1").rr[0].rdata) == "192.0.2.2"
    assert str(_ask(p, "popular.example", "127.0.0.2").rr[0].rdata) == "192.0.2.2"
    assert pool.calls == 2


def test_block_mode_is_per_profile_and_null_means_the_appliance_default():
    from resolver.policy.blocking import BlockingConfig

    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _pipeline(pool, clock, wall)
    p.blocking = BlockingConfig(mode="page", page_ipv4="192.168.1.2")
    strict = Profile(name="Kids", block=("www.example.com",), block_mode="nxdomain")
    quiet = Profile(name="default", block=("www.example.com",))
    p.set_policies(PolicySet(p.registry, [strict, quiet], DEVICES, [], [], None, {}, "UTC", now=wall[0],
                             default_block_mode="page"))
    assert _ask(p, "www.example.com", "127.0.0.2").header.rcode == 3             # the profile's nxdomain
    assert str(_ask(p, "www.example.com", "127.0.0.1").rr[0].rdata) == "192.168.1.2"  # blocking.mode page
    p.blocking = BlockingConfig()                                                # no page address: null
    p.set_policies(PolicySet(p.registry, [strict, quiet], DEVICES, [], [], None, {}, "UTC", now=wall[0],
                             default_block_mode="page"))
    assert str(_ask(p, "www.example.com", "127.0.0.1").rr[0].rdata) == "0.0.0.0"


class _CnamePool(ScriptedPool):
    """Answers NAME with a CNAME to cdn.example and cdn.example's A 192.0.2.<n>."""

    async def query(self, packet: bytes):
        from dnslib import RR

        self.calls += 1
        q = DNSRecord.parse(packet)
        r = q.reply()
        r.add_answer(*RR.fromZone(f"{q.q.qname} {self.ttl} IN CNAME cdn.example."))
        r.add_answer(*RR.fromZone(f"cdn.example. {self.ttl} IN A 192.0.2.{self.calls}"))
        return bytes(r.pack()), "udp://scripted"


def _with_kids(pool, clock, wall) -> Pipeline:
    """A pipeline whose devices have the Kids profile in force."""
    p = _pipeline(pool, clock, wall)
    p.set_policies(_policies(p.registry, now=wall[0]))
    return p


def _kids(**changes) -> Profile:
    return Profile(**{"name": "Kids", "block": ("www.example.com",), "bypass_prevention": True, **changes})


def test_a_policy_change_that_leaves_a_name_alone_keeps_its_cached_answer():
    """A parent's change makes every cached answer old at once; those the new policy answers the same way are
    served from the cache again (no new copy made, no upstream query, nothing on the miss path), so a busy
    network's first second after the change is not a storm of misses."""
    pool, clock, wall = _CnamePool(ttl=300), Clock(), [1.7e9]
    p = _with_kids(pool, clock, wall)
    assert _ask(p, "news.example", "127.0.0.2").rr[-1].rdata.toZone() == "192.0.2.1"
    assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "0.0.0.0"
    allowed, blocked = (p.cache.get(p.policies.view_for("127.0.0.2")[0].tag + _key(n))
                        for n in ("news.example", "www.example.com"))
    made, slow = p.stats.blocked, p.stats.slow_queries
    p.set_policies(PolicySet(p.registry, [_kids(allow=("homework.example",))], DEVICES, [], [], None, {}, "UTC",
                             now=wall[0]))
    assert _ask(p, "news.example", "127.0.0.2").rr[-1].rdata.toZone() == "192.0.2.1"
    assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "0.0.0.0"
    view = p.policies.view_for("127.0.0.2")[0]
    assert p.cache.get(view.tag + _key("news.example")) is allowed
    assert p.cache.get(view.tag + _key("www.example.com")) is blocked
    assert (pool.calls, p.stats.blocked, p.stats.slow_queries) == (1, made, slow)


@pytest.mark.parametrize("change, expect", [
    ({"block": ("www.example.com", "news.example")}, "blocked"),     # the name itself now blocked
    ({"block": ("www.example.com", "cdn.example")}, "blocked"),      # its CNAME target now blocked
    ({"safe_search": True}, None),                                   # not this name's business: kept
])
def test_a_policy_change_that_concerns_a_cached_name_is_applied_to_it(change, expect):
    pool, clock, wall = _CnamePool(ttl=300), Clock(), [1.7e9]
    p = _with_kids(pool, clock, wall)
    assert _ask(p, "news.example", "127.0.0.2").rr[-1].rdata.toZone() == "192.0.2.1"
    p.set_policies(PolicySet(p.registry, [_kids(**change)], DEVICES, [], [], None, {}, "UTC", now=wall[0]))
    answer = _ask(p, "news.example", "127.0.0.2")
    if expect == "blocked":
        assert str(answer.rr[0].rdata) == "0.0.0.0"
    else:
        assert answer.rr[-1].rdata.toZone() == "192.0.2.1"
    assert pool.calls == 1


def test_a_blocked_name_is_answered_again_when_its_reason_or_mode_changes():
    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _with_kids(pool, clock, wall)
    assert str(_ask(p, "www.example.com", "127.0.0.2").rr[0].rdata) == "0.0.0.0"
    p.set_policies(PolicySet(p.registry, [_kids(block_mode="nxdomain")], DEVICES, [], [], None, {}, "UTC",
                             now=wall[0]))
    assert _ask(p, "www.example.com", "127.0.0.2").header.rcode == 3
    bedtime = Schedule(profile="Kids", name="bedtime", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                       start="00:00", end="23:59", action="block_all")
    p.set_policies(PolicySet(p.registry, [_kids(block_mode="nxdomain", block=())], DEVICES, [bedtime], [], None,
                             {}, "UTC", now=wall[0]))
    answer = _ask(p, "www.example.com", "127.0.0.2")
    assert answer.header.rcode == 3 and answer.auth[0].ttl <= 60 * 24   # now the schedule's, capped at its end


def test_a_cached_answer_is_not_kept_for_a_name_that_became_local():
    from resolver.engine.localrecords import LocalRecord

    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _with_kids(pool, clock, wall)
    assert str(_ask(p, "printer.example", "127.0.0.2").rr[0].rdata) == "192.0.2.1"
    p.local = LocalZone([LocalRecord(name="printer.example", type="A", value="192.168.1.9")])
    p.set_policies(_policies(p.registry))
    assert str(_ask(p, "printer.example", "127.0.0.2").rr[0].rdata) == "192.168.1.9"


def _key(name: str) -> bytes:
    from resolver.engine.wire import parse_question

    return parse_question(bytes(DNSRecord.question(name, "A").pack()), 1232).key


def test_a_cached_answer_outliving_a_new_schedules_start_is_cut_to_it_and_then_kept():
    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1_700_000_000.0]   # 2023-11-14 22:13:20 UTC
    p = _pipeline(pool, clock, wall)
    p.set_policies(_policies(p.registry, now=wall[0]))
    assert _ask(p, "news.example", "127.0.0.2").rr[0].ttl == 300
    bedtime = Schedule(profile="Kids", name="bedtime", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                       start="22:14", end="23:00", action="block_all")
    p.set_policies(_policies(p.registry, schedules=[bedtime], now=wall[0]))
    assert _ask(p, "news.example", "127.0.0.2").rr[0].ttl == 40        # bedtime starts in 40 s
    capped = p.cache.get(p.policies.view_for("127.0.0.2")[0].tag + _key("news.example"))
    clock.now += 5
    wall[0] += 5
    p.set_policies(PolicySet(p.registry, [_kids(allow=("homework.example",))], DEVICES, [bedtime], [], None, {},
                             "UTC", now=wall[0]))
    assert _ask(p, "news.example", "127.0.0.2").rr[0].ttl == 35        # the same answer, 5 s older
    assert p.cache.get(p.policies.view_for("127.0.0.2")[0].tag + _key("news.example")) is capped
    clock.now += 36
    wall[0] += 36
    assert str(_ask(p, "news.example", "127.0.0.2").rr[0].rdata) == "0.0.0.0"   # bedtime
    assert pool.calls == 1


def test_a_blocked_answer_that_expires_starts_its_ttl_again_while_the_name_stays_blocked_alike():
    """Blocked names asked in one burst expire in the same second. While the view blocks a name for the same
    reason with the same TTL, its expired answer is the cached one with its TTL started again: no answer made
    again, nothing on the miss path (once a minute the engine used to make thousands again at once). The
    statistics count it as before, once a TTL."""
    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _with_kids(pool, clock, wall)
    assert _ask(p, "www.example.com", "127.0.0.2").rr[0].ttl == 60
    view = p.policies.view_for("127.0.0.2")[0]
    blocked = p.cache.get(view.tag + _key("www.example.com"))
    made, slow = p.stats.blocked, p.stats.slow_queries
    for step in (61, 30):
        clock.now += step
        wall[0] += step
        again = _ask(p, "www.example.com", "127.0.0.2")
        assert str(again.rr[0].rdata) == "0.0.0.0"
        assert again.rr[0].ttl == (60 if step == 61 else 30)   # started again at 61 s, then counting down
    assert p.cache.get(view.tag + _key("www.example.com")) is blocked
    assert (p.stats.slow_queries, pool.calls) == (slow, 0)
    assert p.stats.blocked == made + 1   # the block counted once a TTL, as when it was made again


def test_a_blocked_answer_that_expires_is_made_again_when_its_ttl_or_reason_would_change():
    """A schedule that starts soon caps the blocked TTL: the expired answer is made again with the shorter
    TTL (a renewed one would outlive the change), and once the schedule blocks everything, for its reason."""
    p, pool, clock, wall = _under_bedtime("22:15", "23:00", ttl=300)
    first = _ask(p, "www.example.com", "127.0.0.2")
    assert str(first.rr[0].rdata) == "0.0.0.0" and first.rr[0].ttl == 60    # bedtime is 100 s away
    made = p.stats.blocked
    clock.now += 61
    wall[0] += 61
    assert _ask(p, "www.example.com", "127.0.0.2").rr[0].ttl == 39          # bedtime in 39 s: made again
    clock.now += 40
    wall[0] += 40
    assert _ask(p, "www.example.com", "127.0.0.2").rr[0].ttl == 60          # bedtime's block, made again
    view = p.policies.view_for("127.0.0.2")[0]
    assert p.cache.get(view.tag + _key("www.example.com")).reason.startswith("schedule")
    assert (p.stats.blocked, pool.calls) == (made + 2, 0)


def test_blocked_answers_made_together_are_checked_again_at_moments_spread_over_the_last_quarter_of_their_ttl():
    """A burst of blocked names (a page full of ad hosts) must not come due again in one instant, once a TTL,
    for as long as the network asks for them: each answer is checked again up to a quarter of its TTL early,
    by an amount fixed per name, so the spread survives the renewals. No answer is served past its TTL."""
    pool, clock, wall = ScriptedPool(ttl=300), Clock(), [1.7e9]
    p = _pipeline(pool, clock, wall)
    p.set_policies(PolicySet(p.registry, [_kids(block=("*.ads.example",))], DEVICES, [], [], None, {}, "UTC",
                             now=wall[0]))
    names = [f"n{i}.ads.example" for i in range(60)]
    for name in names:
        assert _ask(p, name, "127.0.0.2").rr[0].ttl == 60
    view = p.policies.view_for("127.0.0.2")[0]
    due = {name: p.cache.get(view.tag + _key(name)).expires - clock.now for name in names}
    assert all(45 <= left <= 60 for left in due.values())
    assert max(due.values()) - min(due.values()) > 10 and len({round(v) for v in due.values()}) > 8
    clock.now += 61
    wall[0] += 61
    for name in names:
        assert _ask(p, name, "127.0.0.2").rr[0].ttl == 60   # renewed in place, due again as early as before
        assert p.cache.get(view.tag + _key(name)).expires - clock.now == pytest.approx(due[name])
