"""A provider (`hearth provider run`) in a subprocess on a free loopback port, on SQLite or a real PostgreSQL."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
import yaml

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS
from tests.webui.conftest import csrf_of

CLI = [sys.executable, "-m", "resolver.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str:
    """The provider's ``database`` setting: empty (SQLite in data_dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    return request.getfixturevalue("postgres_url")


class RunningProvider:
    def __init__(self, tmp: Path, database: str = "", **extra: Any):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tmp / "provider-data"
        cfg = {"data_dir": str(self.data_dir), "database": database, "web": {"listen": f"127.0.0.1:{self.port}"},
               **extra}
        self.config_path = tmp / "provider.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.log_path = tmp / "provider.log"
        self.proc: Optional[subprocess.Popen] = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(CLI + ["provider", *args, "-c", str(self.config_path)], capture_output=True,
                              text=True, timeout=120, cwd=str(self.tmp))

    def token(self, user: str, role: str) -> str:
        out = self.cli("token", "create", "--user", user, "--role", role)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def enrolment_token(self, org: str) -> str:
        out = self.cli("org", "add", org)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def start(self, timeout: float = 60.0) -> RunningProvider:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(CLI + ["provider", "run", "-c", str(self.config_path)], stdout=log,
                                     stderr=subprocess.STDOUT, cwd=str(self.tmp))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"provider exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"provider did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, token: str = "", **kw: Any) -> requests.Response:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)


@pytest.fixture
def provider(tmp_path, database):
    p = RunningProvider(tmp_path / "provider", database)
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# -- appliances ------------------------------------------------------------------------------------------

NAMES = ("casino-report.example", "www.example.com", "ordered-0.example")
POLL = 2


@pytest.fixture
def upstream():
    """A fake upstream DNS server answering the test names."""
    with FakeDNS({f"{n}.": [f"{n}. 300 IN A 192.0.2.77"] for n in NAMES}) as fake:
        yield fake


def eventually(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not true within {timeout}s: {what() if callable(what) else what}"
        time.sleep(0.2)


def appliance_config(provider: RunningProvider, token: str, upstream, web: bool = False) -> dict:
    cfg = {"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
           "provider": {"url": provider.url + "/", "token": token, "poll_interval": f"{POLL}s"}}
    if web:
        cfg["web"] = {"listen": f"127.0.0.1:{free_port()}"}
    return cfg


def blocked(port: int, name: str) -> bool:
    reply = ask(name, "A", port)
    return reply is not None and answers(reply, "A") == ["0.0.0.0"]


def file_report(web: str, url: str, kind: str, message: str, contact: str = "") -> None:
    s = requests.Session()
    page = s.get(f"{web}/report", params={"url": url}, timeout=20)
    assert page.status_code == 200
    r = s.post(f"{web}/report", data={"url": url, "kind": kind, "message": message, "contact": contact,
                                      "csrf_token": csrf_of(page.text)}, timeout=20)
    assert r.status_code == 200, r.text


def yaml_web(engine) -> str:
    """The web UI address of an appliance started with appliance_config(..., web=True)."""
    return yaml.safe_load(engine.config_path.read_text())["web"]["listen"]


def web_up(web: str) -> Optional[str]:
    try:
        return web if requests.get(web + "/report", timeout=5).status_code == 200 else None
    except requests.RequestException:
        return None
