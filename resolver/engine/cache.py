"""The answer cache: pre-packed replies keyed by question, patched per hit.

An entry holds the reply as bytes split around the question, the TTL offsets
and original TTLs. A hit copies the query's ID and question (so the reply
echoes the exact case the client sent) and the TTLs decremented by the age in
whole seconds; the patched tail is memoised per second, so a busy name costs a
dict lookup and two concatenations.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

from resolver.base.configspec import option
from resolver.engine import accel
from resolver.engine.wire import patch_ttls, ttl_offsets


@dataclass(frozen=True)
class CacheConfig:
    size: int = option(20000, "Most answers kept. Least recently used answers are dropped first.", minimum=0)
    min_ttl: float = option(0, "Answers are cached and served for at least this long, even if the upstream says less.",
                            duration=True, minimum=0)
    max_ttl: float = option(86400, "Answers are cached and served for at most this long.", duration=True, minimum=1)
    negative_max_ttl: float = option(3600, "Cap on caching NXDOMAIN and no-data answers (RFC 2308: the SOA's "
                                     "minimum, capped by this).", duration=True, minimum=0)
    serve_stale: float = option(86400, "How long past expiry an answer may still be served when every upstream "
                                "fails (RFC 8767). 0 turns serve-stale off.", duration=True, minimum=0)
    stale_answer_ttl: int = option(30, "TTL given to a stale answer (RFC 8767 recommends 30 seconds).",
                                   minimum=1, maximum=3600)
    stale_client_timeout: float = option(1.8, "When a stale answer exists and the upstream has not answered after "
                                         "this long, the stale answer is sent while the refresh goes on.",
                                         duration=True, minimum=0)
    stale_failure_recheck: float = option(30, "After no upstream answered a query, expired answers are served "
                                          "stale at once (and refreshed in the background) for this long, instead "
                                          "of each waiting stale_client_timeout first (RFC 8767's failure recheck "
                                          "timer). Any answer from an upstream ends it. 0: always wait.",
                                          duration=True, minimum=0, related="cache.stale_client_timeout")
    prefetch: bool = option(True, "Refresh popular answers shortly before they expire, so they never miss.")
    prefetch_min_hits: int = option(3, "Hits an answer needs before it is prefetched.", minimum=1)

    def __post_init__(self) -> None:
        if self.min_ttl > self.max_ttl:
            raise ValueError(f"min_ttl ({self.min_ttl:g}s) is larger than max_ttl ({self.max_ttl:g}s)")


_NONE: tuple = ()   # an entry's aliases or copies while it has none: a list is made at the first one


def untagged(key: bytes) -> bytes:
    """A cache key without its view tag (:mod:`resolver.policy.views`): the question key itself."""
    return key[2:] if key and key[0] >= 0xC0 else key


class CacheEntry:
    """One cached reply, split around the question: ``head`` is the 10 bytes after the ID,
    ``tail`` everything after the question.

    The accelerator makes the miss path's entries itself (``_fastpath.reply_entry``, ``derive``) and leaves them
    untracked by the cyclic garbage collector: an entry's only cycle, through a view's alias table, is broken by
    :meth:`AnswerCache._unalias` whenever the cache drops it."""

    __slots__ = ("key", "head", "tail", "offsets", "ttls", "stored", "expires", "stale_until", "prefetch_at",
                 "hits", "seen", "age", "patched", "rcode", "summary", "upstream", "reason", "refreshing",
                 "synthesized", "aliases", "gen", "cnames", "base", "copies", "made_by")

    def __init__(self, reply: bytes, qend: int, ttl: int, now: float, *, stale_for: float = 0.0,
                 rcode: int = 0, summary: Optional[str] = None, upstream: str = "", reason: Optional[str] = None,
                 synthesized: bool = False, prefetch_fraction: float = 0.9,
                 offsets: Optional[list[int]] = None, ttls: Optional[list[int]] = None):
        if offsets is None:
            offsets = ttl_offsets(reply)
        if ttls is None:
            ttls = [int.from_bytes(reply[o:o + 4], "big") for o in offsets]
        self.key = b""
        self.head = reply[2:12]
        self.tail = reply[qend:]
        # tuples: the collector stops tracking a tuple of ints, so long-lived entries cost full passes less
        self.offsets = tuple([o - qend for o in offsets])
        self.ttls = ttls = tuple(ttls)
        self.stored = now
        self.expires = now + ttl
        self.stale_until = self.expires + stale_for
        self.prefetch_at = now + ttl * prefetch_fraction if ttl >= 10 else self.expires
        self.hits = 0
        self.seen = 0
        tail = bytearray(self.tail)
        patch_ttls(tail, self.offsets, ttls, 0)
        self.patched = self.tail = bytes(tail)
        self.age = 0
        self.rcode = rcode
        self.summary = summary
        self.upstream = upstream
        self.reason = reason
        self.refreshing = False
        self.synthesized = synthesized
        self.aliases: list[tuple[dict, bytes]] = _NONE  # a list once it has one (most entries never do)
        self.gen = 0  # the policy generation this answer was checked against
        self.cnames: tuple[bytes, ...] = ()  # CNAME targets in the answer (checked by each profile's policy)
        self.base: Optional[CacheEntry] = None  # for a profile's copy: the upstream answer it was made from
        self.copies: list[bytes] = _NONE  # for an upstream answer: the keys of the views' copies of it
        self.made_by: Optional[tuple] = None  # for a blocked answer: what made it (the pipeline re-checks it)

    @classmethod
    def from_parts(cls, parts: tuple, now: float, stale_for: float, upstream: str) -> CacheEntry:
        """The entry for an upstream's reply from :func:`resolver.engine.wire.reply_parts`' result: the same
        as ``CacheEntry(packed, qend, ttl, now, stale_for=..., rcode=..., upstream=..., offsets=..., ttls=...)``
        with ``cnames`` set, without patching the tail again (its TTLs are written already)."""
        entry = cls.__new__(cls)
        entry.head, tail, entry.offsets, entry.ttls, ttl, entry.rcode, entry.cnames = parts
        entry.key = b""
        entry.tail = entry.patched = tail
        entry.stored = now
        entry.expires = expires = now + ttl
        entry.stale_until = expires + stale_for
        entry.prefetch_at = now + ttl * 0.9 if ttl >= 10 else expires
        entry.hits = entry.seen = entry.age = 0
        entry.summary = entry.reason = entry.base = None
        entry.upstream = upstream
        entry.refreshing = entry.synthesized = False
        entry.aliases = entry.copies = _NONE
        entry.gen = 0
        entry.made_by = None
        return entry

    def derive(self, now: float, cap: Optional[int]) -> CacheEntry:
        """A copy for one profile's view at ``now``: same bytes, TTLs counted down to now and, with
        ``cap``, no longer than ``cap`` seconds (a schedule window or pause ends then)."""
        age = int(now - self.stored)
        entry = CacheEntry.__new__(CacheEntry)
        entry.key = b""
        entry.head = self.head
        left = self.expires - now
        if age <= 0 and cap is None:  # just fetched, no cap (the usual miss): share the bytes as they are
            entry.tail, entry.patched, entry.offsets, entry.ttls = self.tail, self.tail, self.offsets, self.ttls
            entry.stored, entry.expires = self.stored, self.expires
        elif age == 0 and (not self.ttls or max(self.ttls) <= cap):
            # just fetched, under a cap no TTL reaches (a profile with schedules: the next change is hours
            # away): the TTLs stay as they are, so do the bytes; only the expiry is capped
            entry.tail, entry.patched, entry.offsets, entry.ttls = self.tail, self.tail, self.offsets, self.ttls
            entry.stored, entry.expires = now, now + (cap if cap < left else left)
        else:
            ttls = [t - age if t > age else 0 for t in self.ttls]
            if cap is not None:
                ttls = [t if t < cap else cap for t in ttls]
                if cap < left:
                    left = cap
            tail = bytearray(self.tail)
            patch_ttls(tail, self.offsets, ttls, 0)
            entry.tail = entry.patched = bytes(tail)
            entry.offsets, entry.ttls = self.offsets, tuple(ttls)
            entry.stored, entry.expires = now, now + left
        entry.stale_until = self.stale_until
        entry.prefetch_at = self.prefetch_at if self.prefetch_at < entry.expires else entry.expires
        entry.hits = entry.seen = entry.age = 0
        entry.rcode, entry.summary, entry.upstream, entry.reason = self.rcode, self.summary, self.upstream, self.reason
        entry.refreshing = False
        entry.synthesized = self.synthesized
        entry.aliases = entry.copies = _NONE
        entry.gen = 0
        entry.cnames = self.cnames
        entry.base = self
        entry.made_by = None
        return entry

    def renew(self, now: float, early: float) -> None:
        """Start an answer we made ourselves (a blocked name) over at ``now``, to be checked again ``early``
        seconds before its TTL ends: its bytes hold the full TTLs (every record the same), so only the times
        change."""
        ttl = self.ttls[0] if self.ttls else 0
        self.stored = now
        self.expires = self.stale_until = now + ttl - early
        self.prefetch_at = now + ttl * 0.9 if ttl >= 10 else self.expires
        self.patched, self.age = self.tail, 0

    def reply(self, query: bytes, qend: int, now: float) -> bytes:
        """The reply for ``query`` (ID and question copied from it) at time ``now``."""
        age = int(now - self.stored)
        if age != self.age:
            tail = bytearray(self.tail)
            patch_ttls(tail, self.offsets, self.ttls, age)
            self.patched = bytes(tail)
            self.age = age
        return query[:2] + self.head + query[12:qend] + self.patched

    def stale_reply(self, query: bytes, qend: int, ttl: int) -> bytes:
        """The reply with every TTL set to ``ttl`` (RFC 8767 stale answer)."""
        tail = bytearray(self.tail)
        patch_ttls(tail, self.offsets, [ttl] * len(self.ttls), 0)
        return query[:2] + self.head + query[12:qend] + bytes(tail)

    def packet(self, key: Optional[bytes] = None) -> bytes:
        """The whole reply as stored (ID 0, lower-case question), e.g. to describe it. ``key``: the
        question key, for an entry that was never cached (TTL 0) and so has none of its own."""
        return b"\x00\x00" + self.head + untagged(key or self.key)[:-1] + self.tail


class AnswerCache:
    """Bounded cache of :class:`CacheEntry` keyed by :func:`wire.parse_question` keys.

    Besides the key index there are *alias* tables, one per view (:mod:`resolver.policy.views`): the
    exact bytes of a query after its ID (``data[2:]``) → (entry, qend, limit). A client repeats
    its queries byte for byte, so a repeat is answered with one slice and one dict lookup,
    without parsing. Aliases are only added for packets whose key already hit, so they inherit
    the key's validation.

    Eviction is CLOCK (second chance), an LRU approximation that costs a hit nothing but a
    counter: the oldest entry is dropped unless it was hit since it was last looked at.
    """

    MAX_ALIASES_PER_ENTRY = 8

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self.evictions = 0
        # get(key): the entry, fresh or stale (callers compare ``expires``); the dict's own method, no call of ours
        self.get: Callable[[bytes], Optional[CacheEntry]] = self._entries.get
        fastpath = accel.fastpath
        if fastpath is not None and hasattr(fastpath, "cache_put"):
            self.put = partial(fastpath.cache_put, self)   # the same steps in C (_fastpath.cache_put)

    def __len__(self) -> int:
        return len(self._entries)

    def alias(self, table: dict, packet_tail: bytes, entry: CacheEntry, qend: int, limit: int) -> None:
        """Remember in ``table`` (one view's aliases) that the query bytes ``packet_tail`` (after the ID)
        are answered by ``entry``."""
        aliases = entry.aliases
        if len(aliases) < self.MAX_ALIASES_PER_ENTRY and entry.key in self._entries:
            if aliases is _NONE:
                entry.aliases = aliases = []
            aliases.append((table, packet_tail))
            table[packet_tail] = (entry, qend, limit)

    def put(self, key: bytes, entry: CacheEntry) -> Optional[CacheEntry]:
        """Cache ``entry`` under ``key``; returns the entry it replaced, if any."""
        if self.config.size <= 0:
            return None
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self._unalias(old)
        entry.key = key
        entries[key] = entry
        while len(entries) > self.config.size:
            oldest_key, oldest = entries.popitem(last=False)
            if oldest.hits != oldest.seen and oldest.expires > self.clock():
                oldest.seen = oldest.hits  # used since last time: second chance
                entries[oldest_key] = oldest
                continue
            self._unalias(oldest)
            self.evictions += 1
        return old

    def replace_copies(self, old: CacheEntry) -> None:
        """``old`` was refreshed: drop the views' copies of it, so their next query copies the new answer."""
        entries = self._entries
        for key in old.copies:
            copy = entries.get(key)
            if copy is not None and copy.base is old:
                self._unalias(entries.pop(key))
        old.copies = _NONE

    @staticmethod
    def _unalias(entry: CacheEntry) -> None:
        for table, a in entry.aliases:
            if table.get(a, (None,))[0] is entry:
                del table[a]
        entry.aliases = _NONE

    def clamp(self, ttl: int) -> int:
        """A positive answer's TTL after the min/max clamps."""
        cfg = self.config
        return int(min(max(ttl, cfg.min_ttl), cfg.max_ttl))

    def negative_ttl(self, soa_ttl: int) -> int:
        return int(min(soa_ttl, self.config.negative_max_ttl))

    def purge(self, predicate: Callable[[bytes, CacheEntry], bool]) -> int:
        """Drop entries for which ``predicate(key, entry)`` is true; returns how many."""
        doomed = [k for k, e in self._entries.items() if predicate(k, e)]
        for k in doomed:
            self._unalias(self._entries.pop(k))
        return len(doomed)

    def expire_stale(self, now: Optional[float] = None) -> int:
        """Drop entries past their serve-stale window (run from a periodic job)."""
        now = self.clock() if now is None else now
        return self.purge(lambda _k, e: e.stale_until <= now)

    def clear(self) -> None:
        for entry in self._entries.values():
            self._unalias(entry)
        self._entries.clear()
