"""A small blocking DNS client for tests: real UDP/TCP sockets on loopback only."""
from __future__ import annotations

import socket
import struct
from typing import Optional

from dnslib import EDNS0, QTYPE, DNSRecord


def _check_loopback(host: str) -> None:
    if not (host.startswith("127.") or host == "::1"):
        raise AssertionError(f"tests only talk to loopback, not {host}")


def exchange(packet: bytes, port: int, *, host: str = "127.0.0.1", tcp: bool = False, source: Optional[str] = None,
             timeout: float = 3.0) -> Optional[bytes]:
    """Send raw bytes, return the raw reply (None on time-out)."""
    _check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        try:
            if tcp:
                s.connect((host, port))
                s.sendall(struct.pack(">H", len(packet)) + packet)
                head = _recv_exact(s, 2)
                return _recv_exact(s, struct.unpack(">H", head)[0]) if head else None
            s.sendto(packet, (host, port))
            return s.recvfrom(65535)[0]
        except (socket.timeout, ConnectionError):
            return None


def _recv_exact(s: socket.socket, n: int) -> Optional[bytes]:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def make_query(name: str, qtype: str = "A", *, edns: Optional[int] = 1232, do: bool = False, rd: bool = True,
               qclass: str = "IN") -> DNSRecord:
    q = DNSRecord.question(name, qtype, qclass)
    q.header.rd = int(rd)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns, flags="do" if do else ""))
    return q


def ask(name: str, qtype: str = "A", port: int = 53, *, host: str = "127.0.0.1", tcp: bool = False,
        source: Optional[str] = None, timeout: float = 3.0, **kw) -> Optional[DNSRecord]:
    """Query and parse; None on time-out. Checks the reply's ID matches."""
    q = make_query(name, qtype, **kw)
    raw = exchange(q.pack(), port, host=host, tcp=tcp, source=source, timeout=timeout)
    if raw is None:
        return None
    reply = DNSRecord.parse(raw)
    assert reply.header.id == q.header.id
    return reply


def answers(reply: DNSRecord, qtype: Optional[str] = None) -> list[str]:
    """The rdata texts of the answer section (optionally of one type)."""
    return [str(r.rdata) for r in reply.rr if qtype is None or r.rtype == getattr(QTYPE, qtype)]


def ede(reply: DNSRecord) -> Optional[tuple[int, str]]:
    """The Extended DNS Error (code, text) of a reply, if any."""
    for rr in reply.ar:
        if rr.rtype == QTYPE.OPT:
            for opt in rr.rdata:
                if opt.code == 15:
                    return struct.unpack(">H", opt.data[:2])[0], opt.data[2:].decode("utf-8", "replace")
    return None
