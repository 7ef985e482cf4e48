"""Shared fixtures: the test data (tests/data, and the optional large shared data set), a running `hearth dns`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"


def shared_data_dir() -> Path:
    env = os.environ.get("HEARTH_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The fixtures every checkout carries (real lists, cut to slices; see tests/data/README.md)."""
    return TEST_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full shared data set, beside the checkout: only for large-data tests, which skip without it."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"large-data test: the shared data set is not at {path} (set HEARTH_SHARED_DATA to run it)")
    return path


class RunningEngine:
    """`hearth dns` in a subprocess, listening on 127.0.0.1 (and ::1) on a free port."""

    def __init__(self, tmp: Path, config: dict, command: str = "dns", env: Optional[dict] = None):
        self.tmp = tmp
        self.env = env
        tmp.mkdir(parents=True, exist_ok=True)
        self.data_dir = tmp / "data"
        config = {"data_dir": str(self.data_dir), "log_level": "debug", **config}
        config.setdefault("dns", {}).setdefault("listen", ["127.0.0.1:0"])
        # never the embedded public upstreams: tests talk to loopback only (port 9 = discard, nobody answers)
        config["dns"].setdefault("upstreams", ["udp://127.0.0.1:9"])
        # the bundled lists cost a compile at first start: only tests about blocking turn them on
        config.setdefault("blocking", {}).setdefault("starter_lists", False)
        self.config_path = tmp / "hearth.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = tmp / "engine.log"
        self.command = command
        self.proc: Optional[subprocess.Popen] = None
        self.ports: list[tuple[str, int]] = []

    def start(self, timeout: float = 15.0) -> RunningEngine:
        state = self.data_dir / "engine.json"
        if state.exists():
            state.unlink()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "resolver.cli", self.command, "-c", str(self.config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=str(self.tmp),
                                     env={**os.environ, **self.env} if self.env else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hearth exited with {self.proc.returncode}:\n{self.log()}")
            if state.exists():
                data = json.loads(state.read_text())
                self.ports = [_split(a) for a in data["dns"]]
                return self
            time.sleep(0.05)
        raise AssertionError(f"hearth did not start in {timeout}s:\n{self.log()}")

    @property
    def port(self) -> int:
        return self.ports[0][1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rewrite_config(self, config: dict) -> None:
        config = {"data_dir": str(self.data_dir), "log_level": "debug", **config}
        config.setdefault("dns", {}).setdefault("upstreams", ["udp://127.0.0.1:9"])
        config.setdefault("blocking", {}).setdefault("starter_lists", False)
        self.config_path.write_text(yaml.safe_dump(config))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        return code


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


@pytest.fixture
def start_engine(tmp_path):
    """Factory: start_engine(config_dict) -> RunningEngine (stopped at teardown)."""
    engines: list[RunningEngine] = []

    def factory(config: dict, command: str = "dns", env: Optional[dict] = None, timeout: float = 15.0
                ) -> RunningEngine:
        eng = RunningEngine(tmp_path / f"engine{len(engines)}", config, command, env)
        engines.append(eng)
        return eng.start(timeout)

    yield factory
    for eng in engines:
        eng.stop()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a free loopback port for the whole test session (see tests/pg.py);
    ``postgres.new_database()`` gives each test its own empty database."""
    from tests.pg import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres.new_database()
