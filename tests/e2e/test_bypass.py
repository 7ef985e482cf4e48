"""Bypass prevention through `hearth dns`: issue 12 items 2 and 7.

Item 2: with bypass prevention on, Firefox's canary (``use-application-dns.net``) and iCloud Private
Relay's names are NXDOMAIN and ``_dns.resolver.arpa`` is NODATA, for A, AAAA and HTTPS, whatever list
also has them (a starter list had the canary in ``adult``, so a profile blocking adult answered it
0.0.0.0 NOERROR and Firefox kept its own DoH). Bypass prevention is on for every profile unless a
parent turns it off, a custom profile made without a preset included.

Item 7: a built-in table of public DoH/DoT endpoints backs the ``bypass`` category, so a stale list
cannot leave ``dns.controld.com`` open.
"""
from __future__ import annotations

import pytest

from resolver.store.sqlite import open_store
from tests.dnsclient import answers, ask, ede
from tests.dnsfake import FakeDNS
from tests.e2e.test_profiles import cli, eventually

SIGNALS = ("use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com")
DOH = ("dns.controld.com", "p2.dns.controld.com", "dns.google", "mozilla.cloudflare-dns.com", "doh.mullvad.net",
       "zero.dns0.eu")
# who asks: (address, profile made how)
CHILD, TEEN, CUSTOM, DEFAULT, PARENT_OFF, GROWNUP, FROM_DEFAULT = (
    "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.1", "127.0.0.5", "127.0.0.6", "127.0.0.7")


def _records() -> dict:
    out = {}
    for i, name in enumerate(SIGNALS + DOH + ("www.example.com", "dns.example-doh.test")):
        out[name + "."] = [f"{name}. 300 IN A 192.0.2.{i + 1}", f"{name}. 300 IN AAAA 2001:db8::{i + 1}"]
    return out


@pytest.fixture
def home(start_engine, tmp_path):
    adult = tmp_path / "adult.txt"   # as a starter list did: the signal names listed as adult
    adult.write_text("adult-site.example\nuse-application-dns.net\nmask.icloud.com\nmask-h2.icloud.com\n")
    bypass = tmp_path / "bypass.txt"  # a stale bypass list: none of the well-known DoH endpoints
    bypass.write_text("dns.example-doh.test\n")
    with FakeDNS(_records()) as fake:
        eng = start_engine({
            "dns": {"upstreams": [f"udp://127.0.0.1:{fake.port}"]},
            "lists": [{"id": "adult-list", "url": f"file://{adult}", "format": "domains", "category": "adult"},
                      {"id": "stale-bypass", "url": f"file://{bypass}", "format": "domains", "category": "bypass"}]})
        cli(eng, "lists", "update")
        cli(eng, "profile", "set", "default", "--categories", "adult")
        cli(eng, "profile", "add", "Kids", "--preset", "child")
        cli(eng, "profile", "add", "Teens", "--preset", "teen")
        cli(eng, "profile", "add", "Custom", "--categories", "adult")                  # no preset
        cli(eng, "profile", "add", "Relaxed", "--categories", "adult", "--bypass-prevention", "off")
        cli(eng, "profile", "add", "Grownups", "--preset", "adult")
        cli(eng, "profile", "add", "LikeDefault", "--preset", "default")
        for name, ip, profile in (("tablet", CHILD, "Kids"), ("phone", TEEN, "Teens"), ("pc", CUSTOM, "Custom"),
                                  ("tv", PARENT_OFF, "Relaxed"), ("laptop", GROWNUP, "Grownups"),
                                  ("console", FROM_DEFAULT, "LikeDefault")):
            cli(eng, "device", "add", name, "--ip", ip, "--profile", profile)
        eventually(lambda: answers(ask("adult-site.example", "A", eng.port, source=FROM_DEFAULT)) == ["0.0.0.0"],
                   timeout=5)
        yield eng


def test_signals_are_nxdomain_on_every_filtering_profile_whatever_the_lists_say(home):
    for source in (CHILD, TEEN, CUSTOM, DEFAULT, FROM_DEFAULT):
        for name in SIGNALS:
            for qtype in ("A", "AAAA", "HTTPS"):
                for _ in range(2):   # the second answer comes from the cache
                    reply = ask(name, qtype, home.port, source=source)
                    assert reply.header.rcode == 3 and not reply.rr, (source, name, qtype, reply)
                    assert "bypass prevention" in ede(reply)[1], (source, name, qtype)
        for qtype in ("SVCB", "A", "HTTPS"):
            ddr = ask("_dns.resolver.arpa", qtype, home.port, source=source)
            assert ddr.header.rcode == 0 and not ddr.rr, (source, qtype, ddr)


def test_bypass_prevention_is_off_only_where_a_parent_turned_it_off(home):
    # the parent switched it off: the lists decide (the adult list has the canary), as they would any name
    relaxed = ask("use-application-dns.net", "A", home.port, source=PARENT_OFF)
    assert answers(relaxed) == ["0.0.0.0"] and "category adult" in ede(relaxed)[1]
    # the adult preset has no bypass checks and blocks no adult content: the upstream's answer
    assert answers(ask("use-application-dns.net", "A", home.port, source=GROWNUP)) == ["192.0.2.1"]
    store = open_store(str(home.data_dir))
    try:
        switches = {p.name: p.bypass_prevention for p in store.list_profiles()}
    finally:
        store.close()
    assert switches == {"default": False, "Kids": True, "Teens": True, "Custom": True, "Relaxed": False,
                        "Grownups": False, "LikeDefault": True}


def test_well_known_doh_endpoints_are_blocked_even_when_the_bypass_list_lacks_them(home):
    for source in (CHILD, TEEN, FROM_DEFAULT):   # child and teen presets tick bypass; the default preset blocks "*"
        for name in DOH:
            for qtype in ("A", "AAAA", "HTTPS"):
                reply = ask(name, qtype, home.port, source=source)
                assert reply.header.rcode == 0 and all(str(r.rdata) in ("0.0.0.0", "::") for r in reply.rr), (
                    source, name, qtype, reply)
                assert "built-in DoH/DoT table" in ede(reply)[1], (source, name, qtype)
        # the list still speaks for the names it has
        listed = ask("dns.example-doh.test", "A", home.port, source=source)
        assert answers(listed) == ["0.0.0.0"] and "stale-bypass" in ede(listed)[1]
    # profiles that do not block the bypass category resolve them
    for source in (CUSTOM, GROWNUP, DEFAULT):
        assert answers(ask("dns.controld.com", "A", home.port, source=source)) == ["192.0.2.4"]
        assert answers(ask("p2.dns.controld.com", "AAAA", home.port, source=source)) == ["2001:db8::5"]


def test_the_query_log_names_the_built_in_table(home):
    ask("dns.controld.com", "A", home.port, source=CHILD)
    home.stop()   # shutdown writes the query log
    store = open_store(str(home.data_dir))
    try:
        rows = store.recent_queries(20, client=CHILD, qname_contains="dns.controld.com")
    finally:
        store.close()
    assert rows and rows[0].reason == "category:bypass"
    assert "built-in DoH/DoT table" in rows[0].answer
