"""The dashboard, a device's report and /api/v1/stats count from the hourly roll-ups: the same numbers as the
raw rows, and still there after the size cap or the age limit deleted the rows."""
from __future__ import annotations

import re
import time

from resolver.store.protocol import QueryRow
from webui import core


def test_dashboard_report_and_api_stats_come_from_the_rollups(app, admin):
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    now = time.time()
    rows = [QueryRow(now - i, "10.0.0.7" if i % 2 else "10.0.0.8", f"n{i % 5}.example", 1, 0, "", "", 1.0, False,
                     "category:adult" if i % 3 == 0 else None) for i in range(60)]
    with app.app_context():
        core.store().add_queries(rows)
    blocked = sum(1 for i in range(60) if i % 3 == 0)

    def check() -> None:
        api = admin.get("/api/v1/stats").get_json()
        assert (api["total"], api["blocked"], api["clients"]) == (60, blocked, 2)
        assert api["by_reason"] == {"": 60 - blocked, "category:adult": blocked}
        assert {c["name"]: c["total"] for c in api["top_clients"]} == {"10.0.0.7": 30, "10.0.0.8": 30}
        report = admin.get("/api/v1/devices/Tablet/report").get_json()
        assert sum(c["total"] for c in report["top"]) + sum(c["total"] for c in report["blocked"]) == 30
        page = admin.get("/").get_data(as_text=True)
        assert re.search(r"\b60\b", page) and "n0.example" in page

    check()
    with app.app_context():
        store = core.store()
        assert store.purge_queries(now + 1) == 60 and store.count_queries() == 0
    check()                                          # the rows are gone, the statistics are not
