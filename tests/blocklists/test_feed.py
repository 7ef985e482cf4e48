"""Provider feeds: keygen/build/verify (blocklists.feed) and the appliance side (blocklists.fetch).

Everything is served by a threaded http.server on 127.0.0.1 (or read through file:// URLs).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import os
import shutil
import socket
import ssl
import stat
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Callable, Optional

import pytest

from blocklists import feed, verify
from blocklists.feed import FeedError
from blocklists.feed_client import FeedClient
from blocklists.fetch import CachedFile, FetchError, FetchLimits, fetch_url
from tests.dnsfake import make_test_certs, server_tls_context

FAST = FetchLimits(connect_timeout=2.0, total_timeout=10.0, retries=2, backoff=0.01)


# -- a small web server --------------------------------------------------------------------------------------

class FeedServer:
    """Serves ``root`` on 127.0.0.1 with ETag / If-None-Match, optional gzip, and per-path overrides."""

    def __init__(self, root: Path, tls: Optional[ssl.SSLContext] = None):
        self.root = root
        self.scheme = "https" if tls else "http"
        self.requests: list[tuple[str, dict]] = []
        self.overrides: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = {}
        self.gzip_paths: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                server.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                if path in server.overrides:
                    server.overrides[path](self)
                    return
                file = server.root / path.lstrip("/")
                if not file.is_file():
                    send(self, 404, b"not found\n")
                    return
                body = file.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                headers = {"ETag": etag, "Content-Type": "application/json" if path.endswith(".json")
                           else "text/plain; charset=utf-8"}
                if path in server.gzip_paths and "gzip" in self.headers.get("Accept-Encoding", ""):
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                send(self, 200, body, headers)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def hits(self, path: str, header: Optional[str] = None) -> int:
        return sum(1 for p, h in self.requests if p == "/" + path and (header is None or header in h))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler, status: int, body: bytes, headers: Optional[dict] = None, length: bool = True) -> None:
    handler.send_response(status)
    for k, v in (headers or {"Content-Type": "text/plain"}).items():
        handler.send_header(k, v)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    try:
        handler.wfile.write(body)
    except OSError:
        pass


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """requests must talk to 127.0.0.1 directly, whatever proxy the environment names."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def server(tmp_path):
    srv = FeedServer(tmp_path / "public")
    yield srv
    srv.close()


# -- a feed source folder built from the shared data ---------------------------------------------------------

@pytest.fixture
def keys(tmp_path):
    return feed.keygen(str(tmp_path / "keys"))


@pytest.fixture
def src(tmp_path, test_data):
    """A source folder with three real lists (hosts, domains, adblock)."""
    d = tmp_path / "src"
    d.mkdir()
    shutil.copy(test_data / "hagezi" / "gambling.onlydomains.txt", d / "gambling.txt")
    shutil.copy(test_data / "hagezi" / "native.tiktok.hosts", d / "tiktok.hosts")
    shutil.copy(test_data / "hagezi" / "nosafesearch.adblock.txt", d / "nosafesearch.txt")
    (d / "feed.yaml").write_text(
        "title: Example school district feed\n"
        "lists:\n"
        "  - id: gambling-vn\n"
        "    file: gambling.txt\n"
        "    title: Gambling sites\n"
        "    category: gambling\n"
        "    format: domains\n"
        "    mandatory: false\n"
        "  - id: tiktok\n"
        "    file: tiktok.hosts\n"
        "    title: TikTok trackers\n"
        "    category: social\n"
        "    format: hosts\n"
        "  - id: nosafesearch\n"
        "    file: nosafesearch.txt\n"
        "    category: anti-bypass\n"
        "    format: adblock\n"
        "    mandatory: true\n")
    return d


def build(src: Path, keys, out: Path, version: Optional[int] = None) -> dict:
    return feed.build_feed(str(src), keys[0], str(out), version=version)


def served(out: Path, manifest: dict, list_id: str) -> Path:
    entry = next(e for e in manifest["lists"] if e["id"] == list_id)
    return out / entry["url"]


def flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def other_key(tmp_path) -> str:
    return feed.keygen(str(tmp_path / "other-keys"))[1]


# -- keygen, build, verify -----------------------------------------------------------------------------------

def test_keygen_build_verify_round_trip(tmp_path, src, keys, server, test_data):
    private, public = keys
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    pub_text = Path(public).read_text()
    assert pub_text.count("\n") == 1 and len(base64.b64decode(pub_text.strip(), validate=True)) == 32
    with pytest.raises(FeedError, match="already exists"):
        feed.keygen(str(tmp_path / "keys"))
    assert feed.load_public_key(public) == feed.load_public_key(pub_text.strip())

    out = tmp_path / "public"
    manifest = build(src, keys, out)
    assert manifest["schema"] == 1 and manifest["version"] == 1
    assert manifest["title"] == "Example school district feed"
    assert manifest["generated"].endswith("Z") and feed.parse_time(manifest["generated"]).year >= 2024
    by_id = {e["id"]: e for e in manifest["lists"]}
    assert list(by_id) == ["gambling-vn", "tiktok", "nosafesearch"]
    gambling = by_id["gambling-vn"]
    source = (test_data / "hagezi" / "gambling.onlydomains.txt").read_bytes()
    assert gambling["sha256"] == hashlib.sha256(source).hexdigest() and gambling["size"] == len(source)
    assert gambling["entries"] == 3000  # the names in the file (tests/data keeps 3000 of the list)
    assert by_id["tiktok"]["entries"] == 172
    assert (gambling["title"], gambling["category"], gambling["format"], gambling["mandatory"]) == \
        ("Gambling sites", "gambling", "domains", False)
    assert by_id["nosafesearch"]["title"] == "nosafesearch" and by_id["nosafesearch"]["mandatory"] is True
    assert gambling["url"].startswith("lists/gambling-vn.") and (out / gambling["url"]).read_bytes() == source
    # the file on disk is exactly what was signed
    raw = (out / "manifest.json").read_bytes()
    assert json.loads(raw) == manifest
    assert feed.verify_manifest(raw, (out / "manifest.json.sig").read_bytes(), public) == manifest

    assert verify.verify_feed(str(out), public)["version"] == 1
    assert verify.verify_feed(server.url(), pub_text)["version"] == 1
    assert verify.verify_feed(server.url("manifest.json"), public)["version"] == 1
    assert verify.verify_feed(out.as_uri() + "/", public)["version"] == 1


def test_verify_rejects_tampering_and_wrong_key(tmp_path, src, keys):
    out = tmp_path / "public"
    manifest = build(src, keys, out)
    with pytest.raises(FeedError, match="signature does not match the configured public key"):
        verify.verify_feed(str(out), other_key(tmp_path))
    flip_byte(served(out, manifest, "tiktok"))
    with pytest.raises(FeedError, match=r"1 of 3 lists failed: tiktok: sha256"):
        verify.verify_feed(str(out), keys[1])
    flip_byte(out / "manifest.json", 40)
    with pytest.raises(FeedError, match="signature does not match the configured public key"):
        verify.verify_feed(str(out), keys[1])
    with pytest.raises(FeedError, match="not the base64 of a 64-byte"):
        feed.verify_manifest(b"{}", b"not a signature", keys[1])
    with pytest.raises(FeedError, match="neither an existing file nor the base64"):
        feed.load_public_key("c2hvcnQ=")


def test_build_versions_updated_times_and_pruning(tmp_path, src, keys, monkeypatch):
    out = tmp_path / "public"
    monkeypatch.setattr(feed, "utc_now", lambda: "2024-01-01T00:00:00Z")
    assert build(src, keys, out)["version"] == 1
    (src / "tiktok.hosts").write_text("0.0.0.0 changed.example\n")
    monkeypatch.setattr(feed, "utc_now", lambda: "2024-02-01T00:00:00Z")
    m2 = build(src, keys, out)
    assert m2["version"] == 2
    updated = {e["id"]: e["updated"] for e in m2["lists"]}
    assert updated == {"gambling-vn": "2024-01-01T00:00:00Z", "tiktok": "2024-02-01T00:00:00Z",
                       "nosafesearch": "2024-01-01T00:00:00Z"}
    assert build(src, keys, out, version=10)["version"] == 10
    with pytest.raises(FeedError, match="not higher than 10.*rollback"):
        build(src, keys, out, version=10)
    # the previous build's files stay (clients may still hold its manifest), older ones go
    (src / "tiktok.hosts").write_text("0.0.0.0 changed-again.example\n")
    m4 = build(src, keys, out)
    tiktok_files = sorted(p.name for p in (out / "lists").glob("tiktok.*"))
    assert len(tiktok_files) == 2 and served(out, m4, "tiktok").name in tiktok_files
    assert verify.verify_feed(str(out), keys[1])["version"] == 11
    # the private key must never land in the published folder
    inside = out / "feed.key"
    shutil.copy(keys[0], inside)
    with pytest.raises(FeedError, match="inside the output folder"):
        feed.build_feed(str(src), str(inside), str(out))


@pytest.mark.parametrize("yaml_text,expected", [
    ("title: T\nlists:\n  - id: a\n    file: a.txt\n    category: c\n    fromat: hosts\n",
     r"feed.yaml:6: lists\[0\].fromat: unknown key; did you mean 'format'\?"),
    ("title: T\nlists:\n  - id: a\n    file: missing.txt\n    category: c\n",
     r"feed.yaml:4: lists\[0\].file: .*missing.txt: no such file"),
    ("title: T\nlists:\n  - {id: a, file: a.txt, category: c}\n  - {id: a, file: a.txt, category: c}\n",
     r"feed.yaml:4: lists\[1\].id: duplicate id 'a' \(also lists\[0\]\)"),
    ("title: T\nlists:\n  - id: Gambling VN\n    file: a.txt\n    category: c\n",
     r"feed.yaml:3: lists\[0\].id: 'Gambling VN' is not a valid id"),
    ("title: T\nlists:\n  - id: a\n    file: a.txt\n    category: c\n    format: txt\n",
     r"feed.yaml:6: lists\[0\].format: unknown format 'txt' \(expected one of hosts, domains"),
    ("title: T\nlists:\n  - id: a\n    file: a.txt\n", r"feed.yaml:3: lists\[0\].category: missing \(required\)"),
    ("title: T\nlists:\n  - id: a\n    file: a.txt\n    category: c\n    mandatory: yes please\n",
     r"feed.yaml:6: lists\[0\].mandatory: expected true or false, got a string"),
    ("title: T\nmirrors: []\nlists: []\n", r"feed.yaml:2: mirrors: unknown key; allowed: title, lists"),
    ("title: T\nlists: []\n", r"feed.yaml:2: lists: must name at least one list"),
    ("- just\n- a list\n", r"feed.yaml:1: expected a mapping"),
    ("title: [unclosed\n", r"feed.yaml:2: invalid YAML"),
])
def test_feed_yaml_errors_name_file_line_and_key(tmp_path, keys, yaml_text, expected):
    d = tmp_path / "src"
    d.mkdir()
    (d / "a.txt").write_text("example.com\n")
    (d / "feed.yaml").write_text(yaml_text)
    with pytest.raises(FeedError, match=expected) as info:
        feed.build_feed(str(d), keys[0], str(tmp_path / "out"))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_build_refuses_unpublishable_lists(tmp_path, keys):
    d = tmp_path / "src"
    d.mkdir()
    (d / "feed.yaml").write_text("title: T\nlists:\n  - {id: a, file: a.txt, category: c}\n")
    for content, message in ((b"", "empty"), (b"<!DOCTYPE html><html>login</html>", "HTML page"),
                             (gzip.compress(b"example.com\n"), "binary")):
        (d / "a.txt").write_bytes(content)
        with pytest.raises(FeedError, match=message):
            feed.build_feed(str(d), keys[0], str(tmp_path / "out"))


# -- the appliance: FeedClient -------------------------------------------------------------------------------

def test_client_update_then_304_on_second_update(tmp_path, src, keys, server):
    out = tmp_path / "public"
    manifest = build(src, keys, out)
    state = tmp_path / "state"
    result = FeedClient(server.url(), keys[1], str(state), FAST).update()
    assert result.error is None and result.version == 1 and result.changed
    for list_id, r in result.lists.items():
        assert r.changed and r.error is None
        assert Path(r.path).read_bytes() == served(out, manifest, list_id).read_bytes()
        assert r.entry["id"] == list_id
    list_gets = sum(server.hits(e["url"]) for e in manifest["lists"])
    assert list_gets == 3

    # a new client on the same state: conditional GETs answered 304, no list downloaded again
    again = FeedClient(server.url("manifest.json"), keys[1], str(state), FAST).update()
    assert again.error is None and again.version == 1 and not again.changed
    assert all(not r.changed and r.path for r in again.lists.values())
    assert server.hits("manifest.json", "if-none-match") == 1
    assert server.hits("manifest.json.sig", "if-none-match") == 1
    assert sum(server.hits(e["url"]) for e in manifest["lists"]) == list_gets
    saved = json.loads((state / "state.json").read_text())
    assert saved["version"] == 1 and set(saved["lists"]) == {"gambling-vn", "tiktok", "nosafesearch"}

    # a new version where only one list changed downloads only that list
    (src / "tiktok.hosts").write_text("# new\n0.0.0.0 new.example\n")
    m2 = build(src, keys, out)
    third = FeedClient(server.url(), keys[1], str(state), FAST).update()
    assert third.error is None and third.version == 2 and third.previous_version == 1
    assert {k for k, r in third.lists.items() if r.changed} == {"tiktok"}
    assert Path(third.lists["tiktok"].path).read_text() == "# new\n0.0.0.0 new.example\n"
    assert server.hits(served(out, m2, "tiktok").relative_to(out).as_posix()) == 1


def test_tampered_manifest_changes_nothing(tmp_path, src, keys, server):
    out = tmp_path / "public"
    build(src, keys, out)
    client = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST)
    first = client.update()
    before = {k: Path(r.path).read_bytes() for k, r in first.lists.items()}

    (src / "tiktok.hosts").write_text("0.0.0.0 v2.example\n")
    build(src, keys, out)
    flip_byte(out / "manifest.json", 60)
    result = client.update()
    assert result.error and "signature does not match the configured public key" in result.error
    assert result.version == 1 and result.manifest["version"] == 1 and not result.changed
    assert {k: Path(r.path).read_bytes() for k, r in result.lists.items()} == before
    saved = json.loads((tmp_path / "state" / "state.json").read_text())
    assert saved["version"] == 1 and saved["error"] == result.error
    assert not list((tmp_path / "state" / "incoming").glob("*"))


def test_tampered_list_keeps_previous_good_copy(tmp_path, src, keys, server):
    out = tmp_path / "public"
    build(src, keys, out)
    client = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST)
    v1 = client.update()
    old_tiktok = Path(v1.lists["tiktok"].path).read_bytes()

    (src / "tiktok.hosts").write_text("0.0.0.0 v2.example\n" * 50)
    (src / "gambling.txt").write_text("v2-casino.example\n")
    m2 = build(src, keys, out)
    flip_byte(served(out, m2, "tiktok"), 100)
    result = client.update()
    assert result.error is None and result.version == 2
    tiktok = result.lists["tiktok"]
    assert "sha256" in tiktok.error and not tiktok.changed
    assert Path(tiktok.path).read_bytes() == old_tiktok  # the v1 copy is still in force
    assert result.lists["gambling-vn"].changed and result.lists["gambling-vn"].error is None
    assert Path(result.lists["gambling-vn"].path).read_text() == "v2-casino.example\n"
    assert json.loads((tmp_path / "state" / "state.json").read_text())["errors"]["tiktok"] == tiktok.error

    # the publisher fixes the file: the next update (same version) fetches it
    served(out, m2, "tiktok").write_text("0.0.0.0 v2.example\n" * 50)
    fixed = client.update()
    assert fixed.error is None and fixed.lists["tiktok"].changed and fixed.lists["tiktok"].error is None
    assert Path(fixed.lists["tiktok"].path).read_text() == "0.0.0.0 v2.example\n" * 50


def test_list_corrupt_on_first_update_has_no_copy(tmp_path, src, keys, server):
    out = tmp_path / "public"
    manifest = build(src, keys, out)
    served(out, manifest, "nosafesearch").write_text("||evil.example^\n")  # shorter than the manifest says
    result = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST).update()
    assert result.error is None
    bad = result.lists["nosafesearch"]
    assert bad.path is None and not bad.changed and "size" in bad.error
    assert result.lists["tiktok"].path and result.lists["gambling-vn"].path


def test_wrong_public_key_is_rejected(tmp_path, src, keys, server):
    build(src, keys, tmp_path / "public")
    result = FeedClient(server.url(), other_key(tmp_path), str(tmp_path / "state"), FAST).update()
    assert result.error and "signature does not match the configured public key" in result.error
    assert result.version is None and result.lists == {}
    assert not any((tmp_path / "state" / "lists").glob("*.txt"))


def test_older_feed_version_is_refused_as_rollback(tmp_path, src, keys, server):
    out = tmp_path / "public"
    build(src, keys, out)
    shutil.copytree(out, tmp_path / "public-v1")
    (src / "tiktok.hosts").write_text("0.0.0.0 v2.example\n")
    build(src, keys, out)
    client = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST)
    assert client.update().version == 2
    tiktok_v2 = Path(client.status().lists["tiktok"].path).read_text()

    server.root = tmp_path / "public-v1"  # a replayed, validly signed old feed
    result = client.update()
    assert result.error and "rollback" in result.error and "version 1" in result.error
    assert result.version == 2 and Path(result.lists["tiktok"].path).read_text() == tiktok_v2
    assert json.loads((tmp_path / "state" / "state.json").read_text())["version"] == 2

    # the same version with other content (re-signed by the publisher) is not taken either
    server.root = out
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["title"] = "Changed without a new version"
    data = feed.encode_manifest(manifest)
    (out / "manifest.json").write_bytes(data)
    (out / "manifest.json.sig").write_bytes(feed.sign_manifest(data, feed.load_private_key(keys[0])))
    same = client.update()
    assert same.error and "re-published with different content" in same.error
    assert same.manifest["title"] == "Example school district feed"


def test_lists_dropped_from_the_feed_are_removed(tmp_path, src, keys, server):
    out = tmp_path / "public"
    build(src, keys, out)
    client = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST)
    first = client.update()
    old_path = first.lists["nosafesearch"].path
    text = (src / "feed.yaml").read_text()
    (src / "feed.yaml").write_text(text[:text.index("  - id: nosafesearch")])
    build(src, keys, out)
    second = client.update()
    assert second.error is None and set(second.lists) == {"gambling-vn", "tiktok"}
    assert not os.path.exists(old_path) and os.path.exists(second.lists["tiktok"].path)
    assert "nosafesearch" not in json.loads((tmp_path / "state" / "state.json").read_text())["lists"]


def test_signature_from_a_half_published_feed_is_fetched_again(tmp_path, src, keys, server):
    """A client that reads the new manifest but still gets the old signature retries once."""
    out = tmp_path / "public"
    build(src, keys, out)
    old_sig = (out / "manifest.json.sig").read_bytes()
    (src / "tiktok.hosts").write_text("0.0.0.0 v2.example\n")
    build(src, keys, out)
    calls = []

    def stale_once(h):
        calls.append(1)
        send(h, 200, old_sig if len(calls) == 1 else (out / "manifest.json.sig").read_bytes())

    server.overrides["/manifest.json.sig"] = stale_once
    result = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST).update()
    assert result.error is None and result.version == 2 and len(calls) == 2


def test_html_page_instead_of_a_list_is_rejected(tmp_path, src, keys, server):
    out = tmp_path / "public"
    manifest = build(src, keys, out)
    page = b"<!DOCTYPE html>\n<html><body>Please log in to the captive portal</body></html>\n"
    server.overrides["/" + served(out, manifest, "tiktok").relative_to(out).as_posix()] = \
        lambda h: send(h, 200, page, {"Content-Type": "text/html; charset=utf-8"})
    server.overrides["/" + served(out, manifest, "nosafesearch").relative_to(out).as_posix()] = \
        lambda h: send(h, 200, page, {"Content-Type": "text/plain"})
    result = FeedClient(server.url(), keys[1], str(tmp_path / "state"), FAST).update()
    assert result.error is None
    assert "HTML" in result.lists["tiktok"].error and result.lists["tiktok"].path is None
    assert "HTML" in result.lists["nosafesearch"].error
    assert result.lists["gambling-vn"].changed


def test_feed_over_file_urls(tmp_path, src, keys):
    out = tmp_path / "public"
    build(src, keys, out)
    state = tmp_path / "state"
    first = FeedClient(out.as_uri() + "/", keys[1], str(state), FAST).update()
    assert first.error is None and all(r.changed for r in first.lists.values())
    second = FeedClient(out.as_uri() + "/manifest.json", keys[1], str(state), FAST).update()
    assert second.error is None and not second.changed
    by_path = FeedClient(str(out), keys[1], str(tmp_path / "state2"), FAST).update()
    assert by_path.error is None and len(by_path.lists) == 3


# -- fetch_url ---------------------------------------------------------------------------------------------

def test_fetch_url_conditional_get(tmp_path, server, test_data):
    (tmp_path / "public").mkdir()
    shutil.copy(test_data / "hagezi" / "native.tiktok.hosts", tmp_path / "public" / "t.hosts")
    dest = tmp_path / "dl" / "t.hosts"
    first = fetch_url(server.url("t.hosts"), str(dest), None, FAST)
    assert not first.not_modified and first.file.etag
    assert dest.read_bytes() == (tmp_path / "public" / "t.hosts").read_bytes()
    assert first.file.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert first.file.size == dest.stat().st_size
    second = fetch_url(server.url("t.hosts"), str(dest), first.file, FAST)
    assert second.not_modified and second.file is first.file
    assert server.hits("t.hosts", "if-none-match") == 1
    # round trip through the persisted form
    assert CachedFile.from_dict(json.loads(json.dumps(first.file.to_dict()))) == first.file


def test_fetch_url_file_scheme(tmp_path):
    src = tmp_path / "list.txt"
    src.write_text("example.com\n")
    dest = tmp_path / "copy.txt"
    first = fetch_url(src.as_uri(), str(dest), None, FAST)
    assert dest.read_text() == "example.com\n" and first.file.etag
    assert fetch_url(src.as_uri(), str(dest), first.file, FAST).not_modified
    src.write_text("example.org\n")
    third = fetch_url(src.as_uri(), str(dest), first.file, FAST)
    assert not third.not_modified and dest.read_text() == "example.org\n"
    with pytest.raises(FetchError, match="No such file"):
        fetch_url((tmp_path / "nope.txt").as_uri(), str(dest), None, FAST)


def _no_leftovers(dest: Path) -> bool:
    return not dest.exists() and not [p for p in dest.parent.glob("*") if p.name.endswith(".part")]


def test_fetch_url_rejects_http_errors_with_retries_on_5xx_only(tmp_path, server):
    server.overrides["/500"] = lambda h: send(h, 500, b"oops")
    server.overrides["/404"] = lambda h: send(h, 404, b"nope")
    dest = tmp_path / "dl" / "x.txt"
    with pytest.raises(FetchError, match=r"HTTP 500 .*after 3 attempts") as info:
        fetch_url(server.url("500"), str(dest), None, FAST)
    assert info.value.status == 500 and server.hits("500") == 3
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_url(server.url("404"), str(dest), None, FAST)
    assert server.hits("404") == 1
    assert not dest.exists()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="cannot connect to 127.0.0.1:[0-9]+: connection refused.*after 3 attempts"):
        fetch_url(f"http://127.0.0.1:{port}/x.txt", str(dest), None, FAST)
    with pytest.raises(FetchError, match="unsupported URL scheme"):
        fetch_url("ftp://127.0.0.1/x.txt", str(dest), None, FAST)


def test_fetch_url_rejects_empty_and_html(tmp_path, server):
    server.overrides["/empty"] = lambda h: send(h, 200, b"")
    server.overrides["/html"] = lambda h: send(h, 200, b"  \n<html><head><title>404</title></head></html>",
                                               {"Content-Type": "application/octet-stream"})
    dest = tmp_path / "dl" / "x.txt"
    with pytest.raises(FetchError, match="empty body"):
        fetch_url(server.url("empty"), str(dest), None, FAST)
    with pytest.raises(FetchError, match="HTML page"):
        fetch_url(server.url("html"), str(dest), None, FAST)
    assert _no_leftovers(dest)


def test_fetch_url_size_cap(tmp_path, server):
    body = b"x.example\n" * 100_000  # 1 MB
    server.overrides["/big"] = lambda h: send(h, 200, body)
    server.overrides["/big-streamed"] = lambda h: send(h, 200, body, length=False)
    limits = FetchLimits(max_bytes=100_000, retries=0)
    dest = tmp_path / "dl" / "x.txt"
    dest.parent.mkdir()
    with pytest.raises(FetchError, match="over the limit of 100000 bytes") as info:
        fetch_url(server.url("big"), str(dest), None, limits)
    assert info.value.kind == "too-big"
    with pytest.raises(FetchError, match="over the limit of 100000 bytes"):
        fetch_url(server.url("big-streamed"), str(dest), None, limits)
    assert _no_leftovers(dest)


def test_fetch_url_gzip_and_gzip_bomb(tmp_path, server, test_data):
    (tmp_path / "public").mkdir()
    source = (test_data / "hagezi" / "tif.medium.onlydomains.txt").read_bytes()
    (tmp_path / "public" / "tif.txt").write_bytes(source)
    server.gzip_paths.add("/tif.txt")
    dest = tmp_path / "dl" / "tif.txt"
    result = fetch_url(server.url("tif.txt"), str(dest), None, FAST)
    assert dest.read_bytes() == source and result.file.size == len(source)
    assert result.file.sha256 == hashlib.sha256(source).hexdigest()

    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zero = b"\0" * (1 << 20)
    bomb = b"".join(comp.compress(zero) for _ in range(128)) + comp.flush()  # 128 MiB inflated
    assert len(bomb) < 200_000
    server.overrides["/bomb.txt"] = lambda h: send(h, 200, bomb, {"Content-Type": "text/plain",
                                                                  "Content-Encoding": "gzip"})
    limits = FetchLimits(max_bytes=8 << 20, retries=0)
    bomb_dest = tmp_path / "dl" / "bomb.txt"
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="over the limit") as info:
            fetch_url(server.url("bomb.txt"), str(bomb_dest), None, limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.kind == "too-big"
    assert peak < 16 << 20, f"peak {peak} bytes: the bomb was inflated in memory"
    assert _no_leftovers(bomb_dest)


def test_fetch_url_total_timeout_stops_a_trickling_server(tmp_path, server):
    server.overrides["/slow"] = _trickle
    dest = tmp_path / "dl" / "x.txt"
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out: .* not done after 1 s"):
        fetch_url(server.url("slow"), str(dest), None, FetchLimits(connect_timeout=2, total_timeout=1, retries=0))
    assert time.monotonic() - started < 4
    assert _no_leftovers(dest)


def _trickle(h) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/plain")
    h.end_headers()
    try:
        for _ in range(100):
            h.wfile.write(b"a")
            h.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def test_feed_over_https(tmp_path, src, keys, monkeypatch):
    (tmp_path / "certs").mkdir()
    ca, cert, key = make_test_certs(tmp_path / "certs", names=("localhost",))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    srv = FeedServer(tmp_path / "public", tls=server_tls_context(cert, key))
    try:
        build(src, keys, tmp_path / "public")
        result = FeedClient(srv.url(), keys[1], str(tmp_path / "state"), FAST).update()
        assert result.error is None and len(result.lists) == 3 and all(r.changed for r in result.lists.values())
        srv.overrides["/slow"] = _trickle
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out: .* not done after 1 s"):
            fetch_url(srv.url("slow"), str(tmp_path / "dl" / "x"), None,
                      FetchLimits(connect_timeout=2, total_timeout=1, retries=0))
        assert time.monotonic() - started < 4
    finally:
        srv.close()


class _HeaderDripper:
    """A raw socket server on 127.0.0.1 that accepts, reads the request, then sends "HTTP/1.1 200 OK\\r\\n"
    one byte every ``every`` seconds: requests' per-read timeout never fires on it."""

    def __init__(self, every: float):
        self.every = every
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n":
                    if self.stop.wait(self.every):
                        return
                    conn.sendall(bytes([byte]))
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_fetch_url_deadline_covers_the_headers_of_a_dripping_server(tmp_path):
    dripper = _HeaderDripper(every=2.0)
    try:
        dest = tmp_path / "dl" / "x.txt"
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out: .* not done after 3 s") as info:
            fetch_url(f"http://127.0.0.1:{dripper.port}/list.txt", str(dest), None,
                      FetchLimits(connect_timeout=2, total_timeout=3, retries=2, backoff=0.1))
        took = time.monotonic() - started
        assert info.value.kind == "timeout"
        assert 2.5 < took < 6, f"{took:.1f} s for a 3 s deadline"   # retries stay inside the one deadline
        assert _no_leftovers(dest)
    finally:
        dripper.close()


def test_feed_client_reports_a_dripping_manifest_and_keeps_its_lists(tmp_path, src, keys, server):
    build(src, keys, tmp_path / "public")
    limits = FetchLimits(connect_timeout=2, total_timeout=2, retries=0)
    client = FeedClient(server.url(), keys[1], str(tmp_path / "state"), limits)
    assert client.update().error is None
    server.overrides["/manifest.json"] = _trickle   # 100 bytes over 10 s
    started = time.monotonic()
    result = client.update()
    assert time.monotonic() - started < 6
    assert result.error and "timed out" in result.error and result.version == 1
    assert all(r.path for r in result.lists.values())
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["error"] == result.error and state["last_attempt"] > state["last_success"]
