"""Per-device profiles through the running engine: test clients bound to different 127.0.0.x addresses.

Every device here is a loopback address (127.0.0.2 is the child's tablet, 127.0.0.1 an unknown
device in the default profile); the upstream is a FakeDNS on 127.0.0.1.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from typing import Callable

import pytest
from dnslib import EDNS0, QTYPE, DNSRecord, EDNSOption

from resolver.service.control import call
from resolver.policy.profiles import Device, Profile, Schedule, TempAllow
from resolver.store.sqlite import open_store
from tests.dnsclient import answers, ask, ede, exchange
from tests.dnsfake import FakeDNS

CLI = [sys.executable, "-m", "resolver.cli"]
CHILD, OTHER, NIGHT, PAUSED = "127.0.0.2", "127.0.0.1", "127.0.0.3", "127.0.0.4"

RECORDS = {
    "www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"],
    "adult-site.example.": ["adult-site.example. 300 IN A 192.0.2.66"],
    "cdn.innocent.example.": ["cdn.innocent.example. 300 IN CNAME adult-site.example.",
                              "adult-site.example. 300 IN A 192.0.2.66"],
    "www.tiktok.com.": ["www.tiktok.com. 300 IN A 192.0.2.20"],
    "www.google.com.": ["www.google.com. 300 IN A 192.0.2.30", "www.google.com. 300 IN AAAA 2001:db8::30"],
    "forcesafesearch.google.com.": ["forcesafesearch.google.com. 300 IN A 216.239.38.120",
                                    "forcesafesearch.google.com. 300 IN AAAA 2001:4860:4802:32::78"],
    "www.youtube.com.": ["www.youtube.com. 300 IN A 192.0.2.40"],
    "restrict.youtube.com.": ["restrict.youtube.com. 300 IN A 216.239.38.119"],
    "en.wikipedia.org.": ["en.wikipedia.org. 300 IN A 192.0.2.50"],
    "use-application-dns.net.": ["use-application-dns.net. 300 IN A 192.0.2.60"],
    "mask.icloud.com.": ["mask.icloud.com. 300 IN A 192.0.2.61"],
}


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


def _config(upstream, tmp_path, **extra) -> dict:
    adult = tmp_path / "adult.txt"
    adult.write_text("adult-site.example\n")
    return {"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
            "lists": [{"id": "adult", "url": f"file://{adult}", "format": "domains", "category": "adult"}],
            **extra}


def cli(engine, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(CLI + list(args) + ["-c", str(engine.config_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(0.05)


def a(name: str, port: int, source: str, qtype: str = "A") -> DNSRecord:
    reply = ask(name, qtype, port, source=source)
    assert reply is not None, f"no answer for {name} from {source}"
    return reply


def blocked(reply: DNSRecord) -> bool:
    return answers(reply, "A") == ["0.0.0.0"] or reply.header.rcode == 3


@pytest.fixture
def family(upstream, start_engine, tmp_path):
    """An engine with the adult list compiled, a child profile with a tablet at 127.0.0.2, and a default
    profile that blocks only malware (so the child's rules are visibly the child's)."""
    eng = start_engine(_config(upstream, tmp_path))
    cli(eng, "lists", "update")
    cli(eng, "profile", "set", "default", "--categories", "malware")
    cli(eng, "profile", "add", "Kids", "--preset", "child", "--services", "tiktok", "--allow", "*.wikipedia.org")
    cli(eng, "device", "add", "tablet", "--ip", CHILD, "--profile", "Kids")
    eventually(lambda: blocked(a("adult-site.example", eng.port, CHILD)))
    return eng


def test_child_gets_categories_and_services_blocked_default_unaffected(family):
    port = family.port
    child = a("adult-site.example", port, CHILD)
    assert answers(child, "A") == ["0.0.0.0"]
    assert ede(child)[0] == 17 and "adult" in ede(child)[1]
    tiktok = a("www.tiktok.com", port, CHILD)
    assert answers(tiktok, "A") == ["0.0.0.0"] and "TikTok" in ede(tiktok)[1]
    assert answers(a("www.example.com", port, CHILD), "A") == ["192.0.2.10"]
    # the same names from a device nobody set up: the default profile
    assert answers(a("adult-site.example", port, OTHER), "A") == ["192.0.2.66"]
    assert answers(a("www.tiktok.com", port, OTHER), "A") == ["192.0.2.20"]
    # cached answers stay per profile (second round comes from the cache)
    assert answers(a("www.tiktok.com", port, CHILD), "A") == ["0.0.0.0"]
    assert answers(a("www.tiktok.com", port, OTHER), "A") == ["192.0.2.20"]
    # and over TCP too
    assert answers(ask("www.tiktok.com", "A", port, tcp=True, source=CHILD), "A") == ["0.0.0.0"]


def test_changes_apply_within_two_seconds_without_dropping_queries(family):
    port = family.port
    assert answers(a("www.example.com", port, CHILD), "A") == ["192.0.2.10"]
    cli(family, "profile", "set", "Kids", "--block", "www.example.com")
    took = eventually(lambda: blocked(a("www.example.com", port, CHILD)), timeout=2.5)
    assert took < 2.5
    assert answers(a("www.example.com", port, OTHER), "A") == ["192.0.2.10"]
    # the device moves to the default profile: its rules follow at once
    cli(family, "device", "set", "tablet", "--profile", "default")
    eventually(lambda: answers(a("www.tiktok.com", port, CHILD), "A") == ["192.0.2.20"], timeout=2.5)


def test_safe_search_answers_with_the_safe_hosts_addresses(family):
    port = family.port
    google = a("www.google.com", port, CHILD)
    assert [(QTYPE[r.rtype], str(r.rdata)) for r in google.rr] == [("CNAME", "forcesafesearch.google.com."),
                                                                      ("A", "216.239.38.120")]
    google6 = a("www.google.com", port, CHILD, "AAAA")
    assert answers(google6) == ["forcesafesearch.google.com.", "2001:4860:4802:32::78"]
    # other types stay consistent: the CNAME, and what the safe host has of that type (nothing here)
    txt = a("www.google.com", port, CHILD, "TXT")
    assert answers(txt) == ["forcesafesearch.google.com."] and txt.header.rcode == 0
    youtube = a("www.youtube.com", port, CHILD)
    assert answers(youtube) == ["restrict.youtube.com.", "216.239.38.119"]
    # cached: the same again, with the client's case echoed
    again = a("WWW.Google.COM", port, CHILD)
    assert str(again.q.qname) == "WWW.Google.COM." and answers(again, "A") == ["216.239.38.120"]
    # the default profile has safe search off
    assert answers(a("www.google.com", port, OTHER)) == ["192.0.2.30"]


def test_bypass_signals_get_the_answers_their_protocols_expect(family):
    port = family.port
    for source in (CHILD, OTHER):  # the child's preset, and the default profile (blocking.bypass_prevention)
        assert a("use-application-dns.net", port, source).header.rcode == 3
        assert a("mask.icloud.com", port, source).header.rcode == 3
        assert a("mask-h2.icloud.com", port, source, "AAAA").header.rcode == 3
        ddr = a("_dns.resolver.arpa", port, source, "SVCB")
        assert ddr.header.rcode == 0 and not ddr.rr


def test_cname_to_a_blocked_name_is_blocked_and_the_reason_names_it(family):
    port = family.port
    child = a("cdn.innocent.example", port, CHILD)
    assert answers(child, "A") == ["0.0.0.0"]
    assert "CNAME of cdn.innocent.example" in ede(child)[1]
    other = a("cdn.innocent.example", port, OTHER)
    assert answers(other, "A") == ["192.0.2.66"]
    # the query log says why
    store = open_store(str(family.data_dir))
    try:
        def logged():
            rows = store.recent_queries(50, client=CHILD, qname_contains="cdn.innocent")
            return bool(rows) and "via CNAME" in (rows[0].reason or "")
        eventually(logged, timeout=5)
    finally:
        store.close()


def test_explain_tells_the_block_page_who_and_why(family):
    out = call(family.data_dir.joinpath("hearth.sock").as_posix(), f"explain {CHILD} adult-site.example")
    assert out["ok"] and out["device"] == "tablet" and out["profile"] == "Kids"
    assert out["action"] == "block" and out["reason"] == "category" and out["category"] == "adult"
    other = call(family.data_dir.joinpath("hearth.sock").as_posix(), f"explain {OTHER} adult-site.example")
    assert other["device"] is None and other["profile"] == "default" and other["action"] == "allow"


def _mac_query(name: str, mac: bytes) -> bytes:
    q = DNSRecord.question(name, "A")
    q.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(65001, mac)]))
    return q.pack()


def test_mac_from_a_trusted_forwarder_picks_the_device(upstream, start_engine, tmp_path):
    """A router's dnsmasq (--add-mac) forwards every client from its own address; only it is believed."""
    cfg = _config(upstream, tmp_path, clients={"trusted_forwarders": ["127.0.0.9/32"], "neighbour_table": False,
                                               "lease_files": ["/nonexistent"]})
    eng = start_engine(cfg)
    cli(eng, "profile", "add", "Kids", "--preset", "child", "--block", "www.example.com")
    cli(eng, "device", "add", "phone", "--mac", "02:00:00:00:00:07", "--profile", "Kids")
    mac = bytes.fromhex("020000000007")

    def via(source: str, mac_bytes: bytes) -> list:
        raw = exchange(_mac_query("www.example.com", mac_bytes), eng.port, source=source)
        return answers(DNSRecord.parse(raw), "A")

    eventually(lambda: via("127.0.0.9", mac) == ["0.0.0.0"], timeout=3)
    assert via("127.0.0.9", bytes.fromhex("020000000008")) == ["192.0.2.10"]   # another MAC: default
    assert via("127.0.0.8", mac) == ["192.0.2.10"]                           # not a trusted forwarder
    assert via("127.0.0.9", mac) == ["0.0.0.0"]                              # cached per view
    # the query log and the seen list name the device behind the router by its MAC, not the router
    eng.stop()
    store = _store(eng)
    try:
        clients = {r.client for r in store.recent_queries(50, qname_contains="www.example.com")}
        seen = {c.address: c.mac for c in store.list_seen()}
    finally:
        store.close()
    assert clients == {"02:00:00:00:00:07", "02:00:00:00:00:08", "127.0.0.8"}
    assert seen.get("02:00:00:00:00:07") == "02:00:00:00:00:07"


def _store(engine):
    return open_store(str(engine.data_dir))


def test_pause_and_temporary_allow_take_effect_and_expire_on_time(family):
    port = family.port
    store = _store(family)
    try:
        store.add_device(Device(name="console", kind="ip", value=PAUSED, profile="Kids"))
        store.set_pause("console", time.time() + 3)
        eventually(lambda: blocked(a("www.example.com", port, PAUSED)), timeout=2.5)
        reply = a("www.example.com", port, PAUSED)
        assert reply.rr[0].ttl <= 3 and "paused" in ede(reply)[1]
        assert answers(a("www.example.com", port, CHILD), "A") == ["192.0.2.10"]  # same profile, not paused
        eventually(lambda: answers(a("www.example.com", port, PAUSED), "A") == ["192.0.2.10"], timeout=4)

        # the tablet may reach the blocked site for 3 seconds
        assert blocked(a("adult-site.example", port, CHILD))
        store.add_temp_allow(TempAllow(device="tablet", domain="adult-site.example", until=time.time() + 3))
        eventually(lambda: answers(a("adult-site.example", port, CHILD), "A") == ["192.0.2.66"], timeout=2.5)
        assert a("adult-site.example", port, CHILD).rr[0].ttl <= 3
        eventually(lambda: blocked(a("adult-site.example", port, CHILD)), timeout=4)
    finally:
        store.close()


def test_pause_and_resume_from_the_cli(family):
    port = family.port
    cli(family, "device", "pause", "tablet", "--minutes", "30")
    eventually(lambda: blocked(a("en.wikipedia.org", port, CHILD)), timeout=2.5)  # even the allow list
    cli(family, "device", "resume", "tablet")
    eventually(lambda: answers(a("en.wikipedia.org", port, CHILD), "A") == ["192.0.2.50"], timeout=2.5)


def _offset_to(hhmmss: str, earlier_by: float) -> float:
    """Seconds to add to the clock so that "now" is ``earlier_by`` seconds before today's HH:MM:SS (UTC)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    h, m, s = (int(x) for x in hhmmss.split(":"))
    target = now.replace(hour=h, minute=m, second=s, microsecond=0)
    return target.timestamp() - earlier_by - now.timestamp()


def test_bedtime_window_blocks_all_but_the_allow_list_and_ends_on_time(upstream, start_engine, tmp_path):
    cfg = _config(upstream, tmp_path)
    # prepare the store before the engine starts, so the clock offset below is spent on waiting only
    data_dir = tmp_path / "engine0" / "data"
    store = open_store(str(data_dir))
    try:
        store.add_profile(Profile(name="Night", preset="teen", categories=("adult",), allow=("*.wikipedia.org",),
                                  bypass_prevention=True))
        store.add_schedule(Schedule(profile="Night", name="bedtime", days=("mon", "tue", "wed", "thu", "fri", "sat",
                                                                           "sun"),
                                    start="21:00", end="21:05", action="block_all"))
        store.add_device(Device(name="laptop", kind="ip", value=NIGHT, profile="Night"))
    finally:
        store.close()
    offset = _offset_to("21:05:00", earlier_by=6.0)
    window_ends = time.monotonic() + 6.0
    eng = start_engine(cfg, env={"HEARTH_TIME_OFFSET": str(offset)})
    reply = a("www.example.com", eng.port, NIGHT)
    assert answers(reply, "A") == ["0.0.0.0"] and "bedtime" in ede(reply)[1]
    assert reply.rr[0].ttl <= 6  # no cached answer outlives the window
    assert answers(a("en.wikipedia.org", eng.port, NIGHT), "A") == ["192.0.2.50"]
    assert answers(a("www.example.com", eng.port, OTHER), "A") == ["192.0.2.10"]
    # the window closes: answers change within a second
    time.sleep(max(0.0, window_ends - time.monotonic()))
    took = eventually(lambda: answers(a("www.example.com", eng.port, NIGHT), "A") == ["192.0.2.10"], timeout=1.5)
    assert took < 1.5


def test_seen_clients_are_recorded(family):
    a("www.example.com", family.port, "127.0.0.77")
    family.stop()  # shutdown writes what was seen since the last flush
    store = _store(family)
    try:
        seen = {c.address for c in store.list_seen()}
    finally:
        store.close()
    assert "127.0.0.77" in seen and CHILD in seen


def test_stats_count_blocks_by_category(family):
    a("adult-site.example", family.port, CHILD)
    out = subprocess.run(CLI + ["stats", "--json", "-c", str(family.config_path)], capture_output=True, text=True,
                         timeout=30)
    stats = json.loads(out.stdout)
    assert stats["blocked_by_category"].get("adult", 0) >= 1
