"""Blocklist parsers: the real shared lists in every syntax, IDN and encoding trouble, adblock details, streaming."""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Iterable, Optional

import pytest

from blocklists.parsers import (
    FORMATS,
    LOCAL_NAMES,
    MAX_LINE,
    ParseStats,
    Rule,
    detect_format,
    parse_file,
    parse_lines,
)
from resolver.base.names import normalise_name

REPO = Path(__file__).resolve().parents[2]


class Matcher:
    """What a list blocks under its format's semantics: exact names plus whole subtrees (regexes unused here)."""

    def __init__(self, rules: Iterable[Rule]):
        self.exact: set[str] = set()
        self.subtree: set[str] = set()
        for rule in rules:
            assert rule.regex is None and not rule.allow
            (self.subtree if rule.subdomains else self.exact).add(rule.name)

    def blocks(self, name: str) -> bool:
        if name in self.exact:
            return True
        labels = name.split(".")
        return any(".".join(labels[i:]) in self.subtree for i in range(len(labels)))

    def names(self) -> set[str]:
        return self.exact | self.subtree


def parse(path: Path, fmt: str = "auto", **kw) -> tuple[list[Rule], ParseStats]:
    stats = ParseStats()
    rules = list(parse_file(path, fmt, stats, **kw))
    assert stats.rules == len(rules)
    return rules, stats


def check_normalised(rules: Iterable[Rule]) -> None:
    for rule in rules:
        if rule.regex is None:
            assert not rule.name.startswith("*.") and normalise_name(rule.name) == rule.name, rule


# ---------------------------------------------------------------- the same list in several syntaxes

TIKTOK = {  # file suffix -> the format it is written in
    "domains.txt": "domains",        # exact, every blocked subdomain listed
    "onlydomains.txt": "wildcard",   # bare names, each covering its subdomains
    "wildcard.txt": "wildcard",      # *.name
    "adblock.txt": "adblock",        # ||name^
    "hosts": "hosts",                # 0.0.0.0 name
}


def test_tiktok_five_syntaxes_block_the_same_names(test_data):
    matchers: dict[str, Matcher] = {}
    for suffix, fmt in TIKTOK.items():
        path = test_data / "hagezi" / f"native.tiktok.{suffix}"
        rules, stats = parse(path, "auto")
        assert stats.format == fmt, suffix                  # auto detection agrees with the syntax
        assert (stats.rules, stats.invalid, sum(stats.skipped.values())) == (172, 0, 0), suffix
        assert stats.lines == 182 and stats.comments == 10
        check_normalised(rules)
        matchers[suffix] = Matcher(rules)
    listed = set().union(*(m.names() for m in matchers.values()))
    assert len(listed) == 172
    for name in sorted(listed):
        blocked_by = {suffix for suffix, m in matchers.items() if m.blocks(name)}
        assert blocked_by == set(TIKTOK), (name, blocked_by)
    # the semantics differ only below the listed names
    probe = "x." + sorted(listed)[0]
    assert {s for s, m in matchers.items() if m.blocks(probe)} == {"onlydomains.txt", "wildcard.txt", "adblock.txt"}


OISD_SMALL = [("oisd/oisd_small.adblock.txt", "adblock"), ("oisd/oisd_small.domainswild.txt", "wildcard"),
              ("oisd/oisd_small.domainswild2.txt", "wildcard")]
GAMBLING = [("hagezi/gambling.adblock.txt", "adblock"), ("hagezi/gambling.onlydomains.txt", "wildcard")]


@pytest.mark.parametrize("data, files, count", [
    ("test_data", OISD_SMALL, 3000),           # tests/data keeps the same 3000 names in each syntax
    ("test_data", [("hagezi/doh-vpn-proxy-bypass.adblock.txt", "adblock"),
                   ("hagezi/doh-vpn-proxy-bypass.wildcard.txt", "wildcard"),
                   ("hagezi/doh-vpn-proxy-bypass.onlydomains.txt", "wildcard")], 2506),
    ("test_data", [("hagezi/nosafesearch.adblock.txt", "adblock"), ("hagezi/nosafesearch.wildcard.txt", "wildcard"),
                   ("hagezi/nosafesearch.onlydomains.txt", "wildcard")], 259),
    ("test_data", GAMBLING, 3000),
    ("shared_data", OISD_SMALL, 47908),        # the whole lists (large-data: skipped without ../shared/data)
    ("shared_data", GAMBLING, 168582),
], ids=["oisd-small", "doh-vpn-proxy-bypass", "nosafesearch", "gambling", "oisd-small-full", "gambling-full"])
def test_subtree_syntaxes_give_identical_rule_sets(request, data, files, count):
    root = request.getfixturevalue(data)
    sets = []
    for rel, fmt in files:
        rules, stats = parse(root / rel, "auto")
        assert stats.format == fmt, rel
        assert (stats.rules, stats.invalid, sum(stats.skipped.values())) == (count, 0, 0), rel
        assert all(r.subdomains and not r.allow and not r.important for r in rules)
        sets.append(set(rules))
    check_normalised(sets[0])
    assert len(sets[0]) == count
    for other in sets[1:]:
        assert other == sets[0]


def test_blocklistproject_tiktok_names_agree_across_syntaxes(test_data):
    names = {}
    for suffix, fmt in (("hosts", "hosts"), ("domains.txt", "domains"), ("adblock.txt", "adblock")):
        rules, stats = parse(test_data / "blocklistproject" / f"tiktok.{suffix}", "auto")
        assert stats.format == fmt and stats.rules == 3725 and stats.invalid == 0
        names[suffix] = {r.name for r in rules}
    assert names["hosts"] == names["domains.txt"] == names["adblock.txt"]
    assert "client_monitor.isnssdk.com" in names["hosts"]     # underscores are kept


# ---------------------------------------------------------------- hosts

def test_stevenblack_hosts_slice(test_data):
    rules, stats = parse(test_data / "stevenblack" / "hosts", "auto")
    assert stats.format == "hosts" and stats.invalid == 0 and stats.rules == 2500 - 14
    names = [r.name for r in rules]
    assert not set(names) & LOCAL_NAMES and "0.0.0.0" not in names
    assert stats.skipped == {"localhost": 14}    # the 14 localhost/broadcasthost/ip6-*/"0.0.0.0 0.0.0.0" lines
    assert len(set(names)) == len(names)
    assert all(not r.subdomains for r in rules)
    assert "docs.pipenv.org" in names             # "0.0.0.0 docs.pipenv.org # https://github.com/..."
    check_normalised(rules)


def test_stevenblack_hosts(shared_data):
    """The whole list (large-data): as many rules as its header announces, parsed at a useful speed."""
    path = shared_data / "stevenblack" / "hosts"
    announced = None
    with open(path, encoding="utf-8") as f:
        for line in itertools.islice(f, 20):
            m = re.match(r"# Number of unique domains: ([\d,]+)", line)
            if m:
                announced = int(m.group(1).replace(",", ""))
    assert announced
    t0 = time.perf_counter()
    rules, stats = parse(path, "auto")
    seconds = time.perf_counter() - t0
    print(f"\nstevenblack/hosts: {stats.lines} lines, {stats.rules} rules in {seconds:.2f}s "
          f"({stats.lines / seconds:,.0f} lines/s); announced {announced}")
    assert stats.format == "hosts" and stats.invalid == 0
    names = [r.name for r in rules]
    assert not set(names) & LOCAL_NAMES and "0.0.0.0" not in names
    assert stats.skipped == {"localhost": 14}    # the 14 localhost/broadcasthost/ip6-*/"0.0.0.0 0.0.0.0" lines
    assert abs(stats.rules - announced) <= announced * 0.005
    assert len(set(names)) == len(names)
    assert all(not r.subdomains for r in rules)
    assert "docs.pipenv.org" in names             # "0.0.0.0 docs.pipenv.org # https://github.com/..."
    check_normalised(rules)


def test_hosts_lines():
    lines = [
        "127.0.0.1 localhost", "::1 ip6-localhost ip6-loopback", "fe80::1%lo0 localhost",
        "255.255.255.255 broadcasthost", "ff02::1 ip6-allnodes", "0.0.0.0 0.0.0.0",
        "0.0.0.0 Ads.Example.COM. tracker.example.net   # two names, a comment",
        "127.0.0.1 a.test", "::  b.test", "::1 c.test", "0 d.test", "127.0.0.2 e.test",
        "192.168.1.5 printer printer.lan",          # a real mapping: not a block entry
        "0.0.0.0 1.2.3.4",                          # an address where a name should be
        "bare.test",                                # a lone name: exact, as Pi-hole reads it
        "not-an-address f.test",
        "0.0.0.0\tg.test\tbad!name",
        "   # indented comment", "",
    ]
    stats = ParseStats()
    rules = list(parse_lines(lines, "hosts", stats))
    assert [r.name for r in rules] == ["ads.example.com", "tracker.example.net", "a.test", "b.test", "c.test",
                                       "d.test", "e.test", "bare.test", "g.test"]
    assert all(r == Rule(r.name, False, False, False, None) for r in rules)
    assert stats.skipped == {"localhost": 7, "hosts-mapping": 1, "ip-address": 1}
    assert stats.invalid == 2 and [n for n, _ in stats.invalid_samples] == [16, 17]
    assert stats.comments == 2 and stats.lines == len(lines)


# ---------------------------------------------------------------- detection

@pytest.mark.parametrize("rel, fmt", [
    ("stevenblack/hosts", "hosts"), ("stevenblack/porn-only.hosts", "hosts"),
    ("blocklistproject/facebook.hosts", "hosts"), ("hagezi/native.tiktok.hosts", "hosts"),
    ("oisd/oisd_small.adblock.txt", "adblock"), ("oisd/oisd_nsfw_small.adblock.txt", "adblock"),
    ("hagezi/gambling.adblock.txt", "adblock"), ("blocklistproject/tiktok.adblock.txt", "adblock"),
    ("safesearch/google.txt", "adblock"),
    ("oisd/oisd_small.domainswild.txt", "wildcard"), ("hagezi/nosafesearch.wildcard.txt", "wildcard"),
    ("oisd/oisd_small.domainswild2.txt", "wildcard"),        # bare names; header "Domains (wildcards) without *."
    ("hagezi/tif.medium.onlydomains.txt", "wildcard"),       # bare names; header "Domains (without subdomains)"
    ("ut1/adult.very_restrictive_expression", "regex"),
    ("hagezi/native.tiktok.domains.txt", "domains"), ("ut1/gambling.domains", "domains"),
    ("ut1/drogue.domains", "domains"), ("blocklistproject/tiktok.domains.txt", "domains"),
    ("popular/umbrella-top-20k.txt", "domains"),
])
def test_auto_detection_on_shared_lists(test_data, rel, fmt):
    with open(test_data / rel, encoding="utf-8", errors="replace") as f:
        assert detect_format(list(itertools.islice(f, 400))) == fmt
    stats = ParseStats()
    next(parse_file(test_data / rel, "auto", stats), None)   # the format is known before the first rule
    assert stats.format == fmt


def test_detection_of_small_samples():
    assert detect_format([]) == "domains"
    assert detect_format(["# only a comment"]) == "domains"
    assert detect_format(["address=/a.test/0.0.0.0", "server=/b.test/", "# c"]) == "dnsmasq"
    assert detect_format(["^ads?[0-9]*\\.", "(\\.|^)track\\.test$"]) == "regex"
    assert detect_format(["[Adblock Plus 2.0]", "||a.test^", "b.test"]) == "adblock"
    assert detect_format(["##.banner", "example.org##.ad"]) == "adblock"
    assert detect_format(["*.a.test", "*.b.test", "c.test"]) == "wildcard"
    assert detect_format(["*.a.test", "b.test", "c.test"]) == "domains"   # mostly bare: bare lines are exact
    assert detect_format(["0.0.0.0 a.test", "b.test"]) == "hosts"        # tie: the more specific syntax
    assert detect_format([b"\xef\xbb\xbf0.0.0.0 a.test\r\n"]) == "hosts"


def test_auto_detection_streams_an_endless_source():
    def endless():
        yield "# header"
        for i in itertools.count():
            yield f"||n{i}.example.test^"

    stats = ParseStats()
    rules = list(itertools.islice(parse_lines(endless(), "auto", stats), 5000))
    assert stats.format == "adblock" and len(rules) == 5000 and rules[-1].name == "n4999.example.test"


def test_unknown_format_is_refused_at_once():
    with pytest.raises(ValueError):
        parse_lines([], "pihole")
    with pytest.raises(ValueError):
        parse_file("/nonexistent", "hostsfile")
    assert set(FORMATS) == {"hosts", "domains", "wildcard", "adblock", "regex", "dnsmasq"}


# ---------------------------------------------------------------- names, encodings, line ends

IDN_FIXTURE = (
    b"\xef\xbb\xbf"                      # UTF-8 BOM
    + "bóng-đá.vn\r\n".encode()         # line 1: Vietnamese IDN
    + b"XN--BNG--8NA8HPJ.VN.\r\n"       # line 2: the same name, upper-case punycode, trailing dot
    + "Ví-Dụ.VN.\r\n".encode()           # line 3
    + b"bad\xffname.vn\r\n"             # line 4: not UTF-8 -> U+FFFD -> invalid
    + b"\r\n"                           # line 5: blank
    + b"# comment\r\n"                  # line 6
    + "*.Bóng-Đá.vn\r\n".encode()       # line 7: explicit wildcard in a domains list
    + b"192.0.2.1\r\n"                  # line 8: an address (UT1 lists have some)
    + b"300.1.1.1\r\n"                  # line 9: neither an address nor a name
    + b"exa mple.vn\r\n"                # line 10: two words
    + b"trailing.dot.vn.\r\n"           # line 11
    + b"last.vn"                        # line 12: no line end
)


def _idn_expectations(rules: list[Rule], stats: ParseStats) -> None:
    assert [(r.name, r.subdomains) for r in rules] == [
        ("xn--bng--8na8hpj.vn", False), ("xn--bng--8na8hpj.vn", False), ("xn--v-d-rma6749a.vn", False),
        ("xn--bng--8na8hpj.vn", True), ("trailing.dot.vn", False), ("last.vn", False)]
    assert stats.lines == 12 and stats.comments == 2
    assert stats.skipped == {"ip-address": 1}
    assert stats.invalid == 3
    assert stats.invalid_samples == [(4, "bad\ufffdname.vn"), (9, "300.1.1.1"), (10, "exa mple.vn")]


def test_idn_bom_crlf_and_bad_bytes_from_a_file(tmp_path):
    path = tmp_path / "idn.txt"
    path.write_bytes(IDN_FIXTURE)
    stats = ParseStats()
    rules = list(parse_file(path, "auto", stats))
    assert stats.format == "domains"
    _idn_expectations(rules, stats)
    assert normalise_name("Ví-Dụ.VN.") == "xn--v-d-rma6749a.vn"


def test_idn_from_bytes_and_str_lines():
    for lines in (IDN_FIXTURE.splitlines(keepends=True), IDN_FIXTURE.decode("utf-8", "replace").split("\n")):
        stats = ParseStats()
        _idn_expectations(list(parse_lines(lines, "domains", stats)), stats)


def test_cr_only_line_ends_and_an_overlong_line(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"a.test\rb.test\r" + b"c" * (MAX_LINE * 3) + b".test\rd.test\r")
    stats = ParseStats()
    rules = list(parse_file(path, "domains", stats))
    assert [r.name for r in rules] == ["a.test", "b.test", "d.test"]
    assert stats.lines == 4 and stats.invalid == 1
    assert stats.invalid_samples[0][0] == 3 and len(stats.invalid_samples[0][1]) == 200


def test_wildcard_format_and_single_label_names():
    lines = ["*.a.test", "b.test", "*.com", "com", "||c.test^", "*.*.d.test", "ads*.e.test", "localhost", ".f.test"]
    stats = ParseStats()
    rules = list(parse_lines(lines, "wildcard", stats))
    assert rules == [Rule("a.test", True), Rule("b.test", True), Rule("f.test", True)]
    assert stats.skipped == {"single-label": 2, "not-a-domain": 2, "localhost": 1}
    assert stats.invalid == 1 and stats.invalid_samples == [(5, "||c.test^")]
    # opt in to whole top-level domains (spam-TLD lists, oisd nsfw's ||xxx^)
    rules = list(parse_lines(["*.xxx", "porn"], "wildcard", allow_single_label=True))
    assert rules == [Rule("xxx", True), Rule("porn", True)]
    # an exact single-label rule blocks one name only and is kept
    assert list(parse_lines(["wpad"], "domains")) == [Rule("wpad", False)]


def test_oisd_nsfw_top_level_domain_rules(test_data):
    rules, stats = parse(test_data / "oisd" / "oisd_nsfw_small.adblock.txt")
    assert stats.skipped == {"single-label": 4} and stats.invalid == 0 and stats.rules == 20441
    rules_tld, stats_tld = parse(test_data / "oisd" / "oisd_nsfw_small.adblock.txt", allow_single_label=True)
    assert {r.name for r in rules_tld} - {r.name for r in rules} == {"adult", "porn", "sex", "xxx"}


# ---------------------------------------------------------------- adblock

def test_adblock_rules():
    lines = [
        "[Adblock Plus 2.0]", "! Title: test", "# also a comment",
        "||sub.example.test^",                   # 4: subtree
        "|exact.example.test^",                  # 5: exact
        "@@||good.example.test^",                # 6: allow
        "||bad.example.test^$important",         # 7: important
        "@@||vip.example.test^$important",       # 8: important allow
        "||Upper.Example.TEST^|",                # 9
        "||noanchor.example.test",               # 10: no ^: still the domain
        "plain.example.test",                    # 11: bare name: exact (AdGuard)
        "caret.example.test^",                   # 12: as ||caret.example.test^
        "0.0.0.0 hosts.example.test",            # 13: hosts syntax inside an AdGuard list
        "||bóng-đá.vn^",                         # 14: IDN
        "||a.test^$dnsrewrite=NOERROR;CNAME;safe.test", "||b.test^$dnstype=AAAA", "||c.test^$client=192.168.1.2",
        "||d.test^$ctag=child", "||e.test^$denyallow=x.test", "||f.test^$badfilter", "||g.test^$important,third-party",
        "example.test##.banner", "##.ad", "example.test#@#.ad", "example.test#?#div:has(a)", "example.test#$#body{}",
        "example.test$$script", "example.test#%#//scriptlet('x')",
        "||path.test/ads/*", "||port.test:8080^", "/banner/ads.", "||1.2.3.4^", "||test^",
        "||bad!name^", "@@",
    ]
    stats = ParseStats()
    rules = list(parse_lines(lines, "auto", stats))
    assert stats.format == "adblock"
    assert rules == [
        Rule("sub.example.test", True), Rule("exact.example.test", False),
        Rule("good.example.test", True, allow=True), Rule("bad.example.test", True, important=True),
        Rule("vip.example.test", True, allow=True, important=True), Rule("upper.example.test", True),
        Rule("noanchor.example.test", True), Rule("plain.example.test", False), Rule("caret.example.test", True),
        Rule("hosts.example.test", False), Rule("xn--bng--8na8hpj.vn", True),
    ]
    assert stats.skipped == {
        "modifier:dnsrewrite": 1, "modifier:dnstype": 1, "modifier:client": 1, "modifier:ctag": 1,
        "modifier:denyallow": 1, "modifier:badfilter": 1, "modifier:third-party": 1,
        "cosmetic": 7, "not-a-domain": 3, "ip-address": 1, "single-label": 1,
    }
    assert stats.comments == 3
    assert stats.invalid == 2 and [n for n, _ in stats.invalid_samples] == [len(lines) - 1, len(lines)]


def test_adblock_comments_that_look_cosmetic_and_whole_texts():
    text = "## Section ##\n###### banner\n##.ad-box\n###sidebar\n||a.test^\r\n||b.test^\n"
    stats = ParseStats()
    assert list(parse_lines(text, "auto", stats)) == [Rule("a.test", True), Rule("b.test", True)]
    assert stats.format == "adblock" and stats.lines == 6
    assert stats.comments == 2 and stats.skipped == {"cosmetic": 2}
    assert detect_format(["## hosts header ##", "#### more ####", "a.test"]) == "domains"
    assert list(parse_lines(b"a.test\r\nb.test", "domains")) == [Rule("a.test"), Rule("b.test")]
    stats = ParseStats()
    assert list(parse_lines(["||k.test^$important  # why", "||l.test^ ! why", "||m n.test^"], "adblock", stats)) == [
        Rule("k.test", True, important=True), Rule("l.test", True)]
    assert stats.invalid == 1


def test_adblock_regex_and_wildcard_rules():
    lines = ["/^ad[0-9]+\\./", "@@/^safe\\./$important", "/(bad/", "||ads*.example.test^", "||*.example.test^",
             "|tr*.example.test^", "||*.test^", "||ads.*^", "/x/$dnstype=A"]
    stats = ParseStats()
    rules = list(parse_lines(lines, "adblock", stats))
    assert rules == [
        Rule("", False, False, False, r"^ad[0-9]+\."),
        Rule("", False, True, True, r"^safe\."),
        Rule("", False, False, False, r"(?:^|\.)ads.*\.example\.test$"),
        Rule("", False, False, False, r"\.example\.test$"),
        Rule("", False, False, False, r"^tr.*\.example\.test$"),
    ]
    assert stats.invalid == 1 and stats.invalid_samples[0][0] == 3
    assert stats.skipped == {"not-a-domain": 2, "modifier:dnstype": 1}
    star = re.compile(rules[3].regex)
    assert star.search("a.example.test") and star.search("a.b.example.test") and not star.search("example.test")
    ads = re.compile(rules[2].regex)
    assert ads.search("ads.example.test") and ads.search("x.ads7.example.test") and not ads.search("xads.example.test")


def test_safesearch_rewrites_are_counted_not_blocked(test_data):
    rules, stats = parse(test_data / "safesearch" / "google.txt")
    assert rules == [] and stats.skipped == {"modifier:dnsrewrite": 194} and stats.invalid == 0


# ---------------------------------------------------------------- regex and dnsmasq

def test_regex_lists(test_data):
    rules, stats = parse(test_data / "ut1" / "adult.very_restrictive_expression")
    assert stats.format == "regex" and len(rules) == 2 and stats.invalid == 0
    assert all(r.name == "" and r.regex and not r.subdomains and not r.allow for r in rules)
    compiled = [re.compile(r.regex) for r in rules]
    assert any(c.search("www.pornstar-videos.test") for c in compiled)
    assert any(c.search("free-porn.example.test") for c in compiled)
    assert not any(c.search("www.wikipedia.org") for c in compiled)

    lines = ["# Pi-hole regex list", "^ad[sx]?[0-9]*\\.", "(\\.|^)tracker\\.test$", "[[:digit:]]+\\.ads\\.",
             "^telemetry\\. # trailing comment", "Upper\\.Case", "^abc$;querytype=AAAA", "(unclosed", "x" * 513, ""]
    stats = ParseStats()
    rules = list(parse_lines(lines, "regex", stats))
    assert [r.regex for r in rules] == ["^ad[sx]?[0-9]*\\.", "(\\.|^)tracker\\.test$", "[0-9]+\\.ads\\.",
                                        "^telemetry\\.", "(?i)Upper\\.Case"]
    assert stats.invalid == 2 and [n for n, _ in stats.invalid_samples] == [8, 9]
    assert stats.skipped == {"modifier:querytype": 1} and stats.comments == 2
    assert re.search(rules[4].regex, "upper.case.test")


def test_dnsmasq_lines():
    lines = [
        "# dnsmasq blocklist", "address=/a.test/0.0.0.0", "address=/b.test/::", "address=/c.test/#",
        "address=/d.test/", "server=/e.test/", "local=/f.test/", "address=/g.test/h.test/127.0.0.1",
        "address=/*.i.test/0.0.0.0",
        "server=/fwd.test/1.1.1.1", "server=/std.test/#", "address=/redir.test/192.0.2.7",
        "address=/#/0.0.0.0", "address=/lan/", "server=9.9.9.9", "cache-size=1000", "address=/x.test",
        "not a dnsmasq line",
    ]
    stats = ParseStats()
    rules = list(parse_lines(lines, "auto", stats))
    assert stats.format == "dnsmasq"
    assert rules == [Rule(n, True) for n in ("a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test",
                                             "h.test", "i.test")]
    assert stats.skipped == {"dnsmasq-forward": 2, "dnsmasq-address": 1, "dnsmasq-all": 1, "single-label": 1,
                             "dnsmasq-option": 2}
    assert stats.invalid == 2 and [n for n, _ in stats.invalid_samples] == [17, 18]


# ---------------------------------------------------------------- streaming

_STREAM_CHILD = r"""
import json, resource, sys, time
from blocklists.parsers import ParseStats, parse_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stats = ParseStats()
t0 = time.perf_counter()
count = 0
for rule in parse_file(sys.argv[1], "auto", stats):
    count += 1
seconds = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
scale = 1 if sys.platform == "darwin" else 1024
print(json.dumps({"count": count, "lines": stats.lines, "format": stats.format, "comments": stats.comments,
                  "grew": (after - before) * scale, "seconds": seconds}))
"""


def test_parse_file_streams_a_two_million_line_file(tmp_path):
    path = tmp_path / "big.hosts"
    with open(path, "w", encoding="utf-8") as f:
        f.write("# generated\n")
        for i in range(0, 2_000_000 - 2, 2):
            f.write(f"0.0.0.0 host{i}.tracker{i % 977}.example.test\n# padding comment line {i:09d}\n")
        f.write("0.0.0.0 last.example.test\n")
    size = path.stat().st_size
    assert size > 60e6

    # first rules come at once, without the file being read up front
    tracemalloc.start()
    try:
        stats = ParseStats()
        gen = parse_file(path, "auto", stats)
        head = list(itertools.islice(gen, 20_000))
        gen.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(head) == 20_000 and stats.format == "hosts"
    assert peak < 20e6, f"traced peak {peak / 1e6:.1f} MB while reading a {size / 1e6:.0f} MB file"

    # the whole file in a fresh interpreter: its peak RSS must not grow with the file
    out = subprocess.run([sys.executable, "-c", _STREAM_CHILD, str(path)], cwd=str(REPO), capture_output=True,
                         text=True, timeout=120, check=True).stdout
    result = json.loads(out)
    print(f"\n2M-line file ({size / 1e6:.0f} MB): {result['count']} rules in {result['seconds']:.1f}s "
          f"({result['lines'] / result['seconds']:,.0f} lines/s), peak RSS grew {result['grew'] / 1e6:.1f} MB")
    assert result["lines"] == 2_000_000 and result["count"] == 1_000_000 and result["format"] == "hosts"
    assert result["grew"] < 20e6


def test_stats_are_filled_as_rules_are_consumed():
    stats = ParseStats()
    gen = parse_lines(["# c", "a.test", "b.test"], "domains", stats)
    assert stats.format == "" and stats.lines == 0
    assert next(gen) == Rule("a.test")
    assert stats.format == "domains" and stats.lines == 2 and stats.rules == 1 and stats.comments == 1
    assert list(gen) == [Rule("b.test")] and stats.rules == 2


def _first(rules: Iterable[Rule]) -> Optional[Rule]:
    return next(iter(rules), None)


def test_every_format_parses_an_empty_source():
    for fmt in FORMATS + ("auto",):
        stats = ParseStats()
        assert _first(parse_lines([], fmt, stats)) is None
        assert stats.lines == 0 and stats.format in FORMATS


def test_the_examples_in_the_docs_parse_as_documented():
    text = (REPO / "docs" / "list-formats.md").read_text(encoding="utf-8")
    examples = dict(re.findall(r"^## (\w+)\n\n```\n(.*?)```", text, re.S | re.M))
    assert set(examples) == set(FORMATS)
    for fmt, example in examples.items():
        stats = ParseStats()
        rules = list(parse_lines(example, fmt, stats))
        assert rules and stats.invalid == 0, (fmt, stats)
        assert detect_format(example.splitlines()) == fmt
