"""SQLite implementation of :class:`resolver.store.protocol.Store` (WAL, foreign keys, migrations): the embedded
default, one file in data_dir. The statements are the rooms' (``policy_rooms``, ``web_rooms``,
``querylog_rooms``), shared with the PostgreSQL store; this module holds the connection and the migrations."""
from __future__ import annotations

import os
import sqlite3
import threading
from itertools import chain
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from resolver.store.budget_rooms import BudgetRooms
from resolver.store.policy_rooms import PolicyRooms
from resolver.store.provider_rooms import ProviderRooms
from resolver.store.protocol import SchemaTooNewError
from resolver.store.querylog_rooms import _INSERT_ROWS, QueryLogRooms
from resolver.store.schema_sqlite import MIGRATIONS
from resolver.store.sqlcommon import statements as _statements
from resolver.store.web_rooms import WebRooms

__all__ = ["MIGRATIONS", "SQLiteStore", "open_store", "_statements"]


class _Handle:
    """The connection as the rooms use it."""

    __slots__ = ("db",)

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, args).lastrowid


def _many_rows(db: _Handle, sql: str, rows: list[tuple]) -> None:
    """``executemany(sql, rows)`` for an INSERT of one row (its ``VALUES (?,…)``), a statement for up to 999
    parameters' worth of rows each (the least SQLite allows): the same rows in the same order, a third less CPU
    per row than one statement each (the query log's batches)."""
    if len(rows) < 8:
        db.executemany(sql, rows)
        return
    width = len(rows[0])
    per = min(200, 999 // width)
    many = _MANY.get((sql, width))
    if many is None:
        one = "(" + ",".join("?" * width) + ")"
        many = _MANY[(sql, width)] = sql.replace(f"VALUES {one}", "VALUES " + ",".join([one] * per), 1)
    if many == sql:   # not the INSERT of one row of this width: one by one
        db.executemany(sql, rows)
        return
    full = len(rows) - len(rows) % per
    if full:
        flat = list(chain.from_iterable(rows[:full] if full < len(rows) else rows))
        step = per * width
        db.executemany(many, [flat[i:i + step] for i in range(0, len(flat), step)])
    if full < len(rows):
        db.executemany(sql, rows[full:])


_MANY: dict[tuple[str, int], str] = {}   # (one-row INSERT, its width) → the INSERT of as many rows as fit


def _lower(text: Any) -> Any:
    """SQL ``hearth_lower(x)``: Python's lower case (SQLite's lower() leaves non-ASCII letters alone)."""
    return text.lower() if isinstance(text, str) else text


class SQLiteStore(PolicyRooms, WebRooms, QueryLogRooms, BudgetRooms, ProviderRooms):
    """One connection guarded by a lock: safe to call from the engine's writer thread and others."""

    _integrity_errors = (sqlite3.IntegrityError,)
    _lock_order = False   # one writer at a time (the database lock): the roll-ups' upserts need no order
    kind = "sqlite"

    def __init__(self, path: str, *, timeout: float = 5.0):
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self._db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._handle = _Handle(self._db)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.create_function("hearth_lower", 1, _lower, deterministic=True)
        self._init_querylog()

    def _insert_rows(self, db: _Handle, raw: list[tuple]) -> None:
        _many_rows(db, _INSERT_ROWS, raw)

    def _upsert_rows(self, db: _Handle, sql: str, rows: list[tuple]) -> None:
        _many_rows(db, sql, rows)

    def describe(self) -> str:
        """Where the store is, for messages."""
        return self.path

    @contextmanager
    def _read(self) -> Iterator[_Handle]:
        with self._lock:
            yield self._handle

    @contextmanager
    def _transaction(self, lock: bool = True) -> Iterator[_Handle]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._handle
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise SchemaTooNewError(f"{self.path}: store schema {version} is newer than this Hearth "
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

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_store(data_dir: str) -> SQLiteStore:
    """The appliance's SQLite store in ``data_dir``, migrated to the current schema (see
    :func:`resolver.store.open.open_store` for the store a config names)."""
    store = SQLiteStore(os.path.join(data_dir, "hearth.db"))
    store.migrate()
    return store
