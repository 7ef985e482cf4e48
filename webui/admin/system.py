"""Access requests, harmful-site reports, settings, users and the audit log."""
from __future__ import annotations

import csv
import io
import time
from typing import Optional

from flask import Response, abort, g, render_template, request, url_for
from flask_babel import gettext as _

from .. import actions, core
from ..auth import TIMEZONES, UPSTREAM_CHOICES, check_new_password, dns_addresses, hash_password
from ..i18n import LANGUAGES
from .blueprint import attempt, back, bp


@bp.get("/requests")
def requests_page():
    from blocklists.provider_client import migrate_files

    store = core.store()
    if core.config().provider.url:
        migrate_files(core.config().data_dir, store)
    reports = store.list_reports(200)
    return render_template("admin/requests.html", requests=store.list_access_requests(limit=200),
                           reports=reports, report_devices={r.id: actions.report_device(r) for r in reports},
                           provider_decisions=store.provider_report_decisions())


@bp.post("/requests")
def requests_post():
    f = request.form
    domain = f.get("domain", "").strip()
    if f.get("subdomains") and domain and not domain.startswith("*."):
        domain = "*." + domain
    return attempt(lambda: actions.decide_request(int(f.get("id", "0")), f.get("decision", ""), domain or None,
                                                  f.get("minutes")),
                   _("Answer saved."), back(url_for("admin.requests_page")))


@bp.post("/reports")
def reports_post():
    f = request.form
    if f.get("action") != "handled":
        abort(400)
    return attempt(lambda: actions.report_handled(f.get("id", "")), _("Report marked as handled."),
                   back(url_for("admin.requests_page", _anchor="reports")))


def reports_csv(reports: list) -> Response:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "time_utc", "client", "url", "kind", "contact", "message", "device", "handled_utc"])
    for r in reports:
        w.writerow([r.id, _utc(r.ts), r.client, *(_csv_safe(x) for x in (r.url, r.kind, r.contact, r.message,
                                                                            r.device)), _utc(r.handled_ts)])
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=hearth-reports.csv"})


def _utc(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else ""


def _csv_safe(text: str) -> str:
    """No spreadsheet formulas from public input (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.get("/reports.csv")
def reports_export():
    return reports_csv(core.store().list_reports(100000))


# -- settings ----------------------------------------------------------------------------------------------

@bp.get("/settings")
def settings():
    store = core.store()
    cfg = core.config()
    listens, loopback_only = dns_addresses()
    return render_template("admin/settings.html", cfg=cfg, language=store.get_setting("language", ""),
                           timezone=core.timezone_name(), choice=store.get_setting("upstream_choice", ""),
                           chosen_upstreams=store.get_setting("upstreams", []), upstream_choices=UPSTREAM_CHOICES,
                           retention_days=cfg.querylog.retention / 86400, listens=listens,
                           loopback_only=loopback_only, timezones=TIMEZONES)


@bp.post("/settings")
def settings_post():
    f = request.form
    store = core.store()
    target = url_for("admin.settings")
    what = f.get("action")
    if what == "purge":
        def purge() -> None:
            days = float(f.get("days", "0") or 0)
            if days < 0:
                raise ValueError("days must not be negative")
            cutoff = time.time() - days * 86400 if days else time.time() + 1
            count = store.purge_queries(cutoff)
            core.audit("querylog.purge", "query log", None, {"older_than_days": days, "deleted": count})
        return attempt(purge, _("Query log purged."), target)
    if what == "language":
        def language() -> None:
            lang = f.get("language", "")
            if lang not in LANGUAGES:
                raise ValueError(f"unknown language {lang!r}")
            before = store.get_setting("language")
            store.set_setting("language", lang)
            core.audit("settings.language", "language", before, lang)
        return attempt(language, _("Settings saved."), target)
    if what == "resolver":
        def resolver() -> None:
            choice, tz = f.get("upstream", ""), f.get("timezone", "")
            if choice not in UPSTREAM_CHOICES:
                raise ValueError(f"unknown upstream choice {choice!r}")
            if tz not in TIMEZONES:
                raise ValueError(f"unknown time zone {tz!r}")
            before = {"upstream": store.get_setting("upstream_choice"), "timezone": store.get_setting("timezone")}
            store.set_setting("upstream_choice", choice)
            store.set_setting("upstreams", list(UPSTREAM_CHOICES[choice]))
            store.set_setting("timezone", tz)
            core.audit("settings.resolver", "settings", before, {"upstream": choice, "timezone": tz})
        return attempt(resolver, _("Settings saved."), target)
    abort(400)


# -- users and audit -------------------------------------------------------------------------------------

@bp.get("/users")
@core.admin_only
def users():
    store = core.store()
    return render_template("admin/users.html", users=store.list_users(), tokens=store.list_api_tokens())


@bp.post("/users")
def users_post():
    f = request.form
    store = core.store()
    target = url_for("admin.users")
    what = f.get("action")
    name = f.get("name", "")
    if what == "add":
        def add() -> None:
            bad = check_new_password(f.get("password", ""))
            if bad:
                raise ValueError(bad)
            user = store.add_user(name, hash_password(f["password"]), f.get("role", "viewer"))
            core.audit("user.add", user.name, None, actions.user_dict(user))
        return attempt(add, _("User added."), target)
    if what == "role":
        def role() -> None:
            before = store.get_user(name)
            after = store.update_user(name, role=f.get("role", ""))
            core.audit("user.role", after.name, before and actions.user_dict(before), actions.user_dict(after))
        return attempt(role, _("User saved."), target)
    if what == "password":
        def password() -> None:
            bad = check_new_password(f.get("password", ""))
            if bad:
                raise ValueError(bad)
            user = store.update_user(name, password_hash=hash_password(f["password"]))
            core.end_sessions(user)
            core.audit("user.password", user.name)
        return attempt(password, _("Password changed."), target)
    if what == "remove":
        def remove() -> None:
            if name.strip().lower() == g.user.name.lower():
                raise ValueError(_("You can't remove yourself."))
            before = store.get_user(name)
            store.remove_user(name)
            if before is not None:
                core.end_sessions(before)
            core.audit("user.remove", name, before and actions.user_dict(before), None)
        return attempt(remove, _("User removed."), target)
    if what == "token-remove":
        def token_remove() -> None:
            store.remove_api_token(int(f.get("id", "0")))
            core.audit("token.remove", name, {"id": int(f.get("id", "0"))}, None)
        return attempt(token_remove, _("Token revoked."), target)
    abort(400)


@bp.get("/audit")
def audit_log():
    before = request.args.get("before", type=int)
    entries = core.store().list_audit(100, before_id=before)
    return render_template("admin/audit.html", entries=entries,
                           next_before=entries[-1].id if len(entries) == 100 else None)
