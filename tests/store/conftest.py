"""The ``store`` fixture: a fresh, migrated store of every backend the contract tests cover.

A new backend adds its name to BACKENDS and a branch to ``open_backend`` (and may skip
when its server is not available); the contract tests then run against it unchanged.
PostgreSQL runs on the session's server (tests/pg.py), a fresh database per test.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from resolver.store.sqlite import SQLiteStore

BACKENDS = ["sqlite", "postgresql"]


def open_backend(backend: str, tmp_path: Path, request=None):
    """A store on ``backend`` for the test's private database in ``tmp_path``, migrated; opening it
    again with the same arguments gives a second connection to the same database."""
    if backend == "sqlite":
        store = SQLiteStore(str(tmp_path / "hearth.db"))
        store.migrate()
        return store
    if backend == "postgresql":
        from resolver.store.postgres import PostgresStore

        url_file = tmp_path / "postgres-url"
        if not url_file.exists():
            url_file.write_text(request.getfixturevalue("postgres").new_database())
        store = PostgresStore(url_file.read_text())
        store.migrate()
        return store
    raise AssertionError(f"no such store backend: {backend}")


@pytest.fixture(params=BACKENDS)
def store_backend(request) -> str:
    return request.param


@pytest.fixture
def store(store_backend, tmp_path, request):
    s = open_backend(store_backend, tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def other_connection(store, store_backend, tmp_path, request):
    """A second connection to the ``store`` fixture's database, as another process (CLI, UI) has."""
    s = open_backend(store_backend, tmp_path, request)
    yield s
    s.close()
