"""Config loading: defaults, every error names file, line and key; generated docs stay current."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resolver.service import config as cfgmod
from resolver.service.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]

CONTRACT = """\
data_dir: ./hearth-data
timezone: Asia/Ho_Chi_Minh
dns:
  listen: ["127.0.0.1:5300", "[::1]:5300"]
  upstreams: ["udp://127.0.0.1:5399", "tcp://127.0.0.1:5399", "tls://1.1.1.1#cloudflare-dns.com", "https://dns.example/dns-query#192.0.2.1"]
  allow_clients: ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"]
web:
  listen: "127.0.0.1:8080"
"""


def _problems(tmp_path, text):
    path = tmp_path / "hearth.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    return [p.replace(str(path), "F") for p in info.value.problems]


def test_embedded_defaults_without_a_file():
    c = load_config(None)
    assert c == Config()
    assert c.dns.listen == ["127.0.0.1:5300", "[::1]:5300"] and c.web.listen == "127.0.0.1:8080"


def test_contract_keys_load(tmp_path):
    path = tmp_path / "hearth.yaml"
    path.write_text(CONTRACT)
    c = load_config(str(path))
    assert c.dns.upstreams[2] == "tls://1.1.1.1#cloudflare-dns.com"
    assert c.timezone == "Asia/Ho_Chi_Minh" and "fe80::/10" in c.dns.allow_clients


@pytest.mark.parametrize("text,expected", [
    ("dns:\n  upstream: [udp://127.0.0.1]\n", "F:2: dns.upstream: unknown key; did you mean 'upstreams'?"),
    ("dns:\n  listen: ['127.0.0.1']\n", "F:2: dns.listen[0]: listen address '127.0.0.1' needs a port"),
    ("cache:\n  size: lots\n", "F:2: cache.size: expected a whole number, got 'lots'"),
    ("cache:\n  max_ttl: 5 fortnights\n", "F:2: cache.max_ttl: bad duration"),
    ("timezone: Mars/Olympus\n", "F:1: timezone: unknown time zone 'Mars/Olympus'"),
    ("dns:\n  upstreams:\n    - udp://127.0.0.1\n    - ftp://x\n", "F:4: dns.upstreams[1]: unsupported scheme 'ftp'"),
    ("dns:\n  allow_clients: [10.0.0.0/33]\n", "F:2: dns.allow_clients[0]: not an IP network"),
    ("dns:\n  upstream_strategy: random\n", "F:2: dns.upstream_strategy: must be one of failover, fastest"),
    ("local_records:\n  - name: x.lan\n    type: A\n    value: nope\n", "F:2: local_records[0]: not an IPv4 address"),
    ("dns: [1, 2]\n", "F:1: dns: expected a mapping of keys"),
    ("dns:\n  listen: [\n", "F:3: (syntax)"),
    ("cache:\n  min_ttl: 2h\n  max_ttl: 1h\n", "F:2: cache: min_ttl (7200s) is larger than max_ttl (3600s)"),
])
def test_errors_name_file_line_and_key(tmp_path, text, expected):
    problems = _problems(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_all_problems_are_reported_at_once(tmp_path):
    problems = _problems(tmp_path, "log_level: loud\ncache:\n  size: -1\n  bogus: 1\n")
    assert [p.split(":")[1] for p in problems] == ["1", "3", "4"]


def test_check_config_command_and_daemon_refusal(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(CONTRACT)
    run = [sys.executable, "-m", "resolver.cli"]
    out = subprocess.run(run + ["check-config", str(good)], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok"
    bad = tmp_path / "bad.yaml"
    bad.write_text("dns:\n  listen: ['127.0.0.1:5300']\n  upstreams: [udp://127.0.0.1:53]\n  alow_clients: []\n")
    out = subprocess.run(run + ["check-config", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stdout.strip() == f"{bad}:4: dns.alow_clients: unknown key; did you mean 'allow_clients'?"
    env_run = subprocess.run(run + ["dns"], capture_output=True, text=True, timeout=20,
                             env={**__import__("os").environ, "HEARTH_CONFIG": str(bad)})
    assert env_run.returncode == 2 and f"{bad}:4: dns.alow_clients" in env_run.stderr


def test_generated_reference_and_example_are_current():
    assert (REPO / "docs" / "config-reference.md").read_text() == cfgmod.reference(), \
        "run: hearth config reference --write docs/config-reference.md"
    assert (REPO / "docs" / "hearth.example.yaml").read_text() == cfgmod.example(), \
        "run: hearth config example --write docs/hearth.example.yaml"


def test_example_file_is_a_valid_config():
    assert load_config(str(REPO / "docs" / "hearth.example.yaml")).local_records[0].name == "hearth.lan"


def test_every_option_is_documented():
    from resolver.base.configspec import iter_options
    for dotted, field, _hint, _section in iter_options(Config):
        assert field.metadata.get("help"), f"{dotted} has no help text"


def test_wizard_settings_apply_only_where_the_file_keeps_the_default():
    from resolver.service.config import Config
    from resolver.engine.dnsconfig import DnsConfig
    from resolver.service.settings import with_settings

    chosen = {"upstreams": ["udp://1.1.1.3", "udp://1.0.0.3"], "timezone": "Asia/Bangkok"}
    cfg = with_settings(Config(), chosen)
    assert cfg.dns.upstreams == ["udp://1.1.1.3", "udp://1.0.0.3"] and cfg.timezone == "Asia/Bangkok"
    mine = Config(timezone="UTC", dns=DnsConfig(upstreams=["udp://127.0.0.1:5353"]))
    assert with_settings(mine, chosen) == mine                  # the file wins
    assert with_settings(Config(), {"upstreams": ["ftp://x"], "timezone": "Mars/Olympus"}) == Config()
    assert with_settings(Config(), {}) == Config()
