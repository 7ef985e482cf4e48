"""Prometheus ``/metrics`` in the web process: scraped over HTTP while a real engine answers queries."""
from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import waitress
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from resolver.service.config import load_config
from tests.deploy.conftest import REPO, run_cli
from tests.dnsclient import ask


def scrape(url: str, token: str = "") -> dict:
    auth = base64.b64encode(f"prometheus:{token}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def metrics_server():
    """The metrics blueprint alone, served by waitress on 127.0.0.1 (a real HTTP scrape)."""
    servers = []

    def start(config) -> str:
        from webui.metrics import bp

        app = Flask("metrics-test")
        app.config["HEARTH"] = config
        app.register_blueprint(bp)
        server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2)
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.effective_port}/metrics"

    yield start
    for s in servers:
        s.close()


def test_metrics_scraped_while_the_engine_answers(tmp_path, upstream, start_engine, metrics_server):
    lst = tmp_path / "gambling.txt"
    lst.write_text("casino.example\n")
    eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                        "lists": [{"id": "gamb", "url": f"file://{lst}", "format": "domains",
                                   "category": "gambling"}]})
    assert run_cli("lists", "update", config=eng.config_path).returncode == 0
    for _ in range(4):
        assert ask("www.example.com", "A", eng.port) is not None   # 1 miss, then cache hits
    assert ask("casino.example", "A", eng.port) is not None        # blocked
    url = metrics_server(load_config(str(eng.config_path)))
    s = scrape(url)
    assert value(s, "hearth_engine_up") == 1
    assert value(s, "hearth_dns_queries_total") >= 5
    assert value(s, "hearth_dns_cache_hits_total") >= 3
    assert value(s, "hearth_dns_blocked_total") >= 1
    assert 0 < value(s, "hearth_dns_cache_hit_ratio") <= 1
    up = f"udp://127.0.0.1:{upstream.port}"
    assert value(s, "hearth_upstream_up", upstream=up) == 1
    assert value(s, "hearth_upstream_queries_total", upstream=up) >= 1
    assert value(s, "hearth_upstream_errors_total", upstream=up) == 0
    assert value(s, "hearth_upstream_latency_seconds", upstream=up) < 1
    assert value(s, "hearth_querylog_dropped_total") == 0
    assert 0 < value(s, "hearth_policy_apply_seconds") < 5   # the lists update's rebuild held answers this long
    assert value(s, "hearth_dns_slow_path_duration_seconds_bucket", le="+Inf") >= 2
    labels = {"list": "gamb", "category": "gambling", "origin": "config"}
    assert value(s, "hearth_list_entries", **labels) == 1
    assert 0 <= value(s, "hearth_list_age_seconds", **labels) < 120
    assert value(s, "hearth_list_error", **labels) == 0
    by_category = {k[1]: v for k, v in s.items() if k[0] == "hearth_dns_blocked_by_category_total"}
    if by_category:   # once the engine reports blocked_by_category
        assert sum(by_category.values()) >= 1

    # a password in data_dir/metrics_token makes the page private (HTTP basic authentication)
    (eng.data_dir / "metrics_token").write_text("t0ken\n")
    with pytest.raises(urllib.error.HTTPError) as err:
        scrape(url)
    assert err.value.code == 401
    assert value(scrape(url, "t0ken"), "hearth_engine_up") == 1

    # the engine stops: the page still answers, with engine_up 0 and the lists' ages
    eng.stop()
    s = scrape(url, "t0ken")
    assert value(s, "hearth_engine_up") == 0 and value(s, "hearth_list_entries", **labels) == 1
    assert ("hearth_dns_queries_total", ()) not in s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hearth_web_serves_metrics(tmp_path, upstream, start_engine):
    """The full web UI process (`hearth web`, create_app) serves /metrics without a login, also before setup."""
    eng = start_engine({"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                        "web": {"listen": f"127.0.0.1:{_free_port()}"}})
    config = load_config(str(eng.config_path))
    log = open(tmp_path / "web.log", "wb")
    web = subprocess.Popen([sys.executable, "-m", "resolver.cli", "web", "-c", str(eng.config_path)], stdout=log,
                           stderr=subprocess.STDOUT, cwd=str(REPO))
    try:
        url = f"http://{config.web.listen}/metrics"
        deadline = time.monotonic() + 20
        while True:
            try:
                s = scrape(url)
                break
            except (urllib.error.URLError, ConnectionError):
                if web.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "web.log").read_text()) from None
                time.sleep(0.2)
        assert value(s, "hearth_engine_up") == 1
    finally:
        web.terminate()
        web.wait(10)
        log.close()


def test_metrics_have_no_parent_typed_text_and_a_listen_address_and_token_of_their_own(tmp_path, upstream,
                                                                                      start_engine):
    """Issue 13 item 5: schedule, profile and device names a parent typed never reach /metrics; with
    web.metrics_listen and web.metrics_token it is served apart from the UI, to Bearer-token scrapes only."""
    import datetime

    from resolver.policy.profiles import Device, Profile, Schedule
    from resolver.store.sqlite import open_store

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = ((now + datetime.timedelta(hours=h)).strftime("%H:%M") for h in (-1, 1))
    store = open_store(str(tmp_path / "engine0" / "data"))
    try:
        store.add_profile(Profile(name="Bé Lan secret", block=("homework-skip.example",)))
        store.add_profile(Profile(name="Night of An"))
        store.add_schedule(Schedule(profile="Night of An", name="Giờ ngủ của An", days=("mon", "tue", "wed", "thu",
                                    "fri", "sat", "sun"), start=start, end=end, action="block_all"))
        store.add_device(Device(name="Lan tablet", kind="ip", value="127.0.0.2", profile="Bé Lan secret"))
        store.add_device(Device(name="An laptop", kind="ip", value="127.0.0.3", profile="Night of An"))
    finally:
        store.close()
    ui, scrape_at = _free_port(), _free_port()
    eng = start_engine({"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                        "web": {"listen": f"127.0.0.1:{ui}", "metrics_listen": f"127.0.0.1:{scrape_at}",
                                "metrics_token": "t0k3n-for-prometheus"}})
    for name, source in (("homework-skip.example", "127.0.0.2"), ("www.example.com", "127.0.0.3")):
        reply = ask(name, "A", eng.port, source=source)
        assert reply is not None and [str(r.rdata) for r in reply.rr] == ["0.0.0.0"], name
    log = open(tmp_path / "web.log", "wb")
    web = subprocess.Popen([sys.executable, "-m", "resolver.cli", "web", "-c", str(eng.config_path)], stdout=log,
                           stderr=subprocess.STDOUT, cwd=str(REPO))
    url = f"http://127.0.0.1:{scrape_at}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                for port in (scrape_at, ui):       # both up (the metrics server starts first)
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if web.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "web.log").read_text()) from None
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 401
        req = urllib.request.Request(url, headers={"Authorization": "Bearer t0k3n-for-prometheus"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
        by_category = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "hearth_dns_blocked_by_category_total":
                    by_category[s.labels["category"]] = s.value
        assert by_category.get("custom-rule") == 1 and by_category.get("schedule") == 1, by_category
        for typed in ("Lan", "An laptop", "Giờ", "secret", "Night"):
            assert typed not in text, typed
        assert value(scrape(url, "t0k3n-for-prometheus"), "hearth_engine_up") == 1    # basic auth works too
        # the UI's own address no longer serves /metrics
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/metrics", timeout=5) as resp:
                assert b"hearth_engine_up" not in resp.read()
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        web.terminate()
        web.wait(10)
        log.close()
