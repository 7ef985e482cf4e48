"""The miss path's compiled steps and their pure-Python twins give the same results, hostile input included:
``checked_question`` (a query's question walked before its key is stored), ``upstream_query_for`` (the upstreams'
query for a cache key: the same bytes but for a random ID) and ``match_replies`` (an upstream batch handed to the
queries it answers). Without the accelerator the engine uses the twins."""
from __future__ import annotations

import gc
import random
import tracemalloc
from functools import partial

import pytest

from resolver.engine import accel, answers, cache, fetcher, transports, wire
from resolver.engine.cache import CacheEntry
from tests.engine.test_lookup_key import _packets
from tests.engine.test_reply_parts import _hostile, _seeds

FAST = accel.fastpath
needs_fast = pytest.mark.skipif(FAST is None or not hasattr(FAST, "match_replies"),
                                reason="the accelerator was not built here (no compiler) or HEARTH_NO_ACCEL is set")


@needs_fast
def test_checked_question_in_c_matches_python() -> None:
    rng = random.Random(7)
    questions = refused = 0
    for p in _packets(rng):
        for cap in (512, 1232):
            found = wire.lookup_key(p, cap)
            if found is None:
                continue
            want = wire.checked_question(p, found)
            got = FAST.checked_question(wire.Question, p, found)
            assert got == want, (p, found)
            assert type(got) is type(want)
            questions += want is not None
            refused += want is None
    assert questions > 3000 and refused > 100   # both outcomes well covered (pointers, zeros inside labels)


@needs_fast
def test_checked_question_in_c_refuses_what_does_not_fit() -> None:
    with pytest.raises(TypeError):
        FAST.checked_question(wire.Question, bytearray(20), (b"\x00", 17, 512))
    with pytest.raises(TypeError):
        FAST.checked_question(wire.Question, b"\x00" * 20, (b"\x00", 17))
    with pytest.raises(IndexError):   # a found tuple that does not belong to the packet: as the twin
        wire.checked_question(b"\x00" * 12 + b"\x05ab", (b"", 40, 512))
    with pytest.raises(IndexError):
        FAST.checked_question(wire.Question, b"\x00" * 12 + b"\x05ab", (b"", 40, 512))


def _keys(rng: random.Random) -> list[bytes]:
    keys = []
    for _ in range(2000):
        labels = [bytes(rng.choice(b"abcxyz019-") for _ in range(rng.randint(1, 20))) for _ in range(rng.randint(0, 5))]
        name = b"".join(bytes((len(lb),)) + lb for lb in labels) + b"\x00"
        keys.append(name + rng.randbytes(4) + bytes((rng.randrange(16),)))
    return keys


@needs_fast
def test_upstream_query_in_c_is_the_same_query_with_its_own_random_id() -> None:
    rng = random.Random(3)
    ids = set()
    for key in _keys(rng):
        for size in (512, 1232, 4096, 65535):
            want = answers.upstream_query_for(key, size)
            got = FAST.upstream_query_for(key, size)
            assert got[2:] == want[2:], (key, size)
            ids.add(got[:2])
    assert len(ids) > 7000    # 8,000 queries: IDs drawn from 65,536, not a counter or a constant
    with pytest.raises(TypeError):
        FAST.upstream_query_for(b"", 1232)
    with pytest.raises(OverflowError):
        FAST.upstream_query_for(b"\x00\x00\x01\x00\x01\x00", 70000)


class _Calls:
    """on_reply callbacks that note which waiter got which reply; one of them may raise."""

    def __init__(self) -> None:
        self.log: list[tuple[int, bytes]] = []
        self.raise_for: set[int] = set()

    def make(self, n: int):
        def on_reply(data: bytes) -> None:
            self.log.append((n, data))
            if n in self.raise_for:
                raise RuntimeError(f"waiter {n} broke")
        return on_reply


def _scene(rng: random.Random):
    """(pending, replies, calls): waiters on few IDs (several per ID, some asking the same question) and a batch
    of replies: right ones (the name's case changed), forged IDs, other questions, type bytes in letter range,
    no QR bit, cut short, repeats."""
    calls = _Calls()
    pending: dict[int, list[list]] = {}
    questions = []
    for n in range(rng.randint(1, 12)):
        qid = rng.choice((1, 2, 3, 0x4142))
        name = rng.choice((b"\x03www\x07example\x03com\x00", b"\x01a\x00", b"\x00", b"\x03WwW\x01b\x00"))
        qtype = rng.choice((b"\x00\x01", b"\x00\x1c", b"\x00\x41", b"\x00\x61"))
        qb = name.lower() + qtype + b"\x00\x01"
        if rng.random() < 0.1:
            qb = bytearray(qb)
        pending.setdefault(qid, []).append([qb, calls.make(n)])
        questions.append((qid, bytes(qb)))
    replies: list = []
    for _ in range(rng.randint(0, 16)):
        qid, qb = rng.choice(questions)
        if rng.random() < 0.2:
            qid = rng.randrange(65536)
        if rng.random() < 0.2:
            qb = rng.choice(questions)[1]
        name = bytes(c - 32 if 97 <= c <= 122 and rng.random() < 0.5 else c for c in qb[:-4])
        tail = qb[-4:]
        if rng.random() < 0.1:
            tail = tail[:1] + bytes((tail[1] ^ 0x20,)) + tail[2:]    # "A" vs "a" as a type byte
        flags = b"\x81\x80" if rng.random() > 0.1 else b"\x01\x00"
        data = qid.to_bytes(2, "big") + flags + b"\x00\x01\x00\x01\x00\x00\x00\x00" + name + tail + rng.randbytes(8)
        if rng.random() < 0.1:
            data = data[:rng.randrange(len(data))]
        replies.append(data)
    if rng.random() < 0.2:
        calls.raise_for.add(rng.randrange(12))
    return pending, replies, calls


def _run(match, pending, replies, calls):
    try:
        result = match(pending, replies)
    except RuntimeError as exc:
        result = str(exc)
    left = {qid: [(bytes(w[0]), w[1]) for w in ws] for qid, ws in pending.items()}
    return result, calls.log, left


@needs_fast
def test_match_replies_in_c_hands_on_the_same_replies() -> None:
    rng = random.Random(11)
    handed = broke = 0
    for _ in range(3000):
        pending, replies, calls = _scene(rng)
        # the same scene for the twin: its own lists, and callbacks with the same numbers logging apart
        twin_pending = {qid: [list(w) for w in ws] for qid, ws in pending.items()}
        twin_calls = _Calls()
        twin_calls.raise_for = set(calls.raise_for)
        for ws in twin_pending.values():
            for w in ws:
                n = w[1].__closure__[0].cell_contents
                w[1] = twin_calls.make(n)
        want = _run(transports.match_replies, twin_pending, replies, twin_calls)
        got = _run(FAST.match_replies, pending, replies, calls)
        assert got[0] == want[0] and got[1] == want[1], replies
        assert {q: [b for b, _ in ws] for q, ws in got[2].items()} == \
            {q: [b for b, _ in ws] for q, ws in want[2].items()}
        handed += len(got[1])
        broke += isinstance(got[0], str)
    assert handed > 3000 and broke > 20


def test_endpoints_use_the_python_twin_without_the_accelerator(monkeypatch) -> None:
    from resolver.engine import pipeline

    monkeypatch.setattr(accel, "fastpath", None)
    assert transports._UDPEndpoint(None)._match is transports.match_replies
    assert pipeline.pick_checked_question() is wire.checked_question
    assert fetcher.Fetcher(object())._upstream_query_for is answers.upstream_query_for


def _slots(entry: CacheEntry) -> dict:
    return {name: getattr(entry, name) for name in CacheEntry.__slots__}


@needs_fast
def test_reply_entry_in_c_makes_the_same_entry_slot_for_slot(test_data) -> None:
    cases = _seeds(test_data)
    cases += _hostile(cases, 2000)
    made = declined = 0
    for reply, key in cases:
        for now, stale_for in ((1000.25, 86400), (5, 0), (1e9 + 0.5, 30.5)):
            for clamp in ((0, 86400, 3600), (5.5, 60.25, 30.75), (0, 10, 0)):
                args = (reply, key, 1232, *clamp, now, stale_for, "udp://up")
                want = fetcher.reply_entry(*args)
                got = FAST.reply_entry(CacheEntry, *args)
                if want is None:
                    assert got is None, reply.hex()
                    declined += 1
                    continue
                assert type(got) is CacheEntry
                assert _slots(got) == _slots(want), reply.hex()
                # the same kinds of numbers (an int clock stays int) and the cache's shared empty tuple
                assert [type(getattr(got, n)) for n in CacheEntry.__slots__] == \
                    [type(getattr(want, n)) for n in CacheEntry.__slots__]
                assert got.aliases is cache._NONE and got.copies is cache._NONE
                made += 1
    assert made > 3000 and declined > 3000
    with pytest.raises(TypeError):
        FAST.reply_entry(dict, *cases[0], 1232, 0, 86400, 3600, 1.0, 0, "udp://up")


def _upstream_entries(test_data) -> list[CacheEntry]:
    out = []
    for reply, key in _seeds(test_data):
        entry = fetcher.reply_entry(reply, key, 1232, 0, 86400, 3600, 1000.0, 86400, "udp://up")
        if entry is not None:
            entry.key = key
            entry.cnames = entry.cnames or (b"\x01x\x00",) * (len(out) % 2)
            out.append(entry)
    return out


@needs_fast
def test_derive_in_c_is_the_methods_copy(test_data) -> None:
    """Every case the C copy takes (the answer just came: no cap, or a cap no TTL reaches) and every case it hands
    to the method (older answers, lower caps, odd clocks) give the method's entry, slot for slot."""
    ups = _upstream_entries(test_data)
    assert len(ups) > 20
    compared = shared = 0
    for up in ups:
        top = max(up.ttls) if up.ttls else 0
        for age in (0.0, 0.2, 0.999, 1.0, 1.5, 30.0, -0.5, -1.5):
            for cap in (None, 0, 1, 5, top - 1, top, top + 1, 10**6, True):
                now = up.stored + age
                want = up.derive(now, cap)
                got = FAST.derive(up, now, cap)
                assert _slots(got) == _slots(want), (age, cap)
                assert got.base is up and got.aliases is cache._NONE and got.copies is cache._NONE
                shared += got.tail is up.tail
                compared += 1
        want, got = up.derive(1001, 5), FAST.derive(up, 1001, 5)   # an int clock: the method's way
        assert _slots(got) == _slots(want)
    assert compared > 2000 and shared > 500


def test_the_fetcher_and_pipeline_use_the_twins_without_the_accelerator(monkeypatch) -> None:
    monkeypatch.setattr(accel, "fastpath", None)
    made = fetcher.Fetcher(object())
    assert made._reply_entry is fetcher.reply_entry and made._fetched_usual is fetcher.Fetcher._fetched


@needs_fast
def test_entry_reply_in_c_is_the_methods_reply(test_data) -> None:
    """The reply for a query at a time, and the entry's patched tail and age after it, as the method makes them:
    the same second (no re-patch), later seconds, an expired answer (TTLs at 0), a clock before the store."""
    rng = random.Random(9)
    compared = 0
    for up in _upstream_entries(test_data):
        key = up.key
        query = rng.randbytes(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes(
            c - 32 if 97 <= c <= 122 and rng.random() < 0.5 else c for c in key[:-5]) + key[-5:-1]
        qend = 12 + len(key) - 1
        mine = fetcher.reply_entry(*_seed_args(up))
        theirs = fetcher.reply_entry(*_seed_args(up))
        for age in (0.0, 0.5, 1.0, 1.0, 7.9, 300.0, 86400.0 * 3, -0.5, -3.0, 2.0):
            now = up.stored + age
            for qe in (qend, qend, qend + 50, 5):
                want = theirs.reply(query, qe, now)
                got = FAST.entry_reply(mine, query, qe, now)
                assert got == want, (age, qe)
                assert _slots(mine) == _slots(theirs)
                compared += 1
        assert FAST.entry_reply(mine, query, qend, 2000) == theirs.reply(query, qend, 2000)   # an int clock
    assert compared > 1000


def _seed_args(up: CacheEntry) -> tuple:
    packet = up.packet()
    return (packet, up.key, 1232, 0, 86400, 3600, up.stored, 86400, "udp://up")


def _cache_pair(size: int):
    """Two caches on one fake clock: one putting in C, the other with the method."""
    clock = [100.0]
    fast = cache.AnswerCache(cache.CacheConfig(size=size), lambda: clock[0])
    slow = cache.AnswerCache(cache.CacheConfig(size=size), lambda: clock[0])
    assert isinstance(fast.put, partial) and fast.put.func is FAST.cache_put
    slow.put = partial(cache.AnswerCache.put, slow)
    return clock, fast, slow


def _state(c: cache.AnswerCache, tables: list[dict]) -> tuple:
    return ([(k, e.key, e.hits, e.seen, len(e.aliases)) for k, e in c._entries.items()], c.evictions,
            [sorted((k, v[0].key) for k, v in t.items()) for t in tables])


@needs_fast
def test_cache_put_in_c_keeps_the_methods_order_evictions_and_aliases(test_data) -> None:
    """The same puts (new keys, replaced keys), hits (second chances), aliases and expiries on both caches: the
    same entries in the same order, the same evictions, the same replaced entries returned, the same aliases."""
    template = _upstream_entries(test_data)[0]
    rng = random.Random(13)
    chances = 0
    for size in (1, 3, 8, 40):
        clock, fast, slow = _cache_pair(size)
        tables = ([{}, {}], [{}, {}])
        for step in range(3000):
            key = b"k%d" % rng.randrange(size * 3)
            ttl = rng.choice((1, 5, 60))
            pair = [fetcher.reply_entry(*_seed_args(template)) for _ in range(2)]
            for e in pair:
                e.stored, e.expires = clock[0], clock[0] + ttl
            replaced = [c.put(key, e) for c, e in zip((fast, slow), pair)]
            assert (replaced[0] is None) == (replaced[1] is None)
            if replaced[0] is not None:
                assert replaced[0].key == replaced[1].key == key
            for c, t in zip((fast, slow), tables):
                if c._entries:
                    keys = list(c._entries)
                    hit = c._entries[keys[step % len(keys)]]
                    if step % 3 == 0:
                        hit.hits += 1                              # a hit since the last look: a second chance
                    if step % 7 == 0:
                        c.alias(t[step % 2], b"q%d" % step, hit, 30, 512)
            if rng.random() < 0.05:
                clock[0] += rng.choice((0.5, 2, 30))
            assert _state(fast, tables[0]) == _state(slow, tables[1]), (size, step)
            chances += any(e.seen for e in fast._entries.values())
        assert fast.evictions > 100
    assert chances > 1000    # second chances were given (seen set from hits), not only plain evictions
    zero = cache.AnswerCache(cache.CacheConfig(size=0))
    assert zero.put(b"k", template) is None and len(zero) == 0


@needs_fast
def test_entries_made_in_c_are_left_to_reference_counting_and_never_leak(test_data) -> None:
    """C-made entries are not tracked by the cyclic collector (whose passes walked every cached entry); their one
    cycle, through a view's alias table, is broken by the cache when it drops them: aliased entries pushed
    through a small cache leave no memory behind, with the collector off."""
    template = _upstream_entries(test_data)[0]
    made = FAST.reply_entry(CacheEntry, *_seed_args(template))
    copy_ = FAST.derive(made, made.stored, None)
    assert not gc.is_tracked(made) and not gc.is_tracked(copy_)
    assert not gc.is_tracked(made.ttls) and not gc.is_tracked(made.offsets)

    def churn(rounds: int) -> None:
        c = cache.AnswerCache(cache.CacheConfig(size=50))
        tables: list[dict] = [{} for _ in range(4)]
        for i in range(rounds):
            e = FAST.reply_entry(CacheEntry, *_seed_args(template))
            v = FAST.derive(e, e.stored, None)
            c.put(b"u%d" % i, e)
            c.put(b"v%d" % i, v)
            c.alias(tables[i % 4], b"q%d" % i, v, 30, 512)
            c.alias(tables[(i + 1) % 4], b"r%d" % i, e, 30, 512)
        c.clear()

    gc.collect()
    gc.disable()
    try:
        churn(2000)   # warm: the allocator's pools
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        churn(20000)
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    finally:
        gc.enable()
    assert grown < 200_000, grown    # 40,000 entries of some 500 bytes each, had their cycles leaked: 20 MB


class _HeldPool:
    """An upstream that answers when told (so several clients can wait for one fetch): A records, a CNAME chain for
    names starting "c", 40 records for "big" (truncated for clients without EDNS), a reply nobody can use for
    "bad", no answer at all for "down"."""

    def __init__(self) -> None:
        self.held: list = []

    def forward(self, packet: bytes, done, question=None) -> None:
        self.held.append((packet, done))

    def release(self) -> None:
        from dnslib import RR, DNSRecord

        held, self.held = self.held, []
        for packet, done in held:
            q = DNSRecord.parse(packet)
            name = str(q.q.qname)
            if name.startswith("down"):
                done(None, "", "scripted failure")
                continue
            if name.startswith("bad"):
                done(packet[:2] + b"\x81\x80\x00\x01\x00\x05", "udp://scripted", None)
                continue
            r = q.reply()
            if name.startswith("c"):
                r.add_answer(*RR.fromZone(f"{name} 300 IN CNAME target.example."))
                r.add_answer(*RR.fromZone("target.example. 300 IN A 192.0.2.9"))
            for i in range(40 if name.startswith("big") else 1):
                r.add_answer(*RR.fromZone(f"{name} {60 + i} IN A 192.0.2.{i + 1}"))
            done(bytes(r.pack()), "udp://scripted", None)

    def known_down(self, recheck: float) -> bool:
        return False


def _miss_run(compiled: bool) -> tuple:
    """The same misses through a pipeline with the reply's way in C or in Python; what a user would see of them."""
    import asyncio

    from dnslib import DNSRecord

    from resolver.engine.pipeline import Pipeline
    from resolver.engine.querylog import QueryLog, QueryLogConfig
    from tests.engine.test_pipeline import Clock, _pipeline

    from resolver.policy.blocking import Decision, Reason
    from resolver.policy.profile_policy import ALLOW, BLOCK, Verdict
    from resolver.policy.views import View

    def decide(view, name: bytes, now: float):   # a policy: "blocked" names blocked, "limited" ones under a cap
        if b"blocked" in name:
            return Verdict(BLOCK, Decision(Reason.CUSTOM, "test", "blocked.example"))
        return Verdict(ALLOW, None, None, 30) if b"limited" in name else None

    pool, clock = _HeldPool(), Clock()
    p = _pipeline(pool, clock)
    p.querylog = QueryLog(QueryLogConfig(buffer_size=40), None)   # too small: the oldest records are dropped
    by_method = []
    if compiled:
        method = p._fetched_for
        p._fetched_for = lambda *a: (by_method.append(a[1]), method(*a))   # the method C hands a case to
    else:
        p._fetched_for_usual, p.fetcher._fetched_usual = Pipeline._fetched_for, fetcher.Fetcher._fetched
        for compiled_step in ("answer_cached", "resolve_later"):
            if compiled_step in vars(p):
                delattr(p, compiled_step)
    sent: list = []

    def sender(who: str):
        def send(out: bytes) -> None:
            if who == "broken":
                raise RuntimeError("this client's socket is gone")
            sent.append((who, out))
        return send

    async def main() -> None:
        names = ["www.example", "c.example", "big.example", "down.example", "bad.example", "a.b.example",
                 "blocked.example", "limited.example"]
        for round_ in (0, 1, 2, 0, 0):   # round 0 again twice: answered from the cache, then by its alias
            for i, name in enumerate(names):
                for who, edns, address in (("alice", True, "127.0.0.1"), ("bob", False, "127.0.0.1"),
                                           ("broken", True, "127.0.0.1"), ("stranger", True, "10.9.9.9")):
                    q = DNSRecord.question(name.replace(".", f"{round_}.", 1), "A")
                    if edns:
                        q.add_ar(__import__("dnslib").EDNS0(udp_len=1232))
                    q.header.id = 100 * round_ + 10 * i + len(who)
                    data = bytes(q.pack())
                    out = p.answer_cached(data, address, True)
                    if out is None:
                        p.resolve_later(data, address, True, sender(who))
                    elif who != "broken":   # a cache hit, or the stranger refused
                        sent.append((f"{who} at once", out))
            clock.now += 0.375
            pool.release()
            clock.now += 1.5

    real_decide, View.decide = View.decide, decide
    resolve_later, slow = Pipeline.resolve_later, []
    Pipeline.resolve_later = lambda self, *a: (slow.append(a[0]), resolve_later(self, *a))[1]
    try:
        asyncio.run(main())
    finally:
        View.decide, Pipeline.resolve_later = real_decide, resolve_later
    by_method.extend(["resolve_later"] * len(slow))   # misses C handed to the method
    entries = sorted((k, e.head, e.tail, e.expires, e.gen, e.key, tuple(e.copies), e.rcode, e.upstream)
                     for k, e in p.cache._entries.items())
    logged = [tuple(getattr(x, "key", x) for x in t) for t in p.querylog.ring]   # an entry by its key
    return sent, entries, logged, list(p.stats.latency), p.stats.upstream_errors, by_method, p.querylog.dropped


@pytest.mark.skipif(FAST is None or not hasattr(FAST, "fetched"), reason="the accelerator was not built here")
def test_the_replys_way_in_c_answers_caches_and_logs_as_the_python_twin(caplog) -> None:
    """A miss's steps in C (answer_cached finding it missing, resolve_later, the fetch, the upstream reply's way
    to each client) against their Python twins: the same replies to each client (misses, cache hits, a stranger
    refused), cache entries, query-log records, drops and latency counts; a client whose send fails costs the
    others nothing; C hands the methods every hit, CNAME chain, failure and unusable reply."""
    got, want = _miss_run(True), _miss_run(False)
    sent, entries, logged, latency, errors, by_method, dropped = got
    assert sent == want[0] and entries == want[1] and logged == want[2] and latency == want[3] and errors == want[4]
    assert dropped == want[6] and dropped > 0 and len(logged) == 40   # a small ring: the oldest records dropped
    answered = [who for who, _ in sent]
    assert answered.count("alice") + answered.count("alice at once") == 5 * 8   # five rounds of eight names
    assert answered.count("stranger at once") == 5 * 8                          # refused at once, every time
    assert "broken" not in answered and answered.count("alice at once") >= 8    # the repeated round from the cache
    # "down" and "bad", asked with and without EDNS (two cache keys) in each of the five rounds (failures are
    # not cached: the repeated rounds fetch them again)
    assert errors == 2 * 2 * 5
    assert "answering a waiting query failed" in caplog.text and "this client's socket is gone" in caplog.text
    # the usual misses stayed in C: the methods saw only the CNAME chains (fetched in three rounds, then cached)
    # and the failures and unusable replies (five rounds), three clients each; resolve_later's method, nothing
    assert len(by_method) == 3 * 3 + 2 * 5 * 3 and "resolve_later" not in by_method


def _answers(callback, fwd) -> bool:
    """Whether a pending query's callback is its _Forward's reply handler (the method, or the same in C)."""
    return callback == fwd.on_reply or (callback.func is FAST.forward_reply and callback.args == (fwd,))


def _forward_run(compiled: bool) -> tuple:
    """Forty queries through a pool with the first try in C or in Python, to a loopback upstream that answers the
    even IDs only; the pool's state right after they left, then what each caller got."""
    import asyncio
    import socket

    from resolver.engine.upstream import UpstreamPool

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    by_method = []

    async def main() -> tuple:
        loop = asyncio.get_running_loop()

        def answer() -> None:
            while True:
                try:
                    packet, addr = server.recvfrom(4096)
                except BlockingIOError:
                    return
                if packet[1] % 2 == 0:   # the even IDs: NOERROR, no records; every sixth SERVFAIL or REFUSED
                    rcode = {2: b"\x82", 4: b"\x85"}.get(packet[1] % 6, b"\x80")
                    server.sendto(packet[:2] + b"\x81" + rcode + packet[4:], addr)

        loop.add_reader(server.fileno(), answer)
        pool = UpstreamPool([f"udp://127.0.0.1:{port}"], timeout=0.2, attempts=2)
        if not compiled:
            del pool.forward   # the method, not the instance's compiled one
        transport = pool._ups[0].transport
        transport._max_uses = 5   # sockets retire (and new ones open) within the run
        method = UpstreamPool.forward
        results: list = []
        try:
            UpstreamPool.forward = lambda self, *a: (by_method.append(a[0][:2]), method(self, *a))[1]
            for i in range(40):
                qid = bytes((i // 8, i))
                packet = qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x01q\x07example\x00\x00\x01\x00\x01"
                pool.forward(packet, lambda reply, url, error, i=i: results.append((i, reply is not None, url, error)),
                             transports.question_bytes(packet))
        finally:
            UpstreamPool.forward = method
        dl = pool._deadlines
        state = ([(sorted(vars(f)), f.attempt, f.armed, f.packet, f.question, f.upstream is pool._ups[0],
                   type(f.started), f.token[1], f.token[2][0], _answers(f.token[2][1], f))
                  for f in dl.live.values()],
                 [token for _deadline, token in dl.queue], dl.handle is not None,
                 sorted((len(ep.pending), ep.uses, ep.retired, len(getattr(ep, "outbox", ())))
                        for ep in transport._all),
                 transport._turn, pool._ups[0].queries)
        await asyncio.sleep(1.0)
        loop.remove_reader(server.fileno())
        health = [(s["healthy"], s["ewma_ms"] is not None, s["queries"], s["errors"], s["health_changes"],
                   pool._ups[0].rcode_failures, pool.down_since is None) for s in pool.status()]
        await pool.close()
        here = f"udp://127.0.0.1:{port}"
        return state, sorted((i, ok, url.replace(here, "up"), error and error.replace(here, "up"))
                             for i, ok, url, error in results), health

    try:
        state, results, health = asyncio.run(main())
    finally:
        server.close()
    return state, results, by_method, health


@pytest.mark.skipif(FAST is None or not hasattr(FAST, "forward_udp"), reason="the accelerator was not built here")
def test_the_first_udp_try_in_c_leaves_the_pool_as_the_python_twin() -> None:
    """UpstreamPool.forward's usual first try in C against the method: the same _Forward objects, deadlines,
    pending tables, socket turns, uses and retirements; then the same answers, and the same time-outs and retries
    for the queries the upstream leaves unanswered."""
    got, want = _forward_run(True), _forward_run(False)
    assert got[0] == want[0] and got[1] == want[1] and got[3] == want[3]
    state, results, by_method, health = got
    assert health[0][2] == 40 + 33 and health[0][4] > 0   # two tries but for the 7 answered; down and up again
    assert len(state[0]) == 40 and state[2] and state[4] == 40 and state[5] == 40
    assert any(retired for _n, _uses, retired, _out in state[3])           # sockets retired after five queries
    assert [r[1] for r in results] == [i % 6 == 0 for i in range(40)]       # answered: NOERROR
    assert all("SERVFAIL" in r[3] or "REFUSED" in r[3] for r in results if r[0] % 2 == 0 and r[0] % 6)
    assert all(r[3].count("up: ") == 2 for r in results if not r[1])   # two tries each
    assert all("timed out" in r[3] for r in results if r[0] % 2)
    assert len(by_method) < 15 and len(want[2]) == 40   # C took the queries once the pool's sockets were open


class _FixedLoop:
    def time(self) -> float:
        return 12.75


def _on_reply_case(compiled: bool, data, *, ewma=None, healthy=True, rcode_failures=0, down=False, armed=True,
                   finished=False, tcp=True) -> tuple:
    from resolver.engine.upstream import UpstreamPool, _Forward

    pool = UpstreamPool(["udp://127.0.0.1:9"], timeout=1.0, attempts=1, clock=lambda: 100.0)
    u = pool._ups[0]
    u.ewma, u.healthy, u.rcode_failures = ewma, healthy, rcode_failures
    if not tcp:
        u.tcp = None
    pool.down_since = 50.0 if down else None
    calls: list = []
    packet = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01q\x00\x00\x01\x00\x01"
    fwd = _Forward(pool, packet, lambda *a: calls.append(a), packet[12:], _FixedLoop(), pool._order())
    fwd.upstream, fwd.attempt, fwd.started, fwd.finished = u, 1, 12.5, finished
    if armed:
        pool._deadlines.live[7] = fwd
        fwd.armed = 7
    raised = None
    try:
        FAST.forward_reply(fwd, data) if compiled else fwd.on_reply(data)
    except Exception as exc:  # noqa: BLE001 - a reply too short to read: the same error either way
        raised = type(exc)
    plain = {k: v for k, v in vars(fwd).items() if k not in ("pool", "done", "loop", "order", "upstream")}
    return (plain, u.ewma, u.healthy, u.rcode_failures, u.health_changes, u.errors, u.last_error, pool.down_since,
            sorted(pool._deadlines.live), calls, raised)


@pytest.mark.skipif(FAST is None or not hasattr(FAST, "forward_reply"), reason="the accelerator was not built here")
def test_a_reply_in_c_ends_the_try_as_the_method_does() -> None:
    """_Forward.on_reply in C against the method, on twin objects: the try's state, the upstream's EWMA (to the
    last bit), health and counts, the pool's deadlines and down state, and what the caller is told."""
    ok = b"\x12\x34\x81\x80" + b"\x00" * 8
    cases = [(ok, {}), (ok, {"ewma": 3.25}), (ok, {"healthy": False}), (ok, {"rcode_failures": 2}),
             (ok, {"down": True}), (ok, {"armed": False}), (ok, {"finished": True}), (ok[:3] + b"\x82" + ok[4:], {}),
             (ok[:3] + b"\x85" + ok[4:], {"rcode_failures": 2}), (ok[:2] + b"\x83\x80" + ok[4:], {"tcp": False}),
             (ConnectionRefusedError(111, "refused"), {}), (ok[:2], {})]
    for data, state in cases:
        got, want = _on_reply_case(True, data, **state), _on_reply_case(False, data, **state)
        assert got == want, (data, state)
    assert _on_reply_case(True, ok, ewma=3.25)[1] == 3.25 + 0.3 * (250.0 - 3.25)
    assert _on_reply_case(True, ok[:2])[-1] is IndexError
