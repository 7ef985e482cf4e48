"""Time budgets on a 390×844 phone, in Vietnamese, against a real `hearth dns` + `hearth web`: a parent adds a
Roblox budget on the profile page, the dashboard shows the minutes used and left, and "+15 phút" gives more time
when it is used up. Nothing scrolls sideways. Screenshots in tests/artifacts/."""
from __future__ import annotations

import time

import pytest

from resolver.policy.budgets import BudgetUsage, budget_day
from resolver.store.sqlite import open_store
from tests.browser.conftest import shot
from tests.browser.test_phone import PHONE, no_sideways_scroll, set_up_hearth


@pytest.fixture(scope="module")
def phone(browser, stack):
    ctx = browser.new_context(locale="vi-VN", viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    p = ctx.new_page()
    set_up_hearth(p, stack, "vi")
    yield p
    ctx.close()


def test_a_parent_sets_a_budget_and_sees_minutes_used_and_left(stack, phone):
    phone.goto(stack.url + "/profiles/Kids")
    form = phone.locator("#budgets")
    assert "Giới hạn thời gian" in form.inner_text() and "không phải thời gian nhìn màn hình" in form.inner_text()
    phone.select_option("#budgets select[name=new_target]", "service:roblox")
    phone.fill("#budgets input[name=new_minutes]", "60")
    phone.fill("#budgets input[name=new_weekend]", "120")
    phone.click("#budgets button.primary")
    phone.wait_for_selector(".flash.ok")
    assert "Đã lưu giới hạn thời gian." in phone.locator(".flash.ok").inner_text()
    row = phone.locator("#budgets tr[data-target='service:roblox']")
    assert "Roblox" in row.inner_text()
    assert row.locator("input[name=minutes]").input_value() == "60"
    assert row.locator("input[name=weekend]").input_value() == "120"
    assert no_sideways_scroll(phone), "the profile page scrolls sideways at 390 px"
    box = phone.locator("#budgets button.primary").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    shot(phone, "phone-budgets-form-vi")
    # a bad value: a clear error, in Vietnamese or naming the field, nothing changed
    phone.fill("#budgets tr[data-target='service:roblox'] input[name=minutes]", "5000")
    phone.evaluate("document.querySelectorAll('#budgets input[type=number]').forEach(i => i.removeAttribute('max'))")
    phone.click("#budgets button.primary")
    phone.wait_for_selector(".flash.error")
    assert "1440" in phone.locator(".flash.error").inner_text()

    phone.goto(stack.url + "/")
    # the dashboard's hourly chart is drawn by uPlot too (the SVG stays for pages without JavaScript)
    phone.wait_for_selector("figure.chart.drawn #hours-chart canvas", timeout=10000)
    assert not phone.locator("figure.chart > svg").is_visible()
    labels = phone.evaluate("""() => [...document.querySelectorAll('#hours-chart .u-axis')].length""")
    assert labels >= 1
    card = phone.locator("#budgets-today")
    assert "Giới hạn thời gian hôm nay" in card.inner_text() and "còn" in card.inner_text()
    assert "Roblox" in card.inner_text()
    # the child has used it all (as the engine's meter writes it): "đã hết" and a +15 button
    store = open_store(str(stack.engine.data_dir))
    try:
        import datetime
        from zoneinfo import ZoneInfo
        days = {budget_day(time.time(), tz)[0].isoformat() for tz in (ZoneInfo("Asia/Ho_Chi_Minh"),
                                                                     datetime.timezone.utc)}
        store.save_budget_usage([BudgetUsage("Kids", "service:roblox", day, 130, updated=time.time())
                                 for day in days])
    finally:
        store.close()
    phone.reload()
    card = phone.locator("#budgets-today")
    assert "đã hết" in card.inner_text()
    assert no_sideways_scroll(phone), "the dashboard scrolls sideways at 390 px"
    shot(phone, "phone-budgets-dashboard-vi")
    card.locator("button", has_text="+15 phút").click()
    phone.wait_for_selector(".flash.ok")
    assert "Thêm 15 phút cho hôm nay." in phone.locator(".flash.ok").inner_text()


def test_the_weekly_report_draws_its_chart_on_a_phone(stack, phone):
    from resolver.store.protocol import QueryRow

    phone.goto(stack.url + "/devices")
    phone.fill("#add input[name=name]", "Máy tính bảng")
    phone.fill("#add input[name=identity]", "127.0.0.9")
    phone.select_option("#add select[name=profile]", "Kids")
    phone.click("#add button.primary")
    phone.wait_for_selector(".flash.ok")
    start = (int(time.time()) // 3600 - 1) * 3600
    store = open_store(str(stack.engine.data_dir))
    try:
        store.add_queries([QueryRow(start + m * 60 + k, "127.0.0.9", name, 1, 0, "", "", 1.0, False, None)
                           for m in range(20) for k, name in enumerate(("www.roblox.com", f"t{m % 3}.rbxcdn.com"))])
    finally:
        store.close()
    phone.goto(stack.url + "/profiles/Kids/report")
    phone.wait_for_selector("#usage-chart.drawn canvas", timeout=10000)
    text = phone.locator("main").inner_text()
    assert "Số phút mỗi ứng dụng mỗi ngày" in text and "Roblox" in text
    box = phone.locator("#usage-chart canvas").bounding_box()
    assert box["width"] <= PHONE["width"] and box["height"] > 100
    assert no_sideways_scroll(phone), "the weekly report scrolls sideways at 390 px"
    shot(phone, "phone-week-report-vi")
    # the day labels under the chart do not overlap (narrow names on a phone)
    labels = phone.evaluate("""() => [...document.querySelectorAll('#usage-chart .u-axis')].length""")
    assert labels >= 1
    assert phone.evaluate("document.querySelector('main').scrollWidth <= window.innerWidth")


def test_a_used_up_budget_the_block_page_and_15_more_minutes(stack, browser, phone):
    """Through `hearth dns` + `hearth web`: TikTok with 0 minutes today is blocked with "time budget"; the
    child asks for 15 more minutes on the block page; the parent gives them; TikTok opens."""
    from tests.dnsclient import ask, ede

    port, kid_ip = stack.engine.port, "127.0.0.1"
    store = open_store(str(stack.engine.data_dir))
    try:
        from resolver.policy.budgets import Budget
        from resolver.policy.profiles import Device

        store.add_device(Device(name="Điện thoại", kind="ip", value=kid_ip, profile="Kids"))
        store.set_budget(Budget("Kids", "service:tiktok", 0, 0))       # none today, whatever day it is
    finally:
        store.close()

    def answer():
        return ask("www.tiktok.com", "A", port, source=kid_ip)

    deadline = time.monotonic() + 10
    while not (ede(answer()) or (0, ""))[1].startswith("time budget for TikTok"):
        assert time.monotonic() < deadline, "not blocked with the time budget's reason"
        time.sleep(0.2)
    kid_ctx = browser.new_context(locale="vi-VN", viewport=PHONE)
    kid = kid_ctx.new_page()
    kid.goto(stack.url + "/lang/vi?next=/blocked?domain=www.tiktok.com")
    text = kid.inner_text("main")
    assert "Thời gian hôm nay cho mục này đã hết" in text and "TikTok" in text
    kid.click("form[action='/blocked/ask'] button:has-text('Xin thêm 15 phút')")
    kid.wait_for_selector(".flash.warn")
    shot(kid, "phone-blockpage-budget-vi")

    phone.goto(stack.url + "/requests")
    phone.locator("button[value=more]", has_text="Cho thêm 15 phút hôm nay").first.click()
    phone.wait_for_selector(".flash.ok")
    deadline = time.monotonic() + 10
    while (ede(answer()) or (0, ""))[1].startswith("time budget"):
        assert time.monotonic() < deadline, "still blocked after the 15 more minutes"
        time.sleep(0.2)
    phone.goto(stack.url + "/")
    row = phone.locator("#budgets-today li[data-target='service:tiktok']")
    assert "còn 15 phút" in row.inner_text()
    kid_ctx.close()


def test_the_device_report_draws_minutes_per_app_per_day_on_a_phone(stack, phone):
    """The device's weekly report: the same uPlot chart and counting as the profile's, at 390×844, in
    Vietnamese; the day labels fit and do not overlap; nothing scrolls sideways."""
    import json

    from resolver.store.protocol import QueryRow

    from tests.browser.test_phone import _overlap, chart_axis_labels

    phone.goto(stack.url + "/devices")
    phone.fill("#add input[name=name]", "Điện thoại của Bé")
    phone.fill("#add input[name=identity]", "127.0.0.11")
    phone.select_option("#add select[name=profile]", "Kids")
    phone.click("#add button.primary")
    phone.wait_for_selector(".flash.ok")
    start = (int(time.time()) // 3600 - 2) * 3600
    store = open_store(str(stack.engine.data_dir))
    try:
        store.add_queries([QueryRow(start + m * 60 + k, "127.0.0.11", name, 1, 0, "", "", 1.0, False, None)
                           for m in range(15) for k, name in enumerate(("www.roblox.com", f"t{m % 3}.rbxcdn.com"))])
    finally:
        store.close()
    phone.goto(stack.url + "/devices/" + "Điện thoại của Bé" + "/report")
    phone.wait_for_selector("#usage-chart.drawn canvas", timeout=10000)
    text = phone.locator("main").inner_text()
    assert "Số phút mỗi ứng dụng mỗi ngày" in text and "Roblox" in text
    data = json.loads(phone.locator("#usage-data").text_content())
    assert {s["label"]: sum(s["minutes"]) for s in data["services"]}["Roblox"] == 15
    box = phone.locator("#usage-chart canvas").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] and box["height"] > 100
    labels = chart_axis_labels(phone, "usage-chart")
    assert len(labels) == 7 and all(lab["text"] for lab in labels), labels
    for lab in labels:
        assert lab["x"] >= 0 and lab["x"] + lab["width"] <= box["width"], labels
    assert not any(_overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]), labels
    assert no_sideways_scroll(phone), "the device report scrolls sideways at 390 px"
    shot(phone, "phone-device-report-vi")


def test_a_parent_gives_friday_its_own_minutes_on_a_phone(stack, phone):
    """The budget row's "own minutes on some weekdays": seven small fields that fit a 390 px screen."""
    phone.goto(stack.url + "/profiles/Kids")
    phone.select_option("#budgets select[name=new_target]", "category:games")
    phone.fill("#budgets input[name=new_minutes]", "45")
    new_days = phone.locator("#budgets tr.days.new details")
    new_days.locator("summary").click()
    assert "Số phút riêng cho một số ngày trong tuần" in new_days.inner_text()
    phone.fill("#budgets input[name='new_days:fri']", "90")
    fields = new_days.locator("input[type=number]")
    assert fields.count() == 7
    for i in range(7):
        box = fields.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert no_sideways_scroll(phone), "the weekday fields scroll sideways at 390 px"
    shot(phone, "phone-budgets-weekdays-vi")
    phone.click("#budgets button.primary")
    phone.wait_for_selector(".flash.ok")
    row_days = phone.locator("#budgets tr[data-target='category:games'] + tr.days")
    assert "T6 90" in row_days.locator("summary").inner_text()
    assert row_days.locator("input[name='days:category:games:fri']").input_value() == "90"
    # a day's bad minutes: the error names the day as the form does
    phone.fill("#budgets input[name='days:category:games:sat']", "2000")
    phone.evaluate("document.querySelectorAll('#budgets input[type=number]').forEach(i => i.removeAttribute('max'))")
    phone.click("#budgets button.primary")
    phone.wait_for_selector(".flash.error")
    assert "T7" in phone.locator(".flash.error").inner_text() and "2000" in phone.locator(".flash.error").inner_text()
    store = open_store(str(stack.engine.data_dir))
    try:
        games = {b.target: b for b in store.list_budgets("Kids")}["category:games"]
    finally:
        store.close()
    assert games.minutes == 45 and games.day_map() == {"fri": 90}
