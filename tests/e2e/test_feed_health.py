"""A failing feed is seen everywhere, an update cannot hang, and every update keeps the feed.

Through the real entry points: `hearth lists update` / `lists status` / `doctor` as processes, `hearth dns`
answering on 127.0.0.1, the web UI's pages (Flask test client on the same data folder), and a feed server
on 127.0.0.1 that can misbehave in each way a real one does (wrong signature, wrong key, rollback,
garbage, truncation, 404, 500, refused connection, a manifest or headers dripped one byte at a time).
"""
from __future__ import annotations

import html
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

from blocklists import feed as feedlib
from resolver.service.config import load_config
from tests.dnsclient import answers, ask, ede
from tests.conftest import RunningEngine
from tests.dnsfake import FakeDNS
from tests.e2e.test_blocking import CLI, run_cli
from tests.webui.conftest import PASSWORD, Browser, run_wizard
from webui import create_app

RECORDS = {n: [f"{n} 300 IN A 192.0.2.77"] for n in ("www.example.com.", "bet-one.example.", "mandated.example.",
                                                      "added-later.example.")}


@pytest.fixture
def upstream():
    with FakeDNS(RECORDS) as fake:
        yield fake


class RawFeedServer:
    """A tiny HTTP server on a raw socket (so it can misbehave at the byte level): serves ``root`` in mode
    ``files``; ``404`` and ``500`` answer that status; ``drip`` sends the status line one byte every
    ``drip_every`` seconds and never finishes. ``close()`` then ``reopen()`` gives a refused connection in
    between, on the same port."""

    def __init__(self, root: Path):
        self.root = root
        self.mode = "files"
        self.drip_every = 2.0
        self.port = 0
        self.requests: list[str] = []
        self._stop = threading.Event()
        self.reopen()

    def reopen(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    def url(self, path: str = "manifest.json") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                path = data.split(b" ", 2)[1].decode().split("?")[0]
                self.requests.append(path)
                if self.mode == "drip":
                    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
                        if self._stop.wait(self.drip_every):
                            return
                        conn.sendall(bytes([byte]))
                    self._stop.wait(3600)
                    return
                if self.mode in ("404", "500"):
                    body = b"not here\n" if self.mode == "404" else b"server error\n"
                    reason = "Not Found" if self.mode == "404" else "Internal Server Error"
                    conn.sendall(f"HTTP/1.0 {self.mode} {reason}\r\nContent-Length: {len(body)}\r\n"
                                 "Content-Type: text/plain\r\n\r\n".encode() + body)
                    return
                file = self.root / path.lstrip("/")
                if not file.is_file():
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    return
                body = file.read_bytes()
                conn.sendall(f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n"
                             "Content-Type: application/octet-stream\r\n\r\n".encode() + body)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()

    def shutdown(self) -> None:
        self._stop.set()
        self.close()


@pytest.fixture
def updated_engine(tmp_path):
    """Factory: an engine on ``config`` whose lists were updated once by `hearth lists update` before it
    started (so its scheduler's first update is hours away and cannot run in the middle of a test)."""
    engines: list[RunningEngine] = []

    def factory(config: dict) -> RunningEngine:
        eng = RunningEngine(tmp_path / f"engine{len(engines)}", config)
        engines.append(eng)
        out = run_cli("lists", "update", "--no-notify", config=eng.config_path)
        assert out.returncode == 0, out.stdout + out.stderr
        return eng.start()

    yield factory
    for eng in engines:
        eng.stop()


@pytest.fixture
def feed_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = RawFeedServer(root)
    yield srv
    srv.shutdown()


def publish(tmp: Path, out: Path, key: Path, lists: dict[str, str], version: Optional[int] = None) -> None:
    src = tmp / "feed-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    spec = {"title": "Test district feed", "lists": []}
    for list_id, text in lists.items():
        (src / f"{list_id}.txt").write_text(text)
        spec["lists"].append({"id": list_id, "file": f"{list_id}.txt", "title": list_id, "category": "gambling",
                              "format": "domains", "mandatory": list_id.startswith("must")})
    (src / "feed.yaml").write_text(yaml.safe_dump(spec))
    feedlib.build_feed(str(src), str(key), str(out), version)


def status_json(cfg: Path) -> dict:
    res = run_cli("lists", "status", "--json", config=cfg)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def doctor_lists(cfg: Path) -> tuple[int, list[dict]]:
    res = run_cli("doctor", "--json", "--only", "lists", config=cfg)
    data = json.loads(res.stdout)
    return res.returncode, [c for c in data["checks"] if c["name"] == "lists"]


class UI:
    """The web UI on the engine's data folder, signed in (Flask test client)."""

    def __init__(self, cfg: Path):
        self.app = create_app(load_config(str(cfg)))
        self.app.config["TESTING"] = True
        self.browser = Browser(self.app.test_client())
        run_wizard(self.browser)
        if self.browser.get("/").status_code != 200:   # the admin existed already: sign in
            resp = self.browser.post("/login", {"username": "admin", "password": PASSWORD}, page="/login")
            assert resp.status_code == 302, resp.get_data(as_text=True)

    def page(self, url: str) -> str:
        resp = self.browser.get(url)
        assert resp.status_code == 200, url
        return resp.get_data(as_text=True)

    def close(self) -> None:
        store = self.app.extensions.get("hearth_store")
        if store is not None:
            store.close()


def _feed_config(upstream, url: str, pub: str, **feed) -> dict:
    return {"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]}, "blocking": {"starter_lists": False},
            "feed": {"url": url, "public_key": pub, **feed}}


def _blocked(port: int, name: str) -> bool:
    return answers(ask(name, "A", port)) == ["0.0.0.0"]


def test_each_feed_failure_shows_in_status_ui_dashboard_and_doctor_while_the_old_lists_keep_working(
        tmp_path, upstream, updated_engine, feed_server):
    keys = Path(feedlib.keygen(str(tmp_path / "keys"))[0])
    pub = (tmp_path / "keys" / "feed.pub").read_text().strip()
    www = feed_server.root
    publish(tmp_path, www, keys, {"bets": "bet-one.example\n", "must-block": "mandated.example\n"})
    v1 = tmp_path / "v1"
    shutil.copytree(www, v1)
    publish(tmp_path, www, keys, {"bets": "bet-one.example\n", "must-block": "mandated.example\n"})  # version 2
    good = tmp_path / "v2"
    shutil.copytree(www, good)
    eng = updated_engine(_feed_config(upstream, feed_server.url(), pub, download_deadline="3s"))
    cfg = eng.config_path
    assert _blocked(eng.port, "bet-one.example") and ede(ask("mandated.example", "A", eng.port))[0] == 15
    first = status_json(cfg)
    assert first["feed"]["version"] == 2 and first["feed"]["error"] is None and first["feed"]["title"]
    success = {r["id"]: r["last_success"] for r in first["lists"]}
    assert success["bets"] and success["must-block"]
    ui = UI(cfg)
    try:
        assert "all healthy" in ui.page("/")
        lists_page = ui.page("/lists")
        assert "Test district feed" in lists_page and feed_server.url() in lists_page

        def restore() -> None:
            feed_server.mode = "files"
            shutil.rmtree(www)
            shutil.copytree(good, www)

        other = Path(feedlib.keygen(str(tmp_path / "other-keys"))[0])
        manifest = www / "manifest.json"

        def bad_signature():
            manifest.write_bytes(manifest.read_bytes().replace(b"Test district", b"Test distrikt"))

        def wrong_key():
            publish(tmp_path, www, other, {"bets": "bet-three.example\n"}, version=9)

        def rollback():
            shutil.rmtree(www)
            shutil.copytree(v1, www)

        def garbage():  # validly signed, but not a manifest at all
            data = b"\x00\xffnot json at all"
            manifest.write_bytes(data)
            (www / "manifest.json.sig").write_bytes(feedlib.sign_manifest(data, feedlib.load_private_key(str(keys))))

        def truncated():
            manifest.write_bytes(manifest.read_bytes()[:100])

        def http(status: str):
            return lambda: setattr(feed_server, "mode", status)

        def refused():
            feed_server.close()

        def slow():
            feed_server.mode, feed_server.drip_every = "drip", 0.5

        host = f"127.0.0.1:{feed_server.port}"
        cases = [
            ("bad signature", bad_signature, "signature does not match the configured public key"),
            ("wrong key", wrong_key, "signature does not match the configured public key"),
            ("rollback", rollback, "version 1 is older than installed version 2 (rollback refused)"),
            ("garbage", garbage, "manifest: not valid JSON"),
            ("truncated", truncated, "signature does not match the configured public key"),
            ("404", http("404"), f"HTTP 404 Not Found from {feed_server.url()}"),
            ("500", http("500"), f"HTTP 500 Internal Server Error from {feed_server.url()}"),
            ("refused", refused, f"cannot connect to {host}: connection refused"),
            ("slow", slow, f"timed out: {feed_server.url()} was not done after 3 s"),
        ]
        for name, breakage, expected in cases:
            breakage()
            started = time.monotonic()
            out = run_cli("lists", "update", config=cfg)
            assert out.returncode == 1, (name, out.stdout)
            assert time.monotonic() - started < 30, name
            assert f"feed FAILED: {expected}" in out.stdout, (name, out.stdout)
            # `hearth lists status`: the feed with its error in plain words; the lists' last success unmoved
            text = run_cli("lists", "status", config=cfg).stdout
            assert f"feed {feed_server.url()}" in text and f"FAILING: {expected}" in text, (name, text)
            assert "installed version 2" in text, (name, text)
            st = status_json(cfg)
            assert expected in st["feed"]["error"] and st["feed"]["version"] == 2, (name, st["feed"])
            assert st["feed"]["last_check"] > st["feed"]["last_success"], name
            assert {r["id"]: r["last_success"] for r in st["lists"]} == success, name
            assert st["problems"] and expected in st["problems"][0], name
            # `hearth doctor`: a problem (exit 1) that names the feed and the error
            code, checks = doctor_lists(cfg)
            assert code == 1, (name, checks)
            failing = [c for c in checks if c["status"] == "fail" and "feed" in c["message"]]
            assert failing and expected in failing[0]["message"] and failing[0]["fix"], (name, checks)
            assert not any("downloaded and fresh" in c["message"] for c in checks), name
            # the UI's lists page and the dashboard's badge
            lists_page = ui.page("/lists")
            assert html.escape(expected, quote=False) in lists_page and "failing" in lists_page, name
            dashboard = ui.page("/")
            assert "feed failing" in dashboard and "all healthy" not in dashboard, name
            assert html.escape(expected, quote=False) in dashboard, name
            api = ui.browser.get("/api/v1/lists").get_json()
            assert expected in api["feed"]["error"] and api["healthy"] is False, name
            # the last good lists keep working, the mandatory one included
            assert _blocked(eng.port, "bet-one.example"), name
            assert ede(ask("mandated.example", "A", eng.port))[0] == 15, name
            assert not _blocked(eng.port, "bet-three.example"), name
            if name == "refused":
                feed_server.reopen()
            restore()

        out = run_cli("lists", "update", config=cfg)
        assert out.returncode == 0, out.stdout
        st = status_json(cfg)
        assert st["feed"]["error"] is None and not st["problems"]
        assert all(r["last_success"] > success[r["id"]] for r in st["lists"])  # verified again: moves now
        assert "all healthy" in ui.page("/")
        code, checks = doctor_lists(cfg)
        assert code == 0 and checks[0]["status"] == "ok", checks
    finally:
        ui.close()


def test_a_header_dripping_server_cannot_hang_an_update_and_the_next_update_runs(tmp_path, upstream,
                                                                                 updated_engine, feed_server):
    keys = Path(feedlib.keygen(str(tmp_path / "keys"))[0])
    pub = (tmp_path / "keys" / "feed.pub").read_text().strip()
    publish(tmp_path, feed_server.root, keys, {"bets": "bet-one.example\n"})
    eng = updated_engine(_feed_config(upstream, feed_server.url(), pub, download_deadline="5s"))
    publish(tmp_path, feed_server.root, keys, {"bets": "bet-one.example\nbet-two.example\n"})
    feed_server.mode, feed_server.drip_every = "drip", 2.0   # "HTTP/1.1 200 OK\r\n", one byte every 2 s
    started = time.monotonic()
    out = run_cli("lists", "update", config=eng.config_path, timeout=60)
    took = time.monotonic() - started
    assert out.returncode == 1 and "timed out" in out.stdout, out.stdout
    assert took < 5 + 15, f"the update took {took:.1f} s with a 5 s download deadline"
    assert "timed out" in status_json(eng.config_path)["feed"]["error"]
    # the next update runs, and works once the server does
    feed_server.mode = "files"
    out = run_cli("lists", "update", config=eng.config_path)
    assert out.returncode == 0, out.stdout
    assert _blocked(eng.port, "bet-one.example") and _blocked(eng.port, "bet-two.example")


def _lock_pid(data_dir: Path):
    """The pid of the list update holding ``lists/.lock`` now, or None."""
    try:
        pid = json.loads((data_dir / "lists" / ".lock").read_text()).get("pid")
    except (OSError, ValueError):
        return None
    return pid if isinstance(pid, int) and os.path.exists(f"/proc/{pid}") else None


def _nice(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[16])


def _wait(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_stuck_update_is_stopped_at_its_time_limit_and_a_stuck_lock_is_taken_over(tmp_path, upstream,
                                                                                     updated_engine, feed_server):
    keys = Path(feedlib.keygen(str(tmp_path / "keys"))[0])
    pub = (tmp_path / "keys" / "feed.pub").read_text().strip()
    publish(tmp_path, feed_server.root, keys, {"bets": "bet-one.example\n"})
    # downloads may take an hour, but a whole update only 6 s
    eng = updated_engine(_feed_config(upstream, feed_server.url(), pub, download_deadline="1h",
                                      update_time_limit="6s"))
    cfg = eng.config_path
    feed_server.mode, feed_server.drip_every = "drip", 1.0
    from resolver.service.control import call

    # the engine runs the update (as the scheduler and the UI's "Update now" do): stopped at 6 s, recorded
    assert call(str(eng.data_dir / "hearth.sock"), "lists-update")["started"] is True
    # it runs at a lower CPU priority than the engine answering queries (blocklists/runner.py)
    _wait(lambda: _lock_pid(eng.data_dir) is not None, 20, "the update to take its lock")
    assert _nice(_lock_pid(eng.data_dir)) == min(19, _nice(eng.proc.pid) + 10)
    _wait(lambda: (status_json(cfg)["update"].get("error") or "").startswith("stopped after"), 40,
          "the engine to stop the stuck update")
    st = status_json(cfg)
    assert "feed.update_time_limit" in st["update"]["error"] and not st["update"]["running"]
    text = run_cli("lists", "status", config=cfg).stdout
    assert "last update" in text and "FAILED: stopped after" in text, text
    code, checks = doctor_lists(cfg)
    assert code == 1 and any("stopped after" in c["message"] for c in checks), checks
    ui = UI(cfg)
    try:
        dashboard = ui.page("/")
        assert "last update failed" in dashboard and "all healthy" not in dashboard
    finally:
        ui.close()

    # an updater that holds the lock past the limit (here: hung on the dripping server) is taken over
    stuck = subprocess.Popen(CLI + ["lists", "update", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        lock = eng.data_dir / "lists" / ".lock"
        _wait(lambda: lock.exists() and str(stuck.pid) in lock.read_text(), 20, "the updater to take the lock")
        busy = run_cli("lists", "update", config=cfg)
        assert busy.returncode == 1 and "another list update is running" in busy.stderr
        feed_server.mode = "files"
        time.sleep(6.5)
        out = run_cli("lists", "update", config=cfg)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "taking over" in out.stdout
        assert stuck.wait(10) == -signal.SIGKILL
        assert _blocked(eng.port, "bet-one.example")
        assert status_json(cfg)["update"]["error"] is None
    finally:
        if stuck.poll() is None:
            stuck.kill()
            stuck.wait()

    # a dead updater's lock is free at once
    feed_server.mode = "drip"
    dead = subprocess.Popen(CLI + ["lists", "update", "--config", str(cfg)], stdout=subprocess.DEVNULL)
    _wait(lambda: str(dead.pid) in lock.read_text(), 20, "the updater to take the lock")
    os.kill(dead.pid, signal.SIGKILL)
    dead.wait()
    feed_server.mode = "files"
    assert run_cli("lists", "update", config=cfg).returncode == 0


def test_update_now_in_the_ui_uses_the_current_config_and_keeps_the_feed(tmp_path, upstream, updated_engine,
                                                                         feed_server):
    keys = Path(feedlib.keygen(str(tmp_path / "keys"))[0])
    pub = (tmp_path / "keys" / "feed.pub").read_text().strip()
    publish(tmp_path, feed_server.root, keys, {"bets": "bet-one.example\n", "must-block": "mandated.example\n"})
    own = tmp_path / "own.txt"
    own.write_text("own-list.example\n")
    base = {"dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]}, "blocking": {"starter_lists": False},
            "lists": [{"id": "own", "url": f"file://{own}", "category": "adult", "format": "domains"}]}
    eng = updated_engine(base)
    cfg = eng.config_path
    ui = UI(cfg)  # the web process starts on the configuration without the feed
    try:
        # the administrator adds the feed to the file and reloads
        eng.rewrite_config({**base, "feed": {"url": feed_server.url(), "public_key": pub}})
        res = run_cli("reload", config=cfg)
        assert res.returncode == 0, res.stdout + res.stderr

        def update_now() -> None:
            page = ui.page("/lists")
            assert "Update now" in page
            resp = ui.browser.post("/lists", {}, page="/lists")
            assert resp.status_code in (302, 303)
            _wait(lambda: ui.browser.get("/api/v1/lists/update").get_json()["running"] is False, 60,
                  "the update to finish")

        update_now()
        st = status_json(cfg)
        ids = {r["id"] for r in st["lists"]}
        assert {"bets", "must-block", "own"} <= ids, ids
        assert st["update"]["trigger"] in ("ui", "scheduler") and st["feed"]["version"] == 1
        mandated = ask("mandated.example", "A", eng.port)
        assert answers(mandated) == ["0.0.0.0"] and ede(mandated)[0] == 15  # blocked for everyone
        assert _blocked(eng.port, "bet-one.example") and _blocked(eng.port, "own-list.example")
        assert "all healthy" in ui.page("/")

        # the feed fails: "Update now" keeps its last good lists, and the dashboard says it fails
        feed_server.mode = "404"
        update_now()
        assert ede(ask("mandated.example", "A", eng.port))[0] == 15
        assert {"bets", "must-block", "own"} <= {r["id"] for r in status_json(cfg)["lists"]}
        assert "feed failing" in ui.page("/")
        feed_server.mode = "files"

        # a source leaves the index only because the configuration dropped it, and it is said so
        eng.rewrite_config(base)
        assert run_cli("reload", config=cfg).returncode == 0
        update_now()
        st = status_json(cfg)
        assert {r["id"] for r in st["lists"]} == {"own"} and st["feed"] is None
        assert any("no longer in the configuration" in line for line in st["update"]["removed"]), st["update"]
        assert "no longer in the configuration" in run_cli("lists", "status", config=cfg).stdout
        assert not _blocked(eng.port, "mandated.example")
    finally:
        ui.close()

    # without an engine the UI runs the same command itself, on the file as it is now
    eng.stop()
    ui = UI(cfg)   # started on the configuration without the feed
    try:
        ui.app.config["HEARTH_CONFIG_FILE"] = str(cfg)   # as `hearth web -c FILE` tells it
        eng.rewrite_config({**base, "feed": {"url": feed_server.url(), "public_key": pub}})
        ui.browser.post("/lists", {}, page="/lists")
        _wait(lambda: ui.browser.get("/api/v1/lists/update").get_json()["running"] is False, 60, "the update")
        assert {"bets", "must-block", "own"} <= {r["id"] for r in status_json(cfg)["lists"]}
        assert status_json(cfg)["update"]["trigger"] == "ui"
    finally:
        ui.close()


def test_stopping_the_engine_does_not_wait_for_a_hung_update(tmp_path, upstream, updated_engine, feed_server):
    keys = Path(feedlib.keygen(str(tmp_path / "keys"))[0])
    pub = (tmp_path / "keys" / "feed.pub").read_text().strip()
    publish(tmp_path, feed_server.root, keys, {"bets": "bet-one.example\n"})
    eng = updated_engine(_feed_config(upstream, feed_server.url(), pub, download_deadline="1h"))
    feed_server.mode = "drip"
    from resolver.service.control import call

    assert call(str(eng.data_dir / "hearth.sock"), "lists-update")["started"] is True
    _wait(lambda: status_json(eng.config_path)["update"]["running"], 20, "the update to start")
    started = time.monotonic()
    assert eng.stop() == 0
    assert time.monotonic() - started < 8
    st = status_json(eng.config_path)
    assert not st["update"]["running"] and "stopped because Hearth was stopping" in st["update"]["error"]
