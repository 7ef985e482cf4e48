"""The web UI's objects in SQL: settings, users, API tokens, login attempts, the audit log, access requests and
harmful-site reports (a mixin of :class:`resolver.store.sqlcommon.SQLStoreBase`, the same statements on SQLite
and PostgreSQL)."""
from __future__ import annotations

import json
from typing import Any, Optional

from resolver.policy.profiles import check_choice, check_ip, check_name, check_time
from resolver.store.provider_rooms import record_forwarder
from resolver.store.protocol import REQUEST_STATUSES, ROLES, AccessRequest, ApiToken, AuditEntry, HarmReport, User
from resolver.store.sqlcommon import (AUDIT_SQL, REPORT_SQL, REQUEST_SQL, TEXT_MAX, TOKEN_SQL, USER_SQL, Handle,
                                      SQLStoreBase, audit_entry, clip, key, now_or, row)

_UPSERT_SETTING = ("INSERT INTO settings (key, value) VALUES (?, ?)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def _admins(db: Handle) -> int:
    return db.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0]


class WebRooms(SQLStoreBase):
    # -- settings --------------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._read() as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", key)
        return json.loads(found[0]) if found else default

    def set_setting(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        with self._write(bump=False) as db:
            db.execute(_UPSERT_SETTING, (key, text))

    # -- users, tokens, login attempts ------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, role: str = "admin", language: str = "",
                 now: Optional[float] = None) -> User:
        name = check_name(name, "user")
        role = check_choice(role, ROLES, "role")
        if not password_hash:
            raise ValueError("a user needs a password")
        with self._write(bump=False) as db:
            if row(db, "SELECT id FROM users WHERE name = ?", name):
                raise ValueError(f"user {name!r} already exists")
            uid = db.insert("INSERT INTO users (name, role, password_hash, language, created) VALUES (?,?,?,?,?)",
                            (name, role, password_hash, str(language or ""), now_or(now)))
            return User(*row(db, USER_SQL + " WHERE id = ?", uid))

    def get_user(self, name: str) -> Optional[User]:
        with self._read() as db:
            found = row(db, USER_SQL + " WHERE name = ?", key(name))
        return User(*found) if found else None

    def get_user_by_id(self, user_id: int) -> Optional[User]:
        with self._read() as db:
            found = row(db, USER_SQL + " WHERE id = ?", int(user_id))
        return User(*found) if found else None

    def list_users(self) -> list[User]:
        with self._read() as db:
            return [User(*r) for r in db.execute(USER_SQL + " ORDER BY name, id").fetchall()]

    def update_user(self, name: str, *, password_hash: Optional[str] = None, role: Optional[str] = None,
                    language: Optional[str] = None, last_login: Optional[float] = None) -> User:
        if role is not None:
            role = check_choice(role, ROLES, "role")
        with self._write(bump=False) as db:
            found = row(db, "SELECT id, role FROM users WHERE name = ?", key(name))
            if found is None:
                raise ValueError(f"unknown user {key(name)!r}")
            uid, old_role = found
            if role is not None and role != "admin" and old_role == "admin" and _admins(db) <= 1:
                raise ValueError("the last admin must stay an admin")
            for column, value in (("password_hash", password_hash), ("role", role), ("language", language),
                                  ("last_login", last_login)):
                if value is not None:
                    db.execute(f"UPDATE users SET {column} = ? WHERE id = ?", (value, uid))
            return User(*row(db, USER_SQL + " WHERE id = ?", uid))

    def remove_user(self, name: str) -> None:
        with self._write(bump=False) as db:
            found = row(db, "SELECT id, role FROM users WHERE name = ?", key(name))
            if found is None:
                raise ValueError(f"unknown user {key(name)!r}")
            if found[1] == "admin" and _admins(db) <= 1:
                raise ValueError("the last admin can't be removed")
            db.execute("DELETE FROM users WHERE id = ?", (found[0],))

    def count_users(self) -> int:
        with self._read() as db:
            return db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    def add_api_token(self, user: str, token_hash: str, label: str = "", now: Optional[float] = None) -> ApiToken:
        with self._write(bump=False) as db:
            found = row(db, "SELECT id FROM users WHERE name = ?", key(user))
            if found is None:
                raise ValueError(f"unknown user {key(user)!r}")
            tid = db.insert("INSERT INTO api_tokens (user_id, token_hash, label, created) VALUES (?,?,?,?)",
                            (found[0], token_hash, str(label)[:100], now_or(now)))
            return ApiToken(*row(db, TOKEN_SQL + " WHERE t.id = ?", tid))

    def user_for_token(self, token_hash: str, now: Optional[float] = None) -> Optional[User]:
        with self._write(bump=False) as db:
            found = row(db, "SELECT id, user_id FROM api_tokens WHERE token_hash = ?", token_hash)
            if found is None:
                return None
            db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now_or(now), found[0]))
            return User(*row(db, USER_SQL + " WHERE id = ?", found[1]))

    def list_api_tokens(self, user: Optional[str] = None) -> list[ApiToken]:
        with self._read() as db:
            if user is None:
                rows = db.execute(TOKEN_SQL + " ORDER BY u.name, t.id").fetchall()
            else:
                rows = db.execute(TOKEN_SQL + " WHERE u.name = ? ORDER BY t.id", (key(user),)).fetchall()
        return [ApiToken(*r) for r in rows]

    def remove_api_token(self, token_id: int) -> None:
        with self._write(bump=False) as db:
            if db.execute("DELETE FROM api_tokens WHERE id = ?", (int(token_id),)).rowcount == 0:
                raise ValueError(f"unknown API token {token_id!r}")

    def add_login_attempt(self, key: str, ok: bool, now: float) -> None:
        with self._write(bump=False) as db:
            db.execute("INSERT INTO login_attempts (key, ts, ok) VALUES (?,?,?)", (str(key), now, int(bool(ok))))

    def login_failures(self, key: str, since: float) -> tuple[int, float]:
        with self._read() as db:
            last_ok = row(db, "SELECT max(ts) FROM login_attempts WHERE key = ? AND ok = 1", str(key))[0]
            found = row(db, "SELECT COUNT(*), max(ts) FROM login_attempts WHERE key = ? AND ok = 0 AND ts >= ?",
                        str(key), max(since, last_ok or 0.0))
        return found[0], found[1] or 0.0

    def purge_login_attempts(self, older_than: float) -> int:
        with self._write(bump=False) as db:
            return db.execute("DELETE FROM login_attempts WHERE ts < ?", (older_than,)).rowcount

    # kept in the settings table (key session-gen:ID), so no schema change was needed
    def session_generation(self, user_id: int) -> int:
        with self._read() as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", f"session-gen:{int(user_id)}")
        return int(json.loads(found[0])) if found else 0

    def bump_session_generation(self, user_id: int) -> int:
        name = f"session-gen:{int(user_id)}"
        with self._write(bump=False) as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", name)
            gen = (int(json.loads(found[0])) if found else 0) + 1
            db.execute(_UPSERT_SETTING, (name, json.dumps(gen)))
        return gen

    # one row a signed-out session (key session-ended:SID, value: until when), also in the settings table
    def end_web_session(self, sid: str, until: float, now: Optional[float] = None) -> None:
        with self._write(bump=False) as db:
            db.execute(_UPSERT_SETTING, (f"session-ended:{sid}", json.dumps(float(until))))
            for key, value in db.execute("SELECT key, value FROM settings WHERE key LIKE 'session-ended:%'"
                                         ).fetchall():
                if float(json.loads(value)) < now_or(now):
                    db.execute("DELETE FROM settings WHERE key = ?", (key,))

    def web_session_ended(self, sid: str) -> bool:
        with self._read() as db:
            return row(db, "SELECT 1 FROM settings WHERE key = ?", f"session-ended:{sid}") is not None

    # -- audit log -------------------------------------------------------------------------------------

    def add_audit(self, user: str, action: str, target: str, before: Any = None, after: Any = None,
                  now: Optional[float] = None) -> AuditEntry:
        values = (now_or(now), str(user), str(action), str(target),
                  None if before is None else json.dumps(before, default=str),
                  None if after is None else json.dumps(after, default=str))
        with self._write(bump=False) as db:
            aid = db.insert('INSERT INTO audit_log (ts, "user", action, target, before, after, node)'
                            ' VALUES (?,?,?,?,?,?,?)', (*values, self.node))
            return audit_entry(row(db, AUDIT_SQL + " WHERE id = ?", aid))

    def list_audit(self, limit: int = 100, *, before_id: Optional[int] = None) -> list[AuditEntry]:
        sql, args = AUDIT_SQL, []
        if before_id is not None:
            sql += " WHERE id < ?"
            args.append(int(before_id))
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, int(limit))).fetchall()
        return [audit_entry(r) for r in rows]

    # -- access requests and reports -------------------------------------------------------------------

    def add_access_request(self, client: str, domain: str, message: str, *, device: str = "", profile: str = "",
                           reason: str = "", now: Optional[float] = None) -> AccessRequest:
        client = check_ip(client, "client address")
        domain = clip(domain, 253)
        if not domain:
            raise ValueError("which site? the domain is empty")
        message = clip(message, TEXT_MAX)
        with self._write(bump=False) as db:
            found = row(db, "SELECT id FROM access_requests WHERE client = ? AND domain = ? AND status = 'pending'",
                        client, domain)
            if found:
                rid = found[0]
                db.execute("UPDATE access_requests SET message = ?, ts = ?, device = ?, profile = ?, reason = ?"
                           " WHERE id = ?", (message, now_or(now), clip(device, 40), clip(profile, 40),
                                             clip(reason, 200), rid))
            else:
                rid = db.insert("INSERT INTO access_requests (ts, client, device, profile, domain, reason, message)"
                                " VALUES (?,?,?,?,?,?,?)", (now_or(now), client, clip(device, 40),
                                                            clip(profile, 40), domain, clip(reason, 200), message))
            return AccessRequest(*row(db, REQUEST_SQL + " WHERE id = ?", rid))

    def get_access_request(self, request_id: int) -> Optional[AccessRequest]:
        with self._read() as db:
            found = row(db, REQUEST_SQL + " WHERE id = ?", int(request_id))
        return AccessRequest(*found) if found else None

    def list_access_requests(self, status: Optional[str] = None, limit: int = 200) -> list[AccessRequest]:
        sql, args = REQUEST_SQL, []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(check_choice(status, REQUEST_STATUSES, "status"))
        sql += " ORDER BY status != 'pending', ts DESC, id DESC LIMIT ?"
        with self._read() as db:
            return [AccessRequest(*r) for r in db.execute(sql, (*args, int(limit))).fetchall()]

    def latest_access_request(self, client: str, domain: str) -> Optional[AccessRequest]:
        with self._read() as db:
            found = row(db, REQUEST_SQL + " WHERE client = ? AND domain = ? ORDER BY ts DESC, id DESC LIMIT 1",
                        str(client), str(domain))
        return AccessRequest(*found) if found else None

    def decide_access_request(self, request_id: int, status: str, decision: str, by: str,
                              until: Optional[float] = None, now: Optional[float] = None) -> AccessRequest:
        status = check_choice(status, ("approved", "declined"), "status")
        until = check_time(until, "until", optional=True)
        with self._write(bump=False) as db:
            if db.execute("UPDATE access_requests SET status = ?, decision = ?, decided_by = ?, decided_ts = ?,"
                          " until = ? WHERE id = ?", (status, str(decision), str(by), now_or(now), until,
                                                      int(request_id))).rowcount == 0:
                raise ValueError(f"unknown access request {request_id!r}")
            return AccessRequest(*row(db, REQUEST_SQL + " WHERE id = ?", int(request_id)))

    def count_access_requests(self, client: str, since: float) -> int:
        with self._read() as db:
            return row(db, "SELECT COUNT(*) FROM access_requests WHERE client = ? AND ts >= ?", str(client), since)[0]

    def add_report(self, client: str, url: str, kind: str, contact: str = "", message: str = "",
                   now: Optional[float] = None, *, device: str = "", lang: str = "") -> HarmReport:
        client = check_ip(client, "client address")
        url = clip(url, 2000)
        if not url:
            raise ValueError("which site? the address is empty")
        with self._write(bump=False) as db:
            rid = db.insert("INSERT INTO reports (ts, client, url, kind, contact, message, device, lang)"
                            " VALUES (?,?,?,?,?,?,?,?)",
                            (now_or(now), client, url, clip(kind, 40), clip(contact, 200), clip(message, TEXT_MAX),
                             clip(device, 40), clip(lang, 16)))
            return HarmReport(*row(db, REPORT_SQL + " WHERE id = ?", rid))

    def list_reports(self, limit: int = 1000, *, handled: Optional[bool] = None) -> list[HarmReport]:
        sql = REPORT_SQL
        if handled is not None:
            sql += " WHERE handled_ts IS NOT NULL" if handled else " WHERE handled_ts IS NULL"
        with self._read() as db:
            return [HarmReport(*r) for r in db.execute(sql + " ORDER BY ts DESC, id DESC LIMIT ?",
                                                       (int(limit),)).fetchall()]

    def get_report(self, report_id: int) -> Optional[HarmReport]:
        with self._read() as db:
            found = row(db, REPORT_SQL + " WHERE id = ?", int(report_id))
        return HarmReport(*found) if found else None

    def reports_to_forward(self, limit: int = 50) -> list[HarmReport]:
        with self._read() as db:
            return [HarmReport(*r) for r in db.execute(
                REPORT_SQL + " WHERE forwarded_ts IS NULL ORDER BY id LIMIT ?", (int(limit),)).fetchall()]

    def mark_reports_forwarded(self, report_ids: list[int], now: Optional[float] = None, *, by: str = "") -> int:
        if not report_ids:
            return 0
        ts = now_or(now)
        with self._write(bump=False) as db:
            marked = [int(i) for i in report_ids if db.execute(
                "UPDATE reports SET forwarded_ts = ? WHERE id = ? AND forwarded_ts IS NULL", (ts, int(i))).rowcount]
            if by and marked:
                record_forwarder(db, marked, by)
            return len(marked)

    def count_new_reports(self) -> int:
        with self._read() as db:
            return row(db, "SELECT COUNT(*) FROM reports WHERE handled_ts IS NULL")[0]

    def mark_report_handled(self, report_id: int, by: str, now: Optional[float] = None) -> HarmReport:
        with self._write(bump=False) as db:
            db.execute("UPDATE reports SET handled_ts = ?, handled_by = ? WHERE id = ? AND handled_ts IS NULL",
                       (now_or(now), clip(by, 40), int(report_id)))
            found = row(db, REPORT_SQL + " WHERE id = ?", int(report_id))   # handled already: the first answer stays
            if found is None:
                raise ValueError(f"unknown report {report_id!r}")
            return HarmReport(*found)

    def count_reports(self, client: str, since: float) -> int:
        with self._read() as db:
            return row(db, "SELECT COUNT(*) FROM reports WHERE client = ? AND ts >= ?", str(client), since)[0]
