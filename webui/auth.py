"""Signing in and out, the first-run setup wizard, and one's own account (password, language, API tokens).

No default credentials: until the first admin exists every page leads to ``/setup``, which needs the
one-time setup code (see :mod:`webui.setupcode`). Login is throttled per client address and per
account with a growing wait, so that failures from one device never lock the parent out of another
(see :mod:`webui.throttle`); failures and lock-outs are audited.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from resolver.policy.profiles import DEFAULT_PROFILE_NAME, identify, profile_from_preset

from . import core, setupcode, throttle
from .errors import localise_error
from .i18n import LANGUAGES

bp = Blueprint("auth", __name__)
log = logging.getLogger("hearth.web")
bp.add_app_template_global(throttle.recent_failures, "recent_sign_in_failures")
PASSWORD_MIN = 8
# Upstream resolvers the wizard offers: the embedded default, and family filters that block adult
# content themselves as a second line.
UPSTREAM_CHOICES: dict[str, tuple[str, ...]] = {
    "quad9": ("udp://9.9.9.9", "udp://149.112.112.112"),
    "cloudflare-family": ("udp://1.1.1.3", "udp://1.0.0.3"),
    "adguard-family": ("udp://94.140.14.15", "udp://94.140.15.16"),
    "cleanbrowsing-family": ("udp://185.228.168.168", "udp://185.228.169.168"),
}
TIMEZONES = ("Asia/Ho_Chi_Minh", "Asia/Bangkok", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney",
             "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
             "America/Los_Angeles", "UTC")


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def check_new_password(password: str, again: Optional[str] = None) -> Optional[str]:
    """A reason the password is refused, or None."""
    if len(password) < PASSWORD_MIN:
        return _("The password needs at least %(n)d characters.", n=PASSWORD_MIN)
    if again is not None and password != again:
        return _("The two passwords differ.")
    return None


def _client() -> str:
    return request.remote_addr or "?"


def authenticate(name: str, password: str, address: str) -> tuple[Optional[Any], Optional[str]]:
    """(user, None) or (None, why not). Throttled per address and per account (see webui.throttle)."""
    lock = throttle.lock_for(name, address, throttle.is_known_device(name))
    if lock is not None:
        minutes = max(1, int((lock.until - time.time() + 59) // 60))
        if lock.scope == "account":
            return None, _("Too many failed sign-ins to this account from other devices. Sign in from a device "
                           "you used before, or try again in %(n)d minutes.", n=minutes)
        return None, _("Too many failed sign-ins. Try again in %(n)d minutes.", n=minutes)
    user = core.store().get_user(name) if name.strip() else None
    # check a hash either way, so a wrong name takes as long as a wrong password
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok:
        throttle.record(name, address, False)
        return None, _("Wrong user name or password.")
    throttle.record(name, address, True)
    return core.store().update_user(user.name, last_login=time.time()), None


_DUMMY_HASH = generate_password_hash("not a password, for timing")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        user, error = authenticate(request.form.get("username", ""), request.form.get("password", ""), _client())
        if user is not None:
            core.sign_in(user)
            return throttle.remember_device(
                redirect(core.safe_next(request.args.get("next"), url_for("admin.dashboard"))), user.name)
    return render_template("auth/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    if g.user is not None and not g.via_token:
        everywhere = request.form.get("everywhere") == "1"
        (core.end_sessions if everywhere else core.end_this_session)(g.user)
        core.audit("logout", g.user.name, None, {"everywhere": True} if everywhere else None)
    core.sign_out()
    return redirect(url_for("auth.login"))


# -- the first-run wizard --------------------------------------------------------------------------------

def _wizard_defaults() -> dict:
    cfg = core.config()
    return {"username": "admin", "language": "vi" if cfg.web.hotline_country == "VN" else "en",
            "timezone": cfg.timezone, "upstream": "quad9", "profile_name": _("Kids"),
            "preset": "child", "device_name": "", "device_id": ""}


def _apply_wizard(form: dict) -> list[str]:
    """Create the admin, settings, first profile and (optionally) first device; the problems, if any."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    errors = []
    fixed_upstreams = configured_upstreams()
    name = form["username"].strip()
    bad = check_new_password(form["password"], form["password2"])
    if bad:
        errors.append(bad)
    if form["language"] not in LANGUAGES:
        errors.append(_("Choose a language."))
    try:
        ZoneInfo(form["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(_("Unknown time zone %(tz)s.", tz=form["timezone"]))
    if fixed_upstreams is None and form["upstream"] not in UPSTREAM_CHOICES:
        errors.append(_("Choose an upstream resolver."))
    profile = device = None
    try:
        profile = profile_from_preset(form["profile_name"], form["preset"])
    except ValueError as exc:
        errors.append(localise_error(str(exc)))
    if form["device_name"].strip() or form["device_id"].strip():
        try:
            from resolver.policy.profiles import Device

            kind, value = identify(form["device_id"])
            device = Device(form["device_name"], kind, value, profile.name if profile else DEFAULT_PROFILE_NAME)
        except ValueError as exc:
            errors.append(localise_error(str(exc)))
    if errors:
        return errors
    store = core.store()
    if store.count_users():          # someone finished the wizard first
        return [_("Hearth is already set up: sign in.")]
    try:
        user = store.add_user(name, hash_password(form["password"]), "admin", form["language"])
    except ValueError as exc:
        return [localise_error(str(exc))]
    g.user = user
    store.set_setting("language", form["language"])
    store.set_setting("timezone", form["timezone"])
    if fixed_upstreams is None:
        store.set_setting("upstream_choice", form["upstream"])
        store.set_setting("upstreams", list(UPSTREAM_CHOICES[form["upstream"]]))
    setupcode.retire(core.config().data_dir)
    core.audit("setup", name, None, {"language": form["language"], "timezone": form["timezone"],
                                     "upstream": form["upstream"] if fixed_upstreams is None else "config file"})
    from . import actions

    try:
        if store.get_profile(profile.name) is None:
            actions.add_profile(profile)
        if device is not None:
            actions.add_device(device)
    except ValueError as exc:
        flash(localise_error(str(exc)), "error")
    current_app.extensions["hearth_setup_done"] = True
    core.sign_in(user)
    return []


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    store = core.store()
    if store.count_users():
        if g.user is not None:
            return redirect(url_for("auth.setup_done"))
        return redirect(url_for("auth.login"))
    data_dir = core.config().data_dir
    setupcode.ensure_code(data_dir)
    form = _wizard_defaults()
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        form.update({k: request.form.get(k, "") for k in list(form) + ["password", "password2"]})
        if not setupcode.check_code(data_dir, request.form.get("setup_code", "")):
            errors, status = [_("That is not the setup code. Hearth printed it when it was installed and started; "
                                "on the Hearth machine, run: hearth admin setup-code")], 403
            log.warning("setup wizard: wrong setup code from %s", _client())
        else:
            form["setup_code"] = request.form.get("setup_code", "")
            errors = _apply_wizard(form)
            status = 400 if errors else 200
        if not errors:          # this browser is the admin's: a known device from now on
            return throttle.remember_device(redirect(url_for("auth.setup_done")), form["username"])
        form.pop("password", None)
        form.pop("password2", None)
    from resolver.policy.coverage import category_names

    return render_template("auth/setup.html", form=form, errors=errors, timezones=TIMEZONES,
                           upstreams=UPSTREAM_CHOICES, presets=_preset_choices(),
                           names=category_names(core.config()), fixed_upstreams=configured_upstreams()), status


def configured_upstreams() -> Optional[list[str]]:
    """The configuration file's dns.upstreams when they override the wizard's choice, else None."""
    from resolver.service.settings import file_upstreams

    return file_upstreams(core.config())


def _preset_choices() -> dict[str, tuple[str, ...]]:
    """Each preset and the categories it ticks."""
    from resolver.policy.profiles import PRESETS

    return {name: p.categories for name, p in PRESETS.items()}


def dns_addresses() -> tuple[list[str], bool]:
    """The engine's DNS addresses (as bound, from its state file; else as configured) and whether they are
    all loopback (then only this machine is served)."""
    import json
    import os

    cfg = core.config()
    listens = list(cfg.dns.listen)
    try:
        with open(os.path.join(cfg.data_dir, "engine.json"), encoding="utf-8") as fh:
            listens = list(json.load(fh)["dns"]) or listens
    except (OSError, ValueError, KeyError, TypeError):
        pass
    loopback_only = all(a.startswith("127.") or a.startswith("[::1]") or a.startswith("localhost") for a in listens)
    return listens, loopback_only


def lan_addresses() -> list[str]:
    """This machine's global IPv4 addresses (from `ip addr`: a netlink read, no traffic), for telling
    the parent what to type into the router. Empty when `ip` is missing."""
    import subprocess

    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, timeout=2).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            address = words[words.index("inet") + 1].split("/")[0]
            if address not in found:
                found.append(address)
    return found


@bp.get("/setup/done")
def setup_done():
    if g.user is None:
        return redirect(url_for("auth.login"))
    listens, loopback_only = dns_addresses()
    host = request.host.rsplit(":", 1)[0].strip("[]")
    if host in ("localhost", "::1") or host.startswith("127."):  # the parent is on the Hearth machine itself
        host = next(iter(lan_addresses()), host)
    return render_template("auth/setup_done.html", listens=listens, loopback_only=loopback_only, host=host)


# -- one's own account --------------------------------------------------------------------------------

@bp.route("/account", methods=["GET", "POST"])
def account():
    if g.user is None:
        return redirect(url_for("auth.login", next=request.path))
    store = core.store()
    new_token = None
    if request.method == "POST":
        what = request.form.get("action")
        if what == "password":
            user, _error = None, None
            if not check_password_hash(g.user.password_hash, request.form.get("current", "")):
                flash(_("The current password is wrong."), "error")
            else:
                bad = check_new_password(request.form.get("password", ""), request.form.get("password2", ""))
                if bad:
                    flash(bad, "error")
                else:
                    user = store.update_user(g.user.name, password_hash=hash_password(request.form["password"]))
                    core.audit("user.password", user.name)
                    core.end_sessions(user)          # signed out elsewhere; this browser stays signed in
                    core.sign_in(user)
                    flash(_("Password changed."), "ok")
        elif what == "language" and request.form.get("language") in LANGUAGES:
            store.update_user(g.user.name, language=request.form["language"])
            from flask import session

            session["lang"] = request.form["language"]
            flash(_("Language saved."), "ok")
        elif what == "token-create":
            new_token = core.new_token()
            tok = store.add_api_token(g.user.name, core.token_hash(new_token), request.form.get("label", "")[:100])
            core.audit("token.create", g.user.name, None, {"id": tok.id, "label": tok.label})
        elif what == "token-remove":
            try:
                tid = int(request.form.get("id", ""))
                mine = [t for t in store.list_api_tokens(g.user.name) if t.id == tid]
                if not mine:
                    raise ValueError(_("No such token."))
                store.remove_api_token(tid)
                core.audit("token.remove", g.user.name, {"id": tid, "label": mine[0].label}, None)
                flash(_("Token revoked."), "ok")
            except ValueError as exc:
                flash(localise_error(str(exc)), "error")
        if new_token is None:
            return redirect(url_for("auth.account"))
    return render_template("auth/account.html", tokens=store.list_api_tokens(g.user.name), new_token=new_token)
