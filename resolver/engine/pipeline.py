"""One query's path through Hearth, top to bottom.

    socket (listener.py)
      → who is asking: allow-list and rate limit     (access.py)   refuse or drop early, before any work
      → which view: device → profile, memoised       (identify.py) per address; per packet for a MAC forwarder
      → answer cache: the view's alias, or its key   (cache.py)    patch ID, question case, TTLs; send
      ── miss of a plain query: no task, no dnslib ──
      → local names go to the slow path              (localrecords.py)
      → the view's verdict                           (profile_policy.py) block / rewrite / allow, TTL cap
          block: answer synthesized + EDE            cached for the view, per generation
          rewrite (safe search): CNAME + the safe host's answer (a task, dnslib)
      → upstream fetch, coalesced per key            (fetcher.py, upstream.py) callbacks; serve stale when it fails
      → reply rewritten from the upstream's bytes    (wire.py)     cached untagged: the upstream layer
      → the view's copy: CNAME targets checked too   (cache.py)    TTLs capped at the next schedule change
      ── anything unusual: one task, dnslib ──
      → parse, sanity rules                          (answers.py)  FORMERR / NOTIMP / BADVERS / REFUSED / ANY
      → local records, else the same upstream fetch
      → query log                                    (querylog.py) one deque append per answer

One module over 500 lines on purpose: :class:`Pipeline` is the hot path, and its fast path is one
method with its locals kept in one frame; the stages it calls live in their own modules (above).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import zlib
from bisect import bisect_left
from dataclasses import replace
from functools import partial
from typing import Callable, Optional

from dnslib import QTYPE

from resolver.policy.access import ClientAccess
from resolver.engine.answers import (ClientQuery, address_answer, finish, local_answer, reply_skeleton, rewrite_answer,
                                     rfc8482_any, summarise)
from resolver.engine.cache import AnswerCache, CacheEntry
from resolver.policy.clients import AddressMatcher
from resolver.engine import accel
from resolver.engine.fetcher import Fetcher, FetchFailed
from resolver.engine.identify import Identities
from resolver.engine.localrecords import LocalZone
from resolver.base.names import wire_name
from resolver.policy.blocking import BlockingConfig, Decision
from resolver.policy.profile_policy import ALLOW, BLOCK, REWRITE, Verdict
from resolver.engine.querylog import QueryLog
from resolver.policy.safesearch import is_address_target
from resolver.engine.stats import LATENCY_BUCKETS_MS, Stats
from resolver.engine.upstream import UpstreamPool
from resolver.policy.views import PolicySet, View, ViewRegistry
from resolver.engine.wire import (KEY_EDNS, RCODE_FORMERR, RCODE_NOTIMP, RCODE_NXDOMAIN, RCODE_REFUSED,
                                  RCODE_SERVFAIL, Question, add_option, canonical_query, ede_option, error_reply,
                                  checked_question, key_name, lookup_key, parse_question, synth_reply,
                                  truncated)

log = logging.getLogger("hearth.pipeline")

EDE_STALE_ANSWER, EDE_PROHIBITED, EDE_NOT_SUPPORTED, EDE_NO_REACHABLE_AUTHORITY = 3, 18, 21, 22
DROP = b""
_NEVER = float("inf")
_NULL_A, _NULL_AAAA = bytes(4), bytes(16)
# Types the raw miss path never forwards: ANY (RFC 8482), zone transfers, MAILA/MAILB.
_SPECIAL_QTYPES = {b"\x00\xff", b"\x00\xfc", b"\x00\xfb", b"\x00\xfe", b"\x00\xfd"}
_CLASS_IN = b"\x00\x01"
_NOTHING_LOOKED_UP = (None, None, None, None)


def pick_lookup_key() -> Callable[[bytes, int], Optional[tuple]]:
    """``wire.lookup_key``, in C with the accelerator (``_fastpath.lookup_key``: the same results)."""
    fastpath = accel.fastpath
    return fastpath.lookup_key if fastpath is not None and hasattr(fastpath, "lookup_key") else lookup_key


def pick_checked_question() -> Callable[[bytes, tuple], Optional[Question]]:
    """``wire.checked_question``, in C with the accelerator (``_fastpath.checked_question``: the same results)."""
    fastpath = accel.fastpath
    if fastpath is not None and hasattr(fastpath, "checked_question"):
        return partial(fastpath.checked_question, Question)
    return checked_question


def _within(entry: CacheEntry, cap: Optional[int], now: float) -> bool:
    """No TTL ``entry`` gives at ``now``, nor its expiry, is past ``cap`` seconds (None: no cap)."""
    if cap is None:
        return True
    left = (max(entry.ttls) if entry.ttls else 0) - int(now - entry.stored)
    return left <= cap and entry.expires - now <= cap


def _early(vkey: bytes, ttl: int) -> float:
    """How long before its TTL ends a blocked answer is checked again: up to a quarter of the TTL, fixed per
    name. Blocked names asked in one burst would otherwise all be checked again in the same instant, once a
    TTL, for as long as they are asked (an answer keeps its TTL's upper bound: it is never served past it)."""
    return zlib.crc32(vkey) / 0x1_0000_0000 * (ttl / 4)


class Pipeline:
    """The stages, wired. Built by the engine; every collaborator comes in through here."""

    def __init__(self, *, access: ClientAccess, cache: AnswerCache, local: LocalZone, upstreams: UpstreamPool,
                 querylog: QueryLog, stats: Stats, edns_size: int = 1232, max_pending: int = 2048,
                 policies: Optional[PolicySet] = None, blocking: Optional[BlockingConfig] = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 mac_forwarders: Optional[AddressMatcher] = None):
        self.access = access
        self.cache = cache
        self.local = local
        self.upstreams = upstreams
        self.querylog = querylog
        self.stats = stats
        self.edns_size = edns_size
        self.max_pending = max_pending
        self.clock = clock
        self.wall = wall            # UNIX time for schedules, pauses and temporary allows
        self.identities = Identities(policies, mac_forwarders)   # who is asking: device, profile, view
        self.blocking = blocking or BlockingConfig()
        # Bumped whenever what policy says may have changed (lists, config): a cached answer
        # checked under an older generation is re-checked, not trusted, and not flushed.
        self.generation = 1
        self._tasks: set[asyncio.Task] = set()
        self.fetcher = Fetcher(self)     # upstream fetches, coalesced per question
        self._waiting = self.fetcher.waiting
        self._timers: set[asyncio.TimerHandle] = set()
        # (packet, lookup_key's result, view, who) of the last cache miss answer_cached looked up: the listener
        # calls resolve_later with the same packet next, which then skips parsing and identifying it again
        self._looked_up: tuple = _NOTHING_LOOKED_UP
        self._lookup_key = pick_lookup_key()
        self._checked_question = pick_checked_question()
        fastpath = accel.fastpath
        self._derive = getattr(fastpath, "derive", CacheEntry.derive)   # the view's copy of an upstream answer
        self._entry_reply = getattr(fastpath, "entry_reply", CacheEntry.reply)
        # an upstream answer's way to its client, in C for the usual one (_fastpath.fetched_for calls the method
        # for the rest); either is called as fetched_for(pipeline, ...)
        self._fetched_for_usual = getattr(fastpath, "fetched_for", Pipeline._fetched_for)
        self._latency_buckets = LATENCY_BUCKETS_MS   # read by _fastpath.fetched_for
        if hasattr(fastpath, "resolve_later"):
            # a plain miss in C: found missing (_fastpath.answer_cached), then on its way to the upstreams
            # (_fastpath.resolve_later); each calls the method for anything else
            self.answer_cached = fastpath.bound(fastpath.answer_cached, self)
            self.resolve_later = fastpath.bound(fastpath.resolve_later, self)

    # ------------------------------------------------------------ fast path: cache hits

    def answer_cached(self, data: bytes, client: str, udp: bool) -> Optional[bytes]:
        """The reply if the cache has it; ``DROP`` (b"") to send nothing; None for :meth:`resolve_later`."""
        st = self.access.states.get(client)
        if st is None or st.tokens >= 0 or not st.allowed:
            gate = self._gate(data, client)
            if gate is not None:
                return gate
            st = self.access.state(client)
        view = st.view
        if view is None or (st.via and data[10:12] != b"\x00\x00"):  # a forwarder's query may name a MAC
            view, client = self.identities.identify(st, client, data)
        cache = self.cache
        hit = view.aliases.get(data[2:])
        if hit is not None:
            entry, qend, limit = hit
        else:
            found = self._lookup_key(data, self.edns_size)
            if found is None:
                self._looked_up = (data, None, view, client)
                return None
            key, qend, limit = found
            entry = cache.get(view.tag + key)
            if entry is None:
                self._looked_up = (data, found, view, client)  # resolve_later, called next with this packet,
                # needs them too
                return None
            cache.alias(view.aliases, data[2:], entry, qend, limit)
        now = self.clock()
        if now >= entry.expires:
            if not entry.synthesized or not self._renewed(entry, view, now):
                return None
        elif entry.gen != self.generation and not self._still_so(entry, view, now):
            return None
        out = entry.reply(data, qend, now)
        if udp and len(out) > limit:
            out = truncated(out, qend, entry.key[-1], self.edns_size)
        self.stats.cache_hits += 1
        entry.hits += 1
        if now >= entry.prefetch_at and not entry.synthesized:
            entry.prefetch_at = _NEVER  # once per entry: the refreshed answer comes with a new one
            self.fetcher.prefetch(entry.base or entry)
        self.querylog.log_hit(now, client, entry)
        return out

    def _still_so(self, entry: CacheEntry, view: View, now: float) -> bool:
        """Would the view's current policy give a cached answer checked under an older generation unchanged?
        Then it is current again (True). A policy change makes every cached answer old at once, and without
        this check each would take the miss path's whole work on its next hit: on a busy network the first
        second after a parent's change answered late (bench/README.md, tail latency).

        Only the plain cases are taken here: an upstream answer the view allows, CNAME targets included, and
        a name blocked for the same reason under the same block mode and settings; in both, a schedule's TTL
        cap must not be shorter than what the answer has left. Anything else (safe search, a local name, a
        block through a CNAME, a change of verdict) returns False, and the miss path makes the answer again."""
        name = self._own_name(entry, view)
        if name is None:
            return False
        wall = self.wall()
        verdict = view.decide(name, wall)
        if entry.synthesized:
            if not self._same_block(entry, view, verdict) or not _within(entry, verdict.ttl_cap, now):
                return False
        else:
            if entry.base is None or (verdict is not None and (verdict.action != ALLOW or
                                                               not _within(entry, verdict.ttl_cap, now))):
                return False
            for target in entry.cnames:
                verdict = view.decide(target, wall)
                if verdict is not None and (verdict.action != ALLOW or
                                            not _within(entry, verdict.ttl_cap, now)):
                    return False
        entry.gen = self.generation
        return True

    def _renewed(self, entry: CacheEntry, view: View, now: float) -> bool:
        """A blocked answer that expired: does the view still block its name for the same reason, with the
        same TTL? Then its TTL starts again in place (True): the bytes are the same. Every blocked name the
        network asked for in one burst expires in the same second, and without this each took the miss path
        on its next query: once a ``blocking.blocked_ttl`` (60 s) the engine made thousands of blocked answers
        again at once, and answers queued behind them for 50-70 ms (bench/README.md, tail latency)."""
        name = self._own_name(entry, view)
        if name is None:
            return False
        verdict = view.decide(name, self.wall())
        if not self._same_block(entry, view, verdict) or not entry.ttls or \
                entry.ttls[0] != self._blocked_ttl(verdict.ttl_cap):
            return False
        entry.renew(now, _early(entry.key, entry.ttls[0]))
        entry.gen = self.generation
        self.stats.blocked += 1   # counted as when it was made again: once a TTL (hearth_dns_blocked)
        self.stats.count_block(entry.reason)
        return True

    def _own_name(self, entry: CacheEntry, view: View) -> Optional[bytes]:
        """The wire name of ``view``'s cached answer ``entry``; None when it is not the view's, or the name
        is a local one (answered by the slow path, never re-checked in place)."""
        vkey, tag = entry.key, view.tag
        if vkey[:len(tag)] != tag or len(vkey) < len(tag) + 6:
            return None
        name = vkey[len(tag):-5]
        return None if self.local.has_wire_name(name) else name

    def _same_block(self, entry: CacheEntry, view: View, verdict: Optional[Verdict]) -> bool:
        """``verdict`` blocks the name as the blocked answer ``entry`` was made: same decision, block mode and
        settings (the TTL is the caller's to check)."""
        return verdict is not None and verdict.action == BLOCK and \
            entry.made_by == (verdict.decision, view.block_mode, self.blocking, self.edns_size)

    def _blocked_ttl(self, cap: Optional[int]) -> int:
        """A blocked answer's TTL: ``blocking.blocked_ttl``, or ``cap`` when that is shorter."""
        ttl = self.blocking.blocked_ttl
        return ttl if cap is None or cap > ttl else cap

    def _gate(self, data: bytes, client: str) -> Optional[bytes]:
        """Access control for a client that is new, rate limited or not allowed."""
        access = self.access
        st = access.state(client)
        if st.tokens >= 0 and not access.admit(st):
            self.stats.rate_limited += 1
            return DROP
        if not st.allowed:
            self.stats.refused += 1
            return error_reply(data, RCODE_REFUSED, self.edns_size, (EDE_PROHIBITED, "client not allowed")) or DROP
        return None

    # ------------------------------------------------------------ who is asking (identify.py)

    @property
    def policies(self) -> Optional[PolicySet]:
        return self.identities.policies

    @property
    def registry(self) -> ViewRegistry:
        return self.identities.registry

    @property
    def seen(self) -> dict[str, str]:
        return self.identities.seen

    @seen.setter
    def seen(self, value: dict[str, str]) -> None:
        self.identities.seen = value

    def view_of(self, client: str, data: bytes) -> tuple[View, str]:
        """(view, who) for the miss and slow paths (see :meth:`Identities.identify`)."""
        return self.identities.view_of(self.access.state(client), client, data)

    def set_policies(self, policies: Optional[PolicySet]) -> None:
        """Swap in a new policy snapshot: every client is identified again, every cached answer re-checked."""
        self.identities.policies = policies
        self.generation += 1
        self.forget_identities()

    def forget_identities(self) -> None:
        """Make every client be identified again on its next query (devices or neighbours changed, or
        to learn which clients are still active)."""
        self.identities.forget(self.access.states.values())

    # ------------------------------------------------------------ misses

    # read by _fastpath.resolve_later
    _special_qtypes = _SPECIAL_QTYPES
    _nothing_looked_up = _NOTHING_LOOKED_UP

    def resolve_later(self, data: bytes, client: str, udp: bool, send: Callable[[bytes], None]) -> None:
        """Answer a query the cache could not: plain ones by callbacks, the rest in a task."""
        self.stats.slow_queries += 1
        if len(self._waiting) + len(self._tasks) >= self.max_pending:
            self.stats.dropped += 1
            if not udp:
                out = error_reply(data, RCODE_SERVFAIL, self.edns_size)
                if out:
                    send(out)
            return
        data_seen, found, view, who = self._looked_up
        self._looked_up = _NOTHING_LOOKED_UP
        if data_seen is data:   # answer_cached just parsed this packet and identified its sender
            q = self._checked_question(data, found) if found is not None else None
        else:
            q = parse_question(data, self.edns_size)
            view = None
        if q is not None and q.key[-3:-1] == _CLASS_IN and q.key[-5:-3] not in _SPECIAL_QTYPES \
                and q.key[:-5] not in self.local.wire_names:   # local.has_wire_name, inlined
            if view is None:
                view, client = self.view_of(client, data)
            else:
                client = who
            verdict = view.decide(q.key[:-5], self.wall())
            if verdict is not None and verdict.action != ALLOW:
                self._answer_verdict(data, q, client, udp, send, view, verdict)
                return
            self.stats.cache_misses += 1
            self._forward(data, q, client, udp, send, view, verdict.ttl_cap if verdict is not None else None)
            return
        self._spawn(self._resolve_and_send(data, client, udp, send))

    def _answer_verdict(self, data: bytes, q: Question, client: str, udp: bool, send: Callable[[bytes], None],
                        view: View, verdict: Verdict) -> None:
        """A plain question the view blocks (answered at once) or rewrites (safe search, in a task)."""
        if verdict.action == BLOCK:
            now = self.clock()
            entry = self._blocked_entry(view.tag + q.key, verdict.decision, view, verdict.ttl_cap)
            self._send_entry(entry, data, q, client, udp, send, now, now, False)
        else:
            self._spawn(self._rewrite_and_send(data, q, client, udp, send, view, verdict))

    def _forward(self, data: bytes, q: Question, client: str, udp: bool, send: Callable[[bytes], None],
                 view: View, cap: Optional[int]) -> None:
        """Ask the upstreams for a plain query the view allows; answer from the fetched entry (the view's
        copy of it), or stale, or SERVFAIL."""
        now = self.clock()
        held = self.cache.get(q.key)
        if held is not None and now < held.expires:
            entry = self._view_entry(view, q.key, held, cap, now)
            self._send_entry(entry, data, q, client, udp, send, now, now, False)
            return
        cfg = self.cache.config
        stale = held if held is not None and cfg.serve_stale > 0 and now < held.stale_until else None
        if stale is not None and self._upstreams_down():
            # the upstreams just failed: answer stale now, refresh in the background (RFC 8767 §5)
            self._send_failure(data, q, client, udp, send, now, stale, "upstreams down")
            self.fetcher.refresh(q.key)
            return
        if stale is None:   # the usual miss: its arguments bound in a tuple (a _Waiter, a closure cost more)
            self.fetcher.fetch(q.key, (self._fetched_for_usual, self, data, q, client, udp, send, now, view, cap))
            return
        waiter = _Waiter(self, data, q, client, udp, send, now, stale, view, cap)
        if cfg.stale_client_timeout > 0:
            waiter.timer = asyncio.get_running_loop().call_later(cfg.stale_client_timeout, waiter.on_slow)
            self._timers.add(waiter.timer)
        self.fetcher.fetch(q.key, waiter)

    def _fetched_for(self, data: bytes, q: Question, client: str, udp: bool, send: Callable[[bytes], None],
                     started: float, view: View, cap: Optional[int], entry: Optional[CacheEntry],
                     error: Optional[str]) -> None:
        """A client's answer once the fetch it waited for ended (no stale answer to fall back on): the view's copy
        of the entry, or SERVFAIL. What ``_Waiter`` does for a client without a stale answer (every miss)."""
        if entry is None:
            self._send_failure(data, q, client, udp, send, started, None, error or "no answer")
            return
        now = self.clock()
        self._send_entry(self._view_entry(view, q.key, entry, cap, now), data, q, client, udp, send, started, now,
                         True)

    def _upstreams_down(self) -> bool:
        """Within the failure recheck period: no upstream answered a recent query and none has since."""
        recheck = self.cache.config.stale_failure_recheck
        return recheck > 0 and self.upstreams.known_down(recheck)

    def _view_entry(self, view: View, key: bytes, up: CacheEntry, cap: Optional[int], now: float) -> CacheEntry:
        """The view's cached copy of an upstream answer it allows: blocked instead when a CNAME in the
        answer leads to a name the view blocks; TTLs capped at ``cap``."""
        wall = None
        for target in up.cnames:
            if wall is None:
                wall = self.wall()
            verdict = view.decide(target, wall)
            if verdict is not None:
                if verdict.ttl_cap is not None and (cap is None or verdict.ttl_cap < cap):
                    cap = verdict.ttl_cap
                if verdict.action == BLOCK:
                    decision = replace(verdict.decision, cname_of=key_name(key))
                    return self._blocked_entry(view.tag + key, decision, view, cap)
        entry = self._derive(up, now, cap)
        entry.gen = self.generation
        entry.key = vkey = view.tag + key   # set even when not cached (TTL 0): the query log describes it
        if entry.expires > now:
            self.cache.put(vkey, entry)
            copies = up.copies
            if not copies:
                up.copies = [vkey]
            elif len(copies) < 64:
                copies.append(vkey)
        return entry

    def _send_entry(self, entry: CacheEntry, data: bytes, q: Question, client: str, udp: bool,
                    send: Callable[[bytes], None], started: float, now: float, upstream: bool) -> None:
        out = self._entry_reply(entry, data, q.qend, now)
        if udp and len(out) > q.limit:
            out = truncated(out, q.qend, q.key[-1], self.edns_size)
        send(out)
        latency = (now - started) * 1000.0
        self.stats.latency[bisect_left(LATENCY_BUCKETS_MS, latency)] += 1   # Stats.observe_latency, inlined
        self.querylog.record(now, client, q.key, entry.rcode, entry, entry.upstream if upstream else "",
                             latency, not upstream, entry.reason)

    def _send_failure(self, data: bytes, q: Question, client: str, udp: bool, send: Callable[[bytes], None],
                      started: float, stale: Optional[CacheEntry], error: str) -> None:
        now = self.clock()
        latency = (now - started) * 1000.0
        if stale is not None:
            self.stats.stale_answers += 1
            out = stale.stale_reply(data, q.qend, self.cache.config.stale_answer_ttl)
            if q.key[-1] & KEY_EDNS:
                out = add_option(out, ede_option(EDE_STALE_ANSWER, "upstreams unavailable"))
            if udp and len(out) > q.limit:
                out = truncated(out, q.qend, q.key[-1], self.edns_size)
            send(out)
            self.querylog.record(now, client, q.key, stale.rcode, stale, stale.upstream, latency, True, "stale")
            return
        self.stats.servfail += 1
        out = error_reply(data, RCODE_SERVFAIL, self.edns_size,
                          (EDE_NO_REACHABLE_AUTHORITY, f"upstreams failed: {error}"[:150]))
        if out:
            send(out)
        self.querylog.record(now, client, q.key, RCODE_SERVFAIL, "", "", latency, False, "upstream-failed")

    def _blocked_entry(self, vkey: bytes, decision: Decision, view: View, cap: Optional[int]) -> CacheEntry:
        """The answer for a name the view blocks, under its block mode, cached for this generation
        (``vkey``: the view's tag + the question key) for the blocked TTL, or less with ``cap``."""
        cfg = self.blocking
        mode = view.block_mode
        if mode == "page" and not cfg.page_ipv4:
            mode = "null"  # no block page address configured: the page cannot be shown
        qtype = vkey[-5] << 8 | vkey[-4]
        records: list[tuple[int, bytes]] = []
        rcode = 0
        if mode == "nxdomain" or decision.answer == "nxdomain":
            rcode = RCODE_NXDOMAIN
        elif decision.answer == "nodata":
            pass
        elif qtype == 1:
            records = [(1, ipaddress.IPv4Address(cfg.page_ipv4).packed if mode == "page" else _NULL_A)]
        elif qtype == 28 and (mode == "null" or cfg.page_ipv6):
            records = [(28, ipaddress.IPv6Address(cfg.page_ipv6).packed if mode == "page" else _NULL_AAAA)]
        ttl = self._blocked_ttl(cap)
        text = decision.text
        packed, qend = synth_reply(vkey[len(view.tag):], rcode, records, ttl, self.edns_size,
                                   (decision.ede_code, text), soa=not records)
        entry = CacheEntry(packed, qend, ttl, self.clock(), rcode=rcode, reason=decision.log_reason,
                           summary=f"blocked: {text}", synthesized=True)
        entry.expires = entry.stale_until = entry.expires - _early(vkey, ttl)
        entry.gen = self.generation
        entry.made_by = (decision, view.block_mode, cfg, self.edns_size)   # for _still_so after a policy change
        self.stats.blocked += 1
        self.stats.count_block(decision.log_reason)
        if ttl > 0:
            self.cache.put(vkey, entry)
        return entry

    async def _rewrite_and_send(self, data: bytes, q: Question, client: str, udp: bool,
                                send: Callable[[bytes], None], view: View, verdict: Verdict) -> None:
        """Safe search: answer with the safe host (CNAME + its addresses from the upstreams)."""
        started = self.clock()
        try:
            entry, upstream = await self._rewrite_entry(q.key, view, verdict)
        except FetchFailed as exc:
            self._send_failure(data, q, client, udp, send, started, None, str(exc))
            return
        except Exception:  # a bug must cost one answer, never the server
            log.exception("safe-search answer for %s failed", key_name(q.key))
            self._send_failure(data, q, client, udp, send, started, None, "internal error")
            return
        self._send_entry(entry, data, q, client, udp, send, started, self.clock(), bool(upstream))

    async def _rewrite_entry(self, key: bytes, view: View, verdict: Verdict) -> tuple[CacheEntry, str]:
        target = verdict.target
        cap = verdict.ttl_cap
        ttl = 300 if cap is None or cap > 300 else cap
        upstream = ""
        if is_address_target(target):
            packed, qend = address_answer(key, target, ttl, self.edns_size)
            rcode, summary = 0, f"A {target}" if key[-5:-3] == b"\x00\x01" else "NODATA"
        else:
            target_key = wire_name(target) + key[-5:]
            up = self.cache.get(target_key)
            now = self.clock()
            if up is None or now >= up.expires:
                up = await asyncio.shield(self.fetcher.future(target_key))
                upstream = up.upstream
            left = int(up.expires - self.clock())
            if left < ttl:
                ttl = max(left, 0)
            packed, rcode, summary = rewrite_answer(key, target, up.packet(target_key), ttl, self.edns_size)
            qend = 12 + len(key) - 1
        entry = CacheEntry(packed, qend, ttl, self.clock(), rcode=rcode, reason=verdict.decision.log_reason,
                           summary=summary, synthesized=True, upstream=upstream)
        entry.gen = self.generation
        self.stats.rewritten += 1
        if ttl > 0:
            self.cache.put(view.tag + key, entry)
        return entry, upstream

    # ------------------------------------------------------------ slow path: one task, dnslib

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
        """The reply to one query that missed the cache (None: send nothing)."""
        view, client = self.view_of(client, data)
        started = self.clock()
        q = parse_question(data, self.edns_size)
        try:
            cq = ClientQuery.parse(data)
        except Exception:  # noqa: BLE001 - dnslib raises several types on garbage
            self.stats.formerr += 1
            return error_reply(data, RCODE_FORMERR, self.edns_size)
        header = cq.msg.header
        if header.qr:
            self.stats.dropped += 1
            return None  # a response sent to us: answering could start a loop
        if header.opcode != 0:
            return error_reply(data, RCODE_NOTIMP, self.edns_size)
        if len(cq.msg.questions) != 1:
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
        out, rcode, answer, upstream, reason = await self._answer(data, q, cq, view)
        if udp and len(out) > q.limit:
            out = truncated(out, q.qend, q.key[-1], self.edns_size)
        now = self.clock()
        latency = (now - started) * 1000.0
        self.stats.observe_latency(latency)
        if rcode == RCODE_SERVFAIL:
            self.stats.servfail += 1
        self.querylog.record(now, client, q.key, rcode, answer, upstream, latency, False, reason)
        return out

    async def _answer(self, data: bytes, q: Question, cq: ClientQuery, view: View) -> tuple:
        """(reply, rcode, answer, upstream, reason) for a well-formed query."""
        if cq.qclass != 1:  # CHAOS version.bind / id.server and other classes: nothing to disclose
            return self._refuse(cq, "class not served"), RCODE_REFUSED, "", "", "refused-class"
        if cq.qtype in (QTYPE.AXFR, QTYPE.IXFR):
            return self._refuse(cq, "zone transfer refused"), RCODE_REFUSED, "", "", "refused-transfer"
        if cq.qtype == QTYPE.ANY:
            return _patched(rfc8482_any(cq, self.edns_size), data, q), 0, "HINFO RFC8482", "", "rfc8482"
        local = self.local.lookup(cq.name, cq.qtype) if self.local else None
        if local is not None:
            self.stats.local_answers += 1
            packed = local_answer(cq, local, self.edns_size, cq.name)
            ttl = min((r.ttl for r in local), default=60)
            entry = CacheEntry(packed, q.qend, ttl, self.clock(), summary=summarise(local), reason="local-record",
                               synthesized=True)
            entry.gen = self.generation
            self.cache.put(view.tag + q.key, entry)
            return entry.reply(data, q.qend, self.clock()), 0, entry, "", "local-record"
        verdict = view.decide(q.key[:-5], self.wall())
        cap = verdict.ttl_cap if verdict is not None else None
        if verdict is not None and verdict.action == BLOCK:
            entry = self._blocked_entry(view.tag + q.key, verdict.decision, view, cap)
            return entry.reply(data, q.qend, self.clock()), entry.rcode, entry, "", entry.reason
        if verdict is not None and verdict.action == REWRITE:
            try:
                entry, upstream = await self._rewrite_entry(q.key, view, verdict)
            except FetchFailed as exc:
                out = error_reply(data, RCODE_SERVFAIL, self.edns_size,
                                  (EDE_NO_REACHABLE_AUTHORITY, f"upstreams failed: {exc}"[:150]))
                return out, RCODE_SERVFAIL, "", "", "upstream-failed"
            return entry.reply(data, q.qend, self.clock()), entry.rcode, entry, upstream, entry.reason
        self.stats.cache_misses += 1
        now = self.clock()
        held = self.cache.get(q.key)
        if held is not None and now < held.expires:
            entry = self._view_entry(view, q.key, held, cap, now)
            return entry.reply(data, q.qend, now), entry.rcode, entry, "", entry.reason
        cfg = self.cache.config
        if held is not None and cfg.serve_stale > 0 and now < held.stale_until and self._upstreams_down():
            self.fetcher.refresh(q.key)
            return self._stale_answer(data, q, cq, held)
        try:
            up = await asyncio.shield(self.fetcher.future(q.key))
            entry = self._view_entry(view, q.key, up, cap, self.clock())
        except FetchFailed as exc:
            if held is not None and cfg.serve_stale > 0 and now < held.stale_until:
                return self._stale_answer(data, q, cq, held)
            out = error_reply(data, RCODE_SERVFAIL, self.edns_size,
                              (EDE_NO_REACHABLE_AUTHORITY, f"upstreams failed: {exc}"[:150]))
            return out, RCODE_SERVFAIL, "", "", "upstream-failed"
        return entry.reply(data, q.qend, self.clock()), entry.rcode, entry, entry.upstream, entry.reason

    def _stale_answer(self, data: bytes, q: Question, cq: ClientQuery, held: CacheEntry) -> tuple:
        self.stats.stale_answers += 1
        out = held.stale_reply(data, q.qend, self.cache.config.stale_answer_ttl)
        if cq.edns:
            out = add_option(out, ede_option(EDE_STALE_ANSWER, "upstreams unavailable"))
        return out, held.rcode, held, held.upstream, "stale"

    def _refuse(self, cq: ClientQuery, why: str) -> bytes:
        return finish(reply_skeleton(cq, RCODE_REFUSED), cq, self.edns_size, (EDE_NOT_SUPPORTED, why))

    # ------------------------------------------------------------ housekeeping

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def pending(self) -> int:
        return len(self._tasks) + len(self._waiting)

    async def drain(self, timeout: float = 2.0) -> None:
        """Let in-flight queries finish (used on shutdown), then cancel what is left."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (self._tasks or self._waiting) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        for timer in self._timers:
            timer.cancel()


class _Waiter:
    """A client waiting on an upstream fetch: answers once, from the entry, stale, or SERVFAIL."""

    __slots__ = ("pipeline", "data", "q", "client", "udp", "send", "started", "stale", "timer", "answered", "view",
                 "cap")

    def __init__(self, pipeline: Pipeline, data: bytes, q: Question, client: str, udp: bool,
                 send: Callable[[bytes], None], started: float, stale: Optional[CacheEntry], view: View,
                 cap: Optional[int]):
        self.pipeline, self.data, self.q, self.client, self.udp, self.send = pipeline, data, q, client, udp, send
        self.started, self.stale, self.view, self.cap = started, stale, view, cap
        self.timer: Optional[asyncio.TimerHandle] = None
        self.answered = False

    def __call__(self, entry: Optional[CacheEntry], error: Optional[str]) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.pipeline._timers.discard(self.timer)
        if self.answered:
            return  # the stale answer went out already; the fetch refreshed the cache
        self.answered = True
        p = self.pipeline
        if entry is not None:
            now = p.clock()
            entry = p._view_entry(self.view, self.q.key, entry, self.cap, now)
            p._send_entry(entry, self.data, self.q, self.client, self.udp, self.send, self.started, now, True)
        else:
            p._send_failure(self.data, self.q, self.client, self.udp, self.send, self.started, self.stale,
                            error or "no answer")

    def on_slow(self) -> None:
        """RFC 8767 client-response timer: the upstream is slow and a stale answer exists."""
        self.pipeline._timers.discard(self.timer)
        self.timer = None
        if not self.answered:
            self.answered = True
            self.pipeline._send_failure(self.data, self.q, self.client, self.udp, self.send, self.started,
                                        self.stale, "upstream slow")


def _patched(packed: bytes, data: bytes, q: Optional[Question]) -> bytes:
    """dnslib packed its own copy of the question: put back the client's exact bytes."""
    if q is None or packed[12:q.qend].lower() != data[12:q.qend].lower():
        return packed
    return packed[:12] + data[12:q.qend] + packed[q.qend:]
