"""Mirrored upstream lists (``mirrors:`` in provider.yaml): a local HTTP server on 127.0.0.1 serves slices of the
hostsVN lists (tests/data/hostsvn, MIT); each publish downloads them (blocklists.fetch, with the deadline) and
publishes them beside the curated lists; an appliance blocks their names; a mirror that fails (5xx, an HTML
page, a server that drips) keeps its last good copy in the feed and shows its error."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from blocklists import feed as feedlib
from blocklists.verify import verify_feed
from tests.provider.conftest import POLL, RunningProvider, blocked, eventually

DATA = Path(__file__).resolve().parents[1] / "data" / "hostsvn"


class ListServer:
    """Serves tests/data/hostsvn on 127.0.0.1; ``mode``: ok, error (500), html, slow (drips the body)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.files = {p.name: p.read_bytes() for p in DATA.glob("*.txt")}
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                outer.hits += 1
                body = outer.files.get(self.path.lstrip("/"))
                if body is None or outer.mode == "error":
                    self.send_error(404 if body is None else 500)
                    return
                if outer.mode == "html":
                    body = b"<!doctype html><html><body>Rate limited, try later</body></html>\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.mode == "slow":
                    for i in range(0, len(body), 16):
                        self.wfile.write(body[i:i + 16])
                        self.wfile.flush()
                        time.sleep(0.5)
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lists():
    server = ListServer()
    yield server
    server.close()


def _names(name: str, n: int) -> list[str]:
    return [line.strip() for line in (DATA / name).read_text().splitlines() if line.strip()
            and not line.startswith("#")][:n]


def _mirror_list(provider, list_id: str) -> dict:
    manifest = requests.get(provider.url + "/feed/manifest.json", timeout=10).json()
    return {e["id"]: e for e in manifest["lists"]}.get(list_id)


def test_mirrors_are_published_and_a_failed_one_keeps_its_last_good_copy(tmp_path, database, lists, upstream,
                                                                         start_engine):
    assert (DATA / "LICENSE").exists()
    provider = RunningProvider(tmp_path / "p", database, mirror_deadline="3s", mirrors=[
        {"id": "hostsvn-gambling", "url": lists.url + "/gambling-VN.domains.txt", "category": "gambling",
         "format": "domains"},
        {"id": "hostsvn-adult", "url": lists.url + "/adult-VN.domains.txt", "category": "adult"}])
    try:
        enrol = provider.enrolment_token("ISP")
        admin = provider.token("alice", "admin")
        provider.start()
        r = provider.api("POST", "/api/v1/publish", admin)            # nothing curated: the mirrors alone
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1 and r.json()["lists"] == 2 and r.json()["entries"] == 500
        key = requests.get(provider.url + "/feed/feed.pub", timeout=10).text.strip()
        manifest = verify_feed(provider.url + "/feed/manifest.json", feedlib.load_public_key(key))
        by_id = {e["id"]: e for e in manifest["lists"]}
        assert by_id["mirror-hostsvn-gambling"]["category"] == "gambling"
        assert by_id["mirror-hostsvn-gambling"]["entries"] == 300
        assert by_id["mirror-hostsvn-adult"]["format"] == "domains"          # auto, resolved at download
        good_sha = by_id["mirror-hostsvn-gambling"]["sha256"]
        status = {m["id"]: m for m in provider.api("GET", "/api/v1/mirrors", admin).json()}
        assert status["hostsvn-gambling"]["entries"] == 300 and status["hostsvn-gambling"]["error"] is None

        # an appliance of the fleet blocks the mirrored names (a profile with the categories on)
        gambling, adult = _names("gambling-VN.domains.txt", 300), _names("adult-VN.domains.txt", 200)
        one = start_engine({"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                            "provider": {"url": provider.url + "/", "token": enrol, "poll_interval": f"{POLL}s"}})
        eventually(lambda: blocked(one.port, gambling[0]) and blocked(one.port, gambling[-1])
                   and blocked(one.port, adult[5]), 60, "the mirrored names blocked on the appliance")

        # the upstream fails in three ways; each publish still succeeds with the last good copy
        expected = {"error": "500", "html": "HTML", "slow": "3"}
        for mode, word in expected.items():
            lists.mode = mode
            provider.api("POST", "/api/v1/orders", admin, json={"authority": "A", "reference": mode,
                                                                "category": "gambling",
                                                                "domains": [f"{mode}.order.example"]})
            started = time.monotonic()
            r = provider.api("POST", "/api/v1/publish", admin)
            took = time.monotonic() - started
            assert r.status_code == 200, r.text
            failing = {m["id"]: m for m in r.json()["mirrors"]}["hostsvn-gambling"]
            assert failing["error"] and word in failing["error"], failing
            assert _mirror_list(provider, "mirror-hostsvn-gambling")["sha256"] == good_sha
            assert took < 2 * 3 + 10, f"{mode}: publish took {took:.1f}s with a 3 s mirror deadline"
        status = {m["id"]: m for m in provider.api("GET", "/api/v1/mirrors", admin).json()}
        assert status["hostsvn-gambling"]["entries"] == 300 and status["hostsvn-gambling"]["error"]
        audit = provider.api("GET", "/api/v1/audit?action=feed.publish", admin).json()
        assert "mirrors failing: hostsvn-gambling, hostsvn-adult" in audit[0]["detail"]

        # back, with a changed list: the next publish takes it and clears the error
        lists.mode = "ok"
        lists.files["gambling-VN.domains.txt"] = "\n".join(gambling[:100]).encode() + b"\n"
        r = provider.api("POST", "/api/v1/publish", admin)
        assert r.status_code == 200
        assert _mirror_list(provider, "mirror-hostsvn-gambling")["entries"] == 100
        assert all(m["error"] is None for m in r.json()["mirrors"])
        eventually(lambda: not blocked(one.port, gambling[-1]) and blocked(one.port, gambling[0]), 60,
                   "the appliance follows the mirror's new content")
    finally:
        provider.stop()


def test_mirror_config_errors(tmp_path):
    p = RunningProvider(tmp_path)
    p.config_path.write_text("mirrors:\n  - id: a\n    url: ftp://x/list\n    category: gambling\n")
    out = p.cli("run")
    assert out.returncode == 2 and "mirrors[0].url: list url must start with https://" in out.stderr, out.stderr
    p.config_path.write_text("mirrors:\n  - {id: a, url: 'http://127.0.0.1/a', category: ads}\n"
                             "  - {id: a, url: 'http://127.0.0.1/b', category: ads}\n")
    out = p.cli("run")
    assert out.returncode == 2 and "id 'a' is used twice" in out.stderr, out.stderr
