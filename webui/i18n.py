"""Vietnamese and English: the language of a request, local dates and numbers, and the words parents
read for Hearth's internal ids (categories, block reasons, service groups, days, kinds of harm).

Catalogues are Flask-Babel's (``webui/translations/vi/LC_MESSAGES/messages.po``, compiled ``.mo``
committed); English is the source language.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Optional

from flask import g, redirect, request, session
from flask_babel import format_datetime, format_decimal, format_percent, gettext
from flask_babel import lazy_gettext as _l

LANGUAGES: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}

# What each standard category blocks, in words parents understand.
CATEGORY_LABELS: dict[str, tuple[Any, Any]] = {
    "adult": (_l("Adult content"), _l("Pornography and sexual content")),
    "gambling": (_l("Gambling"), _l("Betting, casinos, lotteries")),
    "violence": (_l("Violence"), _l("Gore, weapons, hate")),
    "drugs": (_l("Drugs"), _l("Drugs, alcohol and tobacco shops")),
    "dating": (_l("Dating"), _l("Dating and hook-up sites")),
    "social": (_l("Social networks"), _l("Facebook, TikTok, Instagram and the like")),
    "games": (_l("Online games"), _l("Game sites and game stores")),
    "video": (_l("Video streaming"), _l("YouTube, Netflix and other video sites")),
    "ads": (_l("Advertising"), _l("Ads in apps and on web pages")),
    "trackers": (_l("Trackers"), _l("Sites that follow what you do online")),
    "malware": (_l("Malware"), _l("Viruses and dangerous downloads")),
    "phishing": (_l("Phishing"), _l("Fake sites that steal passwords")),
    "scam": (_l("Scams"), _l("Fraud and fake shops")),
    "bypass": (_l("Filter bypass"), _l("VPNs, proxies and encrypted DNS that get around Hearth")),
}

# Why a name was blocked, as the block page says it (the policy's Reason values).
REASON_TEXT: dict[str, Any] = {
    "category": _l("This site is in a category your family's settings block"),
    "mandatory": _l("This site is blocked for everyone on this network"),
    "order": _l("This site is blocked for everyone by order of an authority"),
    "bypass": _l("This would get around the family filter"),
    "paused": _l("The internet is paused on this device"),
    "schedule": _l("It is outside the hours this device may use this now"),
    "custom-rule": _l("Your parent blocked this site"),
    "service": _l("This app or service is turned off for this device"),
    "time-budget": _l("Today's time for this is used up. It opens again when the day starts again"),
    "safe-search": _l("Safe search is on"),
}

SERVICE_GROUPS: dict[str, Any] = {
    "ai": _l("AI assistants"), "cdn": _l("Content networks"), "dating": _l("Dating"), "gambling": _l("Gambling"),
    "gaming": _l("Games"), "hosting": _l("Hosting"), "messenger": _l("Messaging"), "privacy": _l("Privacy tools"),
    "shopping": _l("Shopping"), "social_network": _l("Social networks"), "software": _l("Software"),
    "streaming": _l("Streaming and video"),
}

DAY_LABELS: dict[str, Any] = {
    "mon": _l("Mon"), "tue": _l("Tue"), "wed": _l("Wed"), "thu": _l("Thu"), "fri": _l("Fri"), "sat": _l("Sat"),
    "sun": _l("Sun"),
}

HARM_KINDS: dict[str, Any] = {
    "sexual": _l("Sexual content or abuse of children"),
    "violence": _l("Violence, self-harm or suicide"),
    "bullying": _l("Bullying or harassment"),
    "scam": _l("Scam, fraud or phishing"),
    "gambling": _l("Gambling"),
    "drugs": _l("Drugs"),
    "other": _l("Something else"),
}

PRESET_LABELS: dict[str, Any] = {
    "young-child": _l("Young child (up to 8)"), "child": _l("Child (9–12)"), "teen": _l("Teen (13–17)"),
    "adult": _l("Adult"), "guest": _l("Guest"), "school-pupil": _l("School pupil"), "default": _l("Default"),
}

YOUTUBE_LABELS: dict[str, Any] = {"strict": _l("Strict"), "moderate": _l("Moderate"), "off": _l("Off")}
BLOCK_MODE_LABELS: dict[str, Any] = {
    "null": _l("Silently (the site does not load)"), "nxdomain": _l("As if the site did not exist"),
    "page": _l("Show the block page"),
}
SCHEDULE_ACTION_LABELS: dict[str, Any] = {
    "block_all": _l("Block everything (bedtime)"), "block_categories": _l("Block these categories"),
    "block_services": _l("Block these apps"),
}


# The query log's reason codes (``kind`` or ``kind:detail``, see resolver.policy.blocking.Decision.log_reason and the
# pipeline's own codes), as the parent reads them; %(x)s is the detail (a category's label, a service's or a
# schedule's name).
LOG_REASON_TEXT: dict[str, Any] = {
    "category": _l("category %(x)s"),
    "mandatory": _l("blocked for everyone: %(x)s"),
    "order": _l("blocked by an authority's order: %(x)s"),
    "bypass": _l("filter bypass"),
    "paused": _l("internet paused"),
    "schedule": _l("schedule %(x)s"),
    "custom-rule": _l("your own block list (%(x)s)"),
    "service": _l("app %(x)s"),
    "time-budget": _l("time budget %(x)s used up"),
    "safe-search": _l("safe search"),
    "stale": _l("saved answer (upstream not answering)"),
    "upstream-failed": _l("upstream not answering"),
    "refused-class": _l("refused (unusual query)"),
    "refused-transfer": _l("refused (zone transfer)"),
    "local-record": _l("local name"),
}
SAFE_SEARCH_KINDS: dict[str, Any] = {"youtube": _l("YouTube restricted mode"), "search": _l("safe search")}

# Audit log actions (``area.verb``), as the parent reads them.
AUDIT_ACTIONS: dict[str, Any] = {
    "setup": _l("first setup"),
    "profile.add": _l("profile added"), "profile.update": _l("profile changed"),
    "profile.remove": _l("profile removed"),
    "device.add": _l("device added"), "device.update": _l("device changed"), "device.remove": _l("device removed"),
    "device.pause": _l("internet paused"), "device.resume": _l("internet resumed"),
    "allow.add": _l("site allowed for a while"), "allow.remove": _l("allowance ended"),
    "schedule.add": _l("schedule added"), "schedule.update": _l("schedule changed"),
    "schedule.remove": _l("schedule removed"),
    "request.approve": _l("request approved"), "request.decline": _l("request declined"),
    "report.handled": _l("report marked as handled"),
    "lists.update": _l("lists update started"), "querylog.purge": _l("query log deleted"),
    "settings.language": _l("language changed"), "settings.resolver": _l("resolver settings changed"),
    "user.add": _l("user added"), "user.role": _l("user's role changed"), "user.password": _l("password changed"),
    "user.remove": _l("user removed"), "token.create": _l("API token created"), "token.remove": _l("API token revoked"),
    "login.failed": _l("failed sign-in"), "login.locked": _l("sign-in locked"),
    "logout": _l("signed out"),
}

UPSTREAM_LABELS: dict[str, Any] = {
    "quad9": _l("Quad9 (blocks malware; the default)"),
    "cloudflare-family": _l("Cloudflare for Families (also blocks adult content)"),
    "adguard-family": _l("AdGuard Family (also blocks adult content)"),
    "cleanbrowsing-family": _l("CleanBrowsing Family (also blocks adult content)"),
}


def category_label(word: str) -> str:
    if word == "*":
        return str(_l("Every category"))
    pair = CATEGORY_LABELS.get(word)
    return str(pair[0]) if pair else word


def reason_text(reason: Optional[str]) -> str:
    """The block page's sentence for a reason value (or a query-log reason ``value:category``)."""
    key = (reason or "").split(":", 1)[0]
    text = REASON_TEXT.get(key)
    return str(text) if text else ""


def log_reason(reason: Optional[str]) -> str:
    """A query-log reason code (``service:TikTok``, ``category:adult``, ``paused:device``…) as a phrase in
    the parent's language, with the name or category put in; an unknown code is shown as it is."""
    if not reason:
        return ""
    code, via = reason, False
    if code.endswith(" via CNAME"):
        code, via = code[:-len(" via CNAME")], True
    kind, _sep, detail = code.partition(":")
    template = LOG_REASON_TEXT.get(kind)
    if template is None:
        return reason
    if kind == "safe-search":
        text = str(SAFE_SEARCH_KINDS.get(detail, template))
    else:
        if kind in ("category", "mandatory"):
            detail = category_label(detail)
        elif kind == "custom-rule":
            detail = profile_name(detail)
        text = str(template) % {"x": detail}
    return gettext("%(reason)s, reached through another name (CNAME)", reason=text) if via else text


def profile_name(name: Optional[str]) -> str:
    """A profile's name as shown: the built-in "default" profile in the parent's language."""
    if name is None:
        return ""
    return gettext("Default") if name.lower() == "default" else name


def duration(minutes: Any) -> str:
    """Minutes as "1 h 30 min" in the parent's language."""
    m = int(minutes or 0)
    if m < 60:
        return gettext("%(n)d min", n=m)
    if m % 60 == 0:
        return gettext("%(n)d h", n=m // 60)
    return gettext("%(h)d h %(m)d min", h=m // 60, m=m % 60)


def audit_action(action: str) -> str:
    """An audit-log action code (``profile.update``) as the parent reads it; unknown codes as they are."""
    text = AUDIT_ACTIONS.get(action)
    return str(text) if text is not None else action


def record_type(qtype: Any) -> str:
    """A query's record type by its usual name (A, AAAA, HTTPS…); a number without one as "type N"."""
    try:
        n = int(qtype)
    except (TypeError, ValueError):
        return str(qtype)
    from dnslib import QTYPE

    name = QTYPE.get(n, None) if n else None
    if isinstance(name, str) and not name.startswith("TYPE"):
        return name
    return gettext("type %(n)s", n=n)


_TYPE_N = re.compile(r"\bTYPE(\d+)\b")


def answer_text(answer: Optional[str]) -> str:
    """A logged answer summary (``A 192.0.2.1, TYPE65``) with unnamed record types in words."""
    return _TYPE_N.sub(lambda m: gettext("type %(n)s", n=m.group(1)), answer or "")


def select_locale() -> str:
    lang = session.get("lang")
    if lang in LANGUAGES:
        return lang
    user = getattr(g, "user", None)
    if user is not None and user.language in LANGUAGES:
        return user.language
    from .core import store

    try:
        default = store().get_setting("language")
    except Exception:
        default = None
    if default in LANGUAGES:
        return default
    return request.accept_languages.best_match(list(LANGUAGES)) or "en"


def select_timezone() -> str:
    from .core import timezone_name

    try:
        return timezone_name()
    except Exception:
        return "UTC"


def when(ts: Optional[float], fmt: str = "short") -> str:
    """A UNIX time as local date and time in the user's language and the appliance's time zone."""
    if not ts:
        return ""
    return format_datetime(_dt.datetime.fromtimestamp(ts, _dt.timezone.utc), fmt)


def hhmm(ts: Optional[float]) -> str:
    if not ts:
        return ""
    return format_datetime(_dt.datetime.fromtimestamp(ts, _dt.timezone.utc), "HH:mm")


def number(n: Any) -> str:
    return format_decimal(n or 0)


def percent(n: float) -> str:
    return format_percent(n or 0, "#,##0.#%")


def set_language(code: str):
    if code in LANGUAGES:
        session["lang"] = code
    from .core import safe_next

    return redirect(safe_next(request.args.get("next")))


ORIGIN_LABELS: dict[str, Any] = {"feed": _l("feed"), "config": _l("configuration file"),
                                 "starter": _l("built in")}
