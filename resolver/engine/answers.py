"""Building replies with dnslib on the slow path: once per cache entry, never per hit."""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Callable, Optional

from dnslib import CNAME, QTYPE, RD, RR, SOA, DNSHeader, DNSLabel, DNSQuestion, DNSRecord, EDNS0, EDNSOption

from resolver.engine.wire import KEY_CD, KEY_DO, KEY_EDNS, KEY_RD, summarise_answers

TYPE_HINFO = 13


@dataclass
class ClientQuery:
    """The slow path's view of a query: dnslib's parse plus what the reply must mirror."""

    msg: DNSRecord
    name: str          # normalised: lower case, no trailing dot
    qtype: int
    qclass: int
    edns: bool
    do: bool
    udp_size: int      # the client's advertised size (512 without EDNS)
    edns_version: int

    @classmethod
    def parse(cls, data: bytes) -> ClientQuery:
        """dnslib parse; raises DNSError/ValueError/IndexError/struct.error on garbage."""
        msg = DNSRecord.parse(data)
        opts = [r for r in msg.ar if r.rtype == QTYPE.OPT]
        q = msg.questions[0] if msg.questions else None
        name = str(q.qname).rstrip(".").lower() if q else ""
        if opts:
            opt = opts[0]
            return cls(msg, name, q.qtype if q else 0, q.qclass if q else 0, True, bool(opt.ttl & 0x8000),
                       max(512, opt.rclass), (opt.ttl >> 16) & 0xFF)
        return cls(msg, name, q.qtype if q else 0, q.qclass if q else 0, False, False, 512, 0)

    @property
    def key_flags(self) -> int:
        h = self.msg.header
        return (KEY_RD if h.rd else 0) | (KEY_CD if h.cd else 0) | (KEY_EDNS if self.edns else 0) | (
            KEY_DO if self.do else 0)


def reply_skeleton(cq: ClientQuery, rcode: int = 0, *, aa: bool = False) -> DNSRecord:
    """A reply header mirroring the client's ID, RD, CD and question."""
    h = cq.msg.header
    out = DNSRecord(DNSHeader(id=h.id, qr=1, aa=int(aa), rd=h.rd, ra=1, cd=h.cd, rcode=rcode & 0x0F),
                    questions=list(cq.msg.questions))
    return out


def finish(out: DNSRecord, cq: ClientQuery, edns_size: int, ede: Optional[tuple[int, str]] = None,
           ext_rcode: int = 0) -> bytes:
    """Add our OPT (if the client sent one) and pack."""
    if cq.edns:
        opts = [EDNSOption(15, struct.pack(">H", ede[0]) + ede[1].encode("utf-8")[:200])] if ede else []
        out.add_ar(EDNS0(udp_len=edns_size, flags="do" if cq.do else "", ext_rcode=ext_rcode, opts=opts))
    return out.pack()


def upstream_query(name_wire: bytes, qtype: int, qclass: int, *, do: bool, cd: bool, edns_size: int) -> bytes:
    """A fresh query for the upstreams: random ID, RD, our EDNS size, the client's DO and CD."""
    header = struct.pack(">HBBHHHH", random.getrandbits(16), 0x01, 0x10 if cd else 0x00, 1, 0, 0, 1)
    opt = b"\x00\x00\x29" + struct.pack(">HBBHH", edns_size, 0, 0, 0x8000 if do else 0, 0)
    return header + name_wire + struct.pack(">HH", qtype, qclass) + opt


def upstream_query_for(key: bytes, edns_size: int) -> bytes:
    """:func:`upstream_query` for the question of a cache key (name, type, class, flags): the same bytes, made
    with fewer steps (the cache-miss path)."""
    flags = key[-1]
    return (random.getrandbits(16).to_bytes(2, "big") + (b"\x01\x10" if flags & KEY_CD else b"\x01\x00")
            + b"\x00\x01\x00\x00\x00\x00\x00\x01" + key[:-1] + b"\x00\x00\x29" + edns_size.to_bytes(2, "big")
            + (b"\x00\x00\x80\x00\x00\x00" if flags & KEY_DO else b"\x00\x00\x00\x00\x00\x00"))


def rfc8482_any(cq: ClientQuery, edns_size: int) -> bytes:
    """RFC 8482: answer ANY with one synthesized HINFO instead of everything we know."""
    out = reply_skeleton(cq)
    out.add_answer(RR(cq.msg.q.qname, TYPE_HINFO, rdata=RD(b"\x07RFC8482\x00"), ttl=3600))
    return finish(out, cq, edns_size)


def local_answer(cq: ClientQuery, rrs: list[RR], edns_size: int, soa_name: str) -> bytes:
    """Authoritative answer for a local name; empty ``rrs`` gives NODATA with an SOA."""
    out = reply_skeleton(cq, aa=True)
    for rr in rrs:
        rr = RR(rr.rname, rr.rtype, rclass=rr.rclass, ttl=rr.ttl, rdata=rr.rdata)
        if str(rr.rname).rstrip(".").lower() == cq.name:
            rr.rname = cq.msg.q.qname  # keep the client's spelling
        out.add_answer(rr)
    if not rrs:
        out.add_auth(local_soa(soa_name))
    return finish(out, cq, edns_size)


def local_soa(name: str, ttl: int = 60) -> RR:
    return RR(DNSLabel(name), QTYPE.SOA, ttl=ttl,
              rdata=SOA(DNSLabel("hearth."), DNSLabel("hostmaster.hearth."), (1, 3600, 600, 86400, ttl)))


def summarise(rrs: list[RR], limit: int = 3) -> str:
    """A short text of the answers for the query log: ``A 192.0.2.1, CNAME x.example``."""
    parts = []
    for rr in rrs[:limit]:
        try:
            rdata = rr.rdata.toZone() if hasattr(rr.rdata, "toZone") else str(rr.rdata)
        except Exception:  # an odd rdata must not stop logging
            rdata = "?"
        parts.append(f"{QTYPE.get(rr.rtype, rr.rtype)} {rdata}"[:120])
    if len(rrs) > limit:
        parts.append(f"+{len(rrs) - limit}")
    return ", ".join(parts)


def summarise_entry(entry) -> str:
    """:func:`wire.summarise_answers` of a cache entry's reply (``_fastpath.summarise_entry`` is its compiled twin:
    the same texts, the same errors as ValueError)."""
    return summarise_answers(entry.packet())


def describe(entry, summarise: Callable[[object], str] = summarise_entry) -> str:
    """The query-log summary of a cache entry's answers (computed once, off the hot path); ``summarise``:
    :func:`summarise_entry` or its compiled twin."""
    if entry.summary is None:
        try:
            entry.summary = summarise(entry)
        except (IndexError, ValueError, struct.error):  # an answer we cannot describe is still logged
            entry.summary = "?"
    return entry.summary


def rewrite_answer(key: bytes, target: str, target_reply: Optional[bytes], ttl: int,
                   edns_size: int) -> tuple[bytes, int, str]:
    """Safe search: the reply to question ``key`` as a CNAME to ``target`` followed by what the upstream
    answered for the target (``target_reply``, same type; None: the CNAME alone).
    Every TTL is at most ``ttl``. Returns (packed with ID 0, rcode, summary)."""
    from resolver.engine.wire import name_labels

    flags = key[-1]
    qtype, qclass = key[-5] << 8 | key[-4], key[-3] << 8 | key[-2]
    qname = DNSLabel(name_labels(key[:-5]))
    rcode = 0
    out = DNSRecord(DNSHeader(id=0, qr=1, rd=int(bool(flags & KEY_RD)), ra=1, cd=int(bool(flags & KEY_CD))),
                    q=DNSQuestion(qname, qtype, qclass))
    out.add_answer(RR(qname, QTYPE.CNAME, rdata=CNAME(DNSLabel(target)), ttl=ttl))
    if target_reply is not None:
        up = DNSRecord.parse(target_reply)
        rcode = up.header.rcode
        for rr in up.rr:
            rr.ttl = min(rr.ttl, ttl)
            out.add_answer(rr)
        if not up.rr:
            for rr in up.auth:
                if rr.rtype == QTYPE.SOA:
                    rr.ttl = min(rr.ttl, ttl)
                    out.add_auth(rr)
    out.header.rcode = rcode
    if flags & KEY_EDNS:
        out.add_ar(EDNS0(udp_len=edns_size, flags="do" if flags & KEY_DO else ""))
    return out.pack(), rcode, summarise(out.rr)


def address_answer(key: bytes, address: str, ttl: int, edns_size: int) -> tuple[bytes, int]:
    """A reply giving ``address`` (IPv4) for an A question; no data for any other type. (packed, qend)."""
    import ipaddress

    from resolver.engine.wire import synth_reply

    qtype = key[-5] << 8 | key[-4]
    records = [(1, ipaddress.IPv4Address(address).packed)] if qtype == 1 else []
    return synth_reply(key, 0, records, ttl, edns_size, soa=not records)
