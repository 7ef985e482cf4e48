"""The list update's progress lines (written in English by :mod:`blocklists.manager` and the UI's update
job, for logs and the CLI) in the parent's language on the Lists page.

As :mod:`webui.errors` does for error messages: an ordered table of (regular expression for one line
shape, lazy-gettext template with the same named placeholders). List ids, URLs and numbers are put in as
they are; an ``error`` part goes through :func:`webui.errors.localise_error`; a category through the
category labels. A line no shape matches is shown unchanged, as is every line in English.
"""
from __future__ import annotations

import re
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

from .errors import localise_error
from .i18n import category_label

_ID = r"(?P<id>[^\s:]+)"
_SHAPES: list[tuple[str, Any]] = [
    (r"feed: checking (?P<url>.+)", _l("feed: checking %(url)s")),
    (r"feed: FAILED, keeping the lists already accepted: (?P<error>.+)",
     _l("feed: FAILED, the lists already accepted stay in use: %(error)s")),
    (rf"{_ID}: downloading (?P<url>.+)", _l("%(id)s: downloading %(url)s")),
    (rf"{_ID}: FAILED, keeping the previous copy: (?P<error>.+)",
     _l("%(id)s: FAILED, the previous copy stays in use: %(error)s")),
    (rf"{_ID}: REFUSED, keeping the previous copy: (?P<error>.+)",
     _l("%(id)s: REFUSED, the previous copy stays in use: %(error)s")),
    (rf"{_ID}: not modified", _l("%(id)s: unchanged")),
    (rf"{_ID}: (?P<n>\d+) entries \((?P<category>[^;,]+), mandatory; (?P<invalid>\d+) invalid, (?P<skipped>\d+) "
     r"skipped\) in (?P<s>[\d.]+)s",
     _l("%(id)s: %(n)s names (%(category)s, for everyone; %(invalid)s invalid, %(skipped)s skipped) in "
        "%(s)s s")),
    (rf"{_ID}: (?P<n>\d+) entries \((?P<category>[^;,]+); (?P<invalid>\d+) invalid, (?P<skipped>\d+) skipped\) "
     r"in (?P<s>[\d.]+)s",
     _l("%(id)s: %(n)s names (%(category)s; %(invalid)s invalid, %(skipped)s skipped) in %(s)s s")),
    (r"index: (?P<n>\d+) names, (?P<mb>[\d.]+) MB, built in (?P<s>[\d.]+)s",
     _l("index: %(n)s names, %(mb)s MB, built in %(s)s s")),
    (r"engine: new lists in force", _l("DNS engine: the new lists are in force")),
    (r"engine: not running \(the new lists apply when it starts\)",
     _l("DNS engine: not running (the new lists apply when it starts)")),
]
_COMPILED = [(re.compile(shape), template) for shape, template in _SHAPES]


def localise_line(line: str) -> str:
    """One progress line in the parent's language."""
    if str(get_locale() or "en").startswith("en"):
        return line
    for shape, template in _COMPILED:
        m = shape.fullmatch(line)
        if m:
            values = m.groupdict()
            if "error" in values:
                values["error"] = localise_error(values["error"])
            if "category" in values:
                values["category"] = category_label(values["category"])
            return str(template) % values
    return line
