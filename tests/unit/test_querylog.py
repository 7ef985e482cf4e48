"""The query log never makes an answer wait: a slow or locked store costs entries, not time."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from resolver.querylog import QueryLog, QueryLogConfig
from resolver.store_sqlite import SQLiteStore, open_store
from resolver.wire import parse_question
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
    from resolver.store import QueryRow
    now = time.time()
    store.add_queries([QueryRow(now - 10 * 86400, "c", "old.test", 1, 0, "", "", 0, False, None),
                       QueryRow(now, "c", "new.test", 1, 0, "", "", 0, False, None)])
    assert store.purge_queries(now - 7 * 86400) == 1
    assert [r.qname for r in store.recent_queries()] == ["new.test"]
