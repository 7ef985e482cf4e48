"""What only the shared PostgreSQL store has: migrations that run once whatever the number of nodes starting
together, change notifications, the `store:` key choosing the backend, and a clear error when it is down."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from resolver.policy.profiles import Profile
from resolver.service.config import ConfigError, load_config
from resolver.store import schema_postgres, schema_sqlite
from resolver.store.open import open_store
from resolver.store.postgres import PostgresStore
from resolver.store.sqlite import SQLiteStore


def test_every_sqlite_migration_has_its_postgresql_counterpart():
    assert len(schema_postgres.MIGRATIONS) == len(schema_sqlite.MIGRATIONS)


def test_nodes_starting_together_migrate_once(postgres_url):
    nodes = [PostgresStore(postgres_url) for _ in range(8)]
    barrier = threading.Barrier(len(nodes))
    results: list = []

    def start(store: PostgresStore) -> None:
        barrier.wait()
        try:
            results.append(store.migrate())
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert results == [len(schema_postgres.MIGRATIONS)] * len(nodes)
        assert nodes[0].schema_version() == len(schema_postgres.MIGRATIONS)
        assert [p.name for p in nodes[3].list_profiles()] == ["default"]
        assert nodes[5].policy_version() == 1
    finally:
        for s in nodes:
            s.close()


def test_a_change_on_one_node_is_notified_to_the_others(postgres_url):
    writer, reader = PostgresStore(postgres_url), PostgresStore(postgres_url)
    writer.migrate()
    heard: list[tuple[float, str]] = []
    stop = threading.Event()
    reader.watch(lambda what: heard.append((time.monotonic(), what)), stop)
    try:
        deadline = time.monotonic() + 10
        while not any(w == "connected" for _, w in heard) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert heard and heard[0][1] == "connected"
        t0 = time.monotonic()
        writer.add_profile(Profile(name="Kids"))
        writer.set_setting("upstream", "cloudflare")
        writer.add_audit("admin", "profile.add", "Kids")           # not a policy change: no notification
        while len(heard) < 3 and time.monotonic() < t0 + 5:
            time.sleep(0.01)
        assert [w for _, w in heard] == ["connected", "policy", "settings"]
        assert heard[1][0] - t0 < 1.0
    finally:
        stop.set()
        writer.close()
        reader.close()


def test_the_store_key_chooses_the_backend(tmp_path, postgres_url):
    sqlite = open_store(SimpleNamespace(store="", data_dir=str(tmp_path / "data")))
    pg = open_store(SimpleNamespace(store=postgres_url, node_name="gw1", data_dir=str(tmp_path / "data")))
    try:
        assert isinstance(sqlite, SQLiteStore) and (tmp_path / "data" / "hearth.db").exists()
        assert isinstance(pg, PostgresStore) and pg.schema_version() == len(schema_postgres.MIGRATIONS)
    finally:
        sqlite.close()
        pg.close()


@pytest.mark.parametrize("value, message", [
    ("mysql://db/hearth", "not a store: 'mysql://db/hearth'"),
    ("postgresql://host/db?colour=blue", "not a PostgreSQL URL"),
])
def test_a_bad_store_key_is_a_config_error(tmp_path, value, message):
    path = tmp_path / "hearth.yaml"
    path.write_text(f"data_dir: {tmp_path}\nstore: '{value}'\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert f"{path}:2: store: " in str(err.value) and message in str(err.value)


def test_node_name_is_checked(tmp_path):
    path = tmp_path / "hearth.yaml"
    path.write_text("node_name: 'gw 1; drop'\n")
    with pytest.raises(ConfigError, match="node_name"):
        load_config(str(path))


def test_rows_name_the_node_that_wrote_them(postgres_url):
    from resolver.store.protocol import QueryRow

    gw1, gw2 = PostgresStore(postgres_url, node="gw1"), PostgresStore(postgres_url, node="gw2")
    gw1.migrate()
    try:
        for store in (gw1, gw2):
            store.add_queries([QueryRow(time.time(), "10.0.0.5", "example.com", 1, 0, "", "", 1.0, False, None)])
        assert gw2.add_audit("admin", "device.pause", "Tablet").node == "gw2"
        assert [r.node for r in gw1.recent_queries()] == ["gw2", "gw1"]
        assert [lq.row.node for lq in gw2.query_page(node="gw1")] == ["gw1"]
        assert gw2.query_page(node="gw9") == [] and gw1.list_audit()[0].node == "gw2"
    finally:
        gw1.close()
        gw2.close()


def test_the_query_log_is_kept_in_daily_partitions_dropped_whole_by_age(postgres_url):
    from resolver.store.postgres import DAY_MS
    from resolver.store.protocol import QueryRow

    store = PostgresStore(postgres_url)
    store.migrate()
    day0 = 20_000                                           # days since 1970
    rows = [QueryRow((day0 * DAY_MS + i * 6 * 3600 * 1000) / 1000, "10.0.0.5", f"n{i}.example", 1, 0, "", "",
                     1.0, False, None) for i in range(12)]     # 3 days, 4 rows a day
    try:
        store.add_queries(rows)
        with store._read() as db:
            assert store._partitions(db) == [day0, day0 + 1, day0 + 2, day0 + 3]   # and the day after
        assert store.purge_queries((day0 + 2) * DAY_MS / 1000 + 1) == 9        # 2 days dropped, 1 row trimmed
        with store._read() as db:
            assert store._partitions(db) == [day0 + 2, day0 + 3]
        assert store.count_queries() == 3 and store.hourly_counts(rows[0].ts, rows[0].ts)[0].total == 1
        store.add_queries(rows[-1:])                           # a day still there takes rows again
        assert store.count_queries() == 4
    finally:
        store.close()
