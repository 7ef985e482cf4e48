"""Who is asking: map a query's source address (and MAC, when known) to a device and its profile.

Devices are known by IP address, network (CIDR, e.g. a classroom subnet) or MAC address
(:class:`resolver.policy.profiles.Device`). A DNS query only carries its source address, so MAC
addresses are learnt from

* the kernel's neighbour tables (``/proc/net/arp`` for IPv4, ``ip neigh`` for IPv4 and IPv6),
* DHCP lease files (dnsmasq, ISC dhcpd, OpenWrt odhcpd), which also give host names,
* the EDNS0 MAC option a router's dnsmasq adds with ``--add-mac`` when Hearth sits behind it:
  then every query comes from the router's address and the option names the real client.
  Only sources in ``clients.trusted_forwarders`` are believed (:class:`AddressMatcher`).

The readers are plain functions returning dicts and never raise on missing, unreadable or
garbled input. They block (file reads, one ``ip`` subprocess): run them off the event loop,
every ``clients.refresh_interval``, and hand the result to
:meth:`ClientDirectory.refresh_neighbours`. :meth:`ClientDirectory.profile_for` is the cheap
per-address lookup on the engine's path.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import re
import struct
from dataclasses import dataclass
from typing import Iterable, Optional

from resolver.policy.access import parse_network
from resolver.base.configspec import option
from resolver.policy.neighbours import (Leases, Neighbours, address_key, clean_hostname, clean_ip, clean_mac,
                                       merge_lease, read_leases, read_proc_arp, run_ip_neigh)
from resolver.policy.profiles import DEFAULT_PROFILE_NAME, Device

log = logging.getLogger("hearth.clients")

EDNS_OPTION_MAC = 65001          # dnsmasq --add-mac: the raw hardware address
EDNS_OPTION_NOMDEVICEID = 65073  # dnsmasq --add-mac=base64 / =text put their forms here

_B64_TEXT = re.compile(rb"[A-Za-z0-9+/]{8}")
_U16 = struct.Struct(">H")
_RR_FIXED = struct.Struct(">HHIH")   # type, class, ttl, rdlength


# ---------------------------------------------------------------------------------------------
# configuration

def _check_path(text: str) -> str:
    path = str(text).strip()
    if not path:
        raise ValueError("empty path")
    return path


@dataclass(frozen=True)
class ClientsConfig:
    lease_files: list[str] = option(
        ["/var/lib/misc/dnsmasq.leases", "/tmp/dhcp.leases", "/var/lib/dhcp/dhcpd.leases", "/tmp/hosts/odhcpd"],
        "DHCP lease files read for client MAC addresses and host names; the format (dnsmasq, ISC dhcpd, "
        "OpenWrt odhcpd) is recognised per file. Missing files are skipped.", check=_check_path)
    neighbour_table: bool = option(True, "Read /proc/net/arp and `ip neigh` to learn MAC addresses of LAN clients.")
    edns_mac: bool = option(True, "Trust the EDNS0 MAC option (65001) that a router's dnsmasq adds with --add-mac, "
                            "from trusted_forwarders only.")
    trusted_forwarders: list[str] = option(
        ["127.0.0.0/8", "::1/128"],
        "Sources whose EDNS0 MAC option is believed (the router's own dnsmasq). From anyone else the option is "
        "ignored, so a child cannot claim a parent's MAC.", check=parse_network)
    refresh_interval: float = option(30.0, "How often neighbour and lease tables are re-read.", duration=True,
                                     minimum=5)


def read_tables(config: ClientsConfig) -> tuple[Neighbours, Leases]:
    """Everything the config asks for, for :meth:`ClientDirectory.refresh_neighbours`. Blocking
    (reads files, runs ``ip``): call it in a thread."""
    neighbours: Neighbours = {}
    if config.neighbour_table:
        neighbours.update(read_proc_arp())
        neighbours.update(run_ip_neigh())
    leases: Leases = {}
    for path in config.lease_files:
        for ip, (mac, hostname) in read_leases(path).items():
            merge_lease(leases, ip, mac, hostname)
    return neighbours, leases


# ---------------------------------------------------------------------------------------------
# EDNS0 MAC option

def _option_mac(code: int, data: bytes) -> Optional[str]:
    n = len(data)
    if n == 6 and code == EDNS_OPTION_MAC:
        raw = data
    elif n == 8 and _B64_TEXT.fullmatch(data):        # --add-mac=base64
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return None
    elif n == 17:                                     # --add-mac=text: aa:bb:cc:dd:ee:ff
        try:
            return clean_mac(data.decode("ascii"))
        except UnicodeDecodeError:
            return None
    else:
        return None
    return clean_mac(raw.hex()) if len(raw) == 6 else None


def edns_client_mac(packet: bytes, qend: Optional[int] = None) -> Optional[str]:
    """The client MAC a forwarding dnsmasq put in the query's OPT record (``--add-mac``: option
    65001, 6 raw bytes; ``--add-mac=base64``/``=text``: 8 base64 characters / ``aa:bb:cc:dd:ee:ff``,
    which dnsmasq sends as option 65073 but both codes are read), normalised; None when there is
    none or the packet is malformed. ``qend``: offset just past the question, when known. Never
    raises. Believe it only from trusted forwarders."""
    try:
        n = len(packet)
        if n < 12:
            return None
        qdcount, ancount, nscount, arcount = struct.unpack_from(">4H", packet, 4)
        if not arcount:
            return None
        if qend is not None and 12 <= qend <= n:
            i = qend
        else:
            i = 12
            for _ in range(qdcount):
                i = _skip_name(packet, i) + 4
        for _ in range(ancount + nscount):
            i = _skip_name(packet, i)
            i += 10 + _RR_FIXED.unpack_from(packet, i)[3]
            if i > n:
                return None
        for _ in range(arcount):
            i = _skip_name(packet, i)
            rtype, _, _, rdlen = _RR_FIXED.unpack_from(packet, i)
            i += 10
            end = i + rdlen
            if end > n:
                return None
            if rtype == 41:
                found = None
                while i + 4 <= end:
                    code, olen = _U16.unpack_from(packet, i)[0], _U16.unpack_from(packet, i + 2)[0]
                    i += 4
                    if i + olen > end:
                        return None
                    if code in (EDNS_OPTION_MAC, EDNS_OPTION_NOMDEVICEID) and found is None:
                        found = _option_mac(code, bytes(packet[i:i + olen]))
                    i += olen
                return found   # one OPT record per message
            i = end
        return None
    except (struct.error, IndexError, ValueError, TypeError):
        return None


def _skip_name(data: bytes, i: int) -> int:
    """Offset just past the (possibly compressed) name at ``i``; IndexError if cut short."""
    while True:
        ln = data[i]
        if ln == 0:
            return i + 1
        if ln >= 0xC0:
            if i + 1 >= len(data):
                raise IndexError("name cut short")
            return i + 2
        if ln > 63:
            raise ValueError("bad label type")
        i += ln + 1


# ---------------------------------------------------------------------------------------------
# lookups

def _network(value: str) -> Optional[tuple[int, int, int]]:
    """(version, prefix length, network integer) of a CIDR; an IPv4-mapped IPv6 network becomes IPv4."""
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        return 4, net.prefixlen - 96, int(net.network_address) & 0xFFFFFFFF
    return net.version, net.prefixlen, int(net.network_address)


class _PrefixTable:
    """Longest-prefix match: per address family, one dict per prefix length (network integer ->
    value), tried longest first. Cost grows with the number of distinct prefix lengths, not networks."""

    __slots__ = ("_v4", "_v6")

    def __init__(self) -> None:
        self._v4: list[tuple[int, int, dict]] = []   # (prefix length, mask, {network: value})
        self._v6: list[tuple[int, int, dict]] = []

    def add(self, version: int, prefixlen: int, network: int, value: object) -> bool:
        """False (and no change) when that network is already there."""
        bits = 32 if version == 4 else 128
        tables = self._v4 if version == 4 else self._v6
        table = next((t for plen, _, t in tables if plen == prefixlen), None)
        if table is None:
            mask = ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)
            table = {}
            tables.append((prefixlen, mask, table))
            tables.sort(key=lambda t: -t[0])
        if network in table:
            return False
        table[network] = value
        return True

    def lookup(self, version: int, number: int) -> Optional[object]:
        for _, mask, table in self._v4 if version == 4 else self._v6:
            if table:
                found = table.get(number & mask)
                if found is not None:
                    return found
        return None

    def __bool__(self) -> bool:
        return bool(self._v4 or self._v6)


class AddressMatcher:
    """Whether an address is in a set of networks (e.g. ``clients.trusted_forwarders``), cheaply."""

    def __init__(self, networks: Iterable[str]):
        self._table = _PrefixTable()
        for text in networks:
            net = _network(str(text).strip())
            if net is None:
                raise ValueError(f"not an IP network: {text!r}")
            self._table.add(*net, True)

    def __contains__(self, ip: object) -> bool:
        found = address_key(ip)
        return found is not None and self._table.lookup(found[1], found[2]) is not None


class ClientDirectory:
    """Devices by MAC, IP and network, and what the neighbour and lease tables say about addresses.

    :meth:`profile_for` picks the most specific match: the device with the client's MAC (given,
    or learnt from the tables for its address), then the device with its exact IP, then the
    device with the longest network containing it; else no device and the default profile.
    Build a new directory when the devices change. ``generation`` grows whenever
    :meth:`refresh_neighbours` changes something, so callers memoising :meth:`profile_for` per
    address know when to forget.
    """

    def __init__(self, devices: Iterable[Device], default_profile: str = DEFAULT_PROFILE_NAME):
        self.default_profile = default_profile
        self.generation = 0
        self._by_mac: dict[str, Device] = {}
        self._by_ip: dict[str, Device] = {}
        self._by_net = _PrefixTable()
        self._neigh: Neighbours = {}
        self._leases: Leases = {}
        for device in devices:
            if device.kind == "mac":
                self._by_mac.setdefault(device.value, device)
            elif device.kind == "ip":
                found = address_key(device.value)
                if found is not None:
                    self._by_ip.setdefault(found[0], device)
            else:
                net = _network(device.value)
                if net is not None:
                    self._by_net.add(*net, device)

    def profile_for(self, ip: str, mac: Optional[str] = None) -> tuple[Optional[Device], str]:
        """(device, profile name) for a query from ``ip`` (and ``mac``, e.g. from a trusted EDNS0
        MAC option). Never raises."""
        found = address_key(ip)
        by_mac = self._by_mac
        if by_mac:
            if mac is not None:
                if not isinstance(mac, str) or mac not in by_mac:
                    mac = clean_mac(mac)
            elif found is not None:
                key = found[0]
                mac = self._neigh.get(key)
                if mac is None:
                    lease = self._leases.get(key)
                    mac = lease[0] if lease is not None else None
            if mac is not None:
                device = by_mac.get(mac)
                if device is not None:
                    return device, device.profile
        if found is not None:
            device = self._by_ip.get(found[0])
            if device is None and self._by_net:
                device = self._by_net.lookup(found[1], found[2])  # type: ignore[assignment]
            if device is not None:
                return device, device.profile
        return None, self.default_profile

    def refresh_neighbours(self, arp: dict, leases: dict) -> None:
        """Take new tables: ``arp`` ip -> mac (neighbour tables), ``leases`` ip -> (mac, hostname)."""
        neigh: Neighbours = {}
        for ip, mac in (arp or {}).items():
            key, value = clean_ip(ip), clean_mac(mac)
            if key and value:
                neigh[key] = value
        table: Leases = {}
        for ip, entry in (leases or {}).items():
            key = clean_ip(ip)
            if not key:
                continue
            try:
                lease_mac, hostname = entry
            except (TypeError, ValueError):
                continue
            merge_lease(table, key, clean_mac(lease_mac), clean_hostname(hostname))
        if neigh != self._neigh or table != self._leases:
            self._neigh, self._leases = neigh, table
            self.generation += 1

    def hostname(self, ip: str) -> str:
        """The host name a lease gives ``ip``, "" if unknown."""
        found = address_key(ip)
        lease = self._leases.get(found[0]) if found else None
        return lease[1] if lease else ""

    def mac_of(self, ip: str) -> Optional[str]:
        """The MAC of ``ip``: the neighbour tables' (current) first, then a lease's."""
        found = address_key(ip)
        if found is None:
            return None
        mac = self._neigh.get(found[0])
        if mac is None:
            lease = self._leases.get(found[0])
            mac = lease[0] if lease else None
        return mac
