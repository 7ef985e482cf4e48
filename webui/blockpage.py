"""The kid-facing pages (no login, LAN only): the block page, ask for access, report a harmful site.

The block page asks the engine (control socket ``explain CLIENT DOMAIN``) why the name is blocked
for the device asking; without an engine it still says the site is blocked. Both forms carry CSRF
tokens and are limited to ``web.public_form_limit`` per client per hour.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from resolver.base.names import normalise_name

from . import actions, core
from .errors import localise_error
from .hotlines import hotline
from .i18n import HARM_KINDS

bp = Blueprint("blockpage", __name__)


def _client() -> str:
    return request.remote_addr or ""


def clean_domain(text: Any) -> Optional[str]:
    """The domain in its normalised form, or None for text that is not a host name."""
    try:
        return normalise_name(str(text or "")[:300])
    except ValueError:
        return None


def explain(client: str, domain: str) -> Optional[dict]:
    """The engine's answer for this client and name, or None (engine not running, old engine)."""
    if not client or " " in client or "\n" in client:
        return None
    reply = core.engine_call(f"explain {client} {domain}", timeout=1.0)
    if not reply or not reply.get("ok"):
        return None
    return reply


def _limited(counter: Any) -> bool:
    return counter(_client(), time.time() - 3600) >= core.config().web.public_form_limit


def _covers(rule: str, domain: str) -> bool:
    """Whether an allow entry (``example.com`` or ``*.example.com``) covers ``domain`` as the engine's
    temporary allows do: the name itself or any name under it."""
    base = rule[2:] if rule.startswith("*.") else rule
    return domain == base or domain.endswith("." + base)


def allowance_until(device: Optional[str], domain: str, now: float) -> Optional[float]:
    """The end of the device's unexpired temporary allow for ``domain`` (the latest), or None."""
    if not device:
        return None
    ends = [a.until for a in core.store().list_temp_allows(now) if a.device == device and _covers(a.domain, domain)]
    return max(ends) if ends else None


def current_state(client: str, domain: str, now: float) -> dict:
    """What is true for this device and name *now*, asked afresh on every page load: the engine's verdict
    (``blocked``, the reason) and the parent's allowance still running, if any. Without an engine the store
    answers: the name counts as blocked unless a temporary allow or the profile's allow list covers it."""
    info = explain(client, domain)
    if info is not None:
        device, profile = info.get("device"), info.get("profile")
        blocked = info.get("action") == "block"
    else:
        d = actions.device_for_client(client)
        device, profile = (d.name, d.profile) if d is not None else (None, None)
        p = core.store().get_profile(profile) if profile else None
        blocked = not (allowance_until(device, domain, now)
                       or (p is not None and any(_covers(a, domain) for a in p.allow)))
    until = allowance_until(device, domain, now)
    # the store has the parent's yes but the engine has not picked it up yet (it reloads within seconds)
    starting = blocked and until is not None
    return {"info": info, "device": device, "profile": profile, "blocked": blocked,
            "until": None if blocked else until, "starting": starting}


def render_block(domain_text: str, status: int = 200) -> Any:
    domain = clean_domain(domain_text)
    client = _client()
    now = time.time()
    if domain:
        state = current_state(client, domain, now)
    else:
        d = actions.device_for_client(client)
        state = {"info": None, "device": d.name if d else None, "profile": d.profile if d else None,
                 "blocked": True, "until": None, "starting": False}
    last = core.store().latest_access_request(client, domain) if domain else None
    return render_template("blockpage/blocked.html", domain=domain or domain_text, valid=domain is not None,
                           last=last, now=now, hotline=hotline(core.config().web), harm_kinds=HARM_KINDS,
                           **state), status


@bp.get("/blocked")
def blocked():
    return render_block(request.args.get("domain", ""))


def catch_all(path: str = "") -> Any:
    """On the block page listener: every URL is a blocked site's; its name is the Host header."""
    host = request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else request.host
    return render_block(host.strip("[]"))


@bp.post("/blocked/ask")
def ask():
    domain = clean_domain(request.form.get("domain"))
    if domain is None:
        return render_template("blockpage/message.html", title=_("Which site?"),
                               message=_("This is not a site name.")), 400
    if _limited(core.store().count_access_requests):
        return render_template("blockpage/message.html", title=_("Please wait"),
                               message=_("You have sent many requests. Wait a while, or talk to your parent.")), 429
    client = _client()
    info = explain(client, domain) or {}
    device = info.get("device") or ""
    profile = info.get("profile") or ""
    if not info:
        d = actions.device_for_client(client)
        if d is not None:
            device, profile = d.name, d.profile
    reason = ":".join(x for x in (info.get("reason") or "", info.get("category") or "") if x)
    try:
        core.store().add_access_request(client, domain, request.form.get("message", ""), device=device or "",
                                        profile=profile or "", reason=reason)
    except ValueError as exc:
        return render_template("blockpage/message.html", title=_("Not sent"), message=localise_error(str(exc))), 400
    return redirect(url_for("blockpage.blocked", domain=domain, sent=1))


@bp.route("/report", methods=["GET", "POST"])
def report():
    sent = False
    error = None
    if request.method == "POST":
        kind = request.form.get("kind", "other")
        if kind not in HARM_KINDS:
            kind = "other"
        if _limited(core.store().count_reports):
            return render_template("blockpage/message.html", title=_("Please wait"),
                                   message=_("Many reports came from this device. Thank you — try again "
                                             "later.")), 429
        d = actions.device_for_client(_client())
        try:
            core.store().add_report(_client(), request.form.get("url", ""), kind, request.form.get("contact", ""),
                                    request.form.get("message", ""), device=d.name if d is not None else "",
                                    lang=str(get_locale() or ""))
            sent = True
        except ValueError as exc:
            error = localise_error(str(exc))
    return render_template("blockpage/report.html", sent=sent, error=error, harm_kinds=HARM_KINDS,
                           url=request.values.get("url", ""), hotline=hotline(core.config().web)), \
        (400 if error else 200)
