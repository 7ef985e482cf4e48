"""``/metrics``: Prometheus text exposition of the engine's counters and the lists' ages.

Served by the web UI process. Every scrape asks the engine for ``stats`` over its control
socket and reads ``data_dir/lists/status.json``; nothing is cached between scrapes, so the web
process holds no counter state. When the engine does not answer, ``hearth_engine_up`` is 0 and
only the list metrics are given.

The page shows aggregate numbers only: no client addresses and no text a parent typed (schedule,
profile or device names); labels are list ids, categories, bundled service names and upstream URLs
from the configuration. To keep it private, set ``web.metrics_token`` (or put the token in
``data_dir/metrics_token``): scrapes then send ``Authorization: Bearer TOKEN``, or the token as the
HTTP basic-auth password. ``web.metrics_listen`` serves it on an address of its own instead of the UI's.
"""
from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from resolver.service.control import call

bp = Blueprint("metrics", __name__)

# engine snapshot key -> (metric name without the _total suffix, help)
COUNTERS = {
    "queries": ("hearth_dns_queries", "DNS queries received (answered from cache, the slow path, or refused)."),
    "cache_hits": ("hearth_dns_cache_hits", "Queries answered from the answer cache."),
    "cache_misses": ("hearth_dns_cache_misses", "Queries the cache could not answer."),
    "blocked": ("hearth_dns_blocked", "Blocked answers made or renewed: once a blocked TTL per name and profile "
                "(repeats within it count as cache hits; the query log counts every blocked query)."),
    "local_answers": ("hearth_dns_local_answers", "Queries answered from local records."),
    "stale_answers": ("hearth_dns_stale_answers", "Expired answers served while the upstreams failed."),
    "prefetches": ("hearth_dns_prefetches", "Popular answers refreshed before they expired."),
    "upstream_queries": ("hearth_dns_upstream_queries", "Queries forwarded to the upstreams."),
    "upstream_errors": ("hearth_dns_upstream_errors", "Forwarded queries that failed at every upstream."),
    "servfail": ("hearth_dns_servfail", "SERVFAIL answers sent."),
    "formerr": ("hearth_dns_formerr", "FORMERR answers sent to malformed queries."),
    "refused": ("hearth_dns_refused", "Queries refused (client outside dns.allow_clients, CHAOS, zone transfers)."),
    "rate_limited": ("hearth_dns_rate_limited", "Queries dropped by a client's rate limit."),
    "dropped": ("hearth_dns_dropped", "Packets dropped unanswered (unreadable, or responses)."),
    "tcp_connections": ("hearth_dns_tcp_connections", "TCP connections accepted."),
    "tcp_rejected": ("hearth_dns_tcp_rejected", "TCP connections refused: the table was full of busy ones."),
    "tcp_evicted": ("hearth_dns_tcp_evicted", "Idle TCP connections closed to make room (per-client cap, full "
                    "table)."),
    "cache_evictions": ("hearth_dns_cache_evictions", "Answers evicted from the full cache."),
    "querylog_written": ("hearth_querylog_written", "Query-log entries written to the store."),
    "querylog_dropped": ("hearth_querylog_dropped", "Query-log entries dropped: more arrived than the log writes "
                         "(querylog.batch_size a querylog.flush_interval), or the store failed."),
    "querylog_write_errors": ("hearth_querylog_write_errors", "Failed batch writes of the query log."),
    "querylog_capped": ("hearth_querylog_capped", "Query-log entries deleted to keep querylog.max_rows."),
    "querylog_expired": ("hearth_querylog_expired", "Query-log entries deleted by querylog.retention."),
}
# engine snapshot key -> (metric name, help[, factor to the metric's unit])
GAUGES = {
    "cache_entries": ("hearth_dns_cache_entries", "Answers in the cache."),
    "cache_hit_ratio": ("hearth_dns_cache_hit_ratio", "cache_hits / (cache_hits + cache_misses) since start."),
    "pending": ("hearth_dns_pending_queries", "Queries waiting for an upstream."),
    "index_entries": ("hearth_blocklist_entries", "Names in the compiled blocklist index."),
    "policy_generation": ("hearth_policy_generation", "Policy generation (bumps on config, list, profile changes)."),
    "uptime_s": ("hearth_engine_uptime_seconds", "Seconds since the engine started."),
    "workers_up": ("hearth_dns_workers_up", "Engine processes answering (dns.workers above 1; their counters "
                   "are summed)."),
    "policy_apply_ms": ("hearth_policy_apply_seconds", "How long the last policy rebuild held the DNS engine's "
                        "event loop (no answers meanwhile).", 0.001),
}


def _bucket_bound(label: str) -> Optional[float]:
    """'<=5ms' -> 0.005 (seconds), '>5000ms' -> None (+Inf)."""
    if label.startswith("<="):
        return float(label[2:].rstrip("ms")) / 1000.0
    return None


class HearthCollector:
    def __init__(self, stats: Optional[dict], lists: list, now: float):
        self.stats, self.lists, self.now = stats, lists, now

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("hearth_engine_up", "1 when the DNS engine answers on its control socket.")
        up.add_metric([], 1.0 if self.stats is not None else 0.0)
        yield up
        if self.stats is not None:
            yield from self._engine(self.stats)
        yield from self._lists()

    def _engine(self, s: dict) -> Iterator[Any]:
        for key, (name, help) in COUNTERS.items():
            if isinstance(s.get(key), (int, float)):
                c = CounterMetricFamily(name, help)
                c.add_metric([], s[key])
                yield c
        for key, (name, help, *factor) in GAUGES.items():
            if isinstance(s.get(key), (int, float)):
                g = GaugeMetricFamily(name, help)
                g.add_metric([], s[key] * factor[0] if factor else s[key])
                yield g
        by_cat = s.get("blocked_by_category")
        if isinstance(by_cat, dict):
            c = CounterMetricFamily("hearth_dns_blocked_by_category",
                                    "Blocked answers made or renewed, by category (or reason).", labels=["category"])
            for cat, n in sorted(by_cat.items()):
                c.add_metric([str(cat)], n)
            yield c
        hist = s.get("latency_histogram")
        if isinstance(hist, dict) and hist:
            buckets, total = [], 0
            for label, n in hist.items():
                total += n
                bound = _bucket_bound(label)
                if bound is not None:
                    buckets.append((repr(bound), total))
            buckets.append(("+Inf", total))
            h = HistogramMetricFamily("hearth_dns_slow_path_duration_seconds",
                                      "Time to answer queries that missed the cache (upstream, block, local).")
            h.add_metric([], buckets, sum_value=None)
            yield h
        ups = s.get("upstreams") or []
        if ups:
            healthy = GaugeMetricFamily("hearth_upstream_up", "1 when the upstream is considered healthy.",
                                        labels=["upstream"])
            latency = GaugeMetricFamily("hearth_upstream_latency_seconds",
                                        "Moving average (EWMA) of the upstream's answer time.", labels=["upstream"])
            queries = CounterMetricFamily("hearth_upstream_queries", "Queries sent to the upstream.",
                                          labels=["upstream"])
            errors = CounterMetricFamily("hearth_upstream_errors", "Failed tries at the upstream.",
                                         labels=["upstream"])
            for u in ups:
                url = str(u.get("url", "?"))
                healthy.add_metric([url], 1.0 if u.get("healthy") else 0.0)
                if u.get("ewma_ms") is not None:
                    latency.add_metric([url], u["ewma_ms"] / 1000.0)
                queries.add_metric([url], u.get("queries", 0))
                errors.add_metric([url], u.get("errors", 0))
            yield from (healthy, latency, queries, errors)

    def _lists(self) -> Iterator[Any]:
        labels = ["list", "category", "origin"]
        entries = GaugeMetricFamily("hearth_list_entries", "Names in each compiled list.", labels=labels)
        success = GaugeMetricFamily("hearth_list_last_success_timestamp_seconds",
                                    "When each list was last downloaded (or compiled, for bundled lists) "
                                    "successfully.", labels=labels)
        age = GaugeMetricFamily("hearth_list_age_seconds", "Seconds since each list's last success.", labels=labels)
        failing = GaugeMetricFamily("hearth_list_error", "1 when the list's last update attempt failed.",
                                    labels=labels)
        for r in self.lists:
            key = [r.id, r.category, r.origin]
            entries.add_metric(key, r.entries)
            failing.add_metric(key, 1.0 if r.error else 0.0)
            if r.last_success:
                success.add_metric(key, r.last_success)
                age.add_metric(key, max(0.0, self.now - r.last_success))
        yield from (entries, success, age, failing)


def metrics_token(config: Any) -> str:
    """The token scrapes must send: ``web.metrics_token``, else ``data_dir/metrics_token``; "" for none."""
    if config.web.metrics_token:
        return config.web.metrics_token.strip()
    try:
        return (Path(config.data_dir) / "metrics_token").read_text().strip()
    except OSError:
        return ""


def _authorised(config: Any) -> bool:
    token = metrics_token(config)
    if not token:
        return True
    auth = request.authorization
    given = ""
    if auth is not None and auth.type == "basic":
        given = auth.password or ""
    elif auth is not None and auth.type == "bearer":
        given = auth.token or ""
    return hmac.compare_digest(given.encode(), token.encode())


@bp.get("/metrics")
def metrics() -> Response:
    from blocklists.manager import ListManager

    config = current_app.config["HEARTH"]
    if not _authorised(config):
        return Response("metrics need the token of web.metrics_token (or data_dir/metrics_token): "
                        "Authorization: Bearer TOKEN, or as the basic-auth password\n",
                        status=401, headers={"WWW-Authenticate": 'Bearer realm="hearth metrics"'},
                        mimetype="text/plain")
    try:
        reply = call(config.control_socket, "stats", timeout=2.0)
        stats = reply.get("stats") if reply.get("ok") else None
    except (OSError, ValueError):
        stats = None
    try:
        lists = ListManager(config).status()
    except (OSError, ValueError):
        lists = []
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HearthCollector(stats, lists, time.time()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
