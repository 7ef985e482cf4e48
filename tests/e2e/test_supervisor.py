"""`hearth run`: engine and web UI supervised; a crashed child comes back; SIGTERM stops all."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import requests
import yaml

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


def _wait(predicate, timeout=15.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def _engine_pid(data_dir):
    try:
        return json.loads((data_dir / "engine.json").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def test_run_supervises_engine_and_web(tmp_path):
    with FakeDNS({"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"]}) as upstream:
        dns_port, web_port = free_port(), free_port()
        cfg = {"data_dir": str(tmp_path / "data"),
               "dns": {"listen": [f"127.0.0.1:{dns_port}"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
               "web": {"listen": f"127.0.0.1:{web_port}"}}
        path = tmp_path / "hearth.yaml"
        path.write_text(yaml.safe_dump(cfg))
        log = open(tmp_path / "run.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "resolver.cli", "run", "-c", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            first = _wait(lambda: _engine_pid(tmp_path / "data"))
            _wait(lambda: ask("www.example.com", "A", dns_port, timeout=0.5))
            health = _wait(lambda: _get(f"http://127.0.0.1:{web_port}/healthz"))
            assert health == {"status": "ok", "version": health["version"], "engine": True}

            os.kill(first, signal.SIGKILL)  # the engine crashes
            second = _wait(lambda: (_engine_pid(tmp_path / "data") or first) != first
                           and _engine_pid(tmp_path / "data"), timeout=20)
            assert second != first
            reply = _wait(lambda: ask("www.example.com", "A", dns_port, timeout=0.5), timeout=10)
            assert answers(reply) == ["192.0.2.10"]

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            assert not _alive(second)
            assert not (tmp_path / "data" / "engine.json").exists()  # removed by a clean engine stop
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        text = (tmp_path / "run.log").read_text()
        assert "dns engine exited with code -9; restarting" in text


def _get(url):
    try:
        return requests.get(url, timeout=1).json()
    except (requests.RequestException, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is not alive
        return fh.read().split(") ")[1][0] != "Z"
