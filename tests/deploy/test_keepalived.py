"""deploy/keepalived: the health check keepalived runs answers for a live Hearth and fails for a dead one;
the example configuration passes `keepalived -t` where Debian's keepalived is installed."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "deploy" / "keepalived" / "hearth-check.sh"
CONF = REPO / "deploy" / "keepalived" / "keepalived.conf"


def _check(port: int) -> int:
    env = {**os.environ, "HEARTH_CHECK_ADDRESS": "127.0.0.1", "HEARTH_CHECK_PORT": str(port)}
    return subprocess.run(["sh", str(CHECK)], env=env, timeout=30, capture_output=True).returncode


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig (Debian's bind9-dnsutils) is not installed")
def test_the_health_check_follows_the_engine(start_engine):
    eng = start_engine({})
    assert _check(eng.port) == 0
    eng.stop()
    assert _check(eng.port) == 1
    with socket.socket() as s:          # a port nobody answers on
        s.bind(("127.0.0.1", 0))
        assert _check(s.getsockname()[1]) == 1


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed (apt install keepalived)")
def test_the_example_configuration_passes_keepalived_check(tmp_path):
    import getpass

    # as installed, but with the check where this checkout has it and run as the user running the tests
    conf = tmp_path / "keepalived.conf"
    conf.write_text(CONF.read_text().replace("/usr/local/lib/hearth/hearth-check.sh", str(CHECK))
                    .replace("script_user hearth", f"script_user {getpass.getuser()}"))
    r = subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
