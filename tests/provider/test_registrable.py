"""Reports grouped by registrable domain (Public Suffix List) through the provider's API, on SQLite and
PostgreSQL; bulk decisions; users and the audit log through the API."""
from __future__ import annotations

import time

import pytest

from provider import psl


@pytest.mark.parametrize("name, registrable", [
    ("a.bad.example", "bad.example"), ("bad.example", "bad.example"), ("x.y.cuoc.com.vn", "cuoc.com.vn"),
    ("www.example.co.uk", "example.co.uk"), ("co.uk", "co.uk"), ("a.b.city.kawasaki.jp", "city.kawasaki.jp"),
    ("deep.www.ck", "www.ck"), ("a.b.foo.ck", "b.foo.ck"),
])
def test_registrable_domain_follows_the_public_suffix_list(name, registrable):
    assert psl.registrable_domain(name) == registrable


def test_bundled_list_is_used_without_the_debian_package(monkeypatch):
    monkeypatch.setattr(psl, "SYSTEM_LIST", "/nonexistent/public_suffix_list.dat")
    psl._rules.cache_clear()
    try:
        assert psl.registrable_domain("a.b.cuoc.com.vn") == "cuoc.com.vn"
        assert psl.registrable_domain("x.example.co.uk") == "example.co.uk"
    finally:
        psl._rules.cache_clear()


def test_queue_grouped_by_registrable_domain_and_bulk_decisions(provider):
    enrol = provider.enrolment_token("ISP A")
    enrol_b = provider.enrolment_token("ISP B")
    admin = provider.token("alice", "admin")
    reviewer = provider.token("rita", "reviewer")
    auditor = provider.token("otto", "auditor")
    provider.start()
    tokens = [provider.api("POST", "/api/v1/enrol", json={"token": t, "appliance_id": f"registrable-test-{n:04d}"})
              .json()["token"] for n, t in enumerate((enrol, enrol_b))]
    now = time.time()
    for token, names in zip(tokens, (["a.bad.example", "b.bad.example", "x.cuoc.com.vn"],
                                     ["a.bad.example", "y.cuoc.com.vn", "lone.example"])):
        r = provider.api("POST", "/api/v1/reports", token, json={"reports": [
            {"id": i, "domain": d, "category": "gambling", "time": now} for i, d in enumerate(names)]})
        assert r.status_code == 200, r.text

    # an unblock request of a reported name is another group, but the same name under bad.example
    r = provider.api("POST", "/api/v1/unblocks", tokens[0], json={"requests": [
        {"id": 1, "domain": "b.bad.example", "time": now}]})
    assert r.json()["new"] == 1
    groups = {g["domain"]: g for g in provider.api("GET", "/api/v1/reports?status=new&kind=report",
                                                   reviewer).json()}
    assert groups["a.bad.example"]["registrable"] == "bad.example" and groups["a.bad.example"]["same_registrable"] == 2
    assert groups["y.cuoc.com.vn"]["registrable"] == "cuoc.com.vn"
    assert groups["lone.example"]["same_registrable"] == 1
    under = provider.api("GET", "/api/v1/reports?registrable=bad.example", reviewer).json()
    assert sorted((g["domain"], g["kind"]) for g in under) == [("a.bad.example", "report"),
                                                              ("b.bad.example", "report"),
                                                              ("b.bad.example", "unblock")]
    r = provider.api("GET", "/api/v1/reports?registrable=not a name", reviewer)
    assert r.status_code == 400 and "registrable" in r.json()["error"]

    rows = provider.api("GET", "/api/v1/reports/by-registrable?status=new", auditor).json()
    assert [r["registrable"] for r in rows] == ["bad.example", "cuoc.com.vn", "lone.example"]
    bad = rows[0]
    assert bad["reports"] == 3 and bad["appliances"] == 2 and bad["organisations"] == 2
    assert [d["domain"] for d in bad["domains"]] == ["a.bad.example", "b.bad.example"]

    # one decision for every name under bad.example (bulk); a refused one leaves the others decided
    ids = [d["id"] for d in bad["domains"]]
    r = provider.api("POST", "/api/v1/reports/decisions", reviewer, json={"ids": ids, "action": "approve",
                                                                         "category": "gambling"})
    assert r.status_code == 200 and [g["status"] for g in r.json()["decided"]] == ["approved", "approved"]
    r = provider.api("POST", "/api/v1/reports/decisions", reviewer,
                     json={"ids": [groups["lone.example"]["id"], 99999], "action": "defer"})
    assert [g["domain"] for g in r.json()["decided"]] == ["lone.example"]
    assert r.json()["errors"] == [{"id": 99999, "error": "no report 99999"}]
    r = provider.api("POST", "/api/v1/reports/decisions", reviewer, json={"ids": ["x"], "action": "defer"})
    assert r.status_code == 400 and "ids" in r.json()["error"]
    r = provider.api("POST", "/api/v1/reports/decisions", reviewer, json={"ids": ids, "action": "maybe"})
    assert r.status_code == 400 and "action" in r.json()["error"]
    assert provider.api("POST", "/api/v1/reports/decisions", auditor, json={"ids": ids, "action": "defer"}) \
        .status_code == 403
    assert [r["registrable"] for r in provider.api("GET", "/api/v1/reports/by-registrable?status=new",
                                                   reviewer).json()] == ["cuoc.com.vn"]
    detail = provider.api("GET", f"/api/v1/reports/{ids[0]}?detail=1", reviewer).json()
    assert sorted((s["domain"], s["kind"]) for s in detail["siblings"]) == [("b.bad.example", "report"),
                                                                           ("b.bad.example", "unblock")]
    assert len(detail["items"]) == 2 and detail["history"][0]["action"] == "report.approve"

    # users: list, change a role (admin only), the last admin keeps the role; all of it in the audit log
    users = {u["name"]: u for u in provider.api("GET", "/api/v1/users", auditor).json()}
    assert users["rita"] == {**users["rita"], "role": "reviewer", "tokens": 1}
    assert provider.api("POST", "/api/v1/users/rita/role", reviewer, json={"role": "admin"}).status_code == 403
    r = provider.api("POST", "/api/v1/users/rita/role", admin, json={"role": "publisher"})
    assert r.status_code == 200 and r.json() == {"name": "rita", "role": "publisher"}
    assert provider.api("POST", "/api/v1/publish", reviewer).status_code == 200    # rita publishes now
    r = provider.api("POST", "/api/v1/users/alice/role", admin, json={"role": "auditor"})
    assert r.status_code == 400 and "last admin" in r.json()["error"]
    assert provider.api("POST", "/api/v1/users/nobody/role", admin, json={"role": "auditor"}).status_code == 404
    r = provider.api("POST", "/api/v1/users/rita/role", admin, json={"role": "boss"})
    assert r.status_code == 400 and "role" in r.json()["error"]
    audit = provider.api("GET", "/api/v1/audit?action=user.", auditor).json()
    assert [(a["action"], a["target"], a["detail"]) for a in audit][:1] == [("user.role", "rita",
                                                                               "reviewer -> publisher")]
    assert {a["actor"] for a in provider.api("GET", "/api/v1/audit?actor=rita", auditor).json()} == {"rita"}
