"""Wire transports for the upstream pool: UDP and pipelined TCP/TLS (DNS-over-HTTPS: :mod:`resolver.engine.doh`).

Each transport has ``await exchange(packet, key) -> reply`` and ``await close()``. ``key`` is
``question_key(packet)``; a transport returns only a reply whose ID and question match the query.
Transports know nothing about time-outs, retries or health: ``resolver.engine.upstream`` owns those and
bounds every ``exchange`` with its own time-out (cancellation cleans up after itself).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import ssl
import struct
from typing import Callable, Iterable, Optional

from resolver.engine import accel

_U16 = struct.Struct("!H")
_HH = struct.Struct("!HH")
MAX_MESSAGE = 65535

QKey = tuple  # (lower-cased wire qname, qtype, qclass), or () for a message without question


class ProtocolError(Exception):
    """The upstream sent something unusable (bad framing, mismatched reply, HTTP error)."""


def question_key(msg: bytes) -> QKey | None:
    """First question of ``msg`` as (lower-cased wire name, qtype, qclass); () if QDCOUNT is 0;
    None if the message is malformed. Follows compression pointers (replies may use them)."""
    if len(msg) < 12:
        return None
    if not (msg[4] or msg[5]):
        return ()
    off, end, hops, name = 12, 0, 0, []
    try:
        while True:
            n = msg[off]
            if n >= 0xC0:
                hops += 1
                if hops > 32:
                    return None
                end = end or off + 2
                off = (n & 0x3F) << 8 | msg[off + 1]
                continue
            if n > 63:
                return None
            label = msg[off:off + n + 1]
            if len(label) != n + 1:
                return None
            name.append(label)
            off += n + 1
            if not n:
                break
    except IndexError:
        return None
    end = end or off
    if len(msg) < end + 4:
        return None
    return (b"".join(name).lower(), *_HH.unpack_from(msg, end))


def is_reply_to(msg: bytes, qid: int, key: QKey) -> bool:
    """True if ``msg`` is a response (QR set) with ID ``qid`` and question ``key``."""
    return (len(msg) >= 12 and msg[2] & 0x80 and (msg[0] << 8 | msg[1]) == qid
            and question_key(msg) == key)


def _close_writer(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):  # an already broken transport: nothing more to do
        writer.close()


async def _wait_closed(writer: asyncio.StreamWriter) -> None:
    _close_writer(writer)
    with contextlib.suppress(Exception):  # best effort on shutdown, time-out included
        await asyncio.wait_for(writer.wait_closed(), 0.5)


# --------------------------------------------------------------------------------------------- UDP

def question_bytes(packet: bytes) -> bytes:
    """The question section of an uncompressed query: its name lower-cased, type and class as
    they are (lower-casing those would turn types 65-90, HTTPS among them, into others)."""
    i = 12
    while packet[i]:
        i += packet[i] + 1
    return packet[12:i + 1].lower() + packet[i + 1:i + 5]


def match_replies(pending: dict[int, list[list]], replies: Iterable[bytes]) -> int:
    """Hand each upstream reply to the query it answers: ``pending`` maps a query ID to its waiters, each
    [question bytes, on_reply]; a reply goes to the first waiter of its ID whose question it repeats, which
    leaves ``pending`` before ``on_reply(reply)`` is called. Late, forged and malformed replies are dropped.
    Returns how many were handed on. (``_fastpath.match_replies`` is the same in C.)"""
    matched = 0
    for data in replies:
        if len(data) < 12 or not data[2] & 0x80:
            continue
        qid = data[0] << 8 | data[1]
        waiters = pending.get(qid)
        if not waiters:
            continue   # late or forged: nobody waits for this ID
        for i, w in enumerate(waiters):
            # the name compares case-insensitively (0x20 randomisation, upstreams that change case); the type
            # and class bytes exactly: ``bytes.lower`` would change a type byte between 0x41 and 0x5A
            qb = w[0]
            end = 12 + len(qb)
            if len(qb) >= 5 and len(data) >= end and data[12:end - 4].lower() == qb[:-4] \
                    and data[end - 4:end] == qb[-4:]:
                if len(waiters) == 1:
                    del pending[qid]
                else:
                    del waiters[i]
                matched += 1
                w[1](data)
                break
    return matched


class _UDPEndpoint(asyncio.DatagramProtocol):
    """One connected datagram socket; waiters are keyed by ID, then matched by question.

    Waiters are plain callbacks, not futures: the engine forwards a cache miss without
    creating a task, so a reply costs one dict lookup and one call."""

    def __init__(self, owner: UDPTransport) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, list[list]] = {}   # qid -> [[question_bytes(), on_reply(data|exc)], …]
        self.uses = 0
        self.retired = False
        fastpath = accel.fastpath
        self._match = getattr(fastpath, "match_replies", match_replies)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.deliver((data,))

    def deliver(self, replies: Iterable[bytes]) -> None:
        """Hand each reply to the query it answers (the batched endpoint passes a whole ``recvmmsg`` batch in
        one call); late, forged and malformed ones are dropped."""
        try:
            self._match(self.pending, replies)
        finally:
            if self.retired and not self.pending:
                self.close()

    def _remove(self, qid: int, w: list) -> None:
        pending = self.pending
        waiters = pending.get(qid)
        if waiters is not None:
            if len(waiters) == 1:
                if waiters[0] is w:
                    del pending[qid]
            elif w in waiters:
                waiters.remove(w)
        if self.retired and not pending:
            self.close()

    def error_received(self, exc: Exception) -> None:
        # A connected socket only talks to its upstream: an ICMP error concerns every waiter.
        self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.retired = True
        self.owner._forget(self)
        self._fail(exc or ConnectionError("UDP socket closed"))

    def _fail(self, exc: Exception) -> None:
        pending, self.pending = self.pending, {}
        for waiters in pending.values():
            for w in waiters:
                w[1](exc)

    def close(self) -> None:
        self.retired = True
        if self.transport is not None:
            self.transport.close()

    def send(self, packet: bytes, waiter: list) -> None:
        self.transport.sendto(packet)


class _BatchedUDPEndpoint(_UDPEndpoint):
    """The same endpoint on a socket of its own, with the compiled accelerator (:mod:`resolver.engine.accel`):
    the queries of one event-loop turn leave in one ``sendmmsg`` and replies are read with ``recvmmsg``, so a
    burst of misses costs the upstream (and the kernel) one wake-up per batch, not one per query."""

    def __init__(self, owner: UDPTransport, sock: socket.socket, fastpath) -> None:
        super().__init__(owner)
        self.sock, self.fd, self.fastpath = sock, sock.fileno(), fastpath
        self.loop = asyncio.get_running_loop()
        self.outbox: list[bytes] = []
        self.waiting_send: list[tuple[int, list]] = []
        self.transport = None
        self.closed = False
        self.loop.add_reader(self.fd, self._readable)

    def send(self, packet: bytes, waiter: list) -> None:
        outbox = self.outbox
        outbox.append(packet)
        self.waiting_send.append(waiter)
        if len(outbox) == 1:
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        outbox, sent_for = self.outbox, self.waiting_send
        self.outbox, self.waiting_send = [], []
        if self.closed or not outbox:
            return
        for index, err in self.fastpath.send_batch(self.fd, outbox):
            packet, w = outbox[index], sent_for[index]   # as a failed sendto: that query's try fails
            self._remove(packet[0] << 8 | packet[1], w)
            w[1](OSError(err, os.strerror(err)))

    def _readable(self) -> None:
        try:
            replies = self.fastpath.recv_batch(self.fd, 64)
        except OSError as exc:   # an ICMP error: a connected socket only talks to its upstream
            if not self.closed:   # libuv stops a poll handle that reported an error: watch the socket again
                self.loop.remove_reader(self.fd)
                self.loop.add_reader(self.fd, self._readable)
            self._fail(exc)
            return
        self.deliver(replies)

    def close(self) -> None:
        self.retired = True
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)
            self.sock.close()
            self.loop.call_soon(self.connection_lost, None)


class UDPTransport:
    """A few connected UDP sockets to one upstream, each replaced after ``max_uses`` queries so
    the source port keeps changing."""

    def __init__(self, host: str, port: int, *, sockets: int = 6, max_uses: int = 2048) -> None:
        self.host, self.port = host, port
        self._size, self._max_uses = sockets, max_uses
        self._live: list[_UDPEndpoint] = []
        self._all: set[_UDPEndpoint] = set()
        self._opening = 0
        self._closed = False
        self._turn = 0

    def pending_count(self) -> int:
        """Queries waiting for a reply (for tests and status)."""
        return sum(len(w) for ep in self._all for w in ep.pending.values())

    def _forget(self, ep: _UDPEndpoint) -> None:
        self._all.discard(ep)
        if ep in self._live:
            self._live.remove(ep)

    def _open(self) -> None:
        """Open one more socket in the background (sockets open asynchronously); with the accelerator, at once."""
        fastpath = accel.fastpath
        if fastpath is not None:
            try:
                sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
                # replies to a whole batch arrive at once: room for them while the loop is busy elsewhere
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                sock.connect((self.host, self.port))
            except OSError:
                return
            ep = _BatchedUDPEndpoint(self, sock, fastpath)
            self._live.append(ep)
            self._all.add(ep)
            return
        self._opening += 1

        async def opener() -> None:
            try:
                _, ep = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: _UDPEndpoint(self), remote_addr=(self.host, self.port))
            except OSError:
                return
            finally:
                self._opening -= 1
            if self._closed:
                ep.close()
                return
            self._live.append(ep)
            self._all.add(ep)

        asyncio.ensure_future(opener())

    async def _ready(self) -> None:
        while not self._live:
            if self._closed:
                raise ConnectionError("upstream transport closed")
            if not self._opening:
                self._open()
            await asyncio.sleep(0)
            if not self._live and self._opening:
                await asyncio.sleep(0.001)

    def send(self, packet: bytes, on_reply: Callable[[object], None],
             question: Optional[bytes] = None) -> Optional[tuple]:
        """Send ``packet``; ``on_reply`` later gets the matching reply bytes or an exception.

        Returns a token for :meth:`cancel`, or None if no socket is open yet (call
        :meth:`exchange`, which waits for one)."""
        if self._closed:
            raise ConnectionError("upstream transport closed")
        live = self._live
        if len(live) + self._opening < self._size:
            self._open()
        if not live:
            return None
        self._turn = turn = self._turn + 1
        ep = live[turn % len(live)]
        qid = packet[0] << 8 | packet[1]
        w = [question if question is not None else question_bytes(packet), on_reply]
        pending = ep.pending
        waiters = pending.get(qid)
        if waiters is None:
            pending[qid] = [w]
        else:
            waiters.append(w)
        ep.uses = uses = ep.uses + 1
        if uses >= self._max_uses and ep in live:
            live.remove(ep)  # retire: no new queries, closed once its last reply is in
            ep.retired = True
        ep.send(packet, w)
        return ep, qid, w

    @staticmethod
    def cancel(token: tuple) -> None:
        ep, qid, w = token
        ep._remove(qid, w)

    async def exchange(self, packet: bytes, key: QKey = ()) -> bytes:
        if self._closed:
            raise ConnectionError("upstream transport closed")
        fut = asyncio.get_running_loop().create_future()

        def on_reply(result: object) -> None:
            if not fut.done():
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

        token = self.send(packet, on_reply)
        if token is None:
            await self._ready()
            token = self.send(packet, on_reply)
        try:
            return await fut
        finally:
            if not fut.done() or fut.cancelled():
                self.cancel(token)

    async def close(self) -> None:
        self._closed = True
        for ep in list(self._all):
            ep.close()
        self._live.clear()


# ------------------------------------------------------------------------------------- TCP / TLS

class _StreamConn:
    __slots__ = ("closed", "idle", "pending", "reader", "task", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pending: dict[int, tuple[QKey, asyncio.Future]] = {}
        self.task: asyncio.Task | None = None
        self.closed = False
        self.idle: asyncio.TimerHandle | None = None


class StreamTransport:
    """One persistent, pipelined DNS-over-TCP (or DNS-over-TLS when ``ssl_context`` is set)
    connection: many outstanding queries, replies matched by ID in any order, reconnect on
    close, closed after ``idle_timeout`` seconds without outstanding queries."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, *, idle_timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        self._ssl, self._sni = ssl_context, (server_hostname or host) if ssl_context else None
        self._idle_timeout = idle_timeout
        self._conn: _StreamConn | None = None
        self._tasks: set[asyncio.Task] = set()
        # made on first use: on Python 3.9 a lock binds to the loop current when it is created, and
        # transports are built before the engine's loop runs
        self._lock: asyncio.Lock | None = None
        self._closed = False
        self.connects = 0  # connections opened so far (for tests and status)

    def pending_count(self) -> int:
        c = self._conn
        return len(c.pending) if c and not c.closed else 0

    async def _connection(self) -> tuple[_StreamConn, bool]:
        """The live connection and whether it existed already (stale candidates get one retry)."""
        c = self._conn
        if c is not None and not c.closed:
            return c, True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            c = self._conn
            if c is not None and not c.closed:
                return c, True
            if self._closed:
                raise ConnectionError("upstream transport closed")
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, server_hostname=self._sni)
            if self._closed:
                _close_writer(writer)
                raise ConnectionError("upstream transport closed")
            c = self._conn = _StreamConn(reader, writer)
            c.task = asyncio.get_running_loop().create_task(self._read(c))
            self._tasks.add(c.task)
            c.task.add_done_callback(self._tasks.discard)
            self.connects += 1
            return c, False

    async def _read(self, c: _StreamConn) -> None:
        exc: BaseException = ConnectionError("connection closed by upstream")
        try:
            r = c.reader
            while True:
                msg = await r.readexactly(_U16.unpack(await r.readexactly(2))[0])
                if len(msg) < 12:
                    raise ProtocolError("short DNS message on stream")
                ent = c.pending.get(msg[0] << 8 | msg[1])
                if ent is None or ent[1].done():
                    continue  # reply to a query that timed out or was cancelled
                if msg[2] & 0x80 and question_key(msg) == ent[0]:
                    ent[1].set_result(msg)
                else:
                    ent[1].set_exception(ProtocolError("reply question does not match the query"))
        except asyncio.IncompleteReadError:
            pass
        except asyncio.CancelledError:
            exc = ConnectionError("upstream transport closed")
            raise
        except Exception as e:  # noqa: BLE001 - any read failure ends this connection
            exc = e
        finally:
            self._drop(c, exc)

    def _drop(self, c: _StreamConn, exc: BaseException) -> None:
        c.closed = True
        if c.idle is not None:
            c.idle.cancel()
        for _, fut in c.pending.values():
            if not fut.done():
                fut.set_exception(exc)
        _close_writer(c.writer)

    def _idle_close(self, c: _StreamConn) -> None:
        c.idle = None
        if not c.pending and not c.closed:
            c.closed = True
            _close_writer(c.writer)  # the reader task then sees EOF and ends

    async def exchange(self, packet: bytes, key: QKey) -> bytes:
        for retry in (True, False):
            c, reused = await self._connection()
            try:
                return await self._send(c, packet, key)
            except (ConnectionError, asyncio.IncompleteReadError):
                if not (retry and reused) or self._closed:
                    raise
                # The upstream may have closed an idle connection under us: retry once on a new one.
        raise AssertionError("unreachable")

    async def _send(self, c: _StreamConn, packet: bytes, key: QKey) -> bytes:
        if c.closed:
            raise ConnectionError("connection closed by upstream")
        qid = wid = packet[0] << 8 | packet[1]
        while wid in c.pending:  # ID already outstanding on this connection: use another one
            wid = random.getrandbits(16)
        if wid != qid:
            packet = _U16.pack(wid) + packet[2:]
        fut = asyncio.get_running_loop().create_future()
        c.pending[wid] = (key, fut)
        if c.idle is not None:
            c.idle.cancel()
            c.idle = None
        try:
            c.writer.write(_U16.pack(len(packet)) + packet)
            await c.writer.drain()
            reply = await fut
        finally:
            del c.pending[wid]
            if not c.pending and not c.closed:
                c.idle = asyncio.get_running_loop().call_later(
                    self._idle_timeout, self._idle_close, c)
        return reply if wid == qid else _U16.pack(qid) + reply[2:]

    async def close(self) -> None:
        self._closed = True
        c, self._conn = self._conn, None
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if c is not None:
            self._drop(c, ConnectionError("upstream transport closed"))
            await _wait_closed(c.writer)
