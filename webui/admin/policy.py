"""Devices, profiles and schedules pages."""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from resolver.policy.profiles import (ALL_CATEGORIES, BLOCK_MODES, CATEGORIES, DAYS, DEFAULT_PROFILE_NAME, PRESETS,
                               SCHEDULE_ACTIONS, YOUTUBE_MODES, profile_from_preset)

from .. import actions, core
from ..errors import localise_error
from .budgets import context as budget_context
from .blueprint import attempt, back, bp, done
from .monitor import PAUSE_CHOICES
ALLOW_CHOICES = (15, 30, 60, 120, 24 * 60)


def known_categories() -> list[str]:
    """The standard categories, then any other category the compiled lists provide."""
    path = os.path.join(core.config().data_dir, "lists", "index.json")
    extra: set[str] = set()
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh).get("categories", {})
        for key, value in meta.items():
            if isinstance(value, dict) and value.get("allow_only"):
                continue          # exceptions only (a provider's unblocked names): nothing to switch on
            extra.add(str(value.get("category", key)) if isinstance(value, dict) else str(key))
    except (OSError, ValueError, AttributeError):
        pass
    return list(CATEGORIES) + sorted(c for c in extra - set(CATEGORIES) if c and c != ALL_CATEGORIES)


def services_by_group() -> dict[str, list[Any]]:
    from blocklists.services import load_services

    groups: dict[str, list[Any]] = {}
    for s in sorted(load_services().values(), key=lambda s: s.name.lower()):
        groups.setdefault(s.group, []).append(s)
    return dict(sorted(groups.items()))


# -- devices -------------------------------------------------------------------------------------------

DEVICES_PER_PAGE = 50


def _unnamed_seen(store: Any) -> list[Any]:
    """Clients seen lately that no device names by its IP or MAC (looked up for these only: a campus has
    thousands of devices)."""
    seen = store.list_seen(200)
    values = {s.address for s in seen} | {s.mac for s in seen if s.mac}
    named = {d.value for d in store.find_devices(values=sorted(values), limit=len(values))
             if d.kind in ("ip", "mac")} if values else set()
    return [s for s in seen if s.address not in named and not (s.mac and s.mac in named)]


# above this many profiles each device's profile is typed (with the names offered) instead of picked from a menu:
# 50 devices a page x 200 profiles is 10,000 options, half a megabyte of page
PROFILE_MENU_MAX = 30


@bp.get("/devices")
def devices():
    store = core.store()
    now = time.time()
    search = (request.args.get("q") or "").strip()[:100]
    total = store.count_devices(search)
    pages = max(1, -(-total // DEVICES_PER_PAGE))
    page = min(max(1, request.args.get("page", 1, type=int)), pages)
    shown = store.find_devices(search, limit=DEVICES_PER_PAGE, offset=(page - 1) * DEVICES_PER_PAGE)
    names = {d.name for d in shown}
    allows: dict[str, list[Any]] = {}
    for a in store.list_temp_allows(now):
        if a.device in names:
            allows.setdefault(a.device, []).append(a)
    return render_template("admin/devices.html", devices=shown, total=total, page=page, pages=pages,
                           first=(page - 1) * DEVICES_PER_PAGE + 1, search=search,
                           all_devices=store.count_devices() if search else total,
                           profiles=store.list_profiles(), seen=_unnamed_seen(store), allows=allows, now=now,
                           pause_choices=PAUSE_CHOICES, allow_choices=ALLOW_CHOICES, profile_menu_max=PROFILE_MENU_MAX,
                           add_identity=request.args.get("identity", ""), add_name=request.args.get("name", ""))


@bp.post("/devices")
def devices_post():
    f = request.form
    target = back(url_for("admin.devices"))
    what = f.get("action")
    name = f.get("device", "")
    if what == "add":
        return attempt(lambda: actions.add_device(actions.device_from_fields(
            {"name": f.get("name", ""), "identity": f.get("identity", ""),
             "profile": f.get("profile") or DEFAULT_PROFILE_NAME, "hostname": f.get("hostname", "")})),
            _("Device added."), target)
    if what == "update":
        fields = {k: f[k] for k in ("name", "identity", "profile") if f.get(k)}
        return attempt(lambda: actions.update_device(name, fields), _("Device saved."), target)
    if what == "pause":
        return attempt(lambda: actions.pause_device(name, f.get("minutes")), _("Internet paused."), target)
    if what == "resume":
        return attempt(lambda: actions.pause_device(name, None), _("Internet back on."), target)
    if what == "allow":
        return attempt(lambda: actions.allow_for_device(name, f.get("domain", ""), f.get("minutes")),
                       _("Site allowed for a while."), target)
    if what == "allow-remove":
        return attempt(lambda: actions.remove_temp_allow(int(f.get("id", "0"))), _("Allowance ended."), target)
    if what == "remove":
        return attempt(lambda: actions.remove_device(name), _("Device removed."), target)
    abort(400)


# -- profiles ------------------------------------------------------------------------------------------

@bp.get("/profiles")
def profiles():
    store = core.store()
    # counted once each (a campus has 10,000 devices and 200 profiles), from the cached device list
    devices = Counter(d.profile for d in actions.devices_now())
    schedules = Counter(s.profile for s in store.list_schedules())
    profiles = store.list_profiles()
    counts = {p.name: (devices[p.name], schedules[p.name]) for p in profiles}
    return render_template("admin/profiles.html", profiles=profiles, counts=counts,
                           presets=list(PRESETS) + [DEFAULT_PROFILE_NAME])


@bp.post("/profiles")
def profiles_post():
    f = request.form
    return attempt(lambda: actions.add_profile(profile_from_preset(f.get("name", ""), f.get("preset") or "child")),
                   _("Profile added."), url_for("admin.profile", name=f.get("name", "").strip()))


@bp.get("/profiles/<name>")
def profile(name: str):
    store = core.store()
    p = store.get_profile(name)
    if p is None:
        abort(404)
    from resolver.policy.coverage import category_names

    known = known_categories()
    categories = known + [c for c in p.categories if c not in known and c != ALL_CATEGORIES]  # custom ones too
    return render_template("admin/profile.html", p=p, categories=categories, names=category_names(core.config()),
                           groups=services_by_group(),
                           youtube_modes=YOUTUBE_MODES, block_modes=BLOCK_MODES,
                           devices=[d for d in store.list_devices() if d.profile == p.name],
                           schedules=store.list_schedules(p.name), **budget_context(p.name))


def _profile_form_fields() -> dict:
    f = request.form
    cats = f.getlist("categories")
    if f.get("all_categories"):
        cats = [ALL_CATEGORIES]
    fields = {"categories": cats, "services": f.getlist("services"), "safe_search": bool(f.get("safe_search")),
              "bypass_prevention": bool(f.get("bypass_prevention")), "youtube": f.get("youtube", "off"),
              "block_mode": f.get("block_mode", "null"), "block": f.get("block", ""), "allow": f.get("allow", "")}
    if f.get("name"):
        fields["name"] = f["name"]
    return fields


@bp.post("/profiles/<name>")
def profile_post(name: str):
    f = request.form
    what = f.get("action", "save")
    if what == "remove":
        return attempt(lambda: actions.remove_profile(name), _("Profile removed."), url_for("admin.profiles"))
    if what == "rule":
        return attempt(lambda: actions.profile_rule(name, f.get("domain", ""), f.get("rule", "")),
                       _("Rule saved for profile %(p)s.", p=name), back(url_for("admin.profile", name=name)))
    p = core.store().get_profile(name)
    if p is None:
        abort(404)
    try:
        updated = actions.update_profile(p.name, **actions.profile_from_fields(_profile_form_fields(), p))
    except ValueError as exc:
        flash(localise_error(str(exc)), "error")
        return redirect(url_for("admin.profile", name=name))
    return done(url_for("admin.profile", name=updated.name), _("Profile saved."))


# -- schedules -----------------------------------------------------------------------------------------

def week_grid(schedules: list[Any]) -> list[list[list[Any]]]:
    """grid[day][hour] = the enabled schedules active at any quarter of that hour."""
    grid = []
    for day in range(7):
        row = []
        for hour in range(24):
            row.append([s for s in schedules if s.enabled and
                        any(s.covers(day, hour * 60 + q) for q in (0, 15, 30, 45))])
        grid.append(row)
    return grid


@bp.get("/schedules")
def schedules():
    store = core.store()
    profiles = store.list_profiles()
    chosen = request.args.get("profile") or next((p.name for p in profiles if p.name != DEFAULT_PROFILE_NAME),
                                                  DEFAULT_PROFILE_NAME)
    p = store.get_profile(chosen)
    if p is None:
        abort(404)
    items = store.list_schedules(p.name)
    return render_template("admin/schedules.html", profiles=profiles, p=p, schedules=items, grid=week_grid(items),
                           days=DAYS, actions_=SCHEDULE_ACTIONS, categories=known_categories(),
                           groups=services_by_group())


@bp.post("/schedules")
def schedules_post():
    f = request.form
    profile = f.get("profile", "")
    target = url_for("admin.schedules", profile=profile)
    what = f.get("action")
    if what == "add":
        fields = {"profile": profile, "name": f.get("name", ""), "days": f.getlist("days"),
                  "start": f.get("start", ""), "end": f.get("end", ""), "action": f.get("what", "block_all"),
                  "categories": f.getlist("categories"), "services": f.getlist("services"), "enabled": True}
        return attempt(lambda: actions.add_schedule(actions.schedule_from_fields(fields)), _("Schedule added."),
                       target)
    name = f.get("name", "")
    if what in ("enable", "disable"):
        return attempt(lambda: actions.update_schedule(profile, name, {"enabled": what == "enable"}),
                       _("Schedule saved."), target)
    if what == "remove":
        return attempt(lambda: actions.remove_schedule(profile, name), _("Schedule removed."), target)
    abort(400)
