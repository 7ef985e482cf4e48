"""Which store a configuration names, opened: the one way the engine, the web UI and the command line open it.

``store:`` empty (the default) is the embedded SQLite file ``data_dir/hearth.db``; ``postgresql://user@host/db``
is a PostgreSQL database shared by several nodes (``node_name`` tells them apart).
"""
from __future__ import annotations

import os
import socket
import sqlite3
from typing import Any

from resolver.store.protocol import SchemaTooNewError, Store, StoreUnavailable

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# what opening or using a store may raise, besides ValueError for refused input
STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, StoreUnavailable, SchemaTooNewError)


def is_postgres(url: str) -> bool:
    return str(url or "").strip().lower().startswith(POSTGRES_SCHEMES)


def check_store(text: Any) -> str:
    """The ``store`` config key: "" (the embedded SQLite file) or a PostgreSQL URL."""
    value = "" if text is None else str(text).strip()
    if value in ("", "sqlite"):
        return ""
    if not is_postgres(value):
        raise ValueError(f"not a store: {value!r} (leave it empty for the embedded SQLite file, or give "
                         "postgresql://user@host/database)")
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise ValueError("a PostgreSQL store needs psycopg: pip install 'hearth-dns[postgres]'") from None
    try:
        conninfo_to_dict(value)
    except Exception as exc:  # noqa: BLE001 - psycopg's ProgrammingError: a malformed URL
        raise ValueError(f"not a PostgreSQL URL: {str(exc).splitlines()[0]}") from None
    return value


def check_node_name(text: Any) -> str:
    value = "" if text is None else str(text).strip()
    if len(value) > 63 or any(not (c.isalnum() or c in "-_.") for c in value):
        raise ValueError(f"node_name {value!r}: up to 63 letters, digits, '-', '_' or '.'")
    return value


def node_name(config: Any) -> str:
    """This node's name: ``node_name`` or the host's name."""
    return getattr(config, "node_name", "") or socket.gethostname().split(".")[0] or "hearth"


def describe_store(config: Any) -> str:
    """Where the store is, for messages (a PostgreSQL URL without its password)."""
    url = getattr(config, "store", "")
    if is_postgres(url):
        from resolver.store.postgres import describe_url

        return describe_url(url)
    return os.path.join(os.path.abspath(config.data_dir), "hearth.db")


def open_store(config: Any, *, migrate: bool = True, connections: int = 4) -> Store:
    """The store ``config`` names (its ``store`` and ``data_dir``), migrated to the current schema unless
    ``migrate`` is False. ``connections``: most connections a PostgreSQL store's pool keeps."""
    url = getattr(config, "store", "")
    if is_postgres(url):
        from resolver.store.postgres import PostgresStore

        store: Store = PostgresStore(url, node=node_name(config), max_connections=connections)
    else:
        from resolver.store.sqlite import SQLiteStore

        os.makedirs(config.data_dir, exist_ok=True)
        store = SQLiteStore(os.path.join(config.data_dir, "hearth.db"))
        store.node = getattr(config, "node_name", "")     # one appliance: rows name it only when asked to
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
