"""The DNS engine process: builds the stages from config, owns sockets, jobs, signals and reloads."""
from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

from resolver.policy.access import ClientAccess
from resolver.engine.budget_meter import BudgetMeter
from resolver.engine.cache import AnswerCache
from resolver.engine.clock import TIME_OFFSET_ENV, wall_clock_from_env  # noqa: F401 - TIME_OFFSET_ENV re-exported
from resolver.policy.clients import AddressMatcher, read_tables
from resolver.service.config import Config, ConfigError, load_config
from resolver.service.control import ControlServer
from resolver.engine.dnsconfig import parse_listen
from resolver.engine.listener import ListenError, Listeners
from resolver.engine.localrecords import LocalZone
from resolver.base.names import normalise_name, wire_name
from resolver.engine.pipeline import Pipeline
from resolver.engine.querylog import QueryLog
from resolver.engine.startup import EXIT_STARTUP, StartupError
from resolver.engine.stats import Stats
from resolver.store.open import STORE_ERRORS, describe_store, is_postgres, open_store
from resolver.engine.upstream import UpstreamPool
from resolver.policy.views import PolicySet

POLICY_POLL_INTERVAL = 1.0   # store changes (CLI, web UI) apply within this long (+ the rebuild)
STORE_RECHECK_INTERVAL = 60.0  # a store that notifies (PostgreSQL) is still read this often, in case one was missed
SEEN_FLUSH_INTERVAL = 30.0   # how often "seen" clients are written to the store
ENGINE_SWITCH_INTERVAL = 0.0005  # s: the GIL goes back to the event loop this soon after a helper thread took it

log = logging.getLogger("hearth.engine")


def build_pool(cfg: Config) -> UpstreamPool:
    d = cfg.dns
    return UpstreamPool(d.upstreams, strategy=d.upstream_strategy, timeout=d.upstream_timeout,
                        attempts=d.upstream_attempts, ca_file=d.upstream_ca_file or None,
                        health_interval=d.health_check_interval)


def _pool_settings(cfg: Config) -> tuple:
    d = cfg.dns
    return (tuple(d.upstreams), d.upstream_strategy, d.upstream_timeout, d.upstream_attempts, d.upstream_ca_file,
            d.health_check_interval)


class Engine:
    def __init__(self, config: Config, config_file: Optional[str]):
        self.file_config = config          # as the file says; self.config adds the setup wizard's choices
        self.config_file = config_file
        self.stats = Stats()
        self.store = _open_store_or_explain(config)
        self._settings = self._read_settings()
        self.config = config = with_settings(config, self._settings)
        self.querylog = QueryLog(config.querylog, lambda: open_store(config, migrate=False))
        self._wall, self.querylog.to_wall = wall_clock_from_env()
        self.budgets = BudgetMeter(self._profile_of)
        self.querylog.observers.append(self.budgets.observe)
        self.pool = build_pool(config)
        self.cache = AnswerCache(config.cache)
        self.pipeline = Pipeline(
            access=ClientAccess(config.dns.allow_clients, config.dns.rate_limit),
            cache=self.cache,
            local=LocalZone(config.local_records),
            upstreams=self.pool,
            querylog=self.querylog,
            stats=self.stats,
            edns_size=config.dns.edns_udp_size,
            max_pending=config.dns.max_pending,
            blocking=config.blocking,
            wall=self._wall,
            mac_forwarders=_mac_forwarders(config),
        )
        self.listeners = Listeners(self.pipeline, self.stats, idle_timeout=config.dns.tcp_idle_timeout,
                                   max_connections=config.dns.tcp_max_connections,
                                   max_per_client=config.dns.tcp_max_connections_per_client)
        self.control = ControlServer(self)
        self.scheduler = None
        self._stopping: Optional[asyncio.Event] = None
        self._reload_lock: Optional[asyncio.Lock] = None
        self.index = None
        self.meta: dict = {}
        self._background: list[asyncio.Task] = []
        self._policy_version: Optional[int] = None
        self._policy_lock: Optional[asyncio.Lock] = None
        self._store_watch: Optional[threading.Event] = None   # set to stop the store's change listener
        self._store_nudged = False
        self._tables: tuple = ({}, {})   # the last neighbour and lease tables read
        self._updating = False
        self._lists_plan: tuple = ()
        self._cancel_update: Optional[Callable[[], None]] = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        await self._first_index()
        self.load_lists()
        await self.refresh_policies(force=True)
        await self.pool.start()
        for text in self.config.dns.listen:
            host, port = parse_listen(text)
            try:
                await self.listeners.open(host, port)
            except ListenError as exc:
                raise StartupError(str(exc)) from None
        self._background.append(asyncio.ensure_future(self.querylog.run()))
        self._background.append(asyncio.ensure_future(self._watch_policies()))
        self._listen_to_store()
        try:
            await self.control.start(self.config.control_socket)
        except OSError as exc:
            raise StartupError(f"cannot create the control socket {self.config.control_socket}: "
                               f"{exc.strerror or exc} (check control_socket and that its directory is "
                               "writable by the user Hearth runs as)") from None
        self._start_scheduler()
        self._write_state()
        self._log_settings()
        log.info("Hearth DNS ready on %s", ", ".join(_fmt(a) for a in self.listeners.addresses))
        _sd_notify("READY=1")
        watchdog = _watchdog_interval()
        if watchdog:
            self._background.append(asyncio.ensure_future(self._feed_watchdog(watchdog)))

    # ------------------------------------------------------------ lists

    def _wants_lists(self) -> bool:
        c = self.config
        return c.blocking.starter_lists or bool(c.lists) or bool(c.feed.url) or bool(c.provider.url)

    async def _first_index(self) -> None:
        """On a fresh install compile the lists at hand (bundled, cached) before answering anything:
        a child's first query must already be filtered. Later updates run in the background."""
        from blocklists.manager import ListManager

        if not self._wants_lists() or ListManager(self.config).index_path.exists():
            return
        log.info("no compiled lists yet: compiling the lists at hand before answering")
        code = await self._run_update(["--offline"], timeout=120,
                                      trigger="startup")
        if code != 0:
            log.error("compiling the lists failed (exit %s): answering unfiltered until an update succeeds", code)

    async def _run_update(self, extra: list, timeout: Optional[float] = None, trigger: str = "scheduler"
                          ) -> Optional[int]:
        """`hearth lists update` in its own process (blocklists.runner: the one way the scheduler and the
        web UI update), re-reading the config file; stopped and recorded as failed past its time limit."""
        from blocklists.runner import Cancel, run_update

        limit = timeout if timeout is not None else self.config.feed.update_time_limit
        cancel = self._cancel_update = Cancel()   # shutdown() kills a running update: no wait for it
        call = functools.partial(run_update, self.config_file, self.config.data_dir, limit,
                                 offline="--offline" in extra, trigger=trigger,
                                 progress=lambda line: log.debug("lists update: %s", line), cancel=cancel)
        try:
            return await asyncio.get_running_loop().run_in_executor(None, call)
        finally:
            self._cancel_update = None

    async def scheduled_update(self, trigger: str = "scheduler", offline: bool = False) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            await self._run_update(["--offline"] if offline else [], trigger=trigger)
        finally:
            self._updating = False
        self.load_lists()   # also after a failure: a run that was stopped may have installed nothing new

    def start_update(self, trigger: str = "ui", offline: bool = False) -> bool:
        """Start a list update now in the background (the web UI's "Update now"); False if one is running."""
        if self._updating:
            return False
        self._updating = True   # at once: a second request in the same loop turn must not start another
        task = asyncio.ensure_future(self._started_update(trigger, offline))
        self._background.append(task)
        task.add_done_callback(lambda t: self._background.remove(t) if t in self._background else None)
        return True

    async def _started_update(self, trigger: str, offline: bool) -> None:
        self._updating = False
        await self.scheduled_update(trigger, offline)

    def load_lists(self) -> bool:
        """(Re)open the compiled index and rebuild the profiles' policies on it (new generation)."""
        from blocklists.manager import load_index

        try:
            index, meta = load_index(self.config.data_dir)
        except Exception as exc:  # noqa: BLE001 - a bad index file must not stop answering
            log.error("cannot open the compiled lists, keeping the current ones: %s", exc)
            return False
        self.index = index if self._wants_lists() else None
        self.meta = meta or {}
        if self._snapshot is not None:
            self._apply_policies(self._snapshot)
        if index is not None:
            log.info("lists loaded: %s", ", ".join(f"{v['category']} ({', '.join(v['lists'])})"
                                                  for v in meta.values()) or "none")
        return True

    # ------------------------------------------------------------ profiles and devices

    _snapshot: Optional[tuple] = None   # the store's profiles, devices, schedules, allows last read

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
        log.info("policy applied: %d profiles, %d devices (store version %s)", len(ps.profiles), len(devices),
                 version)

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

    async def _feed_watchdog(self, interval: float) -> None:
        """systemd's watchdog (WatchdogSec=): a hung event loop stops these and gets the service restarted."""
        while True:
            _sd_notify("WATCHDOG=1")
            await asyncio.sleep(interval)

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

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.scheduler = AsyncIOScheduler(timezone=self.config.timezone)
        self.scheduler.add_job(self.purge_query_log, "interval", hours=6, id="querylog-retention",
                               next_run_time=_soon(60))
        self.scheduler.add_job(self.cache.expire_stale, "interval", minutes=10, id="cache-expire-stale")
        self._schedule_lists()
        from resolver.service.provider_link import ProviderLink

        self.provider_link = ProviderLink(self)
        self.provider_link.schedule(self.scheduler)
        self.scheduler.start()

    def _schedule_lists(self) -> None:
        """The periodic list update, (re)planned from the current config: a feed added by a reload is
        checked within 30 s and then on its interval."""
        c = self.config
        job = self.scheduler.get_job("lists-update")
        feed = c.feed.url or c.provider.url
        if not (c.lists or feed):  # bundled lists alone have nothing to download
            if job is not None:
                job.remove()
            return
        every = min(c.blocking.list_update_interval, c.feed.update_interval if feed else 1e12)
        plan = (every, tuple(x.url for x in c.lists), feed)
        if job is not None and self._lists_plan == plan:
            return
        first = 30.0
        if not self._lists_plan:   # at start: not again if the last full update is recent (a restart)
            from blocklists.state import load_update_state

            run = load_update_state(os.path.join(c.data_dir, "lists")).run
            if run.finished and not run.error and not run.offline:
                first = max(first, run.finished + every - time.time())
        self._lists_plan = plan
        self.scheduler.add_job(self.scheduled_update, "interval", seconds=every, jitter=int(every * 0.1),
                               id="lists-update", next_run_time=_soon(first), max_instances=1, coalesce=True,
                               replace_existing=True)

    async def purge_query_log(self) -> int:
        now = time.time()
        cutoff = now - self.config.querylog.retention
        n = await asyncio.get_running_loop().run_in_executor(None, self.querylog.purge, now)
        if n:
            log.info("query log: deleted %d entries older than %s", n, time.strftime("%Y-%m-%d %H:%M",
                                                                                    time.localtime(cutoff)))
        return n

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig, handler in ((signal.SIGTERM, self.stop), (signal.SIGINT, self.stop), (signal.SIGHUP, self._on_hup)):
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError):
                pass
        await self.start()
        await self._stopping.wait()
        await self.shutdown()

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _on_hup(self) -> None:
        asyncio.ensure_future(self.reload())

    async def shutdown(self) -> None:
        log.info("stopping")
        _sd_notify("STOPPING=1")
        await self.listeners.close()
        await self.pipeline.drain(timeout=1.0)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self._cancel_update is not None:
            self._cancel_update()
        await self.control.close()
        if self._store_watch is not None:
            self._store_watch.set()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.pool.close()
        await asyncio.get_running_loop().run_in_executor(None, self.querylog.close)
        try:
            await self.flush_seen()
        finally:
            self.store.close()
        try:
            os.unlink(self._state_path())
        except OSError:
            pass

    # ------------------------------------------------------------ reload

    async def reload(self) -> tuple[bool, str]:
        """Re-read the config file and apply it without closing sockets that stay.

        Reloads run one at a time: two SIGHUPs in a row must not interleave."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            return await self._reload()

    async def _reload(self) -> tuple[bool, str]:
        try:
            new = load_config(self.config_file)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config:\n%s", exc)
            return False, str(exc)
        self.file_config = new
        await self._apply(with_settings(new, self._settings))
        log.info("configuration reloaded from %s", self.config_file or "embedded defaults")
        return True, "reloaded"

    async def _apply(self, new: Config) -> None:
        """Switch the running engine to ``new`` without closing sockets that stay."""
        old, p = self.config, self.pipeline
        logging.getLogger().setLevel(new.log_level.upper())
        p.access = ClientAccess(new.dns.allow_clients, new.dns.rate_limit)
        p.local = LocalZone(new.local_records)
        p.edns_size = new.dns.edns_udp_size
        p.max_pending = new.dns.max_pending
        p.blocking = new.blocking
        p.identities.mac_forwarders = _mac_forwarders(new)
        self.cache.config = new.cache
        self.cache.purge(lambda _k, e: e.synthesized)
        self.querylog.config = new.querylog
        if _pool_settings(new) != _pool_settings(old):
            old_pool, self.pool = self.pool, build_pool(new)
            await self.pool.start()
            p.upstreams = self.pool
            grace = old.dns.upstream_timeout * old.dns.upstream_attempts + 1
            asyncio.get_running_loop().call_later(grace, lambda: asyncio.ensure_future(old_pool.close()))
        tcp = self.listeners.tcp
        tcp.idle_timeout, tcp.max_connections = new.dns.tcp_idle_timeout, new.dns.tcp_max_connections
        tcp.max_per_client = new.dns.tcp_max_connections_per_client
        wanted = [parse_listen(t) for t in new.dns.listen]
        for addr in self.listeners.addresses:
            if addr not in wanted and (addr[0], 0) not in wanted:
                await self.listeners.close(addr)
        for host, port in wanted:
            if port == 0 and any(a[0] == host for a in self.listeners.addresses):
                continue
            if (host, port) not in self.listeners.addresses:
                try:
                    await self.listeners.open(host, port)
                except OSError as exc:
                    log.error("reload: cannot listen on %s: %s", _fmt((host, port)), exc)
        self.config = new
        self.load_lists()  # block mode, time zone or bypass prevention may have changed: new generation
        if self.scheduler is not None:
            self._schedule_lists()
            self.provider_link.schedule(self.scheduler)
        self._write_state()

    # ------------------------------------------------------------ state

    def _state_path(self) -> str:
        return os.path.join(self.config.data_dir, "engine.json")

    def _write_state(self) -> None:
        """Bound addresses and pid, for `hearth stats` and tests that listen on port 0."""
        state = {"pid": os.getpid(), "dns": [_fmt(a) for a in self.listeners.addresses],
                 "control": self.config.control_socket, "started": self.stats.started}
        tmp = self._state_path() + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, self._state_path())

    def snapshot(self) -> dict:
        out = self.stats.snapshot()
        out["cache_entries"] = len(self.cache)
        out["cache_evictions"] = self.cache.evictions
        out["pending"] = self.pipeline.pending
        out["querylog_written"] = self.querylog.written
        out["querylog_dropped"] = self.querylog.dropped
        out["querylog_write_errors"] = self.querylog.write_errors
        out["querylog_held"] = len(self.querylog.held)
        out["querylog_capped"] = self.querylog.capped
        out["querylog_expired"] = self.querylog.expired
        out["upstreams"] = self.pool.status()
        out["policy_generation"] = self.pipeline.generation
        out["index_entries"] = (self.index.stats.get("entries", 0) if self.index is not None else 0)
        return out

    def _log_settings(self) -> None:
        c = self.config
        log.info("config: %s", self.config_file or "embedded defaults")
        log.info("upstreams (%s): %s; timeout %.2gs x %d attempts", c.dns.upstream_strategy,
                 ", ".join(c.dns.upstreams), c.dns.upstream_timeout, c.dns.upstream_attempts)
        log.info("clients allowed: %s; rate limit: %s", ", ".join(c.dns.allow_clients),
                 f"{c.dns.rate_limit.qps:g}/s burst {c.dns.rate_limit.burst}" if c.dns.rate_limit.qps else "off")
        log.info("cache: %d entries, ttl %g..%gs, serve-stale %s, prefetch %s", c.cache.size, c.cache.min_ttl,
                 c.cache.max_ttl, f"{c.cache.serve_stale:g}s" if c.cache.serve_stale else "off",
                 "on" if c.cache.prefetch else "off")
        log.info("local records: %d; query log: %s (kept %gd, at most %s entries; statistics %gd)",
                 len(c.local_records), "on" if c.querylog.enabled else "off", c.querylog.retention / 86400,
                 f"{c.querylog.max_rows:,}" if c.querylog.max_rows else "any number of",
                 c.querylog.stats_retention / 86400)


STORE_SETTINGS = ("upstreams", "timezone")


def file_upstreams(config: Config) -> Optional[list[str]]:
    """The upstreams the configuration file sets, when they override the web UI's choice (anything but
    the built-in default, see with_settings); None when the wizard's or settings page's choice applies."""
    if list(config.dns.upstreams) == list(Config().dns.upstreams):
        return None
    return list(config.dns.upstreams)


def with_settings(config: Config, settings: dict) -> Config:
    """``config`` with the setup wizard's choices (kept in the store) where the file leaves the default:
    a value written in the configuration file always wins. Unusable values are ignored (logged)."""
    from dataclasses import replace

    defaults = Config()
    upstreams = settings.get("upstreams")
    if upstreams and file_upstreams(config) is None:
        try:
            from resolver.engine.upstream import parse_upstream

            for url in upstreams:
                parse_upstream(url)
            config = replace(config, dns=replace(config.dns, upstreams=list(upstreams)))
        except (ValueError, TypeError) as exc:
            log.warning("ignoring the upstreams chosen in the web UI: %s", exc)
    tz = settings.get("timezone")
    if tz and config.timezone == defaults.timezone:
        try:
            from resolver.service.config import _check_timezone

            config = replace(config, timezone=_check_timezone(tz))
        except (ValueError, TypeError) as exc:
            log.warning("ignoring the time zone chosen in the web UI: %s", exc)
    return config


def _mac_forwarders(config: Config) -> Optional[AddressMatcher]:
    c = config.clients
    return AddressMatcher(c.trusted_forwarders) if c.edns_mac and c.trusted_forwarders else None


def _fmt(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _soon(seconds: float):
    import datetime

    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


def _watchdog_interval() -> float:
    """Half of systemd's WATCHDOG_USEC in seconds, or 0 when the service has no watchdog."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0.0
    return usec / 2e6 if usec > 0 else 0.0


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) without depending on python-systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    import socket

    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), path)
    except OSError:
        pass


def _raise_file_limit(want: int = 4096) -> None:
    """Lift the soft limit on open files towards ``want`` (the hard limit allowing): TCP clients, upstream
    sockets and the store must not run out of descriptors at the default 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open-file limit: %s", exc)


def _open_store_or_explain(config: Config):
    """Create data_dir and open (migrate) the store the config names; a StartupError naming the store when it
    fails. Migrating now makes a broken store stop start-up loudly; the store is kept for policy reads."""
    from resolver.engine.startup import data_dir_problem

    data_dir = config.data_dir
    problem = data_dir_problem(data_dir)
    if problem:
        raise StartupError(problem)
    try:
        os.makedirs(data_dir, exist_ok=True)
        return open_store(config)
    except STORE_ERRORS as exc:
        where = describe_store(config)
        if is_postgres(config.store):
            raise StartupError(f"cannot open the store {where}: {exc} (check that PostgreSQL runs, the URL in "
                               "`store:`, and that this node may connect)") from None
        raise StartupError(f"cannot open the store {where}: {exc} (check the owner and permissions of "
                           f"{os.path.abspath(data_dir)}, and free disk space; `hearth doctor` checks both)") from None


def run_engine(config: Config, config_file: Optional[str]) -> int:
    """Entry point of `hearth dns`: run until SIGTERM/SIGINT. A start-up failure ends it with one line on
    standard error and EXIT_STARTUP."""
    import sys

    _raise_file_limit()
    try:
        return _run(config, config_file)
    except StartupError as exc:
        log.debug("start-up failed", exc_info=True)
        print(f"hearth: {exc}", file=sys.stderr, flush=True)
        return EXIT_STARTUP


def _run(config: Config, config_file: Optional[str]) -> int:
    engine = Engine(config, config_file)
    try:
        import uvloop  # optional extra: about twice the packet rate of the default loop

        runner = uvloop.run
        log.info("event loop: uvloop %s", uvloop.__version__)
    except ImportError:
        runner = asyncio.run
        log.info("event loop: asyncio (install hearth-dns[fast] for uvloop)")
    # The query log's writer thread holds the GIL while it builds a batch; every socket call of the
    # event loop releases it, and the default 5 ms switch interval then kept answers waiting (p99 at
    # half the peak rate 31 ms, 7 ms with 0.5 ms; bench/README.md, "Where the time goes").
    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL)
    runner(engine.run_forever())
    return 0
