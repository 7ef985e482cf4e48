"""Wiring the catalogue into the app: Babel's locale and time-zone selectors, the language switch route and
the template filters every page uses. Kept apart from :mod:`webui.i18n` (the labels and formatters), which
:mod:`webui.errors` and :mod:`webui.listlog` import, so the three do not import each other in a circle."""
from __future__ import annotations

from flask import Flask
from flask_babel import Babel, get_locale

from .errors import localise_error
from .i18n import (BLOCK_MODE_LABELS, CATEGORY_LABELS, DAY_LABELS, HARM_KINDS, LANGUAGES, ORIGIN_LABELS, PRESET_LABELS,
                   SCHEDULE_ACTION_LABELS, SERVICE_GROUPS, UPSTREAM_LABELS, YOUTUBE_LABELS, answer_text, audit_action,
                   category_label, duration, hhmm, log_reason, number, percent, profile_name, reason_text,
                   record_type, select_locale, select_timezone, set_language, when)
from .listlog import localise_line


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.add_url_rule("/lang/<code>", "i18n_lang", set_language)
    app.jinja_env.filters.update(when=when, hhmm=hhmm, number=number, percent=percent,
                                 category=category_label, reason_text=reason_text, log_reason=log_reason,
                                 profile_name=profile_name, duration=duration, audit_action=audit_action,
                                 record_type=record_type, answer_text=answer_text, error_text=localise_error,
                                 list_line=localise_line)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, get_locale=get_locale, CATEGORY_LABELS=CATEGORY_LABELS,
                                 SERVICE_GROUPS=SERVICE_GROUPS, DAY_LABELS=DAY_LABELS, HARM_KINDS=HARM_KINDS,
                                 PRESET_LABELS=PRESET_LABELS, YOUTUBE_LABELS=YOUTUBE_LABELS,
                                 BLOCK_MODE_LABELS=BLOCK_MODE_LABELS, SCHEDULE_ACTION_LABELS=SCHEDULE_ACTION_LABELS,
                                 UPSTREAM_LABELS=UPSTREAM_LABELS, ORIGIN_LABELS=ORIGIN_LABELS)
