"""The narrow interface every part of Hearth uses to reach its store.

The engine, the CLI and the web UI call these methods and never write SQL.
SQLite (``store_sqlite.py``) is the embedded default; a PostgreSQL backend
implements the same protocol and passes the same contract tests.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Protocol, Sequence


class QueryRow(NamedTuple):
    """One answered query, as the query log keeps it."""

    ts: float            # UNIX time
    client: str
    qname: str
    qtype: int
    rcode: int
    answer: str          # short summary of the answers
    upstream: str        # upstream URL that answered, "" for cache/local/blocked
    latency_ms: float
    cached: bool
    reason: Optional[str]  # why it was blocked/rewritten/answered locally, None for plain forwarding


class Store(Protocol):
    def migrate(self) -> int:
        """Bring the schema to the current version; returns it."""

    def schema_version(self) -> int: ...

    def add_queries(self, rows: Sequence[QueryRow]) -> None: ...

    def recent_queries(self, limit: int = 100, *, client: Optional[str] = None,
                       qname_contains: Optional[str] = None) -> list[QueryRow]: ...

    def purge_queries(self, older_than: float) -> int:
        """Delete query-log rows older than ``older_than`` (UNIX time); returns how many."""

    def close(self) -> None: ...
