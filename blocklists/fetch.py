"""Downloading lists on the appliance.

:func:`fetch_url` downloads one URL (``http``, ``https`` or ``file``) into a file, with a conditional
GET against what was fetched before, size and time limits (one deadline for connect, headers and body),
and no partial files left behind. Signed provider feeds are kept in step by
:class:`blocklists.feed_client.FeedClient`, which uses it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import socket
import tempfile
import threading
import time
import weakref
import zlib
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Callable, Optional
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .feed import (
    FeedError,
    looks_like_html,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None

try:
    from resolver import __version__ as _VERSION
except ImportError:  # pragma: no cover
    _VERSION = "0"

__all__ = ["CachedFile", "FetchError", "FetchLimits", "FetchResult", "fetch_url", "urljoin"]

USER_AGENT = f"hearth/{_VERSION}"
_CHUNK = 64 * 1024
_PIECE = 1024 * 1024  # most decompressed output produced from one compressed chunk at a time
_HEAD = 512           # bytes looked at to tell an HTML page from a list


@dataclass
class FetchLimits:
    connect_timeout: float = 10.0   # seconds to connect to one address
    total_timeout: float = 120.0    # THE deadline of one download: connecting, headers, body and retries together
    max_bytes: int = 64 * 1024 * 1024  # cap on the body as stored, i.e. after gzip decoding
    retries: int = 2                # extra attempts after connection errors, time-outs and 5xx
    backoff: float = 1.0            # seconds before the first retry, doubled each time


@dataclass
class CachedFile:
    """What we remember about a file fetched from a URL (and need for the next conditional GET)."""

    path: str
    etag: Optional[str] = None
    last_modified: Optional[str] = None
    sha256: str = ""
    size: int = 0
    fetched_at: float = 0.0         # UNIX time of the download

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Optional[CachedFile]:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class FetchResult:
    file: CachedFile
    not_modified: bool = False


class FetchError(FeedError):
    """A download failed. ``kind``: http, html, empty, too-big, connection, timeout, corrupt, checksum, other."""

    def __init__(self, message: str, kind: str = "other", status: Optional[int] = None, retryable: bool = False):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retryable = retryable


# -- one URL ------------------------------------------------------------------------------------------------

def fetch_url(url: str, dest_path: str, previous: Optional[CachedFile] = None,
              limits: Optional[FetchLimits] = None, session: Optional[requests.Session] = None) -> FetchResult:
    """Download ``url`` to ``dest_path`` (replaced atomically, never left partial).

    With ``previous`` (whose file still exists) the request is conditional; a 304 answer returns
    ``FetchResult(previous, not_modified=True)`` and leaves ``dest_path`` alone. The whole download,
    retries included, ends within ``limits.total_timeout`` seconds, whatever the server does (a server
    that drips its headers or its body one byte at a time is cut off). Raises FetchError."""
    limits = limits or FetchLimits()
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return _fetch_file(url, dest_path, previous, limits)
    if scheme not in ("http", "https"):
        raise FetchError(f"{redact(url)}: unsupported URL scheme (use http, https or file)")
    deadline = time.monotonic() + limits.total_timeout
    own = session is None or not isinstance(session.get_adapter(url), DeadlineAdapter)
    if own:
        session = deadline_session()
    try:
        attempt = 0
        while True:
            try:
                return _fetch_http(url, dest_path, previous, limits, session, deadline)
            except FetchError as exc:
                pause = limits.backoff * (2 ** attempt)
                if not exc.retryable or attempt >= limits.retries or time.monotonic() + pause >= deadline:
                    if attempt:
                        raise FetchError(f"{exc} (after {attempt + 1} attempts)", exc.kind, exc.status) from None
                    raise
            time.sleep(pause)
            attempt += 1
    finally:
        if own:
            session.close()


def _usable(previous: Optional[CachedFile]) -> Optional[CachedFile]:
    return previous if previous is not None and os.path.isfile(previous.path) else None


def _fetch_http(url: str, dest_path: str, previous: Optional[CachedFile], limits: FetchLimits,
                session: requests.Session, deadline: float) -> FetchResult:
    shown = redact(url)
    previous = _usable(previous)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", "Accept": "*/*"}
    if previous is not None:
        if previous.etag:
            headers["If-None-Match"] = previous.etag
        if previous.last_modified:
            headers["If-Modified-Since"] = previous.last_modified
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(_too_slow(shown, limits), "timeout")
    # The watchdog runs from before the connection is opened: it cuts a server that accepts and then
    # sends its headers one byte at a time, which requests' per-read timeouts never do.
    watchdog = _Watchdog(left, session.get_adapter(url))
    resp = None
    try:
        try:
            resp = session.get(url, headers=headers, stream=True, allow_redirects=True,
                               timeout=(max(0.1, min(limits.connect_timeout, left)), max(0.1, left)))
        except (requests.ConnectionError, requests.Timeout) as exc:
            if watchdog.fired:
                raise FetchError(_too_slow(shown, limits), "timeout") from None
            raise FetchError(connect_error(shown, exc), "connection", retryable=True) from None
        except requests.RequestException as exc:
            if watchdog.fired:
                raise FetchError(_too_slow(shown, limits), "timeout") from None
            raise FetchError(f"{shown}: request failed: {_short(exc)}", "connection") from None
        status = resp.status_code
        if status == 304:
            if previous is None:
                raise FetchError(f"HTTP 304 Not Modified to an unconditional request from {shown}", "http", 304)
            return FetchResult(previous, not_modified=True)
        if status != 200:
            reason = f" {resp.reason}" if resp.reason else ""
            raise FetchError(f"HTTP {status}{reason} from {shown}", "http", status, retryable=status >= 500)
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml"):
            raise FetchError(f"{shown}: got an HTML page (Content-Type {ctype}), not a list", "html", status)
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limits.max_bytes:
            raise FetchError(f"{shown}: {length} bytes, over the limit of {limits.max_bytes} bytes", "too-big",
                             status)
        decoder = _Decoder(resp.headers.get("Content-Encoding", ""), shown)
        sink = _Sink(dest_path, limits.max_bytes, shown)
        try:
            raw_total = 0
            for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                raw_total += len(chunk)
                if raw_total > limits.max_bytes:
                    raise FetchError(f"{shown}: over the limit of {limits.max_bytes} bytes", "too-big", status)
                decoder.feed(chunk, sink.write)
                if time.monotonic() > deadline:
                    raise FetchError(_too_slow(shown, limits), "timeout", status)
            if watchdog.fired:  # the body may look complete when the connection was cut
                raise FetchError(_too_slow(shown, limits), "timeout", status)
            decoder.finish()
            file = sink.finish()
        except BaseException:
            sink.abort()
            raise
        file.etag = resp.headers.get("ETag")
        file.last_modified = resp.headers.get("Last-Modified")
        return FetchResult(file)
    except FetchError as exc:
        if watchdog.fired and exc.kind != "timeout":  # e.g. a gzip stream cut short by the watchdog
            raise FetchError(_too_slow(shown, limits), "timeout") from None
        raise
    except Exception as exc:
        # After the watchdog shut the socket down, reads fail in ways that depend on the TLS and
        # urllib3 versions (OSError, ValueError, ProtocolError...).
        if watchdog.fired:
            raise FetchError(_too_slow(shown, limits), "timeout") from None
        if isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, OSError)):
            raise FetchError(f"{shown}: connection broken: {_short(exc)}", "connection", retryable=True) from None
        raise
    finally:
        watchdog.cancel()
        if resp is not None:
            resp.close()


def _too_slow(shown: str, limits: FetchLimits) -> str:
    return f"timed out: {shown} was not done after {limits.total_timeout:g} s"


def connect_error(shown: str, exc: BaseException) -> str:
    """A failed connection in plain words: "cannot connect to HOST:PORT: connection refused"."""
    text = _short(exc)
    low = text.lower()
    plain = next((words for key, words in (
        ("refused", "connection refused"), ("name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"), ("temporary failure in name resolution",
                                                          "host name not found (no DNS answer)"),
        ("failed to resolve", "host name not found"), ("network is unreachable", "network unreachable"),
        ("no route to host", "no route to the host"), ("timed out", "no answer (connection timed out)"),
        ("certificate verify failed", "TLS certificate not trusted"), ("reset by peer", "connection reset"),
    ) if key in low), None)
    parts = urlsplit(shown)
    where = parts.netloc or shown
    return f"cannot connect to {where}: {plain}" if plain else f"cannot connect to {where}: {text}"


def _fetch_file(url: str, dest_path: str, previous: Optional[CachedFile], limits: FetchLimits) -> FetchResult:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: file URLs must name a local file (file:///path)")
    path = url2pathname(parts.path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise FetchError(f"{url}: {exc.strerror or exc}", "http", 404) from None
    if not os.path.isfile(path):
        raise FetchError(f"{url}: not a regular file", "http", 404)
    etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    previous = _usable(previous)
    if previous is not None and previous.etag == etag:
        return FetchResult(previous, not_modified=True)
    if st.st_size > limits.max_bytes:
        raise FetchError(f"{url}: {st.st_size} bytes, over the limit of {limits.max_bytes} bytes", "too-big")
    sink = _Sink(dest_path, limits.max_bytes, url)
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                sink.write(block)
        file = sink.finish()
    except OSError as exc:
        sink.abort()
        raise FetchError(f"{url}: {exc.strerror or exc}") from None
    except BaseException:
        sink.abort()
        raise
    file.etag = etag
    file.last_modified = formatdate(st.st_mtime, usegmt=True)
    return FetchResult(file)


class _Sink:
    """A temporary file beside the destination that counts, hashes and checks what is written."""

    def __init__(self, dest_path: str, max_bytes: int, shown: str):
        self.dest_path, self.max_bytes, self.shown = dest_path, max_bytes, shown
        directory = os.path.dirname(dest_path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(dest_path) + ".",
                                            suffix=".part")
        except OSError as exc:
            raise FetchError(f"cannot write in {directory}: {exc.strerror or exc}") from None
        self.fh = os.fdopen(fd, "wb")
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.checked_head = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            raise FetchError(f"{self.shown}: over the limit of {self.max_bytes} bytes", "too-big")
        if not self.checked_head:
            self.head += data[:_HEAD - len(self.head)]
            if len(self.head) >= _HEAD:
                self._check_head()
        self.hash.update(data)
        self.fh.write(data)

    def _check_head(self) -> None:
        self.checked_head = True
        if looks_like_html(self.head):
            raise FetchError(f"{self.shown}: got an HTML page, not a list", "html")

    def finish(self) -> CachedFile:
        if self.size == 0:
            raise FetchError(f"{self.shown}: empty body", "empty")
        if not self.checked_head:
            self._check_head()
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.chmod(self.tmp, 0o644)
            os.replace(self.tmp, self.dest_path)
        except OSError as exc:
            raise FetchError(f"cannot write {self.dest_path}: {exc.strerror or exc}") from None
        return CachedFile(path=self.dest_path, sha256=self.hash.hexdigest(), size=self.size, fetched_at=time.time())

    def abort(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class _Decoder:
    """Content-Encoding decoding with bounded output per step, so a gzip bomb is stopped by the size cap
    before it is inflated in memory."""

    def __init__(self, encoding: str, shown: str):
        self.encoding = encoding.strip().lower()
        self.shown = shown
        if self.encoding in ("", "identity"):
            self._d = None
        elif self.encoding in ("gzip", "x-gzip", "deflate"):
            self._d = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header
        else:
            raise FetchError(f"{shown}: unsupported Content-Encoding {encoding!r}", "corrupt")
        self._seen = False

    def feed(self, data: bytes, write: Callable[[bytes], None]) -> None:
        if self._d is None:
            write(data)
            return
        try:
            while data:
                if self._d.eof:  # another gzip member follows
                    self._d = zlib.decompressobj(32 + zlib.MAX_WBITS)
                self._seen = True
                write(self._d.decompress(data, _PIECE))
                data = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(f"{self.shown}: corrupt {self.encoding} body ({exc})", "corrupt") from None

    def finish(self) -> None:
        if self._d is not None and self._seen and not self._d.eof:
            raise FetchError(f"{self.shown}: truncated {self.encoding} body", "corrupt", retryable=True)


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter that remembers the connections it opens, so a download's deadline can shut one
    down wherever it is stuck: during the TLS handshake, waiting for the headers, or reading the body."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.connections: weakref.WeakSet = weakref.WeakSet()
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        live = self.connections

        class _Tracked:
            def _new_conn(self):  # type: ignore[no-untyped-def]
                sock = super()._new_conn()
                self._hearth_raw_sock = sock
                live.add(self)
                return sock

            def connect(self):  # type: ignore[no-untyped-def]
                super().connect()
                # http.client drops ``sock`` when the response takes the connection over: keep it
                self._hearth_sock = self.sock

        http_conn = type("HearthHTTPConnection", (_Tracked, HTTPConnection), {})
        https_conn = type("HearthHTTPSConnection", (_Tracked, HTTPSConnection), {})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("HearthHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("HearthHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }

    def cut(self) -> None:
        """Shut down every open connection of this adapter (the session is used by one thread at a time)."""
        for conn in list(self.connections):
            for sock in (getattr(conn, "sock", None), getattr(conn, "_hearth_sock", None),
                         getattr(conn, "_hearth_raw_sock", None)):
                if isinstance(sock, socket.socket):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


def deadline_session() -> requests.Session:
    """A requests session whose downloads :func:`fetch_url` can cut off at their deadline."""
    session = requests.Session()
    adapter = DeadlineAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _Watchdog:
    """Enforces the deadline of one download: when it expires it shuts the connection down, which ends
    a connect, a header read or a body read that a slow server keeps alive one byte at a time."""

    def __init__(self, seconds: float, adapter: Any):
        self.fired = False
        self._adapter = adapter
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if isinstance(self._adapter, DeadlineAdapter):
            self._adapter.cut()

    def cancel(self) -> None:
        self._timer.cancel()


def redact(url: str) -> str:
    """``url`` without a user name or password, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _short(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error, in one line."""
    seen = exc
    for _ in range(6):
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        inner = inner or getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            break
        seen = inner
    text = str(seen).replace("\n", " ")
    # "HTTPConnection(host=..., port=...): Failed to ..." or "<urllib3.connection... object at 0x..>: ..."
    text = re.sub(r"^(<[^>]*>|\w+\([^)]*\)): ", "", text)
    return text[:200] or type(seen).__name__


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _rename_quiet(src: str, dst: str) -> None:
    try:
        os.replace(src, dst)
    except OSError:
        pass
