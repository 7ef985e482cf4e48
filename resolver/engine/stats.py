"""Engine counters: plain attributes bumped on the hot path, read as a snapshot."""
from __future__ import annotations

import bisect
import time

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


_FIXED_KINDS = ("bypass", "paused", "schedule", "custom-rule", "safe-search")


def block_label(log_reason: str) -> str:
    """The counter a block goes to, never text a parent typed (it ends up in /metrics labels):
    ``category:adult`` counts as ``adult`` (list categories are single words from the lists' config or
    the feed), ``service:TikTok`` as ``service:TikTok`` (bundled service names), and a schedule, a
    profile's own rule or a pause only by kind (``schedule``, not ``schedule:Bedtime``)."""
    reason = log_reason.split(" via ", 1)[0]
    kind, _, what = reason.partition(":")
    if kind in ("category", "mandatory") and what and all(ch.isalnum() or ch in "-_." for ch in what):
        return what[:40]
    if kind == "service" and what:
        return f"service:{what[:40]}"
    return kind if kind in _FIXED_KINDS else "other"


class Stats:
    """Counters since the engine started. Cache hits are answered in microseconds and are
    counted in ``cache_hits``; the histogram covers queries that took the slow path."""

    def __init__(self) -> None:
        self.started = time.time()
        self.cache_hits = 0
        self.slow_queries = 0
        self.cache_misses = 0
        self.stale_answers = 0
        self.prefetches = 0
        self.local_answers = 0
        self.blocked = 0
        self.rewritten = 0
        self.blocked_by_category: dict[str, int] = {}
        self.upstream_queries = 0
        self.upstream_errors = 0
        self.servfail = 0
        self.formerr = 0
        self.refused = 0
        self.rate_limited = 0
        self.dropped = 0
        self.tcp_connections = 0
        self.tcp_rejected = 0
        self.tcp_evicted = 0
        self.latency = [0] * (len(LATENCY_BUCKETS_MS) + 1)

    def count_block(self, log_reason: str) -> None:
        """One more blocked answer built, by what blocked it: see :func:`block_label`."""
        label = block_label(log_reason)
        counts = self.blocked_by_category
        if label in counts or len(counts) < 200:
            counts[label] = counts.get(label, 0) + 1

    def observe_latency(self, ms: float) -> None:
        self.latency[bisect.bisect_left(LATENCY_BUCKETS_MS, ms)] += 1

    def snapshot(self) -> dict:
        out = {k: v for k, v in vars(self).items() if isinstance(v, int) and not isinstance(v, bool)}
        out["queries"] = self.cache_hits + self.slow_queries + self.refused
        out["uptime_s"] = round(time.time() - self.started, 1)
        labels = [f"<={b}ms" for b in LATENCY_BUCKETS_MS] + [f">{LATENCY_BUCKETS_MS[-1]}ms"]
        out["latency_histogram"] = dict(zip(labels, self.latency))
        out["blocked_by_category"] = dict(self.blocked_by_category)
        answered = self.cache_hits + self.cache_misses
        out["cache_hit_ratio"] = round(self.cache_hits / answered, 4) if answered else 0.0
        return out
