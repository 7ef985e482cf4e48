"""Login throttling that a child cannot turn against the parent.

Two counters of failed sign-ins, kept in the store (a restart does not reset them):

* per **source address** (an IPv6 address counts as its /64): after ``web.login_max_failures``
  failures that address waits ``web.login_lockout``, and each further failure doubles the wait
  (at most a day). This is what stops a tablet guessing the admin's password; it does not touch
  anyone else, so the parent on another device still gets in.
* per **account**, over every address: only ``ACCOUNT_FACTOR`` times as many failures (guessing
  from many addresses, e.g. a device that keeps changing its address) slow the account down, with
  the same growing wait, and then only for browsers that never signed in to that account: a browser
  that did carries a signed "known device" cookie and is judged by its address alone.

A success resets both counters for that name and address. ``X-Forwarded-For`` is not trusted: the
address is the TCP peer's. Failures and lock-outs go to the audit log (who: the address).
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Optional

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from . import core

FAILURE_WINDOW = 86400.0        # failures older than this are forgotten
MAX_DELAY = 86400.0             # the longest wait
ACCOUNT_FACTOR = 4              # account-wide failures (all addresses) before the account slows down
DEVICE_COOKIE = "hearth_device"
DEVICE_COOKIE_AGE = 400 * 86400
DEVICE_NAMES_MAX = 8


@dataclass(frozen=True)
class Lock:
    until: float                # when sign-in may be tried again
    scope: str                  # "address" or "account"


def address_key(address: str) -> str:
    """The address as counted: IPv4 as is, IPv6 by its /64 (one device can use a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _user_key(name: str) -> str:
    return "user:" + name.strip().lower()[:60]


def _delay(failures: int, threshold: int, base: float) -> float:
    if failures < threshold:
        return 0.0
    return min(MAX_DELAY, base * 2.0 ** min(failures - threshold, 20))


def lock_for(name: str, address: str, known_device: bool, now: Optional[float] = None) -> Optional[Lock]:
    """The lock keeping this sign-in out now, or None."""
    now = time.time() if now is None else now
    cfg = core.config().web
    store = core.store()
    failures, last = store.login_failures("ip:" + address_key(address), now - FAILURE_WINDOW)
    until = last + _delay(failures, cfg.login_max_failures, cfg.login_lockout)
    if until > now:
        return Lock(until, "address")
    if not known_device and name.strip():
        failures, last = store.login_failures(_user_key(name), now - FAILURE_WINDOW)
        until = last + _delay(failures, cfg.login_max_failures * ACCOUNT_FACTOR, cfg.login_lockout)
        if until > now:
            return Lock(until, "account")
    return None


def record(name: str, address: str, ok: bool, now: Optional[float] = None) -> None:
    """Count one attempt; audit a failure, and the lock-out it starts."""
    now = time.time() if now is None else now
    store = core.store()
    addr = address_key(address)
    store.add_login_attempt("ip:" + addr, ok, now)
    if name.strip():
        store.add_login_attempt(_user_key(name), ok, now)
    if ok:
        store.purge_login_attempts(now - 7 * 86400)
        return
    tried = name.strip()[:60]
    failures = store.login_failures("ip:" + addr, now - FAILURE_WINDOW)[0]
    _audit(address, "login.failed", tried, {"address": address, "failures": failures}, now)
    lock = lock_for(name, address, known_device=False, now=now)
    if lock is not None:
        _audit(address, "login.locked", tried, {"address": address, "scope": lock.scope,
                                                "until": round(lock.until)}, now)


def _audit(who: str, action: str, target: str, after: dict, now: float) -> None:
    try:
        core.store().add_audit(who, action, target, None, after, now=now)
    except Exception:
        core.log.exception("audit log write failed for %s", action)


# -- the known-device cookie --------------------------------------------------------------------------

def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="hearth-known-device")


def known_names() -> list[str]:
    """The account names this browser has signed in to (from its signed cookie)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        names = _serializer().loads(raw, max_age=DEVICE_COOKIE_AGE)
    except BadSignature:
        return []
    return [str(n) for n in names][:DEVICE_NAMES_MAX] if isinstance(names, list) else []


def is_known_device(name: str) -> bool:
    return name.strip().lower() in known_names()


def remember_device(resp: Any, name: str) -> Any:
    """Mark this browser as one that signed in to ``name`` (after a successful sign-in)."""
    names = [name.strip().lower()] + [n for n in known_names() if n != name.strip().lower()]
    resp.set_cookie(DEVICE_COOKIE, _serializer().dumps(names[:DEVICE_NAMES_MAX]), max_age=DEVICE_COOKIE_AGE,
                    httponly=True, samesite="Lax", secure=core.cookies_secure())
    return resp


def recent_failures(days: float = 7, limit: int = 8) -> list[Any]:
    """Failed sign-ins and lock-outs of the last ``days``, newest first (for the dashboard)."""
    since = time.time() - days * 86400
    found = []
    for entry in core.store().list_audit(300):
        if entry.ts < since:
            break
        if entry.action in ("login.failed", "login.locked"):
            found.append(entry)
            if len(found) >= limit:
                break
    return found
