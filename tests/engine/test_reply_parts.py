"""An upstream's reply becomes a cache entry in one pass (``wire.reply_parts``, and ``_fastpath.reply_parts`` in C):
both give the same result for every input, hostile ones included, and the entry they make is the one the careful
step-by-step way (``Fetcher.entry_the_careful_way``) makes. Where the one pass declines (wrong question, not a
reply, truncated, OPT not last, compression loops...), the careful way answers, as before."""
from __future__ import annotations

import json
import random

import pytest
from dnslib import EDNS0, RR, DNSRecord

from resolver.engine import accel, wire
from resolver.engine import fetcher as fetcher_module
from resolver.engine.cache import AnswerCache, CacheConfig, CacheEntry
from resolver.engine.fetcher import Fetcher
from resolver.engine.stats import Stats
from resolver.engine.wire import KEY_CD, KEY_DO, KEY_EDNS, KEY_RD

FLAG_SETS = (KEY_RD, KEY_RD | KEY_EDNS, KEY_RD | KEY_EDNS | KEY_DO, KEY_CD | KEY_EDNS | KEY_DO, 0)
# (min_ttl, max_ttl, negative_max_ttl): the defaults, float bounds that truncate, a cap, and a floor past 2**32
CLAMPS = ((0, 86400, 3600), (5.5, 60.25, 30.75), (0, 10, 0), (300, 300, 3600), (5e9, 6e9, 3600))
FAST = getattr(accel.fastpath, "reply_parts", None)


class _Owner:
    """What a Fetcher reads from its pipeline."""

    def __init__(self, config: CacheConfig, edns_size: int = 1232):
        self.cache = AnswerCache(config, self.clock)
        self.stats = Stats()
        self.edns_size = edns_size
        self.generation = 1
        self.max_pending = 100
        self._tasks: set = set()

    def clock(self) -> float:
        return 1000.0


def _key(qname: str, qtype: int, flags: int) -> bytes:
    name = b"".join(bytes((len(p),)) + p.encode() for p in qname.lower().strip(".").split(".") if p) + b"\x00"
    return name + qtype.to_bytes(2, "big") + b"\x00\x01" + bytes((flags,))


def _reply(qname: str, records: list[str], *, qtype: str = "A", rcode: int = 0, auth: list[str] = (),
           edns: bool = True, qid: int = 0x1234) -> bytes:
    q = DNSRecord.question(qname, qtype)
    q.header.id = qid
    r = q.reply()
    r.header.rcode = rcode
    for z in records:
        r.add_answer(*RR.fromZone(z))
    for z in auth:
        r.add_auth(*RR.fromZone(z))
    if edns:
        r.add_ar(EDNS0(udp_len=4096, flags="do"))
    return bytes(r.pack())


def _seeds(test_data) -> list[tuple[bytes, bytes]]:
    """(reply, question key) pairs: made here (CNAME chains, negative answers, many records) and captured ones."""
    soa = "example.com. 7200 IN SOA ns.example.com. host.example.com. 1 3600 600 86400 120"
    made = [
        (_reply("www.example.com", ["www.example.com. 300 IN A 192.0.2.1"]), "www.example.com", 1),
        (_reply("WwW.ExAmple.COM", ["www.example.com. 3 IN A 192.0.2.1", "www.example.com. 90000 IN A 192.0.2.2"]),
         "www.example.com", 1),
        (_reply("a.example.com", ["a.example.com. 600 IN CNAME b.example.net.", "b.example.net. 60 IN CNAME "
                                  "C.Example.ORG.", "c.example.org. 30 IN A 192.0.2.9"]), "a.example.com", 1),
        (_reply("gone.example.com", [], rcode=3, auth=[soa]), "gone.example.com", 1),
        (_reply("nodata.example.com", [], qtype="AAAA", auth=[soa]), "nodata.example.com", 28),
        (_reply("nosoa.example.com", [], rcode=3), "nosoa.example.com", 1),
        (_reply("fail.example.com", [], rcode=2), "fail.example.com", 1),
        (_reply("many.example.com", [f"many.example.com. {i + 1} IN A 192.0.2.{i % 250}" for i in range(90)]),
         "many.example.com", 1),
        (_reply("mx.example.com", ["mx.example.com. 300 IN MX 10 mail.example.com."], qtype="MX", edns=False),
         "mx.example.com", 15),
        (_reply("ch.example.com", ["ch.example.com. 300 CH CNAME x.example.com."]), "ch.example.com", 1),
    ]
    seeds = [(reply, _key(name, qtype, KEY_RD | KEY_EDNS)) for reply, name, qtype in made]
    for line in (test_data / "dns-wire" / "dnslib-test-packets.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["kind"] == "response":
            data = bytes.fromhex(row["hex"])
            try:
                qsec = data[12:wire.skip_name(data, 12) + 4]
            except (IndexError, ValueError):
                continue
            seeds.append((data, qsec.lower() + bytes((KEY_RD,))))
    return seeds


def _hostile(seeds: list[tuple[bytes, bytes]], count: int) -> list[tuple[bytes, bytes]]:
    """Replies broken in every way a forger or a broken upstream might: truncated, flipped bytes, pointers that
    loop or point past the end, another question, the QR bit off, counts that lie."""
    rng = random.Random(19)
    out = []
    a = _reply("loop.example.com", ["loop.example.com. 300 IN CNAME x.loop.example.com."])
    at = a.index(b"\x01x")   # the CNAME target: make it point at itself, and at the end of the message
    out.append((a[:at] + b"\xc0" + bytes((at,)) + a[at + 2:], _key("loop.example.com", 1, KEY_RD | KEY_EDNS)))
    out.append((a[:at] + b"\xc0\xff" + a[at + 2:], _key("loop.example.com", 1, KEY_RD | KEY_EDNS)))
    out.append((a, _key("other.example.com", 1, KEY_RD)))                 # another question
    out.append((a, _key("loop.example.com", 28, KEY_RD)))                 # another type
    out.append((a[:2] + bytes((a[2] & 0x7F,)) + a[3:], _key("loop.example.com", 1, KEY_RD)))   # not a reply
    q = _key("opt.example.com", 1, KEY_RD)
    opt_answer = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + q[:-1] + b"\x00\x00\x29\x10\x00" + bytes(6)
    out.append((opt_answer, q))                                          # an OPT as the only answer
    for cut in range(len(a)):
        out.append((a[:cut], _key("loop.example.com", 1, KEY_RD | KEY_EDNS)))
    for _ in range(count):
        reply, key = rng.choice(seeds)
        data = bytearray(reply)
        for _ in range(rng.randint(1, 6)):
            if data:
                pos = rng.randrange(len(data)) if rng.random() < 0.7 else rng.randrange(min(len(data), 14))
                data[pos] = rng.choice((rng.randrange(256), 0xC0, 0x00, 0x29, 0x05, 0xFF, 0x3F))
        if rng.random() < 0.25:
            data = data[:rng.randrange(len(data) + 1)]
        out.append((bytes(data), key))
    return out


def _python(reply: bytes, key: bytes, clamp: tuple, edns_size: int = 1232):
    return wire.reply_parts(reply, key, edns_size, *clamp)


@pytest.fixture(scope="module")
def cases(test_data):
    seeds = _seeds(test_data)
    return seeds + _hostile(seeds, 6000)


@pytest.mark.skipif(FAST is None, reason="the accelerator was not built here (no compiler) or HEARTH_NO_ACCEL is set")
def test_c_and_python_give_the_same_parts_for_every_reply(cases):
    taken = declined = 0
    for reply, key in cases:
        for flags in FLAG_SETS:
            k = key[:-1] + bytes((flags,))
            for clamp in CLAMPS:
                py = _python(reply, k, clamp)
                assert FAST(reply, k, 1232, *clamp) == py, (reply.hex(), k.hex(), clamp)
                taken += py is not None
                declined += py is None
        assert accel.fastpath.cname_targets(reply) == wire.cname_targets(reply), reply.hex()
    assert taken > 5000 and declined > 5000
    for size in (-1, 70000):   # an EDNS size that cannot be written: both decline
        reply, key = cases[0]
        assert FAST(reply, key, size, 0, 86400, 3600) is None and _python(reply, key, (0, 86400, 3600), size) is None


def test_the_one_pass_makes_the_entry_the_careful_way_makes(cases):
    """For every reply the one pass takes, the entry is the careful way's, attribute for attribute; the ones it
    declines are still answered (or refused) by the careful way, as before."""
    compared = 0
    for clamp in CLAMPS[:4]:
        config = CacheConfig(min_ttl=clamp[0], max_ttl=clamp[1], negative_max_ttl=clamp[2])
        fetcher = Fetcher(_Owner(config))
        for reply, key in cases[::3]:
            try:
                careful = fetcher.entry_the_careful_way(reply, key, "udp://up")
            except Exception as exc:  # noqa: BLE001 - a reply nobody can use: the one pass must decline it too
                assert _python(reply, key, clamp) is None, (reply.hex(), exc)
                with pytest.raises(type(exc)):
                    fetcher.entry_from_reply(reply, key, "udp://up")
                continue
            entry = fetcher.entry_from_reply(reply, key, "udp://up")
            assert _fields(entry) == _fields(careful), reply.hex()
            compared += 1
    assert compared > 1500


def test_cname_chains_and_negative_answers(cases):
    fetcher = Fetcher(_Owner(CacheConfig(min_ttl=0, max_ttl=86400, negative_max_ttl=3600)))
    chain = fetcher.entry_from_reply(cases[2][0], cases[2][1], "udp://up")
    assert chain.cnames == (_key("b.example.net", 1, 0)[:-5], _key("c.example.org", 1, 0)[:-5])
    assert chain.ttls == (600, 60, 30) and chain.expires == 1030.0
    negative = fetcher.entry_from_reply(cases[3][0], cases[3][1], "udp://up")
    assert negative.rcode == 3 and negative.expires == 1120.0 and negative.ttls == (120,)
    other_class = fetcher.entry_from_reply(cases[9][0], cases[9][1], "udp://up")
    assert other_class.cnames == ()   # a CNAME of class CH is not followed (no "CNAME IN" in the reply)


def _fields(entry: CacheEntry) -> dict:
    return {name: getattr(entry, name) for name in CacheEntry.__slots__}


@pytest.mark.parametrize("mode", ["python", "accelerated"])
def test_the_fetcher_uses_the_accelerator_only_when_it_is_on(mode, monkeypatch):
    if mode == "python":
        monkeypatch.setattr(accel, "fastpath", None)
    elif FAST is None:
        pytest.skip("the accelerator was not built here")
    fetcher = Fetcher(_Owner(CacheConfig()))
    if mode == "python":
        assert fetcher._reply_entry is fetcher_module.reply_entry
    else:
        assert fetcher._reply_entry.func is accel.fastpath.reply_entry


def test_the_upstream_query_for_a_key_is_the_one_upstream_query_makes():
    from resolver.engine.answers import upstream_query, upstream_query_for

    for flags in range(16):
        for qtype, edns_size in ((1, 1232), (28, 4096), (65, 512), (255, 65535)):
            key = _key("WWW.example.com", qtype, flags)
            random.seed(flags * 1000 + qtype)
            made = upstream_query(key[:-5], qtype, 1, do=bool(flags & KEY_DO), cd=bool(flags & KEY_CD),
                                  edns_size=edns_size)
            random.seed(flags * 1000 + qtype)
            assert upstream_query_for(key, edns_size) == made
