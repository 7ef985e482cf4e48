"""The SQLite store's time budgets: one self-contained block (migration + methods), mixed into SQLiteStore.

``BUDGETS_MIGRATION`` is appended to :data:`resolver.store.sqlite.MIGRATIONS`; :class:`BudgetsMixin` uses only
the store's ``_lock``, ``_db`` and ``_write`` (one write transaction, ``bump`` = policy_version goes up).
Usage rows are written by the engine's budget meter in batches (once a second at most, only rows that
changed), never per query.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from resolver.policy.budgets import Budget, BudgetUsage

BUDGETS_MIGRATION = """
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
    CREATE INDEX budget_usage_day ON budget_usage (day)
"""

_BUDGET_SQL = ("SELECT b.id, p.name, b.target, b.minutes, b.weekend, b.reset FROM budgets b"
               " JOIN profiles p ON p.id = b.profile_id")
_USAGE_SQL = ("SELECT p.name, u.target, u.day, u.used, u.extra, u.last_minute, u.pending, u.updated"
              " FROM budget_usage u JOIN profiles p ON p.id = u.profile_id")


def _pid(db, profile: str) -> tuple[int, str]:
    row = db.execute("SELECT id, name FROM profiles WHERE name = ?", (str(profile).strip(),)).fetchone()
    if row is None:
        raise ValueError(f"unknown profile {str(profile).strip()!r}")
    return row[0], row[1]


def _budget(r: tuple) -> Budget:
    return Budget(id=r[0], profile=r[1], target=r[2], minutes=r[3], weekend=r[4], reset=r[5])


def _usage(r: tuple) -> BudgetUsage:
    return BudgetUsage(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7])


class BudgetsMixin:
    """Time budgets and their daily use (see :mod:`resolver.policy.budgets`)."""

    def set_budget(self, budget: Budget) -> Budget:
        """Add the profile's budget for ``budget.target``, or replace the one it has."""
        if not isinstance(budget, Budget):
            raise TypeError(f"expected a Budget, not {type(budget).__name__}")
        with self._write() as db:
            pid, _name = _pid(db, budget.profile)
            db.execute("INSERT INTO budgets (profile_id, target, minutes, weekend, reset) VALUES (?,?,?,?,?)"
                       " ON CONFLICT (profile_id, target) DO UPDATE SET minutes = excluded.minutes,"
                       " weekend = excluded.weekend, reset = excluded.reset",
                       (pid, budget.target, budget.minutes, budget.weekend, budget.reset))
            return _budget(db.execute(_BUDGET_SQL + " WHERE b.profile_id = ? AND b.target = ?",
                                      (pid, budget.target)).fetchone())

    def list_budgets(self, profile: Optional[str] = None) -> list[Budget]:
        with self._lock:
            if profile is None:
                rows = self._db.execute(_BUDGET_SQL + " ORDER BY p.name, b.target").fetchall()
            else:
                pid, _ = _pid(self._db, profile)
                rows = self._db.execute(_BUDGET_SQL + " WHERE b.profile_id = ? ORDER BY b.target", (pid,)).fetchall()
        return [_budget(r) for r in rows]

    def remove_budget(self, profile: str, target: str) -> None:
        with self._write() as db:
            pid, name = _pid(db, profile)
            if db.execute("DELETE FROM budgets WHERE profile_id = ? AND target = ?", (pid, target)).rowcount == 0:
                raise ValueError(f"profile {name!r} has no budget for {target!r}")

    def budget_usage(self, since_day: str = "", profile: Optional[str] = None) -> list[BudgetUsage]:
        """Usage rows of budget days on or after ``since_day`` (ISO date; "" = all), of one profile or all."""
        with self._lock:
            if profile is None:
                rows = self._db.execute(_USAGE_SQL + " WHERE u.day >= ? ORDER BY p.name, u.target, u.day",
                                        (since_day,)).fetchall()
            else:
                pid, _ = _pid(self._db, profile)
                rows = self._db.execute(_USAGE_SQL + " WHERE u.profile_id = ? AND u.day >= ? ORDER BY u.target,"
                                        " u.day", (pid, since_day)).fetchall()
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
                r = db.execute("SELECT id FROM profiles WHERE name = ?", (u.profile,)).fetchone()
                if r is None:
                    continue
                db.execute("INSERT INTO budget_usage (profile_id, target, day, used, last_minute, pending, updated)"
                           " VALUES (?,?,?,?,?,?,?) ON CONFLICT (profile_id, target, day) DO UPDATE SET"
                           " used = excluded.used, last_minute = excluded.last_minute, pending = excluded.pending,"
                           " updated = max(updated, excluded.updated)",
                           (r[0], u.target, u.day, int(u.used), int(u.last_minute), int(u.pending), float(u.updated)))
                n += 1
        return n

    def add_budget_extra(self, profile: str, target: str, day: str, minutes: int) -> BudgetUsage:
        """A parent's "more minutes": add ``minutes`` to the budget of ``day`` (ISO); the engine re-reads."""
        if not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            raise ValueError(f"minutes: between 1 and 1440, not {minutes!r}")
        with self._write() as db:
            pid, _ = _pid(db, profile)
            if not db.execute("SELECT 1 FROM budgets WHERE profile_id = ? AND target = ?", (pid, target)).fetchone():
                raise ValueError(f"profile {profile!r} has no budget for {target!r}")
            db.execute("INSERT INTO budget_usage (profile_id, target, day, extra) VALUES (?,?,?,?)"
                       " ON CONFLICT (profile_id, target, day) DO UPDATE SET extra = extra + excluded.extra",
                       (pid, target, day, minutes))
            return _usage(db.execute(_USAGE_SQL + " WHERE u.profile_id = ? AND u.target = ? AND u.day = ?",
                                     (pid, target, day)).fetchone())

    def activity_rows(self, clients: Sequence[str], since: float, until: float) -> list[tuple]:
        """(UNIX time, client, name, reason) of the query-log entries of ``clients`` in [since, until), in
        time order: what the weekly report counts minutes from (with the same rule as the budgets)."""
        clients = list(clients)
        if not clients:
            return []
        with self._lock:
            codes = [r[0] for r in self._db.execute(
                f"SELECT id FROM ql_strings WHERE text IN ({','.join('?' * len(clients))})", clients)]
            if not codes:
                return []
            return self._db.execute(
                "SELECT q.ts / 1000.0, c.text, q.qname, r.text FROM query_log q JOIN ql_strings c ON c.id = q.client"
                " LEFT JOIN ql_strings r ON r.id = q.reason"
                f" WHERE q.client IN ({','.join(map(str, codes))}) AND q.ts >= ? AND q.ts < ? ORDER BY q.ts",
                (int(since * 1000), int(until * 1000))).fetchall()

    def budget_high_water(self) -> Optional[float]:
        """The newest (effective) time a usage row was updated: the clock's high-water mark."""
        with self._lock:
            row = self._db.execute("SELECT max(updated) FROM budget_usage").fetchone()
        return row[0] if row and row[0] else None
