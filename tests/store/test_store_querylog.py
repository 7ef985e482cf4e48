"""The Store contract for the query log's limits and its hourly roll-ups: statistics come from the
roll-ups the writer keeps, match the raw rows, and outlive the rows the size cap and the age limit delete."""
from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from resolver.store.protocol import QueryRow, is_blocked
from resolver.store.sqlcommon import NAMES_KEPT_CLIENT

HOUR = 3600 * (1_750_000_000 // 3600)
REASONS = [None, None, None, "category:adult", "service:TikTok", "local-record", "safe-search:google", "schedule:x"]


def _rows(n: int, start: float = HOUR, step: float = 1.0, seed: int = 3, names: int = 12) -> list[QueryRow]:
    rng = random.Random(seed)
    return [QueryRow(start + i * step, f"10.0.0.{rng.randrange(2, 6)}", f"n{rng.randrange(names)}.example", 1, 0,
                     "A 192.0.2.1", "udp://127.0.0.1:53" if i % 3 else "", 2.5, bool(i % 2), rng.choice(REASONS))
            for i in range(n)]


def _expected(rows, since: float = 0.0, clients=None):
    rows = [r for r in rows if r.ts >= since and (clients is None or r.client in clients)]
    hours = Counter(int(r.ts // 3600) * 3600.0 for r in rows)
    blocked = Counter(int(r.ts // 3600) * 3600.0 for r in rows if is_blocked(r.reason))
    names = Counter(r.qname for r in rows)
    return hours, blocked, names, rows


def test_statistics_match_the_raw_rows(store):
    rows = _rows(9000)                               # 2.5 hours, 4 clients, 12 names, in several batches
    for i in range(0, len(rows), 1000):
        store.add_queries(rows[i:i + 1000])
    until = rows[-1].ts
    hours, blocked, names, _ = _expected(rows)
    counts = store.hourly_counts(HOUR, until)
    assert [(c.hour, c.total, c.blocked) for c in counts] == [(h, hours[h], blocked[h]) for h in sorted(hours)]
    assert sum(c.total for c in counts) == store.count_queries() == len(rows)
    top = store.top_domains(HOUR, 5)
    assert [(t.name, t.total) for t in top] == sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    blocked_names = Counter(r.qname for r in rows if is_blocked(r.reason))
    assert {(t.name, t.total, t.blocked) for t in store.top_domains(HOUR, 100, blocked=True)} == \
        {(n, c, c) for n, c in blocked_names.items()}
    per_client = Counter(r.client for r in rows)
    assert {(t.name, t.total) for t in store.top_clients(HOUR, 10)} == set(per_client.items())
    assert store.count_clients(HOUR) == len(per_client)
    assert store.reason_counts(HOUR) == dict(Counter(r.reason or "" for r in rows))
    # one device's view, from the second hour on
    h2, b2, n2, sub = _expected(rows, HOUR + 3600, {"10.0.0.2"})
    assert [c.total for c in store.hourly_counts(HOUR + 3600, until, clients=["10.0.0.2"])] == \
        [h2[h] for h in sorted(h2)]
    assert dict((t.name, t.total) for t in store.top_domains(HOUR + 3600, 100, clients=["10.0.0.2"])) == dict(n2)
    online = store.online_minutes(HOUR, until, clients=["10.0.0.2"])
    assert [o.total for o in online] == [60, 60, 30]   # a query every few seconds: every 5-minute step active
    assert [o.blocked for o in online] == [sum(1 for r in rows if r.client == "10.0.0.2" and is_blocked(r.reason)
                                               and int(r.ts // 3600) == h) for h in range(HOUR // 3600,
                                                                                          HOUR // 3600 + 3)]
    assert store.top_domains(HOUR, clients=["10.9.9.9"]) == [] and store.hourly_counts(HOUR, HOUR, clients=[]) \
        == [(HOUR, 0, 0)]


def test_the_size_cap_drops_the_oldest_rows_and_keeps_the_statistics(store):
    rows = _rows(5000)
    store.add_queries(rows)
    assert store.cap_queries(6000) == 0
    assert store.cap_queries(1200) == 3800
    assert store.count_queries() == 1200
    kept = [lq.row.ts for lq in store.query_page(5000)]
    assert kept == [r.ts for r in rows[-1200:]][::-1]                      # the newest are kept
    assert sum(c.total for c in store.hourly_counts(HOUR, rows[-1].ts)) == 5000   # the statistics are not
    store.add_queries(_rows(300, start=rows[-1].ts + 1))
    assert store.cap_queries(1200) == 300 and store.count_queries() == 1200


def test_the_size_cap_looks_up_the_ends_of_the_log_without_reading_it(store, store_backend):
    """cap_queries runs with every written batch: on SQLite it must be two index look-ups, not a scan of a log of
    millions of rows ("SELECT min(id), max(id)" in one query is a scan there)."""
    from resolver.store.querylog_rooms import _ID_RANGE

    if store_backend != "sqlite":
        pytest.skip("PostgreSQL reads min(id) and max(id) from the index in either form")
    with store._read() as db:
        plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN " + _ID_RANGE))
    assert "SCAN query_log" not in plan and plan.count("SEARCH query_log") == 2, plan


def test_age_limit_on_rows_and_on_statistics(store):
    rows = _rows(3 * 3600, step=1.0)                # three hours, one query a second
    store.add_queries(rows)
    assert store.purge_queries(HOUR + 3600) == 3600
    assert store.count_queries() == 7200 and min(lq.row.ts for lq in store.query_page(10000)) == HOUR + 3600
    assert store.hourly_counts(HOUR, HOUR)[0].total == 3600                 # the roll-ups outlive the rows
    assert store.purge_query_stats(HOUR + 3600) > 0
    assert store.hourly_counts(HOUR, HOUR)[0].total == 0 and store.hourly_counts(HOUR + 3600, HOUR + 3600)[0].total
    assert store.top_domains(HOUR)                                          # the later hours stay
    store.purge_query_stats(HOUR + 3600, clients_older_than=HOUR + 3 * 3600)   # a device's names go sooner
    assert store.top_domains(HOUR, clients=["10.0.0.2"]) == [] and store.top_domains(HOUR)
    assert store.purge_queries(HOUR + 10 * 3600) == 7200 and store.count_queries() == 0


def test_a_closed_hour_keeps_only_its_most_asked_names(store):
    many = NAMES_KEPT_CLIENT + 20
    rows = [QueryRow(HOUR + i % 3000, "10.0.0.7", f"n{i % many}.example" if i % 4 else "top.example", 1, 0, "", "",
                     0.0, False, None) for i in range(4 * many)]
    store.add_queries(rows)
    assert len(store.top_domains(HOUR, 1000, clients=["10.0.0.7"])) == many + 1   # the hour is still open
    store.add_queries([QueryRow(HOUR + 3600, "10.0.0.7", "next.example", 1, 0, "", "", 0.0, False, None)])
    kept = store.top_domains(HOUR, 1000, clients=["10.0.0.7"])
    assert len(kept) == NAMES_KEPT_CLIENT + 1 and kept[0] == ("top.example", many, 0)
    assert sum(c.total for c in store.hourly_counts(HOUR, HOUR + 3600, clients=["10.0.0.7"])) == len(rows) + 1


def _once_and_again(hour: float, client: str = "10.0.0.7") -> list[QueryRow]:
    """An hour of one device: 100 names asked once (the latest first) and 5 asked three times."""
    once = [f"once{i:03d}.example" for i in reversed(range(100))]
    again = [f"again{i}.example" for i in range(5)] * 3
    return [QueryRow(hour + i, client, name, 1, 0, "", "", 0.0, False, None) for i, name in enumerate(once + again)]


def test_an_open_hour_shows_names_asked_again_and_a_closed_hour_its_exact_top(store):
    """While an hour is open, ql_names holds the names asked more than once (counted exactly) and each device's
    first names; once it is over, the hour's top names per device and overall are exactly the raw rows' top."""
    future = 3600 * (int(time.time()) // 3600 + 48)           # an hour the clock has not closed
    rows = _once_and_again(future)
    for i in range(0, len(rows), 40):
        store.add_queries(rows[i:i + 40])
    shown = dict((t.name, t.total) for t in store.top_domains(future, 1000, clients=["10.0.0.7"]))
    assert all(shown[f"again{i}.example"] == 3 for i in range(5))
    assert len(shown) == NAMES_KEPT_CLIENT + 5 and "once000.example" not in shown   # its first names, not all
    assert len(store.top_domains(future, 1000)) == 105                         # all clients keep 200
    store.add_queries([QueryRow(future + 3600, "10.0.0.7", "next.example", 1, 0, "", "", 0.0, False, None)])
    raw = Counter(r.qname for r in rows)
    top = sorted(raw.items(), key=lambda kv: (-kv[1], kv[0]))[:NAMES_KEPT_CLIENT]
    kept = [(t.name, t.total) for t in store.top_domains(future, 1000, clients=["10.0.0.7"])]
    assert sorted(kept) == sorted(top + [("next.example", 1)])
    assert "once000.example" in dict(kept)                      # asked once, but among the hour's top


def test_a_past_hour_is_closed_at_once(store):
    rows = _once_and_again(HOUR)
    store.add_queries(rows)
    top = sorted(Counter(r.qname for r in rows).items(), key=lambda kv: (-kv[1], kv[0]))[:NAMES_KEPT_CLIENT]
    got = [(t.name, t.total) for t in store.top_domains(HOUR, 1000, clients=["10.0.0.7"])]
    assert set(top) <= set(got)                                  # the hour's top, before any pruning


def test_the_names_tally_is_bounded_and_its_counts_stay_exact(store):
    store._names_tally.most = 50                                  # a campus hour with more names than it holds
    future = 3600 * (int(time.time()) // 3600 + 48)
    rows = [QueryRow(future + i, f"10.0.0.{i % 3 + 2}", f"n{i % 120}.example", 1, 0, "", "", 0.0, False, None)
            for i in range(600)]
    for i in range(0, len(rows), 25):
        store.add_queries(rows[i:i + 25])
    assert len(store._names_tally) <= 50 + 2 * 25
    raw = Counter(r.qname for r in rows)
    assert {(t.name, t.total) for t in store.top_domains(future, 1000)} == set(raw.items())


def test_a_failed_write_leaves_no_name_counted_twice(store, monkeypatch):
    """A batch the store refused is sent again (a shared store that was down): its names count once."""
    future = 3600 * (int(time.time()) // 3600 + 48)
    first = [QueryRow(future + i, "10.0.0.7", f"n{i % 10}.example", 1, 0, "", "", 0.0, False, None)
             for i in range(30)]
    store.add_queries(first)
    real = store._upsert_rows

    def refuse_names(db, sql, rows):
        if "ql_names" in sql:
            raise RuntimeError("the store went away")
        return real(db, sql, rows)

    batch = [QueryRow(future + 100 + i, "10.0.0.7", f"n{i % 10}.example", 1, 0, "", "", 0.0, False, None)
             for i in range(20)]
    monkeypatch.setattr(store, "_upsert_rows", refuse_names)
    with pytest.raises(RuntimeError):
        store.add_queries(batch)
    monkeypatch.setattr(store, "_upsert_rows", real)
    store.add_queries(batch)
    assert {(t.name, t.total) for t in store.top_domains(future, 100)} == {(f"n{i}.example", 5) for i in range(10)}
