"""SQLite implementation of :class:`resolver.store.Store` (WAL, foreign keys, migrations)."""
from __future__ import annotations

import os
import sqlite3
import threading
from typing import Optional, Sequence

from .store import QueryRow

# Each migration takes the schema from version i to i+1. Never edit a shipped one: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE query_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        client TEXT NOT NULL,
        qname TEXT NOT NULL,
        qtype INTEGER NOT NULL,
        rcode INTEGER NOT NULL,
        answer TEXT NOT NULL DEFAULT '',
        upstream TEXT NOT NULL DEFAULT '',
        latency_ms REAL NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        reason TEXT
    );
    CREATE INDEX query_log_ts ON query_log (ts);
    CREATE INDEX query_log_client_ts ON query_log (client, ts);
    """,
]


class SQLiteStore:
    """One connection guarded by a lock: safe to call from the engine's writer thread and others."""

    def __init__(self, path: str, *, timeout: float = 5.0):
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self._db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(f"{self.path}: store schema {version} is newer than this Hearth "
                                   f"({len(MIGRATIONS)}); upgrade Hearth or restore a backup")
            for i in range(version, len(MIGRATIONS)):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _statements(MIGRATIONS[i]):
                        self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version={i + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            return len(MIGRATIONS)

    def add_queries(self, rows: Sequence[QueryRow]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO query_log (ts, client, qname, qtype, rcode, answer, upstream, latency_ms, cached,"
                    " reason) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def recent_queries(self, limit: int = 100, *, client: Optional[str] = None,
                       qname_contains: Optional[str] = None) -> list[QueryRow]:
        sql = ("SELECT ts, client, qname, qtype, rcode, answer, upstream, latency_ms, cached, reason"
               " FROM query_log")
        where, args = [], []
        if client:
            where.append("client = ?")
            args.append(client)
        if qname_contains:
            where.append("instr(qname, ?) > 0")
            args.append(qname_contains.lower())
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [QueryRow(*r[:8], bool(r[8]), r[9]) for r in self._db.execute(sql, args)]

    def purge_queries(self, older_than: float) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM query_log WHERE ts < ?", (older_than,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(data_dir: str) -> SQLiteStore:
    """The appliance's store in ``data_dir``, migrated to the current schema."""
    store = SQLiteStore(os.path.join(data_dir, "hearth.db"))
    store.migrate()
    return store
