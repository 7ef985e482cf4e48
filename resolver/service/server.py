"""The DNS engine: builds the stages of the query path from config and owns their sockets, jobs, signals and
reloads. Its list jobs are in :mod:`.lists_jobs`, its policy from the store in :mod:`.policy_sync`, the wizard's
settings in :mod:`.settings`, and the process around it (`hearth dns`) in :mod:`.process`."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from typing import Callable, Optional

from resolver.policy.access import ClientAccess
from resolver.engine.budget_meter import BudgetMeter
from resolver.engine.cache import AnswerCache
from resolver.engine.clock import wall_clock_from_env
from resolver.policy.clients import AddressMatcher
from resolver.service.config import Config, ConfigError, load_config
from resolver.service.control import ControlServer
from resolver.service.gc_pauses import GcPauses
from resolver.engine.dnsconfig import parse_listen
from resolver.engine.listener import ListenError, Listeners
from resolver.engine.localrecords import LocalZone
from resolver.engine.pipeline import Pipeline
from resolver.engine.querylog import QueryLog
from resolver.engine.startup import StartupError
from resolver.engine.stats import Stats
from resolver.store.open import STORE_ERRORS, describe_store, is_postgres, open_store
from resolver.engine.upstream import UpstreamPool
from resolver.service.lists_jobs import ListsJobs, soon
from resolver.service.policy_sync import PolicySync
from resolver.service.settings import with_settings
from resolver.service.systemd import sd_notify, watchdog_interval


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


class Engine(ListsJobs, PolicySync):
    """The running DNS engine: the stages of the query path built from config, their sockets, jobs and reloads
    (lists: :class:`ListsJobs`; the policy from the store: :class:`PolicySync`).

    ``worker``: this engine's number when it is one of ``dns.workers`` processes (:mod:`.workers`): it then
    binds its listen addresses with SO_REUSEPORT, answers on its own control socket (``hearth.sock.N``; the
    parent owns ``hearth.sock``), writes no ``engine.json``, and only worker 0 runs the scheduled jobs (list
    updates, query-log retention, the provider link); the others load each new index file it installs."""

    def __init__(self, config: Config, config_file: Optional[str], worker: Optional[int] = None):
        self.worker = worker
        self.runs_jobs = worker is None or worker == 0
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
                                   max_per_client=config.dns.tcp_max_connections_per_client,
                                   reuse_port=worker is not None)
        self.control = ControlServer(self)
        self.scheduler = None
        self._stopping: Optional[asyncio.Event] = None
        self._reload_lock: Optional[asyncio.Lock] = None
        self.index = None
        self.meta: dict = {}
        self._background: list[asyncio.Task] = []
        self._policy_version: Optional[int] = None
        self.gc_pauses = GcPauses()   # installed by the engine's process (resolver.service.process)
        self._policy_lock: Optional[asyncio.Lock] = None
        self._store_watch: Optional[threading.Event] = None   # set to stop the store's change listener
        self._store_nudged = False
        self._tables: tuple = ({}, {})   # the last neighbour and lease tables read
        self._updating = False
        self._lists_plan: tuple = ()
        self._cancel_update: Optional[Callable[[], None]] = None
        self.on_ready: list[Callable[[], None]] = []   # called once start-up is done (`hearth dns`: gc.freeze)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        if self.runs_jobs:
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
        if self.worker is not None:
            self._background.append(asyncio.ensure_future(self._watch_index()))
        self._listen_to_store()
        try:
            await self.control.start(self.control_path)
        except OSError as exc:
            raise StartupError(f"cannot create the control socket {self.control_path}: "
                               f"{exc.strerror or exc} (check control_socket and that its directory is "
                               "writable by the user Hearth runs as)") from None
        self._start_scheduler()
        self._write_state()
        self._log_settings()
        for ready in self.on_ready:
            ready()
        log.info("Hearth DNS ready on %s", ", ".join(_fmt(a) for a in self.listeners.addresses))
        sd_notify("READY=1")
        watchdog = watchdog_interval()
        if watchdog:
            self._background.append(asyncio.ensure_future(self._feed_watchdog(watchdog)))

    async def _feed_watchdog(self, interval: float) -> None:
        """systemd's watchdog (WatchdogSec=): a hung event loop stops these and gets the service restarted."""
        while True:
            sd_notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.scheduler = AsyncIOScheduler(timezone=self.config.timezone)
        self.scheduler.add_job(self.cache.expire_stale, "interval", minutes=10, id="cache-expire-stale")
        if not self.runs_jobs:   # one worker of several: worker 0 runs the store's and the lists' jobs
            self.scheduler.start()
            return
        self.scheduler.add_job(self.purge_query_log, "interval", hours=6, id="querylog-retention",
                               next_run_time=soon(60))
        self._schedule_lists()
        from resolver.service.provider_link import ProviderLink

        self.provider_link = ProviderLink(self)
        self.provider_link.schedule(self.scheduler)
        self.scheduler.start()

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
        sd_notify("STOPPING=1")
        await self.listeners.close()
        await self.pipeline.drain(timeout=1.0)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if getattr(self, "provider_link", None) is not None:   # another node forwards from now on
            await asyncio.get_running_loop().run_in_executor(None, self.provider_link.release)
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
        if self.worker is None:
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
        if self.scheduler is not None and self.runs_jobs:
            self._schedule_lists()
            self.provider_link.schedule(self.scheduler)
        self._write_state()

    # ------------------------------------------------------------ state

    @property
    def control_path(self) -> str:
        """This engine's control socket: ``hearth.sock``, or ``hearth.sock.N`` for worker N."""
        base = self.config.control_socket
        return base if self.worker is None else f"{base}.{self.worker}"

    def _state_path(self) -> str:
        return os.path.join(self.config.data_dir, "engine.json")

    def _write_state(self) -> None:
        """Bound addresses and pid, for `hearth stats` and tests that listen on port 0 (a worker's parent
        writes it for all of them)."""
        if self.worker is not None:
            return
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
        out["querylog_pending"] = self.querylog.pending
        out["querylog_capped"] = self.querylog.capped
        out["querylog_expired"] = self.querylog.expired
        out["upstreams"] = self.pool.status()
        out["policy_generation"] = self.pipeline.generation
        out["policy_apply_ms"] = round(self.policy_apply_ms, 2)
        out.update(self.gc_pauses.snapshot())
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


def _mac_forwarders(config: Config) -> Optional[AddressMatcher]:
    c = config.clients
    return AddressMatcher(c.trusted_forwarders) if c.edns_mac and c.trusted_forwarders else None


def _fmt(addr: tuple[str, int]) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


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

