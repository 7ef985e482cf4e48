"""Upstream pool: forward one DNS query (wire bytes) to the configured resolvers.

Upstreams are URLs: ``udp://``, ``tcp://``, ``tls://`` (DNS-over-TLS) and ``https://``
(DNS-over-HTTPS, RFC 8484). There is no bootstrap resolver, so every upstream names an IP
address to connect to. The transports live in
``resolver.engine.transports`` and ``resolver.engine.doh``, the URLs' parsing in
``resolver.engine.upstream_spec``; this module owns the choice of upstream (failover or fastest),
attempts and time-outs, and health.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import struct
import time
from functools import partial
from typing import Callable, Optional, Union

from resolver.engine import accel
from resolver.engine.doh import DoHTransport
from resolver.engine.upstream_spec import UpstreamError, UpstreamSpec, parse_upstream
from resolver.engine.transports import (
    ProtocolError,
    QKey,
    StreamTransport,
    UDPTransport,
    _BatchedUDPEndpoint,
    question_bytes,
    question_key,
)

log = logging.getLogger(__name__)
Transport = Union[UDPTransport, StreamTransport, DoHTransport]

STRATEGIES = ("failover", "fastest")
EWMA_ALPHA = 0.3
_FAILING_RCODES = {2: "SERVFAIL", 5: "REFUSED"}  # the upstream could not answer
# Query types every resolver serves. A failure to answer anything else (REFUSED for an odd type, a type a
# firewall drops) says more about the query than the upstream: it never changes the upstream's health.
_ORDINARY_QTYPES = frozenset(t.to_bytes(2, "big") for t in (1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 43, 48, 64, 65,
                                                              257))
_NO_ERRORS: tuple = ()   # the errors of a query none of whose tries failed yet
RCODE_FAILURES_TO_DOWN = 3   # SERVFAIL/REFUSED in a row (to ordinary queries) before an upstream is marked down


def _ssl_context(ca_file: str | None, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # system CAs, hostname checking, TLS >= 1.2
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _describe(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS certificate check failed: {e.verify_message or e}"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, asyncio.IncompleteReadError):
        return "connection closed by upstream"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, (ProtocolError, ConnectionError)) and str(e):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class _Upstream:
    __slots__ = ("errors", "ewma", "health_changes", "healthy", "index", "last_error", "queries",
                 "rcode_failures", "spec", "tcp", "transport")

    def __init__(self, spec: UpstreamSpec, index: int, transport: Transport,
                 tcp: StreamTransport | None) -> None:
        self.spec, self.index, self.transport, self.tcp = spec, index, transport, tcp
        self.healthy = True
        self.ewma: float | None = None  # ms
        self.queries = self.errors = 0
        self.last_error: str | None = None
        self.rcode_failures = 0   # SERVFAIL/REFUSED answers to ordinary queries since the last good answer
        self.health_changes = 0   # times marked down or up again


class UpstreamPool:
    """Forwards queries to a list of upstreams with failover or fastest-first selection."""

    def __init__(self, urls: list[str], *, strategy: str = "failover", timeout: float = 2.0,
                 attempts: int = 3, ca_file: str | None = None,
                 health_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("at least one upstream is needed")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r} (use failover or fastest)")
        if timeout <= 0 or attempts < 1 or health_interval <= 0:
            raise ValueError("timeout and health_interval must be > 0 and attempts >= 1")
        self.strategy, self.timeout, self.attempts = strategy, timeout, attempts
        self.health_interval = health_interval
        self._ca_file = ca_file
        self._ctx: dict[str, ssl.SSLContext] = {}
        self._ups = [self._build(parse_upstream(u), i) for i, u in enumerate(urls)]
        self._health: asyncio.Task | None = None
        self._closed = False
        self._failover_order: list[_Upstream] | None = None
        self._tasks: set[asyncio.Task] = set()
        self._deadlines = _Deadlines(timeout)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.clock = clock
        # When an ordinary query last went unanswered by every upstream it tried (silence, refused
        # connections); None once anything answered since. See known_down().
        self.down_since: Optional[float] = None
        fastpath = accel.fastpath
        if fastpath is not None and hasattr(fastpath, "forward_udp"):
            # the usual first try over UDP in C (_fastpath.forward_udp; it calls the method for anything else)
            self.forward = partial(fastpath.forward_udp, self, _Forward, UDPTransport, _BatchedUDPEndpoint)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running event loop, remembered: asyncio.get_running_loop() costs a getpid() system call."""
        loop = self._loop
        if loop is None or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _context(self, scheme: str) -> ssl.SSLContext:
        if scheme not in self._ctx:
            alpn = ["http/1.1"] if scheme == "https" else None
            self._ctx[scheme] = _ssl_context(self._ca_file, alpn)
        return self._ctx[scheme]

    def _build(self, s: UpstreamSpec, index: int) -> _Upstream:
        if s.scheme == "udp":  # the TCP transport is for truncated (TC) replies
            tcp = StreamTransport(s.host, s.port)
            return _Upstream(s, index, UDPTransport(s.host, s.port), tcp)
        if s.scheme == "tcp":
            return _Upstream(s, index, StreamTransport(s.host, s.port), None)
        if s.scheme == "tls":
            t = StreamTransport(s.host, s.port, self._context("tls"), s.tls_name or s.host)
            return _Upstream(s, index, t, None)
        t = DoHTransport(s.host, s.port, self._context("https"), s.tls_name or s.host, s.path)
        return _Upstream(s, index, t, None)

    @property
    def specs(self) -> list[UpstreamSpec]:
        return [u.spec for u in self._ups]

    async def start(self) -> None:
        """Start the background health checks (idempotent)."""
        if self._health is None and not self._closed:
            self._health = asyncio.get_running_loop().create_task(
                self._health_loop(), name="hearth-upstream-health")

    async def close(self) -> None:
        """Stop health checks and close every socket; in-flight queries fail."""
        self._closed = True
        self._deadlines.stop()
        task, self._health = self._health, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        for u in self._ups:
            await u.transport.close()
            if u.tcp is not None:
                await u.tcp.close()

    def _order(self) -> list[_Upstream]:
        """Healthy upstreams first (configured order, or lowest EWMA for fastest), then the
        unhealthy ones in the same order: a query is never refused for lack of a healthy one."""
        if self.strategy == "fastest":
            return sorted(self._ups, key=lambda u: (not u.healthy, u.ewma or 0.0, u.index))
        if self._failover_order is None:  # recomputed only when health changes
            self._failover_order = sorted(self._ups, key=lambda u: (not u.healthy, u.index))
        return self._failover_order

    async def _exchange(self, u: _Upstream, packet: bytes, key: QKey) -> bytes:
        reply = await u.transport.exchange(packet, key)
        if u.tcp is not None and reply[2] & 0x02:  # TC over UDP: ask again over TCP
            reply = await u.tcp.exchange(packet, key)
        return reply

    def forward(self, packet: bytes, done: Callable[[Optional[bytes], str, Optional[str]], None],
                question: Optional[bytes] = None) -> None:
        """Send ``packet`` (a query with its ID set); later call ``done(reply, url, None)``, or
        ``done(None, "", why)`` once every try failed.

        At most ``attempts`` tries, each bounded by ``timeout``; SERVFAIL and REFUSED count as
        failures. A UDP upstream is asked without creating a task (the engine's cache-miss
        path); other transports run one task per try."""
        if self._closed:
            done(None, "", "upstream pool is closed")
            return
        if question is None:  # callers that built the packet themselves pass its question section
            if len(packet) < 17 or len(packet) > 65535 or question_key(packet) is None:
                raise ValueError("malformed DNS query")
            question = question_bytes(packet)
        loop = self._loop   # self._running_loop() and self._order(), inlined for the usual case
        if loop is None or not loop.is_running():
            loop = self._running_loop()
        order = self._failover_order
        if order is None or self.strategy == "fastest":
            order = self._order()
        _Forward(self, packet, done, question, loop, order).next_try()

    async def query(self, packet: bytes) -> tuple[bytes, str]:
        """Send ``packet`` and return (reply, upstream URL); raises UpstreamError when every try
        failed. The awaitable form of :meth:`forward`."""
        fut = asyncio.get_running_loop().create_future()

        def done(reply: Optional[bytes], url: str, error: Optional[str]) -> None:
            if not fut.done():
                if reply is None:
                    fut.set_exception(UpstreamError(f"all upstream attempts failed ({error})"))
                else:
                    fut.set_result((reply, url))

        self.forward(packet, done)
        return await fut

    def _sample(self, u: _Upstream, seconds: float) -> None:
        ms = seconds * 1000.0
        u.ewma = ms if u.ewma is None else u.ewma + EWMA_ALPHA * (ms - u.ewma)

    def _success(self, u: _Upstream, seconds: float) -> None:
        self._sample(u, seconds)
        if not u.rcode_failures and u.healthy and self.down_since is None:
            return    # the usual case (every forwarded miss comes here): nothing to recover from
        self._recovered(u)

    def _recovered(self, u: _Upstream) -> None:
        """``u`` answered after failures: its counts start over, and the pool leaves its down state."""
        u.rcode_failures = 0
        if self.down_since is not None:
            self.down_since = None
            log.info("upstream %s answers again: expired answers are refreshed before they are served", u.spec.url)
        if not u.healthy:
            log.info("upstream %s is healthy again", u.spec.url)
            u.healthy = True
            u.health_changes += 1
            self._failover_order = None

    def _failure(self, u: _Upstream, err: str, *, answered: bool = False) -> None:
        """``u`` failed one try. ``answered``: it replied, with SERVFAIL or REFUSED; that marks it down
        only the RCODE_FAILURES_TO_DOWN-th time in a row (one broken domain is not a broken resolver)."""
        u.last_error = err
        if answered:
            u.rcode_failures += 1
            if u.rcode_failures < RCODE_FAILURES_TO_DOWN:
                return
        if u.healthy:
            log.warning("upstream %s failed (%s): marked unhealthy", u.spec.url, err)
            u.healthy = False
            u.health_changes += 1
            self._failover_order = None

    def _unanswered(self) -> None:
        """Every try of an ordinary query went unanswered: the upstreams are down (RFC 8767 §4 failure
        recheck: expired answers are served at once for a while, see known_down)."""
        if self.down_since is None:
            log.warning("no upstream answers: expired answers are served stale at once while they are down")
        self.down_since = self.clock()

    def known_down(self, recheck: float) -> bool:
        """True while the last ordinary query that every try failed on was less than ``recheck`` seconds ago
        and nothing has answered since."""
        since = self.down_since
        return since is not None and self.clock() - since < recheck

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval)
            try:
                await self.check_health()
            except Exception:  # a bug here must not stop future checks
                log.exception("upstream health check failed")

    async def check_health(self) -> None:
        """Probe every upstream marked down with '. IN NS'; any reply but SERVFAIL marks it
        healthy again (a forwarder may REFUSE the root yet answer everything else). Healthy
        upstreams are judged by real queries. Runs every ``health_interval`` s after ``start()``."""
        await asyncio.gather(*(self._probe(u) for u in self._ups if not u.healthy))
        for u in self._ups:
            if isinstance(u.transport, DoHTransport):
                u.transport.reap()

    async def _probe(self, u: _Upstream) -> None:
        packet = struct.pack("!6H", random.getrandbits(16), 0x0100, 1, 0, 0, 0) + b"\0\0\x02\0\x01"
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            reply = await asyncio.wait_for(
                self._exchange(u, packet, question_key(packet)), self.timeout)
        except asyncio.TimeoutError:
            self._failure(u, f"health check timed out after {self.timeout:g}s")
        except Exception as e:  # noqa: BLE001
            self._failure(u, f"health check: {_describe(e)}")
        else:
            if reply[3] & 0x0F != 2:
                self._success(u, loop.time() - t0)
            else:
                self._failure(u, "health check: SERVFAIL")

    def status(self) -> list[dict]:
        """Per upstream: url, healthy, ewma_ms, queries, errors, last_error, health_changes."""
        return [{"url": u.spec.url, "healthy": u.healthy,
                 "ewma_ms": None if u.ewma is None else round(u.ewma, 3),
                 "queries": u.queries, "errors": u.errors, "last_error": u.last_error,
                 "health_changes": u.health_changes}
                for u in self._ups]


class _Deadlines:
    """Time-outs of the tries in flight. Every try gets the same time-out, so they expire in the order
    they were armed: one queue and one periodic check replace a libuv timer per query (which cost
    about an eighth of a cache miss). The queue holds (deadline, token) pairs of plain numbers, which the
    garbage collector stops tracking; ``live`` maps the token of each try still in flight to it, and a try
    that ends (or is re-armed) leaves it at once, so a finished query is freed with its reply, not kept
    for the time-out's length. Precision: a tenth of the time-out, at most 50 ms."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.tick = min(0.05, timeout / 10)
        self.queue: collections.deque = collections.deque()   # (deadline, token)
        self.live: dict[int, _Forward] = {}
        self.serial = 0
        self.handle: Optional[asyncio.TimerHandle] = None

    def arm(self, loop: asyncio.AbstractEventLoop, now: float, fwd: _Forward) -> None:
        live = self.live
        if fwd.armed:
            live.pop(fwd.armed, None)
        self.serial = token = self.serial + 1
        fwd.armed = token
        live[token] = fwd
        self.queue.append((now + self.timeout, token))
        if self.handle is None:
            self.handle = loop.call_later(self.tick, self._check, loop)

    def disarm(self, fwd: _Forward) -> None:
        """``fwd``'s try ended: its deadline no longer applies."""
        if fwd.armed:
            self.live.pop(fwd.armed, None)
            fwd.armed = 0

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        queue, live, now = self.queue, self.live, loop.time()
        while queue and queue[0][0] <= now:
            fwd = live.pop(queue.popleft()[1], None)
            if fwd is not None and not fwd.finished:
                try:
                    fwd.on_timeout()
                except Exception:  # noqa: BLE001 - one broken callback must not stop the others' time-outs
                    log.exception("upstream time-out handling failed")
        self.handle = loop.call_later(self.tick, self._check, loop) if queue else None

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.queue.clear()
        self.live.clear()


class _Forward:
    """One query's way through the pool: tries, time-outs, failover. Callbacks, no task for UDP.

    Made for every forwarded miss: what most tries never change is a class default (no ``__slots__``), so a
    new one sets six attributes, not sixteen."""

    attempt = 0
    errors: list[str] = _NO_ERRORS   # type: ignore[assignment]  # a list at the first failure
    token: Optional[tuple] = None
    task: Optional[asyncio.Task] = None
    upstream: Optional[_Upstream] = None
    armed = 0          # the token of this try's deadline (_Deadlines), 0 when none applies
    started = 0.0
    finished = False
    ordinary: Optional[bool] = None   # see is_ordinary: known at the first failure
    answered = False   # some try got a reply (SERVFAIL/REFUSED)
    ewma_alpha = EWMA_ALPHA   # read by _fastpath.forward_reply

    def __init__(self, pool: UpstreamPool, packet: bytes, done: Callable, question: bytes,
                 loop: asyncio.AbstractEventLoop, order: list[_Upstream]) -> None:
        self.pool, self.packet, self.done, self.question, self.loop, self.order = \
            pool, packet, done, question, loop, order

    def is_ordinary(self) -> bool:
        """An ordinary query type: only failures of those change an upstream's health (worked out on first
        need: a query answered at once never asks)."""
        ordinary = self.ordinary
        if ordinary is None:
            ordinary = self.ordinary = bytes(self.question[-4:-2]) in _ORDINARY_QTYPES
        return ordinary

    def next_try(self) -> None:
        pool = self.pool
        if self.attempt >= pool.attempts or pool._closed:
            self.finished = True
            if not self.answered and not pool._closed and self.is_ordinary():
                pool._unanswered()
            self.done(None, "", "; ".join(self.errors) or "upstream pool is closed")
            return
        u = self.upstream = self.order[self.attempt % len(self.order)]
        self.attempt += 1
        u.queries += 1
        loop = self.loop
        self.started = now = loop.time()
        pool._deadlines.arm(loop, now, self)
        if isinstance(u.transport, UDPTransport):
            try:
                self.token = u.transport.send(self.packet, self.on_reply, self.question)
            except OSError as e:
                self.fail(_describe(e))
                return
            if self.token is not None:
                return
        # stream transports, or the very first UDP query while its sockets open
        self.task = asyncio.ensure_future(pool._exchange(u, self.packet, question_key(self.packet)))
        pool._tasks.add(self.task)
        self.task.add_done_callback(self.on_task)

    def on_task(self, task: asyncio.Task) -> None:
        self.pool._tasks.discard(task)
        if task is not self.task or self.finished:
            return
        self.task = None
        if task.cancelled():
            return  # time-out or close: on_timeout / close decide
        exc = task.exception()
        self.on_reply(exc if exc is not None else task.result(), from_task=True)

    def on_reply(self, result: object, from_task: bool = False) -> None:
        if self.finished:
            return
        self.token = None
        if isinstance(result, BaseException):
            self.fail(_describe(result))
            return
        data: bytes = result  # type: ignore[assignment]
        u = self.upstream
        if not from_task and u.tcp is not None and data[2] & 0x02:  # TC over UDP: again over TCP
            loop = self.loop
            self.pool._deadlines.arm(loop, loop.time(), self)
            self.task = asyncio.ensure_future(u.tcp.exchange(self.packet, question_key(self.packet)))
            self.pool._tasks.add(self.task)
            self.task.add_done_callback(self.on_task)
            return
        err = _FAILING_RCODES.get(data[3] & 0x0F)
        if err is not None:
            self.answered = True
            self.fail(err, answered=True)
            return
        self.finished = True
        pool = self.pool
        if self.armed:   # pool._deadlines.disarm(self) and pool._success(u, ...), inlined: every miss comes here
            pool._deadlines.live.pop(self.armed, None)
            self.armed = 0
        ms = (self.loop.time() - self.started) * 1000.0
        ewma = u.ewma
        u.ewma = ms if ewma is None else ewma + EWMA_ALPHA * (ms - ewma)
        if u.rcode_failures or not u.healthy or pool.down_since is not None:
            pool._recovered(u)
        self.done(data, u.spec.url, None)

    def on_timeout(self) -> None:
        if self.finished:
            return
        self.pool._sample(self.upstream, self.pool.timeout)
        self.fail(f"timed out after {self.pool.timeout:g}s")

    def fail(self, err: str, answered: bool = False) -> None:
        u = self.upstream
        self.pool._deadlines.disarm(self)  # this try's deadline no longer applies
        if self.token is not None:
            UDPTransport.cancel(self.token)
            self.token = None
        if self.task is not None:
            task, self.task = self.task, None
            task.cancel()
        u.errors += 1
        if self.is_ordinary():
            self.pool._failure(u, err, answered=answered)
        if self.errors is _NO_ERRORS:
            self.errors = []
        self.errors.append(f"{u.spec.url}: {err}")
        self.next_try()
