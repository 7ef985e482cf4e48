"""The Store contract for a campus's overview (issue 17): devices paged and searched in the store (never all of
them read for one page), the clients with the most blocks, and the query log of one node read by an index
(migration 11), on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest

from resolver.policy.profiles import Device, Profile
from resolver.store.protocol import QueryRow

HOUR = 3600 * (1_750_000_000 // 3600)


def _devices(store, n: int = 30) -> None:
    store.add_profile(Profile("Lớp 6A"))
    for i in range(n):
        store.add_device(Device(f"pupil-{i:02d}", "ip", f"10.1.0.{i + 1}", "Lớp 6A" if i % 3 == 0 else "default",
                                hostname=f"laptop-{i}"))
    store.add_device(Device("Máy Tính Đức", "mac", "02:00:00:00:00:aa", "default"))
    store.add_device(Device("Lab", "cidr", "10.9.0.0/24", "default"))


def test_devices_are_paged_by_name(store):
    _devices(store)
    everyone = [d.name for d in store.list_devices()]
    assert store.count_devices() == len(everyone) == 32
    pages = [store.find_devices(limit=10, offset=k) for k in range(0, 40, 10)]
    assert [d.name for page in pages for d in page] == everyone
    assert [len(p) for p in pages] == [10, 10, 10, 2]
    assert store.find_devices(limit=0) == [] and store.find_devices(offset=1000) == []
    d = store.find_devices("pupil-07")[0]
    assert (d.name, d.value, d.profile, d.hostname) == ("pupil-07", "10.1.0.8", "default", "laptop-7")


@pytest.mark.parametrize("search, names", [
    ("PUPIL-1", [f"pupil-{i}" for i in range(10, 20)]),                        # name, ignoring case
    ("10.1.0.3", ["pupil-02", "pupil-29"]),                                     # address (10.1.0.3, 10.1.0.30)
    ("02:00:00:00:00:AA", ["Máy Tính Đức"]),                                    # a MAC
    ("10.9.0.0/24", ["Lab"]),                                                   # a network
    ("LAPTOP-25", ["pupil-25"]),                                                # host name
    ("lớp 6a", [f"pupil-{i:02d}" for i in range(0, 30, 3)]),                   # profile, beyond ASCII
    ("đức", ["Máy Tính Đức"]),                                                 # upper-case Đ found by đ
    ("  tính  ", ["Máy Tính Đức"]),                                             # spaces around are not part of it
    ("100%_", []), ("'; DROP TABLE devices; --", []),                            # text, not SQL or patterns
])
def test_devices_are_searched_by_name_address_host_name_and_profile(store, search, names):
    _devices(store)
    assert sorted(d.name for d in store.find_devices(search, limit=100)) == sorted(names)
    assert store.count_devices(search) == len(names)
    assert store.count_devices() == 32


def test_paused_devices_and_devices_by_identity(store):
    _devices(store)
    store.set_pause("pupil-05", 2_000_000_000.0)
    store.set_pause("pupil-06", 1_000.0)                                         # long over
    assert [d.name for d in store.find_devices(paused_at=1_800_000_000.0)] == ["pupil-05"]
    assert store.count_devices(paused_at=1_800_000_000.0) == 1
    assert store.count_devices(paused_at=500.0) == 2
    found = store.find_devices(values=["10.1.0.1", "02:00:00:00:00:aa", "10.200.0.1", "10.9.0.0/24"], limit=10)
    assert sorted(d.name for d in found) == ["Lab", "Máy Tính Đức", "pupil-00"]
    assert store.find_devices(values=[]) == [] and store.count_devices(values=[]) == 0


def _q(ts: float, client: str, reason=None) -> QueryRow:
    return QueryRow(ts, client, "x.example", 1, 0, "", "", 1.0, False, reason)


def test_the_clients_with_the_most_blocks(store):
    store.add_queries([_q(HOUR + 1, "10.0.0.2"), _q(HOUR + 2, "10.0.0.2"), _q(HOUR + 3, "10.0.0.2"),
                       _q(HOUR + 4, "10.0.0.3", "category:adult"), _q(HOUR + 5, "10.0.0.3"),
                       _q(HOUR + 6, "10.0.0.4", "category:adult"), _q(HOUR + 3601, "10.0.0.4", "service:TikTok"),
                       _q(HOUR + 3602, "10.0.0.5", "category:adult")])
    assert store.top_clients(HOUR) == [("10.0.0.2", 3, 0), ("10.0.0.3", 2, 1), ("10.0.0.4", 2, 2),
                                       ("10.0.0.5", 1, 1)]
    assert store.top_clients(HOUR, 10, blocked=True) == [("10.0.0.4", 2, 2), ("10.0.0.3", 2, 1),
                                                         ("10.0.0.5", 1, 1)]
    assert store.top_clients(HOUR, 2, blocked=True) == [("10.0.0.4", 2, 2), ("10.0.0.3", 2, 1)]
    assert store.top_clients(HOUR + 3600, blocked=True) == [("10.0.0.4", 1, 1), ("10.0.0.5", 1, 1)]
    assert store.count_clients(HOUR) == 4


def test_one_nodes_log_is_read_by_an_index(store, store_backend):
    """A node that wrote long ago and nothing since: its page is found by the (node, id) index, not by reading
    the whole log from the newest row."""
    store.node = "gw-old"
    store.add_queries([_q(HOUR + i, "10.0.0.2") for i in range(5)])
    store.node = "gw1"
    store.add_queries([_q(HOUR + 100 + i, "10.0.0.3") for i in range(300)])
    page = store.query_page(100, node="gw-old")
    assert [p.row.node for p in page] == ["gw-old"] * 5 and [p.row.ts for p in page] == [HOUR + i for i in
                                                                                             range(4, -1, -1)]
    assert store.query_page(100, node="gw-none") == []
    with store._read() as db:
        if store_backend == "sqlite":
            plan = " ".join(str(r) for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM query_log q WHERE q.node = 1 ORDER BY q.id DESC LIMIT 100"))
            assert "query_log_node" in plan, plan
        else:   # made on the partitioned log: every day's partition has it, new ones too
            parts = db.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                               " WHERE i.inhparent = 'query_log'::regclass").fetchall()
            indexed = {r[0] for r in db.execute("SELECT tablename FROM pg_indexes WHERE tablename LIKE 'query_log_d%'"
                                                " AND indexdef LIKE '%(node, id) WHERE (node IS NOT NULL)'")
                       .fetchall()}
            assert parts and {p[0] for p in parts} <= indexed
