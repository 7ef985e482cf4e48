"""The parent stays in charge (issue 13, security part): a child's device cannot lock the admin out,
no off-site redirects, sessions that really end, same-origin checks on changes."""
from __future__ import annotations

import time
from urllib.parse import unquote

import pytest

from tests.webui.conftest import PASSWORD, Browser, make_config, run_wizard
from webui import core, create_app, throttle

CHILD, PARENT = "192.168.1.23", "192.168.1.10"


def device(app, address: str) -> Browser:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Browser(client)


def sign_in(b: Browser, password: str = PASSWORD, name: str = "admin", next_: str = ""):
    return b.post("/login" + (f"?next={next_}" if next_ else ""), {"username": name, "password": password},
                  page="/login")


# -- 1: throttling per address and per account ------------------------------------------------------------

def test_a_child_hammering_the_admin_account_cannot_lock_the_parent_out(app, admin):
    kid = device(app, CHILD)
    statuses = [sign_in(kid, f"guess{i}").status_code for i in range(12)]
    assert statuses == [401] * 12
    locked = sign_in(kid, PASSWORD)             # even the right password: this address waits
    assert locked.status_code == 401 and "Too many failed sign-ins" in locked.get_data(as_text=True)
    # X-Forwarded-For is not trusted: claiming another address changes nothing
    spoofed = kid.post("/login", {"username": "admin", "password": PASSWORD},
                       headers={"X-Forwarded-For": PARENT})
    assert spoofed.status_code == 401

    parent = device(app, PARENT)                 # the parent's phone, never used before
    ok = sign_in(parent)
    assert ok.status_code == 302 and ok.location == "/"
    page = parent.get("/").get_data(as_text=True)
    assert 'id="sign-in-failures"' in page and CHILD in page and "address locked until" in page
    parent.get("/lang/vi?next=/")
    page = parent.get("/").get_data(as_text=True)
    assert "Đăng nhập thất bại" in page and "địa chỉ bị khóa đến" in page
    with app.app_context():
        actions = [(e.action, e.user, e.target) for e in core.store().list_audit(50)]
    assert actions.count(("login.failed", CHILD, "admin")) == 5   # later tries were refused unchecked
    assert ("login.locked", CHILD, "admin") in actions


def test_the_wait_grows_with_each_failure_and_a_success_resets_it(app, admin):
    cfg = app.config["HEARTH"].web
    now = time.time()
    with app.test_request_context("/login"):
        for i in range(cfg.login_max_failures):
            throttle.record("admin", CHILD, False, now=now + i)
        first = throttle.lock_for("admin", CHILD, False, now=now + 10)
        assert first.scope == "address" and first.until == pytest.approx(now + 4 + cfg.login_lockout)
        throttle.record("admin", CHILD, False, now=first.until + 1)          # one more after the wait
        second = throttle.lock_for("admin", CHILD, False, now=first.until + 2)
        assert second.until - (first.until + 1) == pytest.approx(2 * cfg.login_lockout)
        assert throttle.lock_for("admin", PARENT, False, now=first.until + 2) is None
        throttle.record("admin", CHILD, True, now=second.until + 1)
        assert throttle.lock_for("admin", CHILD, False, now=second.until + 2) is None
    assert throttle.address_key("2001:db8:1:2:aaaa::1") == throttle.address_key("2001:db8:1:2:bbbb::9")


def test_guessing_from_many_addresses_slows_the_account_but_not_a_known_device(app, admin):
    assert admin.client.get_cookie("hearth_device") is not None      # the wizard's browser is known
    parent = device(app, PARENT)
    assert sign_in(parent).status_code == 302           # this browser now carries the known-device cookie
    parent.post("/logout", {})
    cfg = app.config["HEARTH"].web
    for i in range(cfg.login_max_failures * throttle.ACCOUNT_FACTOR):   # a device changing its address
        assert sign_in(device(app, f"10.9.{i // 200}.{i % 200 + 1}"), "guess").status_code == 401
    stranger = sign_in(device(app, "10.9.9.9"), PASSWORD)
    assert stranger.status_code == 401 and "from other devices" in stranger.get_data(as_text=True)
    assert sign_in(parent).status_code == 302           # the parent's own browser still gets in
    with app.app_context():
        locks = [e for e in core.store().list_audit(300) if e.action == "login.locked"]
    assert any(e.after["scope"] == "account" for e in locks)


# -- 2: no open redirects ----------------------------------------------------------------------------

BAD_NEXT = ["/%09/evil.example/", "//evil.example/", "/\\evil.example/", "\\\\evil.example", "/%0a/evil.example",
            "/%0d%0aSet-Cookie:x=1", "https://evil.example/", "javascript:alert(1)", "/%5C/evil.example",
            "%2F%2Fevil.example", "/%09%09/evil.example", " //evil.example", "/\t/evil.example"]


@pytest.mark.parametrize("bad", BAD_NEXT)
def test_next_never_leaves_the_site(app, admin, bad):
    for client in (app.test_client(), admin.client):
        resp = client.get(f"/lang/en?next={bad}")
        assert resp.status_code == 302 and resp.location == "/", resp.location
    b = Browser(app.test_client())
    resp = sign_in(b, next_=bad)
    assert resp.status_code == 302 and resp.location == "/", resp.location
    resp = admin.post("/devices", {"action": "add", "name": "T", "identity": "10.0.0.77", "next": unquote(bad)})
    assert resp.status_code == 302 and resp.location == "/devices", resp.location


def test_next_to_a_page_of_this_site_still_works(app, admin):
    assert app.test_client().get("/lang/vi?next=/blocked%3Fdomain%3Dx.example").location == "/blocked?domain=x.example"
    assert sign_in(Browser(app.test_client()), next_="/devices").location == "/devices"
    assert core.safe_next("/profiles/Kids?tab=apps") == "/profiles/Kids?tab=apps"


@pytest.mark.parametrize("bad", ["/%09/evil.example/", "//evil.example/", "/%0a/x"])
def test_block_page_host_has_no_open_redirect(tmp_path, bad):
    from webui import create_blockpage_app

    app = create_blockpage_app(make_config(tmp_path))
    resp = app.test_client().get(f"/lang/vi?next={bad}", headers={"Host": "bet.example"})
    assert resp.status_code == 302 and resp.location == "/"
    if "hearth_store" in app.extensions:
        app.extensions["hearth_store"].close()


# -- 3: sessions that end -------------------------------------------------------------------------------

def _copy_of(b: Browser, app) -> Browser:
    """A second browser holding a copy of ``b``'s session cookie (stolen, or an old tab)."""
    cookie = b.client.get_cookie("hearth_session")
    other = app.test_client()
    other.set_cookie("hearth_session", cookie.value)
    return Browser(other)


def test_a_copied_session_cookie_is_refused_after_logout(app, admin):
    copy = _copy_of(admin, app)
    assert copy.get("/devices").status_code == 200
    assert admin.post("/logout", {}).status_code == 302
    assert copy.get("/devices").status_code == 302 and "/login" in copy.get("/devices").location
    assert copy.client.get("/api/v1/devices").status_code == 401


def test_signing_out_ends_this_browser_only_and_everywhere_ends_them_all(app, admin):
    """A parent signs out on the shared family laptop: their phone stays signed in, a copy of the laptop's
    cookie does not; "Sign out everywhere" (the account page) ends the phone's session too."""
    phone = device(app, PARENT)
    assert sign_in(phone).status_code == 302 and phone.get("/devices").status_code == 200
    copy = _copy_of(admin, app)
    assert admin.post("/logout", {}).status_code == 302
    assert copy.get("/devices").status_code == 302                    # the copied cookie is out
    assert phone.get("/devices").status_code == 200                   # the other device is not
    page = phone.get("/account").get_data(as_text=True)
    assert "Sign out everywhere" in page and 'name="everywhere"' in page
    laptop = device(app, "192.168.1.11")
    assert sign_in(laptop).status_code == 302 and laptop.get("/devices").status_code == 200
    assert phone.post("/logout", {"everywhere": "1"}).status_code == 302
    assert phone.get("/devices").status_code == 302 and laptop.get("/devices").status_code == 302
    assert sign_in(laptop).status_code == 302 and laptop.get("/devices").status_code == 200   # in again
    logouts = [e.after for e in app.extensions["hearth_store"].list_audit() if e.action == "logout"]
    assert logouts.count({"everywhere": True}) == 1 and logouts.count(None) == 1, logouts


def test_password_change_and_removal_end_the_other_sessions(app, admin):
    laptop = device(app, PARENT)
    assert sign_in(laptop).status_code == 302
    assert laptop.get("/devices").status_code == 200
    resp = admin.post("/account", {"action": "password", "current": PASSWORD, "password": "new " + PASSWORD,
                                   "password2": "new " + PASSWORD}, page="/account")
    assert resp.status_code == 302
    assert admin.get("/devices").status_code == 200          # the browser that changed it stays in
    assert laptop.get("/devices").status_code == 302         # the other one is out

    admin.post("/users", {"action": "add", "name": "dad", "password": PASSWORD, "role": "admin"}, page="/users")
    dad = Browser(app.test_client())
    assert sign_in(dad, name="dad").status_code == 302 and dad.get("/devices").status_code == 200
    admin.post("/users", {"action": "password", "name": "dad", "password": "other " + PASSWORD}, page="/users")
    assert dad.get("/devices").status_code == 302
    assert sign_in(dad, "other " + PASSWORD, name="dad").status_code == 302
    admin.post("/users", {"action": "remove", "name": "dad"}, page="/users")
    assert dad.get("/devices").status_code == 302


def test_cookies_are_secure_over_https(tmp_path):
    app = create_app(make_config(tmp_path))
    b = Browser(app.test_client())
    resp = b.client.get("/setup", base_url="https://hearth.lan")
    assert "Secure" in resp.headers["Set-Cookie"]
    plain = app.test_client().get("/setup")
    assert "Secure" not in plain.headers["Set-Cookie"]
    app.extensions["hearth_store"].close()
    app = create_app(make_config(tmp_path, secure_cookies=True))
    assert "Secure" in app.test_client().get("/setup").headers["Set-Cookie"]
    app.extensions["hearth_store"].close()


# -- 6: Origin / Referer on changes ------------------------------------------------------------------

def test_changes_from_another_site_are_refused(app, admin):
    data = {"action": "add", "name": "Evil", "identity": "10.0.0.66"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}, {"Origin": "http://localhost:8080"},
                    {"Origin": "http://localhost.evil.example"}):
        resp = admin.post("/devices", data, headers=headers)
        assert resp.status_code == 403, headers
        assert "another site" in resp.get_data(as_text=True)
    resp = admin.client.post("/api/v1/devices", json={"name": "Evil", "identity": "10.0.0.66"},
                             headers={"X-CSRFToken": admin.token, "Origin": "http://evil.example"})
    assert resp.status_code == 403 and resp.is_json
    login = Browser(app.test_client()).post("/login", {"username": "admin", "password": PASSWORD},
                                            headers={"Origin": "http://evil.example"})
    assert login.status_code == 403
    with app.app_context():
        assert core.store().get_device("Evil") is None
    # the browser's own origin, a same-site Referer, or none at all: fine
    # (the scheme may differ: an HTTPS proxy in front talks plain HTTP to Hearth)
    for i, headers in enumerate(({"Origin": "http://localhost"}, {"Referer": "http://localhost/devices"}, {},
                                 {"Origin": "https://localhost"}, {"Origin": "http://LOCALHOST:80"})):
        resp = admin.post("/devices", {"action": "add", "name": f"Tab{i}", "identity": f"10.0.0.{70 + i}"},
                          headers=headers)
        assert resp.status_code == 302, headers


def test_api_tokens_need_no_origin(app, admin):
    with app.app_context():
        user = core.store().get_user("admin")
        token = core.new_token()
        core.store().add_api_token(user.name, core.token_hash(token))
    resp = app.test_client().post("/api/v1/devices", json={"name": "Script", "identity": "10.0.0.90"},
                                  headers={"Authorization": "Bearer " + token, "Origin": "http://evil.example"})
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)


def test_wizard_refuses_a_foreign_origin(app):
    b = Browser(app.test_client())
    resp = run_wizard(b, headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403
