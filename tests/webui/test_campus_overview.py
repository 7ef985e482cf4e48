"""A school's numbers of devices (issue 17, the campus overview): the dashboard lists a few devices worth a look
(paused, most blocked, busiest) with a search and a link to all of them; the devices page pages and searches;
/api/v1/stats and /api/v1/devices keep their answers. Through the Flask test client, as a browser sends them."""
from __future__ import annotations

import re
import time

from resolver.policy.profiles import Device
from resolver.store.protocol import QueryRow
from webui import core
from webui.admin.monitor import DASHBOARD_DEVICES
from webui.admin.policy import DEVICES_PER_PAGE

N = 130


def _store(app):
    with app.app_context():
        return core.store()


def _pupils(app, n: int = N) -> None:
    store = _store(app)
    for i in range(n):
        store.add_device(Device(f"pupil-{i:03d}", "ip", f"10.1.{i // 200}.{i % 200 + 1}", "Kids"))


def _ip(i: int) -> str:
    return f"10.1.{i // 200}.{i % 200 + 1}"


def _log(app, rows) -> None:
    now = time.time()
    _store(app).add_queries([QueryRow(now - k, client, name, 1, 0, "", "", 1.0, False, reason)
                             for k, (client, name, reason) in enumerate(rows)])


def _device_rows(page: str) -> list[str]:
    """The device names in the dashboard's device list, in order."""
    section = page.split('id="device-list"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<a href="/devices/([^"/]+)/report">', section)


def test_the_dashboard_lists_the_devices_worth_a_look_not_all_of_them(app, admin):
    _pupils(app)
    _store(app).set_pause("pupil-120", time.time() + 600)
    _log(app, [(_ip(77), "bet.example", "category:gambling")] * 9            # the most blocked
         + [(_ip(88), f"n{k}.example", None) for k in range(40)]              # the busiest
         + [("10.9.9.9", "x.example", "category:adult")])                      # no device: shown by address
    page = admin.get("/").get_data(as_text=True)
    shown = _device_rows(page)
    assert len(shown) == DASHBOARD_DEVICES
    assert shown[:3] == ["pupil-120", "pupil-077", "pupil-088"], shown        # paused, most blocked, busiest
    assert shown[3:] == [f"pupil-{i:03d}" for i in range(DASHBOARD_DEVICES - 3)]   # then the first by name
    assert "pupil-129" not in page
    assert f"12 of {N} devices" in page and f"All {N} devices" in page and f"{N} named devices" in page
    assert "1 paused" in page and "paused until" in page
    # the search box and the link lead to the devices page
    assert re.search(r'<form method="get" action="/devices"[^>]*role="search"', page)
    assert 'href="/devices" id="all-devices"' in page
    # the most blocked devices, each with a link to its blocked queries
    blocked = page.split('id="most-blocked"', 1)[1].split("</section>", 1)[0]
    assert blocked.index("pupil-077") < blocked.index("10.9.9.9")
    assert 'href="/querylog?device=pupil-077&amp;result=blocked"' in blocked
    assert 'href="/querylog?client=10.9.9.9&amp;result=blocked"' in blocked
    assert "pupil-088" not in blocked                                           # no blocks, not listed


def test_pausing_from_the_dashboard_keeps_the_device_in_view(app, admin):
    _pupils(app)
    resp = admin.post("/devices", {"action": "pause", "device": "pupil-125", "minutes": "30", "next": "/"}, page="/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/")
    page = admin.get("/").get_data(as_text=True)
    assert _device_rows(page)[0] == "pupil-125" and "Resume internet" in page
    admin.post("/devices", {"action": "resume", "device": "pupil-125", "next": "/"}, page="/")
    assert "pupil-125" not in _device_rows(admin.get("/").get_data(as_text=True))


def test_a_home_dashboard_still_lists_every_device_without_paging(app, admin):
    _pupils(app, 3)
    page = admin.get("/").get_data(as_text=True)
    assert _device_rows(page) == ["pupil-000", "pupil-001", "pupil-002"]
    assert 'id="device-list-note"' not in page and 'id="all-devices"' not in page and 'id="most-blocked"' not in page


def test_the_devices_page_pages(app, admin):
    _pupils(app)
    page = admin.get("/devices").get_data(as_text=True)
    assert page.count('class="card device"') == DEVICES_PER_PAGE
    assert "pupil-000" in page and "pupil-049" in page and "pupil-050" not in page
    assert "Page 1 of 3" in page and f"1–50 of {N}" in page and 'rel="prev"' not in page
    nxt = re.search(r'href="(/devices\?page=2)" rel="next"', page)
    assert nxt, "a link to the next page"
    page2 = admin.get(nxt.group(1)).get_data(as_text=True)
    assert "pupil-050" in page2 and "pupil-099" in page2 and "pupil-049" not in page2 and "Page 2 of 3" in page2
    assert 'href="/devices" rel="prev"' in page2 or 'href="/devices?page=1" rel="prev"' in page2
    last = admin.get("/devices?page=99").get_data(as_text=True)             # past the end: the last page
    assert "pupil-129" in last and "Page 3 of 3" in last and last.count('class="card device"') == N - 100
    assert 'rel="next"' not in last
    assert admin.get("/devices?page=abc").status_code == 200


def test_the_devices_page_searches_name_address_and_profile_ignoring_case(app, admin):
    _pupils(app)
    store = _store(app)
    store.add_device(Device("Máy Tính Đức", "ip", "10.2.0.9", "default"))
    page = admin.get("/devices?q=PUPIL-07").get_data(as_text=True)
    assert page.count('class="card device"') == 10 and "10 devices match “PUPIL-07”" in page
    assert "pupil-070" in page and "pupil-079" in page and "pupil-080" not in page
    assert 'id="device-search"' in page and 'value="PUPIL-07"' in page
    by_ip = admin.get("/devices?q=10.2.0.9").get_data(as_text=True)
    assert "Máy Tính Đức" in by_ip and "1 device matches" in by_ip
    assert "Máy Tính Đức" in admin.get("/devices?q=đức").get_data(as_text=True)     # beyond ASCII too
    # by profile: the default profile's one device, then paging inside the results
    assert admin.get("/devices?q=DEFAULT").get_data(as_text=True).count('class="card device"') == 1
    kids = admin.get("/devices?q=kids&page=3").get_data(as_text=True)
    assert "Page 3 of 3" in kids and "pupil-129" in kids and 'href="/devices?q=kids&amp;page=2" rel="prev"' in kids
    # nothing found; what was typed is shown escaped
    none = admin.get("/devices?q=%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    assert "No device matches." in none and "<script>alert(1)" not in none
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in none


def test_a_change_on_a_page_of_results_comes_back_to_it(app, admin):
    _pupils(app)
    here = "/devices?q=pupil&page=2"
    page = admin.get(here).get_data(as_text=True)
    assert "pupil-049" not in page and "pupil-075" in page
    assert 'name="next" value="/devices?q=pupil&amp;page=2"' in page          # the page's forms carry it
    resp = admin.post("/devices", {"action": "pause", "device": "pupil-075", "minutes": "15", "next": here},
                      page=here)
    assert resp.status_code == 302 and resp.headers["Location"] == here
    assert _store(app).get_device("pupil-075").paused(time.time())


def test_seen_clients_not_named_yet_at_school_size(app, admin):
    _pupils(app)
    now = time.time()
    store = _store(app)
    store.touch_seen(_ip(5), "", "named-already", now)
    store.touch_seen("10.3.0.1", "", "new-laptop", now)
    page = admin.get("/devices").get_data(as_text=True)
    seen = page.split("Seen on the network, not named yet", 1)[1]
    assert "new-laptop" in seen and "named-already" not in seen


def test_api_devices_pages_and_searches_and_stats_count_all(app, admin):
    _pupils(app)
    assert len(admin.get("/api/v1/devices").get_json()) == N                # unchanged: every device
    page = admin.get("/api/v1/devices?limit=20&offset=40").get_json()
    assert [d["name"] for d in page] == [f"pupil-{i:03d}" for i in range(40, 60)]
    found = admin.get("/api/v1/devices?q=PUPIL-12").get_json()
    assert [d["name"] for d in found] == [f"pupil-{i:03d}" for i in range(120, 130)]
    _log(app, [(_ip(1), "a.example", None), (_ip(2), "bet.example", "category:gambling")])
    stats = admin.get("/api/v1/stats").get_json()
    assert stats["devices"] == N and stats["clients"] == 2 and stats["total"] == 2 and stats["blocked"] == 1
    assert {c["device"] for c in stats["top_clients"]} == {"pupil-001", "pupil-002"}


def test_the_query_log_device_filter_is_a_search_box_at_school_size(app, admin):
    """A home's devices fit a menu; a school's are typed, and a name that is no device gets suggestions."""
    from webui.admin.monitor import DEVICE_MENU_MAX

    _pupils(app, 3)
    home = admin.get("/querylog").get_data(as_text=True)
    assert '<select name="device">' in home and 'id="device-name"' not in home
    store = _store(app)
    for i in range(3, N):
        store.add_device(Device(f"pupil-{i:03d}", "ip", _ip(i), "Kids"))
    _log(app, [(_ip(77), "bet.example", "category:gambling"), (_ip(78), "other.example", None)])
    assert N > DEVICE_MENU_MAX
    page = admin.get("/querylog").get_data(as_text=True)
    assert '<select name="device">' not in page and 'id="device-name"' in page
    assert page.count("pupil-") < 10                                          # no menu of every name
    one = admin.get("/querylog?device=pupil-077").get_data(as_text=True)
    assert "bet.example" in one and "other.example" not in one and 'value="pupil-077"' in one
    assert 'id="unknown-device"' not in one
    typo = admin.get("/querylog?device=PUPIL-07").get_data(as_text=True)
    assert "No device is named “PUPIL-07”." in typo and "No queries match." in typo
    links = re.findall(r'<a href="(/querylog\?device=pupil-07\d[^"]*)">', typo)
    assert len(links) == 8 and "/querylog?device=pupil-070" in links[0]
    hostile = admin.get("/querylog?device=%3Cscript%3Ealert(1)%3C/script%3E").get_data(as_text=True)
    assert "<script>alert(1)" not in hostile and "&lt;script&gt;" in hostile


def test_the_profiles_page_counts_devices_and_follows_a_move(app, admin):
    _pupils(app)
    page = admin.get("/profiles").get_data(as_text=True)
    assert f"{N} devices, 0 schedules" in page
    admin.post("/devices", {"action": "update", "device": "pupil-001", "profile": "default"}, page="/devices")
    store = _store(app)
    assert store.get_device("pupil-001").profile == "default"
    page = admin.get("/profiles").get_data(as_text=True)
    assert f"{N - 1} devices, 0 schedules" in page and "1 devices, 0 schedules" in page


def test_with_hundreds_of_profiles_a_device_s_profile_is_typed_from_one_list(app, admin):
    """A school's 200 profiles are not repeated as a menu on each of the page's 50 devices."""
    from resolver.policy.profiles import Profile
    from webui.admin.policy import PROFILE_MENU_MAX

    _pupils(app, 60)
    small = admin.get("/devices").get_data(as_text=True)
    assert '<select name="profile" class="autosubmit">' in small and 'list="profile-names"' not in small
    store = _store(app)
    for i in range(200):
        store.add_profile(Profile(name=f"Class {i:03d}"))
    assert len(store.list_profiles()) > PROFILE_MENU_MAX
    page = admin.get("/devices").get_data(as_text=True)
    assert '<select name="profile"' not in page
    assert page.count('<datalist id="profile-names">') == 1 and page.count('value="Class 199"') == 1
    assert page.count('list="profile-names"') == DEVICES_PER_PAGE + 1               # each device + "Add a device"
    assert len(page) < len(small) * 3
    # typed and saved like the menu's choice; a name that is no profile is refused, the device unchanged
    admin.post("/devices", {"action": "update", "device": "pupil-001", "profile": "Class 042"}, page="/devices")
    assert store.get_device("pupil-001").profile == "Class 042"
    assert 'value="Class 042"' in admin.get("/devices?q=pupil-001").get_data(as_text=True)
    resp = admin.post("/devices", {"action": "update", "device": "pupil-001", "profile": "Class 9999"},
                      page="/devices")
    assert store.get_device("pupil-001").profile == "Class 042"
    assert resp.status_code in (200, 302)
