"""One query's path through Hearth, top to bottom.

    socket (listener.py)
      → who is asking: allow-list and rate limit     (access.py)   refuse or drop early, before any work
      → fast path: raw header + question             (wire.py)     no dnslib object per packet
      → answer cache hit                             (cache.py)    patch ID, question case, TTLs; send
      ── slow path, one task per query ──
      → parse with dnslib, sanity rules              (answers.py)  FORMERR / NOTIMP / BADVERS / REFUSED
      → local records                                (localrecords.py)
      → upstream pool, coalesced per key             (upstream.py) serve stale when it fails (RFC 8767)
      → cache the packed reply                       (cache.py)
      → query log                                    (querylog.py) one deque append
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Optional

from dnslib import QTYPE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from .access import ClientAccess
from .answers import ClientQuery, finish, local_answer, reply_skeleton, rfc8482_any, summarise, upstream_query
from .cache import AnswerCache, CacheEntry
from .localrecords import LocalZone
from .querylog import QueryLog
from .stats import Stats
from .upstream import UpstreamError, UpstreamPool
from .wire import (KEY_CD, KEY_DO, KEY_EDNS, KEY_RD, RCODE_FORMERR, RCODE_NOTIMP, RCODE_NXDOMAIN,
                   RCODE_REFUSED, RCODE_SERVFAIL, TYPE_OPT, Question, add_option, canonical_query, ede_option,
                   error_reply, name_labels, parse_question, truncated)

log = logging.getLogger("hearth.pipeline")

EDE_STALE_ANSWER, EDE_NOT_SUPPORTED, EDE_PROHIBITED, EDE_NO_REACHABLE_AUTHORITY = 3, 21, 18, 22
DROP = b""


class Pipeline:
    """The stages, wired. Built by the engine; every collaborator comes in through here."""

    def __init__(self, *, access: ClientAccess, cache: AnswerCache, local: LocalZone, upstreams: UpstreamPool,
                 querylog: QueryLog, stats: Stats, edns_size: int = 1232, max_pending: int = 2048,
                 clock: Callable[[], float] = time.monotonic):
        self.access = access
        self.cache = cache
        self.local = local
        self.upstreams = upstreams
        self.querylog = querylog
        self.stats = stats
        self.edns_size = edns_size
        self.max_pending = max_pending
        self.clock = clock
        self._tasks: set[asyncio.Task] = set()
        self._inflight: dict[bytes, asyncio.Future] = {}

    # ------------------------------------------------------------ fast path

    def answer_cached(self, data: bytes, client: str, udp: bool) -> Optional[bytes]:
        """The reply if the fast path can give it; ``DROP`` (b"") to send nothing; None for the slow path."""
        access = self.access
        st = access.states.get(client)
        if st is None:
            st = access.state(client)
        if st.tokens >= 0 and not access.admit(st):
            self.stats.rate_limited += 1
            return DROP
        self.stats.queries += 1
        if not st.allowed:
            self.stats.refused += 1
            return error_reply(data, RCODE_REFUSED, self.edns_size, (EDE_PROHIBITED, "client not allowed")) or DROP
        q = parse_question(data, self.edns_size)
        if q is None:
            return None
        entry = self.cache.get(q.key)
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.expires:
            return None
        out = entry.reply(data, q.qend, now)
        if udp and len(out) > q.limit:
            out = truncated(out, q.qend, q.key[-1], self.edns_size)
        self.stats.cache_hits += 1
        entry.hits += 1
        if now >= entry.prefetch_at and not entry.refreshing and entry.hits >= self.cache.config.prefetch_min_hits \
                and self.cache.config.prefetch and not entry.synthesized:
            self._prefetch(q.key, entry)
        self.querylog.record(client, q.key, entry.rcode, entry.summary, entry.upstream, 0.0, True, entry.reason)
        return out

    # ------------------------------------------------------------ slow path

    def resolve_later(self, data: bytes, client: str, udp: bool, send: Callable[[bytes], None]) -> None:
        """Run the slow path in its own task; ``send`` gets the reply (if any)."""
        if len(self._tasks) >= self.max_pending:
            self.stats.dropped += 1
            if not udp:
                out = error_reply(data, RCODE_SERVFAIL, self.edns_size)
                if out:
                    send(out)
            return
        self._spawn(self._resolve_and_send(data, client, udp, send))

    async def _resolve_and_send(self, data: bytes, client: str, udp: bool, send: Callable[[bytes], None]) -> None:
        try:
            out = await self.resolve(data, client, udp)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("resolving a query from %s failed", client)
            self.stats.servfail += 1
            out = error_reply(data, RCODE_SERVFAIL, self.edns_size)
        if out:
            send(out)

    async def resolve(self, data: bytes, client: str, udp: bool) -> Optional[bytes]:
        """The reply to one query that missed the fast path (None: send nothing)."""
        started = self.clock()
        q = parse_question(data, self.edns_size)
        try:
            cq = ClientQuery.parse(data)
        except Exception:  # dnslib raises several types on garbage
            self.stats.formerr += 1
            return error_reply(data, RCODE_FORMERR, self.edns_size)
        header = cq.msg.header
        if header.qr:
            self.stats.dropped += 1
            return None  # a response sent to us: answering could start a loop
        if header.opcode != 0:
            return error_reply(data, RCODE_NOTIMP, self.edns_size)
        if len(cq.msg.questions) != 1 or not cq.name and cq.qtype == 0:
            self.stats.formerr += 1
            return error_reply(data, RCODE_FORMERR, self.edns_size)
        if cq.edns_version != 0:  # RFC 6891: BADVERS is extended rcode 16
            return finish(reply_skeleton(cq), cq, self.edns_size, ext_rcode=1)
        if q is None:  # e.g. a compressed question name or extra records: answer its canonical form
            data = canonical_query(data, cq)
            q = parse_question(data, self.edns_size)
            if q is None:
                self.stats.formerr += 1
                return error_reply(data, RCODE_FORMERR, self.edns_size)
        out, rcode, summary, upstream, reason = await self._answer(data, q, cq)
        if udp and len(out) > q.limit:
            out = truncated(out, q.qend, q.key[-1], self.edns_size)
        latency = (self.clock() - started) * 1000.0
        self.stats.observe_latency(latency)
        if rcode == RCODE_SERVFAIL:
            self.stats.servfail += 1
        self.querylog.record(client, q.key, rcode, summary, upstream, latency, False, reason)
        return out

    async def _answer(self, data: bytes, q: Question, cq: ClientQuery) -> tuple:
        """(reply, rcode, summary, upstream, reason) for a well-formed query."""
        if cq.qclass != 1:  # CHAOS version.bind / id.server and other classes: nothing to disclose
            return self._refuse(data, cq, "class not served"), RCODE_REFUSED, "", "", "refused-class"
        if cq.qtype in (QTYPE.AXFR, QTYPE.IXFR):
            return self._refuse(data, cq, "zone transfer refused"), RCODE_REFUSED, "", "", "refused-transfer"
        if cq.qtype == QTYPE.ANY:
            return self._patched(rfc8482_any(cq, self.edns_size), data, q), 0, "HINFO RFC8482", "", "rfc8482"
        local = self.local.lookup(cq.name, cq.qtype) if self.local else None
        if local is not None:
            self.stats.local_answers += 1
            packed = local_answer(cq, local, self.edns_size, cq.name)
            ttl = min((r.ttl for r in local), default=60)
            entry = CacheEntry(packed, q.qend, ttl, self.clock(), summary=summarise(local), reason="local-record",
                               synthesized=True)
            self.cache.put(q.key, entry)
            return entry.reply(data, q.qend, self.clock()), 0, entry.summary, "", "local-record"
        return await self._from_upstream(data, q, cq)

    def _refuse(self, data: bytes, cq: ClientQuery, why: str) -> bytes:
        return self._patched(finish(reply_skeleton(cq, RCODE_REFUSED), cq, self.edns_size, (EDE_NOT_SUPPORTED, why)),
                             data, None)

    def _patched(self, packed: bytes, data: bytes, q: Optional[Question]) -> bytes:
        """dnslib packed our own copy of the question: put back the client's exact bytes."""
        if q is None or packed[12:q.qend].lower() != data[12:q.qend].lower():
            return packed
        return packed[:12] + data[12:q.qend] + packed[q.qend:]

    async def _from_upstream(self, data: bytes, q: Question, cq: ClientQuery) -> tuple:
        cfg = self.cache.config
        self.stats.cache_misses += 1
        now = self.clock()
        held = self.cache.get(q.key)
        if held is not None and now < held.expires:  # filled while this task waited to run
            return held.reply(data, q.qend, now), held.rcode, held.summary, held.upstream, held.reason
        stale = held if held is not None and cfg.serve_stale > 0 and now < held.stale_until else None
        fetch = self._fetch(q.key)
        try:
            if stale is not None and cfg.stale_client_timeout > 0:
                entry = await asyncio.wait_for(asyncio.shield(fetch), cfg.stale_client_timeout)
            else:
                entry = await asyncio.shield(fetch)
        except (UpstreamError, asyncio.TimeoutError) as exc:
            if stale is not None:
                self.stats.stale_answers += 1
                out = stale.stale_reply(data, q.qend, cfg.stale_answer_ttl)
                if cq.edns:
                    out = add_option(out, ede_option(EDE_STALE_ANSWER, "upstreams unavailable"))
                return out, stale.rcode, stale.summary, stale.upstream, "stale"
            out = finish(reply_skeleton(cq, RCODE_SERVFAIL), cq, self.edns_size,
                         (EDE_NO_REACHABLE_AUTHORITY, f"upstreams failed: {exc}"[:150]))
            return self._patched(out, data, q), RCODE_SERVFAIL, "", "", "upstream-failed"
        return entry.reply(data, q.qend, self.clock()), entry.rcode, entry.summary, entry.upstream, entry.reason

    # ------------------------------------------------------------ upstream fetches (coalesced)

    def _fetch(self, key: bytes) -> asyncio.Future:
        """The one in-flight upstream fetch for ``key`` (started if none)."""
        fut = self._inflight.get(key)
        if fut is None:
            fut = self._inflight[key] = asyncio.ensure_future(self._fetch_entry(key))
            fut.add_done_callback(lambda f, k=key: (self._inflight.pop(k, None), f.cancelled() or f.exception()))
        return fut

    async def _fetch_entry(self, key: bytes) -> CacheEntry:
        flags = key[-1]
        qtype, qclass = key[-5] << 8 | key[-4], key[-3] << 8 | key[-2]
        query = upstream_query(key[:-5], qtype, qclass, do=bool(flags & KEY_DO), cd=bool(flags & KEY_CD),
                               edns_size=self.edns_size)
        self.stats.upstream_queries += 1
        try:
            raw, upstream = await self.upstreams.query(query)
            entry = self._entry_from_upstream(raw, key, upstream)
        except UpstreamError:
            self.stats.upstream_errors += 1
            raise
        except Exception as exc:  # an unparsable upstream reply is that upstream failing
            self.stats.upstream_errors += 1
            raise UpstreamError(f"bad reply from upstream: {exc}") from exc
        if entry.expires > entry.stored:
            self.cache.put(key, entry)
        return entry

    def _entry_from_upstream(self, raw: bytes, key: bytes, upstream: str) -> CacheEntry:
        """Parse the upstream reply once and pack the client-independent reply we cache."""
        resp = DNSRecord.parse(raw)
        flags = key[-1]
        qtype, qclass = key[-5] << 8 | key[-4], key[-3] << 8 | key[-2]
        rcode = resp.header.rcode
        out = DNSRecord(DNSHeader(id=0, qr=1, rd=int(bool(flags & KEY_RD)), ra=1, cd=int(bool(flags & KEY_CD)),
                                  ad=resp.header.ad if flags & KEY_DO else 0, rcode=rcode),
                        q=DNSQuestion(DNSLabel(name_labels(key[:-5])), qtype, qclass))
        extra = [r for r in resp.ar if r.rtype != TYPE_OPT]
        records = resp.rr + resp.auth + extra
        ttl = 0
        if rcode == 0 and resp.rr:
            for r in records:
                r.ttl = self.cache.clamp(r.ttl)
            ttl = min(r.ttl for r in records)
        elif rcode in (0, RCODE_NXDOMAIN):
            soa = next((r for r in resp.auth if r.rtype == QTYPE.SOA), None)
            if soa is not None:  # RFC 2308 §5: min(SOA TTL, SOA MINIMUM)
                ttl = self.cache.negative_ttl(min(soa.ttl, soa.rdata.times[-1]))
                for r in records:
                    r.ttl = min(r.ttl, ttl)
        out.rr, out.auth, out.ar = resp.rr, resp.auth, extra
        packed = finish(out, _FlagsOnly(flags), self.edns_size)
        qend = 12 + len(key) - 1
        return CacheEntry(packed, qend, ttl, self.clock(), stale_for=self.cache.config.serve_stale,
                          rcode=rcode, summary=summarise(resp.rr), upstream=upstream)

    def _prefetch(self, key: bytes, entry: CacheEntry) -> None:
        entry.refreshing = True
        self.stats.prefetches += 1
        fut = self._fetch(key)
        fut.add_done_callback(lambda f: setattr(entry, "refreshing", False))

    # ------------------------------------------------------------ housekeeping

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 2.0) -> None:
        """Let in-flight queries finish (used on shutdown), then cancel what is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks) + list(self._inflight.values()):
            task.cancel()


class _FlagsOnly:
    """Stands in for a ClientQuery when packing a cached reply: only EDNS and DO matter."""

    def __init__(self, flags: int):
        self.edns = bool(flags & KEY_EDNS)
        self.do = bool(flags & KEY_DO)
