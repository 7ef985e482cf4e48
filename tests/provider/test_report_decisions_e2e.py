"""The provider's decisions on forwarded reports reach the appliance (check-in answer) and show on its
requests page: approved (with the category) or rejected with the reviewer's reason, as inert text; a reviewer's
second decision on a report replaces the first there too."""
from __future__ import annotations

from resolver.store.sqlite import SQLiteStore
from tests.provider.conftest import appliance_config, eventually, file_report, web_up, yaml_web
from tests.provider.test_unblock_e2e import _appliance_admin

REASON = '<img src=x onerror="alert(1)"> not a scam: a bank'


def test_report_decisions_shown_on_the_appliance(provider, upstream, start_engine):
    enrol = provider.enrolment_token("Parents")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    one = start_engine(appliance_config(provider, enrol, upstream, web=True), command="run")
    web = eventually(lambda: web_up(f"http://{yaml_web(one)}"), what="web UI up")
    file_report(web, "bank-fp.example", "scam", "asks for a card number")
    file_report(web, "casino-x.example", "gambling", "")
    queue = eventually(lambda: (lambda q: q if len(q) == 2 else None)(
        provider.api("GET", "/api/v1/reports?status=new", reviewer).json()), 60, "both reports forwarded")
    ids = {g["domain"]: g["id"] for g in queue}
    assert provider.api("POST", f"/api/v1/reports/{ids['bank-fp.example']}/decision", reviewer,
                        json={"action": "reject", "reason": REASON}).status_code == 200
    assert provider.api("POST", f"/api/v1/reports/{ids['casino-x.example']}/decision", reviewer,
                        json={"action": "approve", "category": "gambling"}).status_code == 200

    s = _appliance_admin(one, web)

    def shown():
        page = s.get(web + "/requests", timeout=10).text
        return page if "the provider rejected it" in page and "the provider blocks it" in page else None

    page = eventually(shown, 60, "the decisions on the requests page")
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; not a scam: a bank" in page or \
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; not a scam: a bank" in page
    assert '<img src=x onerror="alert(1)">' not in page
    store = SQLiteStore(str(one.data_dir / "hearth.db"))          # kept in the store (the nodes' pages share it)
    try:
        saved = store.provider_report_decisions()
    finally:
        store.close()
    assert sorted(d["status"] for d in saved.values()) == ["approved", "rejected"]
    assert {d["category"] for d in saved.values()} == {"gambling", None}
    assert not (one.data_dir / "provider" / "report_decisions.json").exists()

    # the reviewer decides again (approved by mistake): the appliance shows the new decision
    assert provider.api("POST", f"/api/v1/reports/{ids['casino-x.example']}/decision", reviewer,
                        json={"action": "reject", "reason": "a licensed lottery"}).status_code == 200
    page = eventually(lambda: (lambda p: p if "a licensed lottery" in p else None)(
        s.get(web + "/requests", timeout=10).text), 60, "the second decision on the requests page")
    assert "the provider blocks it" not in page
