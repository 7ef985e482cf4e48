"""The appliance's link to the provider: the report outbox survives the provider being down and a restart and
delivers each report once; a changed feed key is refused; a flooding appliance gets 429; wrong appliance
tokens get 401."""
from __future__ import annotations

import shutil
import time

import pytest

from blocklists import provider_client as pc
from tests.provider.conftest import RunningProvider
from tests.provider.conftest import appliance_config, eventually, file_report, web_up, yaml_web


def test_outbox_survives_provider_down_and_appliance_restart(provider, upstream, start_engine):
    enrol = provider.enrolment_token("Parents' association")
    admin = provider.token("alice", "admin")
    provider.start()
    one = start_engine(appliance_config(provider, enrol, upstream, web=True), command="run")
    web = f"http://{yaml_web(one)}"
    eventually(lambda: len(provider.api("GET", "/api/v1/appliances", admin).json()) == 1, what="enrolled")

    provider.stop()                                   # the provider (or the uplink) goes down
    eventually(lambda: web_up(web), what="web UI up")
    file_report(web, "scam-one.example", "scam", "asks for my bank card")
    file_report(web, "http://scam-two.example/x", "scam", "")
    time.sleep(8)                                     # a few failed sends, backing off
    assert "forwarding reports failed" in one.log()
    one.stop()                                        # ... and the appliance restarts meanwhile
    one.start()
    time.sleep(3)
    provider.start()                                  # back: the reports arrive, once each
    groups = eventually(lambda: (lambda g: g if len(g) == 2 else None)(
        provider.api("GET", "/api/v1/reports?status=new", admin).json()), 120, "both reports forwarded")
    assert sorted(g["domain"] for g in groups) == ["scam-one.example", "scam-two.example"]
    time.sleep(POLL_SETTLE)
    groups = provider.api("GET", "/api/v1/reports?status=new", admin).json()
    assert [g["reports"] for g in groups] == [1, 1] and {g["category"] for g in groups} == {"scam"}
    assert any(g["notes"] == ["asks for my bank card"] for g in groups)


POLL_SETTLE = 6


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_enrolment_pins_the_key_and_refuses_a_changed_one(provider, tmp_path):
    enrol = provider.enrolment_token("ISP")
    provider.start()
    link = pc.ProviderLinkConfig(url=provider.url + "/", token=enrol, poll_interval=60)
    data = str(tmp_path / "appliance")
    state = pc.enrolled(link, data)
    assert state["public_key"] == (provider.data_dir / "keys" / "feed.pub").read_text().strip()
    assert pc.enrolled(link, data) == state               # once: the second call does not enrol again
    # the provider's key changes (or someone impersonates it): enrolling again is refused
    provider.stop()
    shutil.rmtree(provider.data_dir / "keys")
    provider.start()
    st = pc.load_state(data)
    st["token"] = ""                                   # the appliance lost its token and enrols again
    pc.save_state(data, st)
    with pytest.raises(pc.ProviderError, match="key changed"):
        pc.enrolled(link, data)
    # a configured key that differs from the pinned one is refused too
    other = pc.ProviderLinkConfig(url=provider.url + "/", token=enrol, poll_interval=60,
                                  public_key="A" * 43 + "=")
    with pytest.raises(pc.ProviderError):
        pc.enrolled(other, data)


def test_appliance_tokens_and_report_flood(tmp_path, database):
    provider = RunningProvider(tmp_path / "p", database, report_limit=3)
    try:
        enrol = provider.enrolment_token("School")
        admin = provider.token("alice", "admin")
        provider.start()
        r = provider.api("POST", "/api/v1/enrol", json={"token": "hpe_wrong", "appliance_id": "a" * 20})
        assert r.status_code == 401
        r = provider.api("POST", "/api/v1/enrol", json={"token": enrol, "appliance_id": "../../etc"})
        assert r.status_code == 400 and "appliance_id" in r.json()["error"]
        r = provider.api("POST", "/api/v1/enrol", json={"token": enrol, "appliance_id": "b" * 20})
        assert r.status_code == 201
        token = r.json()["token"]
        assert provider.api("POST", "/api/v1/checkin", "hpa_wrong", json={}).status_code == 401
        assert provider.api("POST", "/api/v1/checkin", admin, json={}).status_code == 401   # a user is no appliance
        assert provider.api("POST", "/api/v1/checkin", token, json={"feed_version": "x"}).status_code == 400

        def report(i: int, **kw):
            item = {"id": i, "domain": f"flood{i}.example", "category": "other", "time": time.time(), **kw}
            return provider.api("POST", "/api/v1/reports", token, json={"reports": [item]})

        r = report(1, domain="not a name")
        assert r.status_code == 400 and "reports[0].domain" in r.json()["error"]
        r = report(1, note="x" * 501)
        assert r.status_code == 400 and "500" in r.json()["error"]
        assert report(1).json() == {"accepted": [1], "new": 1}
        assert report(1).json() == {"accepted": [1], "new": 0}     # a retry counts once
        assert report(2).status_code == 200 and report(3).status_code == 200
        r = report(4)
        assert r.status_code == 429 and "reports in an hour" in r.json()["error"]
        assert len(provider.api("GET", "/api/v1/reports", admin).json()) == 3
    finally:
        provider.stop()
