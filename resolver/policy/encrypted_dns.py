"""A small built-in table of well-known public encrypted-DNS (DoH/DoT) endpoints.

A device that reaches one of these resolves names itself, round Hearth. The ``bypass`` list category
(the bundled HaGeZi list, or a feed's) is the full answer; this table is a floor under it, applied
wherever a profile blocks the ``bypass`` category, so a stale, missing or trimmed list cannot leave a
major public resolver open. Each entry blocks the name and every subdomain (``dns.controld.com`` also
blocks ``p2.dns.controld.com``), so only names that serve nothing but DNS are listed: never a provider's
web site (``quad9.net``, ``adguard.com``, ``nextdns.io`` stay reachable).

Sources: the providers' own setup pages, and the DoH resolver lists of Firefox (TRR), Chromium
(``net/dns/public/doh_provider_entry.cc``) and the curl wiki's "DNS over HTTPS" page.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, FrozenSet, Optional

from blocklists import index as block_index
from resolver.base.names import wire_name

__all__ = ["ENCRYPTED_DNS_HOSTS", "TABLE_NAME", "encrypted_dns_match", "encrypted_dns_matcher"]

TABLE_NAME = "built-in DoH/DoT table"   # what the decision names as its list, so the log tells the truth

ENCRYPTED_DNS_HOSTS: tuple[str, ...] = (
    # Google Public DNS
    "dns.google", "dns.google.com", "8888.google",
    # Cloudflare 1.1.1.1 (cloudflare-dns.com covers mozilla., chrome., family., security., 1dot1dot1dot1.)
    "cloudflare-dns.com", "dns.cloudflare.com", "one.one.one.one",
    # Quad9
    "dns.quad9.net", "dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net", "dns12.quad9.net",
    # Cisco OpenDNS
    "doh.opendns.com", "doh.familyshield.opendns.com", "doh.sandbox.opendns.com",
    # AdGuard DNS
    "dns.adguard-dns.com", "family.adguard-dns.com", "unfiltered.adguard-dns.com", "d.adguard-dns.com",
    "dns.adguard.com", "dns-family.adguard.com", "dns-unfiltered.adguard.com",
    # NextDNS (per-profile names are subdomains of dns.nextdns.io)
    "dns.nextdns.io",
    # Control D
    "dns.controld.com", "freedns.controld.com",
    # CleanBrowsing
    "doh.cleanbrowsing.org", "family-filter-dns.cleanbrowsing.org", "adult-filter-dns.cleanbrowsing.org",
    "security-filter-dns.cleanbrowsing.org",
    # Mullvad
    "dns.mullvad.net", "doh.mullvad.net",
    # DNS0.EU (zero., kids., open. are subdomains)
    "dns0.eu",
    # DNS.SB
    "doh.dns.sb", "doh.sb",
    # Alibaba, DNSPod (Tencent), 360, TWNIC
    "dns.alidns.com", "doh.pub", "dot.pub", "dns.pub", "doh.360.cn", "dns.twnic.tw",
    # Comcast (Firefox TRR), Switch, CZ.NIC, LibreDNS, Applied Privacy, FFMUC
    "doh.xfinity.com", "dns.switch.ch", "odvr.nic.cz", "doh.libredns.gr", "doh.applied-privacy.net",
    "doh.ffmuc.net",
)

_BY_WIRE: dict[bytes, str] = {wire_name(name): name for name in ENCRYPTED_DNS_HOSTS}
_WIRES: FrozenSet[bytes] = frozenset(_BY_WIRE)


def encrypted_dns_matcher() -> Callable[[bytes], Optional[str]]:
    """:func:`encrypted_dns_match`, or the same walk in C (``blocklists/_indexscan.c``: ``suffix_get``) when it is
    built; read when a profile's policy is made."""
    fast = getattr(block_index.accel, "suffix_get", None)
    return encrypted_dns_match if fast is None else partial(fast, _BY_WIRE)


def encrypted_dns_match(name_wire: bytes) -> Optional[str]:
    """The table entry that a lower-case, uncompressed wire name is or is under; None if none is."""
    wires = _WIRES
    off = 0
    try:
        ln = name_wire[0]
        while ln:
            if name_wire[off:] in wires:
                return _BY_WIRE[name_wire[off:]]
            off += ln + 1
            ln = name_wire[off]
    except IndexError:
        pass
    return None
