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
from typing import Callable, Optional

from .configspec import option
from .wire import patch_ttls, ttl_offsets


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
    prefetch: bool = option(True, "Refresh popular answers shortly before they expire, so they never miss.")
    prefetch_min_hits: int = option(3, "Hits an answer needs before it is prefetched.", minimum=1)

    def __post_init__(self) -> None:
        if self.min_ttl > self.max_ttl:
            raise ValueError(f"min_ttl ({self.min_ttl:g}s) is larger than max_ttl ({self.max_ttl:g}s)")


class CacheEntry:
    """One cached reply. ``reply`` bytes start after the 2-byte ID."""

    __slots__ = ("head", "tail", "qend", "offsets", "ttls", "stored", "expires", "stale_until",
                 "prefetch_at", "hits", "age", "patched", "rcode", "summary", "upstream", "reason", "refreshing",
                 "synthesized")

    def __init__(self, reply: bytes, qend: int, ttl: int, now: float, *, stale_for: float = 0.0,
                 rcode: int = 0, summary: str = "", upstream: str = "", reason: Optional[str] = None,
                 synthesized: bool = False, prefetch_fraction: float = 0.9):
        offsets = ttl_offsets(reply)
        self.head = reply[2:12]
        self.tail = reply[qend:]
        self.qend = qend
        self.offsets = [o - qend for o in offsets]
        self.ttls = [int.from_bytes(reply[o:o + 4], "big") for o in offsets]
        self.stored = now
        self.expires = now + ttl
        self.stale_until = self.expires + stale_for
        self.prefetch_at = now + ttl * prefetch_fraction if ttl >= 10 else self.expires
        self.hits = 0
        self.age = 0
        self.patched = self.tail
        self.rcode = rcode
        self.summary = summary
        self.upstream = upstream
        self.reason = reason
        self.refreshing = False
        self.synthesized = synthesized

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


class AnswerCache:
    """Bounded LRU of :class:`CacheEntry` keyed by :func:`wire.parse_question` keys."""

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.clock = clock
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Optional[CacheEntry]:
        """The entry, fresh or stale (callers compare ``expires``), and mark it used."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: bytes, entry: CacheEntry) -> None:
        if self.config.size <= 0:
            return
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        while len(entries) > self.config.size:
            entries.popitem(last=False)
            self.evictions += 1

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
            del self._entries[k]
        return len(doomed)

    def expire_stale(self, now: Optional[float] = None) -> int:
        """Drop entries past their serve-stale window (run from a periodic job)."""
        now = self.clock() if now is None else now
        return self.purge(lambda _k, e: e.stale_until <= now)

    def clear(self) -> None:
        self._entries.clear()

    def items(self):
        return self._entries.items()
