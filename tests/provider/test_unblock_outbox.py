"""The unblock-request outbox (DATA_DIR/provider/unblocks.json) against a real provider process: a request
made while the provider is down stays queued and arrives once it is back, once, even when sent again; the
decision comes back with the next check-in."""
from __future__ import annotations

import time

import pytest

from blocklists import provider_client as pc
from blocklists import provider_unblocks as pu


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_outbox_waits_for_the_provider_and_delivers_once(provider, tmp_path):
    enrol = provider.enrolment_token("School")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    link = pc.ProviderLinkConfig(url=provider.url + "/", token=enrol, poll_interval=60)
    data = str(tmp_path / "appliance")
    pc.enrolled(link, data)
    provider.stop()                                          # the provider (or the uplink) is down

    first = pu.request_unblock(data, "fp.example", "a school site", lang="vi")
    with pytest.raises(ValueError, match="already waiting"):
        pu.request_unblock(data, "FP.example.", "again")
    with pytest.raises(pc.ProviderError, match="cannot reach"):
        pc.forward_unblocks(link, data)
    assert [i["status"] for i in pu.load(data)] == ["queued"]  # still in the outbox

    provider.start()
    assert pc.forward_unblocks(link, data) == 1
    assert pc.forward_unblocks(link, data) == 0              # nothing left to send
    state = pu.load(data)
    assert state[0]["status"] == "new" and state[0]["sent"]
    # the same request sent twice (a lost answer) is counted once by the provider
    token = pc.load_state(data)["token"]
    r = provider.api("POST", "/api/v1/unblocks", token, json={"requests": [pu.payload(first)]})
    assert r.json() == {"accepted": [first["id"]], "new": 0}
    [group] = provider.api("GET", "/api/v1/reports?kind=unblock", reviewer).json()
    assert group["reports"] == 1 and group["notes"] == ["a school site"]
    r = provider.api("POST", "/api/v1/unblocks", token, json={"requests": [{"id": 2, "domain": "x", "time": 1}]})
    assert r.status_code == 400 and "requests[0].domain" in r.json()["error"]

    provider.api("POST", f"/api/v1/reports/{group['id']}/decision", reviewer, json={"action": "defer",
                                                                                   "reason": "ask the school"})
    pc.poll(link, data, {"feed_version": None, "entries": 0, "last_error": ""})   # the check-in brings it
    [item] = pu.load(data)
    assert item["status"] == "deferred" and item["reason"] == "ask the school" and item["decided_at"] <= time.time()
    # a deferred request is still open: asking again is refused until it is decided
    with pytest.raises(ValueError, match="already waiting"):
        pu.request_unblock(data, "fp.example")
