"""The provider's web console in Debian's chromium: sign in with an API token, review a report, publish,
orders and fleet, Vietnamese and English; report notes, domains and order text are attacker-controlled and
render inert."""
from __future__ import annotations

import time

import pytest

CHROMIUM = "/usr/bin/chromium"
XSS_NOTE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_AUTHORITY = '<svg onload="window.__xss=3">Sở TT&TT'


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _sign_in(page, url: str, token: str) -> None:
    page.goto(url + "/console/login")
    page.fill("input[name=token]", token)
    page.click("button:has-text('Sign in'), button:has-text('Đăng nhập')")


def test_console_review_publish_orders_fleet_and_escaping(provider, browser):
    enrol = provider.enrolment_token("Trường <b>A</b>")
    admin = provider.token("alice", "admin")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    r = provider.api("POST", "/api/v1/enrol", json={"token": enrol, "appliance_id": "console-test-appliance-1"})
    app_token = r.json()["token"]
    r = provider.api("POST", "/api/v1/reports", app_token, json={"reports": [
        {"id": 1, "domain": "xss-test.example", "category": "adult", "note": XSS_NOTE, "time": time.time()}]})
    assert r.status_code == 200, r.text
    r = provider.api("POST", "/api/v1/orders", admin, json={"authority": XSS_AUTHORITY, "reference": "7/QĐ",
                                                            "category": "gambling", "domains": ["o.example"]})
    assert r.status_code == 201

    ctx = browser.new_context(locale="en-GB")
    page = ctx.new_page()
    page.goto(provider.url + "/console/")
    assert "/console/login" in page.url                       # signed out: the login page
    page.fill("input[name=token]", "hpu_wrong")
    page.click("button:has-text('Sign in')")
    assert "wrong or revoked" in page.inner_text("body")
    _sign_in(page, provider.url, reviewer)
    assert page.inner_text("h1") == "Review queue"
    row = page.locator("tr.report").first
    assert "xss-test.example" in row.inner_text()
    assert XSS_NOTE in page.inner_text(".note")                # shown as text
    assert page.evaluate("window.__xss") is None               # never run
    assert page.locator("#publish").count() == 0               # a reviewer cannot publish
    row.locator("select[name=action]").select_option("approve")
    row.locator("input[name=category]").fill("adult")
    row.locator("button").click()
    assert "Saved." in page.inner_text("body")
    assert page.locator("tr.report").count() == 0               # left the "new" queue
    ctx.close()

    ctx = browser.new_context(locale="vi-VN")
    page = ctx.new_page()
    _sign_in(page, provider.url, admin)
    assert page.inner_text("h1") == "Hàng chờ xét duyệt"        # Vietnamese from the browser's language
    page.click("#publish")
    assert "Đã phát hành phiên bản 1." in page.inner_text("body")
    page.goto(provider.url + "/console/orders")
    assert XSS_AUTHORITY in page.inner_text("#orders")
    assert page.evaluate("window.__xss") is None
    page.goto(provider.url + "/console/fleet")
    assert "console-test-appliance-1" in page.inner_text("#fleet") and "Trường <b>A</b>" in page.inner_text("#fleet")
    page.goto(provider.url + "/console/lang/en")
    page.goto(provider.url + "/console/fleet")
    assert page.inner_text("h1") == "Fleet"                    # the language switch sticks
    with page.expect_download() as dl:
        page.click("#export")
    assert "console-test-appliance-1" in open(dl.value.path(), encoding="utf-8").read()
    ctx.close()
    # the console's forms need the CSRF token: a forged post is refused
    import requests

    r = requests.post(provider.url + "/console/publish", timeout=10)
    assert r.status_code == 400
    doc = requests.get(provider.url + "/api/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.") and "/api/v1/reports/{id}/decision" in doc["paths"]
