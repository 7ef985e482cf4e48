"""Accounts and safety: the wizard, no default credentials, login lock-out, CSRF, roles, audit, CLI."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.webui.conftest import PASSWORD, Browser, make_config, run_wizard
from webui import create_app, core


def test_first_visit_runs_the_wizard_and_there_is_no_default_login(app):
    b = Browser(app.test_client())
    assert b.get("/").location.endswith("/setup")
    assert b.get("/devices").location.endswith("/setup")
    assert b.client.get("/api/v1/devices").status_code == 503
    for name, pw in (("admin", "admin"), ("admin", "password"), ("hearth", "hearth")):
        resp = b.post("/login", {"username": name, "password": pw}, page="/setup")
        assert resp.status_code == 302 and resp.location.endswith("/setup")      # no account to sign in to
    # public pages work before setup
    assert b.get("/blocked?domain=example.com").status_code == 200
    assert b.get("/healthz").status_code == 200


def test_wizard_creates_admin_settings_profile_and_device(app):
    b = Browser(app.test_client())
    bad = run_wizard(b, password2="different password")
    assert bad.status_code == 400 and "The two passwords differ" in bad.get_data(as_text=True)
    resp = run_wizard(b, language="vi", device_name="An tablet", device_id="192.168.1.23",
                      upstream="cloudflare-family")
    assert resp.status_code == 302 and resp.location.endswith("/setup/done")
    done = b.get("/setup/done").get_data(as_text=True)
    assert "DNS" in done and "192.168.1.23" not in done
    with app.app_context():
        store = core.store()
        user = store.get_user("admin")
        assert user.role == "admin" and user.password_hash.startswith(("scrypt:", "pbkdf2:"))
        assert PASSWORD not in user.password_hash
        assert store.get_setting("language") == "vi" and store.get_setting("upstreams")[0] == "udp://1.1.1.3"
        assert store.get_profile("Kids").preset == "child"
        assert store.get_device("An tablet").profile == "Kids"
        assert [e.action for e in store.list_audit()][-1] == "setup"
    # the wizard runs once
    again = Browser(app.test_client())
    assert again.get("/setup").location.endswith("/login")
    again.get("/login")
    resp = again.post("/setup", {"username": "intruder", "password": PASSWORD, "password2": PASSWORD})
    assert resp.status_code == 302 and resp.location.endswith("/login")
    with app.app_context():
        assert core.store().get_user("intruder") is None


def test_cookies_are_httponly_and_samesite(app):
    b = Browser(app.test_client())
    resp = run_wizard(b)
    cookie = resp.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Content-Security-Policy" in b.get("/").headers


def test_login_logout_and_lockout(app, admin):
    b = Browser(app.test_client())
    assert b.post("/login", {"username": "admin", "password": "wrong"}, page="/login").status_code == 401
    ok = b.post("/login?next=/devices", {"username": "admin", "password": PASSWORD})
    assert ok.status_code == 302 and ok.location == "/devices"
    assert b.get("/devices").status_code == 200
    assert b.post("/logout", {}).status_code == 302
    assert b.get("/devices").status_code == 302
    # open redirects are refused
    assert b.post("/login?next=//evil.example/", {"username": "admin", "password": PASSWORD},
                  page="/login").location == "/"
    b.post("/logout", {})
    for _ in range(5):
        assert b.post("/login", {"username": "admin", "password": "nope"}, page="/login").status_code == 401
    locked = b.post("/login", {"username": "admin", "password": PASSWORD}, page="/login")
    assert locked.status_code == 401 and "Too many failed sign-ins" in locked.get_data(as_text=True)


def test_post_without_csrf_token_is_refused(app, admin):
    c = admin.client
    for url, data in (("/devices", {"action": "add", "name": "x", "identity": "10.0.0.9"}),
                      ("/profiles", {"name": "Teen", "preset": "teen"}),
                      ("/settings", {"action": "purge", "days": "0"}),
                      ("/logout", {})):
        resp = c.post(url, data=data)
        assert resp.status_code == 400, url
        assert "expired" in resp.get_data(as_text=True)
    api = c.post("/api/v1/profiles", json={"name": "Teen"})
    assert api.status_code == 400 and "CSRF" in api.get_json()["error"]
    with app.app_context():
        assert core.store().get_device("x") is None and core.store().get_profile("Teen") is None
    # public forms too
    assert Browser(app.test_client()).client.post("/report", data={"url": "x.example"}).status_code == 400
    assert admin.post("/profiles", {"name": "Teen", "preset": "teen"}).status_code == 302


VIEWER_POSTS = [
    ("/devices", {"action": "add", "name": "x", "identity": "10.0.0.9"}),
    ("/profiles", {"name": "Teen", "preset": "teen"}),
    ("/profiles/Kids", {"action": "save", "safe_search": ""}),
    ("/profiles/Kids", {"action": "rule", "domain": "a.example", "rule": "allow"}),
    ("/profiles/Kids", {"action": "remove"}),
    ("/schedules", {"action": "add", "profile": "Kids", "name": "bed", "days": "mon", "start": "21:00",
                    "end": "07:00", "what": "block_all"}),
    ("/requests", {"id": "1", "decision": "always"}),
    ("/settings", {"action": "purge", "days": "0"}),
    ("/users", {"action": "add", "name": "evil", "password": "12345678", "role": "admin"}),
    ("/lists", {}),
]


def test_a_viewer_can_look_but_not_change_anything(app, viewer):
    for url in ("/", "/devices", "/profiles", "/profiles/Kids", "/schedules", "/querylog", "/requests", "/lists",
                "/settings", "/audit"):
        page = viewer.get(url)
        assert page.status_code == 200, url
        assert 'name="action" value="remove"' not in page.get_data(as_text=True)
    assert viewer.get("/users").status_code == 403
    with app.app_context():
        before = core.store().policy_version()
    for url, data in VIEWER_POSTS:
        assert viewer.post(url, data).status_code == 403, url
    for method, url, body in (("POST", "/api/v1/profiles", {"name": "Teen"}),
                              ("PATCH", "/api/v1/profiles/Kids", {"safe_search": False}),
                              ("DELETE", "/api/v1/profiles/Kids", None),
                              ("POST", "/api/v1/devices", {"name": "x", "identity": "10.0.0.9"}),
                              ("POST", "/api/v1/lists/update", {})):
        resp = viewer.api(method, url, body)
        assert resp.status_code == 403 and resp.is_json, url
    with app.app_context():
        store = core.store()
        assert store.policy_version() == before and store.get_user("evil") is None
        assert store.get_profile("Kids").safe_search


def test_every_change_is_audited_with_before_and_after(app, admin):
    admin.post("/profiles/Kids", {"action": "save", "categories": ["adult"], "youtube": "moderate",
                                  "block_mode": "null", "allow": "", "block": "bad.example"})
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.7", "profile": "Kids"})
    admin.post("/devices", {"action": "pause", "device": "Tablet", "minutes": "30"})
    with app.app_context():
        entries = core.store().list_audit()
    assert [e.action for e in entries[:3]] == ["device.pause", "device.add", "profile.update"]
    upd = entries[2]
    assert upd.user == "admin" and upd.target == "Kids"
    assert upd.before["youtube"] == "strict" and upd.after["youtube"] == "moderate"
    assert upd.after["block"] == ["bad.example"] and entries[0].after["paused_until"] > 0
    page = admin.get("/audit").get_data(as_text=True)
    assert "profile.update" in page and "moderate" in page


def test_users_roles_and_last_admin(app, admin):
    assert admin.post("/users", {"action": "add", "name": "dad", "password": "short", "role": "viewer"}) \
        .status_code == 302
    with app.app_context():
        assert core.store().get_user("dad") is None
    admin.post("/users", {"action": "add", "name": "dad", "password": PASSWORD, "role": "viewer"})
    admin.post("/users", {"action": "role", "name": "admin", "role": "viewer"})
    with app.app_context():
        assert core.store().get_user("dad").role == "viewer" and core.store().get_user("admin").role == "admin"


def test_hearth_admin_create_replaces_the_wizard(tmp_path):
    cfg = tmp_path / "hearth.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\ndns:\n  upstreams: ['udp://127.0.0.1:9']\n")

    def hearth(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "resolver.cli", *args, "-c", str(cfg)], input=stdin,
                              capture_output=True, text=True, timeout=60)

    assert hearth("admin", "create", "mum").returncode == 1
    r = hearth("admin", "create", "mum", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert hearth("admin", "create", "mum", "--password-stdin", stdin=PASSWORD).returncode == 1
    assert hearth("admin", "create", "mum", "--password-stdin", "--reset", stdin="new " + PASSWORD).returncode == 0
    assert hearth("admin", "create", "kid", "--password-stdin", "--role", "viewer", stdin=PASSWORD).returncode == 0
    tok = hearth("token", "create", "mum")
    assert tok.returncode == 0 and tok.stdout.startswith("hth_")
    assert hearth("token", "create", "nobody").returncode == 1

    app = create_app(make_config(tmp_path))
    c = app.test_client()
    assert c.get("/").location.startswith("/login")            # no wizard: an admin exists
    me = c.get("/api/v1/me", headers={"Authorization": "Bearer " + tok.stdout.strip()})
    assert me.status_code == 200 and me.get_json()["name"] == "mum" and me.get_json()["role"] == "admin"
    b = Browser(c)
    assert b.post("/login", {"username": "mum", "password": "new " + PASSWORD}, page="/login").status_code == 302
    with app.app_context():
        assert core.store().get_user("kid").role == "viewer"
        assert [e.user for e in core.store().list_audit()] == ["cli"] * 4
        core.store().close()


@pytest.mark.parametrize("path", ["/", "/devices", "/api/v1/stats"])
def test_signed_out_is_sent_to_login_or_gets_401(app, admin, path):
    c = app.test_client()
    resp = c.get(path)
    if path.startswith("/api/"):
        assert resp.status_code == 401 and resp.is_json
    else:
        assert resp.status_code == 302 and "/login" in resp.location
