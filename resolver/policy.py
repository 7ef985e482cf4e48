"""Policy: should this name be answered, and if not, why.

``Decision`` is small and immutable and carries a ``Reason`` whose values are
shipped strings: the query log, the EDE text and the block page all show them,
so they never change meaning.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from typing import Optional

from .bypass import bypass_answer_wire
from .configspec import option

# RFC 8914 info-codes: 15 Blocked (by the operator: mandatory lists), 17 Filtered (asked for by the
# client's owner: the parent's or school's chosen categories).
EDE_BLOCKED, EDE_FILTERED = 15, 17


class Reason(str, Enum):
    CATEGORY = "category"      # a subscribed list's category is blocked for this device
    MANDATORY = "mandatory"    # a feed list marked mandatory: blocked in every profile
    BYPASS = "bypass"          # a signal name (DoH canary, Private Relay, DDR) answered so devices stay filtered
    PAUSED = "paused"          # the device's internet is paused
    SCHEDULE = "schedule"      # a block_all schedule window (bedtime) is active
    CUSTOM = "custom-rule"     # the profile's own block list
    SERVICE = "service"        # a blocked service (app or site: TikTok, Roblox)
    SAFE_SEARCH = "safe-search"  # rewritten to the search engine's (or YouTube's) safe host


@dataclass(frozen=True)
class Decision:
    reason: Reason
    category: str
    rule: str                  # the listed name (or regex) that matched
    sources: str = ""          # list id(s) feeding that category
    answer: str = ""           # "" = per block mode; "nxdomain" / "nodata" = the answer this name's protocol expects

    @property
    def ede_code(self) -> int:
        return EDE_BLOCKED if self.reason is Reason.MANDATORY else EDE_FILTERED

    @property
    def text(self) -> str:
        """One line for EDE and the query log, e.g. ``category gambling (list hagezi-gambling): bet.example``."""
        if self.reason is Reason.BYPASS:
            return f"bypass prevention: {self.rule}"
        src = f" (list {self.sources})" if self.sources else ""
        return f"{self.reason.value} {self.category}{src}: {self.rule}"[:200]

    @property
    def log_reason(self) -> str:
        return self.reason.value if self.reason is Reason.BYPASS else f"{self.reason.value}:{self.category}"


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
                       "(the block page's address, see page_ipv4).", choices=("null", "nxdomain", "page"))
    blocked_ttl: int = option(60, "TTL of blocked answers, so unblocking takes effect on devices quickly.",
                              minimum=0, maximum=86400)
    page_ipv4: str = option("", "Address of the block page (the appliance) for mode page.", check=_check_ipv4)
    page_ipv6: str = option("", "IPv6 address of the block page for mode page; empty: AAAA gets no data.",
                            check=_check_ipv6)
    starter_lists: bool = option(True, "Use the small lists bundled with Hearth (malware, phishing, adult, "
                                 "gambling, bypass) so a fresh install blocks something offline.")
    bypass_prevention: bool = option(True, "Answer the names that switch devices to their own resolvers so they stay "
                                     "filtered: Firefox's DoH canary (use-application-dns.net) and iCloud Private "
                                     "Relay get NXDOMAIN, _dns.resolver.arpa (RFC 9462) gets no data.")
    list_update_interval: float = option(86400, "How often subscribed lists (not the feed) are refreshed.",
                                         duration=True, minimum=600)

    def __post_init__(self) -> None:
        if self.mode == "page" and not self.page_ipv4:
            raise ValueError("mode page needs page_ipv4 (the appliance's LAN address)")


class Policy:
    """Decides per name from the compiled index. Holds no per-query state.

    ``meta`` maps each index category to {"category": shown name, "lists": [ids], "mandatory": bool}
    (the updater writes it beside the index). ``blocked`` is the set of shown categories to
    block; None blocks every category (the default profile until profiles exist). Mandatory
    lists are blocked whatever ``blocked`` says."""

    def __init__(self, index, meta: Optional[dict] = None, blocked: Optional[set] = None,
                 bypass_prevention: bool = True):
        self.index = index
        self.bypass_prevention = bypass_prevention
        self.meta = meta or {}
        self.mask = 0
        self.mandatory_mask = 0
        for bit, name in enumerate(index.categories if index is not None else ()):
            info = self.meta.get(name, {"category": name, "lists": [], "mandatory": False})
            if info.get("mandatory"):
                self.mandatory_mask |= 1 << bit
            if info.get("mandatory") or blocked is None or info.get("category", name) in blocked:
                self.mask |= 1 << bit

    def decide(self, name_wire: bytes) -> Optional[Decision]:
        """A block decision for a lower-case wire name, or None to let it through."""
        if self.bypass_prevention:
            signal = bypass_answer_wire(name_wire)
            if signal is not None:
                return Decision(Reason.BYPASS, "bypass", _text_name(name_wire), answer=signal)
        if not self.mask or self.index is None:
            return None
        match = self.index.lookup_wire(name_wire, self.mask)
        if match is None:
            return None
        info = self.meta.get(match.category, {})
        return Decision(Reason.MANDATORY if info.get("mandatory") else Reason.CATEGORY,
                        info.get("category", match.category), match.rule, ",".join(info.get("lists", []))[:80])


def _text_name(name_wire: bytes) -> str:
    labels, i = [], 0
    while i < len(name_wire) and name_wire[i]:
        labels.append(name_wire[i + 1:i + 1 + name_wire[i]].decode("ascii", "replace"))
        i += name_wire[i] + 1
    return ".".join(labels)
