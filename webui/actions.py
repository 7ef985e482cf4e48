"""Every change the UI and the API make, in one place: checked by the model, written through the store,
recorded in the audit log (who, what, before, after) and nudged to the engine.

Views turn form fields or JSON into the arguments below; the checks (and their one-line
``ValueError`` messages) are the model's (:mod:`resolver.policy.profiles`).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import time
import weakref
from typing import Any, Iterable, Optional

from resolver.policy.profiles import (DEFAULT_PROFILE_NAME, Device, Profile, Schedule, TempAllow,
                               check_domain, identify)

from . import budgets, core

MAX_MINUTES = 366 * 24 * 60
DECISIONS = {"30m": 30 * 60, "day": 24 * 3600, "minutes": None, "always": None, "decline": None, "more": None}


# -- plain dicts (for the audit log and the API) -------------------------------------------------------

def as_dict(obj: Any) -> Any:
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(obj).items()}
    if hasattr(obj, "_asdict"):
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in obj._asdict().items()}
    return obj


def user_dict(user: Any) -> dict:
    return {"id": user.id, "name": user.name, "role": user.role, "language": user.language,
            "created": user.created, "last_login": user.last_login}


def _changed(before: Any, after: Any) -> None:
    """After a policy change: the engine reloads now (it polls the store too)."""
    core.nudge()


# -- profiles ----------------------------------------------------------------------------------------

def add_profile(profile: Profile) -> Profile:
    stored = core.store().add_profile(profile)
    core.audit("profile.add", stored.name, None, as_dict(stored))
    _changed(None, stored)
    return stored


def update_profile(current: str, **changes: Any) -> Profile:
    """Change the profile named ``current`` (``changes`` may rename it)."""
    store = core.store()
    before = store.get_profile(current)
    if before is None:
        raise ValueError(f"unknown profile {current!r}")
    after = dataclasses.replace(before, **changes)
    stored = store.update_profile(after)
    core.audit("profile.update", stored.name, as_dict(before), as_dict(stored))
    _changed(before, stored)
    return stored


def remove_profile(name: str) -> None:
    store = core.store()
    before = store.get_profile(name)
    store.remove_profile(name)
    core.audit("profile.remove", name, as_dict(before), None)
    _changed(before, None)


def profile_rule(profile: str, domain: str, action: str) -> Profile:
    """Add ``domain`` to the profile's allow (``action`` "allow") or block list, taking it off the other."""
    domain = check_domain(domain)
    p = core.store().get_profile(profile)
    if p is None:
        raise ValueError(f"unknown profile {profile!r}")
    if action == "allow":
        return update_profile(p.name, allow=tuple(p.allow) + (domain,), block=[d for d in p.block if d != domain])
    if action == "block":
        return update_profile(p.name, block=tuple(p.block) + (domain,), allow=[d for d in p.allow if d != domain])
    if action == "remove":
        return update_profile(p.name, block=[d for d in p.block if d != domain],
                              allow=[d for d in p.allow if d != domain])
    raise ValueError(f"action must be allow, block or remove, not {action!r}")


def profile_from_fields(fields: dict, base: Optional[Profile] = None) -> dict:
    """Profile keyword arguments from a form/JSON dict (only the keys present)."""
    out: dict = {}
    for key in ("name", "youtube", "block_mode", "preset"):
        if key in fields:
            out[key] = fields[key]
    for key in ("categories", "services", "block", "allow"):
        if key in fields:
            value = fields[key]
            out[key] = _lines(value) if isinstance(value, str) else list(value or ())
    for key in ("safe_search", "bypass_prevention"):
        if key in fields:
            out[key] = _bool(fields[key], key)
    if base is not None and base.name.lower() == DEFAULT_PROFILE_NAME and "name" in out:
        out.pop("name")
    return out


def _lines(text: str) -> list[str]:
    return [w.strip() for w in text.replace(",", "\n").splitlines() if w.strip()]


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("on", "true", "1", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("off", "false", "0", "no", ""):
        return False
    raise ValueError(f"{what} must be true or false, not {value!r}")


# -- devices -----------------------------------------------------------------------------------------

def device_from_fields(fields: dict, base: Optional[Device] = None) -> Device:
    name = fields.get("name", base.name if base else "")
    if "identity" in fields and str(fields["identity"]).strip():
        kind, value = identify(fields["identity"])
    elif "kind" in fields and "value" in fields:
        kind, value = fields["kind"], fields["value"]
    elif base is not None:
        kind, value = base.kind, base.value
    else:
        raise ValueError("a device needs its IP address, network (CIDR) or MAC address")
    profile = fields.get("profile") or (base.profile if base else DEFAULT_PROFILE_NAME)
    if base is None:
        return Device(name, kind, value, profile, hostname=str(fields.get("hostname") or ""))
    return dataclasses.replace(base, name=name, kind=kind, value=value, profile=profile)


def add_device(device: Device) -> Device:
    stored = core.store().add_device(device)
    core.audit("device.add", stored.name, None, as_dict(stored))
    _changed(None, stored)
    return stored


def update_device(name: str, fields: dict) -> Device:
    store = core.store()
    before = store.get_device(name)
    if before is None:
        raise ValueError(f"unknown device {name!r}")
    stored = store.update_device(device_from_fields(fields, before))
    core.audit("device.update", stored.name, as_dict(before), as_dict(stored))
    _changed(before, stored)
    return stored


def remove_device(name: str) -> None:
    store = core.store()
    before = store.get_device(name)
    store.remove_device(name)
    core.audit("device.remove", name, as_dict(before), None)
    _changed(before, None)


def _minutes(value: Any) -> int:
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"minutes must be a whole number, not {value!r}") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be between 1 and {MAX_MINUTES} (a year), not {minutes}")
    return minutes


def pause_device(name: str, minutes: Any) -> Device:
    """Pause for ``minutes`` (None: resume)."""
    store = core.store()
    before = store.get_device(name)
    if before is None:
        raise ValueError(f"unknown device {name!r}")
    until = None if minutes in (None, "", "resume") else time.time() + 60 * _minutes(minutes)
    store.set_pause(before.name, until)
    core.audit("device.pause" if until else "device.resume", before.name, {"paused_until": before.paused_until},
               {"paused_until": until})
    _changed(before, until)
    return store.get_device(before.name)


def allow_for_device(device: str, domain: str, minutes: Any) -> TempAllow:
    allow = TempAllow(device, domain, time.time() + 60 * _minutes(minutes))
    stored = core.store().add_temp_allow(allow)
    core.audit("allow.add", f"{stored.device}: {stored.domain}", None, as_dict(stored))
    _changed(None, stored)
    return stored


def remove_temp_allow(allow_id: int) -> None:
    store = core.store()
    before = [a for a in store.list_temp_allows(time.time()) if a.id == allow_id]
    store.remove_temp_allow(allow_id)
    core.audit("allow.remove", f"{before[0].device}: {before[0].domain}" if before else str(allow_id),
               as_dict(before[0]) if before else None, None)
    _changed(before, None)


# -- schedules ---------------------------------------------------------------------------------------

def schedule_from_fields(fields: dict, base: Optional[Schedule] = None) -> Schedule:
    def get(key: str, default: Any) -> Any:
        return fields[key] if key in fields else default

    action = get("action", base.action if base else "block_all")
    days = get("days", base.days if base else ())
    days = _lines(days) if isinstance(days, str) else list(days)
    categories = get("categories", base.categories if base else ())
    services = get("services", base.services if base else ())
    categories = _lines(categories) if isinstance(categories, str) else list(categories)
    services = _lines(services) if isinstance(services, str) else list(services)
    if action != "block_categories":
        categories = []
    if action != "block_services":
        services = []
    return Schedule(profile=get("profile", base.profile if base else ""), name=get("name", base.name if base else ""),
                    days=days, start=get("start", base.start if base else ""), end=get("end", base.end if base else ""),
                    action=action, categories=categories, services=services,
                    enabled=_bool(get("enabled", base.enabled if base else True), "enabled"),
                    id=base.id if base else None)


def add_schedule(schedule: Schedule) -> Schedule:
    stored = core.store().add_schedule(schedule)
    core.audit("schedule.add", f"{stored.profile}: {stored.name}", None, as_dict(stored))
    _changed(None, stored)
    return stored


def find_schedule(profile: str, name: str) -> Schedule:
    for s in core.store().list_schedules(profile):
        if s.name.lower() == name.strip().lower():
            return s
    raise ValueError(f"unknown schedule {name!r} in profile {profile!r}")


def update_schedule(profile: str, name: str, fields: dict) -> Schedule:
    before = find_schedule(profile, name)
    stored = core.store().update_schedule(schedule_from_fields(fields, before))
    core.audit("schedule.update", f"{stored.profile}: {stored.name}", as_dict(before), as_dict(stored))
    _changed(before, stored)
    return stored


def remove_schedule(profile: str, name: str) -> None:
    before = find_schedule(profile, name)
    core.store().remove_schedule(before.profile, before.name)
    core.audit("schedule.remove", f"{before.profile}: {before.name}", as_dict(before), None)
    _changed(before, None)


# -- clients and devices -----------------------------------------------------------------------------

def device_for_client(address: str) -> Optional[Device]:
    """The device a client address belongs to, as the engine decides it: an IP device, else the
    device of the MAC last seen at that address, else the narrowest network containing it."""
    return devices_for_clients([address])[address]


_DEVICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # store -> (policy version, its devices)


def devices_now() -> list[Device]:
    """Every device, read from the store again only when its policy version has moved (every device change
    moves it). A campus has thousands of devices, and reading one costs tens of µs (each is checked): the query
    log page would read them all twice per view. Hostnames and last-seen times may lag: use it for names,
    identities and profiles only."""
    store = core.store()
    version = store.policy_version()
    known = _DEVICES.get(store)
    if known is not None and known[0] == version:
        return known[1]
    devices = store.list_devices()   # a change landing meanwhile moves the version again: re-read next time
    _DEVICES[store] = (version, devices)
    return devices


def devices_for_clients(addresses: Iterable[str]) -> dict[str, Optional[Device]]:
    """:func:`device_for_client` of many addresses. Only the devices that may match them are read (by their IPs,
    by the MACs seen at them, the networks), never all of them: a campus page names a few clients among
    thousands of devices, and the answer is as fresh as the store."""
    from resolver.policy.clients import ClientDirectory

    store = core.store()
    wanted = set(addresses)
    ips: dict[str, str] = {}
    for address in wanted:
        try:
            ips[address] = str(ipaddress.ip_address(address))
        except ValueError:  # a device behind a router that names it by MAC: the query log says its MAC
            pass
    macs = {a: a.lower() for a in wanted if a not in ips}
    values = sorted(set(ips.values()) | set(macs.values()))
    known: dict[tuple[str, str], Device] = {}
    for d in store.find_devices(values=values, limit=2 * len(values)) if values else ():
        known.setdefault((d.kind, d.value), d)
    out: dict[str, Optional[Device]] = {a: known.get(("mac", mac)) for a, mac in macs.items()}
    left: dict[str, str] = {}
    for address, ip in ips.items():
        out[address] = known.get(("ip", ip))
        if out[address] is None:
            left[address] = ip
    if left and store.count_devices(kind="mac"):
        seen: dict[str, set[str]] = {}
        for s in store.list_seen(2000):
            if s.mac:
                seen.setdefault(s.address, set()).add(s.mac)
        asked = sorted({m for ip in left.values() for m in seen.get(ip, ())})
        # by name: of two MAC devices seen at one address, the first by name wins (as in the device list)
        rank = {d.value: (i, d) for i, d in enumerate(store.find_devices(values=asked, kind="mac",
                                                                         limit=len(asked)))} if asked else {}
        for address, ip in list(left.items()):
            mine = [rank[m] for m in seen.get(ip, ()) if m in rank]
            if mine:
                out[address] = min(mine, key=lambda r: r[0])[1]
                del left[address]
    if left:
        networks = ClientDirectory(store.find_devices(kind="cidr", limit=store.count_devices(kind="cidr")))
        for address, ip in left.items():
            out[address] = networks.profile_for(ip)[0]   # the longest network containing it, or None
    return out


def clients_of(device: Device) -> list[str]:
    """The client addresses that belong to a device (for its query log and report)."""
    from resolver.ops.usage_report import device_clients

    return device_clients(core.store(), device)


def device_names(addresses: Iterable[str]) -> dict[str, str]:
    """address → device name, for the addresses that belong to a device."""
    return {a: d.name for a, d in devices_for_clients(addresses).items() if d is not None}


def _device_for_request(address: str, profile: str) -> Device:
    """The device of a client asking for access; a device is added for an unknown client (a temporary
    allow belongs to a device), with the profile it has now."""
    d = device_for_client(address)
    if d is not None:
        return d
    name = ("Device " + address.replace(":", "-").replace(".", "-"))[:40].strip("-")
    existing = core.store().get_device(name)
    if existing is not None:
        return existing
    return add_device(Device(name, "ip", address, profile or DEFAULT_PROFILE_NAME))


# -- access requests ---------------------------------------------------------------------------------

def decide_request(request_id: int, decision: str, domain: Optional[str] = None, minutes: Any = None) -> Any:
    """Approve for 30 minutes ("30m"), a day ("day"), ``minutes`` minutes ("minutes": 1 to a year) or
    always ("always": added to the profile's allow list), or "decline". ``domain`` may widen the
    approval (e.g. ``*.example.com``). A request from a "time budget used up" page approved with "more"
    (15 minutes) or "minutes" adds those minutes to today's budget instead of allowing the name."""
    store = core.store()
    req = store.get_access_request(request_id)
    if req is None:
        raise ValueError(f"unknown access request {request_id!r}")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    asking = device_for_client(req.client)
    budget = budgets.request_budget(req, asking.profile if asking is not None else None)   # a budget page's ask
    if budget is not None and decision in ("more", "minutes"):
        n = budgets.EXTRA_MINUTES if decision == "more" else minutes
        added = budgets.add_minutes(*budget, n)["added"]
        done = store.decide_access_request(req.id, "approved", f"+{added}m", core.actor(),
                                           until=time.time() + added * 60)
        core.audit("request.approve", f"{req.client}: {req.domain}", as_dict(req), as_dict(done))
        return done
    if decision == "more":
        raise ValueError("decision more: the request is not about a time budget")
    seconds = 60 * _minutes(minutes) if decision == "minutes" else DECISIONS[decision]
    target = check_domain(domain or req.domain)
    until = None
    if decision == "decline":
        done = store.decide_access_request(req.id, "declined", "declined", core.actor())
    elif decision == "always":
        profile = req.profile or DEFAULT_PROFILE_NAME
        device = device_for_client(req.client)
        if device is not None:
            profile = device.profile
        if store.get_profile(profile) is None:
            profile = DEFAULT_PROFILE_NAME
        p = store.get_profile(profile)
        if target not in p.allow:
            profile_rule(p.name, target, "allow")
        done = store.decide_access_request(req.id, "approved", "always", core.actor())
    else:
        device = _device_for_request(req.client, req.profile)
        until = time.time() + seconds
        allow_for_device(device.name, target, seconds // 60)
        label = f"{seconds // 60}m" if decision == "minutes" else decision
        done = store.decide_access_request(req.id, "approved", label, core.actor(), until=until)
    core.audit(f"request.{'decline' if decision == 'decline' else 'approve'}", f"{req.client}: {req.domain}",
               as_dict(req), as_dict(done))
    return done


# -- harmful-site reports ----------------------------------------------------------------------------

def report_handled(report_id: Any) -> Any:
    """A parent has dealt with a harmful-site report: it leaves the dashboard's new list."""
    try:
        rid = int(report_id)
    except (TypeError, ValueError):
        raise ValueError(f"unknown report {report_id!r}") from None
    store = core.store()
    before = store.get_report(rid)
    if before is None:
        raise ValueError(f"unknown report {rid!r}")
    after = store.mark_report_handled(rid, core.actor())
    if before.handled_ts is None:
        core.audit("report.handled", f"{before.device or before.client}: {before.url}",
                   {"handled_ts": None}, {"handled_ts": after.handled_ts, "handled_by": after.handled_by})
    return after


def report_device(report: Any) -> str:
    """The name of the device a report came from: as stored when it was sent, else as known now."""
    if report.device:
        return report.device
    d = device_for_client(report.client)
    return d.name if d is not None else ""


def stats_window(hours: int = 24) -> tuple[float, float]:
    now = time.time()
    return (int(now // 3600) - hours + 1) * 3600.0, now

