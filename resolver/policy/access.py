"""Who may ask: the client allow-list and per-client rate limits.

Hearth must never be an open resolver: a client outside ``dns.allow_clients``
gets REFUSED. Every client address gets a token bucket; a client over its
rate has its queries dropped (answering would let a spoofed source turn us
into an amplifier). Decisions are memoised per address string, so the fast
path pays one dict lookup.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Callable

from resolver.base.configspec import option


def parse_network(text: str) -> str:
    """Validate a CIDR (``10.0.0.0/8``) or single address; returns it normalised."""
    try:
        return str(ipaddress.ip_network(str(text).strip(), strict=False))
    except ValueError:
        raise ValueError(f"not an IP network: {text!r} (use e.g. 192.168.0.0/16 or fd00::/8)") from None


@dataclass(frozen=True)
class RateLimitConfig:
    qps: float = option(200.0, "Queries per second one client address may send on average; 0 turns limits off.",
                        minimum=0)
    burst: int = option(1000, "Queries a client may send at once before the average applies.", minimum=1)
    exempt: list[str] = option(["127.0.0.0/8", "::1/128"],
                               "Networks never rate limited. Loopback is exempt because a router's own dnsmasq "
                               "forwards every LAN client's query from 127.0.0.1.", check=parse_network)


class ClientState:
    """What the fast path needs to know about one source address."""

    __slots__ = ("allowed", "tokens", "last", "view", "via")

    def __init__(self, allowed: bool, limited: bool, burst: float, now: float):
        self.allowed = allowed
        self.tokens = burst if limited else -1.0  # -1: exempt from rate limiting
        self.last = now
        self.view = None   # the policy view (resolver.policy.views.View) this address gets; None: look it up
        self.via = None    # True: a trusted forwarder (its queries name the client's MAC); None: not checked


class ClientAccess:
    """Allow-list and token buckets by client address."""

    MAX_TRACKED = 65536

    def __init__(self, allow: list[str], rate: RateLimitConfig, clock: Callable[[], float] = time.monotonic):
        self.allow = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.exempt = [ipaddress.ip_network(n, strict=False) for n in rate.exempt]
        self.qps = rate.qps
        self.burst = float(rate.burst)
        self.clock = clock
        self.states: dict[str, ClientState] = {}
        self.refused = 0
        self.rate_limited = 0

    def state(self, client: str) -> ClientState:
        st = self.states.get(client)
        if st is None:
            st = self._new_state(client)
        return st

    def _new_state(self, client: str) -> ClientState:
        try:
            addr = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            addr = None
        if addr is not None and addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        allowed = addr is not None and any(addr in n for n in self.allow)
        limited = self.qps > 0 and not (addr is not None and any(addr in n for n in self.exempt))
        if len(self.states) >= self.MAX_TRACKED:
            self.states.clear()  # a flood of spoofed sources must not grow memory without bound
        st = self.states[client] = ClientState(allowed, limited, self.burst, self.clock())
        return st

    def admit(self, st: ClientState) -> bool:
        """Take one token; False when the client is over its rate."""
        if st.tokens < 0:
            return True
        now = self.clock()
        tokens = st.tokens + (now - st.last) * self.qps
        st.last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            st.tokens = tokens
            self.rate_limited += 1
            return False
        st.tokens = tokens - 1.0
        return True
