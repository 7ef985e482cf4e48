"""A campus and its list provider, through the real entry points: a provider (`hearth provider run`) and two
`hearth run` nodes on one PostgreSQL store, each enrolled as its own appliance, both polling every 2 s.

An unblock request filed on node 1 shows on node 2's lists page and reaches the provider once; reports filed
on both nodes' block pages are forwarded once each (1 report from 1 appliance per name), however often both
nodes look at the outbox; the provider's decisions show on both nodes. When the forwarding node stops, the
other one takes over and forwards what is filed next.

The nodes reach the provider through a slow link (a loopback proxy that holds every report and request
upload for 1.5 s, as a provider far away on the internet might): without the forwarding lease both nodes
would send the same waiting reports meanwhile, and the provider would count them twice.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from resolver.store.postgres import PostgresStore
from tests.provider.conftest import appliance_config, eventually, file_report, web_up, yaml_web
from tests.provider.test_unblock_e2e import PASSWORD, _appliance_admin, _ask
from tests.webui.conftest import csrf_of

REASON = "<script>alert(1)</script> a real casino"


class SlowLink:
    """A loopback HTTP proxy to the provider that holds uploads (POST /api/v1/reports and /unblocks) 1.5 s."""

    SLOW = ("/api/v1/reports", "/api/v1/unblocks")

    def __init__(self, target: str, delay: float = 1.5):
        link = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "POST" and self.path in link.SLOW:
                    time.sleep(delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = requests.request(self.command, target + self.path, data=body, headers=headers, timeout=30)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() in ("content-type", "etag", "last-modified"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = _relay

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _login(web: str) -> requests.Session:
    s = requests.Session()
    page = s.get(web + "/login", timeout=10)
    r = s.post(web + "/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
               timeout=10)
    assert r.status_code == 200 and "/login" not in r.url, r.text[:500]
    return s


def _groups(provider, token: str, kind: str) -> dict[str, dict]:
    return {g["domain"]: g for g in provider.api("GET", f"/api/v1/reports?kind={kind}", token).json()}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_campus_forwards_once_and_every_node_shows_the_same(provider, upstream, start_engine, postgres_url):
    enrol = provider.enrolment_token("Trường THCS B")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    link = SlowLink(provider.url)
    nodes = []
    for i in (1, 2):
        cfg = appliance_config(provider, enrol, upstream, web=True)
        cfg["provider"]["url"] = link.url + "/"
        nodes.append(start_engine({**cfg, "store": postgres_url, "node_name": f"gw{i}"}, command="run"))
    one, two = nodes
    web1 = eventually(lambda: web_up(f"http://{yaml_web(one)}"), what="node 1's web UI up")
    web2 = eventually(lambda: web_up(f"http://{yaml_web(two)}"), what="node 2's web UI up")
    s1 = _appliance_admin(one, web1)                       # the admin is in the shared store: both nodes know it
    s2 = _login(web2)

    # an unblock request on node 1 is on node 2's lists page at once (one store), and reaches the provider once
    assert "Asked the provider to unblock fp.example" in _ask(s1, web1, "fp.example", "our school's site")
    page = s2.get(web2 + "/lists", timeout=10).text
    assert "fp.example" in page and ("waiting to be sent" in page or "awaiting review" in page)
    assert "already waiting" in _ask(s2, web2, "fp.example")

    # reports on both nodes' block pages, while both nodes poll the outbox every 2 s
    names = [f"bad{i}.example" for i in range(6)]
    for i, name in enumerate(names):
        file_report(web2 if i % 2 == 0 else web1, name, "gambling", f"note {i}")
    eventually(lambda: len(_groups(provider, reviewer, "report")) == len(names), 60, "every report forwarded")
    eventually(lambda: "fp.example" in _groups(provider, reviewer, "unblock"), 60, "the request forwarded")
    time.sleep(5)                                          # more rounds of both nodes: nothing is sent again
    reports = _groups(provider, reviewer, "report")
    assert {n: (g["reports"], g["appliances"]) for n, g in reports.items()} == {n: (1, 1) for n in names}
    unblock = _groups(provider, reviewer, "unblock")["fp.example"]
    assert (unblock["reports"], unblock["appliances"], unblock["notes"]) == (1, 1, ["our school's site"])
    fleet = provider.api("GET", "/api/v1/appliances", reviewer).json()
    assert len(fleet) == 2                                 # each node checks in as itself

    store = PostgresStore(postgres_url)
    try:
        assert all(r.forwarded_ts for r in store.list_reports())
        leader = store.provider_lease_holder()
        assert leader and leader["node"] in ("gw1", "gw2")

        # decisions: both nodes' pages show them (pulled by the forwarding node's check-in, kept in the store)
        assert provider.api("POST", f"/api/v1/reports/{unblock['id']}/decision", reviewer,
                            json={"action": "reject", "reason": REASON}).status_code == 200
        assert provider.api("POST", f"/api/v1/reports/{reports['bad0.example']['id']}/decision", reviewer,
                            json={"action": "approve", "category": "gambling"}).status_code == 200
        for s, web in ((s1, web1), (s2, web2)):
            eventually(lambda s=s, web=web: "the provider blocks it" in s.get(web + "/requests", timeout=10).text,
                       60, f"the report's decision on {web}")
            page = eventually(lambda s=s, web=web: (lambda p: p if "rejected" in p else None)(
                s.get(web + "/lists", timeout=10).text), 60, f"the request's decision on {web}")
            assert "&lt;script&gt;alert(1)&lt;/script&gt; a real casino" in page and "<script>alert(1)" not in page

        # the forwarding node stops (it gives the lease up): the other one forwards what comes next
        stopped, survivor, web = (one, "gw2", web2) if leader["node"] == "gw1" else (two, "gw1", web1)
        stopped.stop()
        file_report(web, "after-failover.example", "scam", "")
        eventually(lambda: "after-failover.example" in _groups(provider, reviewer, "report"), 60,
                   "the report forwarded by the other node")
        after = _groups(provider, reviewer, "report")["after-failover.example"]
        assert (after["reports"], after["appliances"]) == (1, 1)
        assert store.provider_lease_holder()["node"] == survivor
    finally:
        store.close()
        link.close()
