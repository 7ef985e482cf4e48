"""Names Hearth answers itself (``hearth.lan`` → the appliance), authoritatively."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

from dnslib import AAAA, CNAME, PTR, QTYPE, RR, A, DNSLabel

from resolver.base.configspec import option
from resolver.base.names import normalise_name, wire_name

TYPES = ("A", "AAAA", "CNAME", "PTR")


@dataclass(frozen=True)
class LocalRecord:
    name: str = option("", "Name to answer, e.g. hearth.lan.", check=lambda v: normalise_name(v, wildcard=False))
    type: str = option("A", "Record type.", choices=TYPES)
    value: str = option("", "Address for A/AAAA, target name for CNAME/PTR.")
    ttl: int = option(300, "TTL of the answer.", minimum=0, maximum=604800)
    ptr: bool = option(True, "For A/AAAA: also answer the reverse (PTR) query for the address.")

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("local record needs a name")
        if self.type == "A":
            _ip(self.value, 4)
        elif self.type == "AAAA":
            _ip(self.value, 6)
        elif not self.value:
            raise ValueError(f"local record {self.name}: {self.type} needs a target name in value")


def _ip(text: str, version: int) -> ipaddress._BaseAddress:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IPv{version} address: {text!r}") from None
    if ip.version != version:
        raise ValueError(f"not an IPv{version} address: {text!r}")
    return ip


class LocalZone:
    """Answers for configured names: ``lookup(name, qtype)`` → (rcode, answer RRs) or None."""

    def __init__(self, records: list[LocalRecord]):
        self.rrs: dict[str, list[RR]] = {}
        for rec in records:
            self._add(rec.name, rec.type, rec.value, rec.ttl)
            if rec.type in ("A", "AAAA") and rec.ptr:
                self._add(ipaddress.ip_address(rec.value).reverse_pointer, "PTR", rec.name, rec.ttl)
        self.wire_names: frozenset[bytes] = frozenset(wire_name(n) for n in self.rrs)   # ours, in wire form

    def _add(self, name: str, rtype: str, value: str, ttl: int) -> None:
        rdata = {"A": A, "AAAA": AAAA, "CNAME": lambda v: CNAME(DNSLabel(v)), "PTR": lambda v: PTR(DNSLabel(v))}
        self.rrs.setdefault(name, []).append(RR(name, getattr(QTYPE, rtype), rdata=rdata[rtype](value), ttl=ttl))

    def __bool__(self) -> bool:
        return bool(self.rrs)

    def has_wire_name(self, name_wire: bytes) -> bool:
        """Is this (lower-case, uncompressed wire form) name one of ours? Cheap: for the miss path."""
        return name_wire in self.wire_names

    def lookup(self, name: str, qtype: int) -> Optional[list[RR]]:
        """RRs answering (name, qtype), following local CNAMEs; [] for no data; None if not local."""
        rrs = self.rrs.get(name)
        if rrs is None:
            return None
        out: list[RR] = []
        seen = set()
        while rrs is not None and name not in seen:
            seen.add(name)
            cnames = [r for r in rrs if r.rtype == QTYPE.CNAME]
            if cnames and qtype != QTYPE.CNAME:
                out.extend(cnames)
                name = normalise_name(str(cnames[0].rdata.label))
                rrs = self.rrs.get(name)
                continue
            out.extend(r for r in rrs if r.rtype == qtype)
            break
        return out
