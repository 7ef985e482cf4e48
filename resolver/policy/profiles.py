"""The per-device policy model: profiles, devices, schedules, temporary allows, seen clients, presets.

Plain dataclasses and no SQL: the store (:mod:`resolver.store.protocol`) keeps them, the engine, the CLI
and the web UI read and build them. Every check and normalisation lives here, in the
constructors: an object that exists is valid, and its fields are in their one normalised
form (so two objects meaning the same thing compare equal). Invalid input raises
``ValueError`` with a one-line message fit to show to a parent.

Names (of profiles, devices and schedules) are 1–40 characters: letters, digits, spaces,
``-`` and ``_``; leading and trailing spaces are dropped. The store keeps them unique
ignoring (ASCII) case.
"""
from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional

from resolver.base.names import normalise_name

# The standard categories the bundled lists and the provider feed use (any other word works too).
CATEGORIES: tuple[str, ...] = ("adult", "gambling", "violence", "drugs", "dating", "social", "games", "video",
                               "ads", "trackers", "malware", "phishing", "scam", "bypass")
ALL_CATEGORIES = "*"   # in a profile's categories: every category the lists provide
DEFAULT_PROFILE_NAME = "default"
YOUTUBE_MODES: tuple[str, ...] = ("strict", "moderate", "off")
BLOCK_MODES: tuple[str, ...] = ("null", "nxdomain", "page")
DEVICE_KINDS: tuple[str, ...] = ("ip", "cidr", "mac")
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE_ACTIONS: tuple[str, ...] = ("block_all", "block_categories", "block_services")
NAME_MAX = 40

_NAME = re.compile(r"[\w\- ]+")                      # \w: Unicode letters and digits, and "_"
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]{0,39}")      # a category or service id
_HHMM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
_HEX = re.compile(r"[0-9a-f]+")
_MAC_LIKE = re.compile(r"[0-9a-f]{2}([:-][0-9a-f]{2}){5}")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# ---------------------------------------------------------------------------------------------
# the checks (the one place)

def check_name(value: Any, what: str = "profile") -> str:
    """A profile/device/schedule name, NFC-normalised and stripped; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{what} name must be text, not {type(value).__name__}")
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise ValueError(f"{what} name is empty")
    if len(name) > NAME_MAX:
        raise ValueError(f"{what} name is longer than {NAME_MAX} characters: {name!r}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} name may only hold letters, digits, spaces, '-' and '_': {name!r}")
    return name


def _text_tuple(value: Any, what: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{what} must be a list, not {type(value).__name__}")
    return tuple(value)


def check_words(value: Any, what: str = "categories", *, allow_all: bool = False) -> tuple[str, ...]:
    """Category names or service ids: lower case, without duplicates, standard categories first in
    their usual order, then the others alphabetically. With ``allow_all``, ``"*"`` (all categories)
    absorbs the rest."""
    words = set()
    for item in _text_tuple(value, what):
        word = str(item).strip().lower()
        if not _WORD.fullmatch(word) and not (allow_all and word == ALL_CATEGORIES):
            raise ValueError(f"{what}: not a valid name: {item!r} (lower-case letters, digits, '-', '_')")
        words.add(word)
    if ALL_CATEGORIES in words:
        return (ALL_CATEGORIES,)
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    return tuple(sorted(words, key=lambda w: (rank.get(w, len(rank)), w)))


def check_domains(value: Any, what: str = "block") -> tuple[str, ...]:
    """Custom domains (``example.com``) or wildcards (``*.example.com``), normalised, sorted, unique."""
    out = set()
    for item in _text_tuple(value, what):
        try:
            out.add(normalise_name(item, wildcard=True))
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    return tuple(sorted(out))


def check_domain(value: Any, what: str = "domain") -> str:
    try:
        return normalise_name(value, wildcard=True)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def check_choice(value: Any, choices: tuple[str, ...], what: str) -> str:
    text = str(value).strip().lower() if isinstance(value, str) else value
    if text not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, not {value!r}")
    return text


def check_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, not {value!r}")
    return value


def check_time(value: Any, what: str = "time", *, optional: bool = False) -> Optional[float]:
    """A UNIX time (finite, not negative)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a UNIX time in seconds, not {value!r}")
    return float(value)


def check_ip(value: Any, what: str = "address") -> str:
    """An IP address in its short form; an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, as a
    dual-stack socket reports IPv4 clients) becomes the IPv4 address."""
    try:
        ip = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValueError(f"{what}: not an IP address: {value!r}") from None
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def check_cidr(value: Any, what: str = "network") -> str:
    try:
        return str(ipaddress.ip_network(str(value).strip(), strict=False))
    except ValueError:
        raise ValueError(f"{what}: not an IP network (CIDR such as 192.168.1.0/24): {value!r}") from None


def check_mac(value: Any, what: str = "MAC address") -> str:
    """``aa:bb:cc:dd:ee:ff`` from ``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff``, ``aabbccddeeff`` or ``a:b:c:d:e:f``."""
    text = str(value).strip().lower()
    if ":" in text or "-" in text:
        parts = re.split(r"[:\-]", text)
        ok = len(parts) == 6 and all(1 <= len(p) <= 2 and _HEX.fullmatch(p) for p in parts)
        digits = "".join(p.rjust(2, "0") for p in parts) if ok else ""
    elif "." in text:
        parts = text.split(".")
        ok = len(parts) == 3 and all(len(p) == 4 and _HEX.fullmatch(p) for p in parts)
        digits = "".join(parts) if ok else ""
    else:
        digits = text if len(text) == 12 and _HEX.fullmatch(text) else ""
    if not digits:
        raise ValueError(f"{what}: not a MAC address: {value!r}")
    if digits == "000000000000":
        raise ValueError(f"{what}: the all-zero MAC address names no device")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def check_device_value(kind: str, value: Any) -> str:
    if kind == "ip":
        return check_ip(value, "device address")
    if kind == "cidr":
        return check_cidr(value, "device network")
    return check_mac(value, "device MAC address")


def identify(value: Any) -> tuple[str, str]:
    """Guess a device's kind from its identity: ``("mac"|"ip"|"cidr", normalised value)``."""
    text = str(value).strip()
    for kind in ("ip", "cidr", "mac"):
        if kind == "cidr" and "/" not in text:
            continue
        try:
            return kind, check_device_value(kind, text)
        except ValueError:
            pass
    raise ValueError(f"not an IP address, network or MAC address: {value!r}")


def check_hhmm(value: Any, what: str) -> str:
    match = _HHMM.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{what} must be a time HH:MM between 00:00 and 23:59, not {value!r}")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def check_days(value: Any) -> tuple[str, ...]:
    days = set()
    for item in _text_tuple(value, "days"):
        day = str(item).strip().lower()
        if day in _FULL_DAYS:
            day = day[:3]
        if day not in DAYS:
            raise ValueError(f"days: not a day: {item!r} (use {', '.join(DAYS)})")
        days.add(day)
    if not days:
        raise ValueError("days: a schedule needs at least one day")
    return tuple(d for d in DAYS if d in days)


def check_hostname(value: Any) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > 253:
        raise ValueError(f"hostname is longer than 253 characters: {text[:40]!r}…")
    return text


def _check_id(value: Any, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} id must be an integer, not {value!r}")
    return value


def _set(obj: Any, **fields: Any) -> None:
    for key, value in fields.items():
        object.__setattr__(obj, key, value)


# ---------------------------------------------------------------------------------------------
# the model

@dataclass(frozen=True)
class Profile:
    """What one kind of user may reach. ``categories`` and ``services`` are what is *blocked*;
    ``("*",)`` as categories blocks every category the lists provide. ``block``/``allow`` are the
    parent's own domains or ``*.`` wildcards (allow wins over the lists). ``bypass_prevention``
    (the DoH canary, Private Relay and DDR answers) is on unless turned off. ``id`` and ``updated``
    are set by the store."""

    name: str
    preset: str = ""
    categories: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    safe_search: bool = False
    youtube: str = "off"
    block_mode: str = "null"
    block: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    bypass_prevention: bool = True   # on unless a parent turns it off (a profile made without a preset too)
    id: Optional[int] = None
    updated: float = 0.0

    def __post_init__(self) -> None:
        preset = "" if self.preset is None else str(self.preset).strip().lower()
        if preset and preset not in PRESET_NAMES:
            raise ValueError(f"unknown preset {self.preset!r} (use {', '.join(PRESET_NAMES)})")
        block = check_domains(self.block, "block")
        allow = check_domains(self.allow, "allow")
        both = sorted(set(block) & set(allow))
        if both:
            raise ValueError(f"{both[0]!r} is both blocked and allowed")
        _set(self, name=check_name(self.name, "profile"), preset=preset,
             categories=check_words(self.categories, "categories", allow_all=True),
             services=check_words(self.services, "services"),
             safe_search=check_bool(self.safe_search, "safe_search"),
             youtube=check_choice(self.youtube, YOUTUBE_MODES, "youtube"),
             block_mode=check_choice(self.block_mode, BLOCK_MODES, "block_mode"),
             block=block, allow=allow,
             bypass_prevention=check_bool(self.bypass_prevention, "bypass_prevention"),
             id=_check_id(self.id, "profile"), updated=check_time(self.updated, "updated"))

    @property
    def blocks_all_categories(self) -> bool:
        return self.categories == (ALL_CATEGORIES,)


@dataclass(frozen=True)
class Device:
    """A device on the network, known by its IP address, a network (CIDR) or its MAC address.
    A CIDR may contain another device's address: the most specific match wins. ``paused_until``
    (UNIX time) pauses the device's internet until then; ``first_seen``/``last_seen`` are kept by
    the store from :meth:`Store.touch_seen` (0: never seen)."""

    name: str
    kind: str
    value: str
    profile: str = DEFAULT_PROFILE_NAME
    hostname: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    paused_until: Optional[float] = None
    id: Optional[int] = None

    def __post_init__(self) -> None:
        kind = check_choice(self.kind, DEVICE_KINDS, "device kind")
        _set(self, name=check_name(self.name, "device"), kind=kind, value=check_device_value(kind, self.value),
             profile=check_name(self.profile, "profile"), hostname=check_hostname(self.hostname),
             first_seen=check_time(self.first_seen, "first_seen"), last_seen=check_time(self.last_seen, "last_seen"),
             paused_until=check_time(self.paused_until, "paused_until", optional=True),
             id=_check_id(self.id, "device"))

    def paused(self, now: float) -> bool:
        return self.paused_until is not None and self.paused_until > now


@dataclass(frozen=True)
class Schedule:
    """A recurring period during which a profile blocks more: everything (``block_all``, e.g.
    bedtime), some ``categories`` or some ``services``. ``days`` name the day a period *starts*
    on; an ``end`` earlier than ``start`` crosses midnight and ends the next day."""

    profile: str
    name: str
    days: tuple[str, ...]
    start: str
    end: str
    action: str = "block_all"
    categories: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    enabled: bool = True
    id: Optional[int] = None

    def __post_init__(self) -> None:
        start, end = check_hhmm(self.start, "start"), check_hhmm(self.end, "end")
        if start == end:
            raise ValueError(f"start and end are both {start}: a schedule needs a period")
        action = check_choice(self.action, SCHEDULE_ACTIONS, "action")
        categories = check_words(self.categories, "categories", allow_all=True)
        services = check_words(self.services, "services")
        if action == "block_categories" and not categories:
            raise ValueError("action block_categories needs at least one category")
        if action == "block_services" and not services:
            raise ValueError("action block_services needs at least one service")
        if categories and action != "block_categories":
            raise ValueError(f"categories only apply to action block_categories, not {action}")
        if services and action != "block_services":
            raise ValueError(f"services only apply to action block_services, not {action}")
        _set(self, profile=check_name(self.profile, "profile"), name=check_name(self.name, "schedule"),
             days=check_days(self.days), start=start, end=end, action=action, categories=categories,
             services=services, enabled=check_bool(self.enabled, "enabled"), id=_check_id(self.id, "schedule"))

    def covers(self, weekday: int, minute: int) -> bool:
        """Whether the period includes local ``weekday`` (0 = Monday) at ``minute`` after midnight
        (ignores ``enabled``). A period crossing midnight belongs to the day it starts on."""
        start = int(self.start[:2]) * 60 + int(self.start[3:])
        end = int(self.end[:2]) * 60 + int(self.end[3:])
        if start < end:
            return DAYS[weekday % 7] in self.days and start <= minute < end
        if minute >= start:
            return DAYS[weekday % 7] in self.days
        return minute < end and DAYS[(weekday - 1) % 7] in self.days


@dataclass(frozen=True)
class TempAllow:
    """``domain`` (or a ``*.`` wildcard) allowed for one device until ``until`` (UNIX time)."""

    device: str
    domain: str
    until: float
    id: Optional[int] = None

    def __post_init__(self) -> None:
        _set(self, device=check_name(self.device, "device"), domain=check_domain(self.domain),
             until=check_time(self.until, "until"), id=_check_id(self.id, "temporary allow"))


@dataclass(frozen=True)
class SeenClient:
    """A client the engine has answered (for "newly seen devices" in the UI). ``address`` is its IP
    address, or, for a device behind a router that names it by MAC (dnsmasq --add-mac), that MAC."""

    address: str
    mac: str = ""
    hostname: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0

    def __post_init__(self) -> None:
        address = str(self.address).strip()
        if _MAC_LIKE.fullmatch(address.lower()):
            address = check_mac(address, "client MAC address")
        else:
            address = check_ip(address, "client address")
        _set(self, address=address,
             mac=check_mac(self.mac, "client MAC address") if self.mac else "",
             hostname=check_hostname(self.hostname), first_seen=check_time(self.first_seen, "first_seen"),
             last_seen=check_time(self.last_seen, "last_seen"))


# ---------------------------------------------------------------------------------------------
# presets

_ALWAYS = ("malware", "phishing", "scam")   # what no preset lets through

# The names must exist before Profile() checks ``preset`` against them.
PRESET_NAMES: tuple[str, ...] = ("young-child", "child", "teen", "adult", "guest", "school-pupil",
                                 DEFAULT_PROFILE_NAME)


def _preset(name: str, categories: tuple[str, ...], safe_search: bool, youtube: str,
            bypass_prevention: bool = True) -> Profile:
    return Profile(name=name, preset=name, categories=categories, safe_search=safe_search, youtube=youtube,
                   bypass_prevention=bypass_prevention)


PRESETS: dict[str, Profile] = {
    # Up to 8: a small walled garden. Everything age-inappropriate, plus social networks, games,
    # video sites and ads (young children click ads and cannot tell them from content).
    "young-child": _preset("young-child", ("adult", "gambling", "violence", "drugs", "dating", "social", "games",
                                           "video", "ads", "trackers", *_ALWAYS, "bypass"), True, "strict"),
    # 9-12: games and video become part of school and friendships; social networks stay closed
    # (most require 13+) and ads and trackers stay blocked.
    "child": _preset("child", ("adult", "gambling", "violence", "drugs", "dating", "social", "ads", "trackers",
                               *_ALWAYS, "bypass"), True, "strict"),
    # 13-17: social, games, video and violent news/fiction open; what is illegal or harmful for
    # minors (adult, gambling, drugs, dating) stays blocked; YouTube moderate rather than strict.
    "teen": _preset("teen", ("adult", "gambling", "drugs", "dating", *_ALWAYS, "bypass"), True, "moderate"),
    # Grown-ups: protection only (malware, phishing, scams); no content filtering, no bypass checks.
    "adult": _preset("adult", _ALWAYS, False, "off", bypass_prevention=False),
    # Visitors' phones: unknown ages, so no adult content and safe search on; ads blocked as a
    # courtesy; everything else open so guests' apps keep working.
    "guest": _preset("guest", ("adult", "ads", *_ALWAYS), True, "moderate"),
    # School devices: learning first. Like child, and also games and video streaming (lesson videos
    # come back through the profile's allow list or a schedule); ads and trackers are left to the school.
    "school-pupil": _preset("school-pupil", ("adult", "gambling", "violence", "drugs", "dating", "games", "social",
                                             "video", *_ALWAYS, "bypass"), True, "strict"),
}

# The profile every store starts with and every device nobody has set up gets. Such a device may be a
# child's new tablet or a parent's phone, so it gets what harms minors and what harms anyone (adult,
# gambling, violence, drugs, dating, scams, malware), ads and trackers, and bypass prevention - but not
# social networks, games or video, which are about time rather than harm: a household's grown-up phones
# keep YouTube and Facebook on day one. (Until 2026-12 it was "*", every category the lists provide;
# since the bundled lists cover social, games and video too, that blocked them for every unknown device.)
# It can be edited but not removed or renamed. Its own bypass_prevention switch is off: the engine turns
# bypass prevention on for it while blocking.bypass_prevention (the appliance's setting, on by default) says so.
DEFAULT_CATEGORIES: tuple[str, ...] = ("adult", "gambling", "violence", "drugs", "dating", "ads", "trackers",
                                       *_ALWAYS, "bypass")
DEFAULT_PROFILE = Profile(name=DEFAULT_PROFILE_NAME, preset=DEFAULT_PROFILE_NAME, categories=DEFAULT_CATEGORIES,
                          bypass_prevention=False)


def profile_from_preset(name: str, preset: str) -> Profile:
    """A new profile called ``name`` with the settings of ``preset`` (a key of PRESETS, or "default")."""
    key = str(preset).strip().lower()
    template = DEFAULT_PROFILE if key == DEFAULT_PROFILE_NAME else PRESETS.get(key)
    if template is None:
        raise ValueError(f"unknown preset {preset!r} (use {', '.join(PRESET_NAMES)})")
    profile = replace(template, name=name)
    if key == DEFAULT_PROFILE_NAME and profile.name.lower() != DEFAULT_PROFILE_NAME:
        profile = replace(profile, bypass_prevention=True)   # a copy has its own switch, on like every profile's
    return profile
