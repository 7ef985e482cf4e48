"""SQLite implementation of :class:`resolver.store.protocol.Store` (WAL, foreign keys, migrations)."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import unicodedata
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

from resolver.policy.profiles import (DEFAULT_CATEGORIES, DEFAULT_PROFILE_NAME, Device, Profile, Schedule, SeenClient,
                                      TempAllow, check_choice, check_ip, check_name, check_time)
from resolver.store.protocol import (BLOCK_REASONS, REQUEST_STATUSES, ROLES, AccessRequest, ApiToken, AuditEntry,
                                     HarmReport, HourCount, LoggedQuery, NameCount, QueryRow, SchemaTooNewError, User,
                                     is_blocked)

# A closed hour of the names roll-up keeps this many names per client and per blocked/answered (the device
# report shows 15), and this many for all clients together (the dashboard shows 10).
NAMES_KEPT_CLIENT = 30
NAMES_KEPT_ALL = 200


def _blocked_sql(column: str) -> str:
    """is_blocked(reason) in SQL on ``column`` (the reasons are fixed words, safe to inline)."""
    return "(" + " OR ".join(f"{column} = '{r}' OR {column} LIKE '{r}:%'" for r in BLOCK_REASONS) + ")"


# Each migration takes the schema from version i to i+1. Never edit a shipped one: append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE query_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        client TEXT NOT NULL,
        qname TEXT NOT NULL,
        qtype INTEGER NOT NULL,
        rcode INTEGER NOT NULL,
        answer TEXT NOT NULL DEFAULT '',
        upstream TEXT NOT NULL DEFAULT '',
        latency_ms REAL NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        reason TEXT
    );
    CREATE INDEX query_log_ts ON query_log (ts);
    CREATE INDEX query_log_client_ts ON query_log (client, ts);
    """,
    # 2: per-device profiles. Tuples are JSON arrays in TEXT columns. Names are unique ignoring
    # (ASCII) case. meta.policy_version is incremented in the same transaction as every change
    # to the policy tables, so the engine can poll one cheap row.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO meta (key, value) VALUES ('policy_version', 1);
    CREATE TABLE profiles (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        preset TEXT NOT NULL DEFAULT '',
        categories TEXT NOT NULL DEFAULT '[]',
        services TEXT NOT NULL DEFAULT '[]',
        safe_search INTEGER NOT NULL DEFAULT 0,
        youtube TEXT NOT NULL DEFAULT 'off',
        block_mode TEXT NOT NULL DEFAULT 'null',
        block_list TEXT NOT NULL DEFAULT '[]',
        allow_list TEXT NOT NULL DEFAULT '[]',
        bypass_prevention INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL DEFAULT 0
    );
    INSERT INTO profiles (name, preset, categories, updated)
        VALUES ('default', 'default', '["*"]', (julianday('now') - 2440587.5) * 86400.0);
    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE RESTRICT,
        hostname TEXT NOT NULL DEFAULT '',
        first_seen REAL NOT NULL DEFAULT 0,
        last_seen REAL NOT NULL DEFAULT 0,
        paused_until REAL,
        UNIQUE (kind, value)
    );
    CREATE INDEX devices_profile ON devices (profile_id);
    CREATE TABLE schedules (
        id INTEGER PRIMARY KEY,
        profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        name TEXT NOT NULL COLLATE NOCASE,
        days TEXT NOT NULL,
        start_time TEXT NOT NULL,
        end_time TEXT NOT NULL,
        action TEXT NOT NULL,
        categories TEXT NOT NULL DEFAULT '[]',
        services TEXT NOT NULL DEFAULT '[]',
        enabled INTEGER NOT NULL DEFAULT 1,
        UNIQUE (profile_id, name)
    );
    CREATE TABLE temp_allows (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        domain TEXT NOT NULL,
        until REAL NOT NULL,
        UNIQUE (device_id, domain)
    );
    CREATE INDEX temp_allows_until ON temp_allows (until);
    CREATE TABLE seen_clients (
        address TEXT PRIMARY KEY,
        mac TEXT NOT NULL DEFAULT '',
        hostname TEXT NOT NULL DEFAULT '',
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE INDEX seen_clients_first_seen ON seen_clients (first_seen);
    """,
    # 3: the web UI. Users (hashed passwords only), API tokens (sha256 of the token only), login
    # attempts (rate limit and lock-out across restarts), the audit log (before/after as JSON),
    # children's access requests, harmful-site reports, UI-owned settings (JSON values), and an
    # index for the dashboard's "top blocked" (answered rows mostly have no reason).
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        language TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        last_login REAL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        last_used REAL
    );
    CREATE TABLE login_attempts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        ts REAL NOT NULL,
        ok INTEGER NOT NULL
    );
    CREATE INDEX login_attempts_key_ts ON login_attempts (key, ts);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        before TEXT,
        after TEXT
    );
    CREATE TABLE access_requests (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        client TEXT NOT NULL,
        device TEXT NOT NULL DEFAULT '',
        profile TEXT NOT NULL DEFAULT '',
        domain TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'pending',
        decision TEXT NOT NULL DEFAULT '',
        decided_by TEXT NOT NULL DEFAULT '',
        decided_ts REAL,
        until REAL
    );
    CREATE INDEX access_requests_client_domain ON access_requests (client, domain);
    CREATE INDEX access_requests_status ON access_requests (status, ts);
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        client TEXT NOT NULL,
        url TEXT NOT NULL,
        kind TEXT NOT NULL,
        contact TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX reports_client_ts ON reports (client, ts);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE INDEX query_log_reason_ts ON query_log (ts) WHERE reason IS NOT NULL;
    """,
    # 4: harmful-site reports name the device that sent them, and the parent marks them handled (who,
    # when). forwarded_ts stays NULL until reports are forwarded to the list provider.
    """
    ALTER TABLE reports ADD COLUMN device TEXT NOT NULL DEFAULT '';
    ALTER TABLE reports ADD COLUMN handled_ts REAL;
    ALTER TABLE reports ADD COLUMN handled_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE reports ADD COLUMN forwarded_ts REAL;
    CREATE INDEX reports_new ON reports (ts) WHERE handled_ts IS NULL;
    """,
    # 5: a smaller query log with hourly roll-ups (a busy school: 146 bytes a query, the dashboard scanning
    # millions of rows). Clients, upstreams and reasons become codes in ql_strings (never deleted, so a
    # code keeps its meaning); times are integer milliseconds, latencies microseconds; the only index is the
    # client's (ids grow with time, so age and size limits delete by id). The roll-ups are written with
    # each batch: ql_hours (per hour and client: queries, blocked, a bit per minute with a query),
    # ql_reasons (per hour, client and reason code, 0 = none), ql_names (per hour, client - 0 = all
    # clients - and blocked or not, the names asked; a closed hour keeps only its most asked names).
    f"""
    CREATE TABLE ql_strings (
        id INTEGER PRIMARY KEY,
        text TEXT NOT NULL UNIQUE
    );
    CREATE TABLE query_log_v5 (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        client INTEGER NOT NULL,
        qname TEXT NOT NULL,
        qtype INTEGER NOT NULL,
        rcode INTEGER NOT NULL,
        answer TEXT NOT NULL DEFAULT '',
        upstream INTEGER,
        latency_us INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        reason INTEGER
    );
    INSERT OR IGNORE INTO ql_strings (text)
        SELECT client FROM query_log UNION SELECT upstream FROM query_log WHERE upstream != ''
        UNION SELECT reason FROM query_log WHERE reason IS NOT NULL;
    INSERT INTO query_log_v5 (id, ts, client, qname, qtype, rcode, answer, upstream, latency_us, cached, reason)
        SELECT q.id, CAST(round(q.ts * 1000) AS INTEGER), c.id, q.qname, q.qtype, q.rcode, q.answer, u.id,
               CAST(round(q.latency_ms * 1000) AS INTEGER), q.cached, r.id
        FROM query_log q JOIN ql_strings c ON c.text = q.client
        LEFT JOIN ql_strings u ON u.text = q.upstream LEFT JOIN ql_strings r ON r.text = q.reason;
    DROP TABLE query_log;
    ALTER TABLE query_log_v5 RENAME TO query_log;
    CREATE INDEX query_log_client ON query_log (client);
    CREATE TABLE ql_hours (
        hour INTEGER NOT NULL,
        client INTEGER NOT NULL,
        total INTEGER NOT NULL,
        blocked INTEGER NOT NULL,
        minutes INTEGER NOT NULL,
        PRIMARY KEY (hour, client)
    ) WITHOUT ROWID;
    CREATE TABLE ql_reasons (
        hour INTEGER NOT NULL,
        client INTEGER NOT NULL,
        reason INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (hour, client, reason)
    ) WITHOUT ROWID;
    CREATE TABLE ql_names (
        client INTEGER NOT NULL,
        hour INTEGER NOT NULL,
        blocked INTEGER NOT NULL,
        qname TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (client, hour, blocked, qname)
    ) WITHOUT ROWID;
    CREATE TEMP VIEW ql_v5_rows AS
        SELECT q.ts / 3600000 AS hour, q.client AS client, coalesce(q.reason, 0) AS reason, q.qname AS qname,
               q.ts AS ts, coalesce({_blocked_sql("r.text")}, 0) AS blocked
        FROM query_log q LEFT JOIN ql_strings r ON r.id = q.reason;
    INSERT INTO ql_hours (hour, client, total, blocked, minutes)
        SELECT hour, client, COUNT(*), SUM(blocked), SUM(DISTINCT 1 << (ts / 60000 % 60)) FROM ql_v5_rows
        GROUP BY hour, client;
    INSERT INTO ql_reasons (hour, client, reason, n)
        SELECT hour, client, reason, COUNT(*) FROM ql_v5_rows GROUP BY hour, client, reason;
    INSERT INTO ql_names (client, hour, blocked, qname, n)
        SELECT client, hour, blocked, qname, COUNT(*) FROM ql_v5_rows GROUP BY client, hour, blocked, qname
        UNION ALL SELECT 0, hour, blocked, qname, COUNT(*) FROM ql_v5_rows GROUP BY hour, blocked, qname;
    DROP VIEW ql_v5_rows;
    DELETE FROM ql_names WHERE (client, hour, blocked, qname) IN (
        SELECT client, hour, blocked, qname FROM (
            SELECT client, hour, blocked, qname, ROW_NUMBER() OVER (
                PARTITION BY client, hour, blocked ORDER BY n DESC, qname) AS rank FROM ql_names)
        WHERE rank > (CASE client WHEN 0 THEN {NAMES_KEPT_ALL} ELSE {NAMES_KEPT_CLIENT} END));
    INSERT INTO meta (key, value) VALUES ('ql_names_pruned', 0);
    """,
    # 6: the default profile (devices nobody has set up) blocks a fixed set of categories instead of "*":
    # with bundled lists for social, games and video, "*" took YouTube and Facebook from every grown-up's
    # phone not yet assigned. Only a default still on "*" changes (see profiles.DEFAULT_CATEGORIES).
    f"""
    UPDATE profiles SET categories = '{json.dumps(list(DEFAULT_CATEGORIES))}',
        updated = (julianday('now') - 2440587.5) * 86400.0
        WHERE name = 'default' AND categories = '["*"]';
    UPDATE meta SET value = value + 1 WHERE key = 'policy_version';
    """,
    # 7 (provider): a report keeps the UI language it was filed in (forwarded to the list provider with it);
    # the outbox is the reports whose forwarded_ts is still NULL.
    """
    ALTER TABLE reports ADD COLUMN lang TEXT NOT NULL DEFAULT '';
    CREATE INDEX reports_outbox ON reports (id) WHERE forwarded_ts IS NULL;
    """,
]

_PROFILE_SQL = ("SELECT id, name, preset, categories, services, safe_search, youtube, block_mode, block_list,"
                " allow_list, bypass_prevention, updated FROM profiles")
_DEVICE_SQL = ("SELECT d.id, d.name, d.kind, d.value, p.name, d.hostname, d.first_seen, d.last_seen, d.paused_until"
               " FROM devices d JOIN profiles p ON p.id = d.profile_id")
_SCHEDULE_SQL = ("SELECT s.id, p.name, s.name, s.days, s.start_time, s.end_time, s.action, s.categories,"
                 " s.services, s.enabled FROM schedules s JOIN profiles p ON p.id = s.profile_id")
_TEMP_ALLOW_SQL = "SELECT t.id, d.name, t.domain, t.until FROM temp_allows t JOIN devices d ON d.id = t.device_id"
_USER_SQL = "SELECT id, name, role, password_hash, language, created, last_login FROM users"
_TOKEN_SQL = "SELECT t.id, u.name, t.label, t.created, t.last_used FROM api_tokens t JOIN users u ON u.id = t.user_id"
_REQUEST_SQL = ("SELECT id, ts, client, device, profile, domain, reason, message, status, decision, decided_by,"
                " decided_ts, until FROM access_requests")
_REPORT_SQL = ("SELECT id, ts, client, url, kind, contact, message, device, handled_ts, handled_by, forwarded_ts"
               ", lang FROM reports")
_QUERY_SQL = ("SELECT q.id, q.ts / 1000.0, c.text, q.qname, q.qtype, q.rcode, q.answer, coalesce(u.text, ''),"
              " q.latency_us / 1000.0, q.cached, r.text FROM query_log q JOIN ql_strings c ON c.id = q.client"
              " LEFT JOIN ql_strings u ON u.id = q.upstream LEFT JOIN ql_strings r ON r.id = q.reason")
_BLOCKED_CODES = f"SELECT id FROM ql_strings WHERE {_blocked_sql('text')}"
_TEXT_MAX = 2000          # user text kept from the public forms
_KIND_LABEL = {"ip": "IP address", "cidr": "network", "mac": "MAC address"}


class SQLiteStore:
    """One connection guarded by a lock: safe to call from the engine's writer thread and others."""

    def __init__(self, path: str, *, timeout: float = 5.0):
        self.path = path
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self._db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._codes: dict[str, int] = {}                   # ql_strings: text -> code (codes never change)
        self._names_pending: set[tuple[int, int]] = set()  # (client, hour) of ql_names not pruned yet
        self._names_seen = False

    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        with self._lock:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise SchemaTooNewError(f"{self.path}: store schema {version} is newer than this Hearth "
                                   f"({len(MIGRATIONS)}); upgrade Hearth or restore a backup")
            for i in range(version, len(MIGRATIONS)):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for stmt in _statements(MIGRATIONS[i]):
                        self._db.execute(stmt)
                    self._db.execute(f"PRAGMA user_version={i + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            return len(MIGRATIONS)

    def add_queries(self, rows: Sequence[QueryRow]) -> None:
        """Append the rows and add them to the hourly roll-ups, in one transaction."""
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                code = self._code
                raw = []
                hours: dict[tuple[int, int], list[int]] = {}
                reasons: dict[tuple[int, int, int], int] = {}
                names: dict[tuple[int, int, int, str], int] = {}
                for ts, client_text, qname, qtype, rcode, answer, upstream, latency, cached, reason_text in rows:
                    ms = int(round(ts * 1000))
                    client = code(client_text)
                    reason = code(reason_text) if reason_text else None
                    raw.append((ms, client, qname, qtype, rcode, answer, code(upstream) if upstream else None,
                                int(round(latency * 1000)), int(bool(cached)), reason))
                    hour = ms // 3_600_000
                    blocked = int(is_blocked(reason_text))
                    h = hours.get((hour, client))
                    if h is None:
                        h = hours[(hour, client)] = [0, 0, 0]
                    h[0] += 1
                    h[1] += blocked
                    h[2] |= 1 << (ms // 60_000 % 60)
                    k = (hour, client, reason or 0)
                    reasons[k] = reasons.get(k, 0) + 1
                    for who in (client, 0):
                        k2 = (who, hour, blocked, qname)
                        names[k2] = names.get(k2, 0) + 1
                db = self._db
                db.executemany("INSERT INTO query_log (ts, client, qname, qtype, rcode, answer, upstream, latency_us,"
                               " cached, reason) VALUES (?,?,?,?,?,?,?,?,?,?)", raw)
                db.executemany("INSERT INTO ql_hours (hour, client, total, blocked, minutes) VALUES (?,?,?,?,?)"
                               " ON CONFLICT (hour, client) DO UPDATE SET total = total + excluded.total,"
                               " blocked = blocked + excluded.blocked, minutes = minutes | excluded.minutes",
                               [(*k, *v) for k, v in hours.items()])
                db.executemany("INSERT INTO ql_reasons (hour, client, reason, n) VALUES (?,?,?,?)"
                               " ON CONFLICT (hour, client, reason) DO UPDATE SET n = n + excluded.n",
                               [(*k, v) for k, v in reasons.items()])
                db.executemany("INSERT INTO ql_names (client, hour, blocked, qname, n) VALUES (?,?,?,?,?)"
                               " ON CONFLICT (client, hour, blocked, qname) DO UPDATE SET n = n + excluded.n",
                               [(*k, v) for k, v in names.items()])
                self._prune_names(max(h for h, _c in hours), {(c, h) for h, c in hours})
                db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._codes.clear()   # codes made in the rolled-back transaction are gone
                raise

    def _code(self, text: str) -> int:
        """The ql_strings code of a client address, upstream or reason (made on first use; never changes)."""
        code = self._codes.get(text)
        if code is None:
            self._db.execute("INSERT OR IGNORE INTO ql_strings (text) VALUES (?)", (text,))
            code = self._codes[text] = self._db.execute("SELECT id FROM ql_strings WHERE text = ?",
                                                        (text,)).fetchone()[0]
            if len(self._codes) > 100_000:
                self._codes.clear()
        return code

    def _prune_names(self, hour: int, touched: set[tuple[int, int]]) -> None:
        """Once an hour is over, keep only its most asked names (per client and for all clients). The
        (client, hour) pairs written are remembered, so pruning reads only those."""
        pending = self._names_pending
        if not self._names_seen:   # after a restart: the last hours another run wrote may not be pruned yet
            self._names_seen = True
            pending.update(self._db.execute("SELECT DISTINCT client, hour FROM ql_names WHERE hour >= ?",
                                            (hour - 2,)).fetchall())
        pending.update(touched)
        closed = [(c, h) for c, h in pending if h < hour]
        for client, h in closed:
            keep = NAMES_KEPT_ALL if client == 0 else NAMES_KEPT_CLIENT
            for blocked in (0, 1):
                self._db.execute(
                    "DELETE FROM ql_names WHERE client = ? AND hour = ? AND blocked = ? AND qname IN ("
                    " SELECT qname FROM ql_names WHERE client = ? AND hour = ? AND blocked = ?"
                    " ORDER BY n DESC, qname LIMIT -1 OFFSET ?)", (client, h, blocked, client, h, blocked, keep))
            pending.discard((client, h))

    def cap_queries(self, max_rows: int) -> int:
        """Delete the oldest rows beyond ``max_rows``; returns how many. The roll-ups keep their counts."""
        with self._lock:
            low, high = self._db.execute("SELECT min(id), max(id) FROM query_log").fetchone()
            if high is None or high - low + 1 <= max_rows:
                return 0
            return self._db.execute("DELETE FROM query_log WHERE id <= ?", (high - max_rows,)).rowcount

    def count_queries(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM query_log").fetchone()[0]

    def recent_queries(self, limit: int = 100, *, client: Optional[str] = None,
                       qname_contains: Optional[str] = None) -> list[QueryRow]:
        return [lq.row for lq in self.query_page(limit, clients=None if not client else [client],
                                                 qname_contains=qname_contains)]

    def purge_queries(self, older_than: float) -> int:
        # ids grow with time: the rows before the first one at or after the cutoff go (read from the oldest)
        with self._lock:
            row = self._db.execute("SELECT id FROM query_log WHERE ts >= ? ORDER BY id LIMIT 1",
                                   (older_than * 1000,)).fetchone()
            if row is None:
                return self._db.execute("DELETE FROM query_log").rowcount
            return self._db.execute("DELETE FROM query_log WHERE id < ?", (row[0],)).rowcount

    def purge_query_stats(self, older_than: float, *, clients_older_than: Optional[float] = None) -> int:
        hour = int(older_than // 3600)
        client_hour = hour if clients_older_than is None else max(hour, int(clients_older_than // 3600))
        with self._write(bump=False) as db:
            n = db.execute("DELETE FROM ql_hours WHERE hour < ?", (hour,)).rowcount
            n += db.execute("DELETE FROM ql_reasons WHERE hour < ?", (hour,)).rowcount
            n += db.execute("DELETE FROM ql_names WHERE client = 0 AND hour < ?", (hour,)).rowcount
            n += db.execute("DELETE FROM ql_names WHERE client != 0 AND hour < ?", (client_hour,)).rowcount
            return n

    # -- writing ---------------------------------------------------------------------------------

    @contextmanager
    def _write(self, *, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken at once, so checks and writes see the same data); with
        ``bump``, policy_version goes up in the same transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                if bump:
                    _bump(self._db)
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:   # the checks below should have caught it first
                self._db.execute("ROLLBACK")
                raise ValueError(f"refused by the store: {exc}") from exc
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def policy_version(self) -> int:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'policy_version'").fetchone()[0]

    # -- profiles --------------------------------------------------------------------------------

    def add_profile(self, profile: Profile) -> Profile:
        _need(profile, Profile)
        with self._write() as db:
            if _row(db, "SELECT id FROM profiles WHERE name = ?", profile.name):
                raise ValueError(f"profile {profile.name!r} already exists")
            cur = db.execute("INSERT INTO profiles (name, preset, categories, services, safe_search, youtube,"
                             " block_mode, block_list, allow_list, bypass_prevention, updated)"
                             " VALUES (?,?,?,?,?,?,?,?,?,?,?)", _profile_values(profile))
            return _one_profile(db, cur.lastrowid)

    def update_profile(self, profile: Profile) -> Profile:
        _need(profile, Profile)
        with self._write() as db:
            if profile.id is not None:
                row = _row(db, "SELECT id, name FROM profiles WHERE id = ?", profile.id)
                if row is None:
                    raise ValueError(f"unknown profile id {profile.id}")
            else:
                row = _row(db, "SELECT id, name FROM profiles WHERE name = ?", profile.name)
                if row is None:
                    raise ValueError(f"unknown profile {profile.name!r}")
            pid, old_name = row
            if _is_default(old_name) and not _is_default(profile.name):
                raise ValueError("the default profile can't be renamed")
            if _row(db, "SELECT id FROM profiles WHERE name = ? AND id != ?", profile.name, pid):
                raise ValueError(f"profile {profile.name!r} already exists")
            db.execute("UPDATE profiles SET name = ?, preset = ?, categories = ?, services = ?, safe_search = ?,"
                       " youtube = ?, block_mode = ?, block_list = ?, allow_list = ?, bypass_prevention = ?,"
                       " updated = ? WHERE id = ?", (*_profile_values(profile), pid))
            return _one_profile(db, pid)

    def get_profile(self, name: str) -> Optional[Profile]:
        with self._lock:
            row = _row(self._db, _PROFILE_SQL + " WHERE name = ?", _key(name))
        return _profile(row) if row else None

    def list_profiles(self) -> list[Profile]:
        with self._lock:
            rows = self._db.execute(_PROFILE_SQL + " ORDER BY name, id").fetchall()
        return [_profile(r) for r in rows]

    def remove_profile(self, name: str) -> None:
        with self._write() as db:
            pid, stored_name = _profile_ref(db, name)
            if _is_default(stored_name):
                raise ValueError("the default profile can't be removed")
            users = [r[0] for r in db.execute("SELECT name FROM devices WHERE profile_id = ? ORDER BY name", (pid,))]
            if users:
                raise ValueError(f"profile {stored_name!r} is used by devices {', '.join(users)}: "
                                 "move them to another profile first")
            db.execute("DELETE FROM profiles WHERE id = ?", (pid,))

    # -- devices ---------------------------------------------------------------------------------

    def add_device(self, device: Device) -> Device:
        _need(device, Device)
        with self._write() as db:
            if _row(db, "SELECT id FROM devices WHERE name = ?", device.name):
                raise ValueError(f"device {device.name!r} already exists")
            pid, _ = _profile_ref(db, device.profile)
            _check_identity(db, device, None)
            cur = db.execute("INSERT INTO devices (name, kind, value, profile_id, hostname, first_seen, last_seen,"
                             " paused_until) VALUES (?,?,?,?,?,?,?,?)",
                             (device.name, device.kind, device.value, pid, device.hostname, device.first_seen,
                              device.last_seen, device.paused_until))
            return _one_device(db, cur.lastrowid)

    def update_device(self, device: Device) -> Device:
        _need(device, Device)
        with self._write() as db:
            if device.id is not None:
                row = _row(db, "SELECT id FROM devices WHERE id = ?", device.id)
                if row is None:
                    raise ValueError(f"unknown device id {device.id}")
            else:
                row = _row(db, "SELECT id FROM devices WHERE name = ?", device.name)
                if row is None:
                    raise ValueError(f"unknown device {device.name!r}")
            did = row[0]
            if _row(db, "SELECT id FROM devices WHERE name = ? AND id != ?", device.name, did):
                raise ValueError(f"device {device.name!r} already exists")
            pid, _ = _profile_ref(db, device.profile)
            _check_identity(db, device, did)
            db.execute("UPDATE devices SET name = ?, kind = ?, value = ?, profile_id = ?, hostname = ?,"
                       " paused_until = ? WHERE id = ?",
                       (device.name, device.kind, device.value, pid, device.hostname, device.paused_until, did))
            return _one_device(db, did)

    def get_device(self, name: str) -> Optional[Device]:
        with self._lock:
            row = _row(self._db, _DEVICE_SQL + " WHERE d.name = ?", _key(name))
        return _device(row) if row else None

    def list_devices(self) -> list[Device]:
        with self._lock:
            rows = self._db.execute(_DEVICE_SQL + " ORDER BY d.name, d.id").fetchall()
        return [_device(r) for r in rows]

    def remove_device(self, name: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM devices WHERE name = ?", (_key(name),)).rowcount == 0:
                raise ValueError(f"unknown device {_key(name)!r}")

    def set_pause(self, device_name: str, until: Optional[float]) -> None:
        until = check_time(until, "pause until", optional=True)
        with self._write() as db:
            if db.execute("UPDATE devices SET paused_until = ? WHERE name = ?",
                          (until, _key(device_name))).rowcount == 0:
                raise ValueError(f"unknown device {_key(device_name)!r}")

    # -- schedules -------------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule) -> Schedule:
        _need(schedule, Schedule)
        with self._write() as db:
            pid, profile_name = _profile_ref(db, schedule.profile)
            if _row(db, "SELECT id FROM schedules WHERE profile_id = ? AND name = ?", pid, schedule.name):
                raise ValueError(f"schedule {schedule.name!r} already exists in profile {profile_name!r}")
            cur = db.execute("INSERT INTO schedules (profile_id, name, days, start_time, end_time, action, categories,"
                             " services, enabled) VALUES (?,?,?,?,?,?,?,?,?)", (pid, *_schedule_values(schedule)))
            return _one_schedule(db, cur.lastrowid)

    def update_schedule(self, schedule: Schedule) -> Schedule:
        _need(schedule, Schedule)
        with self._write() as db:
            pid, profile_name = _profile_ref(db, schedule.profile)
            if schedule.id is not None:
                row = _row(db, "SELECT id FROM schedules WHERE id = ?", schedule.id)
                if row is None:
                    raise ValueError(f"unknown schedule id {schedule.id}")
            else:
                row = _row(db, "SELECT id FROM schedules WHERE profile_id = ? AND name = ?", pid, schedule.name)
                if row is None:
                    raise ValueError(f"unknown schedule {schedule.name!r} in profile {profile_name!r}")
            sid = row[0]
            if _row(db, "SELECT id FROM schedules WHERE profile_id = ? AND name = ? AND id != ?",
                    pid, schedule.name, sid):
                raise ValueError(f"schedule {schedule.name!r} already exists in profile {profile_name!r}")
            db.execute("UPDATE schedules SET profile_id = ?, name = ?, days = ?, start_time = ?, end_time = ?,"
                       " action = ?, categories = ?, services = ?, enabled = ? WHERE id = ?",
                       (pid, *_schedule_values(schedule), sid))
            return _one_schedule(db, sid)

    def list_schedules(self, profile: Optional[str] = None) -> list[Schedule]:
        with self._lock:
            if profile is None:
                rows = self._db.execute(_SCHEDULE_SQL + " ORDER BY p.name, s.name, s.id").fetchall()
            else:
                pid, _ = _profile_ref(self._db, profile)
                rows = self._db.execute(_SCHEDULE_SQL + " WHERE s.profile_id = ? ORDER BY s.name, s.id",
                                        (pid,)).fetchall()
        return [_schedule(r) for r in rows]

    def remove_schedule(self, profile: str, name: str) -> None:
        with self._write() as db:
            pid, profile_name = _profile_ref(db, profile)
            if db.execute("DELETE FROM schedules WHERE profile_id = ? AND name = ?", (pid, _key(name))).rowcount == 0:
                raise ValueError(f"unknown schedule {_key(name)!r} in profile {profile_name!r}")

    # -- temporary allows ------------------------------------------------------------------------

    def add_temp_allow(self, allow: TempAllow) -> TempAllow:
        _need(allow, TempAllow)
        with self._write() as db:
            row = _row(db, "SELECT id FROM devices WHERE name = ?", allow.device)
            if row is None:
                raise ValueError(f"unknown device {allow.device!r}")
            existing = _row(db, "SELECT id FROM temp_allows WHERE device_id = ? AND domain = ?", row[0], allow.domain)
            if existing:
                tid = existing[0]
                db.execute("UPDATE temp_allows SET until = ? WHERE id = ?", (allow.until, tid))
            else:
                tid = db.execute("INSERT INTO temp_allows (device_id, domain, until) VALUES (?,?,?)",
                                 (row[0], allow.domain, allow.until)).lastrowid
            return _temp_allow(_row(db, _TEMP_ALLOW_SQL + " WHERE t.id = ?", tid))

    def list_temp_allows(self, now: float) -> list[TempAllow]:
        with self._lock:
            rows = self._db.execute(_TEMP_ALLOW_SQL + " WHERE t.until > ? ORDER BY t.until, t.id", (now,)).fetchall()
        return [_temp_allow(r) for r in rows]

    def remove_temp_allow(self, allow_id: int) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM temp_allows WHERE id = ?", (allow_id,)).rowcount == 0:
                raise ValueError(f"unknown temporary allow {allow_id!r}")

    def purge_temp_allows(self, now: float) -> int:
        with self._write(bump=False) as db:
            count = db.execute("DELETE FROM temp_allows WHERE until <= ?", (now,)).rowcount
            if count:
                _bump(db)
        return count

    # -- seen clients ----------------------------------------------------------------------------

    def touch_seen(self, address: str, mac: str, hostname: str, now: float) -> None:
        seen = SeenClient(address, mac or "", hostname or "", now, now)
        with self._write(bump=False) as db:
            if db.execute("UPDATE seen_clients SET last_seen = max(last_seen, ?),"
                          " mac = CASE WHEN ? != '' THEN ? ELSE mac END,"
                          " hostname = CASE WHEN ? != '' THEN ? ELSE hostname END WHERE address = ?",
                          (seen.last_seen, seen.mac, seen.mac, seen.hostname, seen.hostname,
                           seen.address)).rowcount == 0:
                db.execute("INSERT INTO seen_clients (address, mac, hostname, first_seen, last_seen)"
                           " VALUES (?,?,?,?,?)", (seen.address, seen.mac, seen.hostname, seen.first_seen,
                                                   seen.last_seen))
            db.execute("UPDATE devices SET last_seen = max(last_seen, ?),"
                       " first_seen = CASE WHEN first_seen = 0 THEN ? ELSE first_seen END,"
                       " hostname = CASE WHEN ? != '' THEN ? ELSE hostname END"
                       " WHERE (kind = 'ip' AND value = ?) OR (kind = 'mac' AND value = ?)",
                       (seen.last_seen, seen.first_seen, seen.hostname, seen.hostname, seen.address,
                        seen.mac))

    def list_seen(self, limit: int = 200) -> list[SeenClient]:
        with self._lock:
            rows = self._db.execute("SELECT address, mac, hostname, first_seen, last_seen FROM seen_clients"
                                    " ORDER BY first_seen DESC, address LIMIT ?", (int(limit),)).fetchall()
        return [SeenClient(*r) for r in rows]

    # -- web UI: statistics over the query log ------------------------------------------------------

    def query_page(self, limit: int = 100, *, clients: Optional[Sequence[str]] = None,
                   qname_contains: Optional[str] = None, blocked: Optional[bool] = None,
                   after_id: Optional[int] = None, before_id: Optional[int] = None) -> list[LoggedQuery]:
        where: list[str] = []
        args: list = []
        with self._lock:
            if clients is not None:
                codes = self._codes_of(clients)
                if not codes:
                    return []
                where.append(f"q.client IN ({','.join(map(str, codes))})")
            if blocked is True:
                where.append(f"q.reason IN ({_BLOCKED_CODES})")
            elif blocked is False:
                where.append(f"(q.reason IS NULL OR q.reason NOT IN ({_BLOCKED_CODES}))")
            if qname_contains:
                where.append("instr(q.qname, ?) > 0")
                args.append(qname_contains.lower())
            if after_id is not None:
                where.append("q.id > ?")
                args.append(int(after_id))
            if before_id is not None:
                where.append("q.id < ?")
                args.append(int(before_id))
            sql = _QUERY_SQL + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY q.id DESC LIMIT ?"
            rows = self._db.execute(sql, (*args, int(limit))).fetchall()
        return [LoggedQuery(r[0], QueryRow(*r[1:9], bool(r[9]), r[10])) for r in rows]

    def _codes_of(self, clients: Sequence[str]) -> list[int]:
        """The codes of the client addresses that have asked (lock held)."""
        clients = list(clients)
        if not clients:
            return []
        return [r[0] for r in self._db.execute(
            f"SELECT id FROM ql_strings WHERE text IN ({','.join('?' * len(clients))})", clients)]

    def _client_filter(self, clients: Optional[Sequence[str]], column: str = "client") -> Optional[str]:
        """SQL for "only these clients" on a roll-up ("" for all; None when none of them has asked)."""
        if clients is None:
            return ""
        codes = self._codes_of(clients)
        return f" AND {column} IN ({','.join(map(str, codes))})" if codes else None

    def hourly_counts(self, since: float, until: float, *,
                      clients: Optional[Sequence[str]] = None) -> list[HourCount]:
        found: dict[int, tuple[int, int]] = {}
        with self._lock:
            only = self._client_filter(clients)
            if only is not None:
                found = {r[0]: (r[1], r[2]) for r in self._db.execute(
                    "SELECT hour, SUM(total), SUM(blocked) FROM ql_hours WHERE hour BETWEEN ? AND ?" + only
                    + " GROUP BY hour", (int(since // 3600), int(until // 3600)))}
        return [HourCount(h * 3600.0, *found.get(h, (0, 0))) for h in _hours(since, until)]

    def top_domains(self, since: float, limit: int = 10, *, blocked: Optional[bool] = None,
                    clients: Optional[Sequence[str]] = None) -> list[NameCount]:
        with self._lock:
            only = " AND client = 0" if clients is None else self._client_filter(clients)
            if only is None:
                return []
            which = "" if blocked is None else f" AND blocked = {int(blocked)}"
            sql = ("SELECT qname, SUM(n) AS total, SUM(n * blocked) FROM ql_names WHERE hour >= ?" + only + which
                   + " GROUP BY qname ORDER BY total DESC, qname LIMIT ?")
            return [NameCount(*r) for r in self._db.execute(sql, (int(since // 3600), int(limit)))]

    def top_clients(self, since: float, limit: int = 10) -> list[NameCount]:
        sql = ("SELECT s.text, SUM(h.total) AS n, SUM(h.blocked) FROM ql_hours h JOIN ql_strings s ON s.id = h.client"
               " WHERE h.hour >= ? GROUP BY h.client ORDER BY n DESC, s.text LIMIT ?")
        with self._lock:
            return [NameCount(*r) for r in self._db.execute(sql, (int(since // 3600), int(limit)))]

    def count_clients(self, since: float) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(DISTINCT client) FROM ql_hours WHERE hour >= ?",
                                    (int(since // 3600),)).fetchone()[0]

    def online_minutes(self, since: float, until: float, *, clients: Sequence[str],
                       bucket: int = 300) -> list[HourCount]:
        step = max(1, min(60, int(bucket) // 60))      # minutes per bucket
        found: dict[int, list[int]] = {}
        with self._lock:
            only = self._client_filter(clients)
            if only is not None:
                for hour, blocked, mask in self._db.execute(
                        "SELECT hour, blocked, minutes FROM ql_hours WHERE hour BETWEEN ? AND ?" + only,
                        (int(since // 3600), int(until // 3600))):
                    f = found.setdefault(hour, [0, 0])
                    f[0] |= mask
                    f[1] += blocked
        group = (1 << step) - 1
        out = {}
        for hour, (mask, blocked) in found.items():
            active = sum(1 for g in range(0, 60, step) if (mask >> g) & group)
            out[hour] = (min(60, active * step), blocked)
        return [HourCount(h * 3600.0, *out.get(h, (0, 0))) for h in _hours(since, until)]

    def reason_counts(self, since: float, *, clients: Optional[Sequence[str]] = None) -> dict[str, int]:
        with self._lock:
            only = self._client_filter(clients)
            if only is None:
                return {}
            rows = self._db.execute("SELECT coalesce(s.text, ''), SUM(r.n) FROM ql_reasons r LEFT JOIN ql_strings s"
                                    " ON s.id = r.reason WHERE r.hour >= ?" + only.replace("client", "r.client")
                                    + " GROUP BY r.reason ORDER BY 2 DESC", (int(since // 3600),)).fetchall()
        return dict(rows)

    # -- web UI: settings ----------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = _row(self._db, "SELECT value FROM settings WHERE key = ?", key)
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        with self._write(bump=False) as db:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, text))

    # -- web UI: users, tokens, login attempts --------------------------------------------------------

    def add_user(self, name: str, password_hash: str, role: str = "admin", language: str = "",
                 now: Optional[float] = None) -> User:
        name = check_name(name, "user")
        role = check_choice(role, ROLES, "role")
        if not password_hash:
            raise ValueError("a user needs a password")
        with self._write(bump=False) as db:
            if _row(db, "SELECT id FROM users WHERE name = ?", name):
                raise ValueError(f"user {name!r} already exists")
            uid = db.execute("INSERT INTO users (name, role, password_hash, language, created) VALUES (?,?,?,?,?)",
                             (name, role, password_hash, str(language or ""), _now(now))).lastrowid
            return User(*_row(db, _USER_SQL + " WHERE id = ?", uid))

    def get_user(self, name: str) -> Optional[User]:
        with self._lock:
            row = _row(self._db, _USER_SQL + " WHERE name = ?", _key(name))
        return User(*row) if row else None

    def get_user_by_id(self, user_id: int) -> Optional[User]:
        with self._lock:
            row = _row(self._db, _USER_SQL + " WHERE id = ?", int(user_id))
        return User(*row) if row else None

    def list_users(self) -> list[User]:
        with self._lock:
            return [User(*r) for r in self._db.execute(_USER_SQL + " ORDER BY name, id")]

    def update_user(self, name: str, *, password_hash: Optional[str] = None, role: Optional[str] = None,
                    language: Optional[str] = None, last_login: Optional[float] = None) -> User:
        if role is not None:
            role = check_choice(role, ROLES, "role")
        with self._write(bump=False) as db:
            row = _row(db, "SELECT id, role FROM users WHERE name = ?", _key(name))
            if row is None:
                raise ValueError(f"unknown user {_key(name)!r}")
            uid, old_role = row
            if role is not None and role != "admin" and old_role == "admin" and _admins(db) <= 1:
                raise ValueError("the last admin must stay an admin")
            for column, value in (("password_hash", password_hash), ("role", role), ("language", language),
                                  ("last_login", last_login)):
                if value is not None:
                    db.execute(f"UPDATE users SET {column} = ? WHERE id = ?", (value, uid))
            return User(*_row(db, _USER_SQL + " WHERE id = ?", uid))

    def remove_user(self, name: str) -> None:
        with self._write(bump=False) as db:
            row = _row(db, "SELECT id, role FROM users WHERE name = ?", _key(name))
            if row is None:
                raise ValueError(f"unknown user {_key(name)!r}")
            if row[1] == "admin" and _admins(db) <= 1:
                raise ValueError("the last admin can't be removed")
            db.execute("DELETE FROM users WHERE id = ?", (row[0],))

    def count_users(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def add_api_token(self, user: str, token_hash: str, label: str = "", now: Optional[float] = None) -> ApiToken:
        with self._write(bump=False) as db:
            row = _row(db, "SELECT id FROM users WHERE name = ?", _key(user))
            if row is None:
                raise ValueError(f"unknown user {_key(user)!r}")
            tid = db.execute("INSERT INTO api_tokens (user_id, token_hash, label, created) VALUES (?,?,?,?)",
                             (row[0], token_hash, str(label)[:100], _now(now))).lastrowid
            return ApiToken(*_row(db, _TOKEN_SQL + " WHERE t.id = ?", tid))

    def user_for_token(self, token_hash: str, now: Optional[float] = None) -> Optional[User]:
        with self._write(bump=False) as db:
            row = _row(db, "SELECT id, user_id FROM api_tokens WHERE token_hash = ?", token_hash)
            if row is None:
                return None
            db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (_now(now), row[0]))
            return User(*_row(db, _USER_SQL + " WHERE id = ?", row[1]))

    def list_api_tokens(self, user: Optional[str] = None) -> list[ApiToken]:
        with self._lock:
            if user is None:
                rows = self._db.execute(_TOKEN_SQL + " ORDER BY u.name, t.id").fetchall()
            else:
                rows = self._db.execute(_TOKEN_SQL + " WHERE u.name = ? ORDER BY t.id", (_key(user),)).fetchall()
        return [ApiToken(*r) for r in rows]

    def remove_api_token(self, token_id: int) -> None:
        with self._write(bump=False) as db:
            if db.execute("DELETE FROM api_tokens WHERE id = ?", (int(token_id),)).rowcount == 0:
                raise ValueError(f"unknown API token {token_id!r}")

    def add_login_attempt(self, key: str, ok: bool, now: float) -> None:
        with self._write(bump=False) as db:
            db.execute("INSERT INTO login_attempts (key, ts, ok) VALUES (?,?,?)", (str(key), now, int(bool(ok))))

    def login_failures(self, key: str, since: float) -> tuple[int, float]:
        with self._lock:
            last_ok = _row(self._db, "SELECT max(ts) FROM login_attempts WHERE key = ? AND ok = 1", str(key))[0]
            row = _row(self._db, "SELECT COUNT(*), max(ts) FROM login_attempts WHERE key = ? AND ok = 0 AND ts >= ?",
                       str(key), max(since, last_ok or 0.0))
        return row[0], row[1] or 0.0

    def purge_login_attempts(self, older_than: float) -> int:
        with self._write(bump=False) as db:
            return db.execute("DELETE FROM login_attempts WHERE ts < ?", (older_than,)).rowcount

    # kept in the settings table (key session-gen:ID), so no schema change was needed
    def session_generation(self, user_id: int) -> int:
        with self._lock:
            row = _row(self._db, "SELECT value FROM settings WHERE key = ?", f"session-gen:{int(user_id)}")
        return int(json.loads(row[0])) if row else 0

    def bump_session_generation(self, user_id: int) -> int:
        key = f"session-gen:{int(user_id)}"
        with self._write(bump=False) as db:
            row = _row(db, "SELECT value FROM settings WHERE key = ?", key)
            gen = (int(json.loads(row[0])) if row else 0) + 1
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, json.dumps(gen)))
        return gen

    # -- web UI: audit log ----------------------------------------------------------------------------

    def add_audit(self, user: str, action: str, target: str, before: Any = None, after: Any = None,
                  now: Optional[float] = None) -> AuditEntry:
        values = (_now(now), str(user), str(action), str(target),
                  None if before is None else json.dumps(before, default=str),
                  None if after is None else json.dumps(after, default=str))
        with self._write(bump=False) as db:
            aid = db.execute("INSERT INTO audit_log (ts, user, action, target, before, after) VALUES (?,?,?,?,?,?)",
                             values).lastrowid
            return _audit(_row(db, "SELECT id, ts, user, action, target, before, after FROM audit_log"
                                   " WHERE id = ?", aid))

    def list_audit(self, limit: int = 100, *, before_id: Optional[int] = None) -> list[AuditEntry]:
        sql = "SELECT id, ts, user, action, target, before, after FROM audit_log"
        args: list = []
        if before_id is not None:
            sql += " WHERE id < ?"
            args.append(int(before_id))
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
        return [_audit(r) for r in rows]

    # -- web UI: access requests and reports ----------------------------------------------------------

    def add_access_request(self, client: str, domain: str, message: str, *, device: str = "", profile: str = "",
                           reason: str = "", now: Optional[float] = None) -> AccessRequest:
        client = check_ip(client, "client address")
        domain = _clip(domain, 253)
        if not domain:
            raise ValueError("which site? the domain is empty")
        message = _clip(message, _TEXT_MAX)
        with self._write(bump=False) as db:
            row = _row(db, "SELECT id FROM access_requests WHERE client = ? AND domain = ? AND status = 'pending'",
                       client, domain)
            if row:
                rid = row[0]
                db.execute("UPDATE access_requests SET message = ?, ts = ?, device = ?, profile = ?, reason = ?"
                           " WHERE id = ?", (message, _now(now), _clip(device, 40), _clip(profile, 40),
                                             _clip(reason, 200), rid))
            else:
                rid = db.execute("INSERT INTO access_requests (ts, client, device, profile, domain, reason, message)"
                                 " VALUES (?,?,?,?,?,?,?)", (_now(now), client, _clip(device, 40),
                                                             _clip(profile, 40), domain, _clip(reason, 200),
                                                             message)).lastrowid
            return AccessRequest(*_row(db, _REQUEST_SQL + " WHERE id = ?", rid))

    def get_access_request(self, request_id: int) -> Optional[AccessRequest]:
        with self._lock:
            row = _row(self._db, _REQUEST_SQL + " WHERE id = ?", int(request_id))
        return AccessRequest(*row) if row else None

    def list_access_requests(self, status: Optional[str] = None, limit: int = 200) -> list[AccessRequest]:
        sql, args = _REQUEST_SQL, []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(check_choice(status, REQUEST_STATUSES, "status"))
        sql += " ORDER BY status != 'pending', ts DESC, id DESC LIMIT ?"
        with self._lock:
            return [AccessRequest(*r) for r in self._db.execute(sql, (*args, int(limit)))]

    def latest_access_request(self, client: str, domain: str) -> Optional[AccessRequest]:
        with self._lock:
            row = _row(self._db, _REQUEST_SQL + " WHERE client = ? AND domain = ? ORDER BY ts DESC, id DESC LIMIT 1",
                       str(client), str(domain))
        return AccessRequest(*row) if row else None

    def decide_access_request(self, request_id: int, status: str, decision: str, by: str,
                              until: Optional[float] = None, now: Optional[float] = None) -> AccessRequest:
        status = check_choice(status, ("approved", "declined"), "status")
        until = check_time(until, "until", optional=True)
        with self._write(bump=False) as db:
            if db.execute("UPDATE access_requests SET status = ?, decision = ?, decided_by = ?, decided_ts = ?,"
                          " until = ? WHERE id = ?", (status, str(decision), str(by), _now(now), until,
                                                      int(request_id))).rowcount == 0:
                raise ValueError(f"unknown access request {request_id!r}")
            return AccessRequest(*_row(db, _REQUEST_SQL + " WHERE id = ?", int(request_id)))

    def count_access_requests(self, client: str, since: float) -> int:
        with self._lock:
            return _row(self._db, "SELECT COUNT(*) FROM access_requests WHERE client = ? AND ts >= ?",
                        str(client), since)[0]

    def add_report(self, client: str, url: str, kind: str, contact: str = "", message: str = "",
                   now: Optional[float] = None, *, device: str = "", lang: str = "") -> HarmReport:
        client = check_ip(client, "client address")
        url = _clip(url, 2000)
        if not url:
            raise ValueError("which site? the address is empty")
        with self._write(bump=False) as db:
            rid = db.execute("INSERT INTO reports (ts, client, url, kind, contact, message, device, lang)"
                             " VALUES (?,?,?,?,?,?,?,?)",
                             (_now(now), client, url, _clip(kind, 40), _clip(contact, 200),
                              _clip(message, _TEXT_MAX), _clip(device, 40), _clip(lang, 16))).lastrowid
            return HarmReport(*_row(db, _REPORT_SQL + " WHERE id = ?", rid))

    def list_reports(self, limit: int = 1000, *, handled: Optional[bool] = None) -> list[HarmReport]:
        sql = _REPORT_SQL
        if handled is not None:
            sql += " WHERE handled_ts IS NOT NULL" if handled else " WHERE handled_ts IS NULL"
        with self._lock:
            return [HarmReport(*r) for r in self._db.execute(sql + " ORDER BY ts DESC, id DESC LIMIT ?",
                                                             (int(limit),))]

    def get_report(self, report_id: int) -> Optional[HarmReport]:
        with self._lock:
            row = _row(self._db, _REPORT_SQL + " WHERE id = ?", int(report_id))
        return HarmReport(*row) if row else None

    def reports_to_forward(self, limit: int = 50) -> list[HarmReport]:
        with self._lock:
            return [HarmReport(*r) for r in self._db.execute(
                _REPORT_SQL + " WHERE forwarded_ts IS NULL ORDER BY id LIMIT ?", (int(limit),))]

    def mark_reports_forwarded(self, report_ids: list[int], now: Optional[float] = None) -> int:
        if not report_ids:
            return 0
        with self._write(bump=False) as db:
            ts = _now(now)
            return sum(db.execute("UPDATE reports SET forwarded_ts = ? WHERE id = ? AND forwarded_ts IS NULL",
                                  (ts, int(i))).rowcount for i in report_ids)

    def count_new_reports(self) -> int:
        with self._lock:
            return _row(self._db, "SELECT COUNT(*) FROM reports WHERE handled_ts IS NULL")[0]

    def mark_report_handled(self, report_id: int, by: str, now: Optional[float] = None) -> HarmReport:
        with self._write(bump=False) as db:
            if db.execute("UPDATE reports SET handled_ts = ?, handled_by = ? WHERE id = ? AND handled_ts IS NULL",
                          (_now(now), _clip(by, 40), int(report_id))).rowcount == 0:
                row = _row(db, _REPORT_SQL + " WHERE id = ?", int(report_id))
                if row is None:
                    raise ValueError(f"unknown report {report_id!r}")
                return HarmReport(*row)                      # handled already: the first answer stays
            return HarmReport(*_row(db, _REPORT_SQL + " WHERE id = ?", int(report_id)))

    def count_reports(self, client: str, since: float) -> int:
        with self._lock:
            return _row(self._db, "SELECT COUNT(*) FROM reports WHERE client = ? AND ts >= ?", str(client), since)[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- helpers (called with the lock held) ------------------------------------------------------------

def _now(now: Optional[float]) -> float:
    return time.time() if now is None else float(now)


def _clip(text: Any, limit: int) -> str:
    """User text as kept: a string, without NULs, at most ``limit`` characters."""
    return ("" if text is None else str(text)).replace("\x00", "").strip()[:limit]


def _hours(since: float, until: float) -> range:
    return range(int(since // 3600), int(until // 3600) + 1)


def _admins(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]


def _audit(r: tuple) -> AuditEntry:
    return AuditEntry(r[0], r[1], r[2], r[3], r[4], None if r[5] is None else json.loads(r[5]),
                      None if r[6] is None else json.loads(r[6]))


def _bump(db: sqlite3.Connection) -> None:
    db.execute("UPDATE meta SET value = value + 1 WHERE key = 'policy_version'")


def _need(obj: Any, cls: type) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(obj).__name__}")


def _key(name: Any) -> str:
    """A name as looked up: the same normalisation as the model's names, without the checks."""
    return unicodedata.normalize("NFC", str(name)).strip()


def _is_default(name: str) -> bool:
    return name.lower() == DEFAULT_PROFILE_NAME


def _row(db: sqlite3.Connection, sql: str, *args: Any) -> Optional[tuple]:
    return db.execute(sql, args).fetchone()


def _profile_ref(db: sqlite3.Connection, name: str) -> tuple[int, str]:
    row = _row(db, "SELECT id, name FROM profiles WHERE name = ?", _key(name))
    if row is None:
        raise ValueError(f"unknown profile {_key(name)!r}")
    return row


def _check_identity(db: sqlite3.Connection, device: Device, own_id: Optional[int]) -> None:
    row = _row(db, "SELECT name FROM devices WHERE kind = ? AND value = ? AND id IS NOT ?",
               device.kind, device.value, own_id)
    if row:
        raise ValueError(f"{_KIND_LABEL[device.kind]} {device.value} already belongs to device {row[0]!r}")


def _dumps(items: Sequence[str]) -> str:
    return json.dumps(list(items), separators=(",", ":"))


def _profile_values(p: Profile) -> tuple:
    return (p.name, p.preset, _dumps(p.categories), _dumps(p.services), int(p.safe_search), p.youtube, p.block_mode,
            _dumps(p.block), _dumps(p.allow), int(p.bypass_prevention), time.time())


def _profile(r: tuple) -> Profile:
    return Profile(id=r[0], name=r[1], preset=r[2], categories=json.loads(r[3]), services=json.loads(r[4]),
                   safe_search=bool(r[5]), youtube=r[6], block_mode=r[7], block=json.loads(r[8]),
                   allow=json.loads(r[9]), bypass_prevention=bool(r[10]), updated=r[11])


def _one_profile(db: sqlite3.Connection, pid: int) -> Profile:
    return _profile(_row(db, _PROFILE_SQL + " WHERE id = ?", pid))


def _device(r: tuple) -> Device:
    return Device(id=r[0], name=r[1], kind=r[2], value=r[3], profile=r[4], hostname=r[5], first_seen=r[6],
                  last_seen=r[7], paused_until=r[8])


def _one_device(db: sqlite3.Connection, did: int) -> Device:
    return _device(_row(db, _DEVICE_SQL + " WHERE d.id = ?", did))


def _schedule_values(s: Schedule) -> tuple:
    return (s.name, _dumps(s.days), s.start, s.end, s.action, _dumps(s.categories), _dumps(s.services),
            int(s.enabled))


def _schedule(r: tuple) -> Schedule:
    return Schedule(id=r[0], profile=r[1], name=r[2], days=json.loads(r[3]), start=r[4], end=r[5], action=r[6],
                    categories=json.loads(r[7]), services=json.loads(r[8]), enabled=bool(r[9]))


def _one_schedule(db: sqlite3.Connection, sid: int) -> Schedule:
    return _schedule(_row(db, _SCHEDULE_SQL + " WHERE s.id = ?", sid))


def _temp_allow(r: tuple) -> TempAllow:
    return TempAllow(id=r[0], device=r[1], domain=r[2], until=r[3])


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(data_dir: str) -> SQLiteStore:
    """The appliance's store in ``data_dir``, migrated to the current schema."""
    store = SQLiteStore(os.path.join(data_dir, "hearth.db"))
    store.migrate()
    return store
