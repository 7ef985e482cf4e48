"""The Store contract for what the web UI keeps: users, API tokens, login attempts, the audit log,
access requests, harmful-site reports, settings, and the query-log statistics."""
from __future__ import annotations

import pytest

from resolver.store.protocol import QueryRow, is_blocked

NOW = 1_750_000_000.0


def _q(ts, client, name, reason=None):
    return QueryRow(ts, client, name, 1, 0, "", "", 1.0, False, reason)


def test_is_blocked():
    assert is_blocked("category:adult") and is_blocked("bypass") and is_blocked("schedule:bedtime")
    assert not is_blocked(None) and not is_blocked("local-record") and not is_blocked("safe-search:google")


def test_users(store):
    assert store.count_users() == 0 and store.get_user("admin") is None
    admin = store.add_user("Admin", "scrypt:x", "admin", "vi", now=NOW)
    assert admin.name == "Admin" and admin.role == "admin" and admin.language == "vi" and admin.created == NOW
    assert store.get_user("admin") == admin == store.get_user_by_id(admin.id)
    with pytest.raises(ValueError, match="already exists"):
        store.add_user("ADMIN", "scrypt:y")
    with pytest.raises(ValueError, match="role must be one of"):
        store.add_user("x", "scrypt:y", "root")
    with pytest.raises(ValueError, match="may only hold"):
        store.add_user("<x>", "scrypt:y")
    with pytest.raises(ValueError, match="last admin"):
        store.update_user("admin", role="viewer")
    with pytest.raises(ValueError, match="last admin"):
        store.remove_user("admin")
    store.add_user("mum", "h", "viewer")
    assert [u.name for u in store.list_users()] == ["Admin", "mum"] and store.count_users() == 2
    mum = store.update_user("Mum", role="admin", password_hash="h2", language="en", last_login=NOW)
    assert (mum.role, mum.password_hash, mum.language, mum.last_login) == ("admin", "h2", "en", NOW)
    store.update_user("admin", role="viewer")          # another admin is left
    store.remove_user("admin")
    with pytest.raises(ValueError, match="unknown user"):
        store.remove_user("admin")


def test_api_tokens(store):
    store.add_user("dad", "h")
    tok = store.add_api_token("dad", "ab" * 32, "script", now=NOW)
    assert tok.user == "dad" and tok.label == "script" and tok.last_used is None
    assert store.user_for_token("cd" * 32) is None
    assert store.user_for_token("ab" * 32, now=NOW + 5).name == "dad"
    assert store.list_api_tokens("dad")[0].last_used == NOW + 5
    store.add_user("other", "h")
    store.remove_user("dad")
    assert store.list_api_tokens() == [] and store.user_for_token("ab" * 32) is None
    with pytest.raises(ValueError, match="unknown user"):
        store.add_api_token("nobody", "x")


def test_login_attempts(store):
    for i in range(3):
        store.add_login_attempt("dad", False, NOW + i)
    assert store.login_failures("dad", NOW - 60) == (3, NOW + 2)
    assert store.login_failures("dad", NOW + 1.5) == (1, NOW + 2)
    store.add_login_attempt("dad", True, NOW + 3)
    assert store.login_failures("dad", NOW - 60)[0] == 0        # a success resets the count
    store.add_login_attempt("dad", False, NOW + 4)
    assert store.login_failures("dad", NOW - 60)[0] == 1
    assert store.purge_login_attempts(NOW + 3.5) == 4


def test_one_ended_session_is_refused_until_its_cookie_expires_then_forgotten(store):
    store.end_web_session("laptop-sid", until=2000.0, now=1000.0)
    assert store.web_session_ended("laptop-sid") and not store.web_session_ended("phone-sid")
    store.end_web_session("phone-sid", until=5000.0, now=3000.0)       # the laptop's has expired: forgotten
    assert not store.web_session_ended("laptop-sid") and store.web_session_ended("phone-sid")


def test_session_generation_per_user(store):
    mum = store.add_user("mum", "h1")
    dad = store.add_user("dad", "h2")
    assert store.session_generation(mum.id) == 0 == store.session_generation(dad.id)
    assert store.bump_session_generation(mum.id) == 1 and store.bump_session_generation(mum.id) == 2
    assert store.session_generation(mum.id) == 2 and store.session_generation(dad.id) == 0


def test_audit_log(store):
    a = store.add_audit("dad", "profile.update", "Kids", {"safe_search": False}, {"safe_search": True}, now=NOW)
    b = store.add_audit("dad", "device.remove", "tablet", {"name": "tablet"}, None, now=NOW + 1)
    assert store.list_audit() == [b, a]
    assert a.before == {"safe_search": False} and a.after == {"safe_search": True} and b.after is None
    assert store.list_audit(before_id=b.id) == [a]


def test_access_requests(store):
    r = store.add_access_request("192.168.1.5", "game.example", "homework <b>", device="tablet", profile="Kids",
                                 reason="category:games", now=NOW)
    assert (r.status, r.decision, r.message, r.until) == ("pending", "", "homework <b>", None)
    again = store.add_access_request("192.168.1.5", "game.example", "please", now=NOW + 1)
    assert again.id == r.id and again.message == "please"
    other = store.add_access_request("192.168.1.6", "x.example", "", now=NOW + 2)
    assert store.count_access_requests("192.168.1.5", NOW - 1) == 1
    done = store.decide_access_request(r.id, "approved", "30m", "dad", until=NOW + 1800, now=NOW + 3)
    assert (done.status, done.decision, done.decided_by, done.until) == ("approved", "30m", "dad", NOW + 1800)
    assert store.latest_access_request("192.168.1.5", "game.example") == done
    assert [x.id for x in store.list_access_requests()] == [other.id, r.id]       # pending first
    assert [x.id for x in store.list_access_requests("approved")] == [r.id]
    third = store.add_access_request("192.168.1.5", "game.example", "again", now=NOW + 4)
    assert third.id != r.id and store.latest_access_request("192.168.1.5", "game.example").id == third.id
    with pytest.raises(ValueError):
        store.decide_access_request(99, "approved", "day", "dad")
    with pytest.raises(ValueError):
        store.add_access_request("not an ip", "x.example", "")


def test_reports(store):
    a = store.add_report("10.0.0.2", "http://bad.example/<x>", "violence", "mum@example", "msg\x00", now=NOW)
    b = store.add_report("10.0.0.2", "bad2.example", "scam", now=NOW + 1)
    assert store.list_reports() == [b, a] and a.message == "msg" and a.url == "http://bad.example/<x>"
    assert store.count_reports("10.0.0.2", NOW + 0.5) == 1


def test_reports_name_the_device_and_are_marked_handled_once(store):
    a = store.add_report("10.0.0.2", "bad.example", "violence", now=NOW, device="An tablet")
    b = store.add_report("10.0.0.3", "bad2.example", "scam", now=NOW + 1)
    assert a.device == "An tablet" and b.device == "" and a.handled_ts is None and a.forwarded_ts is None
    assert store.count_new_reports() == 2 and store.list_reports(handled=False) == [b, a]
    done = store.mark_report_handled(a.id, "mum", now=NOW + 10)
    assert (done.handled_ts, done.handled_by) == (NOW + 10, "mum") and store.get_report(a.id) == done
    assert store.mark_report_handled(a.id, "dad", now=NOW + 20) == done        # the first answer stays
    assert store.count_new_reports() == 1 and store.list_reports(handled=False) == [b]
    assert store.list_reports(handled=True) == [done]
    with pytest.raises(ValueError, match="unknown report 999"):
        store.mark_report_handled(999, "mum")
    assert store.get_report(999) is None


def test_settings(store):
    assert store.get_setting("language", "en") == "en"
    store.set_setting("language", "vi")
    store.set_setting("upstreams", ["udp://127.0.0.1:53"])
    assert store.get_setting("language") == "vi" and store.get_setting("upstreams") == ["udp://127.0.0.1:53"]
    before = store.policy_version()
    store.set_setting("language", "en")
    assert store.get_setting("language") == "en" and store.policy_version() == before


def test_query_statistics(store):
    hour = 3600 * (int(NOW) // 3600)
    store.add_queries([
        _q(hour + 10, "10.0.0.2", "a.example"),
        _q(hour + 20, "10.0.0.2", "bad.example", "category:adult"),
        _q(hour + 30, "10.0.0.2", "bad.example", "category:adult"),
        _q(hour + 3700, "10.0.0.3", "a.example", "local-record"),
        _q(hour + 3800, "10.0.0.3", "late.example", "schedule:bedtime"),
    ])
    counts = store.hourly_counts(hour, hour + 7199)
    assert [(c.hour, c.total, c.blocked) for c in counts] == [(hour, 3, 2), (hour + 3600, 2, 1)]
    assert store.hourly_counts(hour, hour + 7199, clients=["10.0.0.3"])[0].total == 0
    assert store.top_domains(hour)[0] == ("a.example", 2, 0)
    assert store.top_domains(hour, blocked=True) == [("bad.example", 2, 2), ("late.example", 1, 1)]
    assert store.top_clients(hour) == [("10.0.0.2", 3, 2), ("10.0.0.3", 2, 1)]
    assert store.count_clients(hour) == 2 and store.count_clients(hour + 3601) == 1
    page = store.query_page(10)
    assert [p.row.qname for p in page] == ["late.example", "a.example", "bad.example", "bad.example", "a.example"]
    assert [p.row.qname for p in store.query_page(10, blocked=False)] == ["a.example", "a.example"]
    assert [p.row.qname for p in store.query_page(10, after_id=page[1].id)] == ["late.example"]
    assert [p.row.qname for p in store.query_page(2, before_id=page[1].id, clients=["10.0.0.2"])] == \
        ["bad.example", "bad.example"]
    assert store.query_page(10, clients=[]) == []
    assert [p.row.qname for p in store.query_page(10, qname_contains="LATE")] == ["late.example"]
    online = store.online_minutes(hour, hour + 7199, clients=["10.0.0.2"])
    assert [(o.total, o.blocked) for o in online] == [(5, 2), (0, 0)]
