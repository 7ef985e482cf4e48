"""OpenWrt files: /etc/config/hearth (UCI) -> hearth.yaml, the procd init script, the dnsmasq hand-off."""
from __future__ import annotations

import os
import subprocess
import sys

import yaml

from resolver.service.config import load_config
from tests.deploy.conftest import REPO, run_cli

OPENWRT = REPO / "deploy" / "openwrt"


def uci2yaml(path):
    return subprocess.run([sys.executable, str(OPENWRT / "hearth-uci2yaml"), str(path)], capture_output=True,
                          text=True, timeout=30)


def test_the_shipped_uci_file_maps_to_a_valid_config(tmp_path):
    res = uci2yaml(OPENWRT / "hearth.config")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "hearth.yaml"
    out.write_text(res.stdout)
    assert run_cli("check-config", str(out)).stdout.strip() == "ok"
    config = load_config(str(out))
    assert config.dns.listen == ["127.0.0.1:5353"] and config.data_dir == "/srv/hearth"
    assert config.web.listen == "0.0.0.0:8080" and config.querylog.retention == 7 * 86400
    assert "127.0.0.0/8" in config.clients.trusted_forwarders


def test_lists_feed_records_and_errors(tmp_path):
    uci = tmp_path / "hearth"
    uci.write_text("""
config hearth 'main'
\toption data_dir '/mnt/usb/hearth'
\tlist listen '127.0.0.1:5353'
\tlist upstream 'tls://1.1.1.1#cloudflare-dns.com'
\toption starter_lists '0'
\toption cache_size '5000'
\toption block_mode "nxdomain"   # a comment

config list 'stevenblack'
\toption url 'https://raw.githubusercontent.com/StevenBlack/hosts/master/hosts'
\toption category 'ads'
\toption mandatory '1'

config record
\toption name 'router.lan'
\toption type 'A'
\toption value '192.168.1.1'
""")
    res = uci2yaml(uci)
    assert res.returncode == 0, res.stderr
    tree = yaml.safe_load(res.stdout)
    assert tree["lists"] == [{"id": "stevenblack", "url": "https://raw.githubusercontent.com/StevenBlack/hosts/master/"
                              "hosts", "category": "ads", "mandatory": True}]
    assert tree["local_records"] == [{"name": "router.lan", "type": "A", "value": "192.168.1.1"}]
    assert tree["cache"]["size"] == 5000 and tree["blocking"] == {"starter_lists": False, "mode": "nxdomain"}
    out = tmp_path / "out.yaml"
    out.write_text(res.stdout)
    assert run_cli("check-config", str(out)).stdout.strip() == "ok"

    uci.write_text("config hearth 'main'\n\toption web_port '80'\n")
    res = uci2yaml(uci)
    assert res.returncode == 1 and f"{uci}:2: unknown option 'web_port'" in res.stderr
    uci.write_text("config hearth 'main'\n\toption starter_lists 'maybe'\n")
    assert "not a boolean" in uci2yaml(uci).stderr


def test_init_script_and_handoff(tmp_path):
    assert subprocess.run(["sh", "-n", str(OPENWRT / "hearth.init")]).returncode == 0
    # the hand-off against a stand-in `uci` that records its calls
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "uci").write_text(f'#!/bin/sh\necho "uci $*" >> "{calls}"\n')
    (bin_dir / "uci").chmod(0o755)
    init = tmp_path / "dnsmasq-init"
    init.write_text(f'#!/bin/sh\necho "dnsmasq $*" >> "{calls}"\n')
    init.chmod(0o755)
    conf = tmp_path / "dnsmasq.conf"
    conf.write_text("# mine\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DNSMASQ_CONF": str(conf),
           "DNSMASQ_INIT": str(init)}
    for _ in range(2):   # idempotent
        res = subprocess.run(["sh", str(OPENWRT / "dnsmasq-handoff.sh")], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    log = calls.read_text()
    for line in ("uci add_list dhcp.@dnsmasq[0].server=127.0.0.1#5353", "uci set dhcp.@dnsmasq[0].noresolv=1",
                 "uci set dhcp.@dnsmasq[0].addmac=1", "uci set dhcp.@dnsmasq[0].cachesize=0", "uci commit dhcp",
                 "dnsmasq restart"):
        assert line in log, line
    assert conf.read_text() == "# mine\nstrip-mac # hearth-handoff\n"
    res = subprocess.run(["sh", str(OPENWRT / "dnsmasq-handoff.sh"), "--undo"], env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0 and conf.read_text() == "# mine\n"
    assert "uci -q delete dhcp.@dnsmasq[0].addmac" in calls.read_text()
