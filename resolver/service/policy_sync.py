"""The engine's policy from the store: profiles, devices, schedules, temporary allows and time budgets read
off the event loop and built into a new :class:`resolver.policy.views.PolicySet`; the store watched (polled,
or notified by a shared PostgreSQL store); the wizard's settings applied; clients seen written back; and
``explain`` for the block page.

A mixin of :class:`resolver.service.server.Engine` (it uses the engine's ``store``, ``pipeline``, ``config``,
``budgets``, ``index``, ``meta`` and ``_apply`` for settings).
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import threading
import time
from typing import Optional

from resolver.base.names import normalise_name, wire_name
from resolver.policy.clients import read_tables
from resolver.policy.views import PolicySet
from resolver.service.settings import STORE_SETTINGS, with_settings

POLICY_POLL_INTERVAL = 1.0   # store changes (CLI, web UI) apply within this long (+ the rebuild)
STORE_RECHECK_INTERVAL = 60.0  # a store that notifies (PostgreSQL) is still read this often, in case one was missed
SEEN_FLUSH_INTERVAL = 30.0   # how often "seen" clients are written to the store

log = logging.getLogger("hearth.engine")


class PolicySync:
    _snapshot: Optional[tuple] = None   # the store's profiles, devices, schedules, allows last read
    policy_apply_ms = 0.0   # how long the last policy rebuild held the event loop

    def _profile_of(self, client: str) -> Optional[str]:
        """The profile answering ``client`` now (the budget meter's view of who asked)."""
        ps = self.pipeline.policies
        return None if ps is None else ps.view_for(client)[0].profile

    def _read_policy_snapshot(self) -> tuple:
        """(version, profiles, devices, schedules, temporary allows): blocking reads, run off the loop."""
        st = self.store
        version = st.policy_version()
        now = self.pipeline.wall()
        return (version, st.list_profiles(), st.list_devices(), st.list_schedules(), st.list_temp_allows(now),
                st.list_budgets(), st.budget_usage(_dt.date.fromtimestamp(now - 2 * 86400).isoformat()),
                st.budget_high_water())

    def _read_settings(self) -> dict:
        """The appliance settings the web UI's setup wizard keeps in the store (blocking read)."""
        try:
            return {key: self.store.get_setting(key) for key in STORE_SETTINGS}
        except Exception as exc:  # noqa: BLE001 - an old or locked store: the file's config alone
            log.debug("no settings from the store: %s", exc)
            return {}

    async def refresh_settings(self) -> bool:
        """Apply the wizard's upstream and time-zone choices when they change."""
        settings = await asyncio.get_running_loop().run_in_executor(None, self._read_settings)
        if settings == self._settings:
            return False
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            self._settings = settings
            await self._apply(with_settings(self.file_config, settings))
        log.info("settings from the web UI applied")
        return True

    async def refresh_policies(self, force: bool = False, read_version: bool = True) -> bool:
        """Re-read profiles and devices when the store changed (or a pause / temporary allow ended); without
        ``read_version`` only for the latter (a store that notifies its changes)."""
        if self._policy_lock is None:
            self._policy_lock = asyncio.Lock()
        async with self._policy_lock:
            loop = asyncio.get_running_loop()
            if not force:
                ps = self.pipeline.policies
                expired = ps is not None and ps.next_expiry is not None and self.pipeline.wall() >= ps.next_expiry
                if not read_version and not expired:
                    return False
            try:
                if not force:
                    version = await loop.run_in_executor(None, self.store.policy_version)
                    if version == self._policy_version and not expired:
                        return False
                snapshot = await loop.run_in_executor(None, self._read_policy_snapshot)
            except Exception as exc:  # noqa: BLE001 - a locked, broken or unreachable store must not stop answering
                log.error("cannot read profiles from the store, keeping the current ones: %s", exc)
                if expired and self._snapshot is not None:
                    self._apply_policies(self._snapshot)   # a pause or allow that ended folds back all the same
                return False
            self._apply_policies(snapshot)
            return True

    def _apply_policies(self, snapshot: tuple) -> None:
        started = time.perf_counter()
        version, profiles, devices, schedules, allows, budgets, usage, high_water = snapshot
        c = self.config
        spent = self.budgets.configure(budgets, usage, high_water, self.index, self.meta, c.timezone,
                                       self.pipeline.wall())
        ps = PolicySet(self.pipeline.registry, profiles, devices, schedules, allows, self.index, self.meta,
                       c.timezone, default_block_mode=c.blocking.mode,
                       default_bypass_prevention=c.blocking.bypass_prevention, now=self.pipeline.wall(),
                       previous=self.pipeline.policies, spent=spent)
        ps.directory.refresh_neighbours(*self._tables)
        self._snapshot = snapshot
        self._policy_version = version
        self.pipeline.set_policies(ps)
        # the event loop answers nothing while the new policy is built: `hearth stats` shows how long that was
        self.policy_apply_ms = (time.perf_counter() - started) * 1000.0
        log.info("policy applied in %.1f ms: %d profiles, %d devices (store version %s)", self.policy_apply_ms,
                 len(ps.profiles), len(devices), version)

    def _listen_to_store(self) -> None:
        """A store shared by several nodes (PostgreSQL) tells of every change: reload at once, and read it
        only now and then otherwise. The listener runs in a thread; the query path never waits for it."""
        watch = getattr(self.store, "watch", None)
        if watch is None:
            return
        loop = asyncio.get_running_loop()
        self._store_watch = threading.Event()

        def on_change(what: str) -> None:        # in the listener's thread
            if what != "lost":
                loop.call_soon_threadsafe(self._store_changed)

        watch(on_change, self._store_watch)

    def _store_changed(self) -> None:
        self._store_nudged = True
        task = asyncio.ensure_future(self._reread_store())
        self._background.append(task)
        task.add_done_callback(lambda t: self._background.remove(t) if t in self._background else None)

    async def _reread_store(self) -> None:
        self._store_nudged = False
        try:
            await self.refresh_policies()
            await self.refresh_settings()
        except Exception as exc:  # noqa: BLE001 - the store went away again: keep the policy we have
            log.warning("cannot read the store after a change: %s", exc)

    async def _watch_policies(self) -> None:
        """Poll the store for changes (now and then only when it notifies them), the neighbour tables for
        MACs, and flush seen clients."""
        loop = asyncio.get_running_loop()
        next_tables = next_seen = next_store = 0.0
        while True:
            await asyncio.sleep(POLICY_POLL_INTERVAL)
            try:
                now = time.monotonic()
                read = self._store_watch is None or self._store_nudged or now >= next_store
                if read:
                    next_store = now + STORE_RECHECK_INTERVAL
                    self._store_nudged = False
                await self.refresh_policies(read_version=read)
                if read:
                    await self.refresh_settings()
                if now >= next_tables:
                    next_tables = now + self.config.clients.refresh_interval
                    tables = await loop.run_in_executor(None, read_tables, self.config.clients)
                    if tables != self._tables:
                        self._tables = tables
                        ps = self.pipeline.policies
                        if ps is not None:
                            ps.directory.refresh_neighbours(*tables)
                            self.pipeline.forget_identities()
                if now >= next_seen:
                    next_seen = now + SEEN_FLUSH_INTERVAL
                    await self.flush_seen()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep watching whatever one round hit
                log.exception("policy watch failed")

    async def flush_seen(self) -> int:
        """Write the clients answered since the last flush to the store (first/last seen)."""
        p = self.pipeline
        seen, p.seen = p.seen, {}
        p.forget_identities()  # so clients still active are noted again for the next flush
        if not seen:
            return 0
        ps = p.policies
        now = p.wall()
        rows = [(addr, mac or (ps.directory.mac_of(addr) or "" if ps is not None else ""),
                 ps.directory.hostname(addr) if ps is not None else "") for addr, mac in seen.items()]

        def write() -> None:
            for addr, mac, host in rows:
                self.store.touch_seen(addr, mac, host, now)

        try:
            await asyncio.get_running_loop().run_in_executor(None, write)
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot record seen clients: %s", exc)
        return len(rows)

    def explain(self, client: str, name: str) -> dict:
        """What the engine would answer ``client`` for ``name`` now, and why (for the block page)."""
        ps = self.pipeline.policies
        if ps is None:
            return {"ok": False, "message": "no policy loaded"}
        try:
            text = normalise_name(name)
        except ValueError as exc:
            return {"ok": False, "message": str(exc)}
        wire = wire_name(text)
        view, device = ps.view_for(client)
        verdict = view.decide(wire, self.pipeline.wall())
        out = {"ok": True, "client": client, "name": text, "device": device.name if device else None,
               "profile": view.profile, "action": "allow", "reason": None, "category": None, "rule": None,
               "text": "", "ttl_cap": None}
        if verdict is not None:
            out["action"], out["ttl_cap"] = verdict.action, verdict.ttl_cap
            d = verdict.decision
            if d is not None:
                out.update(reason=d.reason.value, category=d.category, rule=d.rule, text=d.text)
                if d.reason.value == "order":
                    out["order"] = d.sources   # "AUTHORITY, ref. REFERENCE": the block page names them
            if verdict.target:
                out["target"] = verdict.target
        return out

