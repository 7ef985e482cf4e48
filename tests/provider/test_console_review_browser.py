"""The provider console's review tools in Debian's chromium: the queue filtered by registrable domain and kind,
bulk actions (select several, approve into a category / reject / defer), the report detail page (notes are
attacker-controlled and render inert), the users page (change a role) and the audit page, English and
Vietnamese."""
from __future__ import annotations

import time

import requests

from tests.provider.test_console_browser import _sign_in, browser  # noqa: F401  (the module's chromium)

XSS_NOTE = '"><img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def test_bulk_review_detail_users_and_audit(provider, browser):  # noqa: F811
    enrol = provider.enrolment_token("Sở GD&ĐT")
    admin = provider.token("alice", "admin")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    app_token = provider.api("POST", "/api/v1/enrol", json={"token": enrol, "appliance_id": "console-review-0001"}) \
        .json()["token"]
    now = time.time()
    r = provider.api("POST", "/api/v1/reports", app_token, json={"reports": [
        {"id": 1, "domain": "a.bad.example", "category": "gambling", "note": "casino", "time": now},
        {"id": 2, "domain": "b.bad.example", "category": "gambling", "time": now},
        {"id": 3, "domain": "xss.other.example", "category": "adult", "note": XSS_NOTE, "time": now},
        {"id": 4, "domain": "spare.example", "category": "other", "time": now}]})
    assert r.status_code == 200, r.text
    r = provider.api("POST", "/api/v1/unblocks", app_token, json={"requests": [
        {"id": 1, "domain": "school.example", "note": "our school", "time": now}]})
    assert r.json()["new"] == 1

    ctx = browser.new_context(locale="en-GB")
    page = ctx.new_page()
    _sign_in(page, provider.url, reviewer)
    assert page.locator("tr.report").count() == 5
    row = page.locator("tr.report", has_text="a.bad.example")
    assert "bad.example" in row.locator(".registrable").inner_text() and "2 names" in row.inner_text()
    row.locator(".registrable a").click()                            # only the names under bad.example
    assert "Only names under bad.example" in page.inner_text("#registrable-filter")
    assert sorted(page.locator("tr.report .domain a").all_inner_texts()) == ["a.bad.example", "b.bad.example"]
    page.check("#select-all")                                        # select both, approve into gambling
    page.select_option("#bulk select[name=action]", "approve")
    page.fill("#bulk input[name=category]", "gambling")
    page.click("#bulk-apply")
    assert "Saved 2 decisions." in page.inner_text("body")
    assert page.locator("tr.report").count() == 0 and "bad.example" in page.inner_text("#registrable-filter")
    page.click("#registrable-filter a")
    assert page.locator("tr.report").count() == 3

    # bulk reject needs a reason: refused with the reason why, nothing changes
    page.locator("tr.report", has_text="spare.example").locator("input[name=ids]").check()
    page.select_option("#bulk select[name=action]", "reject")
    page.click("#bulk-apply")
    assert "say why" in page.inner_text("body") and page.locator("tr.report").count() == 3
    page.locator("tr.report", has_text="spare.example").locator("input[name=ids]").check()
    page.select_option("#bulk select[name=action]", "defer")
    page.click("#bulk-apply")
    assert "Saved 1 decisions." in page.inner_text("body") and page.locator("tr.report").count() == 2

    # the unblock request is in the same queue, kind unblock
    page.click("#kind-filter a:has-text('Unblock requests')")
    assert page.locator("tr.report.unblock").count() == 1
    assert page.locator("tr.report").count() == 1 and "school.example" in page.inner_text("#queue")

    # the report detail page: the note is text, never markup; decide from there
    page.goto(provider.url + "/console/?kind=report")
    page.click("tr.report .domain a:has-text('xss.other.example')")
    assert page.inner_text("#domain") == "xss.other.example"
    assert XSS_NOTE in page.inner_text("#items")
    assert page.locator("#items img").count() == 0 and page.evaluate("window.__xss") is None
    page.select_option("#decision select[name=action]", "reject")
    page.fill("#decision input[name=reason]", "<i>not harmful</i>")
    page.click("#decision button")
    assert "Saved." in page.inner_text("body")
    assert "<i>not harmful</i>" in page.inner_text("#facts") and page.locator("#facts i").count() == 0
    assert "report.reject" in page.inner_text("#history")

    # a reviewer sees the users but cannot change roles
    page.goto(provider.url + "/console/users")
    assert "rita" in page.inner_text("#users") and page.locator("#users select").count() == 0
    assert requests.post(provider.url + "/console/users/role", data={"name": "rita", "role": "admin"},
                         timeout=10).status_code == 400                # no CSRF token: refused
    ctx.close()

    ctx = browser.new_context(locale="vi-VN")
    page = ctx.new_page()
    _sign_in(page, provider.url, admin)
    page.goto(provider.url + "/console/users")
    assert page.inner_text("h1") == "Người dùng"
    row = page.locator("tr.user", has_text="rita")
    row.locator("select[name=role]").select_option("publisher")
    row.locator("button").click()
    assert "rita" in page.inner_text(".flash.ok")
    users = {u["name"]: u["role"] for u in provider.api("GET", "/api/v1/users", admin).json()}
    assert users["rita"] == "publisher"
    row = page.locator("tr.user", has_text="alice")
    row.locator("select[name=role]").select_option("auditor")
    row.locator("button").click()
    assert "last admin" in page.inner_text(".flash.error")
    page.goto(provider.url + "/console/audit")
    assert page.inner_text("h1") == "Nhật ký thao tác"
    page.fill("input[name=action]", "user.role")
    page.click("form.inline button")
    text = page.inner_text("#audit")
    assert "reviewer -> publisher" in text and "report.approve" not in text
    assert XSS_NOTE not in text and page.evaluate("window.__xss") is None
    ctx.close()
