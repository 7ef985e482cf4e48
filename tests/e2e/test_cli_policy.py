"""`hearth profile|device|allow|schedule`: the real entry point in subprocesses, the store read back with open_store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from resolver.policy.profiles import DEFAULT_PROFILE, PRESETS, Device, Profile, Schedule, TempAllow
from resolver.store.sqlite import open_store

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "resolver.cli"]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HEARTH_CONFIG"}
    env.update(extra)
    return env


class Hearth:
    """A config file in tmp_path and a way to run `hearth … -c FILE` and to read the store."""

    def __init__(self, tmp: Path):
        self.data_dir = tmp / "data"
        self.path = tmp / "hearth.yaml"
        self.write()

    def write(self, **extra) -> None:
        cfg = {"data_dir": str(self.data_dir), "timezone": "UTC", "blocking": {"starter_lists": False},
               "dns": {"upstreams": ["udp://127.0.0.1:9"]}, **extra}
        self.path.write_text(yaml.safe_dump(cfg))

    def run(self, *args: str, env: dict = None) -> subprocess.CompletedProcess:
        argv = CLI + list(args) + (["-c", str(self.path)] if env is None else [])
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=str(REPO),
                              env=env if env is not None else _env())

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 0, f"hearth {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}"
        return r.stdout

    def store(self):
        return open_store(str(self.data_dir))

    def snapshot(self) -> tuple:
        s = self.store()
        try:
            return (s.policy_version(), s.list_profiles(), s.list_devices(), s.list_schedules(),
                    s.list_temp_allows(0))
        finally:
            s.close()

    def version(self) -> int:
        return self.snapshot()[0]


@pytest.fixture
def hearth(tmp_path) -> Hearth:
    return Hearth(tmp_path)


def _seed(h: Hearth) -> None:
    """Kids (preset child) with a device and a schedule, Teen unused; through the store, no subprocess."""
    s = h.store()
    try:
        s.add_profile(Profile(name="Kids", preset="child", categories=PRESETS["child"].categories, safe_search=True,
                              youtube="strict"))
        s.add_profile(Profile(name="Teen", preset="teen", categories=PRESETS["teen"].categories))
        s.add_device(Device(name="Tablet", kind="ip", value="192.168.1.20", profile="Kids"))
        s.add_device(Device(name="Phone", kind="mac", value="aa:bb:cc:dd:ee:ff", profile="Kids"))
        s.add_device(Device(name="Guests", kind="cidr", value="192.168.2.0/24", profile="Teen"))
        s.add_schedule(Schedule(profile="Kids", name="Bedtime", days=("mon", "tue"), start="21:00", end="07:00"))
        s.add_temp_allow(TempAllow(device="Tablet", domain="khanacademy.org", until=time.time() + 600))
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# profiles

def test_profile_add_set_list_show_remove(hearth):
    out = hearth.ok("profile", "add", "Kids", "--preset", "child", "--services", "tiktok,roblox")
    assert out.startswith('profile "Kids" added (preset child: blocks adult, gambling')
    assert out.count("\n") == 1
    hearth.ok("profile", "add", "Plain")
    hearth.ok("profile", "add", "Teen", "--preset", "teen", "--categories", "adult,Gambling", "--safe-search", "off",
              "--youtube", "moderate", "--block-mode", "nxdomain", "--block", "bad.example,*.worse.example",
              "--allow", "good.example")
    hearth.ok("profile", "add", "Everything", "--preset", "default")
    s = hearth.store()
    try:
        kids, plain, teen, everything = (s.get_profile(n) for n in ("kids", "Plain", "Teen", "Everything"))
        version = s.policy_version()
    finally:
        s.close()
    child = PRESETS["child"]
    assert (kids.preset, kids.categories, kids.services, kids.safe_search, kids.youtube, kids.bypass_prevention) == (
        "child", child.categories, ("roblox", "tiktok"), True, "strict", True)
    assert (plain.preset, plain.categories, plain.services, plain.safe_search, plain.youtube, plain.block_mode) == (
        "", (), (), False, "off", "null")
    assert (teen.categories, teen.safe_search, teen.youtube, teen.block_mode, teen.block, teen.allow) == (
        ("adult", "gambling"), False, "moderate", "nxdomain", ("*.worse.example", "bad.example"), ("good.example",))
    assert everything.categories == DEFAULT_PROFILE.categories and everything.preset == "default"

    # set changes only the flags given
    out = hearth.ok("profile", "set", "kids", "--youtube", "moderate", "--remove-categories", "ads",
                    "--add-services", "youtube", "--block", "x.example")
    assert out.startswith('profile "Kids" updated')
    out = hearth.ok("profile", "set", "Plain", "--categories", "gambling,adult", "--safe-search", "on",
                    "--services", "discord")
    hearth.ok("profile", "set", "Teen", "--services", "", "--allow", "", "--add-block", "more.example",
              "--remove-block", "BAD.example.")
    s = hearth.store()
    try:
        kids2, plain2, teen2 = (s.get_profile(n) for n in ("Kids", "Plain", "Teen"))
        assert s.policy_version() > version
    finally:
        s.close()
    assert kids2.youtube == "moderate" and "ads" not in kids2.categories
    assert set(kids2.categories) == set(child.categories) - {"ads"}
    assert kids2.services == ("roblox", "tiktok", "youtube") and kids2.block == ("x.example",)
    assert (kids2.safe_search, kids2.block_mode, kids2.preset) == (True, "null", "child")
    assert (plain2.categories, plain2.safe_search, plain2.services, plain2.youtube) == (
        ("adult", "gambling"), True, ("discord",), "off")
    assert (teen2.services, teen2.allow, teen2.block, teen2.youtube, teen2.block_mode) == (
        (), (), ("*.worse.example", "more.example"), "moderate", "nxdomain")

    # re-applying a preset resets its settings, keeps services and domains
    hearth.ok("profile", "set", "Kids", "--preset", "child")
    s = hearth.store()
    try:
        kids3 = s.get_profile("Kids")
        s.add_device(Device(name="Tablet", kind="ip", value="10.0.0.5", profile="Kids"))
    finally:
        s.close()
    assert (kids3.categories, kids3.youtube, kids3.services, kids3.block) == (
        child.categories, "strict", kids2.services, ("x.example",))

    out = hearth.ok("profile", "list")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NAME", "PRESET"] and "DEVICES" in lines[0]
    row = next(line for line in lines if line.startswith("Kids "))
    assert "child" in row and "strict" in row and "roblox,tiktok,youtube" in row and row.split()[-2] == "1"
    assert any(line.startswith("default ") for line in lines)
    listed = {p["name"]: p for p in json.loads(hearth.ok("profile", "list", "--json"))}
    assert set(listed) == {"default", "Kids", "Plain", "Teen", "Everything"}
    assert listed["Kids"]["devices"] == 1 and listed["Kids"]["services"] == ["roblox", "tiktok", "youtube"]
    assert listed["Plain"]["devices"] == 0 and listed["Plain"]["safe_search"] is True

    shown = hearth.ok("profile", "show", "Kids")
    assert "Tablet" in shown and "roblox, tiktok, youtube" in shown

    out = hearth.ok("profile", "remove", "Plain")
    assert out.strip() == 'profile "Plain" removed'
    s = hearth.store()
    try:
        assert s.get_profile("Plain") is None and s.get_profile("Teen") is not None
    finally:
        s.close()


def test_profile_remove_refused_while_a_device_uses_it(hearth):
    _seed(hearth)
    before = hearth.snapshot()
    r = hearth.run("profile", "remove", "Kids")
    assert r.returncode == 1
    assert r.stderr.startswith("hearth profile remove: ") and "Tablet" in r.stderr
    assert hearth.snapshot() == before
    # once nobody uses it, it goes, and its schedules with it
    hearth.ok("device", "set", "Tablet", "--profile", "Teen")
    hearth.ok("device", "remove", "Phone")
    out = hearth.ok("profile", "remove", "kids")
    assert "removed" in out and "1 schedule" in out
    s = hearth.store()
    try:
        assert s.get_profile("Kids") is None and s.list_schedules() == []
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# bad input: one line on stderr, exit 1 (2 for usage errors), nothing changed

ERRORS = {
    "profile-duplicate": ("profile", "add", "kids"),
    "profile-bad-name": ("profile", "add", "bad/name"),
    "profile-unknown-service": ("profile", "add", "X", "--services", "tiktok,tiktk"),
    "profile-bad-category": ("profile", "add", "X", "--categories", "adult,no way!"),
    "profile-unknown-preset": ("profile", "add", "X", "--preset", "toddler"),
    "profile-block-and-allow": ("profile", "add", "X", "--block", "a.example", "--allow", "a.example"),
    "profile-bad-domain": ("profile", "add", "X", "--block", "not a domain"),
    "set-unknown-profile": ("profile", "set", "Nobody", "--youtube", "off"),
    "set-unknown-service": ("profile", "set", "Kids", "--services", "tiktok,nosuchapp"),
    "set-bad-category": ("profile", "set", "Kids", "--add-categories", "Bad Word"),
    "set-rename-default": ("profile", "set", "default", "--rename", "Other"),
    "set-rename-taken": ("profile", "set", "Kids", "--rename", "TEEN"),
    "remove-default": ("profile", "remove", "default"),
    "remove-unknown-profile": ("profile", "remove", "Nobody"),
    "device-same-ip": ("device", "add", "Laptop", "--ip", "192.168.1.20", "--profile", "Teen"),
    "device-same-mac": ("device", "add", "Laptop", "--mac", "AA-BB-CC-DD-EE-FF", "--profile", "Teen"),
    "device-same-cidr": ("device", "add", "Laptop", "--cidr", "192.168.2.7/24", "--profile", "Teen"),
    "device-duplicate-name": ("device", "add", "tablet", "--ip", "192.168.1.99", "--profile", "Teen"),
    "device-unknown-profile": ("device", "add", "Laptop", "--ip", "192.168.1.99", "--profile", "Nobody"),
    "device-bad-ip": ("device", "add", "Laptop", "--ip", "192.168.1.300", "--profile", "Teen"),
    "device-bad-mac": ("device", "add", "Laptop", "--mac", "00:00:00:00:00:00", "--profile", "Teen"),
    "device-set-same-ip": ("device", "set", "Phone", "--ip", "192.168.1.20"),
    "device-set-unknown-profile": ("device", "set", "Phone", "--profile", "Nobody"),
    "device-remove-unknown": ("device", "remove", "Nobody"),
    "pause-unknown-device": ("device", "pause", "Nobody", "--minutes", "10"),
    "pause-zero-minutes": ("device", "pause", "Tablet", "--minutes", "0"),
    "resume-unknown-device": ("device", "resume", "Nobody"),
    "allow-unknown-device": ("allow", "Nobody", "example.com", "--minutes", "10"),
    "allow-bad-domain": ("allow", "Tablet", "exa mple.com", "--minutes", "10"),
    "allow-negative-minutes": ("allow", "Tablet", "example.com", "--minutes", "-5"),
    "schedule-unknown-profile": ("schedule", "add", "Nobody", "--name", "N", "--days", "all", "--from", "21:00",
                                 "--to", "07:00", "--block-all"),
    "schedule-bad-time": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "25:00",
                          "--to", "07:00", "--block-all"),
    "schedule-bad-minutes": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "21:00",
                             "--to", "7:60", "--block-all"),
    "schedule-start-is-end": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "21:00",
                              "--to", "21:00", "--block-all"),
    "schedule-whole-day": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "00:00",
                           "--to", "24:00", "--block-all"),
    "schedule-bad-day": ("schedule", "add", "Kids", "--name", "N", "--days", "mon,funday", "--from", "21:00",
                         "--to", "07:00", "--block-all"),
    "schedule-duplicate": ("schedule", "add", "kids", "--name", "BEDTIME", "--days", "all", "--from", "20:00",
                           "--to", "06:00", "--block-all"),
    "schedule-unknown-service": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "16:00",
                                 "--to", "18:00", "--services", "tiktokk"),
    "schedule-no-categories": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "16:00",
                               "--to", "18:00", "--categories", ""),
    "schedule-remove-unknown": ("schedule", "remove", "Kids", "Nap"),
}

USAGE_ERRORS = {
    "schedule-no-action": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "21:00",
                           "--to", "07:00"),
    "schedule-two-actions": ("schedule", "add", "Kids", "--name", "N", "--days", "all", "--from", "21:00",
                             "--to", "07:00", "--block-all", "--services", "tiktok"),
    "device-no-identity": ("device", "add", "Laptop", "--profile", "Teen"),
    "device-two-identities": ("device", "add", "Laptop", "--ip", "10.0.0.1", "--mac", "aa:bb:cc:00:11:22"),
    "pause-no-minutes": ("device", "pause", "Tablet"),
    "pause-minutes-not-a-number": ("device", "pause", "Tablet", "--minutes", "ten"),
    "bad-youtube-mode": ("profile", "add", "X", "--youtube", "sometimes"),
    "bad-block-mode": ("profile", "set", "Kids", "--block-mode", "drop"),
    "set-nothing": ("profile", "set", "Kids"),
}


@pytest.mark.parametrize("args", list(ERRORS.values()), ids=list(ERRORS))
def test_bad_input_is_refused_and_changes_nothing(hearth, args):
    _seed(hearth)
    before = hearth.snapshot()
    r = hearth.run(*args)
    assert r.returncode == 1, f"{r.stdout}{r.stderr}"
    command = " ".join(args[:1] if args[0] == "allow" else args[:2])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hearth {command}: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert hearth.snapshot() == before


@pytest.mark.parametrize("args", list(USAGE_ERRORS.values()), ids=list(USAGE_ERRORS))
def test_usage_errors_exit_2_and_change_nothing(hearth, args):
    _seed(hearth)
    before = hearth.snapshot()
    r = hearth.run(*args)
    assert r.returncode == 2, f"{r.stdout}{r.stderr}"
    assert "Traceback" not in r.stderr and r.stderr.strip()
    assert hearth.snapshot() == before


# ---------------------------------------------------------------------------------------------
# devices, pauses, temporary allows

def test_devices_add_set_list_remove(hearth):
    hearth.ok("profile", "add", "Kids", "--preset", "child")
    out = hearth.ok("device", "add", "Tablet", "--ip", "192.168.1.20", "--profile", "kids")
    assert out.strip() == 'device "Tablet" added (IP 192.168.1.20, profile Kids)'
    hearth.ok("device", "add", "Phone", "--mac", "AA-BB-CC-DD-EE-0F", "--profile", "Kids")
    hearth.ok("device", "add", "Guests", "--cidr", "192.168.2.0/24")
    s = hearth.store()
    try:
        devices = {d.name: d for d in s.list_devices()}
    finally:
        s.close()
    assert [(d.kind, d.value, d.profile) for d in devices.values()] == [
        ("cidr", "192.168.2.0/24", "default"), ("mac", "aa:bb:cc:dd:ee:0f", "Kids"), ("ip", "192.168.1.20", "Kids")]

    hearth.ok("device", "set", "Guests", "--profile", "Kids", "--cidr", "192.168.3.0/25", "--rename", "Visitors")
    s = hearth.store()
    try:
        v = s.get_device("Visitors")
        assert s.get_device("Guests") is None
    finally:
        s.close()
    assert (v.kind, v.value, v.profile) == ("cidr", "192.168.3.0/25", "Kids")

    out = hearth.ok("device", "list")
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["NAME", "IDENTITY", "KIND"] and "PAUSED" in header and "LAST SEEN" in header
    tablet = next(r for r in rows if r.startswith("Tablet "))
    assert "192.168.1.20" in tablet and "Kids" in tablet and "never" in tablet
    listed = json.loads(hearth.ok("device", "list", "--json"))
    assert [d["name"] for d in listed] == ["Phone", "Tablet", "Visitors"]

    hearth.ok("device", "remove", "phone")
    s = hearth.store()
    try:
        assert [d.name for d in s.list_devices()] == ["Tablet", "Visitors"]
    finally:
        s.close()


def test_pause_resume_and_temporary_allow(hearth):
    _seed(hearth)
    t0 = time.time()
    out = hearth.ok("device", "pause", "tablet", "--minutes", "30")
    assert out.startswith('device "Tablet" paused for 30 minutes')
    out = hearth.ok("allow", "Phone", "YouTube.com", "--minutes", "45")
    assert "youtube.com" in out and "Phone" in out
    t1 = time.time()
    s = hearth.store()
    try:
        tablet, phone = s.get_device("Tablet"), s.get_device("Phone")
        allows = [a for a in s.list_temp_allows(time.time()) if a.device == "Phone"]
    finally:
        s.close()
    assert t0 + 30 * 60 - 2 <= tablet.paused_until <= t1 + 30 * 60 + 2
    assert tablet.paused(time.time()) and phone.paused_until is None
    assert len(allows) == 1 and allows[0].domain == "youtube.com"
    assert t0 + 45 * 60 - 2 <= allows[0].until <= t1 + 45 * 60 + 2

    assert "Tablet" in hearth.ok("device", "show", "Tablet")
    out = hearth.ok("device", "resume", "Tablet")
    assert out.strip() == 'device "Tablet" resumed'
    s = hearth.store()
    try:
        assert s.get_device("Tablet").paused_until is None
    finally:
        s.close()


def test_device_seen_lists_unknown_clients(hearth):
    _seed(hearth)
    s = hearth.store()
    try:
        now = time.time()
        s.touch_seen("192.168.1.20", "", "tablet", now - 60)          # the device Tablet
        s.touch_seen("192.168.1.77", "", "new-phone", now - 30)       # nobody's
        s.touch_seen("192.168.1.78", "aa:bb:cc:dd:ee:ff", "", now)    # Phone, by its MAC
    finally:
        s.close()
    seen = json.loads(hearth.ok("device", "seen", "--json"))
    assert [c["address"] for c in seen] == ["192.168.1.77"] and seen[0]["hostname"] == "new-phone"
    everyone = json.loads(hearth.ok("device", "seen", "--all", "--json"))
    assert {c["address"]: c["device"] for c in everyone} == {
        "192.168.1.20": "Tablet", "192.168.1.77": None, "192.168.1.78": "Phone"}


# ---------------------------------------------------------------------------------------------
# schedules

def test_schedules(hearth):
    _seed(hearth)
    out = hearth.ok("schedule", "add", "kids", "--name", "School night", "--days", "sun,mon,tue,wed,thu",
                    "--from", "21:30", "--to", "6:45", "--block-all")
    assert out.strip().startswith('schedule "School night" added to profile "Kids"')
    hearth.ok("schedule", "add", "Kids", "--name", "Homework", "--days", "mon-fri", "--from", "16:00", "--to", "18:00",
              "--categories", "games,video,social")
    hearth.ok("schedule", "add", "Teen", "--name", "No TikTok", "--days", "all", "--from", "20:00", "--to", "24:00",
              "--services", "TikTok,instagram")
    s = hearth.store()
    try:
        got = {(x.profile, x.name): x for x in s.list_schedules()}
    finally:
        s.close()
    night = got[("Kids", "School night")]
    assert (night.days, night.start, night.end, night.action) == (
        ("mon", "tue", "wed", "thu", "sun"), "21:30", "06:45", "block_all")
    assert night.covers(6, 22 * 60) and night.covers(0, 6 * 60) and not night.covers(0, 12 * 60)  # crosses midnight
    homework = got[("Kids", "Homework")]
    assert (homework.days, homework.action, homework.categories) == (
        ("mon", "tue", "wed", "thu", "fri"), "block_categories", ("social", "games", "video"))
    tok = got[("Teen", "No TikTok")]
    assert (tok.days, tok.start, tok.end, tok.action, tok.services) == (
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "20:00", "00:00", "block_services", ("instagram", "tiktok"))

    out = hearth.ok("schedule", "list", "Kids")
    assert "School night" in out and "Homework" in out and "No TikTok" not in out
    assert len(json.loads(hearth.ok("schedule", "list", "--json"))) == 4
    hearth.ok("schedule", "disable", "Kids", "homework")
    hearth.ok("schedule", "remove", "Kids", "Bedtime")
    s = hearth.store()
    try:
        left = {x.name: x.enabled for x in s.list_schedules("Kids")}
    finally:
        s.close()
    assert left == {"Homework": False, "School night": True}


# ---------------------------------------------------------------------------------------------
# config, warnings, the running engine

def test_config_from_env_var_and_before_the_command(hearth):
    r = hearth.run("profile", "add", "FromEnv", "--preset", "teen", env=_env(HEARTH_CONFIG=str(hearth.path)))
    assert r.returncode == 0, r.stderr
    r = subprocess.run(CLI + ["-c", str(hearth.path), "device", "add", "Box", "--ip", "10.1.2.3",
                              "--profile", "FromEnv"], capture_output=True, text=True, timeout=60, cwd=str(REPO),
                       env=_env())
    assert r.returncode == 0, r.stderr
    s = hearth.store()
    try:
        assert s.get_profile("FromEnv").preset == "teen"
        assert s.get_device("Box").profile == "FromEnv"
    finally:
        s.close()


def test_unknown_category_warns_but_is_accepted(hearth, tmp_path):
    r = hearth.run("profile", "add", "A", "--categories", "adult,homework")
    assert r.returncode == 0
    assert "warning" in r.stderr and "homework" in r.stderr and "adult" not in r.stderr
    # once a compiled list provides the category, only words no list has are warned about
    listed = tmp_path / "homework.txt"
    listed.write_text("games.example\n")
    hearth.write(lists=[{"id": "mine", "url": listed.as_uri(), "format": "domains", "category": "homework"}])
    hearth.ok("lists", "update", "--no-notify")
    r = hearth.run("profile", "add", "B", "--categories", "homework,zzz")
    assert r.returncode == 0
    assert "zzz" in r.stderr and "homework" not in r.stderr
    s = hearth.store()
    try:
        assert s.get_profile("A").categories == ("adult", "homework")
        assert s.get_profile("B").categories == ("homework", "zzz")
    finally:
        s.close()


def test_changes_with_the_engine_running(start_engine):
    engine = start_engine({"timezone": "UTC"})
    cfg = str(engine.config_path)
    t0 = time.monotonic()
    r = subprocess.run(CLI + ["profile", "add", "Kids", "--preset", "child", "-c", cfg], capture_output=True,
                       text=True, timeout=60, cwd=str(REPO), env=_env())
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 10
    assert engine.proc.poll() is None
    s = open_store(str(engine.data_dir))
    try:
        assert s.get_profile("Kids") is not None
    finally:
        s.close()
