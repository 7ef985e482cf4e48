"""The Store contract for the list provider's link: the unblock-request outbox, the provider's decisions on
forwarded reports and the forwarding lease — shared by every node (here: two connections) of one store."""
from __future__ import annotations

import threading

import pytest

NOW = 1_750_000_000.0
A, B = "appliance-aaaaaaaaaaaaaaaa", "appliance-bbbbbbbbbbbbbbbb"


def test_unblock_requests_are_shared_and_sent_once(store, other_connection):
    first = store.add_provider_unblock("fp.example", "our school", "vi", now=NOW)
    assert first == {"id": 1, "domain": "fp.example", "note": "our school", "lang": "vi", "time": NOW,
                     "status": "queued", "sent": None, "by": None, "remote": 1, "reason": None,
                     "decided_at": None}
    with pytest.raises(ValueError, match="already waiting"):
        other_connection.add_provider_unblock("fp.example")     # the other node sees it
    with pytest.raises(ValueError, match="at most 500"):
        store.add_provider_unblock("x.example", "n" * 501)
    second = other_connection.add_provider_unblock("fp2.example", now=NOW + 1)
    assert second["id"] == 2 and store.list_provider_unblocks() == [first, second]

    assert [i["id"] for i in store.provider_unblocks_to_send(A)] == [1, 2]
    assert other_connection.mark_provider_unblocks_sent([1], A, now=NOW + 5) == 1
    assert store.mark_provider_unblocks_sent([1], B) == 0      # acknowledged once
    assert [i["id"] for i in store.provider_unblocks_to_send(A)] == [2]
    sent = store.list_provider_unblocks()[0]
    assert (sent["status"], sent["sent"], sent["by"]) == ("new", NOW + 5, A)

    # decisions count only from the appliance that sent the request
    assert store.apply_provider_unblock_decisions(B, [{"id": 1, "status": "approved"}]) == 0
    assert store.apply_provider_unblock_decisions(A, [{"id": 1, "status": "rejected", "reason": "<b>no</b>",
                                                       "decided_at": NOW + 9}, {"id": "x"}, "junk"]) == 1
    assert store.apply_provider_unblock_decisions(A, [{"id": 1, "status": "rejected", "reason": "<b>no</b>",
                                                       "decided_at": NOW + 9}]) == 0
    decided = other_connection.list_provider_unblocks()[0]
    assert (decided["status"], decided["reason"], decided["decided_at"]) == ("rejected", "<b>no</b>", NOW + 9)
    assert store.add_provider_unblock("fp.example", now=NOW + 20)["id"] == 3   # decided: may be asked again


def test_imported_outbox_files_keep_their_numbers_at_the_provider(store):
    """Two nodes' older outbox files (each its own appliance, both numbered from 1): every request is kept, sent
    ones keep the number their appliance sent them under, and nothing is sent under a number already used."""
    file_a = [{"id": 1, "domain": "a1.example", "time": 1.0, "status": "new", "sent": 2.0},
              {"id": 2, "domain": "a2.example", "time": 3.0, "status": "queued", "sent": None}]
    file_b = [{"id": 1, "domain": "b1.example", "time": 4.0, "status": "deferred", "sent": 5.0, "reason": "wait"},
              {"id": 2, "domain": "b2.example", "time": 6.0, "status": "new", "sent": 7.0}]
    assert store.import_provider_unblocks(file_a, A) == 2
    assert store.import_provider_unblocks(file_a, A) == 0      # again (a crash before the rename): skipped
    assert store.import_provider_unblocks(file_b, B) == 2
    items = {i["domain"]: i for i in store.list_provider_unblocks()}
    assert len({i["id"] for i in items.values()}) == 4
    assert (items["a1.example"]["by"], items["a1.example"]["remote"]) == (A, 1)
    assert (items["b1.example"]["by"], items["b1.example"]["remote"], items["b1.example"]["status"]) == \
        (B, 1, "deferred")
    assert (items["b2.example"]["by"], items["b2.example"]["remote"]) == (B, 2)
    assert items["a2.example"]["status"] == "queued" and items["a2.example"]["sent"] is None
    # B forwards the queued one: under a number B never used
    [out] = store.provider_unblocks_to_send(B)
    assert out["domain"] == "a2.example" and out["remote"] not in (1, 2)
    assert store.apply_provider_unblock_decisions(B, [{"id": 1, "status": "approved"}]) == 1
    assert {i["domain"]: i["status"] for i in store.list_provider_unblocks()}["a1.example"] == "new"
    assert store.add_provider_unblock("new.example")["id"] > max(i["id"] for i in items.values())


def test_report_decisions_are_kept_per_forwarder(store, other_connection):
    r1 = store.add_report("10.0.0.2", "bad.example", "scam", now=NOW)
    r2 = store.add_report("10.0.0.2", "bad2.example", "gambling", now=NOW + 1)
    r3 = store.add_report("10.0.0.2", "bad3.example", "gambling", now=NOW + 2)
    assert store.reports_awaiting_decisions(A, NOW - 1) == 0
    assert store.mark_reports_forwarded([r1.id, r2.id], now=NOW + 3, by=A) == 2
    assert other_connection.mark_reports_forwarded([r2.id], by=B) == 0       # forwarded once, by A
    assert store.reports_awaiting_decisions(A, NOW - 1) == 2
    assert store.reports_awaiting_decisions(B, NOW - 1) == 0
    assert store.reports_awaiting_decisions(A, NOW + 10) == 0                 # forwarded before the window
    # B's answer about "its" report numbers is not A's reports; an unforwarded report takes no decision
    assert other_connection.save_provider_report_decisions(B, [{"id": r1.id, "status": "approved"}]) == 0
    assert store.save_provider_report_decisions(A, [{"id": r3.id, "status": "approved"}]) == 0
    assert other_connection.save_provider_report_decisions(A, [
        {"id": r1.id, "status": "approved", "category": "scam", "decided_at": NOW + 5},
        {"id": r2.id, "status": "deferred", "reason": "<i>later</i>"}, {"id": True, "status": "approved"},
        {"id": r2.id + 100, "status": "bogus"}]) == 2
    got = store.provider_report_decisions()
    assert set(got) == {r1.id, r2.id}
    assert (got[r1.id]["status"], got[r1.id]["category"], got[r1.id]["by"]) == ("approved", "scam", A)
    assert (got[r2.id]["status"], got[r2.id]["reason"]) == ("deferred", "<i>later</i>")
    assert store.reports_awaiting_decisions(A, NOW - 1) == 2                  # decided, and may be again
    # a report forwarded before forwarders were recorded takes the decision of whoever forwarded it
    assert store.mark_reports_forwarded([r3.id]) == 1
    assert store.reports_awaiting_decisions(B, NOW - 1) == 1
    assert store.save_provider_report_decisions(B, [{"id": r3.id, "status": "rejected", "reason": "r"}]) == 1
    # a second decision replaces the first (approved by mistake, then rejected)
    assert store.save_provider_report_decisions(A, [{"id": r1.id, "status": "rejected", "reason": "a bank"}]) == 1
    assert (store.provider_report_decisions()[r1.id]["status"], store.provider_report_decisions()[r1.id]["reason"]
            ) == ("rejected", "a bank")
    assert store.save_provider_report_decisions(A, [{"id": r1.id, "status": "rejected", "reason": "a bank"}]) == 0
    # a report that was not sent (no site name) waits for nobody's decision
    before = store.reports_awaiting_decisions(B, NOW - 1)
    r4 = store.add_report("10.0.0.2", "not a site", "other", now=NOW + 4)
    store.mark_reports_forwarded([r4.id], by="-")
    assert store.reports_awaiting_decisions(B, NOW - 1) == before


def test_one_forwarding_lease_taken_over_when_it_lapses(store, other_connection):
    assert store.provider_lease_holder(now=NOW) is None
    assert store.provider_lease(A, 60, node="gw1", now=NOW)
    assert not other_connection.provider_lease(B, 60, node="gw2", now=NOW + 1)
    assert store.provider_lease(A, 60, node="gw1", now=NOW + 40)             # renewed
    assert not other_connection.provider_lease(B, 60, now=NOW + 90)          # still A's (until NOW + 100)
    lease = other_connection.provider_lease_holder(now=NOW + 90)
    assert (lease["holder"], lease["node"], lease["since"], lease["until"]) == (A, "gw1", NOW, NOW + 100)
    assert other_connection.provider_lease(B, 60, node="gw2", now=NOW + 101)  # A stopped renewing: B takes it
    assert not store.provider_lease(A, 60, now=NOW + 102)
    store.release_provider_lease(A)                                           # not A's: nothing happens
    assert store.provider_lease_holder(now=NOW + 102)["holder"] == B
    other_connection.release_provider_lease(B)                                # B stops: A takes over at once
    assert store.provider_lease(A, 60, now=NOW + 103)


def test_lease_taken_by_one_of_many_at_once(store, other_connection):
    """Nodes asking at the same moment (after the holder stopped): exactly one gets it."""
    won, barrier = [], threading.Barrier(8)

    def ask(s, who):
        barrier.wait()
        if s.provider_lease(who, 60, now=NOW):
            won.append(who)

    threads = [threading.Thread(target=ask, args=(store if i % 2 else other_connection, f"appliance-{i:020d}"))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1
