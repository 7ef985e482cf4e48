"""A real Hearth for the browser tests: `hearth dns` (RunningEngine of tests/conftest.py) and `hearth web` on one data
folder and config, a FakeDNS upstream, and Debian's chromium driven by Playwright. Loopback only."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.dnsfake import FakeDNS
from tests.conftest import RunningEngine

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
RECORDS = {"bet.example.": ["bet.example. 300 IN A 192.0.2.77"],
           "www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, tmp: Path, upstream: FakeDNS):
        lists = tmp / "src"
        lists.mkdir(parents=True)
        (lists / "gambling.txt").write_text("bet.example\ncasino.example\n")
        self.web_port = _free_port()
        self.engine = RunningEngine(tmp / "hearth", {
            "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
            "lists": [{"id": "test-gambling", "url": f"file://{lists / 'gambling.txt'}", "format": "domains",
                       "category": "gambling"}],
            "web": {"listen": f"127.0.0.1:{self.web_port}"},
            "log_level": "info",
        })
        self.url = f"http://127.0.0.1:{self.web_port}"
        self.web = None

    def start(self) -> Stack:
        self.engine.start()
        self._web_log = open(self.engine.tmp / "web.log", "ab")
        self.web = subprocess.Popen([sys.executable, "-m", "resolver.cli", "web", "-c", str(self.engine.config_path)],
                                    stdout=self._web_log, stderr=subprocess.STDOUT, cwd=str(self.engine.tmp))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("hearth web did not start:\n" + (self.engine.tmp / "web.log").read_text())

    def stop(self) -> None:
        if self.web is not None:
            self.web.terminate()
            try:
                self.web.wait(10)
            except subprocess.TimeoutExpired:
                self.web.kill()
            self._web_log.close()
        self.engine.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    os.environ.pop("HEARTH_CONFIG", None)
    with FakeDNS(RECORDS) as upstream:
        s = Stack(tmp_path_factory.mktemp("browser"), upstream).start()
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def setup_code(stack) -> str:
    """The one-time setup code, as the person installing Hearth reads it (`hearth admin setup-code`)."""
    res = subprocess.run([sys.executable, "-m", "resolver.cli", "admin", "setup-code", "-c",
                          str(stack.engine.config_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def a_records(reply) -> list[str]:
    """The A addresses of a dnslib reply (none for no reply)."""
    return [str(rr.rdata) for rr in (reply.rr if reply else []) if rr.rtype == 1]


def wait_for(fn, timeout: float = 6.0, what: str = ""):
    """Poll ``fn`` until it returns something true; its value, or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
