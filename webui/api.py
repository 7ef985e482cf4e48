"""The JSON API under ``/api/v1``: everything the UI does, for scripts and home-automation.

Auth: the UI's session cookie (state-changing calls then need the ``X-CSRFToken`` header) or a
per-user token (``hearth token create USER``; ``Authorization: Bearer …``, no CSRF). Errors are
JSON ``{"error": …, "status": …}``: 400 bad input, 401 not signed in, 403 viewer role, 404.
The OpenAPI 3 document at ``/api/v1/openapi.json`` is built from the routes registered here.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

from flask import Blueprint, Response, g, jsonify, request

from resolver.policy.profiles import Profile, profile_from_preset

from . import actions, core
from .i18n import category_label

bp = Blueprint("api", __name__, url_prefix="/api/v1")
ROUTES: list[dict] = []          # (for the OpenAPI document) method, path, summary, body, query


def route(path: str, method: str, summary: str, *, body: Optional[str] = None,
          query: tuple[str, ...] = (), public: bool = False) -> Callable:
    def register(view: Callable) -> Callable:
        ROUTES.append({"path": path, "method": method.lower(), "summary": summary, "body": body, "query": query,
                       "public": public, "endpoint": view.__name__})
        bp.add_url_rule(path, view.__name__, view, methods=[method])
        return view

    return register


@bp.before_request
def _auth() -> Any:
    if request.endpoint == "api.openapi":
        return None
    return core.require_login()


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError("send a JSON object (Content-Type: application/json)")
    return data


def _call(fn: Callable[[], Any], status: int = 200) -> Any:
    """Run a change; ValueError → 400 with its message."""
    try:
        result = fn()
    except ValueError as exc:
        return core.json_error(400, str(exc))
    if isinstance(result, Response):
        return result
    return jsonify(actions.as_dict(result) if result is not None else {"ok": True}), status


# -- me ---------------------------------------------------------------------------------------------------

@route("/me", "GET", "The signed-in user")
def me():
    return jsonify(actions.user_dict(g.user))


# -- devices -------------------------------------------------------------------------------------------

@route("/devices", "GET", "All devices, by name; a page of them with limit/offset, those matching q (name, address, "
       "host name or profile) with q", query=("q", "limit", "offset"))
def devices_list():
    args = request.args
    if not any(k in args for k in ("q", "limit", "offset")):
        return jsonify([actions.as_dict(d) for d in core.store().list_devices()])
    limit = max(1, min(1000, args.get("limit", 100, type=int)))
    found = core.store().find_devices(args.get("q", "").strip()[:100], limit=limit,
                                      offset=max(0, args.get("offset", 0, type=int)))
    return jsonify([actions.as_dict(d) for d in found])


@route("/devices", "POST", "Add a device ({name, identity: IP|CIDR|MAC, profile})", body="Device")
def devices_add():
    return _call(lambda: actions.add_device(actions.device_from_fields(_body())), 201)


@route("/devices/<name>", "GET", "One device with its temporary allows")
def device_get(name: str):
    d = core.store().get_device(name)
    if d is None:
        return core.json_error(404, f"unknown device {name!r}")
    allows = [actions.as_dict(a) for a in core.store().list_temp_allows(time.time()) if a.device == d.name]
    return jsonify({**actions.as_dict(d), "allows": allows, "clients": actions.clients_of(d)})


@route("/devices/<name>", "PATCH", "Change a device (name, identity, profile)", body="Device")
def device_update(name: str):
    return _call(lambda: actions.update_device(name, _body()))


@route("/devices/<name>", "DELETE", "Forget a device")
def device_remove(name: str):
    return _call(lambda: actions.remove_device(name))


@route("/devices/<name>/pause", "POST", "Pause the device's internet ({minutes}; minutes null resumes)",
       body="Pause")
def device_pause(name: str):
    return _call(lambda: actions.pause_device(name, _body().get("minutes")))


@route("/devices/<name>/allow", "POST", "Allow a domain for the device for N minutes ({domain, minutes})",
       body="Allow")
def device_allow(name: str):
    return _call(lambda: actions.allow_for_device(name, _body().get("domain", ""), _body().get("minutes")), 201)


@route("/allows/<int:allow_id>", "DELETE", "End a temporary allow")
def allow_remove(allow_id: int):
    return _call(lambda: actions.remove_temp_allow(allow_id))


@route("/seen", "GET", "Clients the engine has answered, newest first", query=("limit",))
def seen():
    limit = min(2000, request.args.get("limit", 200, type=int))
    return jsonify([actions.as_dict(s) for s in core.store().list_seen(limit)])


# -- profiles ------------------------------------------------------------------------------------------

@route("/profiles", "GET", "All profiles")
def profiles_list():
    return jsonify([actions.as_dict(p) for p in core.store().list_profiles()])


@route("/profiles", "POST", "Add a profile ({name, preset} and any profile field)", body="Profile")
def profiles_add():
    def add() -> Any:
        data = _body()
        preset = data.get("preset")
        base = profile_from_preset(data.get("name", ""), preset) if preset else Profile(name=data.get("name", ""))
        fields = actions.profile_from_fields({k: v for k, v in data.items() if k not in ("name", "preset")})
        return actions.add_profile(dataclasses.replace(base, **fields))
    return _call(add, 201)


@route("/profiles/<name>", "GET", "One profile")
def profile_get(name: str):
    p = core.store().get_profile(name)
    if p is None:
        return core.json_error(404, f"unknown profile {name!r}")
    return jsonify({**actions.as_dict(p), "category_labels": {c: category_label(c) for c in p.categories}})


@route("/profiles/<name>", "PATCH", "Change a profile (only the fields given)", body="Profile")
def profile_update(name: str):
    def update() -> Any:
        p = core.store().get_profile(name)
        if p is None:
            raise ValueError(f"unknown profile {name!r}")
        return actions.update_profile(p.name, **actions.profile_from_fields(_body(), p))
    return _call(update)


@route("/profiles/<name>", "DELETE", "Remove a profile (not default, not while devices use it)")
def profile_remove(name: str):
    return _call(lambda: actions.remove_profile(name))


@route("/profiles/<name>/rules", "POST", "Allow or block a domain in a profile ({domain, action: allow|block|"
       "remove})", body="Rule")
def profile_rule(name: str):
    return _call(lambda: actions.profile_rule(name, _body().get("domain", ""), _body().get("action", "")))


# -- time budgets --------------------------------------------------------------------------------------

@route("/budgets", "GET", "Time budgets with today's use (minutes used, left), of one profile with ?profile=",
       query=("profile",))
def budgets_list():
    from . import budgets

    try:
        return jsonify(budgets.today(request.args.get("profile") or None))
    except ValueError as exc:
        return core.json_error(404, str(exc))


@route("/profiles/<name>/budgets", "PUT", "Replace a profile's time budgets ([{target, minutes, weekend, reset}])",
       body="Budgets")
def budgets_put(name: str):
    from . import budgets

    return _call(lambda: (budgets.set_budgets(name, request.get_json(silent=True)), budgets.today(name))[1])


@route("/profiles/<name>/budgets/more", "POST", "Add minutes to today's budget ({target, minutes})",
       body="BudgetMore")
def budgets_more(name: str):
    from . import budgets

    return _call(lambda: budgets.add_minutes(name, str(_body().get("target") or ""), _body().get("minutes", 15)))


# -- schedules -----------------------------------------------------------------------------------------

@route("/schedules", "GET", "Schedules (of one profile with ?profile=)", query=("profile",))
def schedules_list():
    try:
        items = core.store().list_schedules(request.args.get("profile") or None)
    except ValueError as exc:
        return core.json_error(404, str(exc))
    return jsonify([actions.as_dict(s) for s in items])


@route("/schedules", "POST", "Add a schedule ({profile, name, days, start, end, action, categories, services})",
       body="Schedule")
def schedules_add():
    return _call(lambda: actions.add_schedule(actions.schedule_from_fields(_body())), 201)


@route("/schedules/<profile>/<name>", "PATCH", "Change a schedule (e.g. {enabled: false})", body="Schedule")
def schedule_update(profile: str, name: str):
    return _call(lambda: actions.update_schedule(profile, name, _body()))


@route("/schedules/<profile>/<name>", "DELETE", "Remove a schedule")
def schedule_remove(profile: str, name: str):
    return _call(lambda: actions.remove_schedule(profile, name))


# -- lists ---------------------------------------------------------------------------------------------

@route("/lists", "GET", "Lists: entries, last success, last attempt, error")
def lists_status():
    from .admin.monitor import list_health, lists_job

    health = list_health()
    return jsonify({"lists": [r.__dict__ for r in health["rows"]], "entries": health["entries"],
                    "errors": len(health["errors"]), "feed": health["feed"].__dict__ if health["feed"] else None,
                    "problems": health["problems"], "healthy": health["healthy"],
                    "update": lists_job().snapshot(core.config())})


@route("/lists/update", "GET", "Progress of the running (or last) list update")
def lists_update_status():
    from .admin.monitor import lists_job

    return jsonify(lists_job().snapshot(core.config()))


@route("/lists/update", "POST", "Start a list update now ({offline: true} compiles without downloading)",
       body="ListsUpdate")
def lists_update():
    from .admin.monitor import lists_job

    data = request.get_json(silent=True) or {}
    started = lists_job().start(core.config(), fetch=not data.get("offline"))
    if started:
        core.audit("lists.update", "lists")
    return jsonify({"started": started, **lists_job().snapshot(core.config())}), (202 if started else 409)


# -- query log and statistics -------------------------------------------------------------------------------

def query_dict(item: dict) -> dict:
    """A query-log row; the ``*_text`` keys are for people, in the request's language (``reason`` stays the
    machine code)."""
    from .i18n import answer_text, log_reason, profile_name, record_type

    r = item["row"]
    return {"id": item["id"], "ts": r.ts, "client": r.client, "device": item["device"], "qname": r.qname,
            "qtype": r.qtype, "rcode": r.rcode, "answer": r.answer, "upstream": r.upstream,
            "latency_ms": r.latency_ms, "cached": r.cached, "reason": r.reason, "blocked": item["blocked"],
            "profile": item["profile"], "reason_text": log_reason(r.reason), "type_text": record_type(r.qtype),
            "answer_text": answer_text(r.answer), "profile_text": profile_name(item["profile"]), "node": r.node}


@route("/querylog", "GET", "Query log, newest first; after_id for a live tail",
       query=("device", "client", "result", "q", "node", "after_id", "before_id", "limit"))
def querylog():
    from .admin.monitor import query_filter, query_rows

    limit = max(1, min(1000, request.args.get("limit", 100, type=int)))
    rows = core.store().query_page(limit, after_id=request.args.get("after_id", type=int),
                                   before_id=request.args.get("before_id", type=int), **query_filter(request.args))
    return jsonify([query_dict(i) for i in query_rows(rows)])


@route("/stats", "GET", "Queries and blocks per hour, top blocked names, top clients, queries by reason, "
       "engine counters (all from hourly roll-ups)",
       query=("hours",))
def stats():
    store = core.store()
    hours = max(1, min(24 * 31, request.args.get("hours", 24, type=int)))
    since, until = actions.stats_window(hours)
    counts = store.hourly_counts(since, until)
    clients = store.top_clients(since, 10)
    names = actions.device_names(c.name for c in clients)
    engine = core.engine_call("stats")
    return jsonify({
        "since": since, "until": until,
        "total": sum(c.total for c in counts), "blocked": sum(c.blocked for c in counts),
        "hourly": [c._asdict() for c in counts],
        "top_blocked": [c._asdict() for c in store.top_domains(since, 10, blocked=True)],
        "top_clients": [{**c._asdict(), "device": names.get(c.name)} for c in clients],
        "clients": store.count_clients(since), "devices": store.count_devices(),
        "by_reason": store.reason_counts(since),
        "engine": engine.get("stats") if engine else None,
    })


@route("/devices/<name>/report", "GET", "A device's last 7 days: minutes online per hour, top sites, blocks")
def device_report(name: str):
    store = core.store()
    d = store.get_device(name)
    if d is None:
        return core.json_error(404, f"unknown device {name!r}")
    from resolver.ops.usage_report import hourly_active, week_report

    clients = actions.clients_of(d)
    since, until = actions.stats_window(24 * 7)
    # "total" = minutes of foreground activity in the hour, counted with the time budgets' rule
    active = hourly_active(week_report(store, device=d.name, tz=core.tzinfo(), now=time.time()), core.tzinfo())
    online = [dict(o._asdict(), total=active.get(o.hour, 0))
              for o in store.online_minutes(since, until, clients=clients)]
    return jsonify({"device": d.name, "clients": clients, "since": since, "online": online,
                    "top": [c._asdict() for c in store.top_domains(since, 15, blocked=False, clients=clients)],
                    "blocked": [c._asdict() for c in store.top_domains(since, 15, blocked=True, clients=clients)]})


# -- access requests and reports ----------------------------------------------------------------------------

@route("/requests", "GET", "Access requests, pending first", query=("status",))
def requests_list():
    try:
        items = core.store().list_access_requests(request.args.get("status") or None)
    except ValueError as exc:
        return core.json_error(400, str(exc))
    return jsonify([r._asdict() for r in items])


@route("/requests/<int:request_id>", "POST",
       "Answer a request ({decision: 30m|day|minutes|always|decline, minutes?, domain?})", body="Decision")
def request_decide(request_id: int):
    return _call(lambda: actions.decide_request(request_id, _body().get("decision", ""), _body().get("domain"),
                                                _body().get("minutes")))


@route("/reports", "GET", "Harmful-site reports, newest first (CSV with ?format=csv)", query=("format",))
def reports_list():
    reports = core.store().list_reports(100000)
    if request.args.get("format") == "csv":
        from .admin.system import reports_csv

        return reports_csv(reports)
    return jsonify([r._asdict() for r in reports])


@route("/audit", "GET", "The audit log, newest first", query=("before_id", "limit"))
def audit():
    limit = max(1, min(1000, request.args.get("limit", 100, type=int)))
    return jsonify([e._asdict() for e in core.store().list_audit(limit,
                                                                 before_id=request.args.get("before_id", type=int))])


@route("/users", "GET", "Users (admins only)")
def users():
    if g.user.role != "admin":
        return core.forbidden()
    return jsonify([actions.user_dict(u) for u in core.store().list_users()])


@route("/openapi.json", "GET", "This document", public=True)
def openapi():
    from .openapi import document

    return jsonify(document(ROUTES))
