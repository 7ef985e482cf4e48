"""Start-up failures say what and where, exit non-zero, and do not loop for ever (issue 14, item 6).

Through the real commands: `hearth dns`, `hearth run` (and the supervisor it becomes), `hearth check-config`
and `hearth doctor`, with a port taken by another program and a data directory Hearth cannot use."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import yaml

from tests.e2e.test_supervisor import free_port

HEARTH = [sys.executable, "-m", "resolver.cli"]


def _config(tmp_path, dns_port: int, **extra) -> str:
    cfg = {"data_dir": str(tmp_path / "data"), "blocking": {"starter_lists": False},
           "dns": {"listen": [f"127.0.0.1:{dns_port}"], "upstreams": ["udp://127.0.0.1:9"]},
           "web": {"listen": f"127.0.0.1:{free_port()}"}, **extra}
    path = tmp_path / "hearth.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture
def taken_port():
    """A UDP port on 127.0.0.1 held by 'another DNS server' (this test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _run(argv, timeout=60, **kw):
    return subprocess.run(HEARTH + argv, capture_output=True, text=True, timeout=timeout, **kw)


def test_port_in_use_is_one_line_naming_the_address(tmp_path, taken_port):
    path = _config(tmp_path, taken_port)
    t0 = time.monotonic()
    out = _run(["dns", "-c", path])
    assert out.returncode == 1
    assert time.monotonic() - t0 < 30
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith(f"hearth: cannot listen on 127.0.0.1:{taken_port}/udp: address already in use "
                                "(another DNS server such as dnsmasq or systemd-resolved")
    assert "Traceback" not in out.stderr

    out = _run(["check-config", path])   # said "ok" before: now it catches the port in advance
    assert out.returncode == 1
    assert f"dns.listen: cannot listen on 127.0.0.1:{taken_port}/udp: address already in use" in out.stdout
    assert "ok" not in out.stdout.split()

    out = _run(["doctor", "-c", path, "--skip", "upstreams"])
    assert out.returncode == 1 and f"127.0.0.1:{taken_port}: in use" in out.stdout

    t0 = time.monotonic()
    out = _run(["run", "-c", path])   # no restart loop: it stops at once with the same line
    assert out.returncode == 1 and time.monotonic() - t0 < 30
    assert f"hearth: cannot listen on 127.0.0.1:{taken_port}/udp: address already in use" in out.stderr


def test_unusable_data_dir_names_the_path(tmp_path):
    path = _config(tmp_path, free_port())
    db = tmp_path / "data" / "hearth.db"
    db.mkdir(parents=True)   # the store's file cannot be opened ("unable to open database file" before)
    out = _run(["dns", "-c", path])
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"hearth: cannot open the store {db}: unable to open database file" in out.stderr.strip().splitlines()[-1]

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = _config(tmp_path, free_port(), data_dir=str(blocker / "data"))
    out = _run(["dns", "-c", path])
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"hearth: data directory {blocker / 'data'} does not exist and cannot be created")
    out = _run(["check-config", path])
    assert out.returncode == 1 and f"data_dir: data directory {blocker / 'data'}" in out.stdout
    out = _run(["doctor", "-c", path, "--skip", "upstreams"])
    assert out.returncode == 1 and f"data directory {blocker / 'data'} does not exist" in out.stdout


def test_check_config_is_ok_when_all_is_free(tmp_path):
    out = _run(["check-config", _config(tmp_path, free_port())])
    assert out.returncode == 0 and out.stdout.strip() == "ok"


def test_supervisor_gives_up_after_repeated_fast_failures(tmp_path, taken_port):
    """What `hearth run` execs: when the engine keeps failing at start it gives up and exits non-zero."""
    path = _config(tmp_path, taken_port)
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "resolver.ops.supervisor", "--config", path, "--no-web"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert time.monotonic() - t0 < 100
    assert out.stderr.count(f"hearth: cannot listen on 127.0.0.1:{taken_port}/udp") == 5
    assert "dns engine failed 5 times in a row" in out.stderr and "Giving up" in out.stderr
