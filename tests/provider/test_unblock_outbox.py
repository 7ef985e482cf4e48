"""The unblock-request outbox (in the store) against a real provider process: a request made while the provider
is down stays queued and arrives once it is back, once, even when sent again; the decision comes back with the
next check-in. An older appliance's outbox file is moved into the store without losing a request."""
from __future__ import annotations

import time

import pytest

from blocklists import provider_client as pc
from blocklists import provider_unblocks as pu
from resolver.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "hearth.db"))
    s.migrate()
    yield s
    s.close()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_outbox_waits_for_the_provider_and_delivers_once(provider, tmp_path, store):
    enrol = provider.enrolment_token("School")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    link = pc.ProviderLinkConfig(url=provider.url + "/", token=enrol, poll_interval=60)
    data = str(tmp_path / "appliance")
    pc.enrolled(link, data)
    provider.stop()                                          # the provider (or the uplink) is down

    first = pu.request_unblock(store, "fp.example", "a school site", lang="vi")
    with pytest.raises(ValueError, match="already waiting"):
        pu.request_unblock(store, "FP.example.", "again")
    with pytest.raises(pc.ProviderError, match="cannot reach"):
        pc.forward_unblocks(link, data, store)
    assert [i["status"] for i in pu.load(store)] == ["queued"]  # still in the outbox

    provider.start()
    assert pc.forward_unblocks(link, data, store) == 1
    assert pc.forward_unblocks(link, data, store) == 0              # nothing left to send
    state = pu.load(store)
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
    pc.poll(link, data, {"feed_version": None, "entries": 0, "last_error": ""}, store)   # the check-in brings it
    [item] = pu.load(store)
    assert item["status"] == "deferred" and item["reason"] == "ask the school" and item["decided_at"] <= time.time()
    # a deferred request is still open: asking again is refused until it is decided
    with pytest.raises(ValueError, match="already waiting"):
        pu.request_unblock(store, "fp.example")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_an_older_appliances_outbox_file_is_moved_into_the_store(provider, tmp_path, store):
    """An appliance upgraded with a request waiting in unblocks.json and one sent already (with its decision
    pending): both move into the store; the waiting one is sent at the next run, the sent one is not sent again
    and its decision still arrives."""
    import json

    enrol = provider.enrolment_token("School")
    reviewer = provider.token("rita", "reviewer")
    provider.start()
    link = pc.ProviderLinkConfig(url=provider.url + "/", token=enrol, poll_interval=60)
    data = str(tmp_path / "appliance")
    state = pc.enrolled(link, data)
    token = state["token"]
    old_sent = {"id": 1, "domain": "sent-before.example", "note": "old", "lang": "vi", "time": 1000.0,
                "status": "new", "sent": 1001.0, "reason": None, "decided_at": None}
    assert provider.api("POST", "/api/v1/unblocks", token, json={"requests": [pu.payload(old_sent)]}).ok
    waiting = {"id": 2, "domain": "waiting.example", "note": "<i>school</i>", "lang": "vi", "time": 1002.0,
               "status": "queued", "sent": None, "reason": None, "decided_at": None}
    outbox = tmp_path / "appliance" / "provider" / "unblocks.json"
    outbox.write_text(json.dumps([old_sent, waiting]))
    (outbox.parent / "report_decisions.json").write_text(json.dumps({"7": {"status": "rejected", "reason": "r"}}))

    assert pc.migrate_files(data, store) == 2                 # two requests (report 7 is not in this store)
    assert not outbox.exists() and (outbox.parent / "unblocks.json.migrated").exists()
    assert pc.migrate_files(data, store) == 0                 # once
    items = {i["domain"]: i for i in pu.load(store)}
    assert items["sent-before.example"]["status"] == "new" and items["sent-before.example"]["remote"] == 1
    assert items["waiting.example"]["status"] == "queued" and items["waiting.example"]["note"] == "<i>school</i>"
    assert pc.forward_unblocks(link, data, store) == 1        # only the waiting one
    groups = provider.api("GET", "/api/v1/reports?kind=unblock", reviewer).json()
    assert sorted((g["domain"], g["reports"]) for g in groups) == [("sent-before.example", 1),
                                                                    ("waiting.example", 1)]
    group = next(g for g in groups if g["domain"] == "sent-before.example")
    provider.api("POST", f"/api/v1/reports/{group['id']}/decision", reviewer, json={"action": "approve"})
    pc.poll(link, data, {"feed_version": None, "entries": 0, "last_error": ""}, store)
    assert {i["domain"]: i["status"] for i in pu.load(store)} == {"sent-before.example": "approved",
                                                                   "waiting.example": "new"}
