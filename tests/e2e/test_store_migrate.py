"""`hearth store migrate --to postgresql://…`: a populated appliance store moves into PostgreSQL intact, the
command says what it moved, and a database that holds data already is refused."""
from __future__ import annotations

import subprocess
import sys
import time

import yaml

from resolver.policy.budgets import Budget, BudgetUsage
from resolver.policy.profiles import Device, Profile, Schedule, TempAllow
from resolver.store.open import open_store
from resolver.store.postgres import PostgresStore
from resolver.store.protocol import QueryRow

CLI = [sys.executable, "-m", "resolver.cli"]
NOW = time.time()


def _populate(store) -> None:
    store.add_profile(Profile(name="Kids", preset="child", categories=("adult", "gambling"), services=("tiktok",),
                              safe_search=True, youtube="strict", block=("bad.example",), allow=("good.example",)))
    store.add_profile(Profile(name="Teen", categories=("adult",)))
    store.add_device(Device(name="Tablet", kind="ip", value="192.168.1.20", profile="Kids"))
    store.add_device(Device(name="Phone", kind="mac", value="aa:bb:cc:dd:ee:ff", profile="Teen"))
    store.add_device(Device(name="Guests", kind="cidr", value="192.168.2.0/24", profile="default"))
    store.set_pause("Phone", NOW + 3600)
    store.add_schedule(Schedule(profile="Kids", name="Bedtime", days=("mon", "tue"), start="21:00", end="07:00"))
    store.add_temp_allow(TempAllow(device="Tablet", domain="khanacademy.org", until=NOW + 600))
    store.touch_seen("192.168.1.20", "", "tablet", NOW)
    store.add_user("admin", "scrypt:hash", "admin")
    store.add_user("Grandma", "scrypt:hash2", "viewer", language="vi")
    store.add_api_token("admin", "0" * 64, "script")
    store.add_login_attempt("admin", True, NOW)
    store.add_audit("admin", "profile.add", "Kids", None, {"name": "Kids"})
    req = store.add_access_request("192.168.1.20", "games.example", "for homework", device="Tablet", profile="Kids")
    store.decide_access_request(req.id, "approved", "30m", "admin", until=NOW + 1800)
    store.add_access_request("192.168.1.20", "video.example", "please")
    store.add_report("192.168.1.20", "https://harm.example/", "adult", message="saw this", device="Tablet")
    store.set_setting("upstream", "cloudflare")
    store.set_budget(Budget("Kids", "service:roblox", 60, 120, reset="04:00"))
    store.save_budget_usage([BudgetUsage("Kids", "service:roblox", "2026-12-01", 42, 0, 1000, False, NOW - 30)])
    store.add_budget_extra("Kids", "service:roblox", "2026-12-01", 15)
    store.add_queries([QueryRow(NOW - 60 + i, "192.168.1.20" if i % 2 else "192.168.1.30", f"n{i % 7}.example", 1, 0,
                                "A 192.0.2.1", "udp://127.0.0.1:53", 1.5, bool(i % 3),
                                "category:adult" if i % 5 == 0 else None) for i in range(50)])


def _view(store) -> tuple:
    since = NOW - 7200
    return (store.list_profiles(), store.list_devices(), store.list_schedules(), store.list_temp_allows(NOW),
            store.list_seen(), store.list_users(), store.list_api_tokens(), store.login_failures("admin", 0),
            store.list_audit(), store.list_access_requests(), store.list_reports(), store.get_setting("upstream"),
            store.query_page(100), store.hourly_counts(since, NOW), store.top_domains(since, 20),
            store.top_clients(since), store.reason_counts(since),
            store.online_minutes(since, NOW, clients=["192.168.1.20"]), store.list_budgets(), store.budget_usage())


def test_a_populated_store_moves_intact(tmp_path, postgres_url):
    data = tmp_path / "data"
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data)}))
    sqlite = open_store(type("C", (), {"store": "", "data_dir": str(data)})())
    _populate(sqlite)
    before = _view(sqlite)
    sqlite.close()

    r = subprocess.run(CLI + ["store", "migrate", "--to", postgres_url, "-c", str(config)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for line in ("3 profiles", "3 devices", "1 schedules", "1 temporary allows", "2 users", "1 API tokens",
                 "1 audit entries", "2 access requests", "1 reports", "1 time budgets", "1 budget days",
                 "50 query-log entries"):
        assert f" {line}\n" in out, out
    assert "now set `store: postgresql://" in out

    pg = PostgresStore(postgres_url)
    try:
        assert _view(pg) == before
        # the copy goes on where the SQLite store stopped: new ids, a changed policy version
        assert pg.add_profile(Profile(name="Later")).id == max(p.id for p in before[0]) + 1
        assert pg.add_audit("admin", "x", "y").id == before[8][0].id + 1
    finally:
        pg.close()

    # a second move into a database that holds data is refused, and changes nothing
    again = subprocess.run(CLI + ["store", "migrate", "--to", postgres_url, "-c", str(config)], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "holds data already (3 profiles, 3 devices" in again.stderr, again.stderr


def test_a_bad_target_is_refused(tmp_path):
    config = tmp_path / "hearth.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    r = subprocess.run(CLI + ["store", "migrate", "--to", "mysql://db/x", "-c", str(config)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "not a store: 'mysql://db/x'" in r.stderr
    r = subprocess.run(CLI + ["store", "migrate", "--to", "postgresql://127.0.0.1:1/x", "-c", str(config)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no SQLite store to move" in r.stderr


def test_every_table_of_the_sqlite_store_is_moved(tmp_path):
    """A table added by a later migration and forgotten in the move would be lost silently."""
    from resolver.store.transfer import TABLES

    sqlite = open_store(type("C", (), {"store": "", "data_dir": str(tmp_path)})())
    try:
        with sqlite._read() as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    finally:
        sqlite.close()
    assert tables - {"meta"} - {t for _, t, _ in TABLES} == set()
