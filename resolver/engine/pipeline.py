"""One query's path through Hearth, top to bottom.

    socket (listener.py)
      → who is asking: allow-list and rate limit     (access.py)   refuse or drop early, before any work
      → which view: device → profile, memoised       (views.py)    per address; per packet for a MAC forwarder
      → answer cache: the view's alias, or its key   (cache.py)    patch ID, question case, TTLs; send
      ── miss of a plain query: no task, no dnslib ──
      → local names go to the slow path              (localrecords.py)
      → the view's verdict                           (profile_policy.py) block / rewrite / allow, TTL cap
          block: answer synthesized + EDE            cached for the view, per generation
          rewrite (safe search): CNAME + the safe host's answer (a task, dnslib)
      → upstream pool, coalesced per key             (upstream.py) callbacks; serve stale when it fails
      → reply rewritten from the upstream's bytes    (wire.py)     cached untagged: the upstream layer
      → the view's copy: CNAME targets checked too   (cache.py)    TTLs capped at the next schedule change
      ── anything unusual: one task, dnslib ──
      → parse, sanity rules                          (answers.py)  FORMERR / NOTIMP / BADVERS / REFUSED / ANY
      → local records, else the same upstream fetch
      → query log                                    (querylog.py) one deque append per answer
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import replace
from functools import partial
from typing import Callable, Optional

from dnslib import QTYPE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from resolver.policy.access import ClientAccess, ClientState
from resolver.engine.answers import (ClientQuery, address_answer, finish, local_answer, reply_skeleton, rewrite_answer,
                                     rfc8482_any, summarise, upstream_query)
from resolver.engine.cache import AnswerCache, CacheEntry
from resolver.policy.clients import AddressMatcher, edns_client_mac
from resolver.engine.localrecords import LocalZone
from resolver.base.names import wire_name
from resolver.policy.blocking import BlockingConfig, Decision
from resolver.policy.profile_policy import ALLOW, BLOCK, REWRITE, Verdict
from resolver.engine.querylog import QueryLog
from resolver.policy.safesearch import is_address_target
from resolver.engine.stats import Stats
from resolver.engine.upstream import UpstreamPool
from resolver.policy.views import PolicySet, View, ViewRegistry
from resolver.engine.wire import (KEY_CD, KEY_DO, KEY_EDNS, KEY_RD, RCODE_FORMERR, RCODE_NOTIMP, RCODE_NXDOMAIN,
                   RCODE_REFUSED, RCODE_SERVFAIL, TYPE_OPT, Question, add_option, canonical_query, cname_targets,
                   ede_option, error_reply, key_name, lookup_key, name_labels, parse_question, rewrite_reply,
                   synth_reply, truncated)

log = logging.getLogger("hearth.pipeline")

EDE_STALE_ANSWER, EDE_PROHIBITED, EDE_NOT_SUPPORTED, EDE_NO_REACHABLE_AUTHORITY = 3, 18, 21, 22
DROP = b""
_NEVER = float("inf")
_NULL_A, _NULL_AAAA = bytes(4), bytes(16)
_CNAME_IN = b"\x00\x05\x00\x01"
# Clients noted for the "seen" list between two flushes: a flood of spoofed sources must not grow it
# (or the next flush's writes) without bound.
_SEEN_MAX = 4096   # an RR's type CNAME and class IN, as bytes   # blocking.mode null: 0.0.0.0 and ::
# Types the raw miss path never forwards: ANY (RFC 8482), zone transfers, MAILA/MAILB.
_SPECIAL_QTYPES = {b"\x00\xff", b"\x00\xfc", b"\x00\xfb", b"\x00\xfe", b"\x00\xfd"}
_CLASS_IN = b"\x00\x01"
_MAC_OPTION_TAIL = b"\xfd\xe9\x00\x06"   # EDNS0 option 65001, 6 bytes: dnsmasq --add-mac, appended last
_MAC_OPTION_CODES = (b"\xfd\xe9", b"\xfe\x31")   # 65001 and 65073 (--add-mac=base64/text): no MAC without one


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
        self.registry = ViewRegistry()
        self.open_view = self.registry.get("-")   # no policy loaded: everything allowed
        self.policies = policies
        self.mac_forwarders = mac_forwarders       # whose EDNS0 MAC option is believed (None: nobody's)
        self._mac_views: dict[tuple[str, bytes], tuple[View, str]] = {}
        self.seen: dict[str, str] = {}             # address (or MAC behind a forwarder) -> MAC, since last flush
        self.blocking = blocking or BlockingConfig()
        # Bumped whenever what policy says may have changed (lists, config): a cached answer
        # checked under an older generation is re-checked, not trusted, and not flushed.
        self.generation = 1
        self._tasks: set[asyncio.Task] = set()
        self._waiting: dict[bytes, list[Callable[[Optional[CacheEntry], Optional[str]], None]]] = {}
        self._timers: set[asyncio.TimerHandle] = set()

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
            view, client = self._identify(st, client, data)
        cache = self.cache
        hit = view.aliases.get(data[2:])
        if hit is not None:
            entry, qend, limit = hit
        else:
            found = lookup_key(data, self.edns_size)
            if found is None:
                return None
            key, qend, limit = found
            entry = cache.get(view.tag + key)
            if entry is None:
                return None
            cache.alias(view.aliases, data[2:], entry, qend, limit)
        now = self.clock()
        if now >= entry.expires or entry.gen != self.generation:
            return None
        out = entry.reply(data, qend, now)
        if udp and len(out) > limit:
            out = truncated(out, qend, entry.key[-1], self.edns_size)
        self.stats.cache_hits += 1
        entry.hits += 1
        if now >= entry.prefetch_at and not entry.synthesized:
            entry.prefetch_at = _NEVER  # once per entry: the refreshed answer comes with a new one
            self._prefetch(entry.base or entry)
        self.querylog.log_hit(now, client, entry)
        return out

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

    # ------------------------------------------------------------ who is asking

    def _identify(self, st: ClientState, client: str, data: bytes) -> tuple[View, str]:
        """(view, who) for a query from ``client``: ``who`` is what the query log calls the client, its
        address, or the MAC a trusted forwarder named. Decided per query: a MAC in a trusted forwarder's
        query names the device; without one, the sender is itself (memoised on the address's state, which
        is only ever the sender's own identity, never a MAC's)."""
        ps = self.policies
        if ps is None:
            st.view = self.open_view
            return self.open_view, client
        if st.via is None:
            st.via = self.mac_forwarders is not None and client.split("%", 1)[0] in self.mac_forwarders
        if st.via:
            found = self._view_by_mac(ps, client, data)
            if found is not None:
                return found
            if st.view is not None:
                return st.view, client
        view, _device = ps.view_for(client)
        st.view = view
        if len(self.seen) < _SEEN_MAX:
            self.seen.setdefault(client, "")
        return view, client

    def _view_by_mac(self, ps: PolicySet, client: str, data: bytes) -> Optional[tuple[View, str]]:
        """(view, MAC) for the MAC a trusted forwarder put in the query's EDNS0 (None: no MAC in it),
        memoised per (forwarder, MAC): a MAC no device has falls back to the forwarder's own identity."""
        if data[-10:-6] == _MAC_OPTION_TAIL:
            raw = (client, data[-6:])
            found = self._mac_views.get(raw)
            if found is not None:
                return found
        elif _MAC_OPTION_CODES[0] not in data and _MAC_OPTION_CODES[1] not in data:
            return None   # the forwarder asking for itself (EDNS, no MAC): no parse
        else:
            raw = None
        mac = edns_client_mac(data)
        if mac is None:
            return None
        view, _device = ps.view_for(client, mac)
        found = (view, mac)
        if raw is not None:
            if len(self._mac_views) > 65536:
                self._mac_views.clear()
            self._mac_views[raw] = found
        if len(self.seen) < _SEEN_MAX:
            self.seen[mac] = mac
        return found

    def view_of(self, client: str, data: bytes) -> tuple[View, str]:
        """(view, who) as :meth:`_identify` says, for the miss and slow paths."""
        st = self.access.state(client)
        view = st.view
        return (view, client) if view is not None and not st.via else self._identify(st, client, data)

    def set_policies(self, policies: Optional[PolicySet]) -> None:
        """Swap in a new policy snapshot: every client is identified again, every cached answer re-checked."""
        self.policies = policies
        self.generation += 1
        self.forget_identities()

    def forget_identities(self) -> None:
        """Make every client be identified again on its next query (devices or neighbours changed, or
        to learn which clients are still active)."""
        for st in self.access.states.values():
            st.view = None
        self._mac_views.clear()

    # ------------------------------------------------------------ misses

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
        q = parse_question(data, self.edns_size)
        if q is not None and q.key[-3:-1] == _CLASS_IN and q.key[-5:-3] not in _SPECIAL_QTYPES \
                and not self.local.has_wire_name(q.key[:-5]):
            view, client = self.view_of(client, data)
            verdict = view.decide(q.key[:-5], self.wall())
            if verdict is not None and verdict.action != ALLOW:
                if verdict.action == BLOCK:
                    now = self.clock()
                    entry = self._blocked_entry(view.tag + q.key, verdict.decision, view, verdict.ttl_cap)
                    self._send_entry(entry, data, q, client, udp, send, now, now, False)
                else:
                    self._spawn(self._rewrite_and_send(data, q, client, udp, send, view, verdict))
                return
            self.stats.cache_misses += 1
            self._forward(data, q, client, udp, send, view, verdict.ttl_cap if verdict is not None else None)
            return
        self._spawn(self._resolve_and_send(data, client, udp, send))

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
            self._refresh(q.key)
            return
        waiter = _Waiter(self, data, q, client, udp, send, now, stale, view, cap)
        if stale is not None and cfg.stale_client_timeout > 0:
            waiter.timer = asyncio.get_running_loop().call_later(cfg.stale_client_timeout, waiter.on_slow)
            self._timers.add(waiter.timer)
        self._fetch(q.key, waiter)

    def _upstreams_down(self) -> bool:
        """Within the failure recheck period: no upstream answered a recent query and none has since."""
        recheck = self.cache.config.stale_failure_recheck
        return recheck > 0 and self.upstreams.known_down(recheck)

    def _refresh(self, key: bytes) -> None:
        """Fetch ``key`` in the background unless a fetch for it is under way (the answer lands in the cache)."""
        if key not in self._waiting and len(self._waiting) + len(self._tasks) < self.max_pending:
            self._fetch(key, _ignore)

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
        entry = up.derive(now, cap)
        entry.gen = self.generation
        entry.key = vkey = view.tag + key   # set even when not cached (TTL 0): the query log describes it
        if entry.expires > now:
            self.cache.put(vkey, entry)
            if len(up.copies) < 64:
                up.copies.append(vkey)
        return entry

    def _send_entry(self, entry: CacheEntry, data: bytes, q: Question, client: str, udp: bool,
                    send: Callable[[bytes], None], started: float, now: float, upstream: bool) -> None:
        out = entry.reply(data, q.qend, now)
        if udp and len(out) > q.limit:
            out = truncated(out, q.qend, q.key[-1], self.edns_size)
        send(out)
        latency = (now - started) * 1000.0
        self.stats.observe_latency(latency)
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

    # ------------------------------------------------------------ upstream fetches (coalesced)

    def _fetch(self, key: bytes, on_done: Callable[[Optional[CacheEntry], Optional[str]], None]) -> None:
        """Get ``key`` from the upstreams; every caller asking meanwhile shares the one fetch."""
        waiters = self._waiting.get(key)
        if waiters is not None:
            waiters.append(on_done)
            return
        self._waiting[key] = [on_done]
        flags = key[-1]
        packet = upstream_query(key[:-5], key[-5] << 8 | key[-4], key[-3] << 8 | key[-2], do=bool(flags & KEY_DO),
                                cd=bool(flags & KEY_CD), edns_size=self.edns_size)
        self.stats.upstream_queries += 1
        self.upstreams.forward(packet, partial(self._fetched, key, self.generation), key[:-1])

    def _fetched(self, key: bytes, generation: int, reply: Optional[bytes], upstream: str,
                 error: Optional[str]) -> None:
        entry = None
        if reply is not None:
            try:
                entry = self._entry_from_reply(reply, key, upstream)
                entry.gen = generation  # checked by policy when the fetch started
            except Exception as exc:  # noqa: BLE001 - an unusable reply is that upstream failing
                error = f"bad reply from {upstream}: {exc}"
        if entry is None:
            self.stats.upstream_errors += 1
        else:
            entry.key = key   # even when not cached (TTL 0, cache off): its question rebuilds and describes it
        if entry is not None and entry.expires > entry.stored:
            old = self.cache.get(key)
            self.cache.put(key, entry)
            if old is not None and old.copies:
                self.cache.replace_copies(old)
        for on_done in self._waiting.pop(key, ()):
            try:
                on_done(entry, error)
            except Exception:  # one broken waiter must not starve the others
                log.exception("answering a waiting query failed")

    def _entry_from_reply(self, reply: bytes, key: bytes, upstream: str) -> CacheEntry:
        """The cache entry for an upstream reply, rewritten from its bytes (dnslib only for oddities)."""
        try:
            packed, offsets, ttls, negative = rewrite_reply(reply, key, self.edns_size)
        except ValueError:
            return self._entry_via_dnslib(reply, key, upstream)
        rcode = reply[3] & 0x0F
        ttl = 0
        if rcode == 0 and reply[6:8] != b"\x00\x00":
            ttls = [self.cache.clamp(t) for t in ttls]
            ttl = min(ttls)
        elif rcode in (0, RCODE_NXDOMAIN) and negative >= 0:
            ttl = self.cache.negative_ttl(negative)
            ttls = [min(t, ttl) for t in ttls]
        entry = CacheEntry(packed, 12 + len(key) - 1, ttl, self.clock(), stale_for=self.cache.config.serve_stale,
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
        entry = CacheEntry(packed, 12 + len(key) - 1, ttl, self.clock(), stale_for=self.cache.config.serve_stale,
                           rcode=rcode, summary=summarise(resp.rr), upstream=upstream)
        entry.cnames = cname_targets(packed)
        return entry

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
        ttl = cfg.blocked_ttl if cap is None or cap > cfg.blocked_ttl else cap
        text = decision.text
        packed, qend = synth_reply(vkey[len(view.tag):], rcode, records, ttl, self.edns_size,
                                   (decision.ede_code, text), soa=not records)
        entry = CacheEntry(packed, qend, ttl, self.clock(), rcode=rcode, reason=decision.log_reason,
                           summary=f"blocked: {text}", synthesized=True)
        entry.gen = self.generation
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
        except _FetchFailed as exc:
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
                up = await asyncio.shield(self._fetch_entry(target_key))
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

    def _fetch_entry(self, key: bytes) -> asyncio.Future:
        """:meth:`_fetch` as a future (for the slow path): the entry, or an exception."""
        fut = asyncio.get_running_loop().create_future()

        def done(entry: Optional[CacheEntry], error: Optional[str]) -> None:
            if not fut.done():
                if entry is None:
                    fut.set_exception(_FetchFailed(error or "no answer"))
                else:
                    fut.set_result(entry)

        self._fetch(key, done)
        return fut

    def _prefetch(self, entry: CacheEntry) -> None:
        if entry.refreshing:
            return
        entry.refreshing = True
        self.stats.prefetches += 1
        self._fetch(entry.key, lambda _e, _err: setattr(entry, "refreshing", False))

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
            except _FetchFailed as exc:
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
            self._refresh(q.key)
            return self._stale_answer(data, q, cq, held)
        try:
            up = await asyncio.shield(self._fetch_entry(q.key))
            entry = self._view_entry(view, q.key, up, cap, self.clock())
        except _FetchFailed as exc:
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


def _ignore(_entry: Optional[CacheEntry], _error: Optional[str]) -> None:
    """The waiter of a background refresh: the fetch itself puts the answer in the cache."""


class _FetchFailed(Exception):
    pass


class _FlagsOnly:
    """Stands in for a ClientQuery when packing a cached reply: only EDNS and DO matter."""

    def __init__(self, flags: int):
        self.edns = bool(flags & KEY_EDNS)
        self.do = bool(flags & KEY_DO)


def _patched(packed: bytes, data: bytes, q: Optional[Question]) -> bytes:
    """dnslib packed its own copy of the question: put back the client's exact bytes."""
    if q is None or packed[12:q.qend].lower() != data[12:q.qend].lower():
        return packed
    return packed[:12] + data[12:q.qend] + packed[q.qend:]


def _wire_name(label: DNSLabel) -> bytes:
    return b"".join(bytes((len(lbl),)) + lbl for lbl in label.label) + b"\x00"
