"""A small web console for the provider's people (Vietnamese and English): the review queue, orders and the
fleet. Sign in with an API token (``hearth provider token create``); the session keeps only the token's hash,
so revoking the token signs the browser out. Every form carries a CSRF token; every name and note is
attacker-controlled text and is escaped by Jinja's autoescaping (no ``|safe`` anywhere)."""
from __future__ import annotations

import os
import secrets
import time
from typing import Any

from flask import (Flask, abort, current_app, flash, g, redirect, render_template, request, session,
                   url_for)
from flask_babel import Babel
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select

from . import fleet as fleetlib
from . import orders as orderlib
from . import reports as reportlib
from .accounts import token_hash
from .auth import CAN
from .console_base import _db, bp, signed_in
from .models import KINDS, STATUSES
from .publish import PublishError, publish

LANGUAGES = ("vi", "en")


def select_locale() -> str:
    lang = session.get("lang")
    if lang in LANGUAGES:
        return lang
    return request.accept_languages.best_match(LANGUAGES) or "vi"


def init_console(app: Flask, data_dir: str) -> None:
    """Session key (made at first start, mode 0600), CSRF, Babel (provider/translations), the blueprint."""
    path = os.path.join(data_dir, "console-secret.key")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    with open(path, encoding="ascii") as fh:
        app.secret_key = fh.read().strip()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", WTF_CSRF_TIME_LIMIT=None,
                      BABEL_TRANSLATION_DIRECTORIES=os.path.join(os.path.dirname(__file__), "translations"))
    csrf = CSRFProtect(app)
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else ""
    app.context_processor(lambda: {"lang": select_locale()})
    from . import console_people  # noqa: F401  (the users and audit pages, on this blueprint)

    app.register_blueprint(bp)
    # the JSON API is for Bearer tokens, not cookies: no CSRF there
    from .api import bp as api_bp

    csrf.exempt(api_bp)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        with _db().session() as s:
            from .accounts import user_for_token

            user = user_for_token(s, token)
        if user is None:
            error = _("This token is wrong or revoked.")
        else:
            session["token"] = token_hash(token)
            return redirect(url_for("console.queue"))
    return render_template("console/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout() -> Any:
    session.pop("token", None)
    return redirect(url_for("console.login"))


@bp.get("/lang/<lang>")
def set_lang(lang: str) -> Any:
    if lang in LANGUAGES:
        session["lang"] = lang
    return redirect(request.referrer if request.referrer and request.referrer.startswith(request.host_url)
                    else url_for("console.queue"))


def _queue_args() -> dict:
    """The queue's filters from the query string (or the form that came from it), cleaned."""
    source = request.values
    status = source.get("status", "new")
    kind = source.get("kind", "")
    registrable = source.get("registrable", "").strip()
    try:
        registrable = reportlib.check_domain(registrable, "registrable") if registrable else ""
    except reportlib.ReportError:
        registrable = ""
    return {"status": status if status in STATUSES else "new", "kind": kind if kind in KINDS else "",
            "registrable": registrable}


@bp.get("/")
@signed_in()
def queue() -> Any:
    args = _queue_args()
    with _db().session() as s:
        groups = reportlib.list_groups(s, args["status"], kind=args["kind"] or None,
                                       registrable=args["registrable"] or None)
    return render_template("console/queue.html", groups=groups, statuses=STATUSES, kinds=KINDS, **args,
                           can_decide=g.user_role in CAN["decide"], can_publish=g.user_role in CAN["publish"])


def _decision_form() -> dict:
    return {"action": request.form.get("action"), "category": request.form.get("category", "").strip(),
            "reason": request.form.get("reason", "")}


def _back_to_queue() -> Any:
    args = {k: v for k, v in _queue_args().items() if v}
    return redirect(url_for("console.queue", **args))


@bp.post("/reports/<int:group_id>/decision")
@signed_in("decide")
def decide(group_id: int) -> Any:
    try:
        with _db().session() as s:
            reportlib.decide(s, group_id, _decision_form(), g.user_name)
        flash(_("Saved."), "ok")
    except reportlib.ReportError as exc:
        flash(str(exc), "error")
    except LookupError:
        abort(404)
    if request.form.get("from") == "detail":
        return redirect(url_for("console.report_detail", group_id=group_id))
    return _back_to_queue()


@bp.post("/reports/bulk")
@signed_in("decide")
def decide_bulk() -> Any:
    """The same decision on every selected row of the queue."""
    try:
        ids = [int(i) for i in request.form.getlist("ids")]
    except ValueError:
        abort(400)
    if not ids:
        flash(_("Select at least one row."), "error")
        return _back_to_queue()
    try:
        with _db().session() as s:
            result = reportlib.decide_many(s, ids, _decision_form(), g.user_name)
    except reportlib.ReportError as exc:
        flash(str(exc), "error")
        return _back_to_queue()
    if result["decided"]:
        flash(_("Saved %(n)s decisions.", n=len(result["decided"])), "ok")
    for err in result["errors"]:
        flash(err["error"], "error")
    return _back_to_queue()


@bp.get("/reports/<int:group_id>")
@signed_in()
def report_detail(group_id: int) -> Any:
    from .models import ReportGroup

    with _db().session() as s:
        group = s.get(ReportGroup, group_id)
        if group is None:
            abort(404)
        detail = reportlib.group_detail(s, group)
    return render_template("console/report.html", r=detail, can_decide=g.user_role in CAN["decide"])


@bp.post("/publish")
@signed_in("publish")
def publish_now() -> Any:
    cfg = current_app.extensions["provider.config"]
    try:
        with _db().session() as s:
            result = publish(s, cfg.data_dir, cfg.feed_title, g.user_name, cfg)
        flash(_("Published version %(v)s.", v=result["version"]), "ok")
    except PublishError as exc:
        flash(str(exc), "error")
    return redirect(url_for("console.queue"))


@bp.route("/orders", methods=["GET", "POST"])
@signed_in()
def orders() -> Any:
    if request.method == "POST":
        if g.user_role not in CAN["order"]:
            abort(403)
        body = {k: request.form.get(k, "") for k in ("authority", "reference", "deadline", "category", "domains")}
        upload = request.files.get("file")
        if upload and upload.filename:
            body["domains"] = upload.read().decode("utf-8", "replace")
        try:
            with _db().session() as s:
                orderlib.add_order(s, body, g.user_name)
            flash(_("Order saved: it is enforced from the next publish."), "ok")
        except reportlib.ReportError as exc:
            flash(str(exc), "error")
        return redirect(url_for("console.orders"))
    with _db().session() as s:
        rows = orderlib.list_orders(s)
        fleet = fleetlib.fleet(s)
    for o in rows:   # how much of the fleet has installed the version that carries the order
        o["installed"] = sum(1 for a in fleet if o["published_version"] and (a["feed_version"] or 0)
                             >= o["published_version"])
    return render_template("console/orders.html", orders=rows, fleet=fleet, can_order=g.user_role in CAN["order"])


@bp.get("/fleet.csv")
@signed_in()
def fleet_csv() -> Any:
    with _db().session() as s:
        rows = fleetlib.fleet(s)
    return current_app.response_class(fleetlib.fleet_csv(rows), mimetype="text/csv",
                                      headers={"Content-Disposition": "attachment; filename=fleet.csv"})


@bp.get("/fleet")
@signed_in()
def fleet_page() -> Any:
    with _db().session() as s:
        rows = fleetlib.fleet(s)
    return render_template("console/fleet.html", appliances=rows)


@bp.get("/lists")
@signed_in()
def lists_page() -> Any:
    """What the next publish is made of: the curated lists and the mirrors (with their last download)."""
    from sqlalchemy import func

    from .mirrors import status
    from .models import CuratedEntry, FeedVersion

    cfg = current_app.extensions["provider.config"]
    with _db().session() as s:
        curated = s.execute(select(CuratedEntry.list_id, CuratedEntry.category, func.count(CuratedEntry.id))
                            .group_by(CuratedEntry.list_id, CuratedEntry.category)
                            .order_by(CuratedEntry.list_id)).all()
        versions = s.scalars(select(FeedVersion).order_by(FeedVersion.version.desc()).limit(20)).all()
    return render_template("console/lists.html", curated=curated, mirrors=status(cfg.data_dir, cfg.mirrors),
                           versions=versions)
