"""The engine's list jobs: the first compile on a fresh install, scheduled and on-demand updates (each in its own
process, see :mod:`blocklists.runner`), and loading the compiled index into a new policy generation.

A mixin of :class:`resolver.service.server.Engine`: it uses the engine's ``config``, ``scheduler``, ``index``,
``meta`` and ``_background`` and calls ``_apply_policies`` (:mod:`resolver.service.policy_sync`).
"""
from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import time
from typing import Optional

log = logging.getLogger("hearth.engine")

INDEX_WATCH_INTERVAL = 1.0   # a worker of several loads an index file another worker installed within this long


def index_files_signature(data_dir: str) -> tuple:
    """What identifies the installed index files (inode, size, mtime of index.bin and index.json): it changes
    when a list update renames new ones into place."""
    out = []
    for name in ("index.bin", "index.json"):
        try:
            st = os.stat(os.path.join(data_dir, "lists", name))
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def soon(seconds: float) -> datetime.datetime:
    """The scheduler's "next run" ``seconds`` from now."""
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)


class ListsJobs:
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
        await self.reload_lists()   # also after a failure: a run that was stopped may have installed nothing new

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
        opened = self._open_index()
        if opened is None:
            return False
        self._install_index(*opened)
        return True

    async def reload_lists(self) -> bool:
        """:meth:`load_lists` with the index opened and checked in a thread: the checksum of a 1 M-name index
        alone held the event loop, and every answer, some 40 ms; only the policies' rebuild is done on it."""
        opened = await asyncio.get_running_loop().run_in_executor(None, self._open_index)
        if opened is None:
            return False
        self._install_index(*opened)
        return True

    def _open_index(self) -> Optional[tuple]:
        """(signature, index, meta) of the installed index files; None (logged) when they cannot be opened."""
        from blocklists.manager import load_index

        # read before loading: files replaced while loading differ from it, and are loaded again
        signature = index_files_signature(self.config.data_dir)
        try:
            index, meta = load_index(self.config.data_dir)
        except Exception as exc:  # noqa: BLE001 - a bad index file must not stop answering
            log.error("cannot open the compiled lists, keeping the current ones: %s", exc)
            return None
        return signature, index, meta

    def _install_index(self, signature: tuple, index, meta: dict) -> None:
        """Put an opened index in force: the profiles' policies rebuilt on it (a new generation)."""
        self._index_signature = signature
        self.index = index if self._wants_lists() else None
        self.meta = meta or {}
        if self._snapshot is not None:
            self._apply_policies(self._snapshot)
        if index is not None:
            log.info("lists loaded: %s", ", ".join(f"{v['category']} ({', '.join(v['lists'])})"
                                                  for v in meta.values()) or "none")

    async def _watch_index(self) -> None:
        """One worker of several (``dns.workers``): worker 0 runs the list updates and loads what they
        install; the others see the index files change here and load them too."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(INDEX_WATCH_INTERVAL)
            seen = await loop.run_in_executor(None, index_files_signature, self.config.data_dir)
            if seen != getattr(self, "_index_signature", None):
                log.info("the compiled lists changed on disk: loading them")
                await self.reload_lists()

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
                               id="lists-update", next_run_time=soon(first), max_instances=1, coalesce=True,
                               replace_existing=True)

