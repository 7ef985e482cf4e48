"""Time budgets in the console: the profile page's budgets form, the dashboard's "+15 minutes", and a
child's weekly report (charts drawn by the vendored uPlot, a CSV export)."""
from __future__ import annotations

from typing import Any

from flask import abort, request, url_for
from flask_babel import gettext as _

from .. import budgets, core
from .blueprint import attempt, back, bp


def _form_budgets() -> list[dict]:
    """The form's rows (kept unless ticked for removal) and the new row, as field dicts."""
    f = request.form
    remove = set(f.getlist("remove"))
    reset = f.get("reset") or "00:00"
    items = []
    for target, minutes, weekend in zip(f.getlist("target"), f.getlist("minutes"), f.getlist("weekend")):
        if target not in remove:
            items.append({"target": target, "minutes": minutes, "weekend": weekend, "reset": reset,
                          "days": _form_days(f"days:{target}:")})
    if f.get("new_target"):
        items.append({"target": f["new_target"], "minutes": f.get("new_minutes", ""),
                      "weekend": f.get("new_weekend", ""), "reset": reset, "days": _form_days("new_days:")})
    return items


def _form_days(prefix: str) -> dict[str, str]:
    """A row's weekdays with their own minutes (fields ``<prefix>mon`` ... ``<prefix>sun``; empty = none)."""
    from resolver.policy.schedule import DAYS

    f = request.form
    return {d: f[prefix + d].strip() for d in DAYS if (f.get(prefix + d) or "").strip()}


@bp.post("/profiles/<name>/budgets")
def profile_budgets(name: str):
    p = core.store().get_profile(name)
    if p is None:
        abort(404)
    return attempt(lambda: budgets.set_budgets(p.name, _form_budgets()), _("Time budgets saved."),
                   url_for("admin.profile", name=p.name, _anchor="budgets"))


@bp.post("/budgets/more")
def budgets_more():
    f = request.form
    return attempt(lambda: budgets.add_minutes(f.get("profile", ""), f.get("target", ""), f.get("minutes", 15)),
                   _("%(n)s more minutes for today.", n=f.get("minutes", 15)), back(url_for("admin.dashboard")))


def context(profile: str) -> dict[str, Any]:
    """What the profile page's budgets form needs."""
    from resolver.policy.profiles import CATEGORIES
    from resolver.policy.schedule import DAYS

    return {"budget_days": DAYS, "budget_rows": budgets.today(profile),
            "budget_categories": [c for c in CATEGORIES if c in ("games", "social", "video", "dating")]}


# -- the weekly report of a profile (a child) -------------------------------------------------------------

def _week(name: str) -> dict:
    from resolver.ops.usage_report import week_report

    store = core.store()
    p = store.get_profile(name)
    if p is None:
        abort(404)
    return week_report(store, profile=p.name, tz=core.tzinfo(), now=budgets.now())


def week_chart(week: dict) -> tuple[list[float], dict]:
    """(noon of each day, the chart's data) of a week report: what templates/admin/_usage_chart.html draws,
    on a profile's weekly report and on a device's."""
    import datetime as _dt

    tz = core.tzinfo()
    noon = [_dt.datetime.combine(_dt.date.fromisoformat(d), _dt.time(12), tz).timestamp() for d in week["days"]]
    chart = {"x": noon, "all": week["all"], "services": [{"label": s["label"], "minutes": s["minutes"]}
                                                          for s in week["services"][:5]],
             "labels": {"all": _("All internet"), "minutes": _("minutes")}}
    return noon, chart


@bp.get("/profiles/<name>/report")
def profile_report(name: str):
    from flask import render_template

    week = _week(name)
    noon, chart = week_chart(week)
    return render_template("admin/week_report.html", week=week, noon=noon, chart=chart)


@bp.get("/profiles/<name>/report.csv")
def profile_report_csv(name: str):
    from flask import Response

    from resolver.ops.usage_report import report_csv

    week = _week(name)
    filename = f"hearth-week-{week['days'][-1]}.csv"
    return Response(report_csv(week), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
