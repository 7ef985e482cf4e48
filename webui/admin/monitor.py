"""Dashboard, query log, per-device weekly report, lists and feed."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Optional

from flask import abort, current_app, render_template, request, url_for
from flask_babel import gettext as _

from resolver.policy.profiles import DEFAULT_PROFILE_NAME

from .. import actions, budgets, core
from .blueprint import bp, done

PAUSE_CHOICES = (15, 30, 60, 120, 240)

CHART_W, CHART_H = 720, 180


def bar_chart(counts: list[Any]) -> dict:
    """Bars (total and blocked per hour) as SVG coordinates, drawn by the template without JS."""
    peak = max([c.total for c in counts] + [1])
    step = CHART_W / max(1, len(counts))
    bars = []
    for i, c in enumerate(counts):
        h_total = CHART_H * c.total / peak
        h_blocked = CHART_H * c.blocked / peak
        bars.append({"x": round(i * step + 1, 1), "w": round(max(1.0, step - 2), 1),
                     "y": round(CHART_H - h_total, 1), "h": round(h_total, 1),
                     "by": round(CHART_H - h_blocked, 1), "bh": round(h_blocked, 1),
                     "hour": c.hour, "total": c.total, "blocked": c.blocked, "label": i % 3 == 0})
    return {"bars": bars, "peak": peak, "w": CHART_W, "h": CHART_H,
            # the same numbers for uPlot (webui/static/report.js), which replaces the SVG when JS runs
            "data": {"x": [c.hour for c in counts], "total": [c.total for c in counts],
                     "blocked": [c.blocked for c in counts]}}


def list_health() -> dict:
    """The lists, the feed as a source of its own, the last update run, and what is wrong with them."""
    from blocklists.manager import ListManager

    manager = ListManager(core.config())
    rows = manager.status()
    state = manager.update_state()
    errors = [r for r in rows if r.error]
    last = max([r.last_success or 0 for r in rows] + [0])
    return {"rows": rows, "errors": errors, "entries": sum(r.entries for r in rows), "last_success": last,
            "count": len(rows), "feed": state.feed, "run": state.run, "problems": state.problems(),
            "healthy": not errors and not state.problems()}


DASHBOARD_DEVICES = 12     # devices listed on the dashboard; the devices page pages and searches the rest


def dashboard_devices(store: Any, now: float, wanted: list[str]) -> dict:
    """The devices the dashboard lists (at most DASHBOARD_DEVICES): all of them in a home; at a school the
    paused ones, then ``wanted`` (device names: the most blocked and the busiest), then the first by name."""
    total = store.count_devices()
    if total <= DASHBOARD_DEVICES:
        return {"rows": store.find_devices(limit=DASHBOARD_DEVICES), "total": total, "paused": None}
    rows = store.find_devices(paused_at=now, limit=DASHBOARD_DEVICES)
    paused = store.count_devices(paused_at=now) if len(rows) == DASHBOARD_DEVICES else len(rows)
    shown = {d.name for d in rows}
    for name in wanted:
        if len(rows) >= DASHBOARD_DEVICES:
            break
        d = store.get_device(name) if name not in shown else None    # fresh: its pause as of now
        if d is not None:
            rows.append(d)
            shown.add(d.name)
    if len(rows) < DASHBOARD_DEVICES:
        rows += [d for d in store.find_devices(limit=DASHBOARD_DEVICES) if d.name not in shown][
            :DASHBOARD_DEVICES - len(rows)]
    return {"rows": rows, "total": total, "paused": paused}


def log_missed(engine: Optional[dict]) -> Optional[dict]:
    """The query-log entries the running engine dropped since it started, and the rate it writes at, or None.
    Past that rate answers come first: the log and what is counted from it (reports, time budgets) miss queries."""
    stats = (engine or {}).get("stats") or {}
    missed = stats.get("querylog_dropped") or 0
    if not missed:
        return None
    ql = core.config().querylog
    return {"n": missed, "rate": round(ql.batch_size / ql.flush_interval)}


@bp.get("/")
def dashboard():
    store = core.store()
    engine = core.engine_call("stats")
    now = time.time()
    since, until = actions.stats_window(24)
    counts = store.hourly_counts(since, until)
    total = sum(c.total for c in counts)
    blocked = sum(c.blocked for c in counts)
    top_clients = store.top_clients(since, 10)
    most_blocked = store.top_clients(since, 10, blocked=True)
    names = actions.device_names({c.name for c in top_clients + most_blocked})
    wanted = [names[c.name] for c in most_blocked + top_clients if c.name in names]
    reports = store.list_reports(20, handled=False)
    return render_template("admin/dashboard.html", chart=bar_chart(counts), total=total, blocked=blocked,
                           share=(blocked / total) if total else 0.0,
                           top_blocked=store.top_domains(since, 10, blocked=True), top_clients=top_clients,
                           most_blocked=most_blocked, names=names, protecting=store.count_clients(since),
                           devices=dashboard_devices(store, now, wanted), now=now, pause_choices=PAUSE_CHOICES,
                           reports=reports, report_devices={r.id: actions.report_device(r) for r in reports},
                           lists=list_health(), engine=engine is not None, log_missed=log_missed(engine),
                           pending=len(store.list_access_requests("pending")), budgets_today=budgets.today())


# -- query log -----------------------------------------------------------------------------------------

def query_filter(args: Any) -> dict:
    """The query log's filter from request args: device (name) or client (address), result, name."""
    store = core.store()
    clients: Optional[list[str]] = None
    device = args.get("device", "")
    if device:
        d = store.get_device(device)
        clients = actions.clients_of(d) if d else []
    elif args.get("client"):
        clients = [args["client"]]
    result = args.get("result", "")
    blocked = True if result == "blocked" else False if result == "allowed" else None
    return {"clients": clients, "blocked": blocked, "qname_contains": (args.get("q") or "").strip() or None,
            "node": (args.get("node") or "").strip() or None}


def query_rows(rows: list[Any]) -> list[dict]:
    """Rows with what the page shows besides the row: device name, blocked, the profile a rule would go to."""
    from resolver.store.protocol import is_blocked

    devices = actions.devices_for_clients({lq.row.client for lq in rows}) if rows else {}
    out = []
    for lq in rows:
        r = lq.row
        d = devices[r.client]
        out.append({"id": lq.id, "row": r, "device": d.name if d else "", "blocked": is_blocked(r.reason),
                    "profile": d.profile if d else DEFAULT_PROFILE_NAME})
    return out


DEVICE_MENU_MAX = 60   # above this the query log's device filter is a search box, not a menu


@bp.get("/querylog")
def querylog():
    store = core.store()
    filt = query_filter(request.args)
    before = request.args.get("before", type=int)
    rows = store.query_page(100, before_id=before, **filt)
    # a home's few devices fit a menu; a school's thousands are typed (a menu of 10,000 names is 400 kB of page)
    menu = store.count_devices() <= DEVICE_MENU_MAX
    typed = (request.args.get("device") or "").strip()
    unknown = bool(typed) and filt["clients"] == [] and store.get_device(typed) is None
    return render_template("admin/querylog.html", rows=query_rows(rows),
                           devices=actions.devices_now() if menu else [], device_menu=menu,
                           unknown_device=unknown,
                           suggestions=store.find_devices(typed[:100], limit=8) if unknown else [],
                           profiles=store.list_profiles(), args=request.args, shared=bool(core.config().store),
                           next_before=rows[-1].id if len(rows) == 100 else None)


# -- per-device weekly report ----------------------------------------------------------------------------

@bp.get("/devices/<name>/report")
def device_report(name: str):
    store = core.store()
    d = store.get_device(name)
    if d is None:
        abort(404)
    clients = actions.clients_of(d)
    since, until = actions.stats_window(24 * 7)
    online = store.online_minutes(since, until, clients=clients)
    # minutes are counted with the time budgets' rule (foreground activity), like every other report
    from resolver.ops.usage_report import week_report

    from .budgets import week_chart

    # the same week, counting and chart as the profile's weekly report, so the numbers agree
    week = week_report(store, device=d.name, tz=core.tzinfo(), now=budgets.now())
    grid = week_grid(week)
    noon, chart = week_chart(week)
    return render_template("admin/report.html", d=d, clients=clients, grid=grid, week=week, noon=noon, chart=chart,
                           minutes=sum(week["all"]),
                           top=store.top_domains(since, 15, blocked=False, clients=clients),
                           blocked=store.top_domains(since, 15, blocked=True, clients=clients),
                           blocked_total=sum(o.blocked for o in online), since=since)


def week_grid(week: dict) -> list[dict]:
    """Per local day (oldest first): its date and 24 hourly counts of active minutes (from a week report)."""
    import datetime as _dt

    tz = core.tzinfo()
    return [{"date": _dt.datetime.combine(_dt.date.fromisoformat(day), _dt.time(12), tz).timestamp(),
             "hours": [min(60, m) for m in hours], "total": sum(hours)}
            for day, hours in zip(week["days"], week["heat"])]


# -- lists and feed ------------------------------------------------------------------------------------

class ListsJob:
    """The list update as the lists page sees it. Whoever started it (the scheduler, `hearth lists
    update`, this page), its state is read from ``lists/update.json`` and its lines from
    ``lists/update.log``. "Update now" asks the engine to run it (blocklists.runner: the same process,
    re-reading the config file, as the scheduler); without an engine this process runs the same command."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = False                 # an update run by this process is going on
        self.requested: Optional[float] = None
        self.local_error: Optional[str] = None

    def snapshot(self, config: Any) -> dict:
        from blocklists.manager import ListManager

        manager = ListManager(config)
        state = manager.update_state()
        run = state.run
        try:
            lines = (manager.dir / "update.log").read_text(encoding="utf-8", errors="replace").splitlines()[-200:]
        except OSError:
            lines = []
        with self.lock:
            # asked the engine, its update process has not written its start yet (same clock: same host)
            waiting = (self.requested is not None and (run.started or 0) < self.requested
                       and time.time() - self.requested < 30)
            running = self.local or run.running or waiting
            local_error = self.local_error
        errors = []
        if not running:
            if local_error:
                errors.append(local_error)
            if run.error:
                errors.append(run.error)
            if state.feed is not None and state.feed.error:
                errors.append(_("feed: %(error)s", error=state.feed.error))
            if run.failed:
                errors.append(", ".join(run.failed))
        return {"running": running, "lines": lines if (lines or not waiting) else [], "started": run.started,
                "finished": None if running else run.finished, "error": "; ".join(errors) or None,
                "trigger": run.trigger}

    def start(self, config: Any, fetch: bool = True) -> bool:
        from resolver.service.control import call

        if self.snapshot(config)["running"]:   # this process's, the engine's, or one just asked for
            return False
        command = "lists-update" if fetch else "lists-update offline"
        try:
            reply = call(config.control_socket, command, timeout=5)
            # the engine may still be wrapping up a run whose process has just written its end
            for _ in range(10):
                if reply.get("started") or self.snapshot(config)["running"]:
                    break
                time.sleep(0.3)
                reply = call(config.control_socket, command, timeout=5)
        except OSError:
            reply = None
        with self.lock:
            self.local_error = None
            if reply is not None:
                if not reply.get("started"):
                    return False
                self.requested = time.time()
                return True
            self.local, self.requested = True, time.time()
        config_file = current_app.config.get("HEARTH_CONFIG_FILE") or os.environ.get("HEARTH_CONFIG")
        threading.Thread(target=self._run, args=(config, config_file, fetch), name="lists-update",
                         daemon=True).start()
        return True

    def _run(self, config: Any, config_file: Optional[str], fetch: bool) -> None:
        """No engine to ask: run the update here, the same way (a process re-reading the config file)."""
        from blocklists.manager import ListManager, UpdateBusy
        from blocklists.runner import run_update

        error = None
        try:
            if config_file:
                run_update(config_file, config.data_dir, config.feed.update_time_limit, offline=not fetch,
                           trigger="ui", progress=lambda _line: None)
            else:  # an app made with a Config object and no file: that object is the current configuration
                ListManager(config, progress=lambda _line: None).update(fetch=fetch, trigger="ui")
        except UpdateBusy as exc:
            error = str(exc)
        except Exception as exc:       # shown on the page; the old index keeps serving
            error = f"{type(exc).__name__}: {exc}"
        with self.lock:
            self.local, self.local_error = False, error


def lists_job() -> ListsJob:
    job = current_app.extensions.get("hearth_lists_job")
    if job is None:
        job = current_app.extensions["hearth_lists_job"] = ListsJob()
    return job


def _migrate_provider_files(cfg) -> None:
    """An appliance upgraded before its engine ran: its unblock outbox file into the store first."""
    from blocklists.provider_client import migrate_files

    migrate_files(cfg.data_dir, core.store())


@bp.get("/lists")
def lists():
    from blocklists import provider_unblocks

    cfg = core.config()
    unblocks = []
    if cfg.provider.url:
        _migrate_provider_files(cfg)
        unblocks = list(reversed(provider_unblocks.load(core.store())))
    return render_template("admin/lists.html", health=list_health(), job=lists_job().snapshot(cfg), feed=cfg.feed,
                           subscribed=cfg.lists, starter=cfg.blocking.starter_lists, provider=cfg.provider,
                           unblocks=unblocks, unblock_name=request.args.get("unblock", ""))


@bp.post("/lists/unblock")
def lists_unblock():
    """Ask the list provider to unblock a name (a false positive): queued in the outbox, sent by the engine."""
    from flask import flash, redirect
    from flask_babel import get_locale

    from blocklists import provider_unblocks

    cfg = core.config()
    target = url_for("admin.lists", _anchor="unblock")
    if not cfg.provider.url:
        flash(_("No list provider is configured (provider.url), so there is nobody to ask."), "error")
        return redirect(target)
    name, note = request.form.get("name", ""), request.form.get("note", "")
    try:
        _migrate_provider_files(cfg)
        entry = provider_unblocks.request_unblock(core.store(), name, note, lang=str(get_locale() or ""))
    except ValueError as exc:
        flash(_("Not sent: %(why)s", why=str(exc)), "error")
        return redirect(target)
    core.audit("provider.unblock-request", entry["domain"], None, {"note": entry["note"]})
    return done(target, _("Asked the provider to unblock %(name)s: it is sent within seconds (later if the "
                          "provider cannot be reached) and the decision shows here.", name=entry["domain"]))


@bp.post("/lists")
def lists_post():
    started = lists_job().start(core.config(), fetch=not request.form.get("offline"))
    if started:
        core.audit("lists.update", "lists")
    return done(url_for("admin.lists"), _("Update started.") if started else _("An update is already running."))
