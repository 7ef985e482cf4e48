"""The weekly usage report of a child (a profile) or one device, counted with the time budgets' rule.

Minutes come from the query log (``activity_rows``) through :func:`resolver.policy.budget_count.counted_minutes`,
the same rule as the live budget meter, so the report, the dashboard's budgets and the per-device report
agree: minutes of foreground activity seen in DNS, not screen time (docs/budgets.md). The query log keeps
``querylog.retention`` (7 days by default): older days show what the budget totals kept (``budget_usage``).

Used by ``hearth report PROFILE --week`` and the web UI's report pages and CSV export.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import ipaddress
from typing import Any, Dict, Iterable, List, Optional, Sequence

from resolver.policy.budget_count import TargetMatcher, counted_minutes
from resolver.policy.budgets import ALL, Budget, budget_day, target_label

__all__ = ["device_clients", "week_report", "report_csv", "hour_minutes", "hourly_active"]


def device_clients(store: Any, device: Any) -> list[str]:
    """The client addresses that belong to a device (its own address, or those seen with its MAC or in its
    network)."""
    if device.kind == "ip":
        return [device.value]
    seen = store.list_seen(5000)
    if device.kind == "mac":
        return sorted({s.address for s in seen if s.mac == device.value})
    net = ipaddress.ip_network(device.value)
    out = []
    for s in seen:
        try:
            ip = ipaddress.ip_address(s.address)
        except ValueError:
            continue
        if ip.version == net.version and ip in net:
            out.append(s.address)
    return sorted(out)


def _matcher(budgets: Sequence[Budget], profile: str, index: Any = None, meta: Optional[dict] = None,
             services: Optional[dict] = None) -> TargetMatcher:
    """Every service of the catalogue, all internet, and the categories the profile has budgets for."""
    if services is None:
        from blocklists.services import load_services
        services = load_services()
    targets = [f"service:{sid}" for sid in services] + [ALL]
    targets += [b.target for b in budgets if b.target.startswith("category:")]
    return TargetMatcher([Budget(profile or "report", t, 0, 0) for t in targets], index, meta, services)


def _days(now: float, tz: _dt.tzinfo, n: int = 7) -> List[_dt.date]:
    today = budget_day(now, tz)[0]
    return [today - _dt.timedelta(days=n - 1 - i) for i in range(n)]


def _start(day: _dt.date, tz: _dt.tzinfo) -> float:
    return _dt.datetime.combine(day, _dt.time(0), tzinfo=tz).timestamp()


def hour_minutes(minutes: Iterable[int], days: Sequence[_dt.date], tz: _dt.tzinfo) -> List[List[int]]:
    """Minutes per local hour of each day (a 7 × 24 heat map) from counted UNIX minutes."""
    index = {d: i for i, d in enumerate(days)}
    grid = [[0] * 24 for _ in days]
    for m in minutes:
        local = _dt.datetime.fromtimestamp(m * 60, tz)
        i = index.get(local.date())
        if i is not None:
            grid[i][local.hour] += 1
    return grid


def week_report(store: Any, *, profile: Optional[str] = None, device: Optional[str] = None, tz: _dt.tzinfo,
                now: float, index: Any = None, meta: Optional[dict] = None) -> Dict[str, Any]:
    """The last 7 local days of a profile's devices (or of one device): minutes per service per day, a
    by-hour heat map of activity, top sites, blocked attempts by reason, access requests, budget use."""
    if (profile is None) == (device is None):
        raise ValueError("give a profile or a device")
    if device is not None:
        d = store.get_device(device)
        if d is None:
            raise ValueError(f"unknown device {device!r}")
        devices, profile_name = [d], d.profile
    else:
        p = store.get_profile(profile)
        if p is None:
            raise ValueError(f"unknown profile {profile!r} (see `hearth profile list`)")
        profile_name = p.name
        devices = [d for d in store.list_devices() if d.profile.lower() == p.name.lower()]
    clients = sorted({c for d in devices for c in device_clients(store, d)})
    days = _days(now, tz)
    since, until = _start(days[0], tz), _start(days[-1] + _dt.timedelta(days=1), tz)
    budgets = store.list_budgets(profile_name)
    rows = store.activity_rows(clients, since, until)
    from resolver.store.protocol import is_blocked

    events = [(ts, client, name) for ts, client, name, reason in rows if not (reason and is_blocked(reason))]
    counted = counted_minutes(events, _matcher(budgets, profile_name, index, meta))
    day_of = {d: i for i, d in enumerate(days)}

    def per_day(minutes: Iterable[int]) -> List[int]:
        out = [0] * len(days)
        for m in minutes:
            i = day_of.get(_dt.datetime.fromtimestamp(m * 60, tz).date())
            if i is not None:
                out[i] += 1
        return out

    services = [{"target": t, "label": target_label(t), "minutes": per_day(ms)}
                for t, ms in counted.items() if t != ALL and ms]
    services.sort(key=lambda s: (-sum(s["minutes"]), s["label"]))
    all_minutes = counted.get(ALL, [])
    blocked_reasons: Dict[str, int] = {}
    for _ts, _c, _n, reason in rows:
        if reason and is_blocked(reason):
            blocked_reasons[reason] = blocked_reasons.get(reason, 0) + 1
    names = {d.name for d in devices}
    requests = [{"ts": r.ts, "device": r.device, "domain": r.domain, "reason": r.reason, "status": r.status,
                 "decision": r.decision} for r in store.list_access_requests(limit=1000)
                if since <= r.ts < until and (r.device in names or r.client in clients)]
    usage = {(u.target, u.day): u for u in store.budget_usage(days[0].isoformat(), profile_name)}
    budget_rows = [{"target": b.target, "label": target_label(b.target),
                    "limit": [b.limit(d) + (usage[(b.target, d.isoformat())].extra
                                            if (b.target, d.isoformat()) in usage else 0) for d in days],
                    "used": [usage[(b.target, d.isoformat())].used if (b.target, d.isoformat()) in usage else 0
                             for d in days]} for b in budgets]
    return {"profile": profile_name, "device": device and devices[0].name, "devices": sorted(names),
            "clients": clients, "since": since, "until": until, "days": [d.isoformat() for d in days],
            "all": per_day(all_minutes), "services": services, "heat": hour_minutes(all_minutes, days, tz),
            "top_sites": [c._asdict() for c in store.top_domains(since, 10, blocked=False, clients=clients)]
            if clients else [],
            "blocked": {"total": sum(blocked_reasons.values()), "by_reason": dict(sorted(
                blocked_reasons.items(), key=lambda kv: -kv[1])),
                "top": [c._asdict() for c in store.top_domains(since, 10, blocked=True, clients=clients)]
                if clients else []},
            "requests": requests, "budgets": budget_rows,
            "note": "minutes of foreground activity seen in DNS, not screen time"}


def hourly_active(report: Dict[str, Any], tz: _dt.tzinfo) -> Dict[int, int]:
    """Counted minutes of all-internet activity by UNIX hour (start of each local hour), from a report."""
    out: Dict[int, int] = {}
    for day, hours in zip(report["days"], report["heat"]):
        d = _dt.date.fromisoformat(day)
        for h, minutes in enumerate(hours):
            if minutes:
                out[int(_dt.datetime.combine(d, _dt.time(h), tzinfo=tz).timestamp())] = minutes
    return out


def report_csv(report: Dict[str, Any]) -> str:
    """One row per day and service (and all internet): date, what, minutes."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["date", "profile", "service", "minutes"])
    for i, day in enumerate(report["days"]):
        w.writerow([day, report["profile"], "all internet", report["all"][i]])
        for s in report["services"]:
            w.writerow([day, report["profile"], s["label"], s["minutes"][i]])
    return out.getvalue()
