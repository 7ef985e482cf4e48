"""Vietnamese and English: the catalogue is complete and compiled, pages render in both, switchable,
with local dates and numbers."""
from __future__ import annotations

import time
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from resolver.store.protocol import QueryRow
from tests.webui.conftest import Browser
from webui import core

WEBUI = Path(__file__).resolve().parents[2] / "webui"
PO = WEBUI / "translations" / "vi" / "LC_MESSAGES" / "messages.po"


def _key(text):
    return tuple(text) if isinstance(text, (list, tuple)) else text


def _source_messages() -> set:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(WEBUI), method_map, keywords={"_": None, "gettext": None, "_l": None, "lazy_gettext": None,
                                              "ngettext": (1, 2)}):
        found.add(_key(message))
    return found


def test_vietnamese_catalogue_is_complete_and_compiled():
    po = read_po(PO.open("rb"))
    translated = {_key(m.id): _key(m.string) for m in po if m.id}
    missing = sorted(_source_messages() - set(translated))
    assert not missing, f"add these to {PO} and recompile the .mo: {missing}"
    assert all(translated.values()), [k for k, v in translated.items() if not v]
    mo = read_mo(PO.with_suffix(".mo").open("rb"))
    assert {_key(m.id): _key(m.string) for m in mo if m.id} == translated, "messages.mo is stale: recompile it"


def test_pages_render_in_both_languages(app, admin):
    with app.app_context():
        core.store().add_queries([QueryRow(time.time(), "10.0.0.7", f"n{i}.example", 1, 0, "", "", 1.0, False,
                                           None) for i in range(1234)])
    en = admin.get("/").get_data(as_text=True)
    assert "Hearth is protecting 1 device" in en and "1,234" in en and 'lang="en"' in en
    admin.get("/lang/vi?next=/")
    vi = admin.get("/").get_data(as_text=True)
    assert 'lang="vi"' in vi and "Hearth đang bảo vệ 1 thiết bị" in vi and "1.234" in vi
    for url in ("/devices", "/profiles", "/profiles/Kids", "/schedules", "/querylog", "/requests", "/lists",
                "/settings", "/users", "/audit", "/account"):
        page = admin.get(url).get_data(as_text=True)
        assert admin.get(url).status_code == 200 and "Đăng xuất" in page, url
    assert "Cờ bạc" in admin.get("/profiles/Kids").get_data(as_text=True)
    kid = Browser(app.test_client())
    kid.get("/lang/vi?next=/blocked")
    page = kid.get("/blocked?domain=bet.example").get_data(as_text=True)
    assert "Trang này bị chặn" in page and "Xin phép bố mẹ" in page and "111" in page
    kid.get("/lang/en")
    assert "This site is blocked" in kid.get("/blocked?domain=bet.example").get_data(as_text=True)


def test_language_follows_the_browser_then_the_wizard_choice(app):
    c = app.test_client()
    assert "Trang này bị chặn" in c.get("/blocked?domain=a.example",
                                        headers={"Accept-Language": "vi-VN,vi;q=0.9"}).get_data(as_text=True)
    assert "This site is blocked" in c.get("/blocked?domain=a.example",
                                           headers={"Accept-Language": "en-GB"}).get_data(as_text=True)
    with app.app_context():
        core.store().set_setting("language", "vi")
    assert "Trang này bị chặn" in c.get("/blocked?domain=a.example",
                                        headers={"Accept-Language": "en-GB"}).get_data(as_text=True)


def test_dates_are_local(app):
    from webui.i18n import when

    ts = 1_750_000_000.0          # 2025-06-15 15:06:40 UTC = 22:06 in Ho Chi Minh City
    with app.test_request_context("/", headers={"Accept-Language": "vi"}):
        assert "22:06" in when(ts) and "15/6/25" in when(ts)
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert "10:06" in when(ts) and "PM" in when(ts)
