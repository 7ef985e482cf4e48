"""The provider service through its real entry points: `hearth provider …` processes, HTTP on loopback, on
SQLite and on a real PostgreSQL server."""
from __future__ import annotations

import json

import pytest
import requests

from blocklists import feed as feedlib
from blocklists.verify import verify_feed
from tests.provider.conftest import RunningProvider


def test_config_errors_name_file_line_and_key(tmp_path):
    p = RunningProvider(tmp_path)
    p.config_path.write_text("data_dir: ./d\ndatabase: mysql://x\nweb:\n  listn: 127.0.0.1:1\n")
    out = p.cli("run")
    assert out.returncode == 2
    assert f"{p.config_path}:2: database: expected empty" in out.stderr
    assert f"{p.config_path}:4: web.listn: unknown key; did you mean 'listen'?" in out.stderr
    p.config_path.write_text("web:\n  listen: example.org:80\n")
    out = p.cli("token", "create", "--user", "a", "--role", "admin")
    assert out.returncode == 2 and f"{p.config_path}:2: web.listen: 'example.org' is not an IP" in out.stderr


def test_tokens_roles_and_bad_input(provider):
    enrol = provider.enrolment_token("District 1")
    assert enrol.startswith("hpe_")
    admin = provider.token("alice", "admin")
    reviewer = provider.token("rita", "reviewer")
    auditor = provider.token("otto", "auditor")
    out = provider.cli("token", "create", "--user", "x", "--role", "boss")
    assert out.returncode == 2 and "invalid choice: 'boss'" in out.stderr
    provider.start()

    assert provider.api("GET", "/api/v1/appliances", admin).json() == []
    for token in ("", "hpu_wrong", enrol, "Basic abc"):
        r = provider.api("GET", "/api/v1/appliances", token)
        assert r.status_code == 401 and "token" in r.json()["error"]
    # roles: a reviewer cannot publish, an auditor cannot decide or order; both may read
    r = provider.api("POST", "/api/v1/publish", reviewer)
    assert r.status_code == 403 and "publish" in r.json()["error"]
    r = provider.api("POST", "/api/v1/orders", auditor, json={})
    assert r.status_code == 403
    assert provider.api("GET", "/api/v1/reports?status=new", auditor).json() == []
    # bad input: a clear 400
    r = provider.api("POST", "/api/v1/orders", admin, data="not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = provider.api("POST", "/api/v1/orders", admin, json={"authority": "A", "reference": "1", "category": "gambling",
                                                            "domains": ["ok.example", "bad name!.example"]})
    assert r.status_code == 400 and "domains[1]" in r.json()["error"]
    r = provider.api("POST", "/api/v1/orders", admin, data=b"x" * (2 * 1024 * 1024),
                     headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "over" in r.json()["error"]
    r = provider.api("GET", "/api/v1/reports?status=maybe", admin)
    assert r.status_code == 400 and "status" in r.json()["error"]
    # nothing to publish yet: a clear refusal, no feed
    r = provider.api("POST", "/api/v1/publish", admin)
    assert r.status_code == 409 and "nothing to publish" in r.json()["error"]
    # a revoked token stops working at once
    out = provider.cli("token", "revoke", "--user", "otto")
    assert out.returncode == 0, out.stderr
    assert provider.api("GET", "/api/v1/appliances", auditor).status_code == 401
    # the signing key is never served
    for path in ("/feed/../keys/feed.key", "/feed/%2e%2e/keys/feed.key", "/keys/feed.key"):
        r = requests.get(provider.url + path, timeout=10)
        assert r.status_code == 404 and b"PRIVATE KEY" not in r.content


def test_order_published_as_a_signed_feed_with_conditional_get(provider):
    admin = provider.token("alice", "admin")
    publisher = provider.token("pat", "publisher")
    provider.start()
    names = [f"site{i}.bet.example" for i in range(50)]
    r = provider.api("POST", "/api/v1/orders", admin, json={"authority": "Bộ TT&TT", "reference": "123/QĐ",
                                                            "deadline": "2026-12-31", "category": "gambling",
                                                            "domains": names})
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    r = provider.api("POST", "/api/v1/publish", publisher)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1
    key = requests.get(provider.url + "/feed/feed.pub", timeout=10).text.strip()
    manifest = verify_feed(provider.url + "/feed/manifest.json", feedlib.load_public_key(key))
    assert manifest["version"] == 1
    [entry] = manifest["lists"]
    assert entry["id"] == f"order-{order_id}" and entry["mandatory"] and entry["category"] == "gambling"
    assert entry["entries"] == 50 and "123/QĐ" in entry["title"] and "Bộ TT&TT" in entry["title"]
    # appliances poll with conditional GET: nothing new costs a 304
    first = requests.get(provider.url + "/feed/manifest.json", timeout=10)
    etag = first.headers["ETag"]
    again = requests.get(provider.url + "/feed/manifest.json", headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    # the next publish is version 2, and the order shows when it went out
    assert provider.api("POST", "/api/v1/publish", admin).json()["version"] == 2
    [order] = provider.api("GET", "/api/v1/orders", admin).json()
    assert order["published_version"] == 1 and order["domains"] == 50 and order["time_to_publish"] >= 0
    audit = provider.api("GET", "/api/v1/audit", admin).json()
    assert [a["action"] for a in audit][:3] == ["feed.publish", "feed.publish", "order.add"]
    assert json.loads(requests.get(provider.url + "/feed/manifest.json", timeout=10).content)["version"] == 2


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_restart_keeps_data_and_migrations_are_idempotent(provider):
    admin = provider.token("alice", "admin")
    provider.start()
    provider.api("POST", "/api/v1/orders", admin, json={"authority": "A", "reference": "1", "category": "adult",
                                                        "domains": ["x.example"]})
    provider.stop()
    provider.start()
    assert len(provider.api("GET", "/api/v1/orders", admin).json()) == 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_fleet_export_csv(provider):
    enrol = provider.enrolment_token("=HYPERLINK(\"x\")")
    admin = provider.token("alice", "admin")
    provider.start()
    r = provider.api("POST", "/api/v1/enrol", json={"token": enrol, "appliance_id": "export-test-appliance"})
    assert r.status_code == 201
    provider.api("POST", "/api/v1/checkin", r.json()["token"], json={"feed_version": 3, "entries": 12})
    r = provider.api("GET", "/api/v1/appliances?format=csv", admin)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("id,organisation,hearth_version,feed_version,entries")
    assert lines[1].startswith("export-test-appliance,\"'=HYPERLINK") and ",3,12," in lines[1]
