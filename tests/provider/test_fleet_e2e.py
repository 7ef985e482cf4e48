"""The whole loop on loopback: a provider (`hearth provider run`, SQLite and PostgreSQL) and two appliances
(`hearth run` with its web UI, and `hearth dns`) configured with ``provider:``. A report filed on appliance 1's
public form reaches the review queue, is approved into gambling and published, and both appliances block the
name within their poll interval while the fleet API shows both on the new version."""
from __future__ import annotations

import json
import time

from tests.provider.conftest import POLL, appliance_config, blocked, eventually, file_report, web_up, yaml_web

def test_report_review_publish_reaches_the_whole_fleet(provider, upstream, start_engine):
    enrol = provider.enrolment_token("Quận 1 schools")
    admin = provider.token("alice", "admin")
    reviewer = provider.token("rita", "reviewer")
    publisher = provider.token("pat", "publisher")
    provider.start()
    one = start_engine(appliance_config(provider, enrol, upstream, web=True), command="run")
    two = start_engine(appliance_config(provider, enrol, upstream))
    web = f"http://{yaml_web(one)}"

    fleet = eventually(lambda: (lambda f: f if len(f) == 2 else None)(
        provider.api("GET", "/api/v1/appliances", admin).json()), what="both appliances enrolled")
    assert {a["organisation"] for a in fleet} == {"Quận 1 schools"}
    assert all(a["hearth_version"] and a["id"] for a in fleet)
    assert not blocked(one.port, "casino-report.example")

    note = "<script>alert(1)</script> cá cược " + "x" * 600
    file_report(eventually(lambda: web_up(web)), "https://casino-report.example/promo?kid=An", "gambling", note,
                contact="mum@example.vn")
    queue = eventually(lambda: provider.api("GET", "/api/v1/reports?status=new", reviewer).json(), 60,
                       "the report in the provider's queue")
    [group] = queue
    assert group["domain"] == "casino-report.example" and group["category"] == "gambling"
    assert group["reports"] == 1 and group["appliances"] == 1
    assert group["notes"] == [note[:500]]
    raw = json.dumps(queue)
    assert "mum@example" not in raw and "kid=An" not in raw and "127.0.0.1" not in raw   # nothing identifying

    r = provider.api("POST", f"/api/v1/reports/{group['id']}/decision", reviewer,
                     json={"action": "approve", "category": "gambling", "reason": "casino"})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert provider.api("POST", "/api/v1/publish", reviewer).status_code == 403       # a reviewer cannot publish
    published = time.monotonic()
    r = provider.api("POST", "/api/v1/publish", publisher)
    assert r.status_code == 200, r.text
    version = r.json()["version"]

    eventually(lambda: blocked(one.port, "casino-report.example") and blocked(two.port, "casino-report.example"),
               60, "both appliances block the approved name")
    took = time.monotonic() - published
    assert not blocked(two.port, "www.example.com")
    eventually(lambda: all(a["feed_version"] == version and a["entries"] == 1
                           for a in provider.api("GET", "/api/v1/appliances", admin).json()), 30,
               lambda: f"the fleet API shows both appliances on version {version}: "
               f"{provider.api('GET', '/api/v1/appliances', admin).json()}")
    print(f"publish to both appliances blocking: {took:.1f}s (poll interval {POLL}s)")
    assert provider.api("GET", "/api/v1/reports?status=new", reviewer).json() == []
    audit = [a["action"] for a in provider.api("GET", "/api/v1/audit", admin).json()]
    assert "report.approve" in audit and "feed.publish" in audit
