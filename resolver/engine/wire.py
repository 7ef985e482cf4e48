"""Raw DNS wire handling for the fast path: no dnslib objects per packet.

The fast path parses only the 12-byte header, the single question and an
optional OPT record, and answers cache hits by splicing the query's ID and
question (exact case) into pre-packed reply bytes. Everything unusual returns
``None`` so the caller falls back to the dnslib-based slow path.
"""
from __future__ import annotations

import struct
from typing import NamedTuple, Optional

TYPE_OPT = 41
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 0, 1, 2, 3, 4, 5
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               16: "BADVERS"}

# Flag bits folded into the last byte of a cache key: replies differ in these.
KEY_RD, KEY_CD, KEY_EDNS, KEY_DO = 0x01, 0x02, 0x04, 0x08

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class Question(NamedTuple):
    """What the fast path learns from a query."""

    key: bytes      # lower-cased wire name + qtype + qclass + flag byte: the answer-cache key
    qend: int       # offset just past the question section
    limit: int      # largest UDP reply the client accepts (512 without EDNS)


_FLAG_BYTES = [bytes((i,)) for i in range(256)]
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"


def lookup_key(data: bytes, edns_cap: int = 1232) -> Optional[tuple[bytes, int, int]]:
    """(key, qend, limit) of a plain query for a cache *lookup*, or None.

    The name's end is found with one C-speed search for its zero byte instead
    of walking the labels. A name with a zero byte inside a label or a
    compression pointer is then cut wrongly, but such a key can never equal a
    cached key: every cached key went through :func:`parse_question`'s label
    walk, and a prefix with valid label structure would have ended there too.
    So a hit is always right, and a miss goes to the slow path, which checks.
    """
    n = len(data)
    if n < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION or data[10]:
        return None  # QR set or opcode != QUERY, not exactly one question, answers present
    z = data.find(0, 12)
    qend = z + 5
    if z < 0 or qend > n:
        return None
    arcount = data[11]
    if arcount == 0:
        if qend != n:
            return None
        return data[12:z + 1].lower() + data[z + 1:qend] + _FLAG_BYTES[(data[2] & 0x01) | ((data[3] & 0x10) >> 3)], \
            qend, 512
    # one OPT: root name, type 41, class = UDP size, ttl = ext-rcode, version, DO|Z; rdlength
    if arcount != 1 or n < qend + 11 or data[qend:qend + 3] != b"\x00\x00\x29" or data[qend + 6] \
            or qend + 11 + (data[qend + 9] << 8 | data[qend + 10]) != n:
        return None  # not OPT, EDNS version != 0 (slow path answers BADVERS), or trailing bytes
    udp = data[qend + 3] << 8 | data[qend + 4]
    flags = (data[2] & 0x01) | ((data[3] & 0x10) >> 3) | KEY_EDNS | (KEY_DO if data[qend + 7] & 0x80 else 0)
    return data[12:z + 1].lower() + data[z + 1:qend] + _FLAG_BYTES[flags], qend, \
        512 if udp < 512 else (edns_cap if udp > edns_cap else udp)


def parse_question(data: bytes, edns_cap: int = 1232) -> Optional[Question]:
    """Header + question + optional OPT of a plain standard query, or None.

    Like :func:`lookup_key`, and the question's labels are walked and checked,
    so the key may be stored. None means "not a plain query" (malformed,
    several questions, a response, another opcode, EDNS version != 0, TSIG …);
    it is not an error by itself.
    """
    found = lookup_key(data, edns_cap)
    if found is None:
        return None
    return checked_question(data, found)


def checked_question(data: bytes, found: tuple[bytes, int, int]) -> Optional[Question]:
    """:func:`parse_question` for a query whose :func:`lookup_key` result ``found`` is already known."""
    key, qend, limit = found
    end = qend - 5
    if end - 12 > 254:
        return None
    i = 12
    while i < end:
        ln = data[i]
        if ln > 63:
            return None  # compression pointer or reserved label type in a question
        i += ln + 1
    if i != end:
        return None  # a zero byte inside a label: the name really ends elsewhere
    return Question(key, qend, limit)


def key_name(key: bytes) -> str:
    """Presentation form (lower case, no trailing dot) of the name in a cache key."""
    labels, i = [], 0
    while key[i]:
        ln = key[i]
        labels.append(key[i + 1:i + 1 + ln].decode("ascii", "backslashreplace"))
        i += ln + 1
    return ".".join(labels)


def key_qtype(key: bytes) -> int:
    return key[-5] << 8 | key[-4]


def skip_name(data: bytes, i: int) -> int:
    """Offset just past the (possibly compressed) name at ``i``; IndexError if cut short."""
    while True:
        ln = data[i]
        if ln == 0:
            return i + 1
        if ln >= 0xC0:
            return i + 2
        if ln > 63:
            raise ValueError("bad label type")
        i += ln + 1


def ttl_offsets(packet: bytes) -> list[int]:
    """Offsets of the TTL field of every RR except OPT, in order."""
    qd, an, ns, ar = struct.unpack_from(">4H", packet, 4)
    i = 12
    for _ in range(qd):
        i = skip_name(packet, i) + 4
    out = []
    for _ in range(an + ns + ar):
        i = skip_name(packet, i)
        rtype, rdlen = _U16.unpack_from(packet, i)[0], _U16.unpack_from(packet, i + 8)[0]
        if rtype != TYPE_OPT:
            out.append(i + 4)
        i += 10 + rdlen
    if i > len(packet):
        raise ValueError("truncated message")
    return out


def opt_record(udp_size: int, do: bool, options: bytes = b"") -> bytes:
    """An OPT pseudo-RR advertising ``udp_size``."""
    return (b"\x00\x00\x29" + _U16.pack(udp_size) + b"\x00\x00" + (b"\x80\x00" if do else b"\x00\x00")
            + _U16.pack(len(options)) + options)


def ede_option(code: int, text: str = "") -> bytes:
    """Extended DNS Error (RFC 8914) option: code 15, info-code, UTF-8 text."""
    body = _U16.pack(code) + text.encode("utf-8")[:200]
    return _U16.pack(15) + _U16.pack(len(body)) + body


def truncated(reply: bytes, qend: int, key_flags: int, edns_size: int) -> bytes:
    """The TC=1 form of ``reply``: header and question only (plus OPT if the client sent one)."""
    edns = key_flags & KEY_EDNS
    head = bytearray(reply[:qend])
    head[2] |= 0x02
    head[6:12] = b"\x00\x00\x00\x00\x00\x01" if edns else b"\x00\x00\x00\x00\x00\x00"
    if edns:
        head += opt_record(edns_size, bool(key_flags & KEY_DO))
    return bytes(head)


def error_reply(query: bytes, rcode: int, edns_size: int = 1232,
                ede: Optional[tuple[int, str]] = None) -> Optional[bytes]:
    """A reply with ``rcode`` echoing the query's question when it can be found.

    Built from raw bytes so it works for packets dnslib cannot parse. Returns
    None when even the header is unreadable (then the packet is dropped).
    """
    if len(query) < 12 or query[2] & 0x80:
        return None  # too short, or itself a response: never answer those (no loops)
    flags2 = 0x80 | (query[2] & 0x79)  # QR, keep opcode and RD
    q = parse_question(query, edns_cap=edns_size)
    if q is not None:
        body = query[12:q.qend]
        counts = b"\x00\x01\x00\x00\x00\x00\x00\x00"
        opt = b""
        if q.key[-1] & KEY_EDNS:
            opt = opt_record(edns_size, bool(q.key[-1] & KEY_DO), ede_option(*ede) if ede else b"")
            counts = b"\x00\x01\x00\x00\x00\x00\x00\x01"
        return query[:2] + bytes((flags2, 0x80 | (rcode & 0x0F))) + counts + body + opt
    return query[:2] + bytes((flags2, 0x80 | (rcode & 0x0F))) + b"\x00" * 8


def patch_ttls(tail: bytearray, offsets: list[int], ttls: list[int], age: int) -> None:
    """Write ``ttl - age`` (floored at 0) at each offset of ``tail``."""
    pack = _U32.pack_into
    for off, ttl in zip(offsets, ttls):
        pack(tail, off, ttl - age if ttl > age else 0)


def add_option(reply: bytes, option: bytes) -> bytes:
    """Append an EDNS option to the OPT record that ends ``reply`` (as ours always do)."""
    if len(reply) < 23 or reply[-11:-8] != b"\x00\x00\x29":
        return reply
    rdlen = reply[-2] << 8 | reply[-1]
    if rdlen:  # OPT already carries options: it is not the last 11 bytes, leave the reply alone
        return reply
    return reply[:-2] + _U16.pack(len(option)) + option


def name_labels(name_wire: bytes) -> list[bytes]:
    """Labels of an uncompressed wire name."""
    labels, i = [], 0
    while name_wire[i]:
        ln = name_wire[i]
        labels.append(name_wire[i + 1:i + 1 + ln])
        i += ln + 1
    return labels


def canonical_query(data: bytes, cq) -> bytes:
    """The plain form of a query dnslib could parse but the fast parser declined:
    the same ID, flags and question (case kept), and the client's OPT only."""
    labels = cq.msg.q.qname.label
    wire_name = b"".join(bytes((len(lbl),)) + lbl for lbl in labels) + b"\x00"
    out = data[:4] + (b"\x00\x01\x00\x00\x00\x00\x00\x01" if cq.edns else b"\x00\x01\x00\x00\x00\x00\x00\x00")
    out += wire_name + _U16.pack(cq.qtype) + _U16.pack(cq.qclass)
    if cq.edns:
        out += opt_record(cq.udp_size, cq.do)
    return out


_RR_FIXED = struct.Struct(">HHIH")


def rewrite_reply(reply: bytes, key: bytes, edns_size: int) -> tuple[bytes, list[int], list[int], int]:
    """Our reply to ``key``'s question, made from an upstream's reply without dnslib.

    The upstream's OPT is replaced by ours (when the client sent EDNS); the header gets the
    client's RD and CD, RA, and AD only for DO clients. Offsets of names are unchanged, so
    compression pointers stay valid. Returns (packed reply with ID 0, TTL offsets, TTLs,
    negative TTL from an SOA in the authority section or -1). Raises ValueError when the
    reply is malformed or unusual (an OPT that is not last): the caller then uses dnslib.
    """
    qsec = key[:-1]
    flags = key[-1]
    qend = 12 + len(qsec)
    n = len(reply)
    if n < qend or not reply[2] & 0x80 or reply[4:6] != b"\x00\x01":
        raise ValueError("not a reply to one question")
    if reply[12:qend - 4].lower() != qsec[:-4] or reply[qend - 4:qend] != qsec[-4:]:
        raise ValueError("reply is for another question")  # the name case-insensitively; type, class exactly
    an, ns, ar = struct.unpack_from(">3H", reply, 6)
    i = qend
    offsets: list[int] = []
    ttls: list[int] = []
    opt_start = -1
    negative = -1
    try:
        for idx in range(an + ns + ar):
            start = i
            i = skip_name(reply, i)
            rtype, _rclass, ttl, rdlen = _RR_FIXED.unpack_from(reply, i)
            if rtype == TYPE_OPT:
                if opt_start >= 0:
                    raise ValueError("two OPT records")
                opt_start = start
            else:
                if opt_start >= 0:
                    raise ValueError("OPT is not the last record")
                offsets.append(i + 4)
                ttls.append(ttl)
                if rtype == 6 and negative < 0 and an <= idx < an + ns and rdlen >= 22:
                    minimum = _U32.unpack_from(reply, i + 10 + rdlen - 4)[0]  # RFC 2308 §5
                    negative = min(ttl, minimum)
            i += 10 + rdlen
    except (IndexError, struct.error):
        raise ValueError("truncated reply") from None
    if i > n:
        raise ValueError("truncated reply")
    body_end = opt_start if opt_start >= 0 else i
    edns = flags & KEY_EDNS
    byte3 = 0x80 | (reply[3] & 0x20 if flags & KEY_DO else 0) | (0x10 if flags & KEY_CD else 0) | (reply[3] & 0x0F)
    head = b"\x00\x00" + bytes((0x80 | (flags & KEY_RD), byte3)) + struct.pack(
        ">4H", 1, an, ns, ar - (1 if opt_start >= 0 else 0) + (1 if edns else 0))
    packed = head + qsec + reply[qend:body_end] + (opt_record(edns_size, bool(flags & KEY_DO)) if edns else b"")
    return packed, offsets, ttls, negative


_TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
               33: "SRV", 39: "DNAME", 64: "SVCB", 65: "HTTPS"}


def read_name(packet: bytes, i: int, hops: int = 0) -> str:
    """Presentation form of the (possibly compressed) name at ``i``; odd bytes escaped."""
    labels = []
    while hops < 32:
        ln = packet[i]
        if ln == 0:
            break
        if ln >= 0xC0:
            i = (ln & 0x3F) << 8 | packet[i + 1]
            hops += 1
            continue
        labels.append(packet[i + 1:i + 1 + ln].decode("ascii", "backslashreplace"))
        i += ln + 1
    return ".".join(labels) or "."


def summarise_answers(packet: bytes, limit: int = 3) -> str:
    """``A 192.0.2.1, CNAME x.example`` from a reply's answer section, without dnslib."""
    import socket

    an = packet[6] << 8 | packet[7]
    i = skip_name(packet, 12) + 4
    parts = []
    for n in range(an):
        i = skip_name(packet, i)
        rtype, _c, _t, rdlen = _RR_FIXED.unpack_from(packet, i)
        rdata = i + 10
        if n < limit:
            name = _TYPE_NAMES.get(rtype, f"TYPE{rtype}")
            if rtype == 1 and rdlen == 4:
                parts.append(f"A {socket.inet_ntop(socket.AF_INET, packet[rdata:rdata + 4])}")
            elif rtype == 28 and rdlen == 16:
                parts.append(f"AAAA {socket.inet_ntop(socket.AF_INET6, packet[rdata:rdata + 16])}")
            elif rtype in (2, 5, 12, 39):
                parts.append(f"{name} {read_name(packet, rdata)}")
            elif rtype == 15:
                parts.append(f"MX {read_name(packet, rdata + 2)}")
            else:
                parts.append(name)
        i = rdata + rdlen
    if an > limit:
        parts.append(f"+{an - limit}")
    return ", ".join(parts)


def synth_reply(key: bytes, rcode: int, records: list[tuple[int, bytes]], ttl: int, edns_size: int,
                ede: Optional[tuple[int, str]] = None, soa: bool = False) -> tuple[bytes, int]:
    """A reply we answer ourselves (blocked names): (packed with ID 0, qend).

    ``records`` are (type, rdata) answers for the question's name (a pointer to
    offset 12); ``soa`` adds a synthetic SOA in the authority section so clients
    cache a negative answer for no longer than ``ttl``. The EDE option rides in
    our OPT when the client sent EDNS."""
    qsec = key[:-1]
    flags = key[-1]
    edns = flags & KEY_EDNS
    out = [b"\x00\x00", bytes((0x80 | (flags & KEY_RD), 0x80 | (0x10 if flags & KEY_CD else 0) | (rcode & 0x0F))),
           struct.pack(">4H", 1, len(records), 1 if soa else 0, 1 if edns else 0), qsec]
    for rtype, rdata in records:
        out.append(b"\xc0\x0c" + _RR_FIXED.pack(rtype, 1, ttl, len(rdata)) + rdata)
    if soa:
        # MNAME hearth. RNAME hostmaster.hearth. serial 1, refresh/retry/expire, minimum = ttl
        mname_at = len(b"".join(out)) + 12  # where this SOA's rdata (and the name "hearth.") starts
        rdata = b"\x06hearth\x00\x0ahostmaster" + _U16.pack(0xC000 | mname_at) + struct.pack(
            ">5I", 1, 3600, 600, 86400, ttl)
        out.append(b"\xc0\x0c" + _RR_FIXED.pack(6, 1, ttl, len(rdata)) + rdata)
    if edns:
        out.append(opt_record(edns_size, bool(flags & KEY_DO), ede_option(*ede) if ede else b""))
    return b"".join(out), 12 + len(qsec)


def read_wire_name(packet: bytes, i: int) -> bytes:
    """The (possibly compressed) name at ``i`` as a lower-case uncompressed wire name; ValueError when
    it loops or runs past 255 bytes, IndexError when cut short."""
    out = bytearray()
    hops = 0
    while True:
        ln = packet[i]
        if ln == 0:
            out.append(0)
            return bytes(out).lower()
        if ln >= 0xC0:
            hops += 1
            if hops > 32:
                raise ValueError("compression loop")
            i = (ln & 0x3F) << 8 | packet[i + 1]
            continue
        if ln > 63:
            raise ValueError("bad label type")
        out += packet[i:i + 1 + ln]
        if len(out) > 254:
            raise ValueError("name too long")
        i += ln + 1


_CNAME_IN = b"\x00\x05\x00\x01"   # an RR's type CNAME and class IN, as bytes
_TTL_LIMIT = 1 << 32


def reply_parts(reply: bytes, key: bytes, edns_size: int, min_ttl: float, max_ttl: float,
                negative_max_ttl: float) -> Optional[tuple]:
    """What a cache entry for an upstream's ``reply`` to question ``key`` holds, in one pass:
    (head, tail, TTL offsets in the tail, TTLs (tuples), entry TTL, rcode, CNAME targets), the tail's TTLs already
    clamped (``min_ttl``..``max_ttl`` for answers; RFC 2308's SOA minimum capped by ``negative_max_ttl``
    for negative answers). None when the reply is malformed or unusual (:func:`rewrite_reply` declines
    it, or its TTLs cannot be written): the caller takes its careful path, which reports or repairs it.

    The compiled accelerator has the same function (``_fastpath.reply_parts``); both give the same
    results for every input (tests/engine/test_reply_parts.py)."""
    try:
        packed, offsets, ttls, negative = rewrite_reply(reply, key, edns_size)
    except (ValueError, struct.error):
        return None
    rcode = reply[3] & 0x0F
    ttl = 0
    if rcode == 0 and reply[6:8] != b"\x00\x00":
        if not ttls:
            return None
        ttls = [int(min(max(t, min_ttl), max_ttl)) for t in ttls]
        ttl = min(ttls)
    elif rcode in (0, RCODE_NXDOMAIN) and negative >= 0:
        ttl = int(min(negative, negative_max_ttl))
        ttls = [min(t, ttl) for t in ttls]
    qend = 12 + len(key) - 1
    cnames = cname_targets(packed) if rcode == 0 and packed[6:8] != b"\x00\x00" and _CNAME_IN in packed else ()
    tail = bytearray(packed[qend:])
    offsets = tuple([o - qend for o in offsets])
    pack = _U32.pack_into
    for off, t in zip(offsets, ttls):
        if not 0 <= t < _TTL_LIMIT:
            return None
        pack(tail, off, t)
    return packed[2:12], bytes(tail), offsets, tuple(ttls), ttl, rcode, cnames


def cname_targets(packet: bytes) -> tuple[bytes, ...]:
    """The targets of the CNAME records in a reply's answer section (lower-case wire names), in order.
    A reply that cannot be walked gives what was read before the damage."""
    targets: list[bytes] = []
    try:
        an = packet[6] << 8 | packet[7]
        i = skip_name(packet, 12) + 4
        for _ in range(an):
            i = skip_name(packet, i)
            rtype, _c, _t, rdlen = _RR_FIXED.unpack_from(packet, i)
            if rtype == 5:
                targets.append(read_wire_name(packet, i + 10))
            i += 10 + rdlen
    except (IndexError, ValueError, struct.error):
        pass
    return tuple(targets)
