"""ProfilePolicy: every step of the order of precedence, their interplay, schedules and TTL caps.

Instants are UNIX timestamps built from zoned datetimes; the real clock is never read.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from blocklists import index as block_index
from blocklists.index import BlockIndex
from blocklists.index_build import IndexBuilder
from blocklists.services import Service, load_services
from resolver.base.names import normalise_name
from resolver.policy.blocking import Reason
from resolver.policy.profile_policy import ProfilePolicy, Verdict
from resolver.policy.profiles import DEFAULT_PROFILE, PRESETS, Profile, Schedule
from resolver.policy.safesearch import is_address_target

HCM = "Asia/Ho_Chi_Minh"
BERLIN = "Europe/Berlin"
HOUR = 3600

# 2026-06-01 is a Monday.
MON, TUE, WED, THU, FRI, SAT, SUN = ((2026, 6, d) for d in range(1, 8))


def at(zone: str, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(zone)).timestamp()


def wire(name: str) -> bytes:
    return b"".join(bytes([len(lb)]) + lb for lb in normalise_name(name).encode().split(b".")) + b"\0"


META = {
    "adult": {"category": "adult", "lists": ["starter-adult"], "mandatory": False},
    "gambling": {"category": "gambling", "lists": ["hagezi-gambling"], "mandatory": False},
    "ads": {"category": "ads", "lists": ["easylist", "adguard-dns"], "mandatory": False},
    "bypass": {"category": "bypass", "lists": ["starter-bypass"], "mandatory": False},
    "mandatory:adult": {"category": "adult", "lists": ["feed-adult"], "mandatory": True},
}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> BlockIndex:
    b = IndexBuilder()
    b.add("porn.example", "adult", subdomains=True)
    b.add("bet.example", "gambling", subdomains=True)
    b.add("ads.example.net", "ads", subdomains=True)
    b.add("doh.example.org", "bypass", subdomains=True)
    b.add("forbidden.example", "mandatory:adult", subdomains=True)
    for cat in ("adult", "gambling", "ads", "bypass"):
        b.add_source(META[cat]["lists"][0], cat, 1)
    b.add_source("feed-adult", "mandatory:adult", 1)
    path = tmp_path_factory.mktemp("index") / "index.bin"
    b.build(str(path))
    ix = BlockIndex.open(str(path))
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def services() -> dict:
    return load_services()


def kid(**changes) -> Profile:
    """The child preset (adult, gambling, ..., ads, bypass; safe search; YouTube strict) as "Kid"."""
    return replace(PRESETS["child"], name="Kid", **changes)


BEDTIME = Schedule(profile="Kid", name="Bedtime", days=("sun", "mon", "tue", "wed", "thu"), start="21:00",
                   end="07:00")


def policy(index, profile: Profile, schedules=(), tz: str = HCM, services=None) -> ProfilePolicy:
    return ProfilePolicy(profile, index, META, schedules, tz, services=services)


NOON = at(HCM, *MON, 12)


def allowed(v: Verdict) -> bool:
    return v.action == "allow" and v.decision is None and v.target is None


# ------------------------------------------------------------------------------------------ 1. bypass


def test_bypass_signals_come_first(index):
    p = policy(index, kid(allow=("*.icloud.com", "use-application-dns.net")))
    v = p.decide(wire("use-application-dns.net"), NOON, paused_until=NOON + HOUR,
                 temp_allows=[("use-application-dns.net", NOON + HOUR)])
    assert v.action == "block" and v.decision.reason is Reason.BYPASS and v.decision.answer == "nxdomain"
    assert v.decision.text == "bypass prevention: use-application-dns.net" and v.ttl_cap is None
    v = p.decide(wire("mask.icloud.com"), NOON)
    assert (v.action, v.decision.reason, v.decision.answer) == ("block", Reason.BYPASS, "nxdomain")
    v = p.decide(wire("_dns.resolver.arpa"), NOON)
    assert (v.action, v.decision.reason, v.decision.answer) == ("block", Reason.BYPASS, "nodata")
    assert allowed(p.decide(wire("www.icloud.com"), NOON))


def test_bypass_prevention_off(index):
    p = policy(index, PRESETS["adult"])
    assert not PRESETS["adult"].bypass_prevention
    assert allowed(p.decide(wire("use-application-dns.net"), NOON))
    assert allowed(p.decide(wire("_dns.resolver.arpa"), NOON))


# ------------------------------------------------------------------------------------------ 2. pause


def test_pause_blocks_everything_with_a_cap(index):
    p = policy(index, kid(allow=("wikipedia.org",)))
    until = NOON + 1800.2
    for name in ("wikipedia.org", "example.com", "www.google.com"):
        v = p.decide(wire(name), NOON, paused_until=until, temp_allows=[(name, NOON + HOUR)])
        assert v.action == "block" and v.decision.reason is Reason.PAUSED, name
        assert v.ttl_cap == 1801                               # rounded up
        assert v.decision.text == f"paused device: {name}" and v.decision.log_reason == "paused:device"
        assert v.decision.ede_code == 17
    assert p.decide(wire("example.com"), until - 0.3, paused_until=until).ttl_cap == 1   # at least 1
    assert allowed(p.decide(wire("example.com"), NOON, paused_until=NOON))               # ended
    assert allowed(p.decide(wire("example.com"), NOON, paused_until=NOON - 5))


def test_pause_cap_is_the_smaller_of_pause_and_schedule(index):
    p = policy(index, kid(), [BEDTIME])
    now = at(HCM, *MON, 20, 30)
    assert p.decide(wire("example.com"), now, paused_until=now + 2 * HOUR).ttl_cap == 1800   # bedtime starts
    assert p.decide(wire("example.com"), now, paused_until=now + 600).ttl_cap == 600


# ------------------------------------------------------------------------------------------ 3. temporary allows


def test_temp_allow_matches_name_and_parents_only(index):
    p = policy(index, kid(block=("wikipedia.org", "*.wikipedia.org")))
    temp = [("wikipedia.org", NOON + 900)]
    for name in ("wikipedia.org", "en.wikipedia.org", "upload.en.wikipedia.org"):
        v = p.decide(wire(name), NOON, temp_allows=temp)
        assert v == Verdict("allow", None, None, 900), name
    for name in ("notwikipedia.org", "wikipedia.org.evil.com", "org"):
        v = p.decide(wire(name), NOON, temp_allows=[("wikipedia.org", NOON + 900)])
        assert v.ttl_cap is None, name
    assert p.decide(wire("notwikipedia.org"), NOON, temp_allows=temp).action == "allow"
    assert p.decide(wire("en.wikipedia.org"), NOON).decision.reason is Reason.CUSTOM


def test_temp_allow_forms_expiry_and_latest_end(index):
    p = policy(index, kid())
    bet = wire("www.bet.example")
    assert p.decide(bet, NOON).decision.reason is Reason.CATEGORY
    assert p.decide(bet, NOON, temp_allows=[("*.bet.example", NOON + 60)]).ttl_cap == 60
    assert p.decide(bet, NOON, temp_allows=[("BET.Example.", NOON + 60.5)]) == Verdict("allow", None, None, 61)
    assert p.decide(bet, NOON, temp_allows=[("bet.example", NOON)]).action == "block"      # expired
    assert p.decide(bet, NOON, temp_allows=[("not a name!", NOON + 60)]).action == "block"
    many = [("bet.example", NOON + 60), ("www.bet.example", NOON + 600), ("other.example", NOON + 9000),
            ("example", NOON + 120)]
    assert p.decide(bet, NOON, temp_allows=many).ttl_cap == 600
    assert p.decide(bet, NOON, temp_allows=iter(many)).ttl_cap == 600                       # any iterable


def test_temp_allow_beats_schedules_lists_services_but_not_mandatory(index):
    p = policy(index, kid(services=("tiktok",), block=("blocked.example",)), [BEDTIME])
    night = at(HCM, *MON, 23)                                   # bedtime: 8 h left
    temps = [(d, night + 1200) for d in ("example.com", "tiktok.com", "blocked.example", "bet.example",
                                         "forbidden.example")]
    for name in ("www.example.com", "www.tiktok.com", "blocked.example", "bet.example"):
        assert p.decide(wire(name), night).action == "block", name
        assert p.decide(wire(name), night, temp_allows=temps) == Verdict("allow", None, None, 1200), name
    v = p.decide(wire("forbidden.example"), night, temp_allows=temps)
    assert v.action == "block" and v.decision.reason is Reason.MANDATORY and v.decision.category == "adult"
    # a temporary allow that outlives the window: capped by the window's end
    assert p.decide(wire("example.com"), night, temp_allows=[("example.com", night + 9 * HOUR)]).ttl_cap == 8 * HOUR


# ------------------------------------------------------------------------------------------ 4. allow list


def test_allow_list_exact_and_wildcard(index):
    p = policy(index, kid(allow=("bet.example", "*.porn.example", "ads.example.net")))
    assert allowed(p.decide(wire("bet.example"), NOON))
    assert p.decide(wire("www.bet.example"), NOON).decision.reason is Reason.CATEGORY       # exact only
    assert allowed(p.decide(wire("porn.example"), NOON))                                    # *.x covers x
    assert allowed(p.decide(wire("a.b.porn.example"), NOON))
    assert allowed(p.decide(wire("ads.example.net"), NOON))
    assert p.decide(wire("x.ads.example.net"), NOON).decision.category == "ads"


def test_allow_list_beats_bedtime_block_list_services_and_categories(index):
    p = policy(index, kid(allow=("*.school.edu.vn", "*.tiktok.com", "*.bet.example"),
                          block=("www.school.edu.vn",), services=("tiktok",)), [BEDTIME])
    night = at(HCM, *MON, 23)
    for name in ("lms.school.edu.vn", "www.school.edu.vn", "www.tiktok.com", "www.bet.example"):
        assert p.decide(wire(name), night) == Verdict("allow", None, None, 8 * HOUR), name
    assert p.decide(wire("v16.tiktokcdn.com"), NOON).decision.reason is Reason.SERVICE
    assert p.decide(wire("example.com"), night).decision.reason is Reason.SCHEDULE


def test_allow_list_does_not_beat_mandatory_or_safe_search(index):
    p = policy(index, kid(allow=("*.forbidden.example", "*.youtube.com", "*.google.com")))
    v = p.decide(wire("www.forbidden.example"), NOON)
    assert v.action == "block" and v.decision.reason is Reason.MANDATORY
    v = p.decide(wire("www.youtube.com"), NOON)
    assert v.action == "rewrite" and v.target == "restrict.youtube.com"
    assert p.decide(wire("www.google.com"), NOON).target == "forcesafesearch.google.com"
    assert allowed(p.decide(wire("mail.google.com"), NOON))


def test_allow_list_idn(index):
    p = policy(index, kid(allow=("*.ví-dụ.vn", "bücher.de"), block=("www.ví-dụ.vn",)))
    assert p.profile.allow == ("*.xn--v-d-rma6749a.vn", "xn--bcher-kva.de")
    assert allowed(p.decide(wire("ví-dụ.vn"), NOON))
    assert allowed(p.decide(wire("www.xn--v-d-rma6749a.vn"), NOON))
    assert allowed(p.decide(wire("bücher.de"), NOON))
    assert p.decide(wire("www.bücher.de"), NOON).action == "allow"
    assert p.decide(wire("www.bet.xn--bcher-kva.de"), NOON).action == "allow"


# ------------------------------------------------------------------------------------------ 5. block_all schedules


def test_bedtime_across_midnight_with_caps(index):
    p = policy(index, kid(), [BEDTIME])
    assert p.uses_time
    name = wire("example.com")
    v = p.decide(name, at(HCM, *MON, 23))
    assert v.action == "block" and v.decision.reason is Reason.SCHEDULE and v.decision.category == "Bedtime"
    assert v.ttl_cap == 8 * HOUR and v.decision.text == "schedule Bedtime: example.com"
    v = p.decide(name, at(HCM, *TUE, 6, 59))
    assert v.action == "block" and v.ttl_cap == 60
    assert p.decide(name, at(HCM, *TUE, 6, 59, 59)).ttl_cap == 1
    assert p.decide(name, at(HCM, *TUE, 6, 59, 59) + 0.5).ttl_cap == 1
    assert p.decide(name, at(HCM, *TUE, 7)) == Verdict("allow", None, None, 14 * HOUR)
    assert p.decide(name, at(HCM, *TUE, 20, 59, 59) + 0.25) == Verdict("allow", None, None, 1)
    # Thursday night runs into Friday; Friday and Saturday nights are free
    assert p.decide(name, at(HCM, *FRI, 6)).decision.reason is Reason.SCHEDULE
    v = p.decide(name, at(HCM, *FRI, 23))
    assert allowed(v._replace(ttl_cap=None)) and v.ttl_cap == 46 * HOUR              # until Sunday 21:00
    assert p.decide(name, at(HCM, *SUN, 21)).action == "block"


def test_bedtime_in_berlin_across_spring_forward(index):
    # 2026-03-28 is a Saturday; on Sunday 29 the clocks jump from 02:00 to 03:00
    sched = replace(BEDTIME, days=("sat",))
    p = policy(index, kid(), [sched], tz=BERLIN)
    v = p.decide(wire("example.com"), at(BERLIN, 2026, 3, 28, 23))
    assert v.decision.reason is Reason.SCHEDULE and v.ttl_cap == 7 * HOUR                # one hour less
    assert p.decide(wire("example.com"), at(BERLIN, 2026, 3, 29, 7)).action == "allow"


def test_disabled_and_other_profiles_schedules_ignored(index):
    others = [replace(BEDTIME, enabled=False), replace(BEDTIME, profile="Teen"), replace(BEDTIME, profile="KID")]
    p = policy(index, kid(), others[:2])
    assert not p.uses_time
    assert p.decide(wire("example.com"), at(HCM, *MON, 23)) == Verdict("allow", None)
    p = policy(index, kid(), others)                           # names compare ignoring ASCII case
    assert p.uses_time and p.decide(wire("example.com"), at(HCM, *MON, 23)).action == "block"


def test_no_schedules_no_cap(index):
    p = policy(index, kid())
    assert not p.uses_time
    assert p.decide(wire("example.com"), NOON) == Verdict("allow", None, None, None)
    assert p.decide(wire("www.bet.example"), NOON).ttl_cap is None


# ------------------------------------------------------------------------------------------ 6. block list


def test_block_list(index):
    p = policy(index, kid(block=("exact.example", "*.wild.example")))
    v = p.decide(wire("exact.example"), NOON)
    assert v.action == "block" and v.decision.reason is Reason.CUSTOM
    assert (v.decision.category, v.decision.rule) == ("Kid", "exact.example")
    assert v.decision.text == "custom-rule Kid: exact.example" and v.decision.log_reason == "custom-rule:Kid"
    assert allowed(p.decide(wire("www.exact.example"), NOON))
    assert p.decide(wire("wild.example"), NOON).decision.rule == "*.wild.example"
    assert p.decide(wire("a.b.wild.example"), NOON).decision.rule == "*.wild.example"
    assert allowed(p.decide(wire("notwild.example"), NOON))


def test_block_list_beats_services_and_categories_schedule_beats_block_list(index):
    p = policy(index, kid(block=("*.bet.example", "*.tiktok.com"), services=("tiktok",)), [BEDTIME])
    assert p.decide(wire("www.bet.example"), NOON).decision.reason is Reason.CUSTOM
    assert p.decide(wire("www.tiktok.com"), NOON).decision.reason is Reason.CUSTOM
    assert p.decide(wire("www.tiktok.com"), at(HCM, *MON, 23)).decision.reason is Reason.SCHEDULE


# ------------------------------------------------------------------------------------------ 7. services


def test_profile_services_from_the_catalogue(index, services):
    p = policy(index, kid(services=("tiktok", "youtube")), services=services)
    for name, domain in (("www.tiktok.com", "tiktok.com"), ("tiktok.com", "tiktok.com"),
                         ("v16.tiktokcdn.com", "tiktokcdn.com")):
        v = p.decide(wire(name), NOON)
        assert v.action == "block" and v.decision.reason is Reason.SERVICE, name
        assert (v.decision.category, v.decision.rule) == ("TikTok", domain)
        assert v.decision.text == f"service TikTok: {domain}"
    v = p.decide(wire("www.youtube.com"), NOON)                 # blocked, not rewritten to restricted mode
    assert v.action == "block" and v.decision.category == "YouTube"
    assert p.decide(wire("rr3---sn-8qj-i5o6.googlevideo.com"), NOON).decision.category == "YouTube"
    assert allowed(p.decide(wire("nottiktok.com"), NOON))
    assert allowed(p.decide(wire("tiktok.com.example"), NOON))


def test_service_domain_without_subdomains_and_default_catalogue(index):
    cat = {"shop": Service("shop", "Shop", "shopping", (("shop.example", False), ("cdn.shop.example", True)))}
    p = policy(index, Profile(name="Mum", services=("shop", "nosuch")), services=cat)
    assert p.decide(wire("shop.example"), NOON).decision.category == "Shop"
    assert allowed(p.decide(wire("www.shop.example"), NOON))
    assert p.decide(wire("a.cdn.shop.example"), NOON).decision.rule == "cdn.shop.example"
    # services=None loads the bundled catalogue
    p = policy(index, kid(services=("roblox",)))
    assert p.decide(wire("www.roblox.com"), NOON).decision.category == "Roblox"


def test_block_services_window(index):
    homework = Schedule(profile="Kid", name="Homework", days=("mon", "tue", "wed", "thu", "fri"), start="16:00",
                        end="18:00", action="block_services", services=("youtube", "tiktok"))
    p = policy(index, kid(youtube="off", safe_search=False), [homework])
    yt = wire("www.youtube.com")
    assert p.decide(yt, at(HCM, *MON, 15)) == Verdict("allow", None, None, HOUR)
    v = p.decide(yt, at(HCM, *MON, 16, 30))
    assert v.decision.reason is Reason.SERVICE and v.decision.category == "YouTube" and v.ttl_cap == 5400
    assert p.decide(wire("m.tiktok.com"), at(HCM, *MON, 17)).decision.category == "TikTok"
    assert p.decide(yt, at(HCM, *SAT, 17)).action == "allow"


# ------------------------------------------------------------------------------------------ 8. categories


def test_categories_with_list_ids(index):
    p = policy(index, kid())
    v = p.decide(wire("www.bet.example"), NOON)
    assert v.action == "block" and v.decision.reason is Reason.CATEGORY
    assert (v.decision.category, v.decision.rule, v.decision.sources) == ("gambling", "bet.example",
                                                                          "hagezi-gambling")
    assert v.decision.text == "category gambling (list hagezi-gambling): bet.example"
    assert p.decide(wire("ads.example.net"), NOON).decision.sources == "easylist,adguard-dns"
    v = p.decide(wire("forbidden.example"), NOON)
    assert v.decision.reason is Reason.MANDATORY and v.decision.sources == "feed-adult" and v.decision.ede_code == 15


def test_mandatory_always_on_even_for_adult_preset(index):
    p = policy(index, PRESETS["adult"])
    assert allowed(p.decide(wire("porn.example"), NOON))
    assert allowed(p.decide(wire("bet.example"), NOON))
    v = p.decide(wire("x.forbidden.example"), NOON)
    assert v.action == "block" and v.decision.reason is Reason.MANDATORY and v.decision.category == "adult"


def test_mandatory_from_prefix_without_meta(index):
    p = ProfilePolicy(PRESETS["adult"], index, {}, (), HCM)
    v = p.decide(wire("forbidden.example"), NOON)
    assert v.decision.reason is Reason.MANDATORY and v.decision.category == "adult"
    assert allowed(p.decide(wire("porn.example"), NOON))


def test_star_blocks_every_index_category(index):
    p = policy(index, DEFAULT_PROFILE)
    for name, cat in (("porn.example", "adult"), ("bet.example", "gambling"), ("ads.example.net", "ads"),
                      ("doh.example.org", "bypass")):
        v = p.decide(wire(name), NOON)
        assert v.decision.reason is Reason.CATEGORY and v.decision.category == cat
    assert allowed(p.decide(wire("example.com"), NOON))


def test_block_categories_windows_and_mask_memo(index):
    work = Schedule(profile="Dad", name="Work", days=("mon", "tue", "wed", "thu", "fri"), start="09:00",
                    end="17:00", action="block_categories", categories=("gambling", "ads"))
    lockdown = Schedule(profile="Dad", name="Lockdown", days=("sun",), start="10:00", end="11:00",
                        action="block_categories", categories=("*",))
    p = policy(index, replace(PRESETS["adult"], name="Dad"), [work, lockdown])
    bet, ads, porn = wire("bet.example"), wire("ads.example.net"), wire("porn.example")
    assert p.decide(bet, at(HCM, *MON, 8)) == Verdict("allow", None, None, HOUR)
    v = p.decide(bet, at(HCM, *MON, 9))
    assert v.decision.reason is Reason.CATEGORY and v.decision.category == "gambling" and v.ttl_cap == 8 * HOUR
    assert p.decide(ads, at(HCM, *MON, 16)).decision.category == "ads"
    assert allowed(p.decide(porn, at(HCM, *MON, 16))._replace(ttl_cap=None))
    assert p.decide(porn, at(HCM, *SUN, 10, 30)).decision.category == "adult"       # "*"
    assert p.decide(wire("doh.example.org"), at(HCM, *SUN, 10, 30)).decision.category == "bypass"
    for h in range(24):                                          # masks: one per distinct active set
        p.decide(bet, at(HCM, *MON, h))
        p.decide(bet, at(HCM, *TUE, h, 30))
    assert len(p._states) == 3 and len(p._masks) == 3     # none, work, lockdown


def test_built_in_encrypted_dns_table_backs_the_bypass_category(index):
    for name in ("dns.controld.com", "p2.dns.controld.com", "dns.google", "chrome.cloudflare-dns.com"):
        v = policy(index, kid()).decide(wire(name), NOON)
        assert v.action == "block" and v.decision.reason is Reason.CATEGORY and v.decision.category == "bypass"
        assert v.decision.sources == "built-in DoH/DoT table" and v.decision.log_reason == "category:bypass"
        assert v.decision.text.startswith("category bypass (list built-in DoH/DoT table): ")
    # the list speaks for the names it has; the table only fills gaps
    assert policy(index, kid()).decide(wire("doh.example.org"), NOON).decision.sources == "starter-bypass"
    assert policy(index, DEFAULT_PROFILE).decide(wire("dns.controld.com"), NOON).decision.category == "bypass"
    # without the bypass category, or with the name on the allow list, it resolves
    assert allowed(policy(index, PRESETS["adult"]).decide(wire("dns.controld.com"), NOON))
    assert allowed(policy(index, kid(allow=("*.controld.com",))).decide(wire("dns.controld.com"), NOON))
    # a block_categories window with bypass applies it while it runs; no index needed
    night = Schedule(profile="Dad", name="Night", days=("mon",), start="20:00", end="23:00",
                     action="block_categories", categories=("bypass",))
    p = ProfilePolicy(replace(PRESETS["adult"], name="Dad"), None, {}, [night], HCM)
    assert allowed(p.decide(wire("dns.controld.com"), NOON)._replace(ttl_cap=None))
    assert p.decide(wire("dns.controld.com"), at(HCM, *MON, 21)).decision.category == "bypass"


def test_no_index(index):
    p = ProfilePolicy(kid(services=("tiktok",)), None, {}, (), HCM)
    assert allowed(p.decide(wire("bet.example"), NOON))
    assert p.decide(wire("www.tiktok.com"), NOON).decision.reason is Reason.SERVICE


# ------------------------------------------------------------------------------------------ 9. safe search


def test_safe_search_strict(index):
    p = policy(index, kid())                                    # child: safe search on, YouTube strict
    cases = {"www.google.com": "forcesafesearch.google.com", "google.com.vn": "forcesafesearch.google.com",
             "www.bing.com": "strict.bing.com", "duckduckgo.com": "safe.duckduckgo.com",
             "www.youtube.com": "restrict.youtube.com", "m.youtube.com": "restrict.youtube.com"}
    for name, target in cases.items():
        v = p.decide(wire(name), NOON)
        assert v.action == "rewrite" and v.target == target and v.decision.reason is Reason.SAFE_SEARCH, name
        assert v.decision.rule == name
    assert p.decide(wire("www.google.com"), NOON).decision.category == "search"
    assert p.decide(wire("www.youtube.com"), NOON).decision.text == "safe-search youtube: www.youtube.com"


def test_safe_search_moderate_and_yandex_address(index):
    p = policy(index, replace(PRESETS["teen"], name="Teen"))
    assert p.decide(wire("www.youtube.com"), NOON).target == "restrictmoderate.youtube.com"
    v = p.decide(wire("yandex.ru"), NOON)
    assert v.action == "rewrite" and v.target == "213.180.193.56" and is_address_target(v.target)
    v = p.decide(wire("яндекс.рф"), NOON)
    assert v.target == "213.180.193.56"


def test_safe_search_switches(index):
    p = policy(index, kid(safe_search=False))                   # YouTube only
    assert allowed(p.decide(wire("www.google.com"), NOON))
    assert p.decide(wire("www.youtube.com"), NOON).target == "restrict.youtube.com"
    p = policy(index, kid(youtube="off"))                       # search only
    assert allowed(p.decide(wire("www.youtube.com"), NOON))
    assert p.decide(wire("www.bing.com"), NOON).target == "strict.bing.com"
    p = policy(index, PRESETS["adult"])
    assert allowed(p.decide(wire("www.google.com"), NOON))


def test_safe_hosts_are_never_rewritten(index):
    p = policy(index, kid())
    for host in ("forcesafesearch.google.com", "restrict.youtube.com", "restrictmoderate.youtube.com",
                 "strict.bing.com", "safe.duckduckgo.com"):
        assert allowed(p.decide(wire(host), NOON)), host


def test_blocks_beat_safe_search_and_schedule_cap_on_rewrites(index):
    p = policy(index, kid(block=("www.google.com",)), [BEDTIME])
    assert p.decide(wire("www.google.com"), NOON).decision.reason is Reason.CUSTOM
    v = p.decide(wire("www.bing.com"), at(HCM, *MON, 20))
    assert v.action == "rewrite" and v.ttl_cap == HOUR
    assert p.decide(wire("www.bing.com"), at(HCM, *MON, 21)).decision.reason is Reason.SCHEDULE


# ------------------------------------------------------------------------------------------ 10. and the rest


def test_plain_allow_and_malformed_names(index):
    p = policy(index, kid(block=("*.example.com",)))
    assert p.decide(wire("hearth.example"), NOON) == Verdict("allow", None)
    assert allowed(p.decide(b"\x07example", NOON))              # truncated: never blocked by the lists
    assert allowed(p.decide(b"\x00", NOON))


def test_schedule_state_memoised_per_second(index):
    p = policy(index, kid(), [BEDTIME])
    now = at(HCM, *MON, 23)
    p.decide(wire("example.com"), now)
    memo = p._memo
    p.decide(wire("example.org"), now + 0.9)
    assert p._memo is memo
    p.decide(wire("example.org"), now + 1)
    assert p._memo is not memo and p._memo[0] == now + 1


# ------------------------------------------------------------------------------------------ the compiled verdict

@pytest.mark.skipif(not hasattr(block_index.accel, "policy_decide"),
                    reason="the compiled lookup was not built here (no compiler) or HEARTH_NO_ACCEL is set")
def test_the_verdict_in_c_is_the_methods(index, services) -> None:
    """blocklists/_indexscan.c's policy_decide (what policy.decide is when built) against ProfilePolicy.decide on
    every step: the same verdict for plain names, listed ones, bypass signals, DoH, safe search, schedules and
    their caps, pauses and temporary allows; and the plain names' verdicts made in C (the method not called)."""
    homework = Schedule(profile="Kid", name="Homework", days=("mon",), start="11:00", end="13:00",
                        action="block_categories", categories=("ads",))
    profiles = [kid(), kid(bypass_prevention=False), kid(safe_search=False, youtube="off"),
                kid(allow=("ads.example.net",), block=("plain.example",)), kid(services=("tiktok",)),
                replace(PRESETS["teen"], name="Kid"), replace(PRESETS["adult"], name="Kid"), DEFAULT_PROFILE]
    names = ["www.example.com", "plain.example", "porn.example", "a.bet.example", "ads.example.net",
             "doh.example.org", "forbidden.example", "dns.google", "cloudflare-dns.com", "mask.icloud.com",
             "use-application-dns.net", "www.google.com", "google.com", "www.youtube.com", "www.bing.com",
             "forcesafesearch.google.com", "tiktok.com", "x.y.z.example.org", "xn--bcher-kva.example"]
    times = [NOON, NOON + 0.25, NOON + 0.75, at(HCM, *MON, 20, 59, 59) + 0.5, at(HCM, *MON, 22), at(HCM, *SAT, 9)]
    extras = [(None, ()), (NOON + 600, ()), (None, (("plain.example", NOON + 900),))]
    method = ProfilePolicy.decide
    compared = 0
    for profile in profiles:
        for scheduled in ((), (BEDTIME, homework)):
            p = policy(index, profile, scheduled, services=services)
            assert p.decide is not method
            for t in times:
                for name in names:
                    for paused, temps in extras:
                        got = p.decide(wire(name), t, paused, temps)
                        want = method(p, wire(name), t, paused, temps)
                        assert got == want, (profile.name, scheduled, t, name, paused, temps)
                        compared += 1
    assert compared > 5000
    calls: list = []
    p = policy(index, kid(), (BEDTIME,), services=services)
    p.decide(wire("warm.example"), NOON)          # the schedule's state of this second, memoised
    try:
        ProfilePolicy.decide = lambda self, *a, **k: (calls.append(a[0]), method(self, *a, **k))[1]
        verdicts = [p.decide(wire(f"n{i}.example"), NOON + 0.5) for i in range(50)]
        assert p.decide(wire("porn.example"), NOON + 0.5).action == "block"
    finally:
        ProfilePolicy.decide = method
    assert all(v.action == "allow" for v in verdicts) and calls == [wire("porn.example")]
