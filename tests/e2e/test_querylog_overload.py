"""A node busier than its query log writes: answers go on, and the dashboard says the log is missing queries.

The writer takes `querylog.batch_size` entries a `querylog.flush_interval`; past that rate the ring keeps the
newest `querylog.buffer_size` and counts the rest as dropped. Those queries are missing from the log, the
reports and the time budgets, so the parent's dashboard must say so (with the rate), not stay silent."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import requests
import yaml

from tests.dnsclient import answers, ask, exchange, make_query
from tests.dnsfake import FakeDNS
from tests.e2e.test_supervisor import _wait, free_port

PASSWORD = "correct horse battery"


def _get(url: str):
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


def _stats(path) -> dict:
    out = subprocess.run([sys.executable, "-m", "resolver.cli", "stats", "--json", "-c", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_log_that_cannot_keep_up_is_shown_on_the_dashboard(tmp_path):
    with FakeDNS({"www.example.com.": ["www.example.com. 300 IN A 192.0.2.10"]}) as upstream:
        dns_port, web_port = free_port(), free_port()
        base = f"http://127.0.0.1:{web_port}"
        cfg = {"data_dir": str(tmp_path / "data"), "blocking": {"starter_lists": False},
               "dns": {"listen": [f"127.0.0.1:{dns_port}"], "upstreams": [f"udp://127.0.0.1:{upstream.port}"],
                       "rate_limit": {"qps": 0}},
               # 600 entries a minute and a ring of 100: a burst of 300 before the first flush overflows it
               "querylog": {"buffer_size": 100, "batch_size": 600, "flush_interval": "60s"},
               "web": {"listen": f"127.0.0.1:{web_port}"}}
        path = tmp_path / "hearth.yaml"
        path.write_text(yaml.safe_dump(cfg))
        made = subprocess.run([sys.executable, "-m", "resolver.cli", "admin", "create", "admin", "--password-stdin",
                               "-c", str(path)], input=PASSWORD, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        log = open(tmp_path / "run.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "resolver.cli", "run", "-c", str(path)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            _wait(lambda: (r := _get(f"{base}/healthz")) is not None and r.ok, timeout=30)
            assert answers(ask("www.example.com", "A", dns_port)) == ["192.0.2.10"]
            session = requests.Session()
            page = session.get(f"{base}/login", timeout=5).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            home = session.post(f"{base}/login", data={"username": "admin", "password": PASSWORD,
                                                       "csrf_token": token}, timeout=5)
            assert home.ok and "/login" not in home.url
            assert "The query log is missing queries" not in home.text   # nothing missed yet

            burst = 300
            replies = [exchange(make_query("www.example.com").pack(), dns_port) for _ in range(burst)]
            assert all(r is not None for r in replies)   # every query answered, log or not
            stats = _stats(path)
            assert stats["querylog_pending"] == 100      # the ring is full, waiting for the next flush
            assert stats["querylog_dropped"] == burst + 1 - 100
            page = session.get(f"{base}/", timeout=5).text
            assert "The query log is missing queries" in page
            assert f"{burst + 1 - 100} queries since the DNS engine started were answered but not written" in page
            assert "(10 a second with these settings)" in page   # 600 a minute
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
