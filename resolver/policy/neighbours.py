"""Where MAC addresses and host names come from: the kernel's neighbour tables (``/proc/net/arp``,
``ip neigh``) and DHCP lease files (dnsmasq, ISC dhcpd, OpenWrt odhcpd).

The readers are plain functions returning dicts (``ip -> mac``; ``ip -> (mac or None, hostname)``) and
never raise on missing, unreadable or garbled input. They block (file reads, one ``ip`` subprocess): the
engine runs them off its event loop (:func:`resolver.policy.clients.read_tables`).
"""
from __future__ import annotations

import logging
import re
import socket
import subprocess
from typing import Callable, Iterable, Optional

from resolver.policy.profiles import check_mac

log = logging.getLogger("hearth.clients")

# ip -> mac; ip -> (mac or None, hostname or "")
Neighbours = dict[str, str]
Leases = dict[str, tuple[Optional[str], str]]

MAX_FILE_BYTES = 16 * 1024 * 1024
IP_NEIGH_TIMEOUT = 2.0
NEIGH_GOOD_STATES = frozenset(("REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"))
NEIGH_BAD_STATES = frozenset(("FAILED", "INCOMPLETE"))
ATF_COM = 0x02                   # /proc/net/arp flags: entry complete

_V4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"

_HOSTNAME_JUNK = re.compile(r"[\x00-\x1f\x7f]+")
_OCTAL = re.compile(r"[0-7]{3}")
_CANON_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


# ---------------------------------------------------------------------------------------------
# small helpers

def address_key(text: object) -> Optional[tuple[str, int, int]]:
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


def clean_ip(text: object) -> Optional[str]:
    found = address_key(text.strip() if isinstance(text, str) else text)
    return found[0] if found else None


def clean_mac(value: object) -> Optional[str]:
    """Lower-case colon form, or None (junk, non-Ethernet addresses, all zeros)."""
    if not isinstance(value, str) or not value:
        return None
    if _CANON_MAC.fullmatch(value):
        return value if value != "00:00:00:00:00:00" else None
    try:
        return check_mac(value)
    except ValueError:
        return None


def clean_hostname(value: object) -> str:
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


def merge_lease(into: Leases, ip: str, mac: Optional[str], hostname: str) -> None:
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
        ip = clean_ip(parts[0])   # the header line ("IP address ...") fails here
        if ip is None:
            continue
        try:
            flags = int(parts[2], 16)
        except ValueError:
            continue
        mac = clean_mac(parts[3])
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
        ip, mac = clean_ip(parts[0]), clean_mac(parts[i + 1])
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
        found = address_key(parts[2])
        if found is None:
            continue
        ip, version, _ = found
        mac = clean_mac(parts[1]) if version == 4 else None
        merge_lease(out, ip, mac, clean_hostname(parts[3]))
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
            mac = clean_mac(parts[2]) if v4 else None
            if v4 and parts[5] == "0":
                continue   # expired
            hostname = clean_hostname(parts[4])
            for item in parts[8:]:
                ip = clean_ip(item.split("/", 1)[0])
                if ip:
                    merge_lease(out, ip, mac, hostname)
            continue
        if parts[0].startswith("#") or len(parts) < 2:
            continue
        ip = clean_ip(parts[0])
        if ip:
            merge_lease(out, ip, None, clean_hostname(parts[-1]))   # the last name is the short one
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
            current = clean_ip(words[1]) if len(words) == 3 and words[0] == "lease" else None
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
            mac = clean_mac(body[2])
        elif len(body) == 3 and body[:2] == ["binding", "state"]:
            state = body[2].lower()
        elif len(body) == 2 and body[0] == "client-hostname":
            hostname = clean_hostname(_unquote(body[1]))
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
        if len(parts) >= 2 and not parts[0].startswith("#") and clean_ip(parts[0]):
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
