"""The ``dns`` config section: sockets, upstreams, who may ask."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from resolver.policy.access import RateLimitConfig, parse_network
from resolver.base.configspec import option


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5300"`` / ``"[::1]:5300"`` / ``"0.0.0.0:53"`` → (host, port)."""
    text = str(text).strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {text!r} needs a port, e.g. 127.0.0.1:5300 or [::1]:5300")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"listen address {text!r}: {host!r} is not an IP address") from None
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {text!r}: port out of range")
    return host, int(port)


def _check_listen(text: str) -> str:
    parse_listen(text)
    return str(text).strip()


def _check_upstream(text: str) -> str:
    from resolver.engine.upstream_spec import parse_upstream

    parse_upstream(str(text))
    return str(text).strip()


MAX_WORKERS = 64


def _check_workers(value: str) -> str:
    """``auto`` or a whole number 1..MAX_WORKERS (as text: YAML gives ``2`` or ``"2"`` alike)."""
    text = str(value).strip().lower()
    if text == "auto":
        return text
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ValueError(f"expected auto or a whole number of engine processes from 1 to {MAX_WORKERS}, "
                         f"got {str(value).strip() or '(empty)'}")
    return str(int(text))


def worker_count(value: str) -> int:
    """The number of engine processes ``dns.workers`` asks for: ``auto`` = the cores this process may run on."""
    if str(value).strip().lower() == "auto":
        try:
            return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
        except (AttributeError, OSError):
            return max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    return int(value)


@dataclass(frozen=True)
class DnsConfig:
    listen: list[str] = option(["127.0.0.1:5300", "[::1]:5300"],
                               "Addresses to answer on, UDP and TCP on each. Use port 53 (needs CAP_NET_BIND_SERVICE) "
                               "on an appliance; 0.0.0.0:53 / [::]:53 for every interface.", check=_check_listen)
    upstreams: list[str] = option(["udp://9.9.9.9", "udp://149.112.112.112"],
                                  "Resolvers Hearth forwards allowed queries to: udp://IP[:port], tcp://IP[:port], "
                                  "tls://IP[:port]#name (DNS over TLS), https://host/dns-query (DNS over HTTPS; "
                                  "add #IP when host is a name).", check=_check_upstream,
                                  related="dns.upstream_strategy, dns.upstream_timeout")
    upstream_strategy: str = option("failover", "failover: the first healthy upstream in order; fastest: the one "
                                    "with the lowest recent latency.", choices=("failover", "fastest"))
    upstream_timeout: float = option(2.0, "Time one upstream gets to answer one try.", duration=True,
                                     minimum=0.05, maximum=30)
    upstream_attempts: int = option(3, "Tries per query across upstreams before SERVFAIL (or a stale answer).",
                                    minimum=1, maximum=10)
    upstream_ca_file: str = option("", "Extra CA bundle (PEM) to verify tls:// and https:// upstreams; empty = "
                                   "the system's CAs.")
    health_check_interval: float = option(10.0, "How often an upstream marked down is probed.", duration=True,
                                          minimum=1)
    allow_clients: list[str] = option(
        ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
         "fc00::/7", "fe80::/10"],
        "Networks whose queries are answered; all others get REFUSED, so Hearth is never an open resolver.",
        check=parse_network)
    rate_limit: RateLimitConfig = option(RateLimitConfig(), "Per-client query rate limit (token bucket).")
    edns_udp_size: int = option(1232, "EDNS0 UDP payload size advertised and used; larger answers are sent "
                                "truncated so the client retries over TCP (DNS flag day 2020).",
                                minimum=512, maximum=4096)
    tcp_idle_timeout: float = option(10.0, "An idle TCP client connection is closed after this long.",
                                     duration=True, minimum=0.5)
    tcp_max_connections: int = option(256, "Most TCP client connections at once. When full, a new connection "
                                      "takes the slot of the idlest connection of the address holding the most.",
                                      minimum=1, related="dns.tcp_max_connections_per_client")
    tcp_max_connections_per_client: int = option(
        32, "Most TCP connections one client address holds; its idlest one is closed to make room for a new one, "
        "so one client cannot take every slot.", minimum=1, related="dns.tcp_max_connections")
    max_pending: int = option(2048, "Most queries waiting on upstreams at once; past this new ones are dropped "
                              "(UDP) or answered SERVFAIL (TCP).", minimum=16)
    workers: str = option("1", "Engine processes answering queries: a number, or auto for one per CPU core this "
                          "process may use. With more than one, every process binds each listen address "
                          "(SO_REUSEPORT, UDP and TCP: the kernel spreads clients over them), maps the same "
                          "compiled lists and keeps its own cache; a small parent process restarts a worker "
                          "that dies while the others answer, and sums their statistics. A change takes a "
                          "restart (not SIGHUP). 1 on a router; auto on a campus gateway.", check=_check_workers)
