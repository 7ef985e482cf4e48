"""The SQLite store's schema: one migration per version, appended, never edited (``PRAGMA user_version`` counts
them). The PostgreSQL store keeps the same version numbers in ``schema_postgres``."""
from __future__ import annotations

import json

from resolver.policy.profiles import DEFAULT_CATEGORIES
from resolver.store.sqlcommon import NAMES_KEPT_ALL, NAMES_KEPT_CLIENT, blocked_sql as _blocked_sql

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
    # 7 (campus): query-log rows and audit entries name the node that wrote them, for a store several nodes
    # share (the query log's node is a ql_strings code; NULL and '' for rows from before, or without a name).
    """
    ALTER TABLE query_log ADD COLUMN node INTEGER;
    ALTER TABLE audit_log ADD COLUMN node TEXT NOT NULL DEFAULT '';
    """,
    # 8 (time budgets): each profile's daily budgets and their use per budget day; ``extra`` is a parent's
    # "more minutes", kept apart from the counted ``used`` (see resolver/store/budget_rooms.py)
    """
    CREATE TABLE budgets (
        id INTEGER PRIMARY KEY,
        profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        minutes INTEGER NOT NULL,
        weekend INTEGER NOT NULL,
        reset TEXT NOT NULL DEFAULT '00:00',
        UNIQUE (profile_id, target)
    );
    CREATE TABLE budget_usage (
        profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        extra INTEGER NOT NULL DEFAULT 0,
        last_minute INTEGER NOT NULL DEFAULT 0,
        pending INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (profile_id, target, day)
    );
    CREATE INDEX budget_usage_day ON budget_usage (day);
    """,
    # 9 (provider): a report keeps the UI language it was filed in (forwarded to the list provider with it);
    # the outbox is the reports whose forwarded_ts is still NULL.
    """
    ALTER TABLE reports ADD COLUMN lang TEXT NOT NULL DEFAULT '';
    CREATE INDEX reports_outbox ON reports (id) WHERE forwarded_ts IS NULL;
    """,
    # 10 (per-weekday budgets): a budget's weekdays with their own minutes, "fri=90 sat=150" ('' = none: school
    # days and weekend only; see resolver.policy.budgets.parse_day_minutes)
    """
    ALTER TABLE budgets ADD COLUMN days TEXT NOT NULL DEFAULT '';
    """,
    # 11 (campus overview): the query log of one node (?node=gw2) walks an index from the newest row, instead of
    # the whole log when that node has no recent rows
    """
    CREATE INDEX query_log_node ON query_log (node, id);
    """,
    # 12 (campus overview): ql_hours and ql_reasons keep client 0 = all clients beside each client's rows (as
    # ql_names does), so the dashboard and /api/v1/stats read 24 rows for a day instead of one per device-hour;
    # made here from the hours already counted (minutes: any client's, bit by bit: SQL has no OR aggregate)
    f"""
    INSERT INTO ql_hours (hour, client, total, blocked, minutes)
        SELECT hour, 0, SUM(total), SUM(blocked), {" | ".join(f"MAX(minutes & {1 << k})" for k in range(60))}
        FROM ql_hours WHERE client != 0 GROUP BY hour;
    INSERT INTO ql_reasons (hour, client, reason, n)
        SELECT hour, 0, reason, SUM(n) FROM ql_reasons WHERE client != 0 GROUP BY hour, reason;
    """,
    # 13 (query-log writer): the node index holds only rows that name a node (a campus); a lone appliance's
    # rows have none, and indexing their NULLs cost every written row a B-tree insert (about 1 µs of the
    # writer's 15 on a slow core) and the log some 20 bytes a row. ``node = ?`` implies NOT NULL, so the
    # node filter still walks this index.
    """
    DROP INDEX query_log_node;
    CREATE INDEX query_log_node ON query_log (node, id) WHERE node IS NOT NULL;
    """,
]
