"""Time budgets in the web UI: the JSON API and OpenAPI, the profile page's form, the dashboard's minutes
used and left, and a block-page request answered with "15 more minutes"."""
from __future__ import annotations

import time

from resolver.policy.budgets import BudgetUsage, budget_day
from webui import core
from webui.api import ROUTES
from tests.webui.conftest import Browser


def _today(app, profile="Kids", target="service:roblox"):
    with app.app_context():
        from zoneinfo import ZoneInfo
        return budget_day(time.time(), ZoneInfo(core.config().timezone))[0].isoformat()


def test_budgets_api_and_openapi(app, admin):
    r = admin.api("PUT", "/api/v1/profiles/Kids/budgets", [{"target": "roblox", "minutes": 60, "weekend": 120},
                                                          {"target": "all", "minutes": 180}])
    assert r.status_code == 200, r.get_json()
    rows = {x["target"]: x for x in r.get_json()}
    assert rows["service:roblox"]["label"] == "Roblox" and rows["all"]["weekend"] == 180
    assert rows["service:roblox"]["used"] == 0 and rows["service:roblox"]["left"] in (60, 120)
    for body, message in [([{"target": "roblox", "minutes": -1}], "minutes: minutes must be between 0 and 1440"),
                          ([{"target": "robloks", "minutes": 5}], "'robloks' is neither a service"),
                          ([{"target": "roblox", "minutes": 5}, {"target": "service:roblox", "minutes": 9}],
                           "Roblox is given twice"),
                          ({"target": "roblox"}, "budgets: send a list")]:
        r = admin.api("PUT", "/api/v1/profiles/Kids/budgets", body)
        assert r.status_code == 400 and message in r.get_json()["error"], r.get_json()
    r = admin.api("POST", "/api/v1/profiles/Kids/budgets/more", {"target": "roblox", "minutes": 15})
    assert r.get_json()["extra"] == 15
    got = {x["target"]: x for x in admin.api("GET", "/api/v1/budgets?profile=Kids").get_json()}
    assert got["service:roblox"]["extra"] == 15 and got["service:roblox"]["limit"] in (75, 135)
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert "put" in doc["paths"]["/api/v1/profiles/{name}/budgets"] and "/api/v1/budgets" in doc["paths"]
    assert "Budgets" in doc["components"]["schemas"]
    assert any(x["path"] == "/profiles/<name>/budgets/more" for x in ROUTES)


def test_profile_form_and_dashboard_show_minutes_used_and_left(app, admin):
    page = admin.get("/profiles/Kids").get_data(as_text=True)
    assert 'id="budgets"' in page and "Add a budget for" in page
    admin.post("/profiles/Kids/budgets", {"new_target": "service:roblox", "new_minutes": "60", "new_weekend": "90",
                                          "reset": "00:00"})
    admin.post("/profiles/Kids/budgets", {"target": "service:roblox", "minutes": "45", "weekend": "90",
                                          "new_target": "category:games", "new_minutes": "30", "reset": "00:00"})
    with app.app_context():
        budgets = {b.target: b for b in core.store().list_budgets("Kids")}
        assert budgets["service:roblox"].minutes == 45 and budgets["category:games"].minutes == 30
        core.store().save_budget_usage([BudgetUsage("Kids", "service:roblox", _today(app), 100, updated=time.time())])
    page = admin.get("/").get_data(as_text=True)
    assert 'id="budgets-today"' in page and "used up" in page and "min left" in page
    # a bad value names the field and changes nothing
    resp = admin.post("/profiles/Kids/budgets", {"target": "category:games", "minutes": "5000", "weekend": "1",
                                                 "reset": "00:00"})
    assert resp.status_code == 302
    assert "minutes" in admin.get("/profiles/Kids").get_data(as_text=True)
    with app.app_context():
        assert {b.target for b in core.store().list_budgets("Kids")} == {"service:roblox", "category:games"}
    # removing a row
    admin.post("/profiles/Kids/budgets", {"target": ["service:roblox", "category:games"], "minutes": ["45", "30"],
                                          "weekend": ["90", "30"], "remove": "category:games", "reset": "00:00"})
    with app.app_context():
        assert [b.target for b in core.store().list_budgets("Kids")] == ["service:roblox"]


def test_a_block_page_request_for_more_time_adds_15_minutes_today(app, admin):
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "127.0.0.1", "profile": "Kids"})
    admin.api("PUT", "/api/v1/profiles/Kids/budgets", [{"target": "roblox", "minutes": 30}])
    with app.app_context():
        # what the block page stores when the engine says "time-budget", category Roblox
        req = core.store().add_access_request("127.0.0.1", "www.roblox.com", "", device="Tablet", profile="Kids",
                                              reason="time-budget:Roblox")
    page = admin.get("/requests").get_data(as_text=True)
    assert "Give 15 more minutes today" in page and "Today&#39;s time for this is used up" in page
    admin.post("/requests", {"id": str(req.id), "decision": "more", "domain": "www.roblox.com"})
    with app.app_context():
        store = core.store()
        (u,) = store.budget_usage(_today(app), "Kids")
        assert (u.target, u.extra) == ("service:roblox", 15)
        assert store.get_access_request(req.id).status == "approved"
        assert store.list_temp_allows(time.time()) == []          # minutes, not an allow of the name
    kid = Browser(app.test_client())
    assert "Ask my parent" in kid.get("/blocked?domain=www.roblox.com").get_data(as_text=True)


def test_the_device_report_counts_minutes_like_the_budgets(app, admin):
    """10 minutes of play (2 Roblox names a minute) count 10 minutes; an hour of lone background pings and
    single names counts nothing (the old "any query in a 5-minute bucket" rule said 60)."""
    from resolver.store.protocol import QueryRow

    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    start = (int(time.time()) // 3600 - 3) * 3600
    rows = []
    for m in range(10):
        for k, name in enumerate(("www.roblox.com", f"t{m % 4}.rbxcdn.com")):
            rows.append(QueryRow(start + m * 60 + k, "10.0.0.7", name, 1, 0, "", "", 1.0, False, None))
    for m in range(0, 60, 5):     # the next hour: one name every five minutes, and push
        rows.append(QueryRow(start + 3600 + m * 60, "10.0.0.7", "apis.roblox.com", 1, 0, "", "", 1.0, False, None))
        rows.append(QueryRow(start + 3600 + m * 60 + 1, "10.0.0.7", "mtalk.google.com", 1, 0, "", "", 1.0, False,
                             None))
    with app.app_context():
        core.store().add_queries(rows)
    api = admin.api("GET", "/api/v1/devices/Tablet/report").get_json()
    assert sum(o["total"] for o in api["online"]) == 10
    page = admin.get("/devices/Tablet/report").get_data(as_text=True)
    assert "10 min" in page


def test_a_childs_weekly_report_page_and_csv(app, admin):
    from resolver.store.protocol import QueryRow

    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    start = (int(time.time()) // 3600 - 2) * 3600
    rows = [QueryRow(start + m * 60 + k, "10.0.0.7", name, 1, 0, "", "", 1.0, False, None)
            for m in range(12) for k, name in enumerate(("www.roblox.com", f"t{m % 3}.rbxcdn.com"))]
    rows.append(QueryRow(start + 5, "10.0.0.7", "<b>evil</b>.example", 1, 0, "", "", 1.0, False,
                         "category:adult"))
    with app.app_context():
        core.store().add_queries(rows)
    page = admin.get("/profiles/Kids/report").get_data(as_text=True)
    assert "Minutes per app per day" in page and "Roblox" in page and "uPlot.iife.min.js" in page
    assert 'id="usage-data"' in page and "<b>evil" not in page
    assert "12 min" in page                                     # the table under the chart
    csv = admin.get("/profiles/Kids/report.csv")
    assert csv.mimetype == "text/csv" and ",Kids,Roblox,12" in csv.get_data(as_text=True)
    assert admin.get("/profiles/Nobody/report").status_code == 404
    assert app.test_client().get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200


def test_a_weekday_of_its_own_through_the_api_and_the_form(app, admin):
    r = admin.api("PUT", "/api/v1/profiles/Kids/budgets",
                  [{"target": "games", "minutes": 60, "weekend": 120, "days": {"fri": 90, "sat,sun": 150}}])
    assert r.status_code == 200, r.get_json()
    (row,) = r.get_json()
    assert row["days"] == {"fri": 90, "sat": 150, "sun": 150} and row["weekend"] == 120
    for days, message in [({"fry": 5}, "days: unknown day 'fry'"),
                          ({"fri": -3}, "days fri: minutes must be between 0 and 1440"),
                          ({"weekdays": 30, "fri": 90}, "days: fri is given twice"),
                          ("fri", "days: write DAYS=MINUTES")]:
        r = admin.api("PUT", "/api/v1/profiles/Kids/budgets", [{"target": "games", "minutes": 60, "days": days}])
        assert r.status_code == 400 and message in r.get_json()["error"], (days, r.get_json())
    schema = app.test_client().get("/api/v1/openapi.json").get_json()["components"]["schemas"]["Budgets"]
    assert "days" in schema["items"]["properties"]
    # the profile page: the row's weekday fields hold the values; the form changes them
    page = admin.get("/profiles/Kids").get_data(as_text=True)
    assert 'name="days:category:games:fri" value="90"' in page and "Own minutes on some weekdays" in page
    admin.post("/profiles/Kids/budgets", {"target": "category:games", "minutes": "60", "weekend": "120",
                                          "days:category:games:fri": "", "days:category:games:mon": "30",
                                          "new_target": "service:roblox", "new_minutes": "40",
                                          "new_days:wed": "10", "reset": "00:00"})
    with app.app_context():
        got = {b.target: b for b in core.store().list_budgets("Kids")}
    assert got["category:games"].day_map() == {"mon": 30} and got["service:roblox"].day_map() == {"wed": 10}
    # a bad weekday value names the day and changes nothing
    admin.post("/profiles/Kids/budgets", {"target": "category:games", "minutes": "60", "weekend": "120",
                                          "days:category:games:tue": "2000", "reset": "00:00"})
    assert "days tue: minutes must be between 0 and 1440" in admin.get("/profiles/Kids").get_data(as_text=True)
    with app.app_context():
        assert {b.target: b for b in core.store().list_budgets("Kids")}["category:games"].day_map() == {"mon": 30}


def test_the_device_report_draws_the_same_minutes_per_app_per_day_as_the_profiles(app, admin):
    """One device in Kids: its report's chart data and table hold exactly the profile report's numbers."""
    import json
    import re

    from resolver.store.protocol import QueryRow

    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    start = (int(time.time()) // 3600 - 2) * 3600
    rows = [QueryRow(start + m * 60 + k, "10.0.0.7", name, 1, 0, "", "", 1.0, False, None)
            for m in range(12) for k, name in enumerate(("www.roblox.com", f"t{m % 3}.rbxcdn.com"))]
    rows += [QueryRow(start + 1800 + m * 60 + k, "10.0.0.7", name, 1, 0, "", "", 1.0, False, None)
             for m in range(7) for k, name in enumerate(("www.tiktok.com", f"v{m % 2}.tiktokcdn.com"))]
    rows.append(QueryRow(start + 7, "10.0.0.7", "<b>evil</b>.example", 1, 0, "", "", 1.0, False, None))
    with app.app_context():
        core.store().add_queries(rows)

    def chart(page: str) -> dict:
        return json.loads(re.search(r'<script type="application/json" id="usage-data">(.*?)</script>', page,
                                    re.S).group(1))

    device = admin.get("/devices/Tablet/report").get_data(as_text=True)
    profile = admin.get("/profiles/Kids/report").get_data(as_text=True)
    assert "Minutes per app per day" in device and "uPlot.iife.min.js" in device and "<b>evil" not in device
    got, want = chart(device), chart(profile)
    assert got == want
    minutes = {s["label"]: sum(s["minutes"]) for s in got["services"]}
    assert minutes["Roblox"] == 12 and minutes.get("TikTok") == 7, minutes
    assert sum(got["all"]) == sum(o["total"] for o in admin.api("GET", "/api/v1/devices/Tablet/report")
                                  .get_json()["online"])
