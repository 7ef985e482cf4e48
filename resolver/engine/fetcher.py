"""Upstream fetches, coalesced: one question asked once however many clients wait for it.

Every caller asking for a key while its fetch is under way shares the one fetch. The reply becomes a cache
entry rewritten from its bytes (:func:`resolver.engine.wire.rewrite_reply`; dnslib only for oddities), with
TTLs clamped, negative caching per RFC 2308 and CNAME targets noted for the views' checks; it is cached once
(untagged) and each waiting view makes its own copy. Background refreshes (prefetch, serve-stale recheck)
use the same path.
"""
from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Callable, Optional, Protocol, Union

from dnslib import QTYPE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from resolver.engine import accel
from resolver.engine.answers import finish, summarise, upstream_query_for
from resolver.engine.cache import AnswerCache, CacheEntry
from resolver.engine.stats import Stats
from resolver.engine.upstream import UpstreamPool
from resolver.engine.wire import (KEY_CD, KEY_DO, KEY_EDNS, KEY_RD, RCODE_NXDOMAIN, TYPE_OPT, cname_targets,
                                  name_labels, reply_parts, rewrite_reply)

log = logging.getLogger("hearth.pipeline")

_CNAME_IN = b"\x00\x05\x00\x01"   # an RR's type CNAME and class IN, as bytes
# a fetch's waiter: called as waiter(entry, error), or a tuple (function, *first arguments) called as
# function(*first, entry, error): a client's miss binds its arguments so, without making a closure per query
Waiter = Union[Callable[[Optional[CacheEntry], Optional[str]], None], tuple]


def reply_entry(reply: bytes, key: bytes, edns_size: int, min_ttl: float, max_ttl: float, negative_max_ttl: float,
                now: float, stale_for: float, upstream: str) -> Optional[CacheEntry]:
    """The cache entry for the usual upstream reply in one pass (:func:`resolver.engine.wire.reply_parts`), or None
    for the careful way. ``_fastpath.reply_entry`` is the same in C (the same entry, slot for slot)."""
    parts = reply_parts(reply, key, edns_size, min_ttl, max_ttl, negative_max_ttl)
    return None if parts is None else CacheEntry.from_parts(parts, now, stale_for, upstream)


class FetchFailed(Exception):
    """No usable answer from any upstream (the message says why)."""


class Owner(Protocol):
    """What a fetcher reads from its pipeline, current at each fetch (a reload swaps some of them)."""

    cache: AnswerCache
    upstreams: UpstreamPool
    stats: Stats
    edns_size: int
    generation: int
    max_pending: int
    _tasks: set

    def clock(self) -> float: ...


class Fetcher:
    """The pipeline's upstream fetches."""

    def __init__(self, pipeline: Owner):
        self.p = pipeline
        self.waiting: dict[bytes, list[Waiter]] = {}
        fastpath = accel.fastpath
        self._reply_entry = partial(fastpath.reply_entry, CacheEntry) if hasattr(fastpath, "reply_entry") \
            else reply_entry
        self._upstream_query_for = getattr(fastpath, "upstream_query_for", upstream_query_for)
        # a reply's way to the cache and the waiters, in C for the usual reply (_fastpath.fetched calls the method
        # for the rest); either is called as fetched(fetcher, ...)
        self._fetched_usual = getattr(fastpath, "fetched", Fetcher._fetched)
        self._bound = getattr(fastpath, "bound", None)   # a call with bound arguments, cheaper than a lambda

    def refresh(self, key: bytes) -> None:
        """Fetch ``key`` in the background unless a fetch for it is under way (the answer lands in the cache)."""
        p = self.p
        if key not in self.waiting and len(self.waiting) + len(p._tasks) < p.max_pending:
            self.fetch(key, _ignore)

    def fetch(self, key: bytes, on_done: Waiter) -> None:
        """Get ``key`` from the upstreams; every caller asking meanwhile shares the one fetch (``on_done``: see
        ``Waiter``)."""
        waiters = self.waiting.get(key)
        if waiters is not None:
            waiters.append(on_done)
            return
        self.waiting[key] = [on_done]
        packet = self._upstream_query_for(key, self.p.edns_size)
        self.p.stats.upstream_queries += 1
        fetched, generation, bound = self._fetched_usual, self.p.generation, self._bound
        if bound is not None:   # _fastpath.bound: one object, called without a Python frame
            done = bound(fetched, self, key, generation)
        else:   # a lambda, not functools.partial: made for every miss, a partial costs three times as much to make
            def done(reply: Optional[bytes], upstream: str, error: Optional[str]) -> None:
                fetched(self, key, generation, reply, upstream, error)
        self.p.upstreams.forward(packet, done, key[:-1])

    def _fetched(self, key: bytes, generation: int, reply: Optional[bytes], upstream: str,
                 error: Optional[str]) -> None:
        entry = None
        p = self.p
        if reply is not None:
            try:
                # entry_from_reply, inlined for the usual reply
                cache = p.cache
                cfg = cache.config
                entry = self._reply_entry(reply, key, p.edns_size, cfg.min_ttl, cfg.max_ttl, cfg.negative_max_ttl,
                                          p.clock(), cfg.serve_stale, upstream)
                if entry is None:
                    entry = self.entry_the_careful_way(reply, key, upstream)
                entry.gen = generation  # checked by policy when the fetch started
            except Exception as exc:  # noqa: BLE001 - an unusable reply is that upstream failing
                error = f"bad reply from {upstream}: {exc}"
        if entry is None:
            p.stats.upstream_errors += 1
        else:
            entry.key = key   # even when not cached (TTL 0, cache off): its question rebuilds and describes it
            if entry.expires > entry.stored:
                old = p.cache.put(key, entry)
                if old is not None and old.copies:
                    p.cache.replace_copies(old)
        for on_done in self.waiting.pop(key, ()):
            try:
                if on_done.__class__ is tuple:   # (function, *first arguments)
                    on_done[0](*on_done[1:], entry, error)
                else:
                    on_done(entry, error)
            except Exception as exc:  # noqa: BLE001 - one broken waiter must not starve the others
                self._waiter_failed(exc)

    def _waiter_failed(self, exc: BaseException) -> None:
        log.error("answering a waiting query failed", exc_info=exc)

    def entry_from_reply(self, reply: bytes, key: bytes, upstream: str) -> CacheEntry:
        """The cache entry for an upstream reply, rewritten from its bytes (dnslib only for oddities).

        The usual reply takes one pass (:func:`resolver.engine.wire.reply_parts`, in C with the accelerator);
        anything that pass declines takes the careful way below, which reports or repairs it."""
        cfg = self.p.cache.config
        entry = self._reply_entry(reply, key, self.p.edns_size, cfg.min_ttl, cfg.max_ttl, cfg.negative_max_ttl,
                                  self.p.clock(), cfg.serve_stale, upstream)
        return entry if entry is not None else self.entry_the_careful_way(reply, key, upstream)

    def entry_the_careful_way(self, reply: bytes, key: bytes, upstream: str) -> CacheEntry:
        """:meth:`entry_from_reply` step by step: raises for a reply nobody can use, rebuilds an unusual one
        with dnslib. For the replies :func:`reply_parts` takes, the same entry (a test compares them)."""
        try:
            packed, offsets, ttls, negative = rewrite_reply(reply, key, self.p.edns_size)
        except ValueError:
            return self._entry_via_dnslib(reply, key, upstream)
        rcode = reply[3] & 0x0F
        ttl = 0
        if rcode == 0 and reply[6:8] != b"\x00\x00":
            ttls = [self.p.cache.clamp(t) for t in ttls]
            ttl = min(ttls)
        elif rcode in (0, RCODE_NXDOMAIN) and negative >= 0:
            ttl = self.p.cache.negative_ttl(negative)
            ttls = [min(t, ttl) for t in ttls]
        entry = CacheEntry(packed, 12 + len(key) - 1, ttl, self.p.clock(), stale_for=self.p.cache.config.serve_stale,
                           rcode=rcode, upstream=upstream, offsets=offsets, ttls=ttls)
        if rcode == 0 and packed[6:8] != b"\x00\x00" and _CNAME_IN in packed:  # (a cheap pre-check)
            entry.cnames = cname_targets(packed)
        return entry

    def _entry_via_dnslib(self, raw: bytes, key: bytes, upstream: str) -> CacheEntry:
        """Rebuild a reply dnslib can parse but the raw rewriter declined (e.g. OPT not last)."""
        resp = DNSRecord.parse(raw)
        flags = key[-1]
        qtype, qclass = key[-5] << 8 | key[-4], key[-3] << 8 | key[-2]
        if len(resp.questions) != 1 or bytes(key[:-5]).lower() != _wire_name(resp.q.qname).lower() \
                or resp.q.qtype != qtype:
            raise ValueError("reply is for another question")
        rcode = resp.header.rcode
        out = DNSRecord(DNSHeader(id=0, qr=1, rd=int(bool(flags & KEY_RD)), ra=1, cd=int(bool(flags & KEY_CD)),
                                  ad=resp.header.ad if flags & KEY_DO else 0, rcode=rcode),
                        q=DNSQuestion(DNSLabel(name_labels(key[:-5])), qtype, qclass))
        extra = [r for r in resp.ar if r.rtype != TYPE_OPT]
        records = resp.rr + resp.auth + extra
        ttl = 0
        if rcode == 0 and resp.rr:
            for r in records:
                r.ttl = self.p.cache.clamp(r.ttl)
            ttl = min(r.ttl for r in records)
        elif rcode in (0, RCODE_NXDOMAIN):
            soa = next((r for r in resp.auth if r.rtype == QTYPE.SOA), None)
            if soa is not None:  # RFC 2308 §5: min(SOA TTL, SOA MINIMUM)
                ttl = self.p.cache.negative_ttl(min(soa.ttl, soa.rdata.times[-1]))
                for r in records:
                    r.ttl = min(r.ttl, ttl)
        out.rr, out.auth, out.ar = resp.rr, resp.auth, extra
        packed = finish(out, _FlagsOnly(flags), self.p.edns_size)
        entry = CacheEntry(packed, 12 + len(key) - 1, ttl, self.p.clock(), stale_for=self.p.cache.config.serve_stale,
                           rcode=rcode, summary=summarise(resp.rr), upstream=upstream)
        entry.cnames = cname_targets(packed)
        return entry

    def future(self, key: bytes) -> asyncio.Future:
        """:meth:`fetch` as a future (for the slow path): the entry, or an exception."""
        fut = asyncio.get_running_loop().create_future()

        def done(entry: Optional[CacheEntry], error: Optional[str]) -> None:
            if not fut.done():
                if entry is None:
                    fut.set_exception(FetchFailed(error or "no answer"))
                else:
                    fut.set_result(entry)

        self.fetch(key, done)
        return fut

    def prefetch(self, entry: CacheEntry) -> None:
        if entry.refreshing:
            return
        entry.refreshing = True
        self.p.stats.prefetches += 1
        self.fetch(entry.key, lambda _e, _err: setattr(entry, "refreshing", False))


def _ignore(_entry: Optional[CacheEntry], _error: Optional[str]) -> None:
    """The waiter of a background refresh: the fetch itself puts the answer in the cache."""


class _FlagsOnly:
    """Stands in for a ClientQuery when packing a cached reply: only EDNS and DO matter."""

    def __init__(self, flags: int):
        self.edns = bool(flags & KEY_EDNS)
        self.do = bool(flags & KEY_DO)


def _wire_name(label: DNSLabel) -> bytes:
    return b"".join(bytes((len(lbl),)) + lbl for lbl in label.label) + b"\x00"
