"""Unblock requests through the real entry points (provider on SQLite and PostgreSQL, `hearth run` on loopback):
an appliance's admin asks on the lists page for a feed name to be unblocked; it lands in the provider's queue
(kind unblock); approved, the next feed version carries an allow entry and the appliance answers the name;
rejected, the reviewer's reason shows on the lists page (escaped)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from tests.dnsfake import FakeDNS
from tests.provider.conftest import POLL, blocked, eventually, free_port
from tests.webui.conftest import csrf_of

FALSE_POSITIVE, REALLY_BAD, ORDERED = "school-fp.example", "really-bad.example", "ordered-x.example"
PASSWORD = "a long family password"
REASON = "<b onmouseover=alert(1)>casino</b> & co"


def _appliance_admin(engine, web: str) -> requests.Session:
    out = subprocess.run([sys.executable, "-m", "resolver.cli", "admin", "create", "admin", "--password-stdin",
                          "-c", str(engine.config_path)], input=PASSWORD, capture_output=True, text=True,
                         timeout=60, cwd=str(engine.tmp))
    assert out.returncode == 0, out.stderr
    s = requests.Session()
    page = eventually(lambda: (lambda r: r if r.status_code == 200 else None)(s.get(web + "/login", timeout=10)),
                      what="appliance web UI up")
    r = s.post(web + "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
               timeout=10)
    assert r.status_code == 200 and "/login" not in r.url, r.text[:500]
    return s


def _ask(s: requests.Session, web: str, name: str, note: str = "") -> str:
    page = s.get(web + "/lists", timeout=10)
    assert page.status_code == 200 and 'id="unblock-form"' in page.text
    r = s.post(web + "/lists/unblock", data={"name": name, "note": note, "csrf_token": csrf_of(page.text)},
               timeout=10)
    assert r.status_code == 200, r.text[:300]
    return r.text


def test_unblock_request_approved_and_rejected(provider, start_engine):
    enrol = provider.enrolment_token("Trường Tiểu học A")
    admin = provider.token("alice", "admin")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    # the feed blocks three names: two approved from reports, one by an authority's order
    r = provider.api("POST", "/api/v1/enrol", json={"token": enrol, "appliance_id": "reporter-appliance-0001"})
    reporter = r.json()["token"]
    r = provider.api("POST", "/api/v1/reports", reporter, json={"reports": [
        {"id": i, "domain": d, "category": "gambling", "time": time.time()}
        for i, d in enumerate((FALSE_POSITIVE, REALLY_BAD), 1)]})
    assert r.json()["new"] == 2
    for group in provider.api("GET", "/api/v1/reports?status=new&kind=report", reviewer).json():
        provider.api("POST", f"/api/v1/reports/{group['id']}/decision", reviewer,
                     json={"action": "approve", "category": "gambling"})
    assert provider.api("POST", "/api/v1/orders", admin, json={"authority": "Bộ TT&TT", "reference": "9/QĐ",
                                                              "category": "gambling", "domains": [ORDERED]}).ok
    assert provider.api("POST", "/api/v1/publish", admin).json()["version"] == 1

    names = (FALSE_POSITIVE, REALLY_BAD, ORDERED)
    with FakeDNS({f"{n}.": [f"{n}. 300 IN A 192.0.2.80"] for n in names}) as upstream:
        web_port = free_port()
        one = start_engine({"timezone": "UTC", "dns": {"upstreams": [f"udp://127.0.0.1:{upstream.port}"]},
                            "web": {"listen": f"127.0.0.1:{web_port}"},
                            "provider": {"url": provider.url + "/", "token": enrol, "poll_interval": f"{POLL}s"}},
                           command="run")
        web = f"http://127.0.0.1:{web_port}"
        eventually(lambda: all(blocked(one.port, n) for n in names), 60, "the feed's names blocked")
        s = _appliance_admin(one, web)

        # bad input gets a clear message, a forged form (no CSRF token) is refused
        assert "not a site name" in _ask(s, web, "localhost")
        assert s.post(web + "/lists/unblock", data={"name": FALSE_POSITIVE}, timeout=10).status_code == 400
        text = _ask(s, web, f"https://{FALSE_POSITIVE}/enrol?child=An", "our school's enrolment site")
        assert f"Asked the provider to unblock {FALSE_POSITIVE}" in text
        assert "already waiting" in _ask(s, web, FALSE_POSITIVE)
        _ask(s, web, REALLY_BAD, "")
        _ask(s, web, ORDERED, "")

        queue = eventually(lambda: (lambda q: q if len(q) == 3 else None)(
            provider.api("GET", "/api/v1/reports?status=new&kind=unblock", reviewer).json()), 60,
            "the three unblock requests in the provider's queue")
        by_name = {q["domain"]: q for q in queue}
        assert by_name[FALSE_POSITIVE]["kind"] == "unblock"
        assert by_name[FALSE_POSITIVE]["notes"] == ["our school's enrolment site"]
        assert "child=An" not in str(queue)                       # only the host name left the appliance
        # the reports of the same names are separate groups (kind report, approved)
        assert {g["domain"] for g in provider.api("GET", "/api/v1/reports?kind=report", reviewer).json()} == \
            {FALSE_POSITIVE, REALLY_BAD}

        r = provider.api("POST", f"/api/v1/reports/{by_name[ORDERED]['id']}/decision", reviewer,
                         json={"action": "approve"})
        assert r.status_code == 400 and "authority's order" in r.json()["error"]
        r = provider.api("POST", f"/api/v1/reports/{by_name[REALLY_BAD]['id']}/decision", reviewer,
                         json={"action": "reject"})
        assert r.status_code == 400 and "reason" in r.json()["error"]
        assert provider.api("POST", f"/api/v1/reports/{by_name[REALLY_BAD]['id']}/decision", reviewer,
                            json={"action": "reject", "reason": REASON}).json()["status"] == "rejected"
        assert provider.api("POST", f"/api/v1/reports/{by_name[FALSE_POSITIVE]['id']}/decision", reviewer,
                            json={"action": "approve"}).json()["status"] == "approved"
        r = provider.api("POST", "/api/v1/publish", admin)
        assert r.status_code == 200 and r.json()["version"] == 2
        manifest = requests.get(provider.url + "/feed/manifest.json", timeout=10).json()
        allow = [e for e in manifest["lists"] if e["id"] == "allow"]
        assert allow and allow[0]["format"] == "adblock" and allow[0]["entries"] == 1
        assert "cat-gambling" in {e["id"] for e in manifest["lists"]}

        # the appliance installs version 2: the false positive is answered, the others stay blocked
        eventually(lambda: not blocked(one.port, FALSE_POSITIVE), 60, "the unblocked name answered")
        assert blocked(one.port, REALLY_BAD) and blocked(one.port, ORDERED)
        meta = json.loads((one.data_dir / "lists" / "index.json").read_text())["categories"]
        assert meta["allow"]["allow_only"] and not meta["gambling"]["allow_only"]   # not offered to profiles

        # the decisions reach the lists page (check-in answer), the reason as inert text
        def decided():
            page = s.get(web + "/lists", timeout=10).text
            return page if "rejected" in page and "approved: unblocked" in page else None

        page = eventually(decided, 60, "decisions shown on the lists page")
        assert "&lt;b onmouseover=alert(1)&gt;casino&lt;/b&gt; &amp; co" in page and "<b onmouseover" not in page
        # the provider answers the same decisions on a GET too (the appliance's own requests only)
        from blocklists.provider_client import load_state

        token = load_state(str(one.data_dir))["token"]
        decisions = {d["domain"]: d for d in provider.api("GET", "/api/v1/unblocks", token).json()}
        assert decisions[REALLY_BAD] == {**decisions[REALLY_BAD], "status": "rejected", "reason": REASON}
        assert decisions[FALSE_POSITIVE]["status"] == "approved" and decisions[ORDERED]["status"] == "new"
        assert provider.api("GET", "/api/v1/unblocks", reporter).json() == []
        assert provider.api("GET", "/api/v1/unblocks", reviewer).status_code == 401
        audit = json.dumps(provider.api("GET", "/api/v1/audit", admin).json())
        assert "unblock.approve" in audit and "unblock.reject" in audit

        # the reviewer decides again on the unblocked name (a second look): the lists page follows
        assert provider.api("POST", f"/api/v1/reports/{by_name[FALSE_POSITIVE]['id']}/decision", reviewer,
                            json={"action": "reject", "reason": "second look: it hosts the casino"}
                            ).json()["status"] == "rejected"
        page = eventually(lambda: (lambda p: p if "second look: it hosts the casino" in p else None)(
            s.get(web + "/lists", timeout=10).text), 60, "the second decision on the lists page")
        assert "approved: unblocked" not in page
