"""The admin pages: escaping of attacker-controlled names, devices, profiles, schedules, query log,
requests and reports, settings."""
from __future__ import annotations

import time

from resolver.store.protocol import QueryRow
from webui import core

EVIL = '<script>alert("x")</script>\'"&.example'
NON_UTF8 = b"caf\xe9\xff.\x01bad".decode("ascii", "backslashreplace") + "\x07.example"


def _log(app, *rows):
    with app.app_context():
        core.store().add_queries([QueryRow(time.time() - i, client, name, 1, 0, "A 0.0.0.0", "", 1.0, False, reason)
                                  for i, (client, name, reason) in enumerate(rows)])


def test_attacker_names_are_escaped_everywhere(app, admin):
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    _log(app, ("10.0.0.7", EVIL, "category:adult"), ("10.0.0.7", NON_UTF8, None), ("10.0.0.8", EVIL, None))
    with app.app_context():
        core.store().touch_seen("10.0.0.9", "", '<img src=x onerror=alert(1)>', time.time())
        core.store().add_access_request("10.0.0.7", EVIL, '<b>please</b>"')
        core.store().add_report("10.0.0.7", "http://x/<script>", "other", "<i>", "<svg onload=1>")
    for url in ("/", "/querylog", "/querylog?result=blocked", "/devices", "/devices/Tablet/report", "/requests"):
        page = admin.get(url).get_data(as_text=True)
        for raw in ("<script>alert", "<img src=x", "<b>please", "<svg onload", "<i>"):
            assert raw not in page, (url, raw)
    log = admin.get("/querylog").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&#34;&amp;.example" in log
    assert "caf\\xe9\\xff.\\x01bad\\x07.example" in log          # undecodable and control bytes as escapes
    assert "&lt;script&gt;" in admin.get("/").get_data(as_text=True)     # top blocked on the dashboard
    api = admin.get("/api/v1/querylog").get_json()
    assert {r["qname"] for r in api} >= {EVIL, NON_UTF8}                  # JSON keeps the raw text


def test_device_pages_and_actions(app, admin):
    assert admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "AA-BB-CC-DD-EE-01",
                                   "profile": "Kids"}).status_code == 302
    bad = admin.post("/devices", {"action": "add", "name": "Bad", "identity": "not an address"})
    assert bad.status_code == 302
    assert "not an IP address" in admin.get("/devices").get_data(as_text=True)
    admin.post("/devices", {"action": "pause", "device": "Tablet", "minutes": "30"})
    admin.post("/devices", {"action": "allow", "device": "Tablet", "domain": "wikipedia.org", "minutes": "60"})
    page = admin.get("/devices").get_data(as_text=True)
    assert "paused until" in page and "wikipedia.org allowed until" in page
    with app.app_context():
        d = core.store().get_device("Tablet")
        assert d.kind == "mac" and d.paused_until > time.time() + 29 * 60
    admin.post("/devices", {"action": "resume", "device": "Tablet"})
    admin.post("/devices", {"action": "update", "device": "Tablet", "profile": "default"})
    with app.app_context():
        d = core.store().get_device("Tablet")
        assert d.paused_until is None and d.profile == "default"
    # newly seen clients are offered for naming
    with app.app_context():
        core.store().touch_seen("10.0.0.44", "", "kid-phone", time.time())
    assert "kid-phone" in admin.get("/devices").get_data(as_text=True)
    admin.post("/devices", {"action": "remove", "device": "Tablet"})
    with app.app_context():
        assert core.store().get_device("Tablet") is None


def test_profile_editing(app, admin):
    page = admin.get("/profiles/Kids").get_data(as_text=True)
    assert "Gambling" in page and "Betting, casinos" in page and "TikTok" in page
    resp = admin.post("/profiles/Kids", {"action": "save", "name": "Kids", "categories": ["gambling", "adult"],
                                         "services": ["tiktok", "roblox"], "safe_search": "1", "youtube": "strict",
                                         "block_mode": "page", "allow": "school.example\n*.wiki.example",
                                         "block": "bad.example"})
    assert resp.status_code == 302
    with app.app_context():
        p = core.store().get_profile("Kids")
    assert p.categories == ("adult", "gambling") and p.services == ("roblox", "tiktok")
    assert p.block_mode == "page" and p.allow == ("*.wiki.example", "school.example") and p.block == ("bad.example",)
    assert not p.bypass_prevention
    admin.post("/profiles/Kids", {"action": "save", "name": "Kids", "allow": "x.example", "block": "x.example"})
    assert "both blocked and allowed" in admin.get("/profiles/Kids").get_data(as_text=True)
    admin.post("/profiles", {"name": "Teens", "preset": "teen"})
    admin.post("/profiles/Teens", {"action": "save", "name": "Big kids", "all_categories": "1"})
    with app.app_context():
        assert core.store().get_profile("Big kids").blocks_all_categories
    admin.post("/profiles/Big kids", {"action": "remove"})
    with app.app_context():
        assert core.store().get_profile("Big kids") is None


def test_schedules_grid(app, admin):
    admin.post("/schedules", {"action": "add", "profile": "Kids", "name": "bedtime", "days": ["mon", "tue"],
                              "start": "21:00", "end": "07:00", "what": "block_all"})
    admin.post("/schedules", {"action": "add", "profile": "Kids", "name": "homework", "days": ["wed"],
                              "start": "15:00", "end": "17:00", "what": "block_categories",
                              "categories": ["games"]})
    page = admin.get("/schedules?profile=Kids").get_data(as_text=True)
    # 21:00-07:00 on two days: 3 + 7 hours each; 15-17 on one day: 2 hours (and one of each in the legend)
    assert page.count('class="cell all"') == 2 * (3 + 7) + 1 and page.count('class="cell some"') == 2 + 1
    admin.post("/schedules", {"action": "disable", "profile": "Kids", "name": "bedtime"})
    with app.app_context():
        assert not core.store().list_schedules("Kids")[0].enabled
    admin.post("/schedules", {"action": "remove", "profile": "Kids", "name": "bedtime"})
    with app.app_context():
        assert [s.name for s in core.store().list_schedules("Kids")] == ["homework"]


def test_query_log_filters_and_one_click_rules(app, admin):
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    _log(app, ("10.0.0.7", "bet.example", "category:gambling"), ("10.0.0.7", "ok.example", None),
         ("10.0.0.8", "other.example", None))
    assert "other.example" not in admin.get("/querylog?device=Tablet").get_data(as_text=True)
    blocked = admin.get("/querylog?result=blocked").get_data(as_text=True)
    assert "bet.example" in blocked and "ok.example" not in blocked
    assert "ok.example" not in admin.get("/querylog?q=bet").get_data(as_text=True)
    tail = admin.get("/api/v1/querylog?after_id=1").get_json()
    assert [r["qname"] for r in tail] == ["other.example", "ok.example"]
    assert tail[1]["device"] == "Tablet" and tail[1]["profile"] == "Kids"
    resp = admin.post("/profiles/Kids", {"action": "rule", "domain": "bet.example", "rule": "allow",
                                         "next": "/querylog?result=blocked"})
    assert resp.location == "/querylog?result=blocked"
    admin.post("/profiles/default", {"action": "rule", "domain": "other.example", "rule": "block"})
    with app.app_context():
        assert "bet.example" in core.store().get_profile("Kids").allow
        assert "other.example" in core.store().get_profile("default").block


def test_dashboard_and_report(app, admin):
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    _log(app, ("10.0.0.7", "bet.example", "category:gambling"), ("10.0.0.7", "ok.example", None),
         ("10.0.0.8", "x.example", None))
    page = admin.get("/").get_data(as_text=True)
    assert "Hearth is protecting 2 devices" in page and "bet.example" in page and "Tablet" in page
    assert "<svg" in page and "DNS engine not answering" in page
    stats = admin.get("/api/v1/stats").get_json()
    assert stats["total"] == 3 and stats["blocked"] == 1 and len(stats["hourly"]) == 24
    report = admin.get("/devices/Tablet/report").get_data(as_text=True)
    assert "ok.example" in report and "bet.example" in report


def test_settings_purge_and_reports_csv(app, admin):
    _log(app, ("10.0.0.7", "a.example", None))
    page = admin.get("/settings").get_data(as_text=True)
    assert "dns.upstreams" in page and "read-only" in page
    admin.post("/settings", {"action": "purge", "days": "0"})
    with app.app_context():
        assert core.store().recent_queries() == []
        core.store().add_report("10.0.0.7", "=HYPERLINK(\"http://x\")", "scam", "", "see <this>")
    csv = admin.get("/reports.csv")
    assert csv.mimetype == "text/csv"
    body = csv.get_data(as_text=True)
    assert "'=HYPERLINK" in body and "see <this>" in body
    assert admin.get("/api/v1/reports?format=csv").get_data(as_text=True) == body


def test_settings_change_upstreams_and_time_zone_for_the_engine(app, admin):
    admin.post("/settings", {"action": "resolver", "upstream": "cloudflare-family", "timezone": "Asia/Bangkok"})
    with app.app_context():
        store = core.store()
        assert store.get_setting("upstreams") == ["udp://1.1.1.3", "udp://1.0.0.3"]
        assert store.get_setting("timezone") == "Asia/Bangkok"
        assert any(a.action == "settings.resolver" for a in store.list_audit())
    bad = admin.post("/settings", {"action": "resolver", "upstream": "evil", "timezone": "UTC"})
    assert bad.status_code in (200, 302)
    with app.app_context():
        assert core.store().get_setting("upstream_choice") == "cloudflare-family"


def test_a_device_behind_the_router_is_seen_named_and_reported_by_its_mac(app, admin):
    """Behind an OpenWrt router (dnsmasq --add-mac) the engine logs and lists a client by its MAC."""
    mac = "02:00:00:00:00:07"
    with app.app_context():
        core.store().touch_seen(mac, mac, "", time.time())
    _log(app, (mac, "bet.example", "category:gambling"), (mac, "ok.example", None))
    page = admin.get("/devices").get_data(as_text=True)
    assert mac in page
    admin.post("/devices", {"action": "add", "name": "Phone", "identity": mac, "profile": "Kids"})
    with app.app_context():
        phone = core.store().get_device("Phone")
        assert (phone.kind, phone.value) == ("mac", mac)
    report = admin.get("/devices/Phone/report").get_data(as_text=True)
    assert "bet.example" in report
    assert "Phone" in admin.get("/").get_data(as_text=True)   # the dashboard's busiest devices name it


def test_a_shared_store_that_is_down_is_named_on_the_page_and_in_the_api(tmp_path):
    """PostgreSQL unreachable (nothing listens on the port): a 503 page naming the problem, not a crash."""
    from webui import create_app
    from tests.webui.conftest import make_config
    import dataclasses
    import socket

    with socket.socket() as s:                     # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = dataclasses.replace(make_config(tmp_path), store=f"postgresql://hearth@127.0.0.1:{port}/hearth")
    app = create_app(config)
    app.config["TESTING"] = True
    client = app.test_client()
    page = client.get("/login")
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert "Read only: the store is unavailable" in html and "Connection refused" in html
    assert "DNS keeps answering with the policy it had" in html
    import time

    t0 = time.monotonic()                          # the next pages say so at once, not after the pool's 5 s
    api = client.get("/api/v1/devices", headers={"Authorization": "Bearer x"})
    assert api.status_code == 503 and "the database is unavailable" in api.get_json()["error"]
    assert client.get("/").status_code == 503 and time.monotonic() - t0 < 2


def test_an_open_shared_store_that_goes_down_is_said_at_once_and_comes_back(tmp_path, monkeypatch):
    """PostgreSQL stopped under a web UI whose store is open: the first page finds it down (within the pool's
    wait), the next pages say so at once, and after STORE_RETRY the UI uses the database again."""
    import dataclasses
    import time

    from tests.pg import PostgresServer
    from tests.webui.conftest import Browser, make_config, run_wizard
    from webui import core, create_app

    server = PostgresServer().start()
    try:
        app = create_app(dataclasses.replace(make_config(tmp_path), store=server.new_database()))
        app.config["TESTING"] = True
        browser = Browser(app.test_client())
        assert run_wizard(browser).status_code == 302
        assert browser.get("/").status_code == 200
        server.stop()
        first = browser.get("/devices")
        assert first.status_code == 503 and "DNS keeps answering" in first.get_data(as_text=True)
        t0 = time.monotonic()
        for path in ("/", "/profiles", "/querylog"):
            page = browser.get(path)
            assert page.status_code == 503 and "The shared store is unavailable" in page.get_data(as_text=True)
        assert time.monotonic() - t0 < 2            # not three waits for the pool
        server.restart()
        monkeypatch.setattr(core, "STORE_RETRY", 0.0)   # the 10 s wait before trying again, made nothing
        deadline = time.monotonic() + 30
        while browser.get("/").status_code != 200:    # the pool reconnects
            assert time.monotonic() < deadline, "the web UI did not use the database again"
            time.sleep(0.5)
        assert "Kids" in browser.get("/profiles").get_data(as_text=True)
        app.extensions["hearth_store"].close()
    finally:
        server.destroy()


def test_the_query_log_of_a_shared_store_shows_and_filters_by_node(tmp_path, postgres_url):
    import dataclasses
    import time

    from resolver.store.postgres import PostgresStore
    from resolver.store.protocol import QueryRow
    from tests.webui.conftest import Browser, make_config, run_wizard
    from webui import create_app

    app = create_app(dataclasses.replace(make_config(tmp_path), store=postgres_url, node_name="gw1"))
    app.config["TESTING"] = True
    browser = Browser(app.test_client())
    assert run_wizard(browser).status_code == 302
    for node, name in (("gw1", "one.example"), ("gw2", "two.example")):
        writer = PostgresStore(postgres_url, node=node)
        writer.add_queries([QueryRow(time.time(), "192.168.1.9", name, 1, 0, "", "", 1.0, False, None)])
        writer.close()
    page = browser.get("/querylog").get_data(as_text=True)
    assert "one.example" in page and "two.example" in page and '<td class="node">gw2</td>' in page
    only = browser.get("/querylog?node=gw2").get_data(as_text=True)
    assert "two.example" in only and "one.example" not in only
    rows = browser.get("/api/v1/querylog?node=gw1").get_json()
    assert [(r["qname"], r["node"]) for r in rows] == [("one.example", "gw1")]
    assert app.extensions["hearth_store"].list_audit()[0].node == "gw1"     # the wizard's entry names this node
    app.extensions["hearth_store"].close()


def test_query_log_names_each_clients_device_as_the_engine_would_among_many(app, admin):
    import re

    from resolver.policy.profiles import Device

    with app.app_context():
        store = core.store()
        for i in range(600):   # a campus: many devices of every kind besides the ones asked about
            store.add_device(Device(name=f"ip{i}", kind="ip", value=f"10.50.{i // 250}.{i % 250 + 1}"))
            store.add_device(Device(name=f"mac{i}", kind="mac", value=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"))
            store.add_device(Device(name=f"net{i}", kind="cidr", value=f"10.{100 + i // 256}.{i % 256}.0/24"))
        store.add_device(Device(name="Tablet", kind="ip", value="10.0.0.7"))
        store.add_device(Device(name="Phone", kind="mac", value="aa:bb:cc:dd:ee:02"))
        store.add_device(Device(name="Laptop", kind="mac", value="aa:bb:cc:dd:ee:03"))
        store.add_device(Device(name="Wing", kind="cidr", value="10.1.0.0/16"))
        store.add_device(Device(name="Class 2B", kind="cidr", value="10.1.2.0/24"))
        store.touch_seen("10.0.5.5", "aa:bb:cc:dd:ee:02", "", time.time())
    asked = {"10.0.0.7": "Tablet", "10.0.5.5": "Phone", "aa:bb:cc:dd:ee:03": "Laptop", "10.1.2.3": "Class 2B",
             "10.1.9.9": "Wing", "10.50.0.1": "ip0", "10.100.3.77": "net3", "192.0.2.200": "192.0.2.200"}
    _log(app, *[(client, f"q{k}.example", None) for k, client in enumerate(asked)])
    page = admin.get("/querylog").get_data(as_text=True)
    shown = dict(re.findall(r'<td>([^<]*)</td><td class="name">(q\d+)\.example</td>', page))
    assert {name: f"q{k}" for k, name in enumerate(asked.values())} == shown
