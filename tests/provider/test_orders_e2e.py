"""An authority's order of 1,000 names, entered at the provider, is enforced on an appliance whose profile does
not block that category: every name is answered with EDE 16 (Censored) naming the authority and the reference,
and the appliance's block page says the same."""
from __future__ import annotations

import html
import subprocess
import time

import requests

from tests.dnsclient import answers, ask, ede
from tests.provider.conftest import CLI, appliance_config, eventually, web_up, yaml_web


def test_order_of_1000_names_is_censored_everywhere(provider, upstream, start_engine):
    enrol = provider.enrolment_token("ISP Hà Nội")
    admin = provider.token("alice", "admin")
    provider.start()
    eng = start_engine(appliance_config(provider, enrol, upstream, web=True), command="run")
    r = subprocess.run(CLI + ["profile", "set", "default", "--categories", "malware", "-c", str(eng.config_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    eventually(lambda: provider.api("GET", "/api/v1/appliances", admin).json(), what="enrolled")

    names = [f"ordered-{i}.example" for i in range(1000)]
    authority, reference = "Bộ Thông tin và Truyền thông <MIC>", "QĐ-123/2026"
    entered = time.monotonic()
    r = provider.api("POST", "/api/v1/orders", admin, json={"authority": authority, "reference": reference,
                                                            "deadline": "2026-12-31T00:00:00Z",
                                                            "category": "gambling", "domains": names})
    assert r.status_code == 201, r.text
    assert provider.api("POST", "/api/v1/publish", admin).status_code == 200

    def censored(name: str):
        reply = ask(name, "A", eng.port)
        return reply is not None and answers(reply, "A") == ["0.0.0.0"] and ede(reply)

    code, text = eventually(lambda: censored("ordered-0.example"), 60, "the order enforced")
    took = time.monotonic() - entered
    assert code == 16, (code, text)
    assert authority in text and reference in text
    for name in names[::37] + [names[-1], "www.ordered-500.example"]:
        code, text = censored(name) or (None, "")
        assert code == 16 and reference in text, name
    # the profile (malware only) does not block gambling: other names still resolve
    assert answers(ask("www.example.com", "A", eng.port), "A") == ["192.0.2.77"]
    # the block page names the authority and the reference (escaped)
    web = f"http://{yaml_web(eng)}"
    eventually(lambda: web_up(web), what="web UI")
    page = requests.get(f"{web}/blocked", params={"domain": "ordered-7.example"}, timeout=20).text
    assert html.escape(authority, quote=False) in page and reference in page and "<MIC>" not in page
    [order] = provider.api("GET", "/api/v1/orders", admin).json()
    assert order["domains"] == 1000 and order["published_version"] == 1
    print(f"order entered to enforced on the appliance: {took:.1f}s")
