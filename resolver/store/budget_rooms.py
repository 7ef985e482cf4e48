"""Time budgets in SQL: each profile's budgets and their daily use (a mixin of
:class:`resolver.store.sqlcommon.SQLStoreBase`, the same statements on SQLite and PostgreSQL).

Usage rows are written by the engine's budget meter in batches (once a second at most, only rows that
changed), never per query; a parent's extra minutes are kept apart from the counted ones.

Several nodes may share one store (PostgreSQL). A node does not write its own totals (they would overwrite
each other's): :meth:`BudgetRooms.count_budget_minutes` takes the minutes it saw active and adds them to the
stored count under the store's write lock, with the counting rule's sessions
(:func:`resolver.policy.budget_count.merge_activity`), and returns the merged rows to the node.
"""
from __future__ import annotations

import datetime as _dt
from typing import Iterable, Optional, Sequence

from resolver.policy.budget_count import merge_activity
from resolver.policy.budgets import Budget, BudgetUsage, budget_day
from resolver.store.sqlcommon import Handle, SQLStoreBase, key, row

_BUDGET_SQL = ("SELECT b.id, p.name, b.target, b.minutes, b.weekend, b.reset, b.days FROM budgets b"
               " JOIN profiles p ON p.id = b.profile_id")
_USAGE_SQL = ("SELECT p.name, u.target, u.day, u.used, u.extra, u.last_minute, u.pending, u.updated"
              " FROM budget_usage u JOIN profiles p ON p.id = u.profile_id")


def _pid(db: Handle, profile: str) -> tuple[int, str]:
    found = row(db, "SELECT id, name FROM profiles WHERE name = ?", key(profile))
    if found is None:
        raise ValueError(f"unknown profile {key(profile)!r}")
    return found[0], found[1]


def _budget(r: tuple) -> Budget:
    return Budget(id=r[0], profile=r[1], target=r[2], minutes=r[3], weekend=r[4], reset=r[5], days=r[6] or "")


def _usage(r: tuple) -> BudgetUsage:
    return BudgetUsage(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), float(r[7]))


class BudgetRooms(SQLStoreBase):
    """Time budgets and their daily use (see :mod:`resolver.policy.budgets`)."""

    def set_budget(self, budget: Budget) -> Budget:
        """Add the profile's budget for ``budget.target``, or replace the one it has."""
        if not isinstance(budget, Budget):
            raise TypeError(f"expected a Budget, not {type(budget).__name__}")
        with self._write() as db:
            pid, _name = _pid(db, budget.profile)
            db.execute("INSERT INTO budgets (profile_id, target, minutes, weekend, reset, days) VALUES (?,?,?,?,?,?)"
                       " ON CONFLICT (profile_id, target) DO UPDATE SET minutes = excluded.minutes,"
                       " weekend = excluded.weekend, reset = excluded.reset, days = excluded.days",
                       (pid, budget.target, budget.minutes, budget.weekend, budget.reset, budget.days_text))
            return _budget(row(db, _BUDGET_SQL + " WHERE b.profile_id = ? AND b.target = ?", pid, budget.target))

    def list_budgets(self, profile: Optional[str] = None) -> list[Budget]:
        with self._read() as db:
            if profile is None:
                rows = db.execute(_BUDGET_SQL + " ORDER BY p.name, b.target").fetchall()
            else:
                pid, _ = _pid(db, profile)
                rows = db.execute(_BUDGET_SQL + " WHERE b.profile_id = ? ORDER BY b.target", (pid,)).fetchall()
        return [_budget(r) for r in rows]

    def remove_budget(self, profile: str, target: str) -> None:
        with self._write() as db:
            pid, name = _pid(db, profile)
            if db.execute("DELETE FROM budgets WHERE profile_id = ? AND target = ?", (pid, target)).rowcount == 0:
                raise ValueError(f"profile {name!r} has no budget for {target!r}")

    def budget_usage(self, since_day: str = "", profile: Optional[str] = None) -> list[BudgetUsage]:
        """Usage rows of budget days on or after ``since_day`` (ISO date; "" = all), of one profile or all."""
        with self._read() as db:
            if profile is None:
                rows = db.execute(_USAGE_SQL + " WHERE u.day >= ? ORDER BY p.name, u.target, u.day",
                                  (since_day,)).fetchall()
            else:
                pid, _ = _pid(db, profile)
                rows = db.execute(_USAGE_SQL + " WHERE u.profile_id = ? AND u.day >= ? ORDER BY u.target, u.day",
                                  (pid, since_day)).fetchall()
        return [_usage(r) for r in rows]

    def save_budget_usage(self, rows: Iterable[BudgetUsage], *, bump: bool = False) -> int:
        """Write counted minutes (not the parent's extra minutes); rows of removed profiles are skipped.
        ``bump`` when a budget was used up, so the engine re-reads its policy."""
        rows = list(rows)
        if not rows:
            return 0
        n = 0
        with self._write(bump=bump) as db:
            for u in rows:
                found = row(db, "SELECT id FROM profiles WHERE name = ?", u.profile)
                if found is None:
                    continue
                db.execute("INSERT INTO budget_usage (profile_id, target, day, used, last_minute, pending, updated)"
                           " VALUES (?,?,?,?,?,?,?) ON CONFLICT (profile_id, target, day) DO UPDATE SET"
                           " used = excluded.used, last_minute = excluded.last_minute, pending = excluded.pending,"
                           " updated = CASE WHEN budget_usage.updated > excluded.updated THEN budget_usage.updated"
                           " ELSE excluded.updated END",
                           (found[0], u.target, u.day, int(u.used), int(u.last_minute), int(u.pending),
                            float(u.updated)))
                n += 1
        return n

    def count_budget_minutes(self, activity: Sequence[tuple[str, str, int]], tz: _dt.tzinfo) -> list[BudgetUsage]:
        """Add the active minutes one node saw, ``(profile, target, UNIX minute)``, to the stored usage of
        every node, under the write lock: a minute counts once however many nodes saw it, and a session goes on
        across nodes. Returns the changed rows (the totals of all nodes); policy_version goes up when one of
        them used its budget up. Minutes of a removed budget or profile are dropped."""
        by_budget: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
        for profile, target, minute in activity:
            by_budget.setdefault((key(profile), target), []).append((profile, target, int(minute)))
        out: list[BudgetUsage] = []
        if not by_budget:
            return out
        used_up = False
        with self._write(bump=False) as db:
            for (profile, target), seen in by_budget.items():
                found = row(db, _BUDGET_SQL + " WHERE p.name = ? AND b.target = ?", profile, target)
                if found is None:
                    continue
                budget = _budget(found)
                since = budget_day(min(m for _p, _t, m in seen) * 60.0 - 86400, tz, budget.reset)[0].isoformat()
                stored = [_usage(r) for r in db.execute(
                    _USAGE_SQL + " WHERE p.name = ? AND u.target = ?"
                    " AND u.day >= ?", (budget.profile, target, since)).fetchall()]
                extra = {u.day: u.extra for u in stored}
                for u in merge_activity(stored, seen, budget, tz):
                    self._put_usage(db, u)
                    out.append(u._replace(extra=extra.get(u.day, 0)))
                    used_up = used_up or u.used >= budget.limit(_dt.date.fromisoformat(u.day)) + extra.get(u.day, 0)
            if used_up:
                self._bump(db)
        return out

    @staticmethod
    def _put_usage(db: Handle, u: BudgetUsage) -> None:
        db.execute("INSERT INTO budget_usage (profile_id, target, day, used, last_minute, pending, updated)"
                   " SELECT id, ?, ?, ?, ?, ?, ? FROM profiles WHERE name = ?"
                   " ON CONFLICT (profile_id, target, day) DO UPDATE SET"
                   " used = excluded.used, last_minute = excluded.last_minute, pending = excluded.pending,"
                   " updated = CASE WHEN budget_usage.updated > excluded.updated THEN budget_usage.updated"
                   " ELSE excluded.updated END",
                   (u.target, u.day, int(u.used), int(u.last_minute), int(u.pending), float(u.updated), u.profile))

    def add_budget_extra(self, profile: str, target: str, day: str, minutes: int) -> BudgetUsage:
        """A parent's "more minutes": add ``minutes`` to the budget of ``day`` (ISO); the engine re-reads."""
        if not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            raise ValueError(f"minutes: between 1 and 1440, not {minutes!r}")
        with self._write() as db:
            pid, _ = _pid(db, profile)
            if not row(db, "SELECT 1 FROM budgets WHERE profile_id = ? AND target = ?", pid, target):
                raise ValueError(f"profile {profile!r} has no budget for {target!r}")
            db.execute("INSERT INTO budget_usage (profile_id, target, day, extra) VALUES (?,?,?,?)"
                       " ON CONFLICT (profile_id, target, day) DO UPDATE SET"
                       " extra = budget_usage.extra + excluded.extra", (pid, target, day, minutes))
            return _usage(row(db, _USAGE_SQL + " WHERE u.profile_id = ? AND u.target = ? AND u.day = ?",
                              pid, target, day))

    def activity_rows(self, clients: Sequence[str], since: float, until: float) -> list[tuple]:
        """(UNIX time, client, name, reason) of the query-log entries of ``clients`` in [since, until), in
        time order: what the weekly report counts minutes from (with the same rule as the budgets)."""
        clients = list(clients)
        if not clients:
            return []
        with self._read() as db:
            codes = [r[0] for r in db.execute(
                f"SELECT id FROM ql_strings WHERE text IN ({','.join('?' * len(clients))})", clients).fetchall()]
            if not codes:
                return []
            found = db.execute(
                "SELECT q.ts, c.text, q.qname, r.text FROM query_log q JOIN ql_strings c ON c.id = q.client"
                " LEFT JOIN ql_strings r ON r.id = q.reason"
                f" WHERE q.client IN ({','.join(str(int(c)) for c in codes)}) AND q.ts >= ? AND q.ts < ?"
                " ORDER BY q.ts", (int(since * 1000), int(until * 1000))).fetchall()
        return [(ts / 1000.0, client, name, reason) for ts, client, name, reason in found]

    def budget_high_water(self) -> Optional[float]:
        """The newest (effective) time a usage row was updated: the clock's high-water mark."""
        with self._read() as db:
            found = row(db, "SELECT max(updated) FROM budget_usage")
        return float(found[0]) if found and found[0] else None
