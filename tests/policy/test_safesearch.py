"""Safe search rewrites (resolver.policy.safesearch) and bypass-prevention answers (resolver.policy.bypass)."""
from __future__ import annotations

import re

import pytest

from resolver.policy import safesearch
from resolver.policy.bypass import BYPASS_ANSWERS, bypass_answer, bypass_answer_wire
from resolver.base.names import normalise_name
from resolver.policy.safesearch import (ADDRESS_TARGETS, SAFE_HOSTS, SEARCH_NAMES, YOUTUBE_LEVELS, YOUTUBE_NAMES,
                                 is_address_target, safe_target, safe_target_wire)

# |name^$dnsrewrite=NOERROR;CNAME;target  or  ...;A;address
_RULE = re.compile(r"^\|([a-z0-9.-]+)\^\$dnsrewrite=NOERROR;(CNAME|A);([a-z0-9.-]+)$")


def wire(name: str) -> bytes:
    return b"".join(bytes((len(label),)) + label.encode() for label in name.split(".")) + b"\x00"


def read_rules(test_data, engine: str) -> list[tuple[str, str, str]]:
    rules = []
    for line in (test_data / "safesearch" / f"{engine}.txt").read_text().splitlines():
        if not line.strip():
            continue
        m = _RULE.match(line.strip())
        assert m, line
        rules.append((m.group(1), m.group(2), m.group(3)))
    return rules


def test_every_google_name_in_the_rules_file(test_data):
    rules = read_rules(test_data, "google")
    assert len(rules) >= 190
    tlds = []
    for name, kind, target in rules:
        assert (kind, target) == ("CNAME", "forcesafesearch.google.com")
        assert name.startswith("www.google.")
        tlds.append(name[len("www.google."):])
        assert safe_target(name, safe_search=True, youtube="off") == "forcesafesearch.google.com", name
        bare = name[len("www."):]
        assert safe_target(bare, safe_search=True, youtube="off") == "forcesafesearch.google.com", bare
    assert sorted(tlds) == sorted(safesearch.GOOGLE_TLDS)
    for name in ("www.google.com", "google.com", "www.google.com.vn", "google.com.vn", "www.google.co.uk"):
        assert safe_target(name, safe_search=True, youtube="strict") == "forcesafesearch.google.com"


@pytest.mark.parametrize("engine", ["bing", "duckduckgo", "ecosia", "pixabay", "yandex"])
def test_other_engines_follow_their_rules_files(test_data, engine):
    rules = read_rules(test_data, engine)
    assert rules
    for name, _kind, target in rules:
        assert safe_target(name, safe_search=True, youtube="off") == target, name
        assert safe_target(name, safe_search=False, youtube="strict") is None, name
    # and nothing else of that engine is rewritten
    ours = {n for n in SEARCH_NAMES if safe_target(n, safe_search=True, youtube="off") in {t for _, _, t in rules}}
    assert ours == {n for n, _, _ in rules}


def test_named_targets():
    on = {"safe_search": True, "youtube": "off"}
    assert safe_target("www.bing.com", **on) == "strict.bing.com"
    assert safe_target("bing.com", **on) is None            # not in the rules file (redirects to www)
    for name in ("duckduckgo.com", "www.duckduckgo.com", "start.duckduckgo.com"):
        assert safe_target(name, **on) == "safe.duckduckgo.com"
    assert safe_target("search.brave.com", **on) == "forcesafe.search.brave.com"
    assert safe_target("www.ecosia.org", **on) == "strict-safe-search.ecosia.org"
    assert safe_target("pixabay.com", **on) == "safesearch.pixabay.com"
    # Yandex: the rules file answers with an address, not a CNAME
    for name in ("yandex.ru", "www.yandex.ru", "ya.ru", "www.yandex.com.tr", "xn--d1acpjx3f.xn--p1ai"):
        target = safe_target(name, **on)
        assert target == "213.180.193.56"
        assert is_address_target(target)
    assert ADDRESS_TARGETS == {"213.180.193.56"}
    assert not any(is_address_target(t) for t in SAFE_HOSTS)


def test_youtube_levels(test_data):
    rules = read_rules(test_data, "youtube")
    assert {n for n, _, _ in rules} == YOUTUBE_NAMES
    assert {t for _, _, t in rules} == {"restrictmoderate.youtube.com"}
    for name in YOUTUBE_NAMES:
        for ss in (True, False):
            assert safe_target(name, safe_search=ss, youtube="strict") == "restrict.youtube.com"
            assert safe_target(name, safe_search=ss, youtube="moderate") == "restrictmoderate.youtube.com"
            assert safe_target(name, safe_search=ss, youtube="off") is None
    for name in ("youtube.com", "youtu.be", "music.youtube.com", "i.ytimg.com"):
        assert safe_target(name, safe_search=True, youtube="strict") is None
    with pytest.raises(ValueError):
        safe_target("www.youtube.com", safe_search=True, youtube="on")
    with pytest.raises(ValueError):
        safe_target_wire(wire("www.youtube.com"), safe_search=True, youtube="STRICT")


def test_safe_search_off_and_unrelated_names():
    for name in ("www.google.com", "google.de", "www.bing.com", "duckduckgo.com", "yandex.ru"):
        assert safe_target(name, safe_search=False, youtube="strict") is None
        assert safe_target(name, safe_search=False, youtube="off") is None
    for name in ("example.com", "mail.google.com", "maps.google.com", "images.google.com", "www.google.example",
                 "google", "com", "", "www.google.com.evil.net", "bing.com", "html.duckduckgo.com",
                 "www.youtube.com.evil.net"):
        for level in YOUTUBE_LEVELS:
            assert safe_target(name, safe_search=True, youtube=level) is None, name


def test_safe_hosts():
    assert SAFE_HOSTS == {
        "forcesafesearch.google.com", "strict.bing.com", "safe.duckduckgo.com", "forcesafe.search.brave.com",
        "strict-safe-search.ecosia.org", "safesearch.pixabay.com", "restrict.youtube.com",
        "restrictmoderate.youtube.com"}
    for host in SAFE_HOSTS:
        assert normalise_name(host) == host
        for ss in (True, False):
            for level in YOUTUBE_LEVELS:
                assert safe_target(host, safe_search=ss, youtube=level) is None, host
                assert safe_target_wire(wire(host), safe_search=ss, youtube=level) is None, host


def test_every_rewritten_name_is_normalised():
    for name in SEARCH_NAMES | YOUTUBE_NAMES:
        assert normalise_name(name) == name


def test_wire_form_equals_text_form():
    names = sorted(SEARCH_NAMES | YOUTUBE_NAMES | SAFE_HOSTS) + [
        "example.com", "google.com.evil.net", "youtube.com", "mail.google.com", "com", "bing.com"]
    for name in names:
        w = wire(name)
        for ss in (True, False):
            for level in YOUTUBE_LEVELS:
                assert safe_target_wire(w, safe_search=ss, youtube=level) == \
                    safe_target(name, safe_search=ss, youtube=level), (name, ss, level)
    assert safe_target_wire(b"\x00", safe_search=True, youtube="strict") is None
    assert safe_target_wire(b"\x03www\x06google\x03com\x00", safe_search=True, youtube="off") == \
        "forcesafesearch.google.com"


def test_bypass_answers():
    assert bypass_answer("use-application-dns.net") == "nxdomain"
    assert bypass_answer("mask.icloud.com") == "nxdomain"
    assert bypass_answer("mask-h2.icloud.com") == "nxdomain"
    assert bypass_answer("mask-canary.icloud.com") == "nxdomain"
    assert bypass_answer("_dns.resolver.arpa") == "nodata"
    for name in ("icloud.com", "www.icloud.com", "resolver.arpa", "example.com", "www.use-application-dns.net",
                 "application-dns.net", "", "dns.resolver.arpa"):
        assert bypass_answer(name) is None, name
    for name in list(BYPASS_ANSWERS) + ["icloud.com", "resolver.arpa", "example.com"]:
        assert normalise_name(name) == name
        assert bypass_answer_wire(wire(name)) == bypass_answer(name), name
    assert bypass_answer_wire(b"\x04_dns\x08resolver\x04arpa\x00") == "nodata"
    # bypass names are never safe-search names
    assert not set(BYPASS_ANSWERS) & (SEARCH_NAMES | YOUTUBE_NAMES | SAFE_HOSTS)


def test_one_table_gives_what_the_two_steps_give():
    """``safe_target_table`` (the profile policy's one lookup) answers every name as ``safe_target_wire`` does, for
    every setting; an unknown YouTube level is refused as before."""
    names = sorted(SEARCH_NAMES | YOUTUBE_NAMES | SAFE_HOSTS) + ["example.com", "google.com.evil.net", "youtube"]
    for safe_search in (True, False):
        for level in YOUTUBE_LEVELS:
            table = safesearch.safe_target_table(safe_search, level)
            for name in names:
                assert table.get(wire(name)) == safe_target_wire(wire(name), safe_search=safe_search,
                                                                 youtube=level), (safe_search, level, name)
            assert len(table) == (len(SEARCH_NAMES) if safe_search else 0) + (len(YOUTUBE_NAMES) if level != "off"
                                                                                 else 0)
    with pytest.raises(ValueError):
        safesearch.safe_target_table(True, "loud")
