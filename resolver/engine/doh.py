"""DNS-over-HTTPS upstream transport (RFC 8484 POST over HTTP/1.1 keep-alive), with the same
``await exchange(packet, key) -> reply`` / ``await close()`` interface as the transports in
:mod:`resolver.engine.transports`.
"""
from __future__ import annotations

import asyncio
import ssl

from resolver.engine.transports import MAX_MESSAGE, ProtocolError, QKey, _close_writer, _wait_closed, is_reply_to

class DoHTransport:
    """Minimal HTTP/1.1 DNS-over-HTTPS client (RFC 8484 POST): a small pool of keep-alive
    connections, one request in flight on each. The query ID is 0 on the wire and the
    caller's ID is put back into the reply."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext, server_hostname: str,
                 path: str, *, max_connections: int = 4, idle_timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        self._ssl, self._sni = ssl_context, server_hostname
        authority = f"[{server_hostname}]" if ":" in server_hostname else server_hostname
        if port != 443:
            authority += f":{port}"
        self._head = (f"POST {path or '/'} HTTP/1.1\r\nHost: {authority}\r\n"
                      "User-Agent: hearth\r\nAccept: application/dns-message\r\n"
                      "Content-Type: application/dns-message\r\nContent-Length: ").encode("ascii")
        self._max_connections = max_connections
        self._sem: asyncio.Semaphore | None = None   # made on first use (see StreamTransport._lock)
        self._idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._busy: set[asyncio.StreamWriter] = set()
        self._idle_timeout = idle_timeout
        self._closed = False
        self.connects = 0  # connections opened so far (for tests and status)

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = asyncio.get_running_loop().time()
        while self._idle:
            since, r, w = self._idle.pop()
            if r.at_eof() or w.is_closing() or now - since > self._idle_timeout:
                _close_writer(w)
                continue
            return r, w
        return None

    def reap(self) -> None:
        """Close idle connections that the server closed or that sat unused too long."""
        now, keep = asyncio.get_running_loop().time(), []
        for since, r, w in self._idle:
            if r.at_eof() or w.is_closing() or now - since > self._idle_timeout:
                _close_writer(w)
            else:
                keep.append((since, r, w))
        self._idle = keep

    async def exchange(self, packet: bytes, key: QKey) -> bytes:
        if self._closed:
            raise ConnectionError("upstream transport closed")
        wire = b"\0\0" + packet[2:]
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._max_connections)
        async with self._sem:
            for retry in (True, False):
                conn = self._take()
                reused = conn is not None
                if conn is None:
                    conn = await asyncio.open_connection(
                        self.host, self.port, ssl=self._ssl, server_hostname=self._sni)
                    self.connects += 1
                r, w = conn
                self._busy.add(w)
                keep = False
                try:
                    status, ctype, body, keep = await self._roundtrip(r, w, wire)
                    break
                except (ConnectionError, asyncio.IncompleteReadError):
                    if not (retry and reused) or self._closed:
                        raise
                finally:
                    self._busy.discard(w)
                    if keep and not self._closed:
                        self._idle.append((asyncio.get_running_loop().time(), r, w))
                    else:
                        _close_writer(w)
        if status != 200:
            raise ProtocolError(f"HTTP status {status}")
        if ctype.split(";")[0].strip().lower() != "application/dns-message":
            raise ProtocolError(f"unexpected content-type {ctype!r}")
        if not is_reply_to(body, 0, key):
            raise ProtocolError("reply does not match the query")
        return packet[:2] + body[2:]

    async def _roundtrip(self, r: asyncio.StreamReader, w: asyncio.StreamWriter,
                         body: bytes) -> tuple[int, str, bytes, bool]:
        w.write(self._head + b"%d\r\n\r\n" % len(body) + body)
        await w.drain()
        try:
            while True:
                lines = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                version, _, rest = lines[0].partition(" ")
                if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
                    raise ProtocolError(f"bad HTTP status line {lines[0][:60]!r}")
                status = int(rest[:3])
                if not 100 <= status < 200:
                    break
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            conn_hdr = hdrs.get("connection", "").lower()
            keep = ("keep-alive" in conn_hdr) if version == "HTTP/1.0" else "close" not in conn_hdr
            if status in (204, 304):
                data = b""
            elif "chunked" in hdrs.get("transfer-encoding", "").lower():
                data = await self._chunked(r)
            elif "content-length" in hdrs:
                n = int(hdrs["content-length"])
                if not 0 <= n <= MAX_MESSAGE:
                    raise ProtocolError(f"bad content-length {n}")
                data = await r.readexactly(n)
            else:  # body runs to end of connection
                data, keep = await r.read(MAX_MESSAGE + 1), False
                while len(data) <= MAX_MESSAGE and not r.at_eof():
                    data += await r.read(MAX_MESSAGE + 1 - len(data))
                if len(data) > MAX_MESSAGE:
                    raise ProtocolError("HTTP body too large")
        except (asyncio.LimitOverrunError, ValueError) as e:
            raise ProtocolError(f"bad HTTP response: {e}") from None
        return status, hdrs.get("content-type", ""), data, keep

    @staticmethod
    async def _chunked(r: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size = int((await r.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if not size:
                break
            if size < 0 or len(out) + size > MAX_MESSAGE:
                raise ProtocolError("HTTP body too large")
            out += await r.readexactly(size)
            if await r.readexactly(2) != b"\r\n":
                raise ProtocolError("bad HTTP chunk framing")
        while await r.readuntil(b"\r\n") != b"\r\n":
            pass  # trailer fields
        return bytes(out)

    async def close(self) -> None:
        self._closed = True
        writers = [w for _, _, w in self._idle] + list(self._busy)
        self._idle.clear()
        for w in writers:
            await _wait_closed(w)
