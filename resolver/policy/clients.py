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
import socket
import struct
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from resolver.policy.access import parse_network
from resolver.base.configspec import option
from resolver.policy.profiles import DEFAULT_PROFILE_NAME, Device, check_mac

log = logging.getLogger("hearth.clients")

# ip -> mac; ip -> (mac or None, hostname or "")
Neighbours = dict[str, str]
Leases = dict[str, tuple[Optional[str], str]]

EDNS_OPTION_MAC = 65001          # dnsmasq --add-mac: the raw hardware address
EDNS_OPTION_NOMDEVICEID = 65073  # dnsmasq --add-mac=base64 / =text put their forms here
MAX_FILE_BYTES = 16 * 1024 * 1024
IP_NEIGH_TIMEOUT = 2.0
NEIGH_GOOD_STATES = frozenset(("REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"))
NEIGH_BAD_STATES = frozenset(("FAILED", "INCOMPLETE"))
ATF_COM = 0x02                   # /proc/net/arp flags: entry complete

_V4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_HOSTNAME_JUNK = re.compile(r"[\x00-\x1f\x7f]+")
_OCTAL = re.compile(r"[0-7]{3}")
_CANON_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
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


# ---------------------------------------------------------------------------------------------
# small helpers

def _addr(text: object) -> Optional[tuple[str, int, int]]:
    """(canonical text, version, integer) of an address, or None. IPv4-mapped IPv6 becomes IPv4
    and a zone (``fe80::1%eth0``) is dropped. Used for every key so lookups always agree."""
    if not isinstance(text, str):
        return None
    if "%" in text:
        text = text.split("%", 1)[0]
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
        return socket.inet_ntop(socket.AF_INET, packed), 4, int.from_bytes(packed, "big")
    except (OSError, ValueError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return None
    if packed[:12] == _V4_MAPPED_PREFIX:
        v4 = packed[12:]
        return socket.inet_ntop(socket.AF_INET, v4), 4, int.from_bytes(v4, "big")
    return socket.inet_ntop(socket.AF_INET6, packed), 6, int.from_bytes(packed, "big")


def _ip(text: object) -> Optional[str]:
    found = _addr(text.strip() if isinstance(text, str) else text)
    return found[0] if found else None


def _mac(value: object) -> Optional[str]:
    """Lower-case colon form, or None (junk, non-Ethernet addresses, all zeros)."""
    if not isinstance(value, str) or not value:
        return None
    if _CANON_MAC.fullmatch(value):
        return value if value != "00:00:00:00:00:00" else None
    try:
        return check_mac(value)
    except ValueError:
        return None


def _hostname(value: object) -> str:
    """A host name as a lease file gives it: "" for none (``*``, ``-``); no control characters, blanks collapsed."""
    text = " ".join(_HOSTNAME_JUNK.sub("", str(value or "")).split())
    return "" if text in ("*", "-") else text[:253]


_warned: set[tuple[str, str]] = set()


def _read_text(path: str) -> Optional[str]:
    """A file's text, or None when missing (silently) or unreadable (a warning, once per path and error)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        key = (str(path), type(exc).__name__)
        if key not in _warned:
            _warned.add(key)
            log.warning("cannot read %s: %s", path, exc)
        return None
    if len(data) > MAX_FILE_BYTES:
        key = (str(path), "size")
        if key not in _warned:
            _warned.add(key)
            log.warning("%s is larger than %d bytes; only its start is read", path, MAX_FILE_BYTES)
        data = data[:MAX_FILE_BYTES]
    return data.decode("utf-8", "replace")


def _merge(into: Leases, ip: str, mac: Optional[str], hostname: str) -> None:
    old = into.get(ip)
    if old is None:
        into[ip] = (mac, hostname)
    else:
        into[ip] = (mac or old[0], hostname or old[1])


# ---------------------------------------------------------------------------------------------
# neighbour tables

def parse_proc_arp(text: str) -> Neighbours:
    """ip -> mac from the text of ``/proc/net/arp``; incomplete entries (flags without ATF_COM,
    all-zero MAC) are skipped."""
    out: Neighbours = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        ip = _ip(parts[0])   # the header line ("IP address ...") fails here
        if ip is None:
            continue
        try:
            flags = int(parts[2], 16)
        except ValueError:
            continue
        mac = _mac(parts[3])
        if flags & ATF_COM and mac:
            out[ip] = mac
    return out


def read_proc_arp(path: str = "/proc/net/arp") -> Neighbours:
    """ip -> mac from the kernel's IPv4 neighbour table; {} when unreadable."""
    text = _read_text(path)
    return parse_proc_arp(text) if text else {}


def read_ip_neigh(text: str) -> Neighbours:
    """ip -> mac from the output of ``ip neigh show`` (IPv4 and IPv6). Entries in state REACHABLE,
    STALE, DELAY, PROBE or PERMANENT count; FAILED, INCOMPLETE and anything without a state or a
    link-layer address don't."""
    out: Neighbours = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 4 or "lladdr" not in parts:
            continue
        words = set(parts)
        if words & NEIGH_BAD_STATES or not words & NEIGH_GOOD_STATES:
            continue
        i = parts.index("lladdr")
        if i + 1 >= len(parts):
            continue
        ip, mac = _ip(parts[0]), _mac(parts[i + 1])
        if ip and mac:
            out[ip] = mac
    return out


def run_ip_neigh(timeout: float = IP_NEIGH_TIMEOUT) -> Neighbours:
    """ip -> mac from ``ip -o neigh show``; {} when ``ip`` is missing, fails or takes too long."""
    try:
        done = subprocess.run(["ip", "-o", "neigh", "show"], capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.debug("ip neigh: %s", exc)
        return {}
    if done.returncode != 0:
        log.debug("ip neigh exited with %s: %s", done.returncode, done.stderr[:200])
        return {}
    return read_ip_neigh(done.stdout.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------
# DHCP lease files

def parse_dnsmasq_leases(text: str) -> Leases:
    """dnsmasq's lease file: ``expiry mac ip hostname client-id`` per line (hostname ``*`` = none).
    DHCPv6 lines (after the ``duid`` line) carry an IAID where IPv4 lines carry the MAC: no MAC."""
    out: Leases = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        found = _addr(parts[2])
        if found is None:
            continue
        ip, version, _ = found
        mac = _mac(parts[1]) if version == 4 else None
        _merge(out, ip, mac, _hostname(parts[3]))
    return out


def read_dnsmasq_leases(path: str) -> Leases:
    text = _read_text(path)
    return parse_dnsmasq_leases(text) if text else {}


def parse_odhcpd_leases(text: str) -> Leases:
    """OpenWrt odhcpd's lease/hosts file. It holds state lines
    ``# iface duid-or-mac iaid-or-"ipv4" hostname valid assigned length addr/len …`` (hostname ``-``
    = none; for DHCPv4 the second field is the MAC in plain hex) and hosts-style lines
    ``addr name.domain name``. DHCPv6 lines carry a DUID, not a MAC: the MAC stays unknown
    (the neighbour table gives it)."""
    out: Leases = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#":
            if len(parts) < 9:
                continue
            v4 = parts[3] == "ipv4"
            mac = _mac(parts[2]) if v4 else None
            if v4 and parts[5] == "0":
                continue   # expired
            hostname = _hostname(parts[4])
            for item in parts[8:]:
                ip = _ip(item.split("/", 1)[0])
                if ip:
                    _merge(out, ip, mac, hostname)
            continue
        if parts[0].startswith("#") or len(parts) < 2:
            continue
        ip = _ip(parts[0])
        if ip:
            _merge(out, ip, None, _hostname(parts[-1]))   # the last name is the short one
    return out


def read_odhcpd_leases(path: str) -> Leases:
    text = _read_text(path)
    return parse_odhcpd_leases(text) if text else {}


def _isc_statements(text: str) -> Iterable[tuple[int, list[str]]]:
    """(depth, words) of every statement in an ISC config-like file; ``{`` and ``}`` end statements
    too and quoted strings (kept with their quotes) may hold anything."""
    words: list[str] = []
    word: list[str] = []
    depth = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            word.append(text[i:j + 1])
            i = j + 1
            continue
        if c == "#" and not word:
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in " \t\r\n;{}":
            if word:
                words.append("".join(word))
                word = []
            if c in ";{}":
                yield depth, words + [c]
                words = []
                depth += 1 if c == "{" else -1 if c == "}" else 0
                depth = max(depth, 0)
        else:
            word.append(c)
        i += 1


def _unquote(text: str) -> str:
    """An ISC quoted string: quotes off, ``\\ooo`` octal escapes (how dhcpd writes non-ASCII bytes,
    e.g. UTF-8) and ``\\x`` undone."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    if "\\" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            if _OCTAL.match(text, i + 1):
                out.append(int(text[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
            c = text[i + 1]
            i += 1
        out += c.encode("utf-8", "replace")
        i += 1
    return out.decode("utf-8", "replace")


def parse_isc_leases(text: str) -> Leases:
    """ISC dhcpd's ``dhcpd.leases``: ``lease IP { … }`` blocks. The file is a journal, so the last
    block for an address wins; a last block whose binding state is not active (free, expired,
    released, abandoned, backup) removes the address."""
    out: Leases = {}
    current: Optional[str] = None
    mac: Optional[str] = None
    hostname, state = "", ""
    for depth, words in _isc_statements(text):
        end = words[-1]
        if depth == 0 and end == "{":
            current = _ip(words[1]) if len(words) == 3 and words[0] == "lease" else None
            mac, hostname, state = None, "", ""
            continue
        if current is None:
            continue
        if end == "}" and depth == 1:
            out.pop(current, None)   # a later block replaces (or ends) an earlier one
            if state in ("", "active"):
                out[current] = (mac, hostname)
            current = None
            continue
        if depth != 1 or end != ";":
            continue
        body = words[:-1]
        if len(body) == 3 and body[0] == "hardware" and body[1] == "ethernet":
            mac = _mac(body[2])
        elif len(body) == 3 and body[:2] == ["binding", "state"]:
            state = body[2].lower()
        elif len(body) == 2 and body[0] == "client-hostname":
            hostname = _hostname(_unquote(body[1]))
    return out


def read_isc_leases(path: str) -> Leases:
    text = _read_text(path)
    return parse_isc_leases(text) if text else {}


_ISC_SNIFF = re.compile(r"^\s*lease\s+\S+\s*\{", re.M)
_DNSMASQ_LINE = re.compile(r"^\d+\s+\S+\s+[0-9a-fA-F:.]+\s+\S+", re.M)
_ODHCPD_LINE = re.compile(r"^#\s+\S+\s+\S+\s+\S+\s+\S+\s+-?\d+\s+[0-9a-fA-F]+\s+\d+", re.M)


def sniff_lease_format(text: str) -> str:
    """"isc", "dnsmasq", "odhcpd" or "" (unknown) for a lease file's text."""
    if _ISC_SNIFF.search(text):
        return "isc"
    dnsmasq = len(_DNSMASQ_LINE.findall(text))
    odhcpd = len(_ODHCPD_LINE.findall(text))
    if dnsmasq and dnsmasq >= odhcpd:
        return "dnsmasq"
    if odhcpd:
        return "odhcpd"
    # only hosts-style lines (odhcpd writes those first): "addr name [name]"
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and _ip(parts[0]):
            return "odhcpd"
    return ""


_PARSERS: dict[str, Callable[[str], Leases]] = {
    "isc": parse_isc_leases, "dnsmasq": parse_dnsmasq_leases, "odhcpd": parse_odhcpd_leases}


def read_leases(path: str) -> Leases:
    """ip -> (mac or None, hostname) from a lease file in any supported format (sniffed);
    {} when missing, unreadable or not a lease file."""
    text = _read_text(path)
    if not text:
        return {}
    kind = sniff_lease_format(text)
    if not kind:
        log.debug("%s: not a lease file Hearth knows", path)
        return {}
    try:
        return _PARSERS[kind](text)
    except Exception as exc:   # a reader must never take the engine down
        log.warning("%s: cannot parse (%s): %s", path, kind, exc)
        return {}


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
            _merge(leases, ip, mac, hostname)
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
            return _mac(data.decode("ascii"))
        except UnicodeDecodeError:
            return None
    else:
        return None
    return _mac(raw.hex()) if len(raw) == 6 else None


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
        found = _addr(ip)
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
                found = _addr(device.value)
                if found is not None:
                    self._by_ip.setdefault(found[0], device)
            else:
                net = _network(device.value)
                if net is not None:
                    self._by_net.add(*net, device)

    def profile_for(self, ip: str, mac: Optional[str] = None) -> tuple[Optional[Device], str]:
        """(device, profile name) for a query from ``ip`` (and ``mac``, e.g. from a trusted EDNS0
        MAC option). Never raises."""
        found = _addr(ip)
        by_mac = self._by_mac
        if by_mac:
            if mac is not None:
                if not isinstance(mac, str) or mac not in by_mac:
                    mac = _mac(mac)
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
            key, value = _ip(ip), _mac(mac)
            if key and value:
                neigh[key] = value
        table: Leases = {}
        for ip, entry in (leases or {}).items():
            key = _ip(ip)
            if not key:
                continue
            try:
                lease_mac, hostname = entry
            except (TypeError, ValueError):
                continue
            _merge(table, key, _mac(lease_mac), _hostname(hostname))
        if neigh != self._neigh or table != self._leases:
            self._neigh, self._leases = neigh, table
            self.generation += 1

    def hostname(self, ip: str) -> str:
        """The host name a lease gives ``ip``, "" if unknown."""
        found = _addr(ip)
        lease = self._leases.get(found[0]) if found else None
        return lease[1] if lease else ""

    def mac_of(self, ip: str) -> Optional[str]:
        """The MAC of ``ip``: the neighbour tables' (current) first, then a lease's."""
        found = _addr(ip)
        if found is None:
            return None
        mac = self._neigh.get(found[0])
        if mac is None:
            lease = self._leases.get(found[0])
            mac = lease[0] if lease else None
        return mac
