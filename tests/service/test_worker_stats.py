"""The workers' statistics summed into one engine's (what `hearth stats` and /metrics read)."""
from __future__ import annotations

from resolver.service.worker_stats import merge_stats


def _snap(**kw) -> dict:
    base = {"queries": 0, "cache_hits": 0, "cache_misses": 0, "cache_entries": 0, "pending": 0,
            "latency_histogram": {"<=1ms": 0, ">5000ms": 0}, "blocked_by_category": {},
            "policy_generation": 1, "index_entries": 0, "uptime_s": 1.0, "cache_hit_ratio": 0.0, "upstreams": []}
    base.update(kw)
    return base


def test_counters_are_summed_and_shared_figures_are_not():
    a = _snap(queries=10, cache_hits=6, cache_misses=2, cache_entries=5, pending=1, policy_generation=7,
              index_entries=1000, uptime_s=50.0, latency_histogram={"<=1ms": 2, ">5000ms": 0},
              blocked_by_category={"adult": 3}, cache_hit_ratio=0.75)
    b = _snap(queries=30, cache_hits=12, cache_misses=18, cache_entries=7, pending=0, policy_generation=9,
              index_entries=1000, uptime_s=3.0, latency_histogram={"<=1ms": 5, ">5000ms": 1},
              blocked_by_category={"adult": 1, "service:TikTok": 2}, cache_hit_ratio=0.4)
    m = merge_stats([a, b])
    assert (m["queries"], m["cache_hits"], m["cache_misses"], m["cache_entries"], m["pending"]) == (40, 18, 20, 12, 1)
    assert m["latency_histogram"] == {"<=1ms": 7, ">5000ms": 1}
    assert m["blocked_by_category"] == {"adult": 4, "service:TikTok": 2}
    assert (m["policy_generation"], m["index_entries"], m["uptime_s"]) == (9, 1000, 50.0)
    assert m["cache_hit_ratio"] == round(18 / 38, 4)   # from the sums, not an average of ratios


def test_upstreams_are_merged_by_url():
    a = _snap(upstreams=[{"url": "udp://192.0.2.1", "healthy": False, "ewma_ms": 10.0, "queries": 5, "errors": 2,
                          "last_error": "timeout", "health_changes": 1}])
    b = _snap(upstreams=[{"url": "udp://192.0.2.1", "healthy": True, "ewma_ms": 20.0, "queries": 7, "errors": 0,
                          "last_error": None, "health_changes": 0},
                         {"url": "udp://192.0.2.2", "healthy": True, "ewma_ms": None, "queries": 0, "errors": 0,
                          "last_error": None, "health_changes": 0}])
    ups = merge_stats([a, b])["upstreams"]
    assert ups[0] == {"url": "udp://192.0.2.1", "healthy": True, "ewma_ms": 15.0, "queries": 12, "errors": 2,
                      "last_error": "timeout", "health_changes": 1}
    assert ups[1]["url"] == "udp://192.0.2.2" and ups[1]["ewma_ms"] is None


def test_no_worker_answering_gives_zeros():
    m = merge_stats([])
    assert m["cache_hit_ratio"] == 0.0 and m["upstreams"] == [] and m["uptime_s"] == 0.0
