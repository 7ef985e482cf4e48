"""Policy: should this name be answered, and if not, why.

``Decision`` is small and immutable and carries a ``Reason`` whose values are
shipped strings: the query log, the EDE text and the block page all show them,
so they never change meaning.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from resolver.base.configspec import option

# RFC 8914 info-codes: 15 Blocked (by the operator: mandatory lists), 17 Filtered (asked for by the
# client's owner: the parent's or school's chosen categories).
EDE_BLOCKED, EDE_FILTERED = 15, 17
EDE_CENSORED = 16   # blocked because an authority ordered it (as Google Public DNS answers court orders)


class Reason(str, Enum):
    CATEGORY = "category"      # a subscribed list's category is blocked for this device
    MANDATORY = "mandatory"    # a feed list marked mandatory: blocked in every profile
    ORDER = "order"            # an authority's order (a mandatory feed list naming authority and reference)
    BYPASS = "bypass"          # a signal name (DoH canary, Private Relay, DDR) answered so devices stay filtered
    PAUSED = "paused"          # the device's internet is paused
    SCHEDULE = "schedule"      # a block_all schedule window (bedtime) is active
    CUSTOM = "custom-rule"     # the profile's own block list
    SERVICE = "service"        # a blocked service (app or site: TikTok, Roblox)
    SAFE_SEARCH = "safe-search"  # rewritten to the search engine's (or YouTube's) safe host
    BUDGET = "time-budget"     # today's time budget for the service, category or all internet is used up


@dataclass(frozen=True)
class Decision:
    reason: Reason
    category: str
    rule: str                  # the listed name (or regex) that matched
    sources: str = ""          # list id(s) feeding that category
    answer: str = ""           # "" = per block mode; "nxdomain" / "nodata" = the answer this name's protocol expects
    cname_of: str = ""         # set when the blocked name was reached through a CNAME: the name asked for

    @property
    def ede_code(self) -> int:
        if self.reason is Reason.ORDER:
            return EDE_CENSORED
        return EDE_BLOCKED if self.reason is Reason.MANDATORY else EDE_FILTERED

    @property
    def text(self) -> str:
        """One line for EDE and the query log, e.g. ``category gambling (list hagezi-gambling): bet.example``."""
        if self.reason is Reason.BYPASS:
            return f"bypass prevention: {self.rule}"
        if self.reason is Reason.BUDGET:
            return f"time budget for {self.category} used up today: {self.rule}"[:200]
        if self.reason is Reason.ORDER:   # sources: the order(s), "AUTHORITY, ref. REFERENCE"
            return f"blocked by order of {self.sources}: {self.rule}"[:200]
        src = f" (list {self.sources})" if self.sources else ""
        via = f" (CNAME of {self.cname_of})" if self.cname_of else ""
        return f"{self.reason.value} {self.category}{src}: {self.rule}{via}"[:200]

    @property
    def log_reason(self) -> str:
        """What the query log keeps as the reason, e.g. ``category:adult`` or ``service:TikTok``."""
        base = self.reason.value if self.reason is Reason.BYPASS else f"{self.reason.value}:{self.category}"
        return f"{base} via CNAME" if self.cname_of else base


def _check_ipv4(text: str) -> str:
    if text and ipaddress.ip_address(text).version != 4:
        raise ValueError(f"not an IPv4 address: {text!r}")
    return text


def _check_ipv6(text: str) -> str:
    if text and ipaddress.ip_address(text).version != 6:
        raise ValueError(f"not an IPv6 address: {text!r}")
    return text


@dataclass(frozen=True)
class BlockingConfig:
    mode: str = option("null", "How a blocked name is answered: null (A 0.0.0.0 / AAAA ::), nxdomain, or page "
                       "(the block page's address, see page_ipv4). A profile whose block mode is null (the "
                       "profiles' default) uses this.", choices=("null", "nxdomain", "page"))
    blocked_ttl: int = option(60, "TTL of blocked answers, so unblocking takes effect on devices quickly.",
                              minimum=0, maximum=86400)
    page_ipv4: str = option("", "Address of the block page (the appliance) for mode page.", check=_check_ipv4)
    page_ipv6: str = option("", "IPv6 address of the block page for mode page; empty: AAAA gets no data.",
                            check=_check_ipv6)
    starter_lists: bool = option(True, "Use the small lists bundled with Hearth (malware, phishing, adult, "
                                 "gambling, bypass) so a fresh install blocks something offline.")
    bypass_prevention: bool = option(True, "For devices in the default profile (not yet set up): answer the names "
                                     "that switch devices to their own resolvers so they stay filtered: Firefox's "
                                     "DoH canary (use-application-dns.net) and iCloud Private Relay get NXDOMAIN, "
                                     "_dns.resolver.arpa (RFC 9462) gets no data. Other profiles have their own "
                                     "switch (on unless a parent turns it off; the adult preset starts with it off).")
    list_update_interval: float = option(86400, "How often subscribed lists (not the feed) are refreshed.",
                                         duration=True, minimum=600)

    def __post_init__(self) -> None:
        if self.mode == "page" and not self.page_ipv4:
            raise ValueError("mode page needs page_ipv4 (the appliance's LAN address)")


def _text_name(name_wire: bytes) -> str:
    labels, i = [], 0
    while i < len(name_wire) and name_wire[i]:
        labels.append(name_wire[i + 1:i + 1 + name_wire[i]].decode("ascii", "replace"))
        i += name_wire[i] + 1
    return ".".join(labels)
