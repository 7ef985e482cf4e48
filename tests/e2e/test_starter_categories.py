"""A fresh install, offline, no feed: the bundled starter lists give every category a preset ticks some
names, so a child's social network, violence, drugs and dating sites are blocked through `hearth run`.

The child's tablet is 127.0.0.2; 127.0.0.1 is a parent's phone in a profile that blocks only malware, so
the same names resolve there (the block is the child's ticks, not a list blocking everyone).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from resolver.policy.profiles import PRESETS
from tests.dnsclient import answers, ask, ede
from tests.dnsfake import FakeDNS

DATA = Path(__file__).resolve().parents[2] / "blocklists" / "data"
CLI = [sys.executable, "-m", "resolver.cli"]
CHILD, PARENT = "127.0.0.2", "127.0.0.1"


def first_name(file: str) -> str:
    """The first listed name of a bundled list (the test follows the data, not a copy of it)."""
    for line in (DATA / file).read_text().splitlines():
        if line.strip() and not line.startswith(("#", "!")):
            return line.strip().lstrip("|").rstrip("^")
    raise AssertionError(f"{file} lists nothing")


# category -> a name of that category's bundled list
SAMPLES = {"social": "facebook.com", "violence": first_name("violence-ut1.txt"),
           "drugs": first_name("drugs-ut1.txt"), "dating": first_name("dating-ut1.txt"),
           "games": "roblox.com", "video": "youtube.com", "trackers": first_name("trackers-hagezi-tiktok.txt")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def upstream():
    records = {f"{n}.": [f"{n}. 300 IN A 192.0.2.{i + 10}"] for i, n in enumerate(SAMPLES.values())}
    with FakeDNS(records) as fake:
        yield fake


def cli(engine, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(CLI + list(args) + ["-c", str(engine.config_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def eventually(check, timeout: float = 10.0):
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.1)


def test_fresh_install_child_preset_blocks_social_violence_drugs_dating_from_bundled_lists(upstream, start_engine):
    # the bundled defaults: starter lists on, no `lists:`, no feed, nothing downloaded
    eng = start_engine({"timezone": "UTC", "blocking": {"starter_lists": True},
                        "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                        "web": {"listen": f"127.0.0.1:{_free_port()}"}}, command="run")
    status = cli(eng, "lists", "status").stdout
    for list_id in ("starter-social", "starter-violence", "starter-drugs", "starter-dating", "starter-games",
                    "starter-video", "starter-trackers", "starter-phishing", "starter-scam"):
        assert list_id in status, status

    def blocked(name: str, source: str) -> bool:
        reply = ask(name, "A", eng.port, source=source)
        return reply is not None and answers(reply, "A") == ["0.0.0.0"]

    # a device nobody has set up (the default profile): what harms minors is blocked, but a grown-up's
    # phone keeps its social networks, games and video on day one
    eventually(lambda: blocked(SAMPLES["drugs"], PARENT))
    for category in ("violence", "dating", "trackers"):
        assert blocked(SAMPLES[category], PARENT), category
    for category in ("social", "games", "video"):
        assert not blocked(SAMPLES[category], PARENT), category

    cli(eng, "profile", "set", "default", "--categories", "malware")
    cli(eng, "profile", "add", "Kids", "--preset", "child")
    cli(eng, "device", "add", "tablet", "--ip", CHILD, "--profile", "Kids")

    eventually(lambda: blocked("facebook.com", CHILD))
    for category in ("social", "violence", "drugs", "dating", "trackers"):
        name = SAMPLES[category]
        reply = ask(name, "A", eng.port, source=CHILD)
        assert answers(reply, "A") == ["0.0.0.0"], (category, name)
        assert ede(reply)[0] == 17 and category in ede(reply)[1], (category, name, ede(reply))
        assert answers(ask(name, "A", eng.port, source=PARENT), "A") != ["0.0.0.0"], (category, name)
    assert blocked("www.facebook.com", CHILD)          # a social network's subdomains too
    # games and video are open for the child preset (9-12), so those names resolve
    for category in ("games", "video"):
        assert answers(ask(SAMPLES[category], "A", eng.port, source=CHILD), "A") != ["0.0.0.0"], category

    # the tick is what blocks: untick social and facebook.com resolves for the child
    cli(eng, "profile", "set", "Kids", "--remove-categories", "social")
    eventually(lambda: not blocked("facebook.com", CHILD))
    assert blocked(SAMPLES["violence"], CHILD)

    # every category any preset ticks has names: doctor finds nothing to flag for any preset
    for preset in PRESETS:
        cli(eng, "profile", "add", f"p-{preset}", "--preset", preset)
    doctor = subprocess.run(CLI + ["doctor", "--json", "--only", "categories", "-c", str(eng.config_path)],
                            capture_output=True, text=True, timeout=60)
    checks = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "categories"]
    assert [c["status"] for c in checks] == ["ok"], checks
