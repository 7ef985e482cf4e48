"""Who is asking, and which policy answers them: the engine's per-client *views*.

A view is what one group of clients sees: a profile's policy (:class:`ProfilePolicy`), plus, for a
device that is paused or has temporary allows, that device's own state. Devices without such state
share their profile's view. Each view owns

* a ``tag``: two bytes put in front of every answer-cache key of that view, so two profiles never
  share a cached answer (a tag's first byte is >= 0xC0, which no wire name starts with, so tagged
  keys never collide with the untagged keys of the upstream layer);
* an alias table: exact query bytes -> cached answer, as for the single-profile cache, per view.

Views are long-lived: a rebuild (the store changed, lists reloaded) updates the policy inside the
same view object, so its tag and its cached answers stay; the pipeline's generation makes every
cached answer be checked again before it is served.

:class:`PolicySet` is built from one snapshot of the store (profiles, devices, schedules, temporary
allows) and answers :meth:`PolicySet.view_for` for a client address (and MAC, when a trusted
forwarder sent one in EDNS0).
"""
from __future__ import annotations

import logging
import time
from typing import Dict, Iterable, List, Optional, Tuple

from resolver.policy.budgets import Spent
from resolver.policy.clients import ClientDirectory
from resolver.policy.profile_policy import ProfilePolicy, Verdict
from resolver.policy.profiles import DEFAULT_PROFILE, DEFAULT_PROFILE_NAME, Device, Profile, Schedule, TempAllow

log = logging.getLogger("hearth.views")

MAX_TAGS = 0x3FFF


class View:
    """One policy as clients see it. ``paused_until``/``temp_allows`` are set for device views only."""

    __slots__ = ("id", "tag", "aliases", "profile", "policy", "device", "paused_until", "temp_allows",
                 "block_mode")

    def __init__(self, view_id: str, tag: bytes):
        self.id = view_id
        self.tag = tag
        self.aliases: dict = {}
        self.profile = DEFAULT_PROFILE_NAME
        self.policy: Optional[ProfilePolicy] = None
        self.device: Optional[Device] = None
        self.paused_until: Optional[float] = None
        self.temp_allows: Tuple[Tuple[str, float], ...] = ()
        self.block_mode = "null"

    def decide(self, name_wire: bytes, now: float) -> Optional[Verdict]:
        """The verdict for a lower-case wire name at UNIX time ``now`` (None: no policy, allow)."""
        policy = self.policy
        if policy is None:
            return None
        return policy.decide(name_wire, now, self.paused_until, self.temp_allows)


class ViewRegistry:
    """Hands out stable tags and keeps view objects across rebuilds."""

    def __init__(self) -> None:
        self._views: Dict[str, View] = {}

    def get(self, view_id: str) -> View:
        view = self._views.get(view_id)
        if view is None:
            n = len(self._views) + 1
            if n > MAX_TAGS:  # more distinct views than tags in one run: start again (cache is re-checked)
                self._views.clear()
                n = 1
            view = self._views[view_id] = View(view_id, bytes((0xC0 | n >> 8, n & 0xFF)))
        return view

    def __len__(self) -> int:
        return len(self._views)


class PolicySet:
    """Profiles' policies and the devices' views, from one snapshot of the store."""

    def __init__(self, registry: ViewRegistry, profiles: Iterable[Profile], devices: Iterable[Device],
                 schedules: Iterable[Schedule], temp_allows: Iterable[TempAllow], index, meta: dict, tz: str,
                 *, default_block_mode: str = "null", default_bypass_prevention: bool = True,
                 now: Optional[float] = None, previous: Optional[PolicySet] = None,
                 spent: Optional[Dict[str, Spent]] = None):
        now = time.time() if now is None else now
        spent = spent or {}
        schedules = list(schedules)
        # A profile whose settings, schedules, lists and time zone are unchanged keeps its built policy
        # (a pause or a temporary allow rebuilds the set, not the profiles).
        reuse = previous._built if previous is not None else {}
        self._built: Dict[tuple, ProfilePolicy] = {}
        self.profiles: Dict[str, View] = {}
        by_name: Dict[str, Profile] = {}
        for profile in profiles:
            by_name[profile.name.lower()] = profile
        if DEFAULT_PROFILE_NAME not in by_name:
            by_name[DEFAULT_PROFILE_NAME] = DEFAULT_PROFILE
        policies: Dict[str, ProfilePolicy] = {}
        for key, profile in by_name.items():
            if key == DEFAULT_PROFILE_NAME and default_bypass_prevention and not profile.bypass_prevention:
                # devices nobody has set up yet get bypass prevention while blocking.bypass_prevention is on
                from dataclasses import replace
                profile = replace(profile, bypass_prevention=True)
            own = tuple(s for s in schedules if s.profile.lower() == key)
            used_up = spent.get(key)
            built_key = (profile, own, id(index), id(meta), tz, used_up.key() if used_up else None)
            policy = reuse.get(built_key)
            if policy is None:
                try:
                    policy = ProfilePolicy(profile, index, meta, own, tz, spent=used_up)
                except Exception:  # noqa: BLE001 - one broken profile must not leave every device unfiltered
                    log.exception("profile %s cannot be applied; its devices get the default profile",
                                  profile.name)
                    continue
            self._built[built_key] = policies[key] = policy
            view = registry.get("p:" + key)
            view.profile, view.policy, view.device = profile.name, policies[key], None
            view.paused_until, view.temp_allows = None, ()
            view.block_mode = _mode(profile.block_mode, default_block_mode)
            self.profiles[key] = view
        if DEFAULT_PROFILE_NAME not in self.profiles:  # the stored default profile was broken
            view = registry.get("p:" + DEFAULT_PROFILE_NAME)
            view.profile, view.policy = DEFAULT_PROFILE_NAME, ProfilePolicy(DEFAULT_PROFILE, index, meta, (), tz)
            view.device, view.paused_until, view.temp_allows, view.block_mode = None, None, (), default_block_mode
            self.profiles[DEFAULT_PROFILE_NAME] = view
        self.default = self.profiles[DEFAULT_PROFILE_NAME]

        # devices with their own state (paused now or later, temporary allows) get their own view
        allows: Dict[str, List[Tuple[str, float]]] = {}
        for allow in temp_allows:
            if allow.until > now:
                allows.setdefault(allow.device.lower(), []).append((allow.domain, allow.until))
        self.devices: Dict[int, View] = {}
        device_list = list(devices)
        for device in device_list:
            mine = allows.get(device.name.lower(), [])
            paused = device.paused_until if device.paused_until and device.paused_until > now else None
            if paused is None and not mine:
                continue
            base = self.profiles.get(device.profile.lower(), self.default)
            view = registry.get(f"d:{device.id}")
            view.profile, view.policy, view.device = base.profile, base.policy, device
            view.paused_until, view.temp_allows, view.block_mode = paused, tuple(mine), base.block_mode
            self.devices[device.id] = view
        self.directory = ClientDirectory(device_list)
        # when a pause or temporary allow ends, the next rebuild folds the device back into its profile
        ends = [v.paused_until for v in self.devices.values() if v.paused_until] + \
            [until for v in self.devices.values() for _d, until in v.temp_allows]
        ends += [end for s in spent.values() for end in s.ends]   # a used-up budget ends at its reset
        self.next_expiry = min(ends) if ends else None

    def view_for(self, ip: str, mac: Optional[str] = None) -> Tuple[View, Optional[Device]]:
        """The view for a query from ``ip`` (with ``mac`` when a trusted forwarder named it)."""
        device, profile = self.directory.profile_for(ip, mac)
        if device is not None:
            view = self.devices.get(device.id)
            if view is not None:
                return view, device
        return self.profiles.get(profile.lower(), self.default), device


def _mode(profile_mode: str, default_mode: str) -> str:
    """A profile's block mode; "null" (the profiles' default) means the appliance's blocking.mode."""
    return default_mode if profile_mode == "null" else profile_mode
