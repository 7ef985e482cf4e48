"""The `hearth dns` process around the engine: the open-file limit, the event loop (uvloop when installed),
the GIL switch interval, and one clear line with EXIT_STARTUP when start-up fails."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import Optional

from resolver.engine.startup import EXIT_STARTUP, StartupError
from resolver.service.config import Config
from resolver.service.server import Engine

ENGINE_SWITCH_INTERVAL = 0.0005  # s: the GIL goes back to the event loop this soon after a helper thread took it
# Young-generation collections every 700 allocations (CPython's default) cost a miss about as much as its
# socket calls: a miss allocates some twenty tracked objects that all live on in the cache.
ENGINE_GC_THRESHOLDS = (20000, 20, 20)

log = logging.getLogger("hearth.engine")


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

def _freeze_heap() -> None:
    """Everything made during start-up (modules, config, policies, the index's tables) lives as long as the
    process: frozen, it is no longer walked by the collector's full passes, which misses set off as the
    cache grows."""
    gc.collect()
    gc.freeze()


def run_engine(config: Config, config_file: Optional[str], worker: Optional[int] = None) -> int:
    """Entry point of `hearth dns`: run until SIGTERM/SIGINT. A start-up failure ends it with one line on
    standard error and EXIT_STARTUP. ``worker``: this engine's number among ``dns.workers`` processes (their
    parent, :mod:`.workers`, starts them)."""
    _raise_file_limit()
    try:
        return _run(config, config_file, worker)
    except StartupError as exc:
        log.debug("start-up failed", exc_info=True)
        print(f"hearth: {exc}", file=sys.stderr, flush=True)
        return EXIT_STARTUP


async def _stop_when_orphaned(engine: Engine, parent: int) -> None:
    """A worker whose parent is gone (killed) stops, rather than answer on unsupervised."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            log.warning("the workers' parent (pid %d) is gone: stopping", parent)
            engine.stop()


async def _serve(engine: Engine, worker: Optional[int]) -> None:
    if worker is not None:
        engine._background.append(asyncio.ensure_future(_stop_when_orphaned(engine, os.getppid())))
    await engine.run_forever()


def _run(config: Config, config_file: Optional[str], worker: Optional[int] = None) -> int:
    engine = Engine(config, config_file, worker)
    try:
        import uvloop  # optional extra: about twice the packet rate of the default loop

        runner = uvloop.run
        log.info("event loop: uvloop %s", uvloop.__version__)
    except ImportError:
        runner = asyncio.run
        log.info("event loop: asyncio (install hearth-dns[fast] for uvloop)")
    from resolver.engine import accel

    log.info("compiled accelerator: %s", "on" if accel.fastpath is not None else
             "off (HEARTH_NO_ACCEL)" if os.environ.get("HEARTH_NO_ACCEL", "") not in ("", "0") else
             "not built (no C compiler or Python headers when Hearth was installed): pure Python")
    from blocklists import index as block_index

    log.info("block index lookup: %s", "compiled (blocklists/_indexscan.c)" if block_index.accel is not None
             else "pure Python")
    # The query log's writer thread holds the GIL while it builds a batch; every socket call of the
    # event loop releases it, and the default 5 ms switch interval then kept answers waiting (p99 at
    # half the peak rate 31 ms, 7 ms with 0.5 ms; bench/README.md, "Where the time goes").
    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL)
    engine.gc_pauses.install()
    if os.environ.get("HEARTH_GC_TUNE", "1") == "1":
        gc.set_threshold(*ENGINE_GC_THRESHOLDS)
        engine.on_ready.append(_freeze_heap)
    runner(_serve(engine, worker))
    return 0
