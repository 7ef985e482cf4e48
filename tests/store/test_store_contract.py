"""The Store contract for profiles, devices, schedules, temporary allows and seen clients.

Every backend passes these (see conftest.py); the first part checks the domain model itself.
"""
from __future__ import annotations

import dataclasses
import time

import pytest

from resolver.policy.profiles import (ALL_CATEGORIES, CATEGORIES, DEFAULT_PROFILE, PRESETS, Device, Profile, Schedule,
                               SeenClient, TempAllow, identify, profile_from_preset)
from resolver.store.protocol import QueryRow

NOW = 1_750_000_000.0


# -- the model -------------------------------------------------------------------------------------

def test_profile_normalises_its_fields():
    p = Profile(name="  Kids tablet ", preset="Child", categories=["Social", "adult", "zzz", "adult"],
                services=["tiktok", "Discord"], youtube="Strict", block=["Ví-Dụ.VN.", "*.Example.com", "example.com"],
                allow=["School.example"])
    assert p.name == "Kids tablet" and p.preset == "child"
    assert p.categories == ("adult", "social", "zzz")    # standard order first, then the others
    assert p.services == ("discord", "tiktok") and p.youtube == "strict"
    assert p.block == ("*.example.com", "example.com", "xn--v-d-rma6749a.vn") and p.allow == ("school.example",)
    assert Profile("x", categories=["adult", "*"]).categories == (ALL_CATEGORIES,)
    with pytest.raises(ValueError, match="categories: not a valid name"):
        Profile("x", categories=["*", "not valid"])
    assert dataclasses.replace(p, name="Other") == dataclasses.replace(p, name=" Other ")


@pytest.mark.parametrize("kwargs, message", [
    ({"name": ""}, "profile name is empty"),
    ({"name": "x" * 41}, "longer than 40"),
    ({"name": "bad/name"}, "may only hold"),
    ({"name": 7}, "must be text"),
    ({"name": "ok", "preset": "toddler"}, "unknown preset"),
    ({"name": "ok", "categories": "adult"}, "categories must be a list"),
    ({"name": "ok", "categories": ["Adult stuff"]}, "categories: not a valid name"),
    ({"name": "ok", "services": ["*"]}, "services: not a valid name"),
    ({"name": "ok", "youtube": "loose"}, "youtube must be one of strict, moderate, off"),
    ({"name": "ok", "block_mode": "refuse"}, "block_mode must be one of null, nxdomain, page"),
    ({"name": "ok", "safe_search": "yes"}, "safe_search must be true or false"),
    ({"name": "ok", "bypass_prevention": 1}, "bypass_prevention must be true or false"),
    ({"name": "ok", "block": ["exa mple.com"]}, "block: not a valid host name"),
    ({"name": "ok", "allow": ["a.*.example"]}, "allow: not a valid host name"),
    ({"name": "ok", "block": ["a.example"], "allow": ["A.example."]}, "'a.example' is both blocked and allowed"),
    ({"name": "ok", "updated": -1}, "updated must be a UNIX time"),
])
def test_profile_validation(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        Profile(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind, value, expected", [
    ("ip", " 192.168.1.20 ", "192.168.1.20"),
    ("ip", "2001:DB8:0:0::1", "2001:db8::1"),
    ("cidr", "192.168.1.77/24", "192.168.1.0/24"),
    ("cidr", "2001:db8::1/64", "2001:db8::/64"),
    ("mac", "AA:BB:CC:DD:EE:FF", "aa:bb:cc:dd:ee:ff"),
    ("mac", "aa-bb-cc-dd-ee-ff", "aa:bb:cc:dd:ee:ff"),
    ("mac", "AABB.CCDD.EEFF", "aa:bb:cc:dd:ee:ff"),
    ("mac", "aabbccddeeff", "aa:bb:cc:dd:ee:ff"),
    ("mac", "a:b:c:d:e:f", "0a:0b:0c:0d:0e:0f"),
    ("MAC", "01:02:03:04:05:06", "01:02:03:04:05:06"),
])
def test_device_identity_is_normalised(kind, value, expected):
    device = Device("d", kind, value)
    assert device.value == expected and device.kind == kind.lower() and device.profile == "default"


@pytest.mark.parametrize("kind, value, message", [
    ("ip", "192.168.1.0/24", "not an IP address"),
    ("ip", "tablet.lan", "not an IP address"),
    ("cidr", "192.168.1.0/33", "not an IP network"),
    ("mac", "aa:bb:cc:dd:ee", "not a MAC address"),
    ("mac", "aa:bb:cc:dd:ee:fg", "not a MAC address"),
    ("mac", "aabb.ccdd.eef", "not a MAC address"),
    ("mac", "00:00:00:00:00:00", "all-zero"),
    ("hostname", "1.2.3.4", "device kind must be one of ip, cidr, mac"),
])
def test_device_validation(kind, value, message):
    with pytest.raises(ValueError, match=message):
        Device("d", kind, value)


def test_device_other_fields_and_identify():
    with pytest.raises(ValueError, match="paused_until must be a UNIX time"):
        Device("d", "ip", "10.0.0.1", paused_until=float("nan"))
    with pytest.raises(ValueError, match="device name may only hold"):
        Device("tablet!", "ip", "10.0.0.1")
    assert Device("d", "ip", "10.0.0.1", paused_until=NOW).paused(NOW - 1)
    assert not Device("d", "ip", "10.0.0.1", paused_until=NOW).paused(NOW)
    assert identify("AA-BB-CC-DD-EE-FF") == ("mac", "aa:bb:cc:dd:ee:ff")
    assert identify("10.1.2.3") == ("ip", "10.1.2.3") and identify("10.1.2.3/8") == ("cidr", "10.0.0.0/8")
    with pytest.raises(ValueError, match="not an IP address, network or MAC address"):
        identify("tablet")


def test_schedule_normalises_and_validates():
    s = Schedule("Child", " Bedtime ", ["Sunday", "mon", "MON"], "7:05", "21:30")
    assert (s.name, s.days, s.start, s.end, s.action) == ("Bedtime", ("mon", "sun"), "07:05", "21:30", "block_all")
    s = Schedule("child", "homework", ["tue"], "16:00", "18:00", "block_categories", categories=["games", "social"])
    assert s.categories == ("social", "games")
    bad = [
        ({"days": []}, "at least one day"),
        ({"days": ["mo"]}, "not a day"),
        ({"days": "mon"}, "days must be a list"),
        ({"start": "24:00"}, "start must be a time HH:MM"),
        ({"end": "7pm"}, "end must be a time HH:MM"),
        ({"start": "08:00", "end": "8:00"}, "both 08:00"),
        ({"action": "block_some"}, "action must be one of"),
        ({"action": "block_categories"}, "needs at least one category"),
        ({"action": "block_services"}, "needs at least one service"),
        ({"categories": ["games"]}, "categories only apply to action block_categories"),
        ({"action": "block_categories", "categories": ["games"], "services": ["x"]}, "services only apply"),
        ({"enabled": "no"}, "enabled must be true or false"),
        ({"name": ""}, "schedule name is empty"),
    ]
    base = {"profile": "child", "name": "bed", "days": ["mon"], "start": "20:00", "end": "07:00"}
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            Schedule(**{**base, **kwargs})


def test_schedule_crossing_midnight_belongs_to_its_start_day():
    night = Schedule("child", "school nights", ["sun", "mon"], "21:00", "06:30")
    assert night.covers(0, 21 * 60) and night.covers(0, 23 * 60 + 59)     # Monday evening
    assert night.covers(1, 6 * 60 + 29) and not night.covers(1, 6 * 60 + 30)  # … into Tuesday morning
    assert night.covers(0, 60)                                             # Monday 01:00, from Sunday
    assert not night.covers(1, 21 * 60) and not night.covers(6, 60)        # Tuesday evening; Sunday 01:00
    day = Schedule("child", "school", ["mon"], "08:00", "15:00")
    assert day.covers(0, 8 * 60) and not day.covers(0, 15 * 60) and not day.covers(1, 9 * 60)


def test_temp_allow_and_seen_client_validation():
    assert TempAllow(" tablet ", "YouTube.com.", NOW).domain == "youtube.com"
    assert TempAllow("tablet", "*.youtube.com", NOW).domain == "*.youtube.com"
    with pytest.raises(ValueError, match="domain: not a valid host name"):
        TempAllow("tablet", "you tube", NOW)
    with pytest.raises(ValueError, match="until must be a UNIX time"):
        TempAllow("tablet", "a.example", "tomorrow")
    client = SeenClient("::FFFF:10.0.0.1", "AA-BB-CC-DD-EE-FF")
    assert client.address == "10.0.0.1" and client.mac == "aa:bb:cc:dd:ee:ff"
    with pytest.raises(ValueError, match="client address: not an IP address"):
        SeenClient("10.0.0.300")


def test_presets_are_valid_distinct_and_documented():
    assert set(PRESETS) == {"young-child", "child", "teen", "adult", "guest", "school-pupil"}
    settings = set()
    for key, p in PRESETS.items():
        assert p.name == key and p.preset == key and p.id is None
        assert dataclasses.replace(p) == p                       # survives validation unchanged
        assert {"malware", "phishing", "scam"} <= set(p.categories)
        assert set(p.categories) <= set(CATEGORIES)
        assert p.bypass_prevention == (key != "adult")
        settings.add((p.categories, p.safe_search, p.youtube, p.bypass_prevention))
    assert len(settings) == len(PRESETS)
    assert set(PRESETS["young-child"].categories) == set(CATEGORIES)
    assert PRESETS["adult"].categories == ("malware", "phishing", "scam") and not PRESETS["adult"].safe_search
    assert PRESETS["teen"].youtube == "moderate" and "social" not in PRESETS["teen"].categories
    assert "ads" not in PRESETS["school-pupil"].categories and "games" in PRESETS["school-pupil"].categories
    # a device nobody has set up: harm blocked, time-spending categories (a grown-up's phone) open
    assert {"adult", "gambling", "malware", "phishing", "scam", "bypass"} <= set(DEFAULT_PROFILE.categories)
    assert not {"social", "games", "video"} & set(DEFAULT_PROFILE.categories) and "default" not in PRESETS
    mine = profile_from_preset("Anna", "teen")
    assert mine.name == "Anna" and mine.preset == "teen" and mine.categories == PRESETS["teen"].categories
    with pytest.raises(ValueError, match="unknown preset"):
        profile_from_preset("Anna", "toddler")


# -- profiles --------------------------------------------------------------------------------------

def test_a_fresh_store_has_the_default_profile(store):
    profiles = store.list_profiles()
    assert [p.name for p in profiles] == ["default"]
    default = store.get_profile("default")
    assert default == profiles[0] and default.id is not None and default.updated > 0
    assert default.categories == DEFAULT_PROFILE.categories and default.preset == "default"
    assert store.list_devices() == [] and store.list_schedules() == [] and store.list_temp_allows(0) == []
    assert store.list_seen() == []


def test_profile_crud(store):
    added = store.add_profile(profile_from_preset("Anna", "child"))
    assert added.id is not None and added.updated > 0
    assert dataclasses.replace(added, id=None, updated=0.0) == profile_from_preset("Anna", "child")
    assert store.get_profile("Anna") == added == store.get_profile(" anna ")
    assert store.get_profile("nobody") is None and store.get_profile("") is None
    store.add_profile(Profile("Ben", block=["*.game.example"], allow=["school.example"], block_mode="nxdomain"))
    assert [p.name for p in store.list_profiles()] == ["Anna", "Ben", "default"]

    changed = store.update_profile(dataclasses.replace(added, youtube="moderate", services=("tiktok",)))
    assert changed.youtube == "moderate" and changed.services == ("tiktok",) and changed.id == added.id
    assert changed.updated >= added.updated and store.get_profile("Anna") == changed
    by_name = store.update_profile(dataclasses.replace(changed, id=None, safe_search=False))   # by name
    assert by_name.id == added.id and not by_name.safe_search

    renamed = store.update_profile(dataclasses.replace(by_name, name="Anna B"))             # by id: a rename
    assert renamed.id == added.id and store.get_profile("Anna") is None and store.get_profile("anna b") == renamed

    store.remove_profile("ANNA B")
    assert store.get_profile("Anna B") is None
    assert [p.name for p in store.list_profiles()] == ["Ben", "default"]


def test_profile_errors(store):
    store.add_profile(Profile("Kids"))
    with pytest.raises(ValueError, match="profile 'kids' already exists"):
        store.add_profile(Profile("kids"))
    with pytest.raises(ValueError, match="profile 'default' already exists"):
        store.add_profile(Profile("default"))
    with pytest.raises(ValueError, match="unknown profile 'nobody'"):
        store.update_profile(Profile("nobody"))
    with pytest.raises(ValueError, match="unknown profile id 999"):
        store.update_profile(Profile("nobody", id=999))
    with pytest.raises(ValueError, match="unknown profile 'nobody'"):
        store.remove_profile("nobody")
    other = store.add_profile(Profile("Other"))
    with pytest.raises(ValueError, match="profile 'Kids' already exists"):
        store.update_profile(dataclasses.replace(other, name="Kids"))
    with pytest.raises(TypeError):
        store.add_profile({"name": "dict"})


def test_default_profile_can_be_edited_but_not_removed_or_renamed(store):
    default = store.get_profile("default")
    edited = store.update_profile(dataclasses.replace(default, safe_search=True, categories=("adult",)))
    assert edited.safe_search and edited.categories == ("adult",)
    with pytest.raises(ValueError, match="the default profile can't be removed"):
        store.remove_profile("Default")
    with pytest.raises(ValueError, match="the default profile can't be renamed"):
        store.update_profile(dataclasses.replace(default, name="everyone"))
    assert store.get_profile("default") == edited


def test_every_preset_round_trips(store):
    for key in PRESETS:
        stored = store.add_profile(profile_from_preset(f"p {key}", key))
        assert store.get_profile(f"p {key}") == stored
        assert dataclasses.replace(stored, id=None, updated=0.0, name=key) == PRESETS[key]


def test_a_profile_in_use_cannot_be_removed(store):
    store.add_profile(Profile("Kids"))
    store.add_device(Device("tablet", "ip", "10.0.0.5", profile="kids"))
    store.add_device(Device("Anna phone", "mac", "aa:bb:cc:00:00:01", profile="Kids"))
    with pytest.raises(ValueError, match=r"profile 'Kids' is used by devices Anna phone, tablet: move them"):
        store.remove_profile("Kids")
    store.update_device(Device("tablet", "ip", "10.0.0.5"))
    store.remove_device("Anna phone")
    store.remove_profile("kids")
    assert store.get_profile("Kids") is None


def test_removing_a_profile_removes_its_schedules(store):
    store.add_profile(Profile("Kids"))
    store.add_schedule(Schedule("Kids", "bedtime", ["mon"], "21:00", "07:00"))
    store.add_schedule(Schedule("default", "bedtime", ["mon"], "22:00", "06:00"))
    store.remove_profile("Kids")
    assert [(s.profile, s.name) for s in store.list_schedules()] == [("default", "bedtime")]


# -- devices ---------------------------------------------------------------------------------------

def test_device_crud(store):
    store.add_profile(Profile("Kids"))
    tablet = store.add_device(Device("Tablet", "ip", "192.168.1.20", profile="kids", hostname="tab.lan"))
    assert tablet.id is not None and tablet.profile == "Kids" and tablet.hostname == "tab.lan"
    assert store.get_device("tablet") == tablet and store.get_device("nothing") is None
    phone = store.add_device(Device("phone", "mac", "AA-BB-CC-DD-EE-01"))
    lab = store.add_device(Device("lab", "cidr", "10.1.2.3/24", paused_until=NOW))
    assert phone.value == "aa:bb:cc:dd:ee:01" and phone.profile == "default"
    assert lab.value == "10.1.2.0/24" and lab.paused_until == NOW
    assert [d.name for d in store.list_devices()] == ["lab", "phone", "Tablet"]

    moved = store.update_device(dataclasses.replace(tablet, profile="default", value="192.168.1.21"))
    assert moved.id == tablet.id and moved.profile == "default" and moved.value == "192.168.1.21"
    renamed = store.update_device(dataclasses.replace(moved, name="Old tablet"))
    assert store.get_device("Tablet") is None and store.get_device("old tablet") == renamed
    by_name = store.update_device(Device("old tablet", "mac", "aa:bb:cc:dd:ee:02", profile="Kids"))
    assert by_name.id == tablet.id and by_name.kind == "mac" and by_name.hostname == ""

    store.remove_device("OLD TABLET")
    assert store.get_device("Old tablet") is None
    assert [d.name for d in store.list_devices()] == ["lab", "phone"]


def test_device_errors(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    with pytest.raises(ValueError, match="unknown profile 'Nobody'"):
        store.add_device(Device("phone", "ip", "10.0.0.6", profile="Nobody"))
    with pytest.raises(ValueError, match="device 'Tablet' already exists"):
        store.add_device(Device("Tablet", "ip", "10.0.0.7"))
    with pytest.raises(ValueError, match="unknown device 'phone'"):
        store.update_device(Device("phone", "ip", "10.0.0.6"))
    with pytest.raises(ValueError, match="unknown device 'phone'"):
        store.remove_device("phone")
    with pytest.raises(ValueError, match="unknown profile 'Nobody'"):
        store.update_device(Device("tablet", "ip", "10.0.0.5", profile="Nobody"))
    assert store.get_device("tablet").profile == "default"


def test_device_identity_conflicts(store):
    store.add_device(Device("tablet", "ip", "192.168.1.20"))
    store.add_device(Device("phone", "mac", "aa:bb:cc:dd:ee:ff"))
    store.add_device(Device("lab", "cidr", "192.168.1.0/24"))
    with pytest.raises(ValueError, match="IP address 192.168.1.20 already belongs to device 'tablet'"):
        store.add_device(Device("tablet 2", "ip", "192.168.1.20"))
    with pytest.raises(ValueError, match="MAC address aa:bb:cc:dd:ee:ff already belongs to device 'phone'"):
        store.add_device(Device("phone 2", "mac", "AABB.CCDD.EEFF"))
    with pytest.raises(ValueError, match="network 192.168.1.0/24 already belongs to device 'lab'"):
        store.add_device(Device("lab 2", "cidr", "192.168.1.99/24"))
    with pytest.raises(ValueError, match="already belongs to device 'tablet'"):
        store.update_device(Device("phone", "ip", "192.168.1.20"))
    # a network containing a device's address, a narrower network and a /32 are all other identities
    store.add_device(Device("host net", "cidr", "192.168.1.20/32"))
    store.add_device(Device("half lab", "cidr", "192.168.1.0/25"))
    store.add_device(Device("v6 phone", "ip", "2001:db8::20"))
    # updating a device without changing its identity is no conflict with itself
    store.update_device(Device("tablet", "ip", "192.168.1.20", hostname="tab"))
    assert len(store.list_devices()) == 6


def test_pause_and_resume(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    store.set_pause("Tablet", NOW + 3600)
    assert store.get_device("tablet").paused_until == NOW + 3600 and store.get_device("tablet").paused(NOW)
    store.set_pause("tablet", None)
    assert store.get_device("tablet").paused_until is None
    with pytest.raises(ValueError, match="unknown device 'phone'"):
        store.set_pause("phone", NOW)
    with pytest.raises(ValueError, match="pause until must be a UNIX time"):
        store.set_pause("tablet", "soon")


# -- schedules -------------------------------------------------------------------------------------

def test_schedule_crud(store):
    store.add_profile(Profile("Kids"))
    bed = store.add_schedule(Schedule("kids", "Bedtime", ["mon", "tue", "wed", "thu", "sun"], "20:30", "07:00"))
    assert bed.id is not None and bed.profile == "Kids" and bed.days == ("mon", "tue", "wed", "thu", "sun")
    homework = store.add_schedule(Schedule("Kids", "homework", ["mon"], "16:00", "18:00", "block_services",
                                           services=["youtube", "tiktok"], enabled=False))
    store.add_schedule(Schedule("default", "bedtime", ["sat"], "23:00", "06:00"))   # same name, other profile
    assert store.list_schedules("KIDS") == [bed, homework]
    assert [(s.profile, s.name) for s in store.list_schedules()] == [
        ("default", "bedtime"), ("Kids", "Bedtime"), ("Kids", "homework")]

    on = store.update_schedule(dataclasses.replace(homework, enabled=True, end="18:30"))
    assert on.id == homework.id and on.enabled and on.end == "18:30"
    by_name = store.update_schedule(Schedule("Kids", "HOMEWORK", ["fri"], "15:00", "17:00", "block_categories",
                                             categories=["games"]))
    assert by_name.id == homework.id and by_name.categories == ("games",) and by_name.name == "HOMEWORK"
    store.update_schedule(dataclasses.replace(by_name, profile="default", name="homework"))   # moved
    assert [s.name for s in store.list_schedules("default")] == ["bedtime", "homework"]

    store.remove_schedule("kids", "bedtime")
    assert store.list_schedules("Kids") == []
    store.remove_schedule("default", "homework")
    assert [s.name for s in store.list_schedules()] == ["bedtime"]


def test_schedule_errors(store):
    store.add_schedule(Schedule("default", "bedtime", ["mon"], "21:00", "07:00"))
    with pytest.raises(ValueError, match="unknown profile 'Kids'"):
        store.add_schedule(Schedule("Kids", "bedtime", ["mon"], "21:00", "07:00"))
    with pytest.raises(ValueError, match="schedule 'Bedtime' already exists in profile 'default'"):
        store.add_schedule(Schedule("default", "Bedtime", ["tue"], "21:00", "07:00"))
    with pytest.raises(ValueError, match="unknown profile 'Kids'"):
        store.list_schedules("Kids")
    with pytest.raises(ValueError, match="unknown schedule 'school' in profile 'default'"):
        store.remove_schedule("default", "school")
    with pytest.raises(ValueError, match="unknown schedule 'school' in profile 'default'"):
        store.update_schedule(Schedule("default", "school", ["mon"], "08:00", "15:00"))
    with pytest.raises(ValueError, match="unknown profile 'Kids'"):
        store.remove_schedule("Kids", "bedtime")


# -- temporary allows ------------------------------------------------------------------------------

def test_temp_allows(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    store.add_device(Device("phone", "ip", "10.0.0.6"))
    yt = store.add_temp_allow(TempAllow("Tablet", "YouTube.com", NOW + 3600))
    assert yt.id is not None and yt.device == "tablet" and yt.domain == "youtube.com"
    store.add_temp_allow(TempAllow("phone", "*.game.example", NOW + 60))
    store.add_temp_allow(TempAllow("phone", "old.example", NOW - 1))
    assert [(t.device, t.domain) for t in store.list_temp_allows(NOW)] == [
        ("phone", "*.game.example"), ("tablet", "youtube.com")]                 # soonest to expire first
    assert [t.domain for t in store.list_temp_allows(NOW + 60)] == ["youtube.com"]   # until is exclusive

    again = store.add_temp_allow(TempAllow("tablet", "youtube.com", NOW + 600))      # replaces the until
    assert again.id == yt.id and [t.until for t in store.list_temp_allows(NOW) if t.device == "tablet"] == [NOW + 600]

    assert store.purge_temp_allows(NOW) == 1
    assert store.purge_temp_allows(NOW) == 0
    assert len(store.list_temp_allows(0)) == 2
    store.remove_temp_allow(yt.id)
    assert [t.device for t in store.list_temp_allows(0)] == ["phone"]
    with pytest.raises(ValueError, match="unknown temporary allow"):
        store.remove_temp_allow(yt.id)
    with pytest.raises(ValueError, match="unknown device 'laptop'"):
        store.add_temp_allow(TempAllow("laptop", "a.example", NOW))


def test_removing_a_device_removes_its_temp_allows(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    store.add_device(Device("phone", "ip", "10.0.0.6"))
    store.add_temp_allow(TempAllow("tablet", "a.example", NOW + 60))
    store.add_temp_allow(TempAllow("phone", "b.example", NOW + 60))
    store.remove_device("tablet")
    assert [(t.device, t.domain) for t in store.list_temp_allows(NOW)] == [("phone", "b.example")]
    # and a new device of the same name does not inherit them
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    assert [t.device for t in store.list_temp_allows(NOW)] == ["phone"]


# -- seen clients ----------------------------------------------------------------------------------

def test_seen_clients(store):
    store.touch_seen("192.168.1.50", "", "", NOW)
    store.touch_seen("192.168.1.51", "AA-BB-CC-00-00-51", "laptop", NOW + 1)
    store.touch_seen("192.168.1.50", "aa:bb:cc:00:00:50", "kindle", NOW + 5)
    store.touch_seen("192.168.1.50", "", "", NOW + 3)        # late, out of order: last_seen does not go back
    seen = store.list_seen()
    assert seen == [SeenClient("192.168.1.51", "aa:bb:cc:00:00:51", "laptop", NOW + 1, NOW + 1),
                    SeenClient("192.168.1.50", "aa:bb:cc:00:00:50", "kindle", NOW, NOW + 5)]
    assert store.list_seen(limit=1) == seen[:1]
    with pytest.raises(ValueError, match="client address: not an IP address"):
        store.touch_seen("not-an-ip", "", "", NOW)


def test_touch_seen_advances_the_devices_seen_times(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    store.add_device(Device("phone", "mac", "aa:bb:cc:dd:ee:ff", hostname="annas-phone"))
    store.touch_seen("10.0.0.5", "", "tab", NOW)
    store.touch_seen("10.0.0.9", "AA:BB:CC:DD:EE:FF", "", NOW + 10)
    store.touch_seen("10.0.0.5", "", "", NOW + 20)
    tablet, phone = store.get_device("tablet"), store.get_device("phone")
    assert (tablet.first_seen, tablet.last_seen, tablet.hostname) == (NOW, NOW + 20, "tab")
    assert (phone.first_seen, phone.last_seen, phone.hostname) == (NOW + 10, NOW + 10, "annas-phone")
    # editing a device keeps the seen times the store keeps
    store.update_device(dataclasses.replace(tablet, first_seen=0.0, last_seen=0.0, hostname="tablet.lan"))
    again = store.get_device("tablet")
    assert (again.first_seen, again.last_seen, again.hostname) == (NOW, NOW + 20, "tablet.lan")


# -- policy_version --------------------------------------------------------------------------------

def _changes(store):
    """Every kind of policy change, in an order that works on a fresh store."""
    kids = Profile("Kids")
    yield "add profile", lambda: store.add_profile(kids)
    yield "update profile", lambda: store.update_profile(dataclasses.replace(kids, youtube="strict"))
    yield "add device", lambda: store.add_device(Device("tablet", "ip", "10.0.0.5", profile="Kids"))
    yield "update device", lambda: store.update_device(Device("tablet", "ip", "10.0.0.6", profile="Kids"))
    yield "pause", lambda: store.set_pause("tablet", NOW + 60)
    yield "resume", lambda: store.set_pause("tablet", None)
    yield "add schedule", lambda: store.add_schedule(Schedule("Kids", "bed", ["mon"], "21:00", "07:00"))
    yield "update schedule", lambda: store.update_schedule(Schedule("Kids", "bed", ["mon"], "21:00", "07:00",
                                                                    enabled=False))
    yield "remove schedule", lambda: store.remove_schedule("Kids", "bed")
    yield "add temp allow", lambda: store.add_temp_allow(TempAllow("tablet", "a.example", NOW + 60))
    yield "extend temp allow", lambda: store.add_temp_allow(TempAllow("tablet", "a.example", NOW + 120))
    yield "purge temp allows", lambda: store.purge_temp_allows(NOW + 1000)
    yield "add temp allow 2", lambda: store.add_temp_allow(TempAllow("tablet", "b.example", NOW + 60))
    yield "remove temp allow", lambda: store.remove_temp_allow(store.list_temp_allows(0)[0].id)
    yield "remove device", lambda: store.remove_device("tablet")
    yield "remove profile", lambda: store.remove_profile("Kids")


def test_policy_version_changes_on_every_policy_change(store, other_connection):
    versions = [store.policy_version()]
    for what, change in _changes(store):
        change()
        versions.append(store.policy_version())
        assert versions[-1] != versions[-2], f"{what} did not change policy_version"
        assert other_connection.policy_version() == versions[-1], f"{what} not seen by another connection"
    assert len(set(versions)) == len(versions)


def test_policy_version_ignores_reads_failures_the_query_log_and_seen_clients(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    before = store.policy_version()
    store.add_queries([QueryRow(time.time(), "10.0.0.5", "a.example", 1, 0, "", "", 1.0, False, None)])
    store.purge_queries(time.time() + 1)
    store.touch_seen("10.0.0.5", "aa:bb:cc:dd:ee:ff", "tab", NOW)
    store.list_profiles(), store.list_devices(), store.list_schedules(), store.list_temp_allows(NOW)
    store.get_profile("default"), store.get_device("tablet"), store.list_seen()
    assert store.purge_temp_allows(NOW) == 0
    for failing in (lambda: store.add_profile(Profile("default")),
                    lambda: store.remove_profile("default"),
                    lambda: store.add_device(Device("phone", "ip", "10.0.0.5")),
                    lambda: store.set_pause("nobody", None),
                    lambda: store.add_schedule(Schedule("nobody", "x", ["mon"], "01:00", "02:00"))):
        with pytest.raises(ValueError):
            failing()
    assert store.policy_version() == before


def test_a_refused_change_leaves_nothing_behind(store):
    store.add_device(Device("tablet", "ip", "10.0.0.5"))
    with pytest.raises(ValueError):
        store.add_device(Device("phone", "ip", "10.0.0.5"))
    with pytest.raises(ValueError):
        store.update_device(Device("tablet", "ip", "10.0.0.5", profile="nobody"))
    assert [(d.name, d.profile) for d in store.list_devices()] == [("tablet", "default")]
