"""SIGHUP (`systemctl reload`) leaves the web UI serving (issue 14, item 5), through `hearth run`.

A good file is applied without a restart; a broken file leaves the previous configuration in force and its
error is shown on the admin pages and in /healthz until the file is fixed. The DNS engine reloads alongside."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import requests
import yaml

from tests.dnsclient import answers, ask
from tests.dnsfake import FakeDNS
from tests.e2e.test_supervisor import _wait, free_port

PASSWORD = "correct horse battery"


def _get(url: str):
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def _web_pid(log_path) -> int:
    pids = re.findall(r"started web ui \(pid (\d+)\)", log_path.read_text())
    assert pids, log_path.read_text()
    return int(pids[-1])


def test_sighup_keeps_the_web_ui_serving(tmp_path):
    with FakeDNS({"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"]}) as upstream:
        dns_port, web_port = free_port(), free_port()
        base = f"http://127.0.0.1:{web_port}"
        cfg = {"data_dir": str(tmp_path / "data"), "blocking": {"starter_lists": False},
               "dns": {"listen": [f"127.0.0.1:{dns_port}"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
               "web": {"listen": f"127.0.0.1:{web_port}", "hotline_number": "111 222", "hotline_name": "First line"}}
        path = tmp_path / "hearth.yaml"
        path.write_text(yaml.safe_dump(cfg))
        made = subprocess.run([sys.executable, "-m", "resolver.cli", "admin", "create", "admin", "--password-stdin",
                               "-c", str(path)], input=PASSWORD, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        log_path = tmp_path / "run.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen([sys.executable, "-m", "resolver.cli", "run", "-c", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            _wait(lambda: (r := _get(f"{base}/healthz")) is not None and r.ok, timeout=30)
            web_pid = _web_pid(log_path)
            assert "111 222" in _get(f"{base}/blocked").text

            # a good file: applied, same process
            cfg["web"]["hotline_number"] = "333 444"
            path.write_text(yaml.safe_dump(cfg))
            proc.send_signal(signal.SIGHUP)
            _wait(lambda: (r := _get(f"{base}/blocked")) is not None and "333 444" in r.text, timeout=15)
            assert _web_pid(log_path) == web_pid and "config_error" not in _get(f"{base}/healthz").json()

            # a broken file: still serving, on the previous configuration, and saying what is wrong
            path.write_text(yaml.safe_dump({**cfg, "web": {**cfg["web"], "hotline_numbr": "999"}}))
            proc.send_signal(signal.SIGHUP)
            health = _wait(lambda: (r := _get(f"{base}/healthz")) is not None and "config_error" in r.json()
                           and r.json(), timeout=15)
            assert health["status"] == "ok" and "web.hotline_numbr" in health["config_error"]
            assert "333 444" in _get(f"{base}/blocked").text
            session = requests.Session()
            page = session.get(f"{base}/login", timeout=5).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            home = session.post(f"{base}/login", data={"username": "admin", "password": PASSWORD,
                                                       "csrf_token": token}, timeout=5)
            assert home.ok and "/login" not in home.url
            assert "The configuration file has errors" in home.text and "web.hotline_numbr" in home.text
            time.sleep(1.0)   # a crash-and-restart would show by now
            assert _web_pid(log_path) == web_pid
            assert answers(ask("www.example.com", "A", dns_port)) == ["192.0.2.10"]   # DNS kept going too

            # fixed: the banner goes
            path.write_text(yaml.safe_dump(cfg))
            proc.send_signal(signal.SIGHUP)
            _wait(lambda: (r := _get(f"{base}/healthz")) is not None and "config_error" not in r.json(), timeout=15)
            assert "The configuration file has errors" not in session.get(f"{base}/", timeout=5).text
            assert _web_pid(log_path) == web_pid
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        text = log_path.read_text()
        assert "web ui exited" not in text
        assert "reload refused, the web UI keeps the running config" in text
