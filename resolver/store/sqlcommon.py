"""What the SQL stores share: the base class with the transaction helpers, the SELECTs and the row conversions.

SQLite and PostgreSQL run the same statements (written with ``?`` placeholders in the SQL both accept); a
backend provides a connection *handle* (``execute``/``executemany``/``insert``) and a few dialect hooks:
``_read``/``_write`` (a handle, in a transaction for writes), ``_bump`` (policy_version up, and for
PostgreSQL a NOTIFY to the other nodes), ``_contains`` (substring test) and ``_integrity_errors``.
The rooms (``policy_rooms``, ``web_rooms``, ``querylog_rooms``) are mixins over this base.
"""
from __future__ import annotations

import json
import time
import unicodedata
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Protocol, Sequence

from resolver.policy.profiles import DEFAULT_PROFILE_NAME, Device, Profile, Schedule, TempAllow
from resolver.store.protocol import BLOCK_REASONS, AuditEntry

# A closed hour of the names roll-up keeps this many names per client and per blocked/answered (the device
# report shows 15), and this many for all clients together (the dashboard shows 10).
NAMES_KEPT_CLIENT = 30
NAMES_KEPT_ALL = 200
TEXT_MAX = 2000          # user text kept from the public forms
KIND_LABEL = {"ip": "IP address", "cidr": "network", "mac": "MAC address"}


def blocked_sql(column: str) -> str:
    """is_blocked(reason) in SQL on ``column`` (the reasons are fixed words, safe to inline)."""
    return "(" + " OR ".join(f"{column} = '{r}' OR {column} LIKE '{r}:%'" for r in BLOCK_REASONS) + ")"


PROFILE_SQL = ("SELECT id, name, preset, categories, services, safe_search, youtube, block_mode, block_list,"
               " allow_list, bypass_prevention, updated FROM profiles")
DEVICE_SQL = ("SELECT d.id, d.name, d.kind, d.value, p.name, d.hostname, d.first_seen, d.last_seen, d.paused_until"
              " FROM devices d JOIN profiles p ON p.id = d.profile_id")
SCHEDULE_SQL = ("SELECT s.id, p.name, s.name, s.days, s.start_time, s.end_time, s.action, s.categories,"
                " s.services, s.enabled FROM schedules s JOIN profiles p ON p.id = s.profile_id")
TEMP_ALLOW_SQL = "SELECT t.id, d.name, t.domain, t.until FROM temp_allows t JOIN devices d ON d.id = t.device_id"
USER_SQL = "SELECT id, name, role, password_hash, language, created, last_login FROM users"
TOKEN_SQL = "SELECT t.id, u.name, t.label, t.created, t.last_used FROM api_tokens t JOIN users u ON u.id = t.user_id"
REQUEST_SQL = ("SELECT id, ts, client, device, profile, domain, reason, message, status, decision, decided_by,"
               " decided_ts, until FROM access_requests")
REPORT_SQL = ("SELECT id, ts, client, url, kind, contact, message, device, handled_ts, handled_by, forwarded_ts,"
              " lang FROM reports")
AUDIT_SQL = 'SELECT id, ts, "user", action, target, before, after, node FROM audit_log'
# times and latencies come back as integers (ms, µs) and are scaled in Python: the same type on both backends
QUERY_SQL = ("SELECT q.id, q.ts, c.text, q.qname, q.qtype, q.rcode, q.answer, coalesce(u.text, ''),"
             " q.latency_us, q.cached, r.text, coalesce(n.text, '')"
             " FROM query_log q JOIN ql_strings c ON c.id = q.client"
             " LEFT JOIN ql_strings u ON u.id = q.upstream LEFT JOIN ql_strings r ON r.id = q.reason"
             " LEFT JOIN ql_strings n ON n.id = q.node")
BLOCKED_CODES = f"SELECT id FROM ql_strings WHERE {blocked_sql('text')}"


class Handle(Protocol):
    """A connection as the rooms use it (``?`` placeholders)."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run an INSERT and return the new row's id."""


class SQLStoreBase:
    """The transaction helpers every room uses; the backends fill in the hooks."""

    _integrity_errors: tuple[type[BaseException], ...] = ()
    node: str = ""      # stamped on query-log rows and audit entries this store writes

    @contextmanager
    def _read(self) -> Iterator[Handle]:
        raise NotImplementedError

    @contextmanager
    def _transaction(self, lock: bool = True) -> Iterator[Handle]:
        """A write transaction; with ``lock`` it serialises writers (so checks and writes see the same data)."""
        raise NotImplementedError

    def _bump(self, db: Handle) -> None:
        """policy_version up, in the transaction of ``db``."""
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'policy_version'")

    @staticmethod
    def _contains(column: str) -> str:
        """SQL true when ``column`` contains the next parameter."""
        return f"instr({column}, ?) > 0"

    @staticmethod
    def _folded(column: str) -> str:
        """SQL for ``column`` in lower case (beyond ASCII), to compare with Python's ``str.lower()``
        (SQLite's own lower() folds ASCII only: the SQLite store registers ``hearth_lower``)."""
        return f"hearth_lower({column})"

    @contextmanager
    def _write(self, *, bump: bool = True) -> Iterator[Handle]:
        """One write transaction; with ``bump``, policy_version goes up in the same transaction. A constraint
        the checks should have caught first becomes a ValueError."""
        try:
            with self._transaction() as db:
                yield db
                if bump:
                    self._bump(db)
        except self._integrity_errors as exc:
            raise ValueError(f"refused by the store: {str(exc).splitlines()[0]}") from exc

    def policy_version(self) -> int:
        with self._read() as db:
            return int(db.execute("SELECT value FROM meta WHERE key = 'policy_version'").fetchone()[0])


# -- helpers ------------------------------------------------------------------------------------------

def now_or(now: Optional[float]) -> float:
    return time.time() if now is None else float(now)


def clip(text: Any, limit: int) -> str:
    """User text as kept: a string, without NULs, at most ``limit`` characters."""
    return ("" if text is None else str(text)).replace("\x00", "").strip()[:limit]


def hours(since: float, until: float) -> range:
    return range(int(since // 3600), int(until // 3600) + 1)


def audit_entry(r: tuple) -> AuditEntry:
    return AuditEntry(r[0], r[1], r[2], r[3], r[4], None if r[5] is None else json.loads(r[5]),
                      None if r[6] is None else json.loads(r[6]), r[7])


def need(obj: Any, cls: type) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(obj).__name__}")


def key(name: Any) -> str:
    """A name as looked up: the same normalisation as the model's names, without the checks."""
    return unicodedata.normalize("NFC", str(name)).strip()


def is_default(name: str) -> bool:
    return name.lower() == DEFAULT_PROFILE_NAME


def row(db: Handle, sql: str, *args: Any) -> Optional[tuple]:
    return db.execute(sql, args).fetchone()


def dumps(items: Sequence[str]) -> str:
    return json.dumps(list(items), separators=(",", ":"))


def profile_values(p: Profile) -> tuple:
    return (p.name, p.preset, dumps(p.categories), dumps(p.services), int(p.safe_search), p.youtube, p.block_mode,
            dumps(p.block), dumps(p.allow), int(p.bypass_prevention), time.time())


def profile_of(r: tuple) -> Profile:
    return Profile(id=r[0], name=r[1], preset=r[2], categories=json.loads(r[3]), services=json.loads(r[4]),
                   safe_search=bool(r[5]), youtube=r[6], block_mode=r[7], block=json.loads(r[8]),
                   allow=json.loads(r[9]), bypass_prevention=bool(r[10]), updated=r[11])


def device_of(r: tuple) -> Device:
    return Device(id=r[0], name=r[1], kind=r[2], value=r[3], profile=r[4], hostname=r[5], first_seen=r[6],
                  last_seen=r[7], paused_until=r[8])


def schedule_values(s: Schedule) -> tuple:
    return (s.name, dumps(s.days), s.start, s.end, s.action, dumps(s.categories), dumps(s.services),
            int(s.enabled))


def schedule_of(r: tuple) -> Schedule:
    return Schedule(id=r[0], profile=r[1], name=r[2], days=json.loads(r[3]), start=r[4], end=r[5], action=r[6],
                    categories=json.loads(r[7]), services=json.loads(r[8]), enabled=bool(r[9]))


def temp_allow_of(r: tuple) -> TempAllow:
    return TempAllow(id=r[0], device=r[1], domain=r[2], until=r[3])


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
