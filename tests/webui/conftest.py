"""Fixtures for the web UI's Flask test-client tests: an app on a fresh data folder, signed-in clients."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from resolver.service.config import Config, WebConfig
from resolver.policy.blocking import BlockingConfig
from webui import create_app

PASSWORD = "correct horse battery"


def make_config(tmp: Path, **web) -> Config:
    # no engine runs: the control socket is absent; upstreams are never used by the UI
    return Config(data_dir=str(tmp / "data"), blocking=BlockingConfig(starter_lists=False), web=WebConfig(**web))


@pytest.fixture
def app(tmp_path):
    app = create_app(make_config(tmp_path))
    app.config["TESTING"] = True
    yield app
    store = app.extensions.get("hearth_store")
    if store is not None:
        store.close()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"',
                                                                           html)
    assert m, "no CSRF token on the page"
    return m.group(1)


class Browser:
    """A test client that fills in the page's CSRF token like a browser submitting its form."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def get(self, url, **kw):
        resp = self.client.get(url, **kw)
        if resp.mimetype == "text/html":
            try:
                self.token = csrf_of(resp.get_data(as_text=True))
            except AssertionError:
                pass
        return resp

    def post(self, url, data=None, page=None, **kw):
        if self.token is None or page:
            self.get(page or "/login")
        data = dict(data or {})
        data.setdefault("csrf_token", self.token)
        return self.client.post(url, data=data, **kw)

    def api(self, method, url, json=None, **kw):
        if self.token is None:
            self.get("/account")
        return self.client.open(url, method=method, json=json, headers={"X-CSRFToken": self.token}, **kw)


def setup_code_of(browser: Browser) -> str:
    """The one-time setup code, as `hearth admin setup-code` reads it (the wizard's page makes it)."""
    from webui.setupcode import read_code

    return read_code(browser.client.application.config["HEARTH"].data_dir) or ""


def run_wizard(browser: Browser, headers: dict | None = None, **fields) -> object:
    browser.get("/setup")
    data = {"setup_code": setup_code_of(browser), "username": "admin", "password": PASSWORD,
            "password2": PASSWORD, "language": "en", "timezone": "Asia/Ho_Chi_Minh", "upstream": "quad9",
            "profile_name": "Kids", "preset": "child", "device_name": "", "device_id": ""}
    data.update(fields)
    return browser.post("/setup", data, headers=headers or {})


@pytest.fixture
def admin(app):
    b = Browser(app.test_client())
    resp = run_wizard(b)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    b.get("/")
    return b


@pytest.fixture
def viewer(app, admin):
    from webui.auth import hash_password

    with app.app_context():
        from webui import core
        core.store().add_user("grandma", hash_password(PASSWORD), "viewer")
    b = Browser(app.test_client())
    resp = b.post("/login", {"username": "grandma", "password": PASSWORD}, page="/login")
    assert resp.status_code == 302
    b.get("/")
    return b
