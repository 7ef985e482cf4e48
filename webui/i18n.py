"""Vietnamese and English: the language of a request, local dates and numbers, and the words parents
read for Hearth's internal ids (categories, block reasons, service groups, days, kinds of harm).

Catalogues are Flask-Babel's (``webui/translations/vi/LC_MESSAGES/messages.po``, compiled ``.mo``
committed); English is the source language.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Optional

from flask import Flask, g, redirect, request, session
from flask_babel import Babel, format_datetime, format_decimal, format_percent, get_locale
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
    "bypass": _l("This would get around the family filter"),
    "paused": _l("The internet is paused on this device"),
    "schedule": _l("It is outside the hours this device may use this now"),
    "custom-rule": _l("Your parent blocked this site"),
    "service": _l("This app or service is turned off for this device"),
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


def _set_language(code: str):
    if code in LANGUAGES:
        session["lang"] = code
    from .core import safe_next

    return redirect(safe_next(request.args.get("next")))


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.add_url_rule("/lang/<code>", "i18n_lang", _set_language)
    app.jinja_env.filters.update(when=when, hhmm=hhmm, number=number, percent=percent,
                                 category=category_label, reason_text=reason_text)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, get_locale=get_locale, CATEGORY_LABELS=CATEGORY_LABELS,
                                 SERVICE_GROUPS=SERVICE_GROUPS, DAY_LABELS=DAY_LABELS, HARM_KINDS=HARM_KINDS,
                                 PRESET_LABELS=PRESET_LABELS, YOUTUBE_LABELS=YOUTUBE_LABELS,
                                 BLOCK_MODE_LABELS=BLOCK_MODE_LABELS, SCHEDULE_ACTION_LABELS=SCHEDULE_ACTION_LABELS)
