"""The model's English ValueError messages reach the HTML UI in the parent's language
(:func:`webui.errors.localise_error`); the model, the CLI and the JSON API keep them in English."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from babel.messages.pofile import read_po
from markupsafe import escape

from resolver.base.names import normalise_name
from resolver.policy.budgets import Budget, parse_target
from resolver.policy.profiles import Device, Profile, Schedule, TempAllow, check_domain, identify, profile_from_preset
from resolver.policy.schedule import END_OF_DAY, Window, WeeklySchedule, parse_days, parse_hhmm
from tests.webui.conftest import Browser, run_wizard
from tests.webui.test_i18n import PO
from webui import actions, budgets, core, errors
from webui.errors import localise_error

VI = {"Accept-Language": "vi"}
EN = {"Accept-Language": "en"}


def _bedtime(**kw):
    fields = dict(profile="Kids", name="Bedtime", days=["mon"], start="21:00", end="07:00")
    fields.update(kw)
    return Schedule(**fields)


def _filled(store):
    """A store with a profile, a device, a schedule, an admin and an access request to collide with."""
    store.add_profile(Profile("Kids"))
    store.add_device(Device("tablet", "ip", "10.0.0.5", "Kids"))
    store.add_schedule(_bedtime())
    store.add_user("admin", "x" * 20, "admin")
    return store.add_access_request("10.0.0.7", "bet.example", "")


# (what the parent did wrong, the bad input, the user text the message must still show — or None)
CASES = [
    # resolver.policy.profiles: names
    ("name not text", lambda s, r: Profile(name=5), "int"),
    ("empty profile name", lambda s, r: Profile(name="   "), None),
    ("long device name", lambda s, r: Device("D" * 41, "ip", "10.0.0.9"), "D" * 41),
    ("bad schedule name", lambda s, r: _bedtime(name="Bed<time>"), "Bed<time>"),
    # resolver.policy.profiles: lists, choices, switches, times, ids
    ("categories not a list", lambda s, r: Profile("Kids", categories="adult"), "str"),
    ("bad category", lambda s, r: Profile("Kids", categories=["Adult!"]), "Adult!"),
    ("bad choice", lambda s, r: Profile("Kids", youtube="loud"), "loud"),
    ("bad switch", lambda s, r: Profile("Kids", safe_search="maybe"), "maybe"),
    ("bad UNIX time", lambda s, r: TempAllow("tablet", "a.example", -1), "-1"),
    ("bad id", lambda s, r: Profile("Kids", id="seven"), "seven"),
    # resolver.policy.profiles: device identities
    ("bad device IP", lambda s, r: Device("Tablet", "ip", "10.0.0.999"), "10.0.0.999"),
    ("bad device network", lambda s, r: Device("Tablet", "cidr", "10.0.0.0/99"), "10.0.0.0/99"),
    ("bad device MAC", lambda s, r: Device("Tablet", "mac", "zz:zz"), "zz:zz"),
    ("all-zero MAC", lambda s, r: Device("Tablet", "mac", "00:00:00:00:00:00"), None),
    ("unknown identity", lambda s, r: identify("my phone"), "my phone"),
    ("no identity", lambda s, r: actions.device_from_fields({"name": "Tablet"}), None),
    ("long hostname", lambda s, r: Device("Tablet", "ip", "10.0.0.9", hostname="h" * 300), "h" * 40),
    # resolver.policy.budgets: a weekday's own minutes (the day as the form names it: T6 = Friday)
    ("weekday minutes out of range", lambda s, r: Budget("Kids", "all", 60, 60, days="fri=2000"), "T6"),
    ("weekday minutes not a number", lambda s, r: Budget("Kids", "all", 60, 60, days="fri=lots"), "lots"),
    ("weekday given twice", lambda s, r: Budget("Kids", "all", 60, 60, days="weekdays=30 fri=90"), "T6"),
    # resolver.policy.budgets and webui.budgets: the budget form and "more minutes"
    ("school-day minutes out of range", lambda s, r: Budget("Kids", "all", 2000, 60), "2000"),
    ("weekend minutes out of range", lambda s, r: Budget("Kids", "all", 60, 5000), "5000"),
    ("school-day minutes not a number", lambda s, r: Budget("Kids", "all", "lots", 60), "lots"),
    ("weekend minutes not a number", lambda s, r: Budget("Kids", "all", 60, "lots"), "lots"),
    ("bad budget reset", lambda s, r: Budget("Kids", "all", 60, 60, reset="7pm"), "7pm"),
    ("no budget target", lambda s, r: parse_target(""), None),
    ("unknown service target", lambda s, r: parse_target("service:robloks"), "robloks"),
    ("unknown category target", lambda s, r: parse_target("category:sweets"), "sweets"),
    ("unknown budget target", lambda s, r: parse_target("robloks"), "robloks"),
    ("budget without minutes", lambda s, r: budgets.budget_from_fields("Kids", {"target": "all"}), None),
    ("extra minutes not a number", lambda s, r: budgets.add_minutes("Kids", "all", "lots"), "lots"),
    ("extra minutes out of range", lambda s, r: budgets.add_minutes("Kids", "all", 0), "0"),
    ("no budget for the target", lambda s, r: budgets.add_minutes("Kids", "roblox", 15), "Kids"),
    ("budget given twice", lambda s, r: budgets.set_budgets("Kids", [{"target": "all", "minutes": 60},
                                                                     {"target": "internet", "minutes": 30}]), None),
    ("weekday minutes not a mapping", lambda s, r: Budget("Kids", "all", 60, 60, days=5), "5"),
    ("weekday minutes without =", lambda s, r: Budget("Kids", "all", 60, 60, days="fri90"), "fri90"),
    ("weekday minutes without a day", lambda s, r: Budget("Kids", "all", 60, 60, days="=90"), "=90"),
    # resolver.policy.profiles: schedules
    ("bad time", lambda s, r: _bedtime(start="25:00"), "25:00"),
    ("bad day", lambda s, r: _bedtime(days=["someday"]), "someday"),
    ("no day", lambda s, r: _bedtime(days=[]), None),
    ("no period", lambda s, r: _bedtime(start="21:00", end="21:00"), "21:00"),
    ("no category", lambda s, r: _bedtime(action="block_categories"), None),
    ("no service", lambda s, r: _bedtime(action="block_services"), None),
    ("categories for block_all", lambda s, r: _bedtime(categories=["adult"]), None),
    ("services for block_all", lambda s, r: _bedtime(services=["tiktok"]), None),
    # resolver.policy.profiles: profiles
    ("unknown preset", lambda s, r: profile_from_preset("Kids", "baby"), "baby"),
    ("blocked and allowed", lambda s, r: Profile("Kids", block=["a.example"], allow=["a.example"]), "a.example"),
    ("bad blocked site", lambda s, r: Profile("Kids", block=["bad site!"]), "bad site!"),
    ("empty allowed site", lambda s, r: Profile("Kids", allow=[" "]), None),
    ("bad international site", lambda s, r: check_domain("é" * 70 + ".vn"), "é" * 70),
    # resolver.policy.schedule
    ("unknown day", lambda s, r: parse_days("mon,funday"), "funday"),
    ("days not text", lambda s, r: parse_days(5), "5"),
    ("no days", lambda s, r: parse_days(" , "), None),
    ("bad day range", lambda s, r: parse_days("mon-"), "mon-"),
    ("time not HH:MM", lambda s, r: parse_hhmm("7pm"), "7pm"),
    ("hour too big", lambda s, r: parse_hhmm("25:00"), "25:00"),
    ("minutes too big", lambda s, r: parse_hhmm("07:75"), "07:75"),
    ("window without days", lambda s, r: Window((), dt.time(21), dt.time(7)), None),
    ("window days not names", lambda s, r: Window((1,), dt.time(21), dt.time(7)), "(1,)"),
    ("window start not a time", lambda s, r: Window(("mon",), "21:00", dt.time(7)), "21:00"),
    ("window starts at 24:00", lambda s, r: Window(("mon",), END_OF_DAY, dt.time(7)), None),
    ("window without period", lambda s, r: Window(("mon",), dt.time(7), dt.time(7)), "07:00"),
    ("unknown time zone", lambda s, r: WeeklySchedule([], "Mars/Olympus"), "Mars/Olympus"),
    # resolver.base.names
    ("empty site name", lambda s, r: normalise_name(""), None),
    ("bad site name", lambda s, r: normalise_name("bad site!"), "bad site!"),
    # resolver.store.sqlite
    ("duplicate profile", lambda s, r: s.add_profile(Profile("kids")), "kids"),
    ("unknown profile", lambda s, r: s.add_device(Device("phone", "ip", "10.0.0.6", "Nobody")), "Nobody"),
    ("unknown profile id", lambda s, r: s.update_profile(Profile("Kids", id=999)), "999"),
    ("rename default", lambda s, r: s.update_profile(Profile("Grown-ups", id=s.get_profile("default").id)), None),
    ("remove default", lambda s, r: s.remove_profile("default"), None),
    ("profile in use", lambda s, r: s.remove_profile("Kids"), "tablet"),
    ("duplicate device", lambda s, r: s.add_device(Device("Tablet", "ip", "10.0.0.6")), "Tablet"),
    ("duplicate identity", lambda s, r: s.add_device(Device("phone", "ip", "10.0.0.5")), "10.0.0.5"),
    ("unknown device id", lambda s, r: s.update_device(Device("phone", "ip", "10.0.0.6", id=999)), "999"),
    ("unknown device", lambda s, r: s.set_pause("phone", None), "phone"),
    ("duplicate schedule", lambda s, r: s.add_schedule(_bedtime(name="bedtime")), "bedtime"),
    ("unknown schedule", lambda s, r: s.remove_schedule("Kids", "Homework"), "Homework"),
    ("unknown temporary allow", lambda s, r: s.remove_temp_allow(999), "999"),
    ("user without password", lambda s, r: s.add_user("mum", ""), None),
    ("duplicate user", lambda s, r: s.add_user("Admin", "x" * 20), "Admin"),
    ("unknown user", lambda s, r: s.update_user("dad", language="vi"), "dad"),
    ("last admin demoted", lambda s, r: s.update_user("admin", role="viewer"), None),
    ("last admin removed", lambda s, r: s.remove_user("admin"), None),
    ("unknown API token", lambda s, r: s.remove_api_token(999), "999"),
    ("request without site", lambda s, r: s.add_access_request("10.0.0.7", "", ""), None),
    ("request from no address", lambda s, r: s.add_access_request("here", "a.example", ""), "here"),
    ("unknown access request", lambda s, r: s.decide_access_request(999, "approved", "day", "admin"), "999"),
    ("report without site", lambda s, r: s.add_report("10.0.0.7", "", "other"), None),
    # webui.actions
    ("unknown profile (UI)", lambda s, r: actions.profile_rule("Nobody", "a.example", "allow"), "Nobody"),
    ("bad rule", lambda s, r: actions.profile_rule("Kids", "a.example", "maybe"), "maybe"),
    ("bad form switch", lambda s, r: actions.profile_from_fields({"safe_search": "perhaps"}), "perhaps"),
    ("unknown device (UI)", lambda s, r: actions.pause_device("phone", 30), "phone"),
    ("minutes not a number", lambda s, r: actions.pause_device("tablet", "soon"), "soon"),
    ("minutes out of range", lambda s, r: actions.pause_device("tablet", 0), "0"),
    ("unknown schedule (UI)", lambda s, r: actions.find_schedule("Kids", "Homework"), "Homework"),
    ("bad decision", lambda s, r: actions.decide_request(r.id, "maybe"), "maybe"),
    ("unknown request (UI)", lambda s, r: actions.decide_request(999, "day"), "999"),
    # webui.admin.system's number fields (Python's own messages)
    ("days not a number", lambda s, r: float("ten"), "ten"),
    ("id not a number", lambda s, r: int("seven"), "seven"),
]

# Shapes no bad input from a form reaches (the checks before them catch it first), and the
# settings page's own checks (raised inside its views: tested through the test client below).
LITERAL = [
    ("refused by the store: UNIQUE constraint failed: devices.name", "devices.name"),
    ("days must not be negative", None),
    ("unknown language 'fr'", "fr"),
    ("unknown upstream choice 'mine'", "mine"),
    ("unknown time zone 'Mars/Olympus'", "Mars/Olympus"),
]


@pytest.fixture
def vi_store(app):
    with app.test_request_context("/", headers=VI):
        request_row = _filled(core.store())
        yield core.store(), request_row


def _message(case, store, request_row) -> str:
    _label, fn, _part = case
    with pytest.raises(ValueError) as info:
        fn(store, request_row)
    return str(info.value)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_model_messages_are_localised(vi_store, case):
    english = _message(case, *vi_store)
    local = localise_error(english)
    assert local != english, english
    assert re.search("[ạảãàáâậầấẩẫăắằặẳẵđêềếểễệôốồổỗộơớờởỡợưứừửữự]", local.lower()), local
    part = case[2]
    if part is not None:
        assert part in local, (english, local)


@pytest.mark.parametrize("english,part", LITERAL)
def test_other_shapes_are_localised(app, english, part):
    with app.test_request_context("/", headers=VI):
        local = localise_error(english)
    assert local != english and (part is None or part in local), local


def test_every_shape_in_the_table_has_a_real_message(vi_store):
    """Each table entry is reached by a case above (no dead shapes), and each case by an entry."""
    messages = [_message(case, *vi_store) for case in CASES] + [m for m, _p in LITERAL]
    used = set()
    while messages:
        message = messages.pop()
        hits = [(i, m) for i, (pattern, _t) in enumerate(errors.TABLE) for m in [pattern.fullmatch(message)] if m]
        assert hits, f"no shape for {message!r}"
        index, match = hits[0]
        used.add(index)
        if "inner" in match.groupdict():          # a message behind a field name: its own shape too
            messages.append(match.group("inner"))
    unused = [errors.TABLE[i][0].pattern for i in range(len(errors.TABLE)) if i not in used]
    assert not unused, unused


def test_templates_keep_their_placeholders():
    po = {m.id: m.string for m in read_po(PO.open("rb")) if m.id}
    placeholder = re.compile(r"%\((\w+)\)s")
    for pattern, template in errors.TABLE:
        msgid = template._args[0]
        groups = set(pattern.groupindex)
        assert set(placeholder.findall(msgid)) == groups, msgid
        assert set(placeholder.findall(po[msgid])) == groups, po[msgid]


def test_english_and_unknown_messages_pass_through(app):
    english = "device address: not an IP address: '10.0.0.999'"
    with app.test_request_context("/", headers=EN):
        assert localise_error(english) == english
    with app.test_request_context("/", headers=VI):
        assert localise_error("something new went wrong: 'x'") == "something new went wrong: 'x'"
        assert localise_error(english) == "Địa chỉ IP của thiết bị không đúng: '10.0.0.999' không phải là địa chỉ IP."
        nested = localise_error("block: not a valid host name: 'bad site!'")
        assert nested == "Danh sách luôn chặn: 'bad site!' không phải là tên trang hợp lệ.", nested
        taken = localise_error("IP address 10.0.0.5 already belongs to device 'tablet'")
        assert taken == "Địa chỉ IP 10.0.0.5 đã thuộc về thiết bị 'tablet'.", taken
        bedtime = localise_error("categories only apply to action block_categories, not block_all")
        assert "“Chặn tất cả (giờ đi ngủ)”" in bedtime, bedtime
    assert localise_error(english) == english          # outside a request


def _flash_after(admin, url, data):
    resp = admin.post(url, data)
    assert resp.status_code == 302
    return admin.get(resp.headers["Location"]).get_data(as_text=True)


def test_bad_device_ip_is_shown_in_the_parents_language(app, admin):
    bad = {"action": "add", "name": "Tablet", "identity": "10.0.0.999"}
    english = "not an IP address, network or MAC address: '10.0.0.999'"
    admin.get("/lang/vi?next=/devices")
    page = _flash_after(admin, "/devices", bad)
    expected = "'10.0.0.999' không phải là địa chỉ IP, mạng hay địa chỉ MAC."
    assert str(escape(expected)) in page and "not an IP address" not in page
    admin.get("/lang/en?next=/devices")
    page = _flash_after(admin, "/devices", bad)
    assert str(escape(english)) in page and "không phải" not in page


def test_user_text_in_a_localised_message_is_escaped(admin):
    admin.get("/lang/vi?next=/devices")
    page = _flash_after(admin, "/devices", {"action": "add", "name": "<b>x</b>", "identity": "10.0.0.9"})
    assert "Tên thiết bị chỉ được có chữ cái" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_store_and_settings_messages_in_vietnamese(admin):
    admin.get("/lang/vi?next=/devices")
    admin.post("/devices", {"action": "add", "name": "Tablet", "identity": "10.0.0.5"})
    page = _flash_after(admin, "/devices", {"action": "add", "name": "Phone", "identity": "10.0.0.5"})
    assert str(escape("Địa chỉ IP 10.0.0.5 đã thuộc về thiết bị 'Tablet'.")) in page
    page = _flash_after(admin, "/settings", {"action": "purge", "days": "-3"})
    assert "Số ngày không được là số âm." in page
    page = _flash_after(admin, "/settings", {"action": "purge", "days": "ten"})
    assert str(escape("'ten' không phải là một số.")) in page
    page = _flash_after(admin, "/settings", {"action": "resolver", "upstream": "quad9", "timezone": "Mars/Olympus"})
    assert str(escape("Không có múi giờ 'Mars/Olympus'")) in page


def test_wizard_and_report_form_errors_in_vietnamese(app):
    b = Browser(app.test_client())
    b.get("/lang/vi?next=/setup")
    page = run_wizard(b, device_name="Tablet", device_id="10.0.0.999").get_data(as_text=True)
    assert str(escape("'10.0.0.999' không phải là địa chỉ IP, mạng hay địa chỉ MAC.")) in page
    kid = Browser(app.test_client())
    kid.get("/lang/vi?next=/report")
    page = kid.post("/report", {"url": "", "kind": "other"}, page="/report").get_data(as_text=True)
    assert "Trang nào? Bạn chưa nhập địa chỉ trang." in page


def test_api_keeps_english(admin):
    admin.get("/lang/vi?next=/")
    resp = admin.api("POST", "/api/v1/devices", {"name": "Tablet", "identity": "10.0.0.999"})
    assert resp.status_code == 400
    assert "not an IP address" in resp.get_data(as_text=True)
