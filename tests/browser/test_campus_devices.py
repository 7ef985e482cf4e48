"""A school's Hearth on a 390×844 phone, in Vietnamese, against a real `hearth dns` + `hearth web` with 130 devices
(issue 17, the campus overview): the dashboard lists a dozen devices, not all of them, and finds any other; the
devices page pages and searches; a pause made on a page of search results comes back to it and is in force for
DNS; nothing scrolls sideways. Screenshots in tests/artifacts/."""
from __future__ import annotations

import pytest

from tests.browser.conftest import a_records, shot, wait_for
from tests.browser.test_phone import PHONE, no_sideways_scroll, set_up_hearth
from tests.dnsclient import ask

KID = "127.0.0.1"
PUPILS = 130


@pytest.fixture(scope="module")
def phone(browser, stack):
    from resolver.policy.profiles import Device
    from resolver.store.sqlite import open_store

    ctx = browser.new_context(locale="vi-VN", viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    p = ctx.new_page()
    set_up_hearth(p, stack, "vi")
    store = open_store(str(stack.engine.data_dir))
    try:
        for i in range(PUPILS):
            store.add_device(Device(f"pupil-{i:03d}", "ip", f"10.1.{i // 200}.{i % 200 + 1}", "Kids"))
        store.add_device(Device("Máy tính bảng Lan", "ip", KID, "Kids"))
    finally:
        store.close()
    yield p
    ctx.close()


def test_the_dashboard_shows_a_dozen_devices_and_finds_the_others(stack, phone):
    phone.goto(stack.url + "/")
    rows = phone.locator("#device-list tbody tr")
    assert rows.count() == 12
    note = phone.inner_text("#device-list-note")
    assert "12 trên 131 thiết bị" in note
    assert no_sideways_scroll(phone)
    shot(phone, "phone-campus-dashboard-vi")
    phone.fill("#device-list input[name=q]", "lan")
    phone.click("#device-list form[role=search] button")
    phone.wait_for_url("**/devices?q=lan")
    cards = phone.locator("section.card.device")
    assert cards.count() == 1 and "Máy tính bảng Lan" in cards.first.inner_text()
    assert "1 thiết bị khớp với “lan”" in phone.inner_text("#device-count")
    assert no_sideways_scroll(phone)
    phone.goto(stack.url + "/")
    phone.click("#all-devices")
    phone.wait_for_url("**/devices")
    assert phone.locator("section.card.device").count() == 50


def test_the_devices_page_pages_on_a_phone(stack, phone):
    phone.goto(stack.url + "/devices")
    assert "Trang 1 / 3" in phone.inner_text("nav.pager >> nth=0")
    assert phone.locator("section.card.device h2", has_text="pupil-050").count() == 0
    phone.locator("nav.pager >> nth=0").locator("a[rel=next]").click()
    phone.wait_for_url("**/devices?page=2")
    assert phone.locator("section.card.device h2", has_text="pupil-050").count() == 1
    assert "51–100 trên 131" in phone.inner_text("#device-count")
    assert no_sideways_scroll(phone)
    shot(phone, "phone-campus-devices-vi")
    phone.locator("nav.pager >> nth=-1").locator("a[rel=next]").click()       # the pager below the cards too
    phone.wait_for_url("**/devices?page=3")
    assert phone.locator("section.card.device").count() == 31 and phone.locator("a[rel=next]").count() == 0


def test_a_pause_on_search_results_comes_back_to_them_and_is_in_force(stack, phone):
    port = stack.engine.port
    phone.goto(stack.url + "/devices?q=Lan")
    card = phone.locator("section.card.device", has_text="Máy tính bảng Lan")
    card.locator("form:has(input[value=pause]) select[name=minutes]").select_option("15")
    card.locator("form:has(input[value=pause]) button").click()
    phone.wait_for_selector(".flash.ok")
    assert phone.url.endswith("/devices?q=Lan")
    card = phone.locator("section.card.device", has_text="Máy tính bảng Lan")
    assert "tạm dừng đến" in card.inner_text()
    assert wait_for(lambda: a_records(ask("www.example.com", port=port, source=KID)) == ["0.0.0.0"], 10,
                    "the pause")
    card.locator("form:has(input[value=resume]) button").click()
    phone.wait_for_selector(".flash.ok")
    assert phone.url.endswith("/devices?q=Lan")
    assert wait_for(lambda: a_records(ask("www.example.com", port=port, source=KID)) == ["192.0.2.10"], 10,
                    "the resume")
