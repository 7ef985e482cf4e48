"""Safe search with a safe host whose upstream answer has TTL 0: issue 12 item 6.

TTL 0 is legal and common behind load balancers. An upstream answer that is not cached had no
cache key, so the copy used to build the child's reply lost its question, dnslib raised
"Recursive pointer" and every Google, YouTube and Bing query of a child got SERVFAIL.
"""
from __future__ import annotations

import pytest
from dnslib import QTYPE

from resolver.store.sqlite import open_store
from tests.dnsclient import ask
from tests.dnsfake import FakeDNS
from tests.e2e.test_profiles import cli, eventually

CHILD = "127.0.0.2"


def _records(ttl: int) -> dict:
    return {
        "blocked.example.": ["blocked.example. 300 IN A 192.0.2.99"],
        "www.google.com.": ["www.google.com. 300 IN A 192.0.2.30"],
        "forcesafesearch.google.com.": [f"forcesafesearch.google.com. {ttl} IN A 216.239.38.120",
                                        f"forcesafesearch.google.com. {ttl} IN AAAA 2001:4860:4802:32::78"],
        "www.youtube.com.": ["www.youtube.com. 300 IN A 192.0.2.40"],
        "restrict.youtube.com.": [f"restrict.youtube.com. {ttl} IN A 216.239.38.119"],
        "restrictmoderate.youtube.com.": [f"restrictmoderate.youtube.com. {ttl} IN A 216.239.38.120"],
        "www.bing.com.": ["www.bing.com. 300 IN A 192.0.2.50"],
        "strict.bing.com.": [f"strict.bing.com. {ttl} IN A 204.79.197.220"],
    }


def _rrs(reply) -> list[tuple[str, str]]:
    return [(QTYPE[r.rtype], str(r.rdata)) for r in reply.rr]


@pytest.mark.parametrize("ttl,cache_size", [(0, 20000), (1, 20000), (300, 20000), (300, 0)],
                         ids=["ttl0", "ttl1", "ttl300", "ttl300-cache-off"])
def test_safe_search_answers_whatever_the_safe_hosts_ttl(start_engine, ttl, cache_size):
    with FakeDNS(_records(ttl)) as fake:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{fake.port}"]}, "cache": {"size": cache_size}})
        cli(eng, "profile", "set", "default", "--categories", "malware")
        cli(eng, "profile", "add", "Kids", "--preset", "child", "--block", "blocked.example")
        cli(eng, "profile", "add", "Teens", "--preset", "teen")
        cli(eng, "device", "add", "tablet", "--ip", CHILD, "--profile", "Kids")
        cli(eng, "device", "add", "laptop", "--ip", "127.0.0.3", "--profile", "Teens")
        eventually(lambda: _rrs(ask("blocked.example", "A", eng.port, source=CHILD)) == [("A", "0.0.0.0")],
                   timeout=5)
        want = {
            ("www.google.com", "A", CHILD): [("CNAME", "forcesafesearch.google.com."), ("A", "216.239.38.120")],
            ("www.google.com", "AAAA", CHILD): [("CNAME", "forcesafesearch.google.com."),
                                                ("AAAA", "2001:4860:4802:32::78")],
            ("www.youtube.com", "A", CHILD): [("CNAME", "restrict.youtube.com."), ("A", "216.239.38.119")],
            ("www.youtube.com", "A", "127.0.0.3"): [("CNAME", "restrictmoderate.youtube.com."),
                                                    ("A", "216.239.38.120")],
            ("www.bing.com", "A", CHILD): [("CNAME", "strict.bing.com."), ("A", "204.79.197.220")],
        }
        for _round in range(2):   # twice in a row: both must work (the second is no cache hit at TTL 0)
            for (name, qtype, source), rrs in want.items():
                for tcp in (False, True):
                    reply = ask(name, qtype, eng.port, source=source, tcp=tcp)
                    assert reply is not None, (name, qtype, source, tcp)
                    assert reply.header.rcode == 0, (name, qtype, source, tcp, reply)
                    assert _rrs(reply) == rrs, (name, qtype, source, tcp)
                    assert str(reply.q.qname) == name + "."
                    if ttl == 0:   # and nobody may cache it longer than the upstream said
                        assert all(r.ttl == 0 for r in reply.rr), reply
        # the device in the default profile gets the engines' own answers
        assert _rrs(ask("www.google.com", "A", eng.port, source="127.0.0.4")) == [("A", "192.0.2.30")]
        assert "Recursive pointer" not in eng.log() and "safe-search answer" not in eng.log()


def test_an_answer_with_ttl_0_is_logged_with_its_records(start_engine):
    with FakeDNS({"zero.example.": ["zero.example. 0 IN A 192.0.2.1"]}) as fake:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{fake.port}"]}})
        for _ in range(2):
            assert _rrs(ask("zero.example", "A", eng.port)) == [("A", "192.0.2.1")]
        eng.stop()   # shutdown writes the query log
    store = open_store(str(eng.data_dir))
    try:
        rows = store.recent_queries(10, qname_contains="zero.example")
    finally:
        store.close()
    assert [r.answer for r in rows] == ["A 192.0.2.1"] * 2
