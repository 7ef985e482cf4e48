"""The public pages: block page without an engine, ask for access and the parent's answer, reports,
rate limits, the block page listener's app, the hotline."""
from __future__ import annotations

import time

from tests.webui.conftest import Browser, make_config
from webui import core, create_blockpage_app


def test_block_page_without_engine_still_says_blocked(app, admin):
    kid = Browser(app.test_client())
    page = kid.get("/blocked?domain=Bet.Example").get_data(as_text=True)
    assert "This site is blocked" in page and "bet.example" in page
    assert "111" in page and "Tổng đài quốc gia bảo vệ trẻ em" in page
    evil = kid.get('/blocked?domain=<script>alert(1)</script>').get_data(as_text=True)
    assert "<script>alert(1)" not in evil and "&lt;script&gt;" in evil
    assert 'name="message"' not in evil          # no request form for a non-name


def test_ask_for_access_and_every_answer(app, admin):
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "127.0.0.1", "profile": "Kids"})
    kid = Browser(app.test_client())
    kid.get("/blocked?domain=game.example")
    resp = kid.post("/blocked/ask", {"domain": "game.example", "message": "homework <b>"})
    assert resp.status_code == 302
    assert "Your request was sent" in kid.get("/blocked?domain=game.example").get_data(as_text=True)
    with app.app_context():
        req = core.store().list_access_requests("pending")[0]
    assert (req.client, req.device, req.profile, req.message) == ("127.0.0.1", "Tablet", "Kids", "homework <b>")
    page = admin.get("/requests").get_data(as_text=True)
    assert "game.example" in page and "homework &lt;b&gt;" in page and "Allow 30 minutes" in page
    admin.post("/requests", {"id": str(req.id), "decision": "30m", "domain": "game.example"})
    with app.app_context():
        store = core.store()
        allows = store.list_temp_allows(time.time())
        assert [(a.device, a.domain) for a in allows] == [("Tablet", "game.example")]
        assert 29 * 60 < allows[0].until - time.time() <= 30 * 60
        assert store.get_access_request(req.id).status == "approved"
    assert "Your parent said yes until" in kid.get("/blocked?domain=game.example").get_data(as_text=True)
    # always: the profile's allow list (with subdomains when asked)
    kid.post("/blocked/ask", {"domain": "school.example", "message": ""})
    with app.app_context():
        rid = core.store().latest_access_request("127.0.0.1", "school.example").id
    admin.post("/requests", {"id": str(rid), "decision": "always", "domain": "school.example", "subdomains": "1"})
    with app.app_context():
        assert "*.school.example" in core.store().get_profile("Kids").allow
    kid.post("/blocked/ask", {"domain": "bad.example", "message": ""})
    with app.app_context():
        rid = core.store().latest_access_request("127.0.0.1", "bad.example").id
    admin.post("/requests", {"id": str(rid), "decision": "decline"})
    assert "Your parent said no" in kid.get("/blocked?domain=bad.example").get_data(as_text=True)
    with app.app_context():
        actions = [e.action for e in core.store().list_audit(5)]
    assert actions[0] == "request.decline" and "request.approve" in actions


def test_approving_an_unknown_client_names_its_device(app, admin):
    with app.app_context():
        req = core.store().add_access_request("10.1.2.3", "x.example", "", profile="default")
    resp = admin.api("POST", f"/api/v1/requests/{req.id}", {"decision": "day"})
    assert resp.status_code == 200 and resp.get_json()["decision"] == "day"
    with app.app_context():
        d = core.store().get_device("Device 10-1-2-3")
        assert d.value == "10.1.2.3" and d.profile == "default"


def test_reports_and_rate_limit(tmp_path):
    app = create_blockpage_app(make_config(tmp_path, public_form_limit=2))
    kid = Browser(app.test_client())
    form = kid.get("/report?url=bad.example").get_data(as_text=True)
    assert "Sexual content or abuse of children" in form and 'value="bad.example"' in form
    for _ in range(2):
        assert "Thank you" in kid.post("/report", {"url": "bad.example", "kind": "violence"}).get_data(as_text=True)
    assert kid.post("/report", {"url": "bad.example", "kind": "violence"}).status_code == 429
    for i in range(2):
        assert kid.post("/blocked/ask", {"domain": f"g{i}.example"}).status_code == 302
    assert kid.post("/blocked/ask", {"domain": "g9.example"}).status_code == 429
    with app.app_context():
        assert len(core.store().list_reports()) == 2
        core.store().close()


def test_block_page_listener_shows_the_host_asked_for(tmp_path):
    app = create_blockpage_app(make_config(tmp_path, hotline_country="GB"))
    c = app.test_client()
    page = c.get("/some/path?x=1", headers={"Host": "casino.example"}).get_data(as_text=True)
    assert "casino.example" in page and "Childline" in page and "0800 1111" in page
    assert c.get("/devices", headers={"Host": "a.example"}).status_code == 200     # no admin pages here
    assert "Sign in" not in c.get("/devices").get_data(as_text=True)
    other = create_blockpage_app(make_config(tmp_path / "x", hotline_number="123", hotline_name="School nurse"))
    assert "School nurse" in other.test_client().get("/blocked?domain=a.example").get_data(as_text=True)
