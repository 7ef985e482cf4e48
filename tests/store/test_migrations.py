"""Opening a store written by any older Hearth brings it to the current schema without losing rows;
a store from a newer Hearth is refused with a clear error. (SQLite: the on-disk upgrade path.)"""
from __future__ import annotations

import sqlite3

import pytest

from resolver.policy.profiles import DEFAULT_CATEGORIES
from resolver.store.protocol import QueryRow, SchemaTooNewError
from resolver.store.sqlite import MIGRATIONS, SQLiteStore, _statements, open_store

ROWS = [QueryRow(1_700_000_000.0 + i, f"192.168.1.{i}", f"n{i}.example", 1, 0, "A 192.0.2.1", "udp://9.9.9.9",
                 1.5, bool(i % 2), None if i else "local-record") for i in range(5)]


TEXT_LOG_UNTIL = 5   # versions 1-4 kept the query log as text columns (5 made it codes plus hourly roll-ups)


def _db_at(path, version: int) -> None:
    """A database as a Hearth with only the first ``version`` migrations left it, with query-log rows
    once there is a query log. Built with plain sqlite3, as the old code did."""
    db = sqlite3.connect(path, isolation_level=None)
    for i in range(version):
        db.execute("BEGIN")
        for stmt in _statements(MIGRATIONS[i]):
            db.execute(stmt)
        db.execute(f"PRAGMA user_version={i + 1}")
        db.execute("COMMIT")
    if 1 <= version < TEXT_LOG_UNTIL:
        db.executemany("INSERT INTO query_log (ts, client, qname, qtype, rcode, answer, upstream, latency_ms, cached,"
                       " reason) VALUES (?,?,?,?,?,?,?,?,?,?)", [r[:10] for r in ROWS])
    db.close()


@pytest.mark.parametrize("version", range(len(MIGRATIONS)))
def test_every_older_version_migrates_to_the_current_one(tmp_path, version):
    path = str(tmp_path / "hearth.db")
    _db_at(path, version)
    store = SQLiteStore(path)
    assert store.schema_version() == version
    assert store.migrate() == len(MIGRATIONS) == store.schema_version()
    if 1 <= version < TEXT_LOG_UNTIL:     # old rows are carried into the new log and its roll-ups
        assert store.recent_queries(limit=100) == ROWS[::-1]
        # the roll-ups start from the rows already there
        hour = 3600 * int(ROWS[0].ts // 3600)
        assert [(c.total, c.blocked) for c in store.hourly_counts(hour, hour)] == [(5, 0)]
        assert store.count_clients(hour) == 5 and store.top_domains(hour, 1)[0].total == 1
        assert store.reason_counts(hour) == {"": 4, "local-record": 1}
    else:
        assert store.recent_queries() == []
    default = store.get_profile("default")
    assert default is not None and default.categories == DEFAULT_CATEGORIES   # "*" until migration 6
    assert [p.name for p in store.list_profiles()] == ["default"]
    version_after = store.policy_version()
    assert store.migrate() == len(MIGRATIONS)         # migrating again changes nothing
    assert [p.name for p in store.list_profiles()] == ["default"] and store.policy_version() == version_after
    store.close()


def test_version_1_store_as_the_engine_left_it(tmp_path):
    """The shipped layout: data_dir/hearth.db at version 1 with a query log, opened by open_store."""
    _db_at(str(tmp_path / "hearth.db"), 1)
    store = open_store(str(tmp_path))
    assert store.schema_version() == len(MIGRATIONS)
    assert [r.qname for r in store.recent_queries()] == [r.qname for r in ROWS[::-1]]
    store.add_queries([ROWS[0]])                        # and the log keeps working
    assert len(store.recent_queries(limit=100)) == len(ROWS) + 1
    store.close()


def test_a_missing_or_empty_file_is_version_0(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    for name in ("missing.db", "empty.db"):
        store = SQLiteStore(str(tmp_path / name))
        assert store.schema_version() == 0
        assert store.migrate() == len(MIGRATIONS)
        assert store.get_profile("default") is not None
        store.close()


def test_foreign_keys_are_enforced_after_migration(tmp_path):
    _db_at(str(tmp_path / "hearth.db"), 1)
    store = open_store(str(tmp_path))
    store.close()
    db = sqlite3.connect(tmp_path / "hearth.db", isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO devices (name, kind, value, profile_id) VALUES ('x', 'ip', '10.0.0.1', 999)")
    db.close()


def test_a_store_from_a_newer_hearth_is_refused(tmp_path):
    path = tmp_path / "hearth.db"
    _db_at(str(path), len(MIGRATIONS))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    store = SQLiteStore(str(path))
    with pytest.raises(SchemaTooNewError, match=rf"store schema {len(MIGRATIONS) + 1} is newer than this Hearth "
                                                rf"\({len(MIGRATIONS)}\); upgrade Hearth or restore a backup"):
        store.migrate()
    assert store.schema_version() == len(MIGRATIONS) + 1         # and left untouched
    store.close()
    with pytest.raises(RuntimeError, match="is newer than this Hearth"):
        open_store(str(tmp_path))


def test_a_default_profile_the_parent_changed_keeps_its_categories(tmp_path):
    """Migration 6 moves only an untouched default ("*") to the fixed set; a parent's own choice stays."""
    path = str(tmp_path / "hearth.db")
    _db_at(path, 5)
    db = sqlite3.connect(path)
    db.execute("""UPDATE profiles SET categories = '["adult", "social"]' WHERE name = 'default'""")
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.migrate() == len(MIGRATIONS)
    assert store.get_profile("default").categories == ("adult", "social")
    store.close()
