"""In a real browser against a real `hearth dns` + `hearth web`: first run → wizard → child profile →
device → a DNS query is blocked → its block page → ask for access → the parent approves → allowed.
Then: attacker-controlled names in the query log and dashboard run no script; a viewer changes nothing;
both languages; screenshots of the main pages in tests/artifacts/."""
from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from tests.browser.conftest import a_records as _a, wait_for, shot
from tests.dnsclient import ask, exchange

PASSWORD = "a long family password"
KID = "127.0.0.1"      # a browser on this machine connects from 127.0.0.1: the child's device is that address




@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def page(context):
    p = context.new_page()
    p.dialogs = []
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.accept()))
    yield p
    p.close()


def _setup_code(stack) -> str:
    """What the installer sees: `hearth admin setup-code` on the machine (also in the web UI's log)."""
    res = subprocess.run([sys.executable, "-m", "resolver.cli", "admin", "setup-code", "-c",
                          str(stack.engine.config_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    code = res.stdout.strip()
    assert code in _wait(lambda: (stack.engine.tmp / "web.log").read_text(), what="the web log")
    return code


def test_first_run_to_approved_access(stack, page):
    page.goto(stack.url + "/")
    assert page.url.endswith("/setup")
    code = _setup_code(stack)
    # without the setup code (a child's tablet that reached the wizard first) nothing is set up
    page.fill("input[name=setup_code]", "AAAA-BBBB-CCCC")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button.primary")
    page.wait_for_selector("text=That is not the setup code")
    assert page.url.endswith("/setup")
    page.fill("input[name=setup_code]", code.lower())
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.select_option("select[name=language]", "en")
    page.fill("input[name=profile_name]", "Kids")
    page.select_option("select[name=preset]", "child")
    shot(page, "wizard-en")
    page.click("button.primary")
    page.wait_for_url("**/setup/done")
    assert "point your router at Hearth" in page.content()
    shot(page, "wizard-done-en")

    # lists: compile the subscribed list from the UI, with progress
    page.goto(stack.url + "/lists")
    page.click("#lists-update button")
    page.wait_for_selector("text=test-gambling", timeout=30000)
    assert "Finished with errors" not in page.content()
    shot(page, "lists-en")

    # the child's device
    page.goto(stack.url + "/devices")
    page.fill("#add input[name=name]", "An tablet")
    page.fill("#add input[name=identity]", KID)
    page.select_option("#add select[name=profile]", "Kids")
    page.click("#add button.primary")
    page.wait_for_selector("text=Device added.")

    port = stack.engine.port
    blocked = _wait(lambda: _a(ask("bet.example", port=port, source=KID)) == ["0.0.0.0"], what="the block")
    assert blocked and _a(ask("www.example.com", port=port, source=KID)) == ["192.0.2.10"]

    # the block page the child sees
    page.goto(stack.url + "/blocked?domain=bet.example")
    text = page.inner_text("main")
    assert "This site is blocked" in text and "bet.example" in text
    assert "Gambling" in text and "An tablet" in text and "Kids" in text, text
    assert "111" in text
    shot(page, "blockpage-en")
    page.fill("textarea[name=message]", "I need it for a school project about probability")
    page.click("form[action='/blocked/ask'] button")
    page.wait_for_selector("text=Your request was sent")

    # the parent approves for 30 minutes
    page.goto(stack.url + "/requests")
    assert "school project" in page.inner_text("main")
    shot(page, "requests-en")
    page.click("button[value='30m']")
    page.wait_for_selector("text=Answer saved.")
    allowed = _wait(lambda: _a(ask("bet.example", port=port, source=KID)) == ["192.0.2.77"], what="the allow")
    assert allowed
    page.goto(stack.url + "/blocked?domain=bet.example")
    assert "Your parent said yes until" in page.inner_text("main")


def _raw_query(labels: list[bytes], qid: int = 0x4242) -> bytes:
    name = b"".join(bytes((len(lbl),)) + lbl for lbl in labels) + b"\x00"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)


def test_hostile_names_are_shown_escaped_and_run_nothing(stack, page):
    evil = [b"<script>alert(1)</script>", b"\"'><img src=x onerror=alert(2)>", b"\xff\xfe\x01", b"example"]
    exchange(_raw_query(evil), stack.engine.port, source="127.0.0.1")
    exchange(_raw_query([b"<script>alert(3)</script>", b"casino", b"example"]), stack.engine.port)

    def logged():
        page.goto(stack.url + "/querylog")
        return "alert(1)" in page.inner_text("#log")
    _wait(logged, timeout=8, what="the query log to show the hostile name")
    text = page.inner_text("#log")
    assert "<script>alert(1)</script>" in text and "\\xff\\xfe\\x01" in text
    assert page.locator("#log img").count() == 0 and page.locator("#log script").count() == 0
    page.goto(stack.url + "/")
    page.wait_for_timeout(300)
    shot(page, "dashboard-en")
    page.goto(stack.url + "/querylog")
    page.wait_for_timeout(2500)            # a live-tail round builds rows in the browser too
    shot(page, "querylog-en")
    assert page.dialogs == [], page.dialogs


def test_main_pages_in_both_languages(stack, page):
    for lang in ("en", "vi"):
        page.goto(f"{stack.url}/lang/{lang}?next=/")
        for path, name in (("/", "dashboard"), ("/devices", "devices"), ("/profiles/Kids", "profile"),
                           ("/schedules?profile=Kids", "schedules"), ("/settings", "settings"),
                           ("/blocked?domain=bet.example", "blockpage-after"), ("/report", "report")):
            page.goto(stack.url + path)
            assert page.locator("html").get_attribute("lang") == lang
            if lang == "vi" and path == "/":
                assert "Hearth đang bảo vệ" in page.inner_text("main")
            shot(page, f"{name}-{lang}")
    page.goto(stack.url + "/lang/en?next=/")
    assert page.dialogs == []


def test_block_page_in_vietnamese_for_a_blocked_name(stack, browser):
    ctx = browser.new_context(locale="vi-VN", viewport={"width": 412, "height": 915})      # a phone
    kid = ctx.new_page()
    kid.goto(stack.url + "/blocked?domain=casino.example")
    assert "This site is blocked" in kid.inner_text("main")     # the language the parent chose in the wizard
    kid.click("text=Tiếng Việt")                                 # the child switches
    kid.wait_for_url("**/blocked?domain=casino.example")
    text = kid.inner_text("main")
    assert "Trang này bị chặn" in text and "Cờ bạc" in text and "Tổng đài quốc gia bảo vệ trẻ em" in text
    shot(kid, "blockpage-vi")
    ctx.close()


def test_csrf_and_viewer_in_the_browser(stack, browser, page):
    page.goto(stack.url + "/users")
    page.fill("form:has(input[value=add]) input[name=name]", "grandma")
    page.fill("form:has(input[value=add]) input[name=password]", PASSWORD)
    page.select_option("form:has(input[value=add]) select[name=role]", "viewer")
    page.click("form:has(input[value=add]) button")
    page.wait_for_selector("text=User added.")
    ctx = browser.new_context(locale="en-US")
    viewer = ctx.new_page()
    viewer.goto(stack.url + "/login")
    viewer.fill("input[name=username]", "grandma")
    viewer.fill("input[name=password]", PASSWORD)
    viewer.click("button.primary")
    viewer.goto(stack.url + "/profiles/Kids")
    assert viewer.locator("fieldset[disabled]").count() == 1 and viewer.locator("text=Save profile").count() == 0
    # a forged POST (no token) and a viewer's POST (with a token) are both refused
    status = viewer.evaluate("""async () => {
        const r1 = await fetch('/profiles/Kids', {method: 'POST', body: new URLSearchParams({action: 'remove'})});
        const token = document.querySelector('meta[name=csrf-token]').content;
        const r2 = await fetch('/profiles/Kids', {method: 'POST',
            body: new URLSearchParams({action: 'remove', csrf_token: token})});
        return [r1.status, r2.status];
    }""")
    assert status == [400, 403]
    viewer.goto(stack.url + "/profiles")
    assert "Kids" in viewer.inner_text("main")
    ctx.close()


def _wait(fn, timeout: float = 6.0, what: str = ""):
    return wait_for(fn, timeout, what)
