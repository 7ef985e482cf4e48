"""The built-in table of public DoH/DoT endpoints (resolver.policy.encrypted_dns)."""
from __future__ import annotations

import random

import pytest

from resolver.base.names import normalise_name, wire_name
from resolver.policy.encrypted_dns import ENCRYPTED_DNS_HOSTS, encrypted_dns_match

# issue 12 item 7: the endpoints that must never be left open where the bypass category is blocked
REQUIRED = ("dns.google", "dns.cloudflare.com", "cloudflare-dns.com", "one.one.one.one", "mozilla.cloudflare-dns.com",
            "dns.quad9.net", "doh.opendns.com", "dns.adguard-dns.com", "dns.adguard.com", "dns.nextdns.io",
            "dns.controld.com", "freedns.controld.com", "doh.cleanbrowsing.org", "dns.mullvad.net", "doh.mullvad.net",
            "dns0.eu", "doh.dns.sb", "dns.alidns.com", "doh.pub", "dns.twnic.tw", "chrome.cloudflare-dns.com")


def test_entries_are_normalised_and_unique():
    assert len(set(ENCRYPTED_DNS_HOSTS)) == len(ENCRYPTED_DNS_HOSTS)
    for name in ENCRYPTED_DNS_HOSTS:
        assert normalise_name(name) == name


@pytest.mark.parametrize("name", REQUIRED)
def test_required_endpoints_and_their_subdomains_match(name):
    assert encrypted_dns_match(wire_name(name)) is not None
    assert encrypted_dns_match(wire_name("abc123." + name)) is not None


def test_the_entry_that_matched_is_named():
    assert encrypted_dns_match(wire_name("p2.freedns.controld.com")) == "freedns.controld.com"
    assert encrypted_dns_match(wire_name("mozilla.cloudflare-dns.com")) == "cloudflare-dns.com"


@pytest.mark.parametrize("name", ["controld.com", "quad9.net", "adguard.com", "nextdns.io", "google", "google.com",
                                  "www.google.com", "cloudflare.com", "www.cloudflare.com", "mullvad.net",
                                  "opendns.com", "sb", "pub", "notdns.google", "xdns.google", "eu"])
def test_providers_web_sites_and_look_alikes_do_not_match(name):
    assert encrypted_dns_match(wire_name(name)) is None


def test_malformed_wire_names_never_raise():
    for raw in (b"", b"\x00", b"\x03dns", b"\x03dns\x06google", b"\x3fabc"):
        assert encrypted_dns_match(raw) is None


def test_the_compiled_walk_matches_the_python_one(monkeypatch):
    """``encrypted_dns_matcher`` is the C walk when blocklists/_indexscan.c is built, the Python one otherwise;
    both name the same entry for every name, cut and damaged ones included."""
    from blocklists import index as block_index
    from resolver.policy import encrypted_dns

    fast = encrypted_dns.encrypted_dns_matcher()
    assert (fast is encrypted_dns_match) == (getattr(block_index.accel, "suffix_get", None) is None)
    rng = random.Random(5)
    names = [wire_name(n) for n in ENCRYPTED_DNS_HOSTS] + [wire_name("a.b." + n) for n in REQUIRED]
    names += [wire_name(n) for n in ("www.google.com", "dns.google.evil.com", "xdns.google", "google")]
    for raw in list(names):
        names.append(raw[:rng.randrange(len(raw) + 1)])                  # cut anywhere
        names.append(raw + rng.randbytes(rng.randint(1, 4)))              # bytes after the root
        b = bytearray(raw)
        b[rng.randrange(len(b))] = rng.choice((0, 1, 5, 63, 0xC0, 0xFF))   # a length byte that lies
        names.append(bytes(b))
    names += [rng.randbytes(rng.randint(0, 30)) for _ in range(500)]
    matched = 0
    for raw in names:
        assert fast(raw) == encrypted_dns_match(raw), raw
        matched += encrypted_dns_match(raw) is not None
    assert matched > 50 and len(names) - matched > 500
    monkeypatch.setattr(block_index, "accel", None)
    assert encrypted_dns.encrypted_dns_matcher() is encrypted_dns_match
