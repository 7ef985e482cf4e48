"""Fixtures for the deployment and operations tests: a fake upstream, the `hearth` CLI, a config writer."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.dnsfake import FakeDNS

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "resolver.cli"]
RECORDS = {n: [f"{n} 300 IN A 192.0.2.77"] for n in ("www.example.com.", "ok.example.org.", "site.example.")}


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


def run_cli(*args, config=None, timeout=60, env=None):
    argv = CLI + list(args) + (["--config", str(config)] if config else [])
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def need_root(reason: str = "needs root") -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{reason}: not running as root")


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"`{name}` is not installed (Debian package {package}; tests/run.sh installs it)")
    return path


@pytest.fixture
def lab():
    """Throw-away network namespaces (tests/deploy/netns.py); skips when not root or without `ip netns`."""
    from tests.deploy.netns import Lab, require_netns

    require_netns()
    topology = Lab()
    try:
        yield topology
    finally:
        topology.close()
