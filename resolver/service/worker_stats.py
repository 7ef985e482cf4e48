"""The statistics of several engine processes (``dns.workers``) as one engine's: what `hearth stats`, /metrics
and the web UI read from the parent's control socket.

Counters and gauges that count things (queries, cache entries, pending queries) are summed; the latency
histogram and blocks by category are summed bucket by bucket; figures every worker shares (the index size,
the policy generation) are the highest; the cache hit ratio is worked out again from the sums; upstreams are
merged by URL (queries and errors summed, up when any worker finds it up, latency averaged). A worker that
was restarted starts its counters from zero, so a sum can go down once: Prometheus treats that as a
counter reset.
"""
from __future__ import annotations

from typing import Iterable

# the same figure in every worker, or a duration each spends alone: the highest is shown
SHARED = ("index_entries", "policy_generation", "policy_apply_ms", "gc_full_pause_last_ms", "gc_full_pause_max_ms")


def merge_stats(snapshots: Iterable[dict]) -> dict:
    """One snapshot (as :meth:`resolver.service.server.Engine.snapshot` gives) from several workers'."""
    snapshots = [s for s in snapshots if isinstance(s, dict)]
    out: dict = {}
    for snap in snapshots:
        for key, value in snap.items():
            if key in ("upstreams", "cache_hit_ratio", "uptime_s", "started"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
                out.setdefault(key, value)
            elif isinstance(value, dict):
                into = out.setdefault(key, {})
                for k, n in value.items():
                    if isinstance(n, (int, float)) and not isinstance(n, bool):
                        into[k] = into.get(k, 0) + n
            elif key in SHARED:
                out[key] = max(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0) + value
    answered = out.get("cache_hits", 0) + out.get("cache_misses", 0)
    out["cache_hit_ratio"] = round(out.get("cache_hits", 0) / answered, 4) if answered else 0.0
    ups = [s["uptime_s"] for s in snapshots if isinstance(s.get("uptime_s"), (int, float))]
    out["uptime_s"] = max(ups) if ups else 0.0
    out["upstreams"] = _merge_upstreams(s.get("upstreams") or [] for s in snapshots)
    return out


def _merge_upstreams(lists: Iterable[list]) -> list[dict]:
    by_url: dict[str, dict] = {}
    ewmas: dict[str, list] = {}
    for ups in lists:
        for u in ups:
            url = str(u.get("url", "?"))
            m = by_url.get(url)
            if m is None:
                m = by_url[url] = {"url": url, "healthy": False, "ewma_ms": None, "queries": 0, "errors": 0,
                                   "last_error": None, "health_changes": 0}
                ewmas[url] = []
            m["healthy"] = m["healthy"] or bool(u.get("healthy"))
            for k in ("queries", "errors", "health_changes"):
                m[k] += int(u.get(k) or 0)
            m["last_error"] = m["last_error"] or u.get("last_error")
            if u.get("ewma_ms") is not None:
                ewmas[url].append(float(u["ewma_ms"]))
    for url, values in ewmas.items():
        if values:
            by_url[url]["ewma_ms"] = round(sum(values) / len(values), 3)
    return list(by_url.values())
