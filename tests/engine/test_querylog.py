"""The query log never makes an answer wait: a slow or locked store costs entries, not time."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from resolver.engine.querylog import QueryLog, QueryLogConfig
from resolver.store.sqlite import SQLiteStore, open_store
from resolver.engine.wire import parse_question
from dnslib import DNSRecord


def _key(name="www.example.com", qtype="A"):
    return parse_question(bytes(DNSRecord.question(name, qtype).pack())).key


def test_entries_are_written_in_batches(tmp_path):
    qlog = QueryLog(QueryLogConfig(flush_interval=0.05), lambda: open_store(str(tmp_path)))

    async def main():
        task = asyncio.ensure_future(qlog.run())
        for i in range(250):
            qlog.record(time.monotonic(), "192.168.1.20", _key(f"n{i}.example.com"), 0, "A 192.0.2.1", "udp://x",
                        1.5, False, None)
        qlog.record(time.monotonic(), "192.168.1.21", ("odd.example", 16), 3, "", "", 0.0, True, "local-record")
        await asyncio.sleep(0.4)
        task.cancel()

    asyncio.run(main())
    qlog.close()
    store = open_store(str(tmp_path))
    rows = store.recent_queries(limit=1000)
    assert len(rows) == 251 and qlog.written == 251 and qlog.dropped == 0
    assert rows[0].qname == "odd.example" and rows[0].reason == "local-record" and rows[0].cached
    assert rows[-1].qname == "n0.example.com" and rows[-1].qtype == 1 and rows[-1].answer == "A 192.0.2.1"
    assert [r.qname for r in store.recent_queries(client="192.168.1.21")] == ["odd.example"]


def test_a_batch_larger_than_one_call_keeps_every_entry_in_order(tmp_path):
    """Rows are made ROWS_PER_CALL entries a call (the compiled loop must not hold the GIL for a whole batch):
    a batch of several calls' worth is written whole, in order, repeated names decoded alike."""
    from resolver.engine.querylog import ROWS_PER_CALL

    n = 2 * ROWS_PER_CALL + 37
    qlog = QueryLog(QueryLogConfig(batch_size=n), lambda: open_store(str(tmp_path)))
    for i in range(n):
        qlog.record(1000.0 + i, "192.168.1.20", _key(f"n{i % 700}.example.com"), 0, "A 192.0.2.1", "", 1.0,
                    False, None)
    qlog._write(qlog._take())
    qlog.close()
    rows = open_store(str(tmp_path)).recent_queries(limit=n + 10)
    assert len(rows) == n == qlog.written
    assert [r.qname for r in reversed(rows)] == [f"n{i % 700}.example.com" for i in range(n)]


class SlowStore:
    def __init__(self):
        self.release = threading.Event()
        self.batches = []

    def add_queries(self, rows):
        self.release.wait(5)
        self.batches.append(len(rows))

    def cap_queries(self, max_rows):
        return 0

    def close(self):
        pass


def test_slow_store_drops_oldest_and_never_blocks_recording():
    store = SlowStore()
    qlog = QueryLog(QueryLogConfig(buffer_size=100, flush_interval=0.01, batch_size=10), lambda: store)

    async def main():
        task = asyncio.ensure_future(qlog.run())
        await asyncio.sleep(0.05)  # the writer is now stuck on its first batch
        t0 = time.perf_counter()
        for _ in range(1000):
            qlog.record(time.monotonic(), "10.0.0.2", _key(), 0, "", "", 0.0, True, None)
        elapsed = time.perf_counter() - t0
        store.release.set()
        await asyncio.sleep(0.2)
        task.cancel()
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed < 0.5  # 1000 records in well under a millisecond each, whatever the store does
    assert qlog.dropped == 900 and len(qlog.ring) <= 100


def test_locked_database_counts_a_write_error_and_keeps_going(tmp_path):
    open_store(str(tmp_path)).close()
    locker = sqlite3.connect(tmp_path / "hearth.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    qlog = QueryLog(QueryLogConfig(), lambda: SQLiteStore(str(tmp_path / "hearth.db"), timeout=0.1))

    async def main():
        qlog.record(time.monotonic(), "10.0.0.2", _key(), 0, "", "", 0.0, False, None)
        await qlog.flush()
        assert qlog.write_errors == 1 and qlog.dropped == 1
        locker.execute("ROLLBACK")
        qlog.record(time.monotonic(), "10.0.0.2", _key(), 0, "", "", 0.0, False, None)
        await qlog.flush()

    asyncio.run(main())
    qlog.close()
    assert qlog.written == 1


def test_purge_deletes_old_entries(tmp_path):
    store = open_store(str(tmp_path))
    from resolver.store.protocol import QueryRow
    now = time.time()
    store.add_queries([QueryRow(now - 10 * 86400, "c", "old.test", 1, 0, "", "", 0, False, None),
                       QueryRow(now, "c", "new.test", 1, 0, "", "", 0, False, None)])
    assert store.purge_queries(now - 7 * 86400) == 1
    assert [r.qname for r in store.recent_queries()] == ["new.test"]


def test_soak_the_size_cap_holds_and_everything_is_counted(tmp_path):
    """12 s of queries as fast as the writer takes them, into a real store capped at 15,000 rows: the log never
    grows past the cap (plus one batch), the file stops growing, and what was written, dropped, capped and
    expired adds up, with the statistics counting every written query."""
    cap, batch = 15_000, 2_000
    qlog = QueryLog(QueryLogConfig(flush_interval=0.05, batch_size=batch, buffer_size=20_000, max_rows=cap),
                    lambda: open_store(str(tmp_path)))
    reader = open_store(str(tmp_path))
    keys = [_key(f"n{i}.example.com") for i in range(500)]
    recorded, sizes, counts = 0, [], []

    async def main():
        nonlocal recorded
        task = asyncio.ensure_future(qlog.run())
        end = time.monotonic() + 12
        next_sample = time.monotonic() + 1
        while time.monotonic() < end:
            for i in range(500):
                qlog.record(time.monotonic(), f"10.0.{i % 7}.{i % 50}", keys[i], 0, "A 192.0.2.1", "udp://x", 1.0,
                            False, "category:adult" if i % 10 == 0 else None)
            recorded += 500
            await asyncio.sleep(0.002)
            if time.monotonic() >= next_sample:
                next_sample += 1
                counts.append(reader.count_queries())
                sizes.append(sum(p.stat().st_size for p in tmp_path.glob("hearth.db*")))
        task.cancel()

    asyncio.run(main())
    qlog.close()
    assert qlog.written > 3 * cap, "the writer did not get through enough to test the cap"
    assert max(counts) <= cap + batch and reader.count_queries() == cap
    assert qlog.capped == qlog.written - cap
    assert qlog.written + qlog.dropped == recorded and qlog.write_errors == 0
    late = sizes[len(sizes) // 2:]
    assert max(late) <= 1.25 * late[0] + (1 << 20), sizes   # freed pages are reused: the file stops growing
    hour = 3600 * int(time.time() // 3600) - 3600
    stats = reader.hourly_counts(hour, time.time())
    assert sum(c.total for c in stats) == qlog.written                  # the roll-ups count every written query
    blocked = reader.query_page(cap, blocked=True)
    assert len(blocked) == sum(1 for lq in reader.query_page(cap) if lq.row.reason)   # blocked rows are findable
    # the age limit: everything written is older than a retention ending in the future
    qlog2 = QueryLog(QueryLogConfig(retention=3600), lambda: open_store(str(tmp_path)))
    assert qlog2.purge(time.time() + 3600 + 5) == cap and qlog2.expired == cap
    assert reader.count_queries() == 0 and sum(c.total for c in reader.hourly_counts(hour, time.time())) \
        == qlog.written
    qlog2.close()
    reader.close()


def _engine_threads() -> dict:
    """{thread name: niceness} of this process's threads, from /proc."""
    import os

    threads = {}
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{tid}/comm") as fh:
            name = fh.read().strip()
        with open(f"/proc/{os.getpid()}/task/{tid}/stat") as fh:
            nice = int(fh.read().rsplit(")", 1)[1].split()[16])   # field 19 of proc(5)
        threads[name] = nice
    return threads


@pytest.mark.parametrize("niceness", [10, 0])
def test_the_writer_thread_is_named_for_top_and_ps_and_yields_to_answers(tmp_path, niceness):
    """`top -H` / `ps -L` on an appliance show the query log's writer apart from the event loop, running
    querylog.writer_niceness steps below it (0: at its priority)."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("thread names and priorities from /proc are Linux's")
    qlog = QueryLog(QueryLogConfig(flush_interval=0.05, writer_niceness=niceness),
                    lambda: open_store(str(tmp_path)))
    qlog.record(time.monotonic(), "192.168.1.20", _key("a.example.com"), 0, "A 192.0.2.1", "udp://x", 1.0, False,
                None)
    asyncio.run(qlog.flush())
    threads = _engine_threads()
    qlog.close()
    assert qlog.written == 1
    assert threads["hearth-querylog"] == min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)


def _a_device_hour(qlog: QueryLog, base: float) -> None:
    """40 names asked once by one device, the latest name first (its first 30 are written at once)."""
    for i in reversed(range(40)):
        qlog.record(base + i, "192.168.1.30", _key(f"a{i:02d}.example"), 0, "", "", 0.0, False, None)


def test_an_hours_top_names_are_written_when_the_writer_is_idle_past_its_end(tmp_path):
    future = 3600.0 * (int(time.time()) // 3600 + 48)
    clock = {"offset": 0.0}
    base = time.monotonic()
    qlog = QueryLog(QueryLogConfig(), lambda: open_store(str(tmp_path)))
    qlog.to_wall = lambda mono: future + (mono - base) + clock["offset"]
    _a_device_hour(qlog, base)
    store = open_store(str(tmp_path))

    def device_names() -> set:
        return {t.name for t in store.top_domains(future, 100, clients=["192.168.1.30"])}

    async def main():
        await qlog.flush()
        assert len(device_names()) == 30 and "a00.example" not in device_names()   # the hour is open
        await qlog.flush()                                   # idle within the hour: nothing to add
        assert "a00.example" not in device_names()
        clock["offset"] = 3600.0                             # the hour is over, no query since
        await qlog.flush()

    asyncio.run(main())
    assert {f"a{i:02d}.example" for i in range(30)} <= device_names()   # the hour's top (by name, all asked once)
    qlog.close()


def test_closing_the_log_writes_the_open_hours_top_names(tmp_path):
    future = 3600.0 * (int(time.time()) // 3600 + 48)
    base = time.monotonic()
    qlog = QueryLog(QueryLogConfig(), lambda: open_store(str(tmp_path)))
    qlog.to_wall = lambda mono: future + (mono - base)
    _a_device_hour(qlog, base)
    qlog.close()
    names = {t.name for t in open_store(str(tmp_path)).top_domains(future, 100, clients=["192.168.1.30"])}
    assert {f"a{i:02d}.example" for i in range(30)} <= names
