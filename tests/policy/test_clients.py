"""Who is asking: neighbour tables, lease files, the EDNS0 MAC option and the client directory."""
from __future__ import annotations

import base64
import random
import subprocess
import time

import pytest
from dnslib import EDNS0, QTYPE, RR, DNSRecord, EDNSOption

from resolver.policy import clients, neighbours
from resolver.policy.clients import AddressMatcher, ClientDirectory, ClientsConfig, edns_client_mac
from resolver.policy.neighbours import (read_dnsmasq_leases, read_ip_neigh, read_isc_leases, read_leases,
                                        read_odhcpd_leases, read_proc_arp, run_ip_neigh, sniff_lease_format)
from resolver.base.configspec import ConfigError, build_section
from resolver.policy.profiles import Device

# ---------------------------------------------------------------------------------------------
# sample files, as the real programs write them

PROC_ARP = """\
IP address       HW type     Flags       HW address            Mask     Device
192.168.1.1      0x1         0x2         d8:07:b6:11:22:33     *        eth0
192.168.1.23     0x1         0x2         3C:22:FB:AA:BB:CC     *        eth0
192.168.1.40     0x1         0x0         00:00:00:00:00:00     *        eth0
192.168.1.41     0x1         0x0         f0:18:98:01:02:03     *        eth0
192.168.1.50     0x1         0x6         b8:27:eb:44:55:66     *        eth0
10.0.0.7         0x1         0x2         not-a-mac             *        wlan0
garbage line
192.168.1.99     0x1
"""

IP_NEIGH = """\
192.168.1.1 dev eth0 lladdr d8:07:b6:11:22:33 REACHABLE
192.168.1.23 dev eth0 lladdr 3c:22:fb:aa:bb:cc STALE
192.168.1.24 dev eth0 lladdr 3c:22:fb:aa:bb:cd DELAY
192.168.1.25 dev eth0 lladdr 3c:22:fb:aa:bb:ce PROBE
192.168.1.26 dev eth0 lladdr 3c:22:fb:aa:bb:cf PERMANENT
192.168.1.40 dev eth0  FAILED
192.168.1.41 dev eth0  INCOMPLETE
192.168.1.42 dev eth0 lladdr 3c:22:fb:aa:bb:d0 FAILED
fe80::1 dev eth0 lladdr d8:07:b6:11:22:33 router REACHABLE
2001:db8:1::8c2e:41ff:fe12:3456 dev eth0 lladdr 8e:2e:41:12:34:56 STALE
2001:db8:1::dead dev eth0 lladdr 8e:2e:41:12:34:57 router STALE
2001:db8:1::beef dev eth0  FAILED
fe80::2 dev eth0 lladdr 02:00:00:00:00:02 extern_learn NOARP
224.0.0.251 dev eth0 lladdr 01:00:5e:00:00:fb NOARP
10.9.9.9 dev tun0 lladdr 0a:0b:0c:0d REACHABLE
what is this
"""

DNSMASQ_LEASES = """\
1700003600 3c:22:fb:aa:bb:cc 192.168.1.23 Emmas-iPad 01:3c:22:fb:aa:bb:cc
1700007200 b8:27:eb:44:55:66 192.168.1.50 * 01:b8:27:eb:44:55:66
0 f0:18:98:01:02:03 192.168.1.41 kitchen-speaker *
broken line
1700009999 zz:zz 192.168.1.60 junk *
duid 00:01:00:01:2c:8a:3f:12:d8:07:b6:11:22:33
1700003600 1235489 2001:db8:1::23 Emmas-iPad 00:01:00:01:2a:bb:cc:dd:3c:22:fb:aa:bb:cc
1700003600 T1235490 2001:db8:1::24 * 00:01:00:01:2a:bb:cc:dd:3c:22:fb:aa:bb:cc
"""

ISC_LEASES = """\
# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\\000\\001\\000\\001+\\214\\337\\022\\010\\000'\\304\\3742";

lease 10.20.0.15 {
  starts 3 2024/03/13 07:58:10;
  ends 3 2024/03/13 19:58:10;
  cltt 3 2024/03/13 07:58:10;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 00:1a:2b:3c:4d:5e;
  uid "\\001\\000\\032+<M^";
  set vendor-class-identifier = "MSFT 5.0";
  client-hostname "PUPIL-PC-15";
}
lease 10.20.0.16 {
  starts 3 2024/03/13 08:01:00;
  ends 3 2024/03/13 08:31:00;
  tstp 3 2024/03/13 08:31:00;
  cltt 3 2024/03/13 08:01:00;
  binding state free;
  hardware ethernet 00:1a:2b:3c:4d:5f;
  uid "\\001\\000\\032+<M_";
}
lease 10.20.0.17 {
  starts 3 2024/03/13 08:05:00;
  ends 3 2024/03/13 20:05:00;
  cltt 3 2024/03/13 08:05:00;
  binding state active;
  next binding state free;
  hardware ethernet 00:1a:2b:3c:4d:60;
  client-hostname "teacher-laptop";
}
lease 10.20.0.18 {
  starts 3 2024/03/13 08:06:00;
  ends 3 2024/03/13 20:06:00;
  binding state active;
  next binding state free;
  hardware ethernet 00:1A:2B:3C:4D:61;
  set vendor-class-identifier = "android-dhcp-14; {odd}";
  client-hostname "Mary\\342\\200\\231s Galaxy";
}
lease 10.20.0.15 {
  starts 3 2024/03/13 13:58:10;
  ends 4 2024/03/14 01:58:10;
  cltt 3 2024/03/13 13:58:10;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 00:1a:2b:3c:4d:5e;
  uid "\\001\\000\\032+<M^";
  client-hostname "PUPIL-PC-15-renewed";
}
lease 10.20.0.17 {
  starts 3 2024/03/13 09:00:00;
  ends 3 2024/03/13 09:00:00;
  tstp 3 2024/03/13 09:00:00;
  binding state free;
  hardware ethernet 00:1a:2b:3c:4d:60;
}
lease 10.20.0.19 {
  binding state active;
}
lease not-an-ip {
  binding state active;
  hardware ethernet 00:1a:2b:3c:4d:99;
}
"""

ODHCPD_HOSTS = """\
# br-lan 00010001299a1b2cd807b6112233 5b3c1a2e laptop 1710400000 1f4 128 fd12:3456:789a::1f4/128 2001:db8:1::1f4/128
fd12:3456:789a::1f4\tlaptop.lan\tlaptop
2001:db8:1::1f4\tlaptop.lan\tlaptop
# br-lan 000300013c22fbaabbcc 1 - 1710400500 3e8 128 fd12:3456:789a::3e8/128
# br-lan 3c22fbaabbcc ipv4 Emmas-iPad 1710401000 17 32 192.168.1.23/32
192.168.1.23\tEmmas-iPad.lan\tEmmas-iPad
# br-lan b827eb445566 ipv4 - 1710401200 32 32 192.168.1.50/32
# br-lan f01898010203 ipv4 old-phone 0 33 32 192.168.1.51/32
# br-lan 0001000abc 7 broken
"""

# Only the hosts part (odhcpd without DHCPv4 state, or a hand-written hosts file).
ODHCPD_HOSTS_ONLY = """\
fd12:3456:789a::1f4\tlaptop.lan\tlaptop
192.168.1.77\tprinter.lan\tprinter
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------------------------------------
# neighbour tables

def test_proc_arp(tmp_path):
    table = read_proc_arp(_write(tmp_path, "arp", PROC_ARP))
    assert table == {"192.168.1.1": "d8:07:b6:11:22:33", "192.168.1.23": "3c:22:fb:aa:bb:cc",
                     "192.168.1.50": "b8:27:eb:44:55:66"}


def test_proc_arp_missing_or_unreadable(tmp_path):
    assert read_proc_arp(str(tmp_path / "nope")) == {}
    assert read_proc_arp(str(tmp_path)) == {}   # a directory
    (tmp_path / "bin").write_bytes(bytes(range(256)) * 10)
    assert read_proc_arp(str(tmp_path / "bin")) == {}


def test_ip_neigh():
    table = read_ip_neigh(IP_NEIGH)
    assert table == {
        "192.168.1.1": "d8:07:b6:11:22:33",
        "192.168.1.23": "3c:22:fb:aa:bb:cc",
        "192.168.1.24": "3c:22:fb:aa:bb:cd",
        "192.168.1.25": "3c:22:fb:aa:bb:ce",
        "192.168.1.26": "3c:22:fb:aa:bb:cf",
        "fe80::1": "d8:07:b6:11:22:33",
        "2001:db8:1:0:8c2e:41ff:fe12:3456": "8e:2e:41:12:34:56",   # keys in canonical (RFC 5952) form
        "2001:db8:1::dead": "8e:2e:41:12:34:57",
    }
    assert read_ip_neigh("") == {}


def test_run_ip_neigh_without_ip(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("ip")

    monkeypatch.setattr(neighbours.subprocess, "run", missing)
    assert run_ip_neigh() == {}

    def slow(*args, **kwargs):
        assert kwargs["timeout"] == 2.0
        raise subprocess.TimeoutExpired("ip", 2.0)

    monkeypatch.setattr(neighbours.subprocess, "run", slow)
    assert run_ip_neigh() == {}

    def failing(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], 1, b"", b"RTNETLINK answers: Operation not permitted")

    monkeypatch.setattr(neighbours.subprocess, "run", failing)
    assert run_ip_neigh() == {}

    seen = []

    def working(*args, **kwargs):
        seen.append(args[0])
        return subprocess.CompletedProcess(args[0], 0, IP_NEIGH.encode(), b"")

    monkeypatch.setattr(neighbours.subprocess, "run", working)
    assert run_ip_neigh() == read_ip_neigh(IP_NEIGH)
    assert seen == [["ip", "-o", "neigh", "show"]]


# ---------------------------------------------------------------------------------------------
# lease files

def test_dnsmasq_leases(tmp_path):
    path = _write(tmp_path, "dnsmasq.leases", DNSMASQ_LEASES)
    expected = {
        "192.168.1.23": ("3c:22:fb:aa:bb:cc", "Emmas-iPad"),
        "192.168.1.50": ("b8:27:eb:44:55:66", ""),
        "192.168.1.41": ("f0:18:98:01:02:03", "kitchen-speaker"),
        "192.168.1.60": (None, "junk"),
        "2001:db8:1::23": (None, "Emmas-iPad"),     # DHCPv6: an IAID, not a MAC
        "2001:db8:1::24": (None, ""),
    }
    assert read_dnsmasq_leases(path) == expected
    assert read_leases(path) == expected
    assert read_dnsmasq_leases(str(tmp_path / "missing")) == {}


def test_isc_leases(tmp_path):
    path = _write(tmp_path, "dhcpd.leases", ISC_LEASES)
    expected = {
        "10.20.0.15": ("00:1a:2b:3c:4d:5e", "PUPIL-PC-15-renewed"),   # the renewal (last block) wins
        "10.20.0.18": ("00:1a:2b:3c:4d:61", "Mary\u2019s Galaxy"),      # octal-escaped UTF-8
        "10.20.0.19": (None, ""),
    }
    # 10.20.0.16 was only ever free; 10.20.0.17 was active, then freed (its last block).
    assert read_isc_leases(path) == expected
    assert read_leases(path) == expected


def test_odhcpd_leases(tmp_path):
    path = _write(tmp_path, "odhcpd", ODHCPD_HOSTS)
    expected = {
        "fd12:3456:789a::1f4": (None, "laptop"),
        "2001:db8:1::1f4": (None, "laptop"),
        "fd12:3456:789a::3e8": (None, ""),
        "192.168.1.23": ("3c:22:fb:aa:bb:cc", "Emmas-iPad"),
        "192.168.1.50": ("b8:27:eb:44:55:66", ""),
    }   # 192.168.1.51: expired (valid time 0)
    assert read_odhcpd_leases(path) == expected
    assert read_leases(path) == expected
    only = _write(tmp_path, "hosts", ODHCPD_HOSTS_ONLY)
    assert read_leases(only) == {"fd12:3456:789a::1f4": (None, "laptop"), "192.168.1.77": (None, "printer")}


def test_sniffing():
    assert sniff_lease_format(DNSMASQ_LEASES) == "dnsmasq"
    assert sniff_lease_format(ISC_LEASES) == "isc"
    assert sniff_lease_format(ODHCPD_HOSTS) == "odhcpd"
    assert sniff_lease_format(ODHCPD_HOSTS_ONLY) == "odhcpd"
    assert sniff_lease_format("# The format of this file is documented in the dhcpd.leases(5) manual page.\n") == ""
    assert sniff_lease_format("") == ""
    assert sniff_lease_format("<html><body>hello</body></html>") == ""


def test_read_leases_never_raises(tmp_path):
    assert read_leases(str(tmp_path / "missing")) == {}
    assert read_leases(str(tmp_path)) == {}
    assert read_leases(_write(tmp_path, "empty", "")) == {}
    rng = random.Random(7)
    for i in range(200):
        samples = [DNSMASQ_LEASES, ISC_LEASES, ODHCPD_HOSTS, PROC_ARP, IP_NEIGH]
        text = rng.choice(samples)
        cut = text[:rng.randrange(len(text))]
        noise = "".join(rng.choice('lease {};"\\# 0123:abc\n\t') for _ in range(rng.randrange(80)))
        path = _write(tmp_path, f"f{i}", cut + noise)
        result = read_leases(path)
        assert isinstance(result, dict)
        for parse in (neighbours.parse_dnsmasq_leases, neighbours.parse_isc_leases, neighbours.parse_odhcpd_leases,
                      neighbours.parse_proc_arp, read_ip_neigh):
            assert isinstance(parse(cut + noise), dict)
    (tmp_path / "bin").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    assert isinstance(read_leases(str(tmp_path / "bin")), dict)


def test_read_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(clients, "read_proc_arp", lambda: neighbours.parse_proc_arp(PROC_ARP))
    monkeypatch.setattr(clients, "run_ip_neigh", lambda: read_ip_neigh(IP_NEIGH))
    cfg = ClientsConfig(lease_files=[_write(tmp_path, "a", DNSMASQ_LEASES), str(tmp_path / "missing"),
                                     _write(tmp_path, "b", ODHCPD_HOSTS)])
    neigh, leases = clients.read_tables(cfg)
    assert neigh["192.168.1.50"] == "b8:27:eb:44:55:66" and neigh["fe80::1"] == "d8:07:b6:11:22:33"
    assert leases["192.168.1.23"] == ("3c:22:fb:aa:bb:cc", "Emmas-iPad")
    assert leases["fd12:3456:789a::1f4"] == (None, "laptop")
    off = ClientsConfig(lease_files=[], neighbour_table=False)
    assert clients.read_tables(off) == ({}, {})


# ---------------------------------------------------------------------------------------------
# EDNS0 MAC option

def _query(*options, name="example.com", qtype="A"):
    """A query with an OPT record holding ``options``."""
    q = DNSRecord.question(name, qtype)
    q.add_ar(EDNS0(udp_len=1232, opts=list(options)))
    return q.pack()


def test_edns_mac_raw():
    packet = _query(EDNSOption(65001, bytes.fromhex("aabbccddeeff")))
    assert edns_client_mac(packet) == "aa:bb:cc:dd:ee:ff"
    qend = len(DNSRecord.question("example.com", "A").pack())
    assert edns_client_mac(packet, qend) == "aa:bb:cc:dd:ee:ff"
    assert edns_client_mac(packet, qend=len(packet) + 5) == "aa:bb:cc:dd:ee:ff"   # nonsense qend: walked instead


def test_edns_mac_base64_and_text():
    b64 = base64.b64encode(bytes.fromhex("aabbccddeeff"))
    assert len(b64) == 8
    assert edns_client_mac(_query(EDNSOption(65001, b64))) == "aa:bb:cc:dd:ee:ff"
    assert edns_client_mac(_query(EDNSOption(65001, b"AA:BB:CC:DD:EE:FF"))) == "aa:bb:cc:dd:ee:ff"
    # what dnsmasq --add-mac=base64 / =text really send: option 65073
    assert edns_client_mac(_query(EDNSOption(65073, b64))) == "aa:bb:cc:dd:ee:ff"
    assert edns_client_mac(_query(EDNSOption(65073, b"aa:bb:cc:dd:ee:ff"))) == "aa:bb:cc:dd:ee:ff"
    assert edns_client_mac(_query(EDNSOption(65073, bytes.fromhex("aabbccddeeff")))) is None   # raw only in 65001


def test_edns_mac_among_other_options():
    cookie = EDNSOption(10, bytes(8))
    ecs = EDNSOption(8, bytes.fromhex("00011800c0a801"))
    packet = _query(cookie, ecs, EDNSOption(65001, bytes.fromhex("0011223344ff")))
    assert edns_client_mac(packet) == "00:11:22:33:44:ff"
    # records before the OPT (answer, authority, additional) and after it
    q = DNSRecord.question("www.example.org", "AAAA")
    q.add_answer(*RR.fromZone("www.example.org. 60 IN A 192.0.2.1"))
    q.add_auth(*RR.fromZone("example.org. 60 IN NS ns1.example.org."))
    q.add_ar(*RR.fromZone("ns1.example.org. 60 IN AAAA 2001:db8::53"))
    q.add_ar(EDNS0(opts=[EDNSOption(65001, bytes.fromhex("020000000001"))]))
    q.add_ar(*RR.fromZone("ns1.example.org. 60 IN A 192.0.2.53"))
    packet = q.pack()
    assert DNSRecord.parse(packet).ar[1].rtype == QTYPE.OPT
    assert edns_client_mac(packet) == "02:00:00:00:00:01"


def test_edns_mac_absent_or_malformed():
    assert edns_client_mac(_query()) is None                                      # OPT without options
    assert edns_client_mac(DNSRecord.question("example.com").pack()) is None     # no OPT at all
    assert edns_client_mac(_query(EDNSOption(65001, bytes(6)))) is None          # all-zero MAC
    assert edns_client_mac(_query(EDNSOption(65001, b"\x01\x02\x03"))) is None   # wrong length
    assert edns_client_mac(_query(EDNSOption(65001, b"not base64"))) is None
    assert edns_client_mac(_query(EDNSOption(65001, b"!!!!!!!!"))) is None
    assert edns_client_mac(_query(EDNSOption(65001, b"gg:hh:ii:jj:kk:ll"))) is None
    assert edns_client_mac(b"") is None
    assert edns_client_mac(b"\x00" * 11) is None
    assert edns_client_mac(None) is None  # type: ignore[arg-type]
    good = _query(EDNSOption(65001, bytes.fromhex("aabbccddeeff")))
    for cut in range(len(good)):
        assert edns_client_mac(good[:cut]) is None
        assert edns_client_mac(good[:cut], qend=29) is None
    # the option's length runs past the OPT record's data
    broken = bytearray(good)
    broken[-8] = 0xFF
    assert edns_client_mac(bytes(broken)) is None
    # huge counts on a tiny packet
    assert edns_client_mac(b"\x12\x34\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff" + b"\x03abc\x00") is None


def test_edns_mac_fuzz():
    rng = random.Random(1)
    base = _query(EDNSOption(65001, bytes.fromhex("aabbccddeeff")))
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        result = edns_client_mac(bytes(data))
        assert result is None or isinstance(result, str)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        assert edns_client_mac(junk) is None or isinstance(edns_client_mac(junk), str)


def test_address_matcher():
    trusted = AddressMatcher(ClientsConfig().trusted_forwarders)
    assert "127.0.0.1" in trusted and "127.3.4.5" in trusted and "::1" in trusted
    assert "::ffff:127.0.0.1" in trusted
    assert "192.168.1.1" not in trusted and "::2" not in trusted and "junk" not in trusted
    with pytest.raises(ValueError):
        AddressMatcher(["nope"])


# ---------------------------------------------------------------------------------------------
# the directory

def _devices():
    return [
        Device("Emma iPad", "mac", "3c:22:fb:aa:bb:cc", profile="child"),
        Device("Dad laptop", "ip", "192.168.1.10", profile="adult"),
        Device("Kids wifi", "cidr", "192.168.1.0/24", profile="teen"),
        Device("Kids corner", "cidr", "192.168.1.64/26", profile="young-child"),
        Device("Whole LAN", "cidr", "192.168.0.0/16", profile="guest"),
        Device("Printer v6", "ip", "2001:db8:1::77", profile="adult"),
        Device("Lab v6", "cidr", "2001:db8:1::/64", profile="school-pupil"),
    ]


def test_precedence():
    d = ClientDirectory(_devices())
    # exact IP beats every network containing it
    assert d.profile_for("192.168.1.10")[1] == "adult"
    # longest prefix wins
    assert d.profile_for("192.168.1.70") == (_devices()[3], "young-child")
    assert d.profile_for("192.168.1.5")[1] == "teen"
    assert d.profile_for("192.168.7.5")[1] == "guest"
    # unknown
    assert d.profile_for("10.1.2.3") == (None, "default")
    assert d.profile_for("2001:db9::1") == (None, "default")
    assert d.profile_for("not an address") == (None, "default")
    assert ClientDirectory([], default_profile="strict").profile_for("10.0.0.1") == (None, "strict")
    # IPv6
    assert d.profile_for("2001:db8:1::77")[1] == "adult"
    assert d.profile_for("2001:db8:1:0:abcd::1")[1] == "school-pupil"
    assert d.profile_for("2001:DB8:1:0::0077")[1] == "adult"          # any spelling
    assert d.profile_for("fe80::1%eth0") == (None, "default")
    # IPv4-mapped IPv6, as a dual-stack socket reports IPv4 clients
    assert d.profile_for("::ffff:192.168.1.10")[1] == "adult"
    assert d.profile_for("::ffff:192.168.1.70")[1] == "young-child"


def test_mac_beats_ip():
    d = ClientDirectory(_devices())
    # the MAC from the argument (a trusted EDNS0 option)
    assert d.profile_for("192.168.1.10", "3C-22-FB-AA-BB-CC")[1] == "child"
    assert d.profile_for("127.0.0.1", "3c:22:fb:aa:bb:cc")[1] == "child"
    assert d.profile_for("192.168.1.10", "02:00:00:00:00:99")[1] == "adult"   # unknown MAC: IP still counts
    assert d.profile_for("192.168.1.10", "garbage")[1] == "adult"
    assert d.profile_for("192.168.1.10", "3c:22:fb:aa:bb:c_")[1] == "adult"
    assert d.profile_for("192.168.1.10", ["not", "hashable"])[1] == "adult"  # type: ignore[arg-type]
    assert d.profile_for(None)[1] == "default"  # type: ignore[arg-type]
    # no MAC known for the address yet
    assert d.profile_for("192.168.1.23")[1] == "teen"
    d.refresh_neighbours(neighbours.parse_proc_arp(PROC_ARP), {})
    assert d.profile_for("192.168.1.23")[0].name == "Emma iPad"
    assert d.mac_of("192.168.1.23") == "3c:22:fb:aa:bb:cc"
    # the same device over IPv6 (privacy address learnt from ip neigh) and via a lease only
    d.refresh_neighbours(read_ip_neigh("2001:db8:1::1234 dev eth0 lladdr 3c:22:fb:aa:bb:cc STALE\n"),
                         {"192.168.1.99": ("3c:22:fb:aa:bb:cc", "Emmas-iPad")})
    assert d.profile_for("2001:db8:1::1234")[1] == "child"
    assert d.profile_for("192.168.1.99")[1] == "child"
    assert d.profile_for("::ffff:192.168.1.99")[1] == "child"
    assert d.profile_for("192.168.1.23")[1] == "teen"    # that neighbour entry is gone
    assert d.hostname("192.168.1.99") == "Emmas-iPad" and d.hostname("::ffff:192.168.1.99") == "Emmas-iPad"
    assert d.hostname("192.168.1.10") == "" and d.hostname("junk") == ""


def test_neighbour_table_beats_lease_for_mac():
    d = ClientDirectory(_devices())
    d.refresh_neighbours({"192.168.1.30": "3C:22:FB:AA:BB:CC"}, {"192.168.1.30": ("02:00:00:00:00:01", "old")})
    assert d.mac_of("192.168.1.30") == "3c:22:fb:aa:bb:cc"
    assert d.profile_for("192.168.1.30")[1] == "child"
    assert d.hostname("192.168.1.30") == "old"
    assert d.mac_of("192.168.1.31") is None and d.mac_of("junk") is None


def test_refresh_generation_and_junk():
    d = ClientDirectory(_devices())
    assert d.generation == 0
    d.refresh_neighbours({"192.168.1.30": "3c:22:fb:aa:bb:cc"}, {})
    assert d.generation == 1
    d.refresh_neighbours({"192.168.1.30": "3C:22:FB:AA:BB:CC"}, {})   # same content
    assert d.generation == 1
    d.refresh_neighbours({"junk": "3c:22:fb:aa:bb:cc", "10.0.0.1": "junk", 5: None},
                         {"10.0.0.2": "not a tuple", "10.0.0.3": (None, None), "x": ("a", "b")})
    assert d.generation == 2
    assert d.mac_of("10.0.0.1") is None and d.hostname("10.0.0.3") == ""


def test_ipv4_mapped_cidr_device():
    d = ClientDirectory([Device("Mapped", "cidr", "::ffff:10.9.0.0/112", profile="teen")])
    assert d.profile_for("10.9.3.4")[1] == "teen"
    assert d.profile_for("::ffff:10.9.3.4")[1] == "teen"
    assert d.profile_for("10.8.3.4")[1] == "default"


def test_performance():
    devices = []
    for i in range(500):
        kind = ("ip", "mac")[i % 2]
        mac = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
        value = f"10.{i // 250}.{i % 250}.{1 + i % 200}" if kind == "ip" else mac
        devices.append(Device(f"dev {i}", kind, value, profile="teen"))
    prefixes = (16, 20, 22, 23, 24, 25, 26, 27, 28, 29)
    for i in range(50):
        devices.append(Device(f"room {i}", "cidr", f"172.{16 + i % 16}.{i * 4}.0/{prefixes[i % len(prefixes)]}",
                              profile="school-pupil"))
    d = ClientDirectory(devices)
    neigh = {f"192.168.{i // 250}.{i % 250}": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(500)}
    d.refresh_neighbours(neigh, {})
    rng = random.Random(3)
    addresses = [f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(300)]
    addresses += [f"10.{rng.randrange(2)}.{rng.randrange(250)}.{rng.randrange(1, 201)}" for _ in range(300)]
    addresses += list(neigh)[:200] + ["8.8.8.8", "2001:db8::1", "::ffff:172.16.0.1"]
    calls = 100_000
    start = time.perf_counter()
    for i in range(calls):
        d.profile_for(addresses[i % len(addresses)])
    elapsed = time.perf_counter() - start
    print(f"\n{calls} profile_for calls over 500 devices + 50 networks: {elapsed:.3f} s "
          f"({elapsed / calls * 1e6:.2f} µs each)")
    assert elapsed < 3.0
    assert d.profile_for("192.168.0.3")[0].name == "dev 3"
    assert d.profile_for("172.16.0.1")[1] == "school-pupil"


# ---------------------------------------------------------------------------------------------
# the config section

def test_config_section():
    cfg = ClientsConfig()
    assert cfg.refresh_interval == 30 and cfg.edns_mac and cfg.neighbour_table
    assert "/tmp/hosts/odhcpd" in cfg.lease_files
    built = build_section(ClientsConfig, "refresh_interval: 2m\ntrusted_forwarders: ['192.168.1.1']\n", "c.yaml")
    assert built.refresh_interval == 120 and built.trusted_forwarders == ["192.168.1.1/32"]
    with pytest.raises(ConfigError) as err:
        build_section(ClientsConfig, "refresh_interval: 1s\ntrusted_forwarders: [nope]\n", "c.yaml")
    assert len(err.value.problems) == 2
