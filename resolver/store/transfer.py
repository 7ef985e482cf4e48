"""Moving an appliance's SQLite store into a PostgreSQL store (``hearth store migrate --to postgresql://…``).

Every table is copied with its ids (so references, API tokens and sessions stay valid), in one transaction on
the target: a failure leaves the target as it was. The target must be empty (just migrated: only the default
profile); the SQLite file is only read.
"""
from __future__ import annotations

from typing import Callable, Optional

from resolver.store.postgres import PostgresStore
from resolver.store.querylog_rooms import QUERY_LOG_COLUMNS
from resolver.store.sqlite import SQLiteStore

# (table, columns), in an order that satisfies the foreign keys; the labels are what the command prints
TABLES: list[tuple[str, str, str]] = [
    ("profiles", "profiles", "id, name, preset, categories, services, safe_search, youtube, block_mode, block_list,"
                             " allow_list, bypass_prevention, updated"),
    ("devices", "devices", "id, name, kind, value, profile_id, hostname, first_seen, last_seen, paused_until"),
    ("schedules", "schedules", "id, profile_id, name, days, start_time, end_time, action, categories, services,"
                               " enabled"),
    ("temporary allows", "temp_allows", "id, device_id, domain, until"),
    ("time budgets", "budgets", "id, profile_id, target, minutes, weekend, reset, days"),
    ("budget days", "budget_usage", "profile_id, target, day, used, extra, last_minute, pending, updated"),
    ("seen clients", "seen_clients", "address, mac, hostname, first_seen, last_seen"),
    ("users", "users", "id, name, role, password_hash, language, created, last_login"),
    ("API tokens", "api_tokens", "id, user_id, token_hash, label, created, last_used"),
    ("login attempts", "login_attempts", "id, key, ts, ok"),
    ("audit entries", "audit_log", 'id, ts, "user", action, target, before, after, node'),
    ("access requests", "access_requests", "id, ts, client, device, profile, domain, reason, message, status,"
                                           " decision, decided_by, decided_ts, until"),
    ("reports", "reports", "id, ts, client, url, kind, contact, message, device, handled_ts, handled_by,"
                           " forwarded_ts, lang"),
    ("settings", "settings", "key, value"),
    ("query-log strings", "ql_strings", "id, text"),
    ("query-log entries", "query_log", "id, " + QUERY_LOG_COLUMNS),
    ("hourly statistics", "ql_hours", "hour, client, total, blocked, minutes"),
    ("hourly reasons", "ql_reasons", "hour, client, reason, n"),
    ("hourly names", "ql_names", "client, hour, blocked, qname, n"),
]
_BATCH = 20_000


class TargetNotEmpty(ValueError):
    """The PostgreSQL database already holds an appliance's data."""


def _target_rows(target: PostgresStore) -> dict[str, int]:
    with target._read() as db:
        counts = {label: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for label, table, _ in TABLES}
        fresh_default = db.execute("SELECT COUNT(*) FROM profiles WHERE name = 'default'").fetchone()[0]
    counts["profiles"] -= fresh_default
    return {label: n for label, n in counts.items() if n}


def migrate_sqlite_to_postgres(source: SQLiteStore, target: PostgresStore,
                               progress: Optional[Callable[[str, int], None]] = None) -> dict[str, int]:
    """Copy every row of ``source`` into the empty, migrated ``target``; returns the rows moved per table
    label. Raises TargetNotEmpty (and changes nothing) when the target holds data already."""
    if source.schema_version() != target.schema_version():
        raise ValueError(f"the SQLite store is at schema {source.schema_version()} and the PostgreSQL store at "
                         f"{target.schema_version()}: run this Hearth once on the SQLite store first")
    found = _target_rows(target)
    if found:
        raise TargetNotEmpty("the PostgreSQL database holds data already ("
                             + ", ".join(f"{n} {label}" for label, n in found.items())
                             + "): move into an empty database")
    moved: dict[str, int] = {}
    with target._transaction() as dst, source._read() as src:
        dst.execute("DELETE FROM profiles")            # the fresh default; the source's comes with its id
        days = [r[0] for r in src.execute("SELECT DISTINCT ts / 86400000 FROM query_log").fetchall()]
        target.ensure_days(days, dst)
        for label, table, columns in TABLES:
            cur = src.execute(f"SELECT {columns} FROM {table}")
            n = 0
            with dst.conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                while True:
                    rows = cur.fetchmany(_BATCH)
                    if not rows:
                        break
                    for r in rows:
                        copy.write_row(r)
                    n += len(rows)
            moved[label] = n
            if progress:
                progress(label, n)
            if columns.startswith("id,"):               # identities continue after the ids copied
                dst.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                            f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
        version = src.execute("SELECT value FROM meta WHERE key = 'policy_version'").fetchone()[0]
        dst.execute("UPDATE meta SET value = greatest(value, ?) + 1 WHERE key = 'policy_version'", (version,))
        dst.execute("NOTIFY hearth_policy")
    return moved
