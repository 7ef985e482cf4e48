"""Upstream URLs: ``udp://``, ``tcp://``, ``tls://`` (DNS-over-TLS) and ``https://`` (DNS-over-HTTPS,
RFC 8484), parsed and checked into an :class:`UpstreamSpec`. There is no bootstrap resolver, so every
upstream names an IP address to connect to (a TLS name may be given for the certificate check).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

DEFAULT_PORTS = {"udp": 53, "tcp": 53, "tls": 853, "https": 443}
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")

__all__ = ["DEFAULT_PORTS", "UpstreamError", "UpstreamSpec", "parse_upstream"]


class UpstreamError(Exception):
    """Every attempt at every upstream failed or timed out; the message says why."""


@dataclass(frozen=True)
class UpstreamSpec:
    """One parsed upstream URL."""

    url: str               # as configured
    scheme: str            # "udp" | "tcp" | "tls" | "https"
    host: str              # IP address to connect to
    port: int
    tls_name: str | None   # name the certificate must match (tls, https); None = the IP
    path: str              # https request path, "" for the others


def _ip(text: str) -> str | None:
    """Normalised IP literal, or None if ``text`` is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _split_netloc(netloc: str, default_port: int) -> tuple[str, int]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in {netloc!r}")
        host, tail = netloc[1:end], netloc[end + 1:]
        if tail and tail[0] != ":":
            raise ValueError(f"bad host {netloc!r}")
        port = tail[1:] if tail else None
        if ":" not in host or _ip(host) is None:
            raise ValueError(f"bad IPv6 address {host!r}")
    elif netloc.count(":") > 1:  # bare IPv6 literal, no port
        host, port = netloc, None
    else:
        host, sep, port = netloc.partition(":")
        port = port if sep else None
    if not host:
        raise ValueError("missing host")
    if port is None:
        return host, default_port
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port {port!r}")
    return host, int(port)


def parse_upstream(url: str) -> UpstreamSpec:
    """Parse an upstream URL; raise ValueError with a short reason if it is unusable.

    ``1.2.3.4``, ``1.2.3.4:5353``, ``udp://[::1]:5399``, ``tcp://9.9.9.9``,
    ``tls://1.1.1.1#cloudflare-dns.com`` (certificate name after '#', else the IP is checked),
    ``https://1.1.1.1/dns-query``, ``https://dns.example/dns-query#192.0.2.1`` (host name for
    TLS and HTTP, bootstrap IP after '#'). A path-less https URL uses ``/dns-query``.
    """
    raw = url.strip()
    if not raw:
        raise ValueError("empty upstream URL")
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "udp", raw
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported scheme {scheme!r} (use udp://, tcp://, tls:// or https://)")
    rest, hashmark, frag = rest.partition("#")
    frag = frag.strip()
    if hashmark and not frag:
        raise ValueError("nothing after '#'")
    netloc, slash, path = rest.partition("/")
    path = slash + path
    if "@" in netloc:
        raise ValueError("user names in upstream URLs are not supported")
    host, port = _split_netloc(netloc, DEFAULT_PORTS[scheme])
    ip = _ip(host)

    if scheme != "https":
        if path not in ("", "/"):
            raise ValueError(f"a path is only allowed for https:// (got {path!r})")
        if ip is None:
            raise ValueError(f"{scheme}:// needs an IP address, not the host name {host!r} "
                             "(there is no bootstrap resolver)")
        tls_name = None
        if frag:
            if scheme != "tls":
                raise ValueError(f"'#{frag}' (certificate name) is only for tls:// and https://")
            tls_name = _ip(frag) or _hostname(frag)
        return UpstreamSpec(raw, scheme, ip, port, tls_name, "")

    path = path or "/dns-query"
    if ip is not None:
        if frag:
            raise ValueError(f"'#{frag}' (bootstrap address) is only needed when the URL "
                             "names a host, not an IP address")
        return UpstreamSpec(raw, scheme, ip, port, ip, path)
    name = _hostname(host)
    if not frag:
        raise ValueError(f"https:// with the host name {host!r} needs its IP address after '#', "
                         f"e.g. https://{host}{path}#192.0.2.1 (there is no bootstrap resolver)")
    boot = _ip(frag[1:-1] if frag.startswith("[") and frag.endswith("]") else frag)
    if boot is None:
        raise ValueError(f"bootstrap address {frag!r} is not an IP address")
    return UpstreamSpec(raw, scheme, boot, port, name, path)


def _hostname(text: str) -> str:
    name = text.lower().rstrip(".")
    if len(name) > 253 or not _HOSTNAME.match(name):
        raise ValueError(f"bad host name {text!r}")
    return name
