"""Identity behind a router is decided per query: issue 12 item 1.

On OpenWrt the router's dnsmasq forwards every LAN client from 127.0.0.1 with the client's MAC in
EDNS0 option 65001 (``--add-mac``), and asks its own queries from the same address *without* the
option. A query without the option once memoised the router's own (default) profile for 127.0.0.1,
and later queries naming a child's MAC got it too: Roblox answered for the child. Here `hearth dns`
gets the queries in the order the router produces them.
"""
from __future__ import annotations

import base64
from typing import Optional

import pytest
from dnslib import EDNS0, DNSRecord, EDNSOption

from tests.dnsclient import answers, exchange
from tests.dnsfake import FakeDNS
from tests.e2e.test_profiles import cli, eventually

ROUTER, UNTRUSTED = "127.0.0.1", "127.0.0.8"
CHILD_MAC, PARENT_MAC = "02:00:00:00:00:07", "02:00:00:00:00:09"

RECORDS = {
    "www.roblox.com.": ["www.roblox.com. 300 IN A 192.0.2.20"],
    "games.example.": ["games.example. 300 IN A 192.0.2.21"],
    "www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"],
}


def _query(name: str, mac: Optional[str] = None, *, edns: bool = True, form: str = "raw") -> bytes:
    q = DNSRecord.question(name, "A")
    if mac is not None:
        raw = bytes.fromhex(mac.replace(":", ""))
        if form == "raw":
            opt = EDNSOption(65001, raw)
        elif form == "base64":                       # dnsmasq --add-mac=base64
            opt = EDNSOption(65073, base64.b64encode(raw))
        else:                                        # dnsmasq --add-mac=text
            opt = EDNSOption(65073, mac.encode())
        q.add_ar(EDNS0(udp_len=1232, opts=[opt]))
    elif edns:
        q.add_ar(EDNS0(udp_len=1232))
    return q.pack()


def _ask(port: int, source: str, name: str, mac: Optional[str] = None, **kw) -> list[str]:
    raw = exchange(_query(name, mac, **kw), port, source=source)
    assert raw is not None, f"no answer for {name} from {source} (MAC {mac})"
    return answers(DNSRecord.parse(raw), "A")


@pytest.fixture
def router(start_engine):
    """`hearth dns` behind a router at 127.0.0.1: the child's phone is known only by its MAC."""
    with FakeDNS(RECORDS) as fake:
        eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{fake.port}"]},
                            "clients": {"trusted_forwarders": ["127.0.0.1/32"], "neighbour_table": False,
                                        "lease_files": ["/nonexistent"]}})
        cli(eng, "profile", "set", "default", "--categories", "malware")
        cli(eng, "profile", "add", "Kids", "--preset", "child", "--services", "roblox", "--block", "games.example")
        cli(eng, "profile", "add", "Parents", "--preset", "adult")
        cli(eng, "device", "add", "phone", "--mac", CHILD_MAC, "--profile", "Kids")
        cli(eng, "device", "add", "laptop", "--mac", PARENT_MAC, "--profile", "Parents")
        eventually(lambda: _ask(eng.port, ROUTER, "www.roblox.com", CHILD_MAC) == ["0.0.0.0"], timeout=5)
        yield eng


@pytest.mark.parametrize("edns", [True, False], ids=["router-query-with-edns", "router-query-without-edns"])
def test_child_mac_keeps_its_profile_whatever_the_router_asks_in_between(router, edns):
    port = router.port
    for name, allowed in (("www.roblox.com", "192.0.2.20"), ("games.example", "192.0.2.21")):
        for _round in range(3):   # the first round misses the cache, the later ones hit it
            assert _ask(port, ROUTER, name, edns=edns) == [allowed]            # the router itself: default
            assert _ask(port, ROUTER, name, CHILD_MAC) == ["0.0.0.0"]          # the child behind it: Kids
            assert _ask(port, ROUTER, name, edns=edns) == [allowed]
            assert _ask(port, ROUTER, name, CHILD_MAC) == ["0.0.0.0"]
            assert _ask(port, ROUTER, name, PARENT_MAC) == [allowed]           # the parent: adult preset


def test_every_mac_form_dnsmasq_sends_is_believed_per_query(router):
    port = router.port
    for form in ("raw", "base64", "text"):
        assert _ask(port, ROUTER, "www.roblox.com") == ["192.0.2.20"]
        assert _ask(port, ROUTER, "www.roblox.com", CHILD_MAC, form=form) == ["0.0.0.0"], form
        assert _ask(port, ROUTER, "www.roblox.com", PARENT_MAC, form=form) == ["192.0.2.20"], form


def test_an_untrusted_senders_mac_option_is_ignored(router):
    port = router.port
    # a device on the LAN claiming the child's (or anyone's) MAC gets its own identity: the default profile
    assert _ask(port, UNTRUSTED, "www.roblox.com", CHILD_MAC) == ["192.0.2.20"]
    assert _ask(port, ROUTER, "www.roblox.com", CHILD_MAC) == ["0.0.0.0"]
    assert _ask(port, UNTRUSTED, "www.roblox.com", CHILD_MAC) == ["192.0.2.20"]
    assert _ask(port, UNTRUSTED, "games.example", CHILD_MAC) == ["192.0.2.21"]
    # nor does a trusted query's MAC leak into the untrusted sender's answers, or the other way round
    assert _ask(port, ROUTER, "games.example", CHILD_MAC) == ["0.0.0.0"]
    assert _ask(port, UNTRUSTED, "games.example") == ["192.0.2.21"]
