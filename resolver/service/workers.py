"""``dns.workers``: several engine processes answering on the same sockets, and the small parent that keeps them.

With ``dns.workers`` above 1, `hearth dns` (and so `hearth run`) becomes this parent. It holds no DNS socket
and no store; it starts N workers, each a whole :class:`resolver.service.server.Engine` in its own process
(``python -m resolver.service.workers --worker N``):

* **Sockets.** Every worker binds every listen address itself, UDP and TCP, with SO_REUSEPORT: the kernel
  spreads clients over the workers' sockets by address and port, and a dead worker's sockets leave the
  group, so the others take its share at once. Worker 0 starts alone first: it compiles the lists on a fresh
  install and binds port 0 (tests) to a real port, which the parent then hands to the others (and to any
  restarted worker) in ``HEARTH_WORKER_LISTEN``.
* **Lists and caches.** Each worker maps the same compiled index file (the pages are shared) and keeps its
  own answer cache. Worker 0 alone runs the scheduled jobs (list updates, query-log retention, the provider
  link); every worker loads a new index file within a second of its rename (``ListsJobs._watch_index``).
* **Policy.** Each worker polls the store's policy version (or hears PostgreSQL's NOTIFY) as one engine does,
  and writes its own query-log batches (SQLite in WAL mode with a busy time-out takes concurrent writers; the
  hourly roll-ups are additive upserts).
* **Control.** The parent owns the control socket (``hearth.sock``); each worker answers on its own
  (``hearth.sock.N``). ``stats`` sums the workers' (:mod:`.worker_stats`), ``reload``, ``lists-reload`` and
  ``policy-reload`` go to every worker, ``lists-update`` to worker 0, ``explain`` to any. So `hearth stats`,
  /metrics, the web UI and the CLI see one engine.
* **Faults.** A worker that exits is started again after 1 s, then 2, 4 … 30 s while it keeps failing (reset
  once it has run a minute); one whose control socket misses three pings in a row (a hung loop) is killed and
  restarted. SIGTERM/SIGINT stop every worker; SIGHUP is passed on (each re-reads the file). A worker whose
  parent is gone stops by itself.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from typing import Optional

from resolver.engine.dnsconfig import worker_count
from resolver.engine.startup import EXIT_STARTUP
from resolver.service.config import Config, ConfigError, load_config
from resolver.service.control import acall, serve_lines
from resolver.service.systemd import sd_notify, watchdog_interval
from resolver.service.worker_stats import merge_stats

log = logging.getLogger("hearth.workers")

LISTEN_ENV = "HEARTH_WORKER_LISTEN"   # JSON list of the listen addresses as worker 0 bound them
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0     # a worker up this long starts again from FIRST_BACKOFF when it next dies
READY_TIMEOUT = 180.0   # worker 0 may compile the lists before answering on a fresh install
PING_INTERVAL = 5.0
PING_TIMEOUT = 3.0
HUNG_AFTER = 3          # pings missed in a row before a worker is killed and restarted
STOP_GRACE = 10.0
SOCKET_PATH_MAX = 100   # AF_UNIX


@dataclass
class Worker:
    index: int
    socket: str
    proc: Optional[asyncio.subprocess.Process] = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    restarts: int = 0
    ready: bool = False
    missed: int = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def describe(self) -> dict:
        return {"worker": self.index, "pid": self.proc.pid if self.proc else None,
                "up": self.alive and self.ready, "restarts": self.restarts}


class WorkerPool:
    """The parent of ``count`` engine workers (see the module's docstring)."""

    def __init__(self, config: Config, config_file: Optional[str], count: int):
        self.config = config
        self.config_file = os.path.abspath(config_file) if config_file else None
        self.workers = [Worker(i, f"{config.control_socket}.{i}") for i in range(count)]
        self.listen: list[str] = []
        self.started = time.time()
        self.stopping: Optional[asyncio.Event] = None
        self.server: Optional[asyncio.AbstractServer] = None
        self.tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        first = self.workers[0]
        await self._spawn(first)
        if not await self._ready(first):
            code = first.proc.returncode if first.proc.returncode is not None else None
            await self._stop_workers()
            if self.stopping.is_set():
                return 0
            if code is None:
                print(f"hearth: worker 0 did not answer on {first.socket} within {READY_TIMEOUT:.0f}s",
                      file=sys.stderr, flush=True)
            return code or EXIT_STARTUP   # its own error is above
        for w in self.workers[1:]:
            await self._spawn(w)
        await asyncio.gather(*(self._ready(w) for w in self.workers[1:]))
        await self._start_control()
        self._write_state()
        log.info("Hearth DNS ready on %s with %d workers (pids %s)", ", ".join(self.listen), len(self.workers),
                 ", ".join(str(w.proc.pid) for w in self.workers if w.proc))
        sd_notify("READY=1")
        self.tasks = [asyncio.ensure_future(self._keep(w)) for w in self.workers]
        self.tasks.append(asyncio.ensure_future(self._health()))
        await self.stopping.wait()
        return await self._shutdown()

    async def _spawn(self, w: Worker) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        if self.listen:
            env[LISTEN_ENV] = json.dumps(self.listen)
        argv = [sys.executable, "-m", "resolver.service.workers", "--worker", str(w.index)]
        if self.config_file:
            argv += ["--config", self.config_file]
        w.proc = await asyncio.create_subprocess_exec(*argv, env=env)
        w.started, w.ready, w.missed = time.monotonic(), False, 0
        log.info("started worker %d (pid %d)", w.index, w.proc.pid)

    async def _ready(self, w: Worker) -> bool:
        """Wait until ``w`` answers a ping on its control socket (False: it exited, or took too long)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and w.alive and not self.stopping.is_set():
            try:
                reply = await acall(w.socket, "ping", timeout=1.0)
            except (OSError, ValueError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
                continue
            if reply.get("ok"):
                w.ready = True
                if not self.listen:
                    self.listen = list(reply.get("dns") or [])
                return True
        return False

    async def _keep(self, w: Worker) -> None:
        """Restart ``w`` whenever it exits, with a growing delay, until the parent stops."""
        while True:
            code = await w.proc.wait()
            w.ready = False
            if self.stopping.is_set():
                return
            if time.monotonic() - w.started > STABLE_AFTER:
                w.backoff = FIRST_BACKOFF
            delay, w.backoff = w.backoff, min(w.backoff * 2, MAX_BACKOFF)
            log.error("worker %d (pid %d) exited with code %s; restarting in %.0fs (the other workers answer "
                      "meanwhile)", w.index, w.proc.pid, code, delay)
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
                return
            except asyncio.TimeoutError:
                pass
            await self._refresh_listen()
            w.restarts += 1
            await self._spawn(w)
            if await self._ready(w):
                log.info("worker %d is back (pid %d)", w.index, w.proc.pid)
                self._write_state()

    async def _refresh_listen(self) -> None:
        """The addresses a running worker holds now (a reload may have changed them): a restarted one binds
        the same."""
        for w in self.workers:
            if w.alive and w.ready:
                try:
                    reply = await acall(w.socket, "ping", timeout=1.0)
                except (OSError, ValueError, asyncio.TimeoutError):
                    continue
                if reply.get("dns"):
                    self.listen = list(reply["dns"])
                    return

    async def _health(self) -> None:
        """Ping every worker now and then; one that stopped answering (a hung event loop) is killed, so it
        is restarted; and feed systemd's watchdog while the parent's own loop runs."""
        watchdog = watchdog_interval()
        while True:
            await asyncio.sleep(min(PING_INTERVAL, watchdog) if watchdog else PING_INTERVAL)
            if watchdog:
                sd_notify("WATCHDOG=1")
            for w in self.workers:
                if not (w.alive and w.ready):
                    continue
                try:
                    await acall(w.socket, "ping", timeout=PING_TIMEOUT)
                    w.missed = 0
                except (OSError, ValueError, asyncio.TimeoutError):
                    w.missed += 1
                    if w.missed >= HUNG_AFTER and w.alive:
                        log.error("worker %d (pid %d) has not answered %d pings: killing it", w.index, w.proc.pid,
                                  w.missed)
                        w.proc.kill()

    def _on_hup(self) -> None:
        for w in self.workers:
            if w.alive:
                w.proc.send_signal(signal.SIGHUP)
        try:
            new = worker_count(load_config(self.config_file).dns.workers)
        except ConfigError:
            return   # each worker says what is wrong and keeps its config
        if new != len(self.workers):
            log.warning("dns.workers is now %d, %d run: restart Hearth to change the number", new,
                        len(self.workers))

    async def _stop_workers(self) -> None:
        for w in self.workers:
            if w.alive:
                w.proc.terminate()
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                await asyncio.wait_for(w.proc.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                log.warning("worker %d did not stop in %.0fs; killing it", w.index, STOP_GRACE)
                w.proc.kill()
                await w.proc.wait()

    async def _shutdown(self) -> int:
        log.info("stopping %d workers", len(self.workers))
        sd_notify("STOPPING=1")
        if self.server is not None:
            self.server.close()
        await self._stop_workers()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for path in (self.config.control_socket, self._state_path()):
            try:
                os.unlink(path)
            except OSError:
                pass
        log.info("stopped")
        return 0

    def _state_path(self) -> str:
        return os.path.join(self.config.data_dir, "engine.json")

    def _write_state(self) -> None:
        """engine.json as one engine writes it (the parent's pid), plus the workers' pids."""
        state = {"pid": os.getpid(), "dns": self.listen, "control": self.config.control_socket,
                 "started": self.started, "workers": [w.proc.pid if w.proc else None for w in self.workers]}
        tmp = self._state_path() + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, self._state_path())

    # ------------------------------------------------------------ the control socket

    async def _start_control(self) -> None:
        self.server = await serve_lines(self.config.control_socket, self.command)

    async def command(self, command: str) -> dict:
        """One control command, answered for all workers."""
        if command == "ping":
            return {"ok": True, "pid": os.getpid(), "dns": self.listen,
                    "workers": [w.describe() for w in self.workers]}
        if command == "stats":
            replies = await self._fanout(command, 2.0)
            stats = merge_stats(r["stats"] for _w, r in replies if r and r.get("ok"))
            per = {w.index: r["stats"] for w, r in replies if r and r.get("ok")}
            stats["uptime_s"] = round(time.time() - self.started, 1)
            stats["workers"] = [{**w.describe(), "up": w.index in per,
                                 "queries": per.get(w.index, {}).get("queries", 0)} for w in self.workers]
            stats["workers_up"] = len(per)
            return {"ok": True, "stats": stats}
        if command in ("reload", "lists-reload", "policy-reload"):
            replies = await self._fanout(command, 8.0)
            answered = [r for _w, r in replies if r is not None]
            if not answered:
                return {"ok": False, "message": "no worker answers"}
            failed = [r for r in answered if not r.get("ok")] + [{}] * (len(replies) - len(answered))
            out = dict(failed[0] if failed else answered[0])
            out["ok"] = not failed
            if failed and not out.get("message"):
                out["message"] = f"{len(failed)} of {len(replies)} workers did not answer"
            gens = [r["generation"] for r in answered if isinstance(r.get("generation"), int)]
            if gens:
                out["generation"] = max(gens)
            return out
        if command.startswith(("lists-update", "explain ")):
            # worker 0 runs the list updates (the others load what it installs); any worker can explain
            for w in self.workers:
                if w.alive and w.ready:
                    try:
                        return await acall(w.socket, command, timeout=5.0)
                    except (OSError, ValueError, asyncio.TimeoutError):
                        continue
            return {"ok": False, "message": "no worker answers"}
        return {"ok": False, "message": f"unknown command {command!r}"}

    async def _fanout(self, command: str, timeout: float) -> list[tuple[Worker, Optional[dict]]]:
        """``command`` to every running worker at once: (worker, reply or None)."""
        targets = [w for w in self.workers if w.alive and w.ready]
        results = await asyncio.gather(*(acall(w.socket, command, timeout=timeout) for w in targets),
                                       return_exceptions=True)
        return [(w, r if isinstance(r, dict) else None) for w, r in zip(targets, results)]


def run_workers(config: Config, config_file: Optional[str], count: int) -> int:
    """`hearth dns` with ``dns.workers`` above 1: the parent, until SIGTERM/SIGINT."""
    longest = f"{config.control_socket}.{count - 1}"
    if len(longest.encode()) > SOCKET_PATH_MAX:
        print(f"hearth: the control socket path {longest} is too long for a Unix socket ({SOCKET_PATH_MAX} bytes): "
              "choose a shorter data_dir to run dns.workers", file=sys.stderr, flush=True)
        return EXIT_STARTUP
    log.info("dns.workers: %d engine processes", count)
    return asyncio.run(WorkerPool(config, config_file, count).run())


def worker_main(argv: Optional[list[str]] = None) -> int:
    """``python -m resolver.service.workers --worker N [--config FILE]``: one engine of several."""
    import argparse

    ap = argparse.ArgumentParser(prog="hearth dns worker")
    ap.add_argument("--worker", type=int, required=True)
    ap.add_argument("--config", metavar="FILE")
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"hearth dns worker {args.worker}: the configuration has errors:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(stream=sys.stderr, level=config.log_level.upper(),
                        format=f"%(asctime)s %(levelname)s %(name)s[worker {args.worker}]: %(message)s")
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
    listen = os.environ.get(LISTEN_ENV)
    if listen:
        config = replace(config, dns=replace(config.dns, listen=json.loads(listen)))
    from resolver.service.process import run_engine

    return run_engine(config, args.config, worker=args.worker)


if __name__ == "__main__":
    raise SystemExit(worker_main())
