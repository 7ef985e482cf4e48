"""The running engine's side of a list provider (``provider:``): poll its feed and check in on
``poll_interval`` (with jitter), start a list update when a new version is published, and empty the report
and unblock-request outboxes with back-off — on the node that holds the store's forwarding lease, when several
nodes share the store. The protocol itself lives in :mod:`blocklists.provider_client`."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Optional

from blocklists import provider_client as pc

log = logging.getLogger("hearth.provider")

OUTBOX_EVERY = 5.0          # how often the outbox is looked at (a send happens only when it is due)
BACKOFF_FIRST, BACKOFF_MAX = 5.0, 600.0


class ProviderLink:
    def __init__(self, engine: Any):
        self.engine = engine
        self._plan: Optional[tuple] = None
        self._failures = 0
        self._next_send = 0.0
        self._migrated = False
        self._sending = False
        self.last_error: Optional[str] = None

    @property
    def link(self) -> pc.ProviderLinkConfig:
        return self.engine.config.provider

    def schedule(self, scheduler: Any) -> None:
        """(Re)plan the poll and outbox jobs from the current config."""
        link = self.link
        plan = (link.url, link.poll_interval) if link.url else None
        if plan == self._plan:
            return
        for job_id in ("provider-poll", "provider-outbox"):
            if scheduler.get_job(job_id) is not None:
                scheduler.remove_job(job_id)
        self._plan = plan
        if plan is None:
            return
        from datetime import datetime, timedelta

        every = link.poll_interval
        scheduler.add_job(self.poll, "interval", seconds=every, jitter=max(0, int(every * 0.1)), id="provider-poll",
                          next_run_time=datetime.now().astimezone() + timedelta(seconds=min(5.0, every)),
                          max_instances=1, coalesce=True)
        scheduler.add_job(self.send_reports, "interval", seconds=min(OUTBOX_EVERY, every), id="provider-outbox",
                          max_instances=1, coalesce=True)

    def _installed(self) -> dict:
        from blocklists.manager import ListManager

        manager = ListManager(self.engine.config)
        state = manager.update_state()
        feed = state.feed
        entries = sum(r.entries for r in manager.status() if r.origin == "feed")
        error = (feed.error if feed else None) or state.run.error
        return {"feed_version": feed.version if feed else None, "entries": entries, "last_error": error or ""}

    def _migrate(self) -> None:
        """Once: an older appliance's outbox and decisions files into the store (shared by every node)."""
        if self._migrated:
            return
        try:
            pc.migrate_files(self.engine.config.data_dir, self.engine.store)
            self._migrated = True
        except Exception as exc:               # the store away: the files stay, tried again at the next run
            log.warning("provider: cannot move the outbox files into the store yet: %s", exc)

    @property
    def node(self) -> str:
        return str(getattr(self.engine.store, "node", "") or "")

    async def poll(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.engine.config
        try:
            await loop.run_in_executor(None, self._migrate)
            installed = await loop.run_in_executor(None, self._installed)
            changed = await loop.run_in_executor(None, pc.poll, config.provider, config.data_dir, installed,
                                                 self.engine.store)
        except pc.ProviderError as exc:
            log.warning("provider poll failed: %s", exc)
            self.last_error = str(exc)
            return
        self.last_error = None
        if changed:
            log.info("provider: a new feed version is published, updating the lists")
            await self.engine.scheduled_update(trigger="scheduler")
            run = await loop.run_in_executor(None, lambda: self._installed())
            if run["last_error"]:
                await loop.run_in_executor(None, pc.forget_etag, config.data_dir)

    def _forward(self) -> tuple[int, int]:
        """On the lease holder only: the reports, then the unblock requests (each checks the lease again)."""
        config, store = self.engine.config, self.engine.store
        self._sending = True
        try:
            self._migrate()
            state = pc.enrolled(config.provider, config.data_dir)
            if not pc.holds_lease(store, state, self.node):   # renewed while idle too: the forwarder stays
                return 0, 0
            return (pc.forward_reports(config.provider, config.data_dir, store, self.node),
                    pc.forward_unblocks(config.provider, config.data_dir, store, self.node))
        finally:
            self._sending = False

    def release(self) -> None:
        """At shutdown: give the forwarding lease up, so another node takes over at once (not while a send may
        still be on its way: then the lease runs out by itself)."""
        if self._plan is None or self._sending:
            return
        try:
            state = pc.load_state(self.engine.config.data_dir)
            if state.get("appliance_id"):
                self.engine.store.release_provider_lease(state["appliance_id"])
        except Exception:
            log.debug("provider: cannot release the forwarding lease", exc_info=True)

    async def send_reports(self) -> None:
        if time.monotonic() < self._next_send:
            return
        loop = asyncio.get_running_loop()
        try:
            n, u = await loop.run_in_executor(None, self._forward)
        except pc.ProviderError as exc:
            self._failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1)) * random.uniform(0.8, 1.2)
            self._next_send = time.monotonic() + delay
            log.warning("forwarding reports failed (%s): next try in %.0f s", exc, delay)
            return
        self._failures, self._next_send = 0, 0.0
        if n:
            log.info("forwarded %d harmful-site report(s) to the provider", n)
        if u:
            log.info("forwarded %d unblock request(s) to the provider", u)
