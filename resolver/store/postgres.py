"""PostgreSQL implementation of :class:`resolver.store.protocol.Store`: one store shared by several Hearth nodes.

psycopg 3 with a connection pool (broken connections are replaced, so a node reconnects by itself after the
server comes back); the statements are the rooms' (``policy_rooms``, ``web_rooms``, ``querylog_rooms``), shared
with SQLite. Writers are serialised by a transaction-level advisory lock (as SQLite's BEGIN IMMEDIATE does), and
every policy change sends ``NOTIFY hearth_policy`` in its transaction: :meth:`PostgresStore.watch` LISTENs for it
so each node reloads within a moment, without polling tables. Migrations run under a session advisory lock, so
any number of nodes starting at once migrate exactly once.
"""
from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from resolver.store.budget_rooms import BudgetRooms
from resolver.store.policy_rooms import PolicyRooms
from resolver.store.provider_rooms import ProviderRooms
from resolver.store.protocol import SchemaTooNewError, StoreUnavailable
from resolver.store.querylog_rooms import QUERY_LOG_COLUMNS, QueryLogRooms
from resolver.store.schema_postgres import MIGRATIONS
from resolver.store.web_rooms import WebRooms

log = logging.getLogger("hearth.store")
# the pool logs every failed attempt; the store says it once, as StoreUnavailable and from its listener
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

POLICY_CHANNEL = "hearth_policy"      # NOTIFY: profiles, devices, schedules, pauses, temporary allows changed
SETTINGS_CHANNEL = "hearth_settings"  # NOTIFY: a setting the web UI owns changed
_MIGRATE_LOCK = 0x4845415254480001    # advisory lock keys ("HEARTH" + n)
_WRITE_LOCK = 0x4845415254480002
_PARTITION_LOCK = 0x4845415254480003
DAY_MS = 86_400_000


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """The rooms' ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Handle:
    """A pooled connection as the rooms use it."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.conn.execute(_pg(sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(_pg(sql), rows)

    def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.conn.execute(_pg(sql + " RETURNING id"), tuple(args)).fetchone()[0]


def describe_url(url: str) -> str:
    """The URL without a password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    host, port, db = info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname", "")
    user = info.get("user")
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}"


class PostgresStore(PolicyRooms, WebRooms, QueryLogRooms, BudgetRooms, ProviderRooms):
    """A pool of connections to one database; safe to call from any thread."""

    _integrity_errors = (psycopg.errors.IntegrityError,)
    kind = "postgresql"

    def __init__(self, url: str, *, node: str = "", max_connections: int = 4, timeout: float = 5.0):
        self.url = url
        self.node = node
        self.timeout = timeout
        self.problem: Optional[str] = None        # the last connection error, None while connected
        kwargs = {"autocommit": True, "connect_timeout": max(1, int(timeout)),
                  "application_name": f"hearth {node}".strip()[:63]}
        self.pool = ConnectionPool(url, min_size=1, max_size=max(1, max_connections), kwargs=kwargs,
                                   timeout=timeout, check=ConnectionPool.check_connection, open=False,
                                   name="hearth-store", reconnect_timeout=2.0)
        self.pool.open(wait=False)
        self._init_querylog()
        self._days: set[int] = set()              # query_log partitions known to exist

    def describe(self) -> str:
        return describe_url(self.url)

    # -- connections -------------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection() as conn:
                yield conn
            self.problem = None
        except PoolTimeout as exc:     # no connection could be made in time: the server is down
            self.problem = self._why_not()
            raise StoreUnavailable(f"the database is unavailable: {self.problem}") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.problem = _first_line(exc)
            raise StoreUnavailable(f"the database is unavailable: {self.problem}") from exc

    def _why_not(self) -> str:
        """Why no connection can be made (the pool only says it timed out)."""
        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error as exc:
            return _first_line(exc)
        return "no free connection in time"

    @contextmanager
    def _read(self) -> Iterator[_Handle]:
        with self._connection() as conn:
            yield _Handle(conn)

    @contextmanager
    def _transaction(self, lock: bool = True) -> Iterator[_Handle]:
        with self._connection() as conn, conn.transaction():
            if lock:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield _Handle(conn)

    def _bump(self, db: _Handle) -> None:
        super()._bump(db)
        db.execute(f"NOTIFY {POLICY_CHANNEL}")

    @staticmethod
    def _contains(column: str) -> str:
        return f"strpos({column}, ?) > 0"

    @staticmethod
    def _folded(column: str) -> str:
        return f"lower({column}::text)"

    def _insert_rows(self, db: _Handle, raw: list[tuple]) -> None:
        with db.conn.cursor().copy(f"COPY query_log ({QUERY_LOG_COLUMNS}) FROM STDIN") as copy:
            for r in raw:
                copy.write_row(r)

    # -- the query log: a partition per day --------------------------------------------------------

    def ensure_days(self, days: Iterable[int], db: Optional[_Handle] = None) -> None:
        """Make the query log's partitions for ``days`` (days since 1970, UTC) and the day after each; in
        ``db``'s transaction when given, else in a short one of its own (nodes may race: a lock orders them)."""
        want = sorted({d + k for d in days for k in (0, 1)} - self._days)
        if not want:
            return
        if db is None:
            with self._transaction(lock=False) as own:
                self._make_days(want, own)
        else:
            self._make_days(want, db)
        self._days.update(want)

    @staticmethod
    def _make_days(days: list[int], db: _Handle) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_PARTITION_LOCK,))
        for day in days:
            db.execute(f"CREATE TABLE IF NOT EXISTS query_log_d{int(day)} PARTITION OF query_log"
                       f" FOR VALUES FROM ({int(day) * DAY_MS}) TO ({(int(day) + 1) * DAY_MS})")

    def _partitions(self, db: _Handle) -> list[int]:
        rows = db.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                          " WHERE i.inhparent = 'query_log'::regclass").fetchall()
        return sorted(int(r[0].rsplit("_d", 1)[1]) for r in rows if r[0].startswith("query_log_d"))

    def add_queries(self, rows: Sequence) -> None:
        if rows:
            self.ensure_days({int(r[0] * 1000) // DAY_MS for r in rows})
        super().add_queries(rows)

    def purge_queries(self, older_than: float) -> int:
        """Drop the days wholly before ``older_than`` (no row-by-row delete), then trim the day it falls in."""
        cutoff = int(older_than * 1000)
        with self._write(bump=False) as db:
            gone = 0
            for day in self._partitions(db):
                if (day + 1) * DAY_MS <= cutoff:
                    gone += db.execute(f"SELECT COUNT(*) FROM query_log_d{day}").fetchone()[0]
                    db.execute(f"DROP TABLE query_log_d{day}")
                    self._days.discard(day)
            return gone + db.execute("DELETE FROM query_log WHERE ts < ?", (cutoff,)).rowcount

    def set_setting(self, key: str, value: Any) -> None:
        super().set_setting(key, value)
        with self._read() as db:
            db.execute(f"NOTIFY {SETTINGS_CHANNEL}")

    # -- schema ------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._read() as db:
            if db.execute("SELECT to_regclass('hearth_schema')").fetchone()[0] is None:
                return 0
            found = db.execute("SELECT version FROM hearth_schema").fetchone()
        return found[0] if found else 0

    def migrate(self) -> int:
        """Bring the schema to the current version, once: every node starting at the same time waits on the
        same advisory lock, and the ones after the first find nothing left to do."""
        with self._connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS hearth_schema (version INTEGER NOT NULL)")
                found = conn.execute("SELECT version FROM hearth_schema").fetchone()
                if found is None:
                    conn.execute("INSERT INTO hearth_schema (version) VALUES (0)")
                version = found[0] if found else 0
                if version > len(MIGRATIONS):
                    raise SchemaTooNewError(f"{self.describe()}: store schema {version} is newer than this Hearth "
                                            f"({len(MIGRATIONS)}); upgrade Hearth on this node")
                for i in range(version, len(MIGRATIONS)):
                    with conn.transaction():
                        if MIGRATIONS[i].strip():
                            conn.execute(MIGRATIONS[i])
                        conn.execute("UPDATE hearth_schema SET version = %s", (i + 1,))
                    log.info("store %s migrated to schema %d", self.describe(), i + 1)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))
        return len(MIGRATIONS)

    # -- change notifications ----------------------------------------------------------------------

    def watch(self, callback: Callable[[str], None], stop: threading.Event) -> threading.Thread:
        """LISTEN on a connection of its own, in a thread: ``callback(channel)`` for every change another
        process or node makes ("policy" or "settings"), "connected" once (re)connected (changes may have been
        missed: read again) and "lost" when the connection drops. Reconnects by itself until ``stop`` is set."""
        thread = threading.Thread(target=self._listen, args=(callback, stop), name="store-listen", daemon=True)
        thread.start()
        return thread

    def _listen(self, callback: Callable[[str], None], stop: threading.Event) -> None:
        wait = 0.2
        names = {POLICY_CHANNEL: "policy", SETTINGS_CHANNEL: "settings"}
        while not stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, int(self.timeout)),
                                     application_name=f"hearth {self.node} listen".strip()[:63]) as conn:
                    for channel in names:
                        conn.execute(f"LISTEN {channel}")
                    self.problem, wait = None, 0.2
                    callback("connected")
                    while not stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            callback(names.get(note.channel, note.channel))
                        conn.execute("SELECT 1")    # a dead server shows here even without notifications
            except psycopg.Error as exc:
                if stop.is_set():
                    return
                if self.problem is None:
                    log.warning("store %s: connection lost (%s); retrying", self.describe(), _first_line(exc))
                self.problem = _first_line(exc)
                callback("lost")
                stop.wait(wait)
                wait = min(wait * 2, 2.0)

    def close(self) -> None:
        self.pool.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
