"""The JSON API: tokens, session + CSRF, 401/403 as JSON, CRUD, and the OpenAPI document."""
from __future__ import annotations

from webui import core, create_app
from webui.api import ROUTES


def _token(app, user="admin"):
    from webui.core import new_token, token_hash

    token = new_token()
    with app.app_context():
        core.store().add_api_token(user, token_hash(token), "test")
    return {"Authorization": "Bearer " + token}


def test_auth_errors_are_json(app, admin):
    c = app.test_client()
    r = c.get("/api/v1/devices")
    assert r.status_code == 401 and r.is_json and "error" in r.get_json()
    r = c.get("/api/v1/devices", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.get_json()["error"] == "invalid API token"
    assert c.get("/api/v1/nothing-here", headers=_token(app)).get_json()["status"] == 404


def test_crud_with_a_token_needs_no_csrf(app, admin):
    c = app.test_client()
    h = _token(app)
    r = c.post("/api/v1/profiles", json={"name": "Teens", "preset": "teen", "services": ["tiktok"]}, headers=h)
    assert r.status_code == 201 and r.get_json()["services"] == ["tiktok"]
    assert c.post("/api/v1/profiles", json={"name": "Teens"}, headers=h).status_code == 400
    r = c.patch("/api/v1/profiles/Teens", json={"safe_search": False, "block": ["x.example"]}, headers=h)
    assert r.status_code == 200 and r.get_json()["block"] == ["x.example"] and not r.get_json()["safe_search"]
    r = c.post("/api/v1/devices", json={"name": "Phone", "identity": "10.0.0.5", "profile": "Teens"}, headers=h)
    assert r.status_code == 201 and r.get_json()["kind"] == "ip"
    assert c.post("/api/v1/devices/Phone/pause", json={"minutes": 10}, headers=h).get_json()["paused_until"]
    assert c.post("/api/v1/devices/Phone/pause", json={"minutes": None}, headers=h).get_json()["paused_until"] is None
    allow = c.post("/api/v1/devices/Phone/allow", json={"domain": "wiki.example", "minutes": 5}, headers=h).get_json()
    assert c.get("/api/v1/devices/Phone", headers=h).get_json()["allows"][0]["domain"] == "wiki.example"
    assert c.delete(f"/api/v1/allows/{allow['id']}", headers=h).status_code == 200
    r = c.post("/api/v1/schedules", json={"profile": "Teens", "name": "bed", "days": ["mon"], "start": "22:00",
                                          "end": "06:00"}, headers=h)
    assert r.status_code == 201
    assert c.patch("/api/v1/schedules/Teens/bed", json={"enabled": False}, headers=h).get_json()["enabled"] is False
    assert c.post("/api/v1/profiles/Teens/rules", json={"domain": "y.example", "action": "allow"},
                  headers=h).get_json()["allow"] == ["y.example"]
    assert c.delete("/api/v1/profiles/Teens", headers=h).status_code == 400         # a device uses it
    assert c.delete("/api/v1/devices/Phone", headers=h).status_code == 200
    assert c.delete("/api/v1/schedules/Teens/bed", headers=h).status_code == 200
    assert c.delete("/api/v1/profiles/Teens", headers=h).status_code == 200
    for url in ("/api/v1/devices", "/api/v1/profiles", "/api/v1/schedules", "/api/v1/lists", "/api/v1/querylog",
                "/api/v1/stats", "/api/v1/requests", "/api/v1/reports", "/api/v1/audit", "/api/v1/users",
                "/api/v1/seen", "/api/v1/lists/update", "/api/v1/me"):
        assert c.get(url, headers=h).status_code == 200, url
    with app.app_context():
        assert "profile.remove" in [e.action for e in core.store().list_audit(3)]


def test_session_api_needs_the_csrf_header(app, admin):
    assert admin.client.post("/api/v1/profiles", json={"name": "A"}).status_code == 400
    assert admin.api("POST", "/api/v1/profiles", {"name": "A"}).status_code == 201


def test_viewer_token_is_read_only(app, viewer):
    c = app.test_client()
    h = _token(app, "grandma")
    assert c.get("/api/v1/profiles", headers=h).status_code == 200
    r = c.patch("/api/v1/profiles/Kids", json={"safe_search": False}, headers=h)
    assert r.status_code == 403 and r.is_json
    assert c.get("/api/v1/users", headers=h).status_code == 403


def test_openapi_document_covers_every_api_route(tmp_path):
    from tests.webui.conftest import make_config

    app = create_app(make_config(tmp_path))
    doc = app.test_client().get("/api/v1/openapi.json").get_json()     # public, even before setup
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Hearth API"
    rules = {(r.rule, m.lower()) for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1/")
             for m in r.methods - {"HEAD", "OPTIONS"}}
    import re

    documented = {(re.sub(r"\{(\w+)\}", r"<\1>", p), m) for p, ops in doc["paths"].items() for m in ops}
    normalised = {(re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", r), m) for r, m in rules}
    assert normalised == documented
    assert len(ROUTES) == len(documented)
    for ops in doc["paths"].values():
        for op in ops.values():
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if ref:
                assert ref["$ref"].rsplit("/", 1)[1] in doc["components"]["schemas"]
    with app.app_context():
        core.store().close()


def test_a_profile_made_without_a_preset_has_bypass_prevention_on(app, admin):
    """Issue 12 item 2: on for every profile unless a parent turns it off."""
    c = app.test_client()
    h = _token(app)
    r = c.post("/api/v1/profiles", json={"name": "Custom", "categories": ["adult"]}, headers=h)
    assert r.status_code == 201 and r.get_json()["bypass_prevention"] is True
    r = c.post("/api/v1/profiles", json={"name": "Off", "categories": ["adult"], "bypass_prevention": False},
               headers=h)
    assert r.status_code == 201 and r.get_json()["bypass_prevention"] is False
    r = c.post("/api/v1/profiles", json={"name": "Everything", "preset": "default"}, headers=h)
    assert r.status_code == 201 and r.get_json()["bypass_prevention"] is True
