"""In a real browser: a ticked category that no list covers says "0 names: add a list or a feed" next to its
tick box, in the setup wizard's profile step and on the profile page (in English and Vietnamese).

The stack (tests/browser/conftest.py) has the bundled starter lists off and one subscribed list of category
gambling, so of the child preset's categories only gambling has names.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.browser.conftest import setup_code, shot

PASSWORD = "a long family password"
WARNING = "0 names: add a list or a feed"
WARNING_VI = "0 tên miền: hãy thêm danh sách hoặc nguồn cấp"


@pytest.fixture(scope="module")
def page(browser):
    ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    p = ctx.new_page()
    yield p
    ctx.close()


def _box(page, selector: str, label: str):
    """The tick box's label element whose text starts with ``label`` inside ``selector``."""
    return page.locator(f"{selector} label").filter(has_text=label).first


def _cli(stack, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "resolver.cli", *args, "-c", str(stack.engine.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_wizard_and_profile_page_flag_ticked_categories_without_names(stack, page):
    _cli(stack, "lists", "update")          # the subscribed gambling list is downloaded and compiled
    page.goto(stack.url + "/setup")
    page.select_option("select[name=language]", "en")
    page.select_option("select[name=preset]", "child")
    child = "#wizard .preset-categories[data-preset=child]"
    assert page.is_visible(child)
    social = _box(page, child, "Social networks")
    assert social.is_visible() and WARNING in social.inner_text()
    assert social.locator(".no-names").is_visible()
    gambling = _box(page, child, "Gambling")
    assert gambling.is_visible() and WARNING not in gambling.inner_text()
    shot(page, "wizard-no-names-en")
    # another age group: its own categories are shown (the teen preset does not tick social networks)
    page.select_option("select[name=preset]", "teen")
    assert not page.is_visible(child)
    teen = "#wizard .preset-categories[data-preset=teen]"
    assert page.is_visible(teen) and _box(page, teen, "Drugs").locator(".no-names").is_visible()
    assert _box(page, teen, "Social networks").count() == 0
    page.select_option("select[name=preset]", "child")

    page.fill("input[name=setup_code]", setup_code(stack))
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.fill("input[name=profile_name]", "Kids")
    page.click("button.primary")
    page.wait_for_url("**/setup/done")

    # a custom category nobody has a list for, ticked from the CLI
    _cli(stack, "profile", "set", "Kids", "--add-categories", "homework")

    page.goto(stack.url + "/profiles/Kids")
    cats = ".profile-form .toggles"
    social = _box(page, cats, "Social networks")
    assert social.locator("input").is_checked()
    assert social.locator(".no-names").is_visible() and WARNING in social.inner_text()
    gambling = _box(page, cats, "Gambling")
    assert gambling.locator("input").is_checked() and gambling.locator(".no-names").count() == 0
    homework = _box(page, cats, "homework")
    assert homework.locator("input").is_checked() and homework.locator(".no-names").is_visible()
    shot(page, "profile-no-names-en")
    # the warning follows the tick: an unticked empty category says nothing, ticking it shows the warning
    games = _box(page, cats, "Games")
    assert not games.locator("input").is_checked() and not games.locator(".no-names").is_visible()
    games.locator("input").check()
    assert games.locator(".no-names").is_visible()
    social.locator("input").uncheck()
    assert not social.locator(".no-names").is_visible()
    # it links to the lists page, where lists and the feed are shown
    assert homework.locator("a.no-names").get_attribute("href").endswith("/lists")

    # in Vietnamese
    page.goto(stack.url + "/profiles/Kids")
    page.click("a.lang[lang=vi]")
    page.wait_for_load_state()
    assert WARNING_VI in page.inner_text(".profile-form")
    shot(page, "profile-no-names-vi")
