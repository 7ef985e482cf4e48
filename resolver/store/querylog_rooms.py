"""The query log and its hourly roll-ups in SQL (a mixin of :class:`resolver.store.sqlcommon.SQLStoreBase`, the
same statements on SQLite and PostgreSQL).

Clients, upstreams and reasons are codes in ql_strings (never deleted, so a code keeps its meaning); times are
integer milliseconds, latencies microseconds. The roll-ups are written with each batch, in its transaction:
ql_hours (per hour and client: queries, blocked, a bit per minute with a query), ql_reasons (per hour, client
and reason code, 0 = none), ql_names (per hour, client and blocked or not, the names asked; a closed hour keeps
only its most asked names). Each of them also has client 0 = all clients (ql_strings codes start at 1), so the
campus-wide figures read 24 rows an hour's worth, not one per device (migration 12).
"""
from __future__ import annotations

import time
from collections import Counter
from itertools import chain, repeat
from operator import add, floordiv, itemgetter, mul
from typing import Optional, Sequence

from resolver.store.names_tally import NamesTally
from resolver.store.protocol import HourCount, LoggedQuery, NameCount, QueryRow, is_blocked
from resolver.store.sqlcommon import (BLOCKED_CODES, NAMES_KEPT_ALL, NAMES_KEPT_CLIENT, QUERY_SQL, Handle,
                                      SQLStoreBase, hours)

QUERY_LOG_COLUMNS = "ts, client, qname, qtype, rcode, answer, upstream, latency_us, cached, reason, node"
_INSERT_ROWS = f"INSERT INTO query_log ({QUERY_LOG_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
_UPSERT_HOURS = ("INSERT INTO ql_hours (hour, client, total, blocked, minutes) VALUES (?,?,?,?,?)"
                 " ON CONFLICT (hour, client) DO UPDATE SET total = ql_hours.total + excluded.total,"
                 " blocked = ql_hours.blocked + excluded.blocked, minutes = ql_hours.minutes | excluded.minutes")
_UPSERT_REASONS = ("INSERT INTO ql_reasons (hour, client, reason, n) VALUES (?,?,?,?)"
                   " ON CONFLICT (hour, client, reason) DO UPDATE SET n = ql_reasons.n + excluded.n")
_UPSERT_NAMES = ("INSERT INTO ql_names (client, hour, blocked, qname, n) VALUES (?,?,?,?,?)"
                 " ON CONFLICT (client, hour, blocked, qname) DO UPDATE SET n = ql_names.n + excluded.n")
_QNAME = itemgetter(3)   # a ql_names row's name

# the oldest and newest ids as two index look-ups: "SELECT min(id), max(id)" in one query reads the whole log on
# SQLite (its min/max shortcut takes one aggregate alone), some 70 ms a batch at a million rows
_ID_RANGE = "SELECT (SELECT min(id) FROM query_log), (SELECT max(id) FROM query_log)"


def roll_up(rows: Sequence[QueryRow], code, node: Optional[int]) -> tuple[list, dict, dict, dict]:
    """The rows as stored (codes, ms, µs; ``node`` the writer's code) and their roll-ups, each with client 0 (all
    clients) beside the rows' own: hours {(hour, client): [total, blocked, minutes]},
    reasons {(hour, client, reason): n}, names {(client, hour, blocked, qname): n}.

    Column by column (a batch is thousands of rows): the per-row steps are map/zip/Counter loops in C; only the
    distinct texts and the distinct (client, minute, reason) are handled one by one."""
    if not rows:
        return [], {}, {}, {}
    ts_, clients_, qnames, qtypes, rcodes, answers, upstreams, latencies, cached_, reasons_ = list(zip(*rows))[:10]
    # the texts' codes, made in the order the rows first name them (client, reason, upstream; as row by row)
    codes: dict = {}
    if "" in clients_:    # a client "" has a code, a reason or upstream "" none: one by one, in row order
        for c, r, u in zip(clients_, reasons_, upstreams):
            if c not in codes:
                codes[c] = code(c)
            for text in (r, u):
                if text and text not in codes:
                    codes[text] = code(text)
    else:
        for text in dict.fromkeys(chain.from_iterable(zip(clients_, reasons_, upstreams))):
            if text:
                codes[text] = code(text)
    coded = {text: codes[text] if text else None for text in chain(set(reasons_), set(upstreams))}
    blocked_of = {text: int(is_blocked(text)) if text else 0 for text in set(reasons_)}
    client = list(map(codes.__getitem__, clients_))
    reason = list(map(coded.__getitem__, reasons_))
    blocked = list(map(blocked_of.__getitem__, reasons_))
    ms = list(map(round, map(mul, ts_, repeat(1000))))
    raw = list(zip(ms, client, qnames, qtypes, rcodes, answers, map(coded.__getitem__, upstreams),
                   map(round, map(mul, latencies, repeat(1000))), map(int, map(bool, cached_)), reason,
                   repeat(node)))
    hour = list(map(floordiv, ms, repeat(3_600_000)))
    names: dict = Counter(zip(client, hour, blocked, qnames))
    # client 0 = all clients: its keys are apart from the clients' (codes start at 1), so a dict merge adds them
    dict.update(names, Counter(zip(repeat(0), hour, blocked, qnames)))
    blocked_code = {coded[text]: b for text, b in blocked_of.items()}
    hours_: dict[tuple[int, int], list[int]] = {}
    reasons: dict[tuple[int, int, int], int] = {}
    for (c, minute, r), n in Counter(zip(client, map(floordiv, ms, repeat(60_000)), reason)).items():
        h = minute // 60
        b = n * blocked_code[r]
        bit = 1 << (minute % 60)
        r = r or 0
        for k in ((h, c), (h, 0)):
            t = hours_.get(k)
            if t is None:
                hours_[k] = [n, b, bit]
            else:
                t[0] += n
                t[1] += b
                t[2] |= bit
        for k in ((h, c, r), (h, 0, r)):
            reasons[k] = reasons.get(k, 0) + n
    return raw, hours_, reasons, names


class QueryLogRooms(SQLStoreBase):
    _codes: dict[str, int]                 # ql_strings: text -> code (codes never change)
    _names_pending: set[tuple[int, int]]   # (client, hour) of ql_names not pruned yet
    _names_seen: bool
    _names_tally: NamesTally               # the open hours' names, written in part (see names_tally.py)
    # the roll-ups' upserts in key order, so that writers sharing the store never wait on each other's row locks
    # in a cycle (PostgreSQL); SQLite has one writer at a time and needs no lock order
    _lock_order = True

    def _init_querylog(self) -> None:
        self._codes = {}
        self._names_pending = set()
        self._names_seen = False
        self._names_tally = NamesTally(NAMES_KEPT_CLIENT, NAMES_KEPT_ALL)

    def _insert_rows(self, db: Handle, raw: list[tuple]) -> None:
        """Append the coded rows (PostgreSQL overrides it with COPY, SQLite with rows per statement)."""
        db.executemany(_INSERT_ROWS, raw)

    def _upsert_rows(self, db: Handle, sql: str, rows: list[tuple]) -> None:
        """Add roll-up rows (SQLite overrides it with rows per statement)."""
        db.executemany(sql, rows)

    def add_queries(self, rows: Sequence[QueryRow]) -> None:
        """Append the rows and add them to the hourly roll-ups, in one transaction."""
        if not rows:
            return
        try:
            with self._transaction(lock=False) as db:   # other nodes write their rows alongside
                node = self._code(db, self.node) if self.node else None
                raw, hours_, reasons, names = roll_up(rows, lambda text: self._code(db, text), node)
                self._insert_rows(db, raw)
                hour_rows = list(map(add, hours_, map(tuple, hours_.values())))
                reason_rows = list(map(add, reasons, zip(reasons.values())))
                latest = max(h for h, _c in hours_)
                # the names counted, and the top names of the hours now over (a later hour's rows, or the clock)
                name_rows = self._names_tally.add(names, {h for h, _c in hours_})
                name_rows += self._names_tally.close(max(latest, int(time.time() // 3600)))
                if self._lock_order:   # concurrent writers (several nodes) take the rows' locks in the same order
                    hour_rows.sort()
                    reason_rows.sort()
                    name_rows.sort()
                else:                  # one writer: only the names sorted (by name alone, the cheap sort), as
                    name_rows.sort(key=_QNAME)   # the table's index takes them a third faster in order
                self._upsert_rows(db, _UPSERT_HOURS, hour_rows)
                self._upsert_rows(db, _UPSERT_REASONS, reason_rows)
                self._upsert_rows(db, _UPSERT_NAMES, name_rows)
                self._prune_names(db, latest, {(c, h) for h, c in hours_})
        except BaseException:
            self._codes.clear()   # codes made in the rolled-back transaction are gone
            self._names_tally.clear()   # and the names it wrote
            raise

    def names_unsettled(self, now: float) -> bool:
        """Whether the names tally still counts an hour over by ``now`` (:meth:`settle_names` has rows to add)."""
        return self._names_tally.open_before(int(now // 3600))

    def settle_names(self, now: Optional[float] = None) -> int:
        """Add the top names not written yet of the hours over by ``now`` (None: of every hour counted, at
        shutdown); returns the rows added. The writer calls it when idle past an hour's end."""
        before = float("inf") if now is None else int(now // 3600)
        if not self._names_tally.open_before(before):
            return 0
        try:
            with self._transaction(lock=False) as db:
                rows = self._names_tally.close(before)
                if self._lock_order:
                    rows.sort()
                else:
                    rows.sort(key=_QNAME)
                self._upsert_rows(db, _UPSERT_NAMES, rows)
        except BaseException:
            self._names_tally.clear()
            raise
        return len(rows)

    def _code(self, db: Handle, text: str) -> int:
        """The ql_strings code of a client address, upstream or reason (made on first use; never changes)."""
        code = self._codes.get(text)
        if code is None:
            db.execute("INSERT INTO ql_strings (text) VALUES (?) ON CONFLICT (text) DO NOTHING", (text,))
            code = self._codes[text] = db.execute("SELECT id FROM ql_strings WHERE text = ?", (text,)).fetchone()[0]
            if len(self._codes) > 100_000:
                self._codes.clear()
        return code

    def _prune_names(self, db: Handle, hour: int, touched: set[tuple[int, int]]) -> None:
        """Once an hour is over, keep only its most asked names (per client and for all clients). The
        (client, hour) pairs written are remembered, so pruning reads only those."""
        pending = self._names_pending
        if not self._names_seen:   # after a restart: the last hours another run wrote may not be pruned yet
            self._names_seen = True
            pending.update(tuple(r) for r in db.execute("SELECT DISTINCT client, hour FROM ql_names WHERE hour >= ?",
                                                        (hour - 2,)).fetchall())
        pending.update(touched)
        for client, h in sorted(c for c in pending if c[1] < hour):
            keep = NAMES_KEPT_ALL if client == 0 else NAMES_KEPT_CLIENT
            for blocked in (0, 1):
                db.execute("DELETE FROM ql_names WHERE client = ? AND hour = ? AND blocked = ? AND qname NOT IN ("
                           " SELECT qname FROM ql_names WHERE client = ? AND hour = ? AND blocked = ?"
                           " ORDER BY n DESC, qname LIMIT ?)", (client, h, blocked, client, h, blocked, keep))
            pending.discard((client, h))

    def cap_queries(self, max_rows: int) -> int:
        """Delete the oldest rows beyond ``max_rows``; returns how many. The roll-ups keep their counts."""
        with self._write(bump=False) as db:
            low, high = db.execute(_ID_RANGE).fetchone()
            if high is None or high - low + 1 <= max_rows:
                return 0
            return db.execute("DELETE FROM query_log WHERE id <= ?", (high - max_rows,)).rowcount

    def count_queries(self) -> int:
        with self._read() as db:
            return db.execute("SELECT COUNT(*) FROM query_log").fetchone()[0]

    def recent_queries(self, limit: int = 100, *, client: Optional[str] = None,
                       qname_contains: Optional[str] = None) -> list[QueryRow]:
        return [lq.row for lq in self.query_page(limit, clients=None if not client else [client],
                                                 qname_contains=qname_contains)]

    def purge_queries(self, older_than: float) -> int:
        # ids grow with time: the rows before the first one at or after the cutoff go (read from the oldest)
        with self._write(bump=False) as db:
            first = db.execute("SELECT id FROM query_log WHERE ts >= ? ORDER BY id LIMIT 1",
                               (int(older_than * 1000),)).fetchone()
            if first is None:
                return db.execute("DELETE FROM query_log").rowcount
            return db.execute("DELETE FROM query_log WHERE id < ?", (first[0],)).rowcount

    def purge_query_stats(self, older_than: float, *, clients_older_than: Optional[float] = None) -> int:
        hour = int(older_than // 3600)
        client_hour = hour if clients_older_than is None else max(hour, int(clients_older_than // 3600))
        with self._write(bump=False) as db:
            n = db.execute("DELETE FROM ql_hours WHERE hour < ?", (hour,)).rowcount
            n += db.execute("DELETE FROM ql_reasons WHERE hour < ?", (hour,)).rowcount
            n += db.execute("DELETE FROM ql_names WHERE client = 0 AND hour < ?", (hour,)).rowcount
            n += db.execute("DELETE FROM ql_names WHERE client != 0 AND hour < ?", (client_hour,)).rowcount
            return n

    # -- web UI: statistics over the query log ------------------------------------------------------

    def query_page(self, limit: int = 100, *, clients: Optional[Sequence[str]] = None,
                   qname_contains: Optional[str] = None, blocked: Optional[bool] = None,
                   after_id: Optional[int] = None, before_id: Optional[int] = None,
                   node: Optional[str] = None) -> list[LoggedQuery]:
        where: list[str] = []
        args: list = []
        with self._read() as db:
            if node is not None:
                found = db.execute("SELECT id FROM ql_strings WHERE text = ?", (node,)).fetchone()
                if found is None:
                    return []
                where.append(f"q.node = {int(found[0])}")
            if clients is not None:
                codes = self._codes_of(db, clients)
                if not codes:
                    return []
                where.append(f"q.client IN ({','.join(map(str, codes))})")
            if blocked is True:
                where.append(f"q.reason IN ({BLOCKED_CODES})")
            elif blocked is False:
                where.append(f"(q.reason IS NULL OR q.reason NOT IN ({BLOCKED_CODES}))")
            if qname_contains:
                where.append(self._contains("q.qname"))
                args.append(qname_contains.lower())
            if after_id is not None:
                where.append("q.id > ?")
                args.append(int(after_id))
            if before_id is not None:
                where.append("q.id < ?")
                args.append(int(before_id))
            sql = QUERY_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY q.id DESC LIMIT ?"
            rows = db.execute(sql, (*args, int(limit))).fetchall()
        return [LoggedQuery(r[0], QueryRow(r[1] / 1000.0, *r[2:7], r[7], r[8] / 1000.0, bool(r[9]), r[10], r[11]))
                for r in rows]

    @staticmethod
    def _codes_of(db: Handle, clients: Sequence[str]) -> list[int]:
        """The codes of the client addresses that have asked."""
        clients = list(clients)
        if not clients:
            return []
        return [r[0] for r in db.execute(
            f"SELECT id FROM ql_strings WHERE text IN ({','.join('?' * len(clients))})", clients).fetchall()]

    def _client_filter(self, db: Handle, clients: Optional[Sequence[str]], column: str = "client") -> Optional[str]:
        """SQL for "only these clients" on a roll-up ("" for all; None when none of them has asked)."""
        if clients is None:
            return ""
        codes = self._codes_of(db, clients)
        return f" AND {column} IN ({','.join(map(str, codes))})" if codes else None

    def hourly_counts(self, since: float, until: float, *,
                      clients: Optional[Sequence[str]] = None) -> list[HourCount]:
        found: dict[int, tuple[int, int]] = {}
        with self._read() as db:
            only = " AND client = 0" if clients is None else self._client_filter(db, clients)
            if only is not None:
                found = {r[0]: (int(r[1]), int(r[2])) for r in db.execute(
                    "SELECT hour, SUM(total), SUM(blocked) FROM ql_hours WHERE hour BETWEEN ? AND ?" + only
                    + " GROUP BY hour", (int(since // 3600), int(until // 3600))).fetchall()}
        return [HourCount(h * 3600.0, *found.get(h, (0, 0))) for h in hours(since, until)]

    def top_domains(self, since: float, limit: int = 10, *, blocked: Optional[bool] = None,
                    clients: Optional[Sequence[str]] = None) -> list[NameCount]:
        with self._read() as db:
            only = " AND client = 0" if clients is None else self._client_filter(db, clients)
            if only is None:
                return []
            which = "" if blocked is None else f" AND blocked = {int(blocked)}"
            sql = ("SELECT qname, SUM(n) AS total, SUM(n * blocked) FROM ql_names WHERE hour >= ?" + only + which
                   + " GROUP BY qname ORDER BY total DESC, qname LIMIT ?")
            rows = db.execute(sql, (int(since // 3600), int(limit))).fetchall()
        return [NameCount(r[0], int(r[1]), int(r[2])) for r in rows]

    def top_clients(self, since: float, limit: int = 10, *, blocked: bool = False) -> list[NameCount]:
        # summed per client code first, then only the sums are named (a campus: 10,000 clients x 24 hours)
        order = "t.b DESC, t.n DESC" if blocked else "t.n DESC"
        sql = ("SELECT s.text, t.n, t.b FROM (SELECT client, SUM(total) AS n, SUM(blocked) AS b FROM ql_hours"
               " WHERE hour >= ? AND client > 0 GROUP BY client) t JOIN ql_strings s ON s.id = t.client"
               + (" WHERE t.b > 0" if blocked else "") + f" ORDER BY {order}, s.text LIMIT ?")
        with self._read() as db:
            rows = db.execute(sql, (int(since // 3600), int(limit))).fetchall()
        return [NameCount(r[0], int(r[1]), int(r[2])) for r in rows]

    def count_clients(self, since: float) -> int:
        with self._read() as db:
            return db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT client FROM ql_hours WHERE hour >= ?"
                              " AND client > 0) t", (int(since // 3600),)).fetchone()[0]

    def online_minutes(self, since: float, until: float, *, clients: Sequence[str],
                       bucket: int = 300) -> list[HourCount]:
        step = max(1, min(60, int(bucket) // 60))      # minutes per bucket
        found: dict[int, list[int]] = {}
        with self._read() as db:
            only = self._client_filter(db, clients)
            if only is not None:
                for hour, blocked, mask in db.execute(
                        "SELECT hour, blocked, minutes FROM ql_hours WHERE hour BETWEEN ? AND ?" + only,
                        (int(since // 3600), int(until // 3600))).fetchall():
                    f = found.setdefault(hour, [0, 0])
                    f[0] |= mask
                    f[1] += blocked
        group = (1 << step) - 1
        out = {}
        for hour, (mask, blocked) in found.items():
            active = sum(1 for g in range(0, 60, step) if (mask >> g) & group)
            out[hour] = (min(60, active * step), blocked)
        return [HourCount(h * 3600.0, *out.get(h, (0, 0))) for h in hours(since, until)]

    def reason_counts(self, since: float, *, clients: Optional[Sequence[str]] = None) -> dict[str, int]:
        with self._read() as db:
            only = " AND client = 0" if clients is None else self._client_filter(db, clients)
            if only is None:
                return {}
            rows = db.execute("SELECT coalesce(s.text, ''), t.n FROM (SELECT reason, SUM(n) AS n FROM ql_reasons"
                              " WHERE hour >= ?" + only + " GROUP BY reason) t LEFT JOIN ql_strings s"
                              " ON s.id = t.reason ORDER BY 2 DESC", (int(since // 3600),)).fetchall()
        return {text: int(n) for text, n in rows}
