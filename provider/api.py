"""The JSON API under /api/v1: appliances (enrol, check in, send reports) and people (review, publish, orders,
fleet, audit), each with its own kind of Bearer token."""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from resolver import __version__

from . import accounts
from . import fleet as fleetlib
from . import orders as orderlib
from . import reports as reportlib
from .auth import appliance_required, error, user_required
from .models import Appliance
from .publish import PublishError, publish, public_key

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _db():
    return current_app.extensions["provider.db"]


def _config():
    return current_app.extensions["provider.config"]


def _body() -> Any:
    data = request.get_json(silent=True)
    if data is None:
        raise reportlib.ReportError("expected a JSON body (Content-Type: application/json)")
    return data


@bp.errorhandler(reportlib.ReportError)
@bp.errorhandler(fleetlib.FleetError)
def _bad(exc: ValueError) -> Any:
    return error(getattr(exc, "status", 400), str(exc))


@bp.errorhandler(LookupError)
def _missing(exc: LookupError) -> Any:
    return error(404, str(exc.args[0] if exc.args else exc))


# -- appliances ---------------------------------------------------------------------------------------------

@bp.post("/enrol")
def enrol() -> Any:
    body = _body()
    if not isinstance(body, dict):
        raise reportlib.ReportError("expected a JSON object {token, appliance_id, hearth_version}")
    with _db().session() as s:
        app, token = fleetlib.enrol(s, body.get("token", ""), body.get("appliance_id", ""),
                                    body.get("hearth_version", ""))
        appliance_id = app.id
    return jsonify({"appliance_id": appliance_id, "token": token, "public_key": public_key(_config().data_dir),
                    "feed_url": "feed/manifest.json"}), 201


@bp.post("/checkin")
@appliance_required
def checkin() -> Any:
    body = _body()
    if not isinstance(body, dict):
        raise reportlib.ReportError("expected a JSON object")
    with _db().session() as s:
        fleetlib.check_in(s.get(Appliance, g.appliance_id), body)
        # the decisions on its unblock requests, when it has open ones (most check-ins: no extra query)
        unblocks = reportlib.decisions_for(s, g.appliance_id) if body.get("unblocks") is True else []
        answer = {"ok": True, "unblocks": unblocks}
        if body.get("report_decisions") is True:   # it waits for decisions on reports it forwarded
            answer["reports"] = reportlib.decisions_for(s, g.appliance_id, kind="report")
    return jsonify(answer)


@bp.post("/reports")
@appliance_required
def receive_reports() -> Any:
    body = _body()
    items = body.get("reports") if isinstance(body, dict) else None
    return _receive(items, "report")


def _receive(items: Any, kind: str) -> Any:
    with _db().session() as s:
        count = reportlib.recent_count(s, g.appliance_id, time.time() - 3600)
        limit = _config().report_limit
        if count >= limit:
            return error(429, f"more than {limit} reports in an hour from this appliance: try later")
        result = reportlib.receive(s, s.get(Appliance, g.appliance_id), items, kind)
    return jsonify(result)


@bp.post("/unblocks")
@appliance_required
def receive_unblocks() -> Any:
    """An appliance's admin asks for feed names to be unblocked (false positives): same queue, kind unblock."""
    body = _body()
    return _receive(body.get("requests") if isinstance(body, dict) else None, "unblock")


@bp.get("/unblocks")
@appliance_required
def unblock_decisions() -> Any:
    with _db().session() as s:
        return jsonify(reportlib.decisions_for(s, g.appliance_id))


# -- people ---------------------------------------------------------------------------------------------------

@bp.get("/reports")
@user_required()
def list_reports() -> Any:
    status = request.args.get("status") or None
    with _db().session() as s:
        return jsonify(reportlib.list_groups(s, status, kind=request.args.get("kind") or None,
                                             registrable=request.args.get("registrable") or None))


@bp.get("/reports/by-registrable")
@user_required()
def reports_by_registrable() -> Any:
    with _db().session() as s:
        return jsonify(reportlib.by_registrable(s, request.args.get("status") or None,
                                                request.args.get("kind") or "report"))


@bp.get("/reports/<int:group_id>")
@user_required()
def get_report(group_id: int) -> Any:
    from .models import ReportGroup

    with _db().session() as s:
        group = s.get(ReportGroup, group_id)
        if group is None:
            raise LookupError(f"no report {group_id}")
        view = reportlib.group_detail(s, group) if request.args.get("detail") else reportlib.group_view(s, group)
        return jsonify(view)


@bp.post("/reports/<int:group_id>/decision")
@user_required("decide")
def decision(group_id: int) -> Any:
    body = _body()
    with _db().session() as s:
        return jsonify(reportlib.decide(s, group_id, body, g.user_name))


@bp.post("/reports/decisions")
@user_required("decide")
def decisions() -> Any:
    """The same decision on several report groups (bulk): {ids, action, category, reason}."""
    body = _body()
    if not isinstance(body, dict):
        raise reportlib.ReportError("expected a JSON object {ids, action, category, reason}")
    with _db().session() as s:
        return jsonify(reportlib.decide_many(s, body.get("ids"), body, g.user_name))


@bp.post("/publish")
@user_required("publish")
def publish_now() -> Any:
    cfg = _config()
    try:
        with _db().session() as s:
            result = publish(s, cfg.data_dir, cfg.feed_title, g.user_name, cfg)
    except PublishError as exc:
        return error(409, str(exc))
    return jsonify(result)


@bp.get("/mirrors")
@user_required()
def mirrors() -> Any:
    from .mirrors import status

    cfg = _config()
    return jsonify(status(cfg.data_dir, cfg.mirrors))


@bp.get("/appliances")
@user_required()
def appliances() -> Any:
    with _db().session() as s:
        rows = fleetlib.fleet(s)
    if request.args.get("format") == "csv":   # the fleet export
        return current_app.response_class(fleetlib.fleet_csv(rows), mimetype="text/csv", headers={
            "Content-Disposition": "attachment; filename=fleet.csv"})
    return jsonify(rows)


@bp.post("/orders")
@user_required("order")
def add_order() -> Any:
    body = _body()
    with _db().session() as s:
        order = orderlib.add_order(s, body, g.user_name)
        order_id = order.id
    return jsonify({"id": order_id}), 201


@bp.get("/orders")
@user_required()
def list_orders() -> Any:
    with _db().session() as s:
        return jsonify(orderlib.list_orders(s))


@bp.get("/audit")
@user_required()
def audit_log() -> Any:
    with _db().session() as s:
        return jsonify(accounts.audit_entries(s, request.args.get("actor") or None,
                                              request.args.get("action") or None))


@bp.get("/users")
@user_required()
def users() -> Any:
    with _db().session() as s:
        return jsonify(accounts.list_users(s))


@bp.post("/users/<name>/role")
@user_required("users")
def user_role(name: str) -> Any:
    body = _body()
    if not isinstance(body, dict):
        raise reportlib.ReportError("expected a JSON object {role}")
    try:
        with _db().session() as s:
            return jsonify(accounts.set_role(s, name, body.get("role"), g.user_name))
    except accounts.AccountError as exc:
        return error(400, str(exc))


@bp.get("/openapi.json")
def openapi() -> Any:
    from .openapi import document

    return jsonify(document())


@bp.get("/version")
def version() -> Any:
    return jsonify({"hearth": __version__})
