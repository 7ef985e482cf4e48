"""The query log: a bounded ring buffer on the hot path, written to the store in batches.

Appending is one tuple into a ``deque``; a background task hands a batch of at most
``batch_size`` entries a ``flush_interval`` to a single writer thread. A locked or slow
store therefore never delays an answer, and past that rate answers come first: the ring
keeps the newest entries, the oldest are dropped and counted (the dashboard says so).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Union

from resolver.base.configspec import option
from resolver.base.osthread import name_os_thread, nice_os_thread
from resolver.engine import accel
from resolver.engine.answers import describe
from resolver.engine.cache import untagged
from resolver.store.protocol import Store, StoreUnavailable
from resolver.engine.wire import key_name

if TYPE_CHECKING:
    from resolver.engine.cache import CacheEntry

log = logging.getLogger("hearth.querylog")


@dataclass(frozen=True)
class QueryLogConfig:
    enabled: bool = option(True, "Keep a log of answered queries in the store (for the UI and reports).")
    buffer_size: int = option(20000, "Entries held in memory while waiting to be written; when more arrive "
                              "than the log writes, or the store falls behind, the oldest are dropped (counted, "
                              "and shown on the dashboard).", minimum=100)
    # Five small batches a second rather than one large one: the same rate and the same CPU a row (1,000 rows a
    # transaction cost no more per row than 5,000; 500 cost 22 % more), but the writer's bursts, during which
    # the event loop shares the GIL and the core with it, are a fifth as long: steady p99 at half the peak rate
    # about 9 ms instead of 14-16 on a slow machine (bench/README.md, tail_latency.py).
    flush_interval: float = option(0.2, "How often buffered entries are written.", duration=True, minimum=0.05)
    batch_size: int = option(1000, "Most entries written in one transaction, one transaction a flush_interval: "
                             "the log writes at most batch_size / flush_interval entries a second (5,000 by "
                             "default) and answers come first past that rate. Each entry costs the writer "
                             "some 10-20 µs of CPU (bench/README.md).", minimum=1)
    # The writer shares the engine's core on a small router: at equal priority the scheduler lets a batch run
    # for its whole time slice while answers wait; ten steps lower, an arriving query takes the core at once
    # and the writer still gets the idle time, which at half the peak rate is most of it.
    writer_niceness: int = option(10, "How much lower than the engine's the query log writer thread's "
                                  "CPU priority is (Linux niceness steps; 0 = the same): answers come first when "
                                  "the core is busy. Under a full load the writer gets less time, and entries past "
                                  "what it writes are dropped and counted.", minimum=0, maximum=19)
    retention: float = option(7 * 86400, "Entries older than this are deleted (a job every 6 hours).",
                              duration=True, minimum=3600, related="querylog.max_rows")
    max_rows: int = option(5_000_000, "Most entries kept: past it the oldest are deleted as new ones are written "
                           "(and counted as querylog_capped). At about 50 bytes an entry, 5,000,000 take some "
                           "250 MB; 0 keeps every entry until querylog.retention.", minimum=0,
                           related="querylog.retention")
    stats_retention: float = option(31 * 86400, "How long the hourly statistics (the dashboard, the weekly "
                                    "device reports, /api/v1/stats) are kept; they outlive the entries they count. "
                                    "A device's top names per hour are kept for 8 days at most.",
                                    duration=True, minimum=8 * 86400)


# Entries made into rows per call: the compiled query_rows holds the GIL for its whole batch (about 0.7 µs an
# entry), so a 5,000-entry batch in one call kept the event loop waiting 3.7 ms; 512 keep it near the engine's
# 0.5 ms GIL switch interval.
ROWS_PER_CALL = 512
CLIENT_NAMES_KEPT = 8 * 86400   # a device's top names per hour: the weekly report's 7 days and a day to spare

# (monotonic time, client, entry) for a cache hit, else
# (monotonic time, client, key-or-(name, qtype), rcode, answer, upstream, latency_ms, cached, reason)
Entry = tuple


def query_rows(batch: list[Entry], wall: float, names: dict) -> list[tuple]:
    """The ring's entries as the store's rows (ts, client, qname, qtype, rcode, answer, upstream, latency, cached,
    reason): ``wall`` turns the monotonic stamps into UNIX time, ``names`` memoises cache key → (name, qtype),
    and an entry's answer summary is made once (kept on the entry). ``_fastpath.query_rows`` is its compiled
    twin: the same rows, the same memo, the same summaries."""
    rows = []
    append = rows.append
    for item in batch:
        if len(item) == 3:
            now, client, entry = item
            q = entry.key
            nq = names.get(q)
            if nq is None:   # the entry's key, view tag and all: its name is the untagged key's
                k = untagged(q)
                nq = names[q] = (key_name(k), k[-5] << 8 | k[-4])
            answer = entry.summary
            if answer is None:
                answer = describe(entry)
            append((now + wall, client, nq[0], nq[1], entry.rcode, answer, "", 0.0, True, entry.reason))
            continue
        now, client, q, rcode, answer, upstream, latency, cached, reason = item
        if q.__class__ is bytes:
            nq = names.get(q)
            if nq is None:
                nq = names[q] = (key_name(q), q[-5] << 8 | q[-4])
        else:
            nq = q
        if answer.__class__ is not str:
            answer = answer.summary or describe(answer)
        append((now + wall, client, nq[0], nq[1], rcode, answer, upstream, latency, cached, reason))
    return rows


def _writer_thread_starts(niceness: int) -> None:
    """The writer thread's first step: its name for ``top -H`` and ``ps -L``, its priority below the engine's."""
    name_os_thread("hearth-querylog")
    nice_os_thread(niceness)


class QueryLog:
    def __init__(self, config: QueryLogConfig, store_factory: Optional[Callable[[], Store]]):
        self.config = config
        self.ring: deque[Entry] = deque(maxlen=config.buffer_size)
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self.capped = 0      # written entries deleted to keep querylog.max_rows
        self.expired = 0     # written entries deleted by querylog.retention
        self._store_factory = store_factory
        self._store: Optional[Store] = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="querylog",
                                        initializer=_writer_thread_starts, initargs=(config.writer_niceness,))
        self._busy = False
        self._writing = 0       # entries of the batch the writer thread has in hand
        self._names: dict = {}  # cache key → (name, qtype): repeated names are decoded once
        self.held: list = []    # rows a shared store that is down could not take: written when it is back
        self._holding = False
        self.to_wall: Optional[Callable[[float], float]] = None   # monotonic → UNIX time (a test clock)
        # called in the writer thread with each written batch and the store (the time-budget meter)
        self.observers: list[Callable[[list, Store], None]] = []
        fastpath = accel.fastpath   # the rows in C when it is built (the same rows)
        self._rows: Callable[[list, float, dict], list] = query_rows if fastpath is None else fastpath.query_rows

    def log_hit(self, now: float, client: str, entry: CacheEntry) -> None:
        """Hot path (cache hit): one short tuple; the writer fills in the rest from the entry."""
        if self.config.enabled:
            ring = self.ring
            if len(ring) == ring.maxlen:
                self.dropped += 1
            ring.append((now, client, entry))

    def record(self, now: float, client: str, question: Union[bytes, tuple[str, int]], rcode: int,
               answer: Union[str, CacheEntry], upstream: str, latency_ms: float, cached: bool,
               reason: Optional[str]) -> None:
        """One answered query. ``now`` is the engine's monotonic clock; ``question`` a cache key
        (bytes) or (name, qtype); ``answer`` a summary text or the entry to summarise later."""
        if self.config.enabled:
            ring = self.ring
            if len(ring) == ring.maxlen:
                self.dropped += 1
            ring.append((now, client, question, rcode, answer, upstream, latency_ms, cached, reason))

    async def run(self) -> None:
        """Flush forever (cancel to stop; :meth:`close` writes what is left)."""
        while True:
            await asyncio.sleep(self.config.flush_interval)
            await self.flush()

    async def flush(self) -> None:
        if self._busy or self._store_factory is None:
            return
        if not (self.ring or self.held):   # idle: an hour just over still has top names to write
            unsettled = getattr(self._store, "names_unsettled", None)   # (a store without a names roll-up: none)
            if unsettled is not None and unsettled(self._wall_now()):
                self._busy = True
                try:
                    await asyncio.get_running_loop().run_in_executor(self._pool, self._settle)
                finally:
                    self._busy = False
            return
        batch = self._take()
        self._busy, self._writing = True, len(batch)
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._write, batch)
        finally:
            self._busy, self._writing = False, 0

    @property
    def pending(self) -> int:
        """Entries answered but not yet written nor dropped (the ring, the batch in hand, held rows)."""
        return len(self.ring) + self._writing + len(self.held)

    def _take(self) -> list[Entry]:
        ring, n = self.ring, min(len(self.ring), self.config.batch_size)
        return [ring.popleft() for _ in range(n)]

    def _write(self, batch: list[Entry]) -> None:
        wall = time.time() - time.monotonic()  # monotonic stamps → UNIX time
        names = self._names
        if len(names) > 50000:
            names.clear()
        rows: list = []
        for i in range(0, len(batch), ROWS_PER_CALL):   # the event loop gets the GIL back between calls
            rows += self._rows(batch[i:i + ROWS_PER_CALL], wall, names)
        if self.to_wall is not None:
            to_wall = self.to_wall
            rows = [(to_wall(r[0] - wall), *r[1:]) for r in rows]
        if self.held:
            rows, self.held = self.held + rows, []
        try:
            if self._store is None:
                self._store = self._store_factory()
            self._store.add_queries(rows)
            self.written += len(rows)
            if self._holding:
                self._holding = False
                log.info("query log: the store is back, %d entries written", len(rows))
        except StoreUnavailable as exc:  # a shared store that is down: hold the rows (bounded) until it is back
            self.write_errors += 1
            keep = rows[-self.config.buffer_size:]
            self.dropped += len(rows) - len(keep)
            if not self._holding or len(keep) < len(rows):
                log.warning("query log: holding %d entries until the store is back: %s", len(keep), exc)
            self.held, self._holding = keep, True
            return
        except Exception as exc:  # noqa: BLE001 - locked, disk full, …: answers go on, the batch is counted lost
            self.write_errors += 1
            self.dropped += len(rows)
            log.warning("query log: could not write %d entries: %s", len(rows), exc)
            return
        for observe in self.observers:
            try:
                observe(rows, self._store)
            except Exception as exc:  # noqa: BLE001 - the rows are in; a meter that failed catches up next batch
                log.warning("query log: an observer failed: %s", exc)
        if self.config.max_rows:
            try:
                self.capped += self._store.cap_queries(self.config.max_rows)
            except Exception as exc:  # noqa: BLE001 - the rows are in; the next batch caps again
                log.warning("query log: could not cap the log: %s", exc)

    def _wall_now(self) -> float:
        return time.time() if self.to_wall is None else self.to_wall(time.monotonic())

    def _settle(self, final: bool = False) -> None:
        settle = getattr(self._store, "settle_names", None)
        if settle is None:
            return
        try:
            settle(None if final else self._wall_now())
        except Exception as exc:  # noqa: BLE001 - those names are left out of the hour's top; answers go on
            self.write_errors += 1
            log.warning("query log: could not write the hour's top names: %s", exc)

    def purge(self, now: float) -> int:
        """Delete entries past querylog.retention and statistics past querylog.stats_retention (in the
        writer thread, so it never races a batch); returns the entries deleted."""
        return self._pool.submit(self._purge, now).result()

    def _purge(self, now: float) -> int:
        if self._store is None and self._store_factory is not None:
            self._store = self._store_factory()
        if self._store is None:
            return 0
        n = self._store.purge_queries(now - self.config.retention)
        self.expired += n
        self._store.purge_query_stats(now - self.config.stats_retention, clients_older_than=now - CLIENT_NAMES_KEPT)
        return n

    def close(self) -> None:
        """Write whatever is buffered, then release the store."""
        self._pool.shutdown(wait=True)
        if self._store_factory is not None:
            while self.ring:
                self._write(self._take())
        if self._store is not None:
            self._settle(final=True)
            self._store.close()
            self._store = None
