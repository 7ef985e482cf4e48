"""The `hearth store` commands: ``hearth store migrate --to postgresql://…`` moves the appliance's SQLite store
into a PostgreSQL database that several nodes can share.

Problems print one line on standard error and exit 1; a broken configuration exits 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from resolver.service.config import load_for_command


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from resolver.ops.backup import running_processes
    from resolver.store.open import STORE_ERRORS, check_store, is_postgres
    from resolver.store.postgres import PostgresStore, describe_url
    from resolver.store.sqlite import SQLiteStore
    from resolver.store.transfer import migrate_sqlite_to_postgres

    config, path = load_for_command(getattr(args, "config", None), "store migrate")
    try:
        url = check_store(args.to)
    except ValueError as exc:
        print(f"hearth store migrate: --to: {exc}", file=sys.stderr)
        return 1
    if not is_postgres(url):
        print("hearth store migrate: --to needs a PostgreSQL URL (postgresql://user@host/database)", file=sys.stderr)
        return 1
    db = os.path.join(os.path.abspath(config.data_dir), "hearth.db")
    if is_postgres(config.store) or not os.path.exists(db):
        print(f"hearth store migrate: no SQLite store to move at {db}", file=sys.stderr)
        return 1
    running = running_processes(config)
    if running:
        print(f"hearth store migrate: Hearth is running on {config.data_dir}: {'; '.join(running)} "
              "(stop it first, so no change is left behind)", file=sys.stderr)
        return 1
    source = target = None
    try:
        source = SQLiteStore(db)
        source.migrate()
        target = PostgresStore(url, max_connections=1)
        target.migrate()
        moved = migrate_sqlite_to_postgres(source, target)
    except (ValueError, *STORE_ERRORS) as exc:
        print(f"hearth store migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in (source, target):
            if s is not None:
                s.close()
    print(f"moved {db} to {describe_url(url)}:")
    for label, n in moved.items():
        print(f"  {n:>10} {label}")
    where = path or "the configuration file"
    print(f"now set `store: {describe_url(url)}` (with its password, if any) in {where}, a node_name on each "
          "node, and start Hearth; the SQLite file is left as it was")
    return 0


def add_store_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `store migrate` to the `hearth` parser's sub-commands."""
    sp = sub.add_parser("store", help="the store: move it to a PostgreSQL database shared by several nodes")
    store_sub = sp.add_subparsers(dest="store_command", metavar="COMMAND")
    store_sub.required = True
    p = store_sub.add_parser("migrate", parents=[common],
                             help="move the SQLite store (devices, profiles, schedules, users, audit, reports, "
                             "requests, query log) into an empty PostgreSQL database",
                             description="Copy every row of the appliance's SQLite store (data_dir/hearth.db) into "
                             "an empty PostgreSQL database, ids kept, in one transaction, and say what was moved. "
                             "Hearth must be stopped; the SQLite file is only read.")
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/database")
    p.set_defaults(func=cmd_store_migrate)
