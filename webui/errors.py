"""The model's one-line ``ValueError`` messages in the parent's language.

The model (:mod:`resolver.policy.profiles`, :mod:`resolver.policy.schedule`, :mod:`resolver.base.names`, the SQLite
store) and :mod:`webui.actions` raise ``ValueError`` with English messages, which the CLI and the
JSON API show as they are. The HTML UI passes them through :func:`localise_error`: an ordered table
of (regular expression for one English message shape, with named groups for its variable parts;
lazy-gettext template with the same named placeholders). The first shape that matches the whole
message gives the template; a message no shape matches is shown unchanged, as is every message
when the language is English (the source language).

The variable parts are inserted as they are (they are user text: the result is plain text, escaped
by Jinja like every flash message, never marked safe), except these groups:

``what``, ``kind``
    the model's word for a field or a kind of thing (``device address``, ``profile``...), shown
    as the parent's word for it (:data:`FIELD_LABELS`); unknown words stay as they are;
``action``
    a schedule action id, shown as the schedule page names it;
``inner``
    a message wrapped in another (``block: not a valid host name: 'x'``), localised in turn.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l

# The model's words for fields and things (the ``what`` of its checks), as a parent reads them.
FIELD_LABELS: dict[str, Any] = {
    "profile": _l("profile"),
    "device": _l("device"),
    "schedule": _l("schedule"),
    "user": _l("user"),
    "categories": _l("categories"),
    "services": _l("apps"),
    "block": _l("always-block list"),
    "allow": _l("always-allow list"),
    "domain": _l("site name"),
    "days": _l("days"),
    "device kind": _l("device kind"),
    "action": _l("schedule action"),
    "youtube": _l("YouTube mode"),
    "block_mode": _l("block mode"),
    "role": _l("role"),
    "status": _l("status"),
    "decision": _l("decision"),
    "safe_search": _l("safe search"),
    "bypass_prevention": _l("filter-bypass blocking"),
    "enabled": _l("on/off"),
    "start": _l("start time"),
    "end": _l("end time"),
    "address": _l("address"),
    "network": _l("network"),
    "MAC address": _l("MAC address"),
    "IP address": _l("IP address"),
    "device address": _l("device's IP address"),
    "device network": _l("device's network"),
    "device MAC address": _l("device's MAC address"),
    "client address": _l("address of this device"),
    "client MAC address": _l("MAC address of this device"),
    "time": _l("time"),
    "until": _l("end time"),
    "pause until": _l("end of the pause"),
    "paused_until": _l("end of the pause"),
    "first_seen": _l("time first seen"),
    "last_seen": _l("time last seen"),
    "updated": _l("time of the last change"),
    "temporary allow": _l("temporary permission"),
    "API token": _l("API token"),
    "access request": _l("access request"),
    "language": _l("language"),
    "upstream choice": _l("upstream resolver"),
}

_LABEL_GROUPS = ("what", "kind")
_WHAT = r"(?P<what>.+?)"

# (English message shape, template), most specific first. Keep a template's placeholders equal to
# its shape's group names.
_TABLE: list[tuple[str, Any]] = [
    # -- names (resolver.policy.profiles.check_name) ------------------------------------------------------------
    (_WHAT + r" name must be text, not (?P<type>\w+)",
     _l("The %(what)s name must be text, not %(type)s.")),
    (_WHAT + r" name is empty",
     _l("The %(what)s name is empty.")),
    (r"hostname is longer than (?P<max>\d+) characters: (?P<value>.+)",
     _l("The host name is longer than %(max)s characters: %(value)s")),
    (_WHAT + r" name is longer than (?P<max>\d+) characters: (?P<name>.+)",
     _l("The %(what)s name is longer than %(max)s characters: %(name)s")),
    (_WHAT + r" name may only hold letters, digits, spaces, '-' and '_': (?P<name>.+)",
     _l("The %(what)s name may only hold letters, digits, spaces, '-' and '_': %(name)s")),
    # -- lists, choices, switches, times (resolver.policy.profiles) ----------------------------------------------
    (_WHAT + r" must be a list, not (?P<type>\w+)",
     _l("The %(what)s must be a list, not %(type)s.")),
    (_WHAT + r": not a valid name: (?P<value>.+) \(lower-case letters, digits, '-', '_'\)",
     _l("%(what)s: %(value)s is not a valid name (use lower-case letters, digits, '-' and '_').")),
    (r"action must be allow, block or remove, not (?P<value>.+)",
     _l("The rule must be allow, block or remove, not %(value)s.")),
    (_WHAT + r" must be one of (?P<choices>.+), not (?P<value>.+)",
     _l("The %(what)s must be one of %(choices)s, not %(value)s.")),
    (_WHAT + r" must be true or false, not (?P<value>.+)",
     _l("The %(what)s must be on or off, not %(value)s.")),
    (_WHAT + r" must be a UNIX time in seconds, not (?P<value>.+)",
     _l("The %(what)s must be a UNIX time in seconds, not %(value)s.")),
    (_WHAT + r" id must be an integer, not (?P<value>.+)",
     _l("The %(what)s number must be a whole number, not %(value)s.")),
    # -- device identities (resolver.policy.profiles) ------------------------------------------------------------
    (_WHAT + r": not an IP address: (?P<value>.+)",
     _l("Wrong %(what)s: %(value)s is not an IP address.")),
    (_WHAT + r": not an IP network \(CIDR such as 192\.168\.1\.0/24\): (?P<value>.+)",
     _l("Wrong %(what)s: %(value)s is not an IP network (CIDR such as 192.168.1.0/24).")),
    (_WHAT + r": not a MAC address: (?P<value>.+)",
     _l("Wrong %(what)s: %(value)s is not a MAC address.")),
    (_WHAT + r": the all-zero MAC address names no device",
     _l("Wrong %(what)s: the all-zero MAC address names no device.")),
    (r"not an IP address, network or MAC address: (?P<value>.+)",
     _l("%(value)s is not an IP address, a network or a MAC address.")),
    (r"a device needs its IP address, network \(CIDR\) or MAC address",
     _l("Enter the device's IP address, network (CIDR) or MAC address.")),
    # -- schedules (resolver.policy.profiles) --------------------------------------------------------------------
    (_WHAT + r" must be a time HH:MM between 00:00 and 23:59, not (?P<value>.+)",
     _l("The %(what)s must be a time HH:MM between 00:00 and 23:59, not %(value)s.")),
    (r"days: not a day: (?P<value>.+) \(use (?P<days>.+)\)",
     _l("%(value)s is not a day of the week (use %(days)s).")),
    (r"days: a schedule needs at least one day",
     _l("A schedule needs at least one day.")),
    (r"start and end are both (?P<time>.+): a schedule needs a period",
     _l("The start and end times are both %(time)s: a schedule needs a period.")),
    (r"action block_categories needs at least one category",
     _l("To block categories, choose at least one category.")),
    (r"action block_services needs at least one service",
     _l("To block apps, choose at least one app.")),
    (r"categories only apply to action block_categories, not (?P<action>.+)",
     _l("Categories only apply when the schedule blocks categories, not to “%(action)s”.")),
    (r"services only apply to action block_services, not (?P<action>.+)",
     _l("Apps only apply when the schedule blocks apps, not to “%(action)s”.")),
    # -- profiles (resolver.policy.profiles) ---------------------------------------------------------------------
    (r"unknown preset (?P<value>.+) \(use (?P<choices>.+)\)",
     _l("There is no preset %(value)s (use %(choices)s).")),
    (r"(?P<domain>.+) is both blocked and allowed",
     _l("%(domain)s is both blocked and allowed.")),
    # -- day lists and times (resolver.policy.schedule) ----------------------------------------------------------
    (r"unknown day (?P<day>.+?) in (?P<text>.+): use .+",
     _l("Unknown day %(day)s in %(text)s: use mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, "
        "all, weekdays or weekends.")),
    (r"days must be text such as 'mon-fri', not (?P<value>.+)",
     _l("The days must be text such as 'mon-fri', not %(value)s.")),
    (r"no days given in (?P<text>.+): use .+",
     _l("No days given in %(text)s: use mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, all, "
        "weekdays or weekends.")),
    (r"bad day range (?P<range>.+?) in (?P<text>.+): write it as first-last, e\.g\. mon-fri",
     _l("The day range %(range)s in %(text)s is wrong: write it as first-last, e.g. mon-fri.")),
    (r"invalid time (?P<value>.+): expected HH:MM between 00:00 and 23:59, or 24:00 for the end of the day",
     _l("The time %(value)s is wrong: write HH:MM between 00:00 and 23:59, or 24:00 for the end of the day.")),
    (r"invalid time (?P<value>.+): the hour must be 0-23 \(24:00 is allowed only as an end\)",
     _l("The time %(value)s is wrong: the hour must be 0-23 (24:00 is allowed only as an end).")),
    (r"invalid time (?P<value>.+): the minutes must be 00-59",
     _l("The time %(value)s is wrong: the minutes must be 00-59.")),
    (r"a window needs at least one day",
     _l("A schedule needs at least one day.")),
    (r"days must be day names such as 'mon', got (?P<value>.+)",
     _l("The days must be day names such as 'mon', not %(value)s.")),
    (r"window (?P<what>start|end) must be a local datetime\.time without tzinfo, got (?P<value>.+)",
     _l("The %(what)s must be a local time of day, not %(value)s.")),
    (r"a window cannot start at 24:00 \(24:00 is allowed only as an end\); use 00:00",
     _l("A schedule cannot start at 24:00 (24:00 is allowed only as an end): use 00:00.")),
    (r"window starts and ends at (?P<time>.+): give different times \(00:00-24:00 for a whole day\)",
     _l("The schedule starts and ends at %(time)s: give different times (00:00-24:00 for a whole day).")),
    (r"unknown time zone (?P<value>.+?)(?: \(use an IANA name such as Asia/Ho_Chi_Minh\))?",
     _l("Unknown time zone %(value)s (use an IANA name such as Asia/Ho_Chi_Minh).")),
    # -- site names (resolver.base.names) ----------------------------------------------------------------------
    (r"empty name",
     _l("The site name is empty.")),
    (r"not a valid international name: (?P<value>.+?) \((?P<detail>.*)\)",
     _l("%(value)s is not a valid international site name (%(detail)s).")),
    (r"not a valid host name: (?P<value>.+)",
     _l("%(value)s is not a valid site name.")),
    # -- the store (resolver.store.sqlite) ----------------------------------------------------------------
    (r"refused by the store: (?P<detail>.+)",
     _l("Hearth could not save this: %(detail)s")),
    (r"(?P<kind>profile|device|user) (?P<name>.+) already exists",
     _l("A %(kind)s called %(name)s exists already.")),
    (r"schedule (?P<name>.+) already exists in profile (?P<profile>.+)",
     _l("Profile %(profile)s already has a schedule called %(name)s.")),
    (r"unknown (?P<kind>profile|device|schedule|temporary allow) id (?P<id>\d+)",
     _l("There is no %(kind)s number %(id)s.")),
    (r"unknown schedule (?P<name>.+) in profile (?P<profile>.+)",
     _l("Profile %(profile)s has no schedule %(name)s.")),
    (r"unknown (?P<kind>profile|device|user|API token|access request|temporary allow) (?P<name>.+)",
     _l("There is no %(kind)s %(name)s.")),
    (r"unknown (?P<kind>language|upstream choice) (?P<value>.+)",
     _l("Hearth does not offer the %(kind)s %(value)s.")),
    (r"the default profile can't be renamed",
     _l("The default profile can't be renamed.")),
    (r"the default profile can't be removed",
     _l("The default profile can't be removed.")),
    (r"profile (?P<name>.+) is used by devices (?P<devices>.+): move them to another profile first",
     _l("Profile %(name)s is used by the devices %(devices)s: move them to another profile first.")),
    (r"(?P<kind>IP address|network|MAC address) (?P<value>\S+) already belongs to device (?P<name>.+)",
     _l("The %(kind)s %(value)s already belongs to the device %(name)s.")),
    (r"a user needs a password",
     _l("A user needs a password.")),
    (r"the last admin must stay an admin",
     _l("The last admin must stay an admin.")),
    (r"the last admin can't be removed",
     _l("The last admin can't be removed.")),
    (r"which site\? the domain is empty",
     _l("Which site? The site name is empty.")),
    (r"which site\? the address is empty",
     _l("Which site? The address is empty.")),
    # -- time budgets (resolver.policy.budgets): a weekday's own minutes ------------------------------------
    (r"days (?P<weekday>mon|tue|wed|thu|fri|sat|sun): minutes must be between 0 and (?P<max>\d+) \(a whole day\), "
     r"not (?P<value>.+)",
     _l("Minutes on %(weekday)s: between 0 and %(max)s (a whole day), not %(value)s.")),
    (r"days (?P<weekday>mon|tue|wed|thu|fri|sat|sun): minutes are a whole number, not (?P<value>.+)",
     _l("Minutes on %(weekday)s: a whole number, not %(value)s.")),
    (r"days: (?P<weekday>mon|tue|wed|thu|fri|sat|sun) is given twice",
     _l("%(weekday)s is given twice in the weekdays' own minutes.")),
    # -- time budgets (resolver.policy.budgets, webui.budgets): the budget form and "more minutes" ---------
    (r"minutes: minutes must be between 0 and (?P<max>\d+) \(a whole day\), not (?P<value>.+)",
     _l("Minutes on school days: between 0 and %(max)s (a whole day), not %(value)s.")),
    (r"weekend: minutes must be between 0 and (?P<max>\d+) \(a whole day\), not (?P<value>.+)",
     _l("Minutes at the weekend: between 0 and %(max)s (a whole day), not %(value)s.")),
    (r"minutes: minutes are a whole number, not (?P<value>.+)",
     _l("Minutes on school days: a whole number, not %(value)s.")),
    (r"weekend: minutes are a whole number, not (?P<value>.+)",
     _l("Minutes at the weekend: a whole number, not %(value)s.")),
    (r"reset: use HH:MM \(00:00-23:59\), not (?P<value>.+)",
     _l("The time the day's minutes start again: use HH:MM (00:00-23:59), not %(value)s.")),
    (r"service or category: give a service id \(see `hearth services list`\), a category or all",
     _l("Choose an app, a category or all internet for the budget.")),
    (r"service or category: unknown service (?P<value>.+)",
     _l("There is no app %(value)s.")),
    (r"service or category: unknown category (?P<value>.+)",
     _l("There is no category %(value)s.")),
    (r"service or category: (?P<value>.+) is neither a service \(see `hearth services list`\) nor a category "
     r"\((?P<categories>.+)\) nor all",
     _l("%(value)s is neither an app nor a category (%(categories)s) nor all internet.")),
    (r"minutes: give the minutes a school day may use \(0-1440\)",
     _l("Give the minutes a school day may use (0-1440).")),
    (r"minutes: a whole number, not (?P<value>.+)",
     _l("The extra minutes must be a whole number, not %(value)s.")),
    (r"minutes: between 1 and (?P<max>\d+), not (?P<value>.+)",
     _l("The extra minutes must be between 1 and %(max)s, not %(value)s.")),
    (r"profile (?P<name>.+) has no budget for (?P<target>.+)",
     _l("Profile %(name)s has no time budget for %(target)s.")),
    (r"budgets: (?P<target>.+) is given twice",
     _l("%(target)s is given twice in the time budgets.")),
    (r"days: give days and minutes such as fri=90, not (?P<value>.+)",
     _l("A weekday's own minutes: give days and minutes such as fri=90, not %(value)s.")),
    (r"days: write DAYS=MINUTES, such as fri=90 or sat,sun=150, not (?P<value>.+)",
     _l("A weekday's own minutes: write DAYS=MINUTES, such as fri=90 or sat,sun=150, not %(value)s.")),
    (r"days: which day\? write DAYS=MINUTES, such as fri=90, not (?P<value>.+)",
     _l("A weekday's own minutes: which day? Write DAYS=MINUTES, such as fri=90, not %(value)s.")),
    # -- the UI's own checks (webui.actions, webui.admin.system) ------------------------------------------
    (r"minutes must be a whole number, not (?P<value>.+)",
     _l("The minutes must be a whole number, not %(value)s.")),
    (r"minutes must be between 1 and (?P<max>\d+) \(a year\), not (?P<value>.+)",
     _l("The minutes must be between 1 and %(max)s (a year), not %(value)s.")),
    (r"days must not be negative",
     _l("The number of days must not be negative.")),
    # Python's own, for a number field that holds something else
    (r"could not convert string to float: (?P<value>.+)",
     _l("%(value)s is not a number.")),
    (r"invalid literal for int\(\) with base 10: (?P<value>.+)",
     _l("%(value)s is not a number.")),
    # -- a check's message behind the field it is about (check_domain, check_domains) ---------------------
    (r"(?P<what>block|allow|domain): (?P<inner>.+)",
     _l("%(what)s: %(inner)s")),
]

TABLE: list[tuple[re.Pattern, Any]] = [(re.compile(shape, re.S), template) for shape, template in _TABLE]


def _label(word: str) -> str:
    label = FIELD_LABELS.get(word)
    return str(label) if label is not None else word


def _schedule_action(action: str) -> str:
    from .i18n import SCHEDULE_ACTION_LABELS

    label = SCHEDULE_ACTION_LABELS.get(action.strip())
    return str(label) if label is not None else action


def _is_english() -> bool:
    locale: Optional[Any] = get_locale()
    return locale is None or locale.language == "en"


def _render(message: str) -> str:
    for pattern, template in TABLE:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        values = {}
        for key, value in match.groupdict(default="").items():
            if key in _LABEL_GROUPS:
                value = _label(value)
            elif key == "action":
                value = _schedule_action(value)
            elif key == "weekday":
                from .i18n import DAY_LABELS

                value = str(DAY_LABELS.get(value, value))
            elif key == "inner":
                value = _render(value)
            values[key] = value
        text = str(template)
        try:
            out = text % values
        except (KeyError, TypeError, ValueError):     # a broken translation: the English is better than nothing
            return message
        if text.startswith(tuple(f"%({key})s" for key in _LABEL_GROUPS)):
            out = out[:1].upper() + out[1:]
        return out
    return message


def localise_error(message: str) -> str:
    """A model/UI ``ValueError`` message (English) in the language of the request; unchanged in
    English, outside a request, or when no shape in the table matches it."""
    message = str(message)
    try:
        if _is_english():
            return message
    except Exception:           # no request or app context
        return message
    return _render(message)
