"""The lists page's "ask the provider to unblock" form (Flask test client): shown only with a provider, admins
only, CSRF, bad names refused with the reason, the request queued in the store's outbox, decisions shown as
text, in English and Vietnamese; an older appliance's outbox file shows (moved into the store)."""
from __future__ import annotations

import dataclasses

from blocklists import provider_unblocks
from blocklists.provider_client import ProviderLinkConfig


def _store(app):
    from webui import core

    with app.app_context():
        return core.store()


def _with_provider(app) -> str:
    cfg = app.config["HEARTH"]
    app.config["HEARTH"] = dataclasses.replace(cfg, provider=ProviderLinkConfig(url="http://127.0.0.1:9/",
                                                                                token="hpe_test"))
    return cfg.data_dir


def test_without_a_provider_there_is_nobody_to_ask(app, admin):
    assert 'id="unblock"' not in admin.get("/lists").get_data(as_text=True)
    r = admin.post("/lists/unblock", {"name": "example.vn"}, page="/lists", follow_redirects=True)
    assert "No list provider is configured" in r.get_data(as_text=True)
    assert provider_unblocks.load(_store(app)) == []


def test_unblock_request_is_queued_and_its_decision_shown(app, admin, viewer):
    _with_provider(app)
    store = _store(app)
    page = admin.get("/lists").get_data(as_text=True)
    assert 'id="unblock-form"' in page
    r = admin.post("/lists/unblock", {"name": "bad name!", "note": ""}, page="/lists", follow_redirects=True)
    assert "Not sent" in r.get_data(as_text=True) and provider_unblocks.load(store) == []
    r = admin.post("/lists/unblock", {"name": "x.example", "note": "n" * 501}, page="/lists", follow_redirects=True)
    assert "at most 500" in r.get_data(as_text=True)
    r = admin.post("/lists/unblock", {"name": "https://Trường.example/a?b=c", "note": "<b>our school</b>"},
                   page="/lists", follow_redirects=True)
    text = r.get_data(as_text=True)
    [item] = provider_unblocks.load(store)
    assert f"Asked the provider to unblock {item['domain']}" in text
    assert item["domain"].startswith("xn--") and item["domain"].endswith(".example")
    assert item["note"] == "<b>our school</b>" and item["status"] == "queued"
    assert "waiting to be sent" in text
    # a viewer may look but not ask; a post without the CSRF token is refused
    assert viewer.post("/lists/unblock", {"name": "y.example"}, page="/lists").status_code == 403
    assert admin.client.post("/lists/unblock", data={"name": "y.example"}).status_code == 400
    assert len(provider_unblocks.load(store)) == 1

    store.mark_provider_unblocks_sent([item["id"]], "appliance-1")
    store.apply_provider_unblock_decisions("appliance-1", [{"id": item["id"], "status": "rejected",
                                                            "reason": "<script>alert(1)</script> a casino",
                                                            "decided_at": 1.0}])
    page = admin.get("/lists").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a casino" in page and "<script>alert(1)" not in page
    admin.get("/lang/vi")
    page = admin.get("/lists").get_data(as_text=True)
    assert "Đề nghị nhà cung cấp bỏ chặn một tên miền" in page and "bị từ chối" in page


def test_an_older_appliances_outbox_file_shows_on_the_lists_page(app, admin):
    """Upgraded before its engine ran: the requests of DATA_DIR/provider/unblocks.json are moved into the store
    by the page itself, and a new request does not reuse a waiting one's name."""
    import json
    import os

    data_dir = _with_provider(app)
    os.makedirs(os.path.join(data_dir, "provider"))
    with open(os.path.join(data_dir, "provider", "unblocks.json"), "w") as fh:
        json.dump([{"id": 1, "domain": "waiting.example", "note": "", "lang": "", "time": 5.0, "status": "queued",
                    "sent": None, "reason": None, "decided_at": None}], fh)
    page = admin.get("/lists").get_data(as_text=True)
    assert "waiting.example" in page and "waiting to be sent" in page
    assert not os.path.exists(os.path.join(data_dir, "provider", "unblocks.json"))
    r = admin.post("/lists/unblock", {"name": "waiting.example"}, page="/lists", follow_redirects=True)
    assert "already waiting" in r.get_data(as_text=True)
    assert [i["domain"] for i in provider_unblocks.load(_store(app))] == ["waiting.example"]


def test_a_category_of_exceptions_only_is_not_offered_to_profiles(app, admin):
    import json
    import os

    from webui.admin.policy import known_categories

    data_dir = app.config["HEARTH"].data_dir
    os.makedirs(os.path.join(data_dir, "lists"), exist_ok=True)
    with open(os.path.join(data_dir, "lists", "index.json"), "w") as fh:
        json.dump({"categories": {
            "allow": {"category": "allow", "lists": ["allow"], "mandatory": False, "allow_only": True},
            "vn-news": {"category": "vn-news", "lists": ["x"], "mandatory": False, "allow_only": False}}}, fh)
    with app.test_request_context():
        cats = known_categories()
    assert "vn-news" in cats and "allow" not in cats
