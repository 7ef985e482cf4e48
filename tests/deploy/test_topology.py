"""Network topologies in throw-away namespaces (root only; skipped cleanly otherwise).

* OpenWrt: the router's dnsmasq keeps answering the LAN and forwards to Hearth on 127.0.0.1:5353
  with ``--add-mac``; Hearth applies the profile bound to each client's MAC address.
* Bypass hardening: nftables on the router sends a client's DNS for an "outside" resolver to the
  router's own DNS (DNAT) and rejects DNS-over-TLS (TCP 853) to the outside.

Every address lives in namespaces the test creates (10.77.x.x, 10.78.x.x, 198.51.100.0/24 in a
third namespace standing for "the internet"); the upstream is a dnsmasq inside the router namespace.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import yaml

from tests.deploy.conftest import REPO, need_tool, run_cli

KIDS_MAC = "02:00:5e:10:00:0a"
GUEST_MAC = "02:00:5e:10:00:0b"
NFT_RULES = REPO / "deploy" / "nftables" / "hearth-dns-intercept.nft"


def dig(lab, ns: str, server: str, name: str, *extra: str) -> tuple[str, list[str]]:
    res = lab.run(ns, "dig", f"@{server}", name, "A", "+noall", "+comments", "+answer", "+time=2", "+tries=2",
                  *extra, check=False)
    status = re.search(r"status: ([A-Z]+)", res.stdout)
    answers = [line.split()[-1] for line in res.stdout.splitlines() if line and not line.startswith(";")
               and "\tA\t" in line]
    return (status.group(1) if status else "TIMEOUT"), answers


def dnsmasq(lab, ns: str, tmp: Path, label: str, *args: str):
    return lab.start(ns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                     "--bind-interfaces", f"--pid-file={tmp / (label + '.pid')}", "--log-facility=-",
                     "--user=root", *args, log=str(tmp / f"{label}.log"))


def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_openwrt_topology_dnsmasq_add_mac_selects_the_device_profile(lab, tmp_path):
    need_tool("dnsmasq", "dnsmasq-base")
    need_tool("dig", "bind9-dnsutils")
    router, kid, guest = lab.ns("router"), lab.ns("kid"), lab.ns("guest")
    lab.link(router, "10.77.1.1/24", kid, "10.77.1.2/24", b_mac=KIDS_MAC)
    lab.link(router, "10.77.2.1/24", guest, "10.77.2.2/24", b_mac=GUEST_MAC)

    # the "internet": a dnsmasq on the router's loopback that knows two names
    dnsmasq(lab, router, tmp_path, "upstream", "--port=5399", "--listen-address=127.0.0.1",
            "--address=/kids-blocked.example/192.0.2.77", "--address=/www.example.com/192.0.2.80")
    # Hearth on 127.0.0.1:5353, as docs/openwrt.md sets it up
    data = tmp_path / "data"
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(data), "log_level": "debug",
        "dns": {"listen": ["127.0.0.1:5353"], "upstreams": ["udp://127.0.0.1:5399"]},
        "blocking": {"starter_lists": False}, "web": {"enabled": False}}))
    for args in (("profile", "add", "Kids", "--block", "kids-blocked.example", "--block-mode", "null"),
                 ("device", "add", "Kid tablet", "--mac", KIDS_MAC, "--profile", "Kids")):
        res = run_cli(*args, config=config)
        assert res.returncode == 0, res.stderr
    lab.start(router, sys.executable, "-m", "resolver.cli", "dns", "-c", str(config), log=str(tmp_path / "hearth.log"),
              env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    wait_for(lambda: (data / "engine.json").exists(), what=f"Hearth to start: {tmp_path / 'hearth.log'}")
    # the router's dnsmasq: answers the LAN, forwards everything to Hearth with the client's MAC
    dnsmasq(lab, router, tmp_path, "router", "--port=53", "--listen-address=10.77.1.1,10.77.2.1",
            "--server=127.0.0.1#5353", "--strip-mac", "--add-mac", "--cache-size=0")
    wait_for(lambda: dig(lab, guest, "10.77.2.1", "www.example.com")[1] == ["192.0.2.80"], what="dnsmasq")

    guest_answer = dig(lab, guest, "10.77.2.1", "kids-blocked.example")
    kid_answer = dig(lab, kid, "10.77.1.1", "kids-blocked.example")
    log = (tmp_path / "hearth.log").read_text(errors="replace")
    assert guest_answer == ("NOERROR", ["192.0.2.77"]), log[-3000:]     # default profile: not blocked
    assert kid_answer == ("NOERROR", ["0.0.0.0"]), log[-3000:]          # the MAC's profile: blocked
    assert dig(lab, kid, "10.77.1.1", "www.example.com") == ("NOERROR", ["192.0.2.80"])

    # the query log keeps who asked (the forwarder's address, the device known by its MAC)
    res = run_cli("stats", "--json", config=config)
    if res.returncode == 0:
        assert json.loads(res.stdout)["blocked"] >= 1


def test_nftables_redirects_outside_dns_and_rejects_dot(lab, tmp_path):
    need_tool("nft", "nftables")
    need_tool("dnsmasq", "dnsmasq-base")
    need_tool("dig", "bind9-dnsutils")
    router, client, outside = lab.ns("router"), lab.ns("client"), lab.ns("outside")
    lan_if, _ = lab.link(router, "10.78.1.1/24", client, "10.78.1.2/24")
    lab.link(router, "198.51.100.1/24", outside, "198.51.100.53/24")
    lab.run(client, "ip", "route", "add", "default", "via", "10.78.1.1")
    lab.run(outside, "ip", "route", "add", "10.78.1.0/24", "via", "198.51.100.1")
    lab.run(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    # the router's DNS (stands for Hearth or the dnsmasq in front of it) and an outside resolver
    dnsmasq(lab, router, tmp_path, "router", "--port=53", "--listen-address=10.78.1.1",
            "--address=/probe.example/10.0.0.1")
    dnsmasq(lab, outside, tmp_path, "outside", "--port=53", "--listen-address=198.51.100.53",
            "--address=/probe.example/10.0.0.2")
    # a DNS-over-TLS port on the outside resolver (a plain TCP listener is enough)
    lab.start(outside, sys.executable, "-c", "import socket, time\n"
              "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              "s.bind(('198.51.100.53', 853)); s.listen(8)\n"
              "while True:\n    c, _ = s.accept(); c.close()\n")

    def dot_connects() -> str:
        res = lab.run(client, sys.executable, "-c", "import socket\ntry:\n"
                      "    socket.create_connection(('198.51.100.53', 853), timeout=2).close(); print('open')\n"
                      "except ConnectionRefusedError: print('refused')\n"
                      "except OSError as e: print('error', e)\n", check=False)
        return res.stdout.strip()

    # without the rules the client reaches the outside resolver and its DoT port
    wait_for(lambda: dig(lab, client, "198.51.100.53", "probe.example")[1] == ["10.0.0.2"], what="outside dns")
    assert dig(lab, client, "10.78.1.1", "probe.example")[1] == ["10.0.0.1"]
    assert wait_for(lambda: dot_connects() == "open", what="DoT listener") is True

    # the documented rules, loaded as docs/deploy.md says (the LAN interface given as a define)
    res = lab.run(router, "nft", "-D", f"LAN={lan_if}", "-f", str(NFT_RULES), check=False)
    assert res.returncode == 0, res.stderr
    assert dig(lab, client, "198.51.100.53", "probe.example") == ("NOERROR", ["10.0.0.1"])       # UDP, redirected
    assert dig(lab, client, "198.51.100.53", "probe.example", "+tcp") == ("NOERROR", ["10.0.0.1"])  # and TCP
    assert dig(lab, client, "10.78.1.1", "probe.example") == ("NOERROR", ["10.0.0.1"])            # direct: unchanged
    assert dot_connects() == "refused"                                                             # DoT: rejected
    # the router itself is not redirected (Hearth must reach its upstreams)
    assert dig(lab, router, "198.51.100.53", "probe.example") == ("NOERROR", ["10.0.0.2"])
