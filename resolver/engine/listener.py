"""Sockets: UDP and TCP endpoints on every listen address, TCP framing and limits."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from functools import partial
from typing import Optional

from resolver.engine import accel
from resolver.engine.pipeline import Pipeline
from resolver.engine.stats import Stats

log = logging.getLogger("hearth.listener")



MAX_TCP_MESSAGE = 65535
MAX_TCP_INFLIGHT = 64  # pipelined queries one connection may have outstanding
TCP_BACKLOG = 1024     # connections the kernel queues before we accept them (a burst must not refuse SYNs)
UDP_BATCH = 64         # datagrams read per wake-up at most, so TCP and timers get their turn under a flood
UDP_MAX = 65535        # largest datagram read (a shorter buffer would truncate an oversized query)


class ListenError(OSError):
    """A listen address cannot be bound; the message names it, the protocol and the likely cause."""

    def __init__(self, host: str, port: int, proto: str, exc: OSError):
        from resolver.engine.startup import bind_error

        super().__init__(exc.errno, bind_error(host, port, proto, exc))

    def __str__(self) -> str:
        return self.strerror


class UdpEndpoint(asyncio.DatagramProtocol):
    """Answers datagrams; cache hits are sent before this callback returns."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.transport: Optional[asyncio.DatagramTransport] = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        out = self.pipeline.answer_cached(data, addr[0], True)
        if out:
            self.transport.sendto(out, addr)
        elif out is None:
            self.pipeline.resolve_later(data, addr[0], True, partial(self._send, addr))

    def _send(self, addr, out: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable from a gone client etc.
        log.debug("udp error: %s", exc)


class UdpReader:
    """A UDP listening socket read straight from the event loop: each wake-up drains the socket
    (up to ``UDP_BATCH`` datagrams, until EAGAIN) and answers cache hits with one ``sendto`` each,
    so a busy socket costs one poll per batch instead of one event-loop round per datagram, and
    no transport object sits between the socket and the cache.

    With the compiled accelerator (``_fastpath.UdpBatch``, see ``_fastpath.c``) one ``recvmmsg``
    reads the batch, the plain cache hits are answered in C with the same checks and side effects
    as :meth:`Pipeline.answer_cached` and sent with one ``sendmmsg``, and the other datagrams come
    back to the Python code below. It is used when it was built and HEARTH_NO_ACCEL is not set; on
    ``time.monotonic`` it reads CLOCK_MONOTONIC itself, any other clock (a test's) it calls.

    A reply that does not fit the socket's send buffer (EAGAIN) is dropped, as a UDP server may:
    the client asks again. Errors from the socket (ICMP port unreachable from a gone client)
    are ignored."""

    def __init__(self, pipeline: Pipeline, sock: socket.socket, loop: asyncio.AbstractEventLoop):
        sock.setblocking(False)
        self.pipeline = pipeline
        self.sock = sock
        self.loop = loop
        self.closed = False
        self._dropped = 0
        self._outbox: list[tuple[bytes, tuple]] = []
        self.batch = None
        self._fastpath = fastpath = accel.fastpath
        if fastpath is not None:
            self.batch = fastpath.UdpBatch(sock.fileno(), UDP_BATCH)
            loop.add_reader(sock.fileno(), self._readable_batch)
        else:
            loop.add_reader(sock.fileno(), self._readable)

    @property
    def accelerated(self) -> bool:
        return self.batch is not None

    @property
    def send_dropped(self) -> int:
        """Replies dropped because the socket's send buffer was full."""
        return self._dropped + (self.batch.counters()["send_dropped"] if self.batch is not None else 0)

    def _readable_batch(self) -> None:
        p = self.pipeline
        clock = p.clock
        rest = self.batch.serve(p.access.states, p.generation, p.querylog, p.stats,
                                None if clock is time.monotonic else clock)
        if rest:
            sendto = self.sock.sendto
            answer = p.answer_cached
            send_later, bound = self._send, self._fastpath.bound
            for data, addr in rest:
                out = answer(data, addr[0], True)
                if out:
                    try:
                        sendto(out, addr)
                    except OSError:
                        self._dropped += 1
                elif out is None:   # _fastpath.bound: made for every miss, a third of a partial's cost
                    p.resolve_later(data, addr[0], True, bound(send_later, addr))

    def _readable(self) -> None:
        recvfrom, sendto = self.sock.recvfrom, self.sock.sendto
        answer = self.pipeline.answer_cached
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(UDP_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ECONNREFUSED queued by an ICMP error for an earlier reply
                log.debug("udp error: %s", exc)
                continue
            out = answer(data, addr[0], True)
            if out:
                try:
                    sendto(out, addr)
                except OSError:
                    self._dropped += 1
            elif out is None:
                self.pipeline.resolve_later(data, addr[0], True, partial(self._send, addr))

    def _send(self, addr, out: bytes) -> None:
        """An answer that came later (an upstream's reply): with the accelerator, the answers made in one
        turn of the event loop leave together in one ``sendmmsg``."""
        if not self.closed:
            if self.batch is not None:
                outbox = self._outbox
                outbox.append((out, addr))
                if len(outbox) == 1:
                    self.loop.call_soon(self._flush)
                return
            try:
                self.sock.sendto(out, addr)
            except OSError:
                self._dropped += 1

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if outbox and not self.closed:
            self._dropped += len(self._fastpath.send_batch(self.sock.fileno(), outbox))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class TcpConnection(asyncio.Protocol):
    """One client connection: 2-byte length framing, pipelined queries, idle time-out."""

    def __init__(self, server: TcpServer):
        self.server = server
        self.pipeline = server.pipeline
        self.buf = bytearray()
        self.transport: Optional[asyncio.Transport] = None
        self.client = ""
        self.inflight = 0
        self.idle: Optional[asyncio.TimerHandle] = None
        self.paused = False
        self.last_active = 0.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.last_active = asyncio.get_running_loop().time()
        if not self.server.admit(self):
            self.server.stats.tcp_rejected += 1
            transport.abort()
            return
        self.server.stats.tcp_connections += 1
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(self.server.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        if self.inflight == 0 and self.transport is not None:
            self.transport.close()
        else:
            self._arm_idle()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        buf = self.buf
        while len(buf) >= 2:
            size = buf[0] << 8 | buf[1]
            if size < 12:  # cannot even hold a header: the stream is garbage, end it
                self.transport.close()
                buf.clear()
                return
            if len(buf) < 2 + size:
                break
            msg = bytes(buf[2:2 + size])
            del buf[:2 + size]
            self.last_active = asyncio.get_running_loop().time()
            self._arm_idle()
            out = self.pipeline.answer_cached(msg, self.client, False)
            if out:
                self._send(out)
            elif out is None:
                self.inflight += 1
                if self.inflight >= MAX_TCP_INFLIGHT and not self.paused:
                    self.paused = True
                    self.transport.pause_reading()
                self.pipeline.resolve_later(msg, self.client, False, self._send_async)
        if len(buf) > 2 + MAX_TCP_MESSAGE:
            self.transport.close()

    def _send(self, out: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.last_active = asyncio.get_running_loop().time()
            self.transport.write(len(out).to_bytes(2, "big") + out)

    def _send_async(self, out: bytes) -> None:
        self.inflight -= 1
        if self.paused and self.inflight < MAX_TCP_INFLIGHT // 2 and self.transport is not None \
                and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()
        self._send(out)

    def connection_lost(self, exc) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.server.forget(self)
        self.transport = None


class TcpServer:
    """The table of open client connections and who may have a slot in it.

    One address holds at most ``max_per_client`` connections: past that its idlest one is closed to
    make room (RFC 7766 lets a server close idle connections), so a client that floods hurts only
    itself. When the whole table is full, a newcomer takes the slot of the idlest connection of the
    address holding the most: clients that are not the heaviest always get in."""

    def __init__(self, pipeline: Pipeline, stats: Stats, idle_timeout: float, max_connections: int,
                 max_per_client: int = 32):
        self.pipeline = pipeline
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.connections: set[TcpConnection] = set()
        self.by_client: dict[str, set[TcpConnection]] = {}

    def admit(self, conn: TcpConnection) -> bool:
        """Take ``conn`` into the table, closing an idle connection to make room if needed; False when
        every candidate is busy (then ``conn`` is refused)."""
        mine = self.by_client.get(conn.client)
        if mine is not None and len(mine) >= self.max_per_client:
            victims = mine
        elif len(self.connections) >= self.max_connections:
            victims = max(self.by_client.values(), key=len)
        else:
            victims = None
        if victims is not None:
            victim = _idlest(victims)
            if victim is None:
                return False
            self.evict(victim)
        self.connections.add(conn)
        if mine is None:
            mine = self.by_client[conn.client] = set()
        mine.add(conn)
        return True

    def evict(self, conn: TcpConnection) -> None:
        """Close an idle connection to make room for a new one."""
        self.stats.tcp_evicted += 1
        self.forget(conn)
        if conn.transport is not None:
            conn.transport.close()

    def forget(self, conn: TcpConnection) -> None:
        self.connections.discard(conn)
        mine = self.by_client.get(conn.client)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self.by_client[conn.client]


def _idlest(conns: set[TcpConnection]) -> Optional[TcpConnection]:
    """The connection with no query in flight that was quiet the longest (None: all are busy)."""
    best = None
    for c in conns:
        if c.inflight == 0 and (best is None or c.last_active < best.last_active):
            best = c
    return best


class Listeners:
    """All sockets for a set of listen addresses; can be re-pointed on reload.

    ``reuse_port``: bind with SO_REUSEPORT, so the engine processes of ``dns.workers`` each hold their own
    UDP and TCP sockets on the same address and the kernel spreads clients over them (a socket closed by a
    worker that died leaves the group: the others take its share). Off for one engine, so a second Hearth
    on the same port fails with "address already in use" instead of sharing it."""

    def __init__(self, pipeline: Pipeline, stats: Stats, *, idle_timeout: float, max_connections: int,
                 max_per_client: int = 32, reuse_port: bool = False):
        self.tcp = TcpServer(pipeline, stats, idle_timeout, max_connections, max_per_client)
        self.udp_by_addr: dict[tuple[str, int], UdpReader] = {}
        self.tcp_by_addr: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self.pipeline = pipeline
        self.reuse_port = reuse_port

    async def open(self, host: str, port: int) -> tuple[str, int]:
        """Bind UDP and TCP on (host, port); port 0 picks one free port for both. Returns the bound pair."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(20):
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                udp_sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            try:
                udp_sock.bind((host, port))
            except OSError as exc:
                udp_sock.close()
                raise ListenError(host, port, "udp", exc) from None
            bound = udp_sock.getsockname()[1]
            tcp_sock = socket.socket(family, socket.SOCK_STREAM)
            if family == socket.AF_INET6:
                tcp_sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                tcp_sock.bind((host, bound))
            except OSError as exc:
                udp_sock.close()
                tcp_sock.close()
                if port:
                    raise ListenError(host, port, "tcp", exc) from None
                continue  # the UDP port's TCP twin is taken: try another
            tcp_sock.listen(TCP_BACKLOG)
            server = await loop.create_server(lambda: TcpConnection(self.tcp), sock=tcp_sock)
            transport = UdpReader(self.pipeline, udp_sock, loop)
            self.udp_by_addr[(host, bound)] = transport
            self.tcp_by_addr[(host, bound)] = server
            return host, bound
        raise OSError(f"no free port pair on {host}")

    async def close(self, addr: Optional[tuple[str, int]] = None) -> None:
        """Close one address's sockets, or all of them."""
        addrs = [addr] if addr else list(self.udp_by_addr)
        for a in addrs:
            udp = self.udp_by_addr.pop(a, None)
            if udp is not None:
                udp.close()
            server = self.tcp_by_addr.pop(a, None)
            if server is not None:
                server.close()
        if addr is None:
            for conn in list(self.tcp.connections):
                if conn.transport is not None:
                    conn.transport.close()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return list(self.udp_by_addr)
