"""The compiled blocklist index: matching semantics, the file format's defences, atomic builds, mmap sharing."""
from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NamedTuple, Optional

import pytest

from blocklists import index_build as idx
from blocklists.index import CATEGORY_BITS, IMPORTANT, MAX_CATEGORIES, BlockIndex, IndexFileError, Match
from blocklists.index_build import IndexBuilder
from blocklists.index_format import _normalise, name_hash

REPO = Path(__file__).resolve().parents[2]


class Rule(NamedTuple):  # the shape blocklists/parsers.py produces
    name: str
    subdomains: bool
    allow: bool
    important: bool
    regex: Optional[str]


def wire(name: str) -> bytes:
    name = name.rstrip(".")
    if not name:
        return b"\0"
    return b"".join(bytes([len(lb)]) + lb for lb in name.encode().split(b".")) + b"\0"


def make(*rules, regexes=()) -> BlockIndex:
    """An in-memory index from (name, category, subdomains[, allow[, important]]) tuples."""
    b = IndexBuilder()
    for r in rules:
        name, category, sub = r[:3]
        allow = r[3] if len(r) > 3 else False
        important = r[4] if len(r) > 4 else False
        assert b.add(name, category, subdomains=sub, allow=allow, important=important)
    for pattern, category, *flags in regexes:
        b.add_regex(pattern, category, allow=bool(flags and flags[0]), important=len(flags) > 1 and flags[1])
    return BlockIndex.from_bytes(b.to_bytes())


def both(ix: BlockIndex, name: str, mask: int = CATEGORY_BITS) -> Optional[Match]:
    """lookup() and lookup_wire() must always agree."""
    m = ix.lookup(name, mask)
    assert ix.lookup_wire(wire(name.lower()), mask) == m, name
    return m


def small_builder() -> IndexBuilder:
    b = IndexBuilder()
    b.add("ads.example", "ads", subdomains=True)
    b.add("exact.example", "adult", subdomains=False)
    b.add("ok.ads.example", "allow", subdomains=True, allow=True)
    b.add_regex(r"^track\d+\.", "ads")
    b.add_source("list-1", "ads", 2)
    return b


# ------------------------------------------------------------------------------------------ semantics


def test_name_hash_is_stable():
    # Pinned: changing the hash silently would make every existing index file answer nothing.
    assert name_hash("example.com") == 0x18250147367E57E4
    assert name_hash("example.com") == int.from_bytes(
        hashlib.blake2s(b"\x07example\x03com\x00", digest_size=8).digest(), "little")


def test_exact_versus_subtree():
    ix = make(("exact.com", "ads", False), ("tree.com", "ads", True))
    assert both(ix, "exact.com") == Match("ads", "exact.com", False, False)
    assert both(ix, "www.exact.com") is None
    assert both(ix, "tree.com") == Match("ads", "tree.com", False, False)
    assert both(ix, "a.b.tree.com") == Match("ads", "tree.com", True, False)
    for name in ("com", "notexact.com", "xtree.com", "tree.com.evil", "exact.co"):
        assert both(ix, name) is None, name


def test_name_both_exact_and_subtree_in_different_categories():
    ix = make(("both.com", "ads", False), ("both.com", "adult", True))
    ads, adult = ix.category_mask(["ads"]), ix.category_mask(["adult"])
    assert both(ix, "both.com", ads).category == "ads"
    assert both(ix, "www.both.com", ads) is None
    assert both(ix, "www.both.com", adult) == Match("adult", "both.com", True, False)
    assert len(ix) == 2  # two keys: exact and subtree


def test_single_label_rules_block_a_whole_tld():
    ix = make(("porn", "adult", True), ("localhost", "ads", False), ("ok.porn", "allowlist", True, True),
              ("site.example", "ads", True), ("zip", "allowlist", True, True), ("bad.zip", "malware", False))
    assert both(ix, "www.site.porn") == Match("adult", "porn", True, False)
    assert both(ix, "porn") == Match("adult", "porn", False, False)
    assert both(ix, "x.ok.porn") is None
    assert both(ix, "localhost") == Match("ads", "localhost", False, False)
    assert both(ix, "a.localhost") is None
    assert both(ix, "bad.zip") is None                   # allowed by the TLD allow rule
    assert both(ix, "porn.example") is None
    assert ix.stats["entries"] == 4 and ix.stats["allow_entries"] == 2 and len(ix) == 4
    # TLD rules live in a dict and every hashed name here has two labels: a three-label query hashes one suffix
    assert ix._plans[3] == (1,)


def test_most_specific_parent_is_reported():
    ix = make(("example.com", "ads", True), ("a.example.com", "adult", True))
    assert both(ix, "x.a.example.com") == Match("adult", "a.example.com", True, False)
    assert both(ix, "x.b.example.com") == Match("ads", "example.com", True, False)
    assert both(ix, "x.a.example.com", ix.category_mask(["ads"])) == Match("ads", "example.com", True, False)


def test_category_masks():
    ix = make(("adsonly.com", "ads", True), ("shared.com", "ads", True), ("shared.com", "gambling", True))
    profile = ix.category_mask(["gambling", "no-such-category"])
    assert profile == 1 << ix.categories.index("gambling")
    assert both(ix, "adsonly.com", profile) is None
    assert both(ix, "www.adsonly.com", profile) is None
    assert both(ix, "shared.com", profile).category == "gambling"
    assert both(ix, "shared.com").category == "ads"       # lowest bit of the default mask
    assert both(ix, "shared.com", 0) is None
    assert both(ix, "shared.com", IMPORTANT) is None  # bit 31 alone selects no category
    assert len(ix) == 2                                    # merged: one key, two category bits
    assert ix.category_mask([]) == 0


def test_allow_wins_and_important_beats_allow():
    ix = make(("example.com", "ads", True),
              ("good.example.com", "allowlist", True, True),
              ("exact-ok.example.com", "allowlist", False, True),
              ("evil.good.example.com", "malware", False, False, True))
    assert both(ix, "www.example.com").rule == "example.com"
    assert both(ix, "good.example.com") is None
    assert both(ix, "deep.inside.good.example.com") is None
    assert both(ix, "exact-ok.example.com") is None
    assert both(ix, "sub.exact-ok.example.com").rule == "example.com"   # exact allow covers only itself
    assert both(ix, "evil.good.example.com") == Match("malware", "evil.good.example.com", False, True)
    # allow rules of any category apply whatever the profile blocks, unless allow_mask narrows them
    assert ix.lookup("good.example.com", ix.category_mask(["ads"])) is None
    assert ix.lookup("good.example.com", allow_mask=0).rule == "example.com"
    assert ix.lookup_wire(wire("good.example.com"), allow_mask=0).rule == "example.com"


def test_important_allow_beats_important_block():
    ix = make(("bad.com", "malware", True, False, True), ("ok.bad.com", "allowlist", True, True, True),
              ("meh.bad.com", "allowlist", True, True, False))
    assert both(ix, "x.ok.bad.com") is None
    assert both(ix, "x.meh.bad.com") == Match("malware", "bad.com", True, True)


def test_important_only_counts_in_its_category():
    ix = make(("x.com", "ads", True, False, True), ("x.com", "adult", True), ("x.com", "allowlist", True, True))
    assert both(ix, "x.com") == Match("ads", "x.com", False, True)
    assert both(ix, "x.com", ix.category_mask(["adult"])) is None


def test_regex_rules():
    ix = make(("listed.com", "ads", True), ("ok.listed.com", "allowlist", True, True),
              regexes=[(r"^track\d+\.", "ads"), (r"casino", "gambling"), (r"^ok-casino\.", "allowlist", True),
                       (r"^track9\.", "malware", False, True)])
    assert both(ix, "track12.cdn.net") == Match("ads", r"^track\d+\.", False, False, True)
    assert both(ix, "best-casino.net").category == "gambling"
    assert both(ix, "best-casino.net", ix.category_mask(["ads"])) is None
    assert both(ix, "ok-casino.net") is None                        # allow regex
    assert both(ix, "tracking.net") is None
    assert both(ix, "track9.ok.listed.com") == Match("malware", r"^track9\.", False, True, True)
    assert both(ix, "www.listed.com").regex is False
    assert ix.stats["regexes"] == 4
    with pytest.raises(ValueError):
        IndexBuilder().add_regex("(unclosed", "ads")


def test_allow_regex_beats_hash_block():
    ix = make(("example.com", "ads", True), regexes=[(r"^cdn\.", "allowlist", True)])
    assert both(ix, "cdn.example.com") is None
    assert both(ix, "www.example.com").rule == "example.com"


def test_unicode_and_punycode_names():
    ix = make(("bücher.de", "shop", True), ("xn--mnchen-3ya.de", "shop", False))
    assert both(ix, "xn--bcher-kva.de") == Match("shop", "xn--bcher-kva.de", False, False)
    assert ix.lookup("bücher.de") == Match("shop", "xn--bcher-kva.de", False, False)
    assert ix.lookup("www.BÜCHER.de.").rule == "xn--bcher-kva.de"
    assert ix.lookup("münchen.de") == ix.lookup("xn--mnchen-3ya.de") == Match("shop", "xn--mnchen-3ya.de",
                                                                               False, False)
    assert ix.lookup_wire(wire("www.xn--bcher-kva.de")).subdomain_of is True


def test_lookup_normalises_case_and_trailing_dot():
    ix = make(("example.com", "ads", False))
    assert ix.lookup("EXAMPLE.Com.") == Match("ads", "example.com", False, False)
    assert ix.lookup_wire(b"\x07EXAMPLE\x03com\x00") == Match("ads", "example.com", False, False)
    assert ix.lookup("") is None and ix.lookup(".") is None and ix.lookup_wire(b"\0") is None


def test_wire_labels_that_cannot_be_indexed():
    # (x.y.example makes three-label names worth hashing, so the wire name below is really looked up)
    ix = make(("blocked.com", "adult", True), ("a.b.blocked.com", "ads", False), ("x.y.example", "ads", True))
    # a label with a dot inside is not "a.b": the exact entry must not match, the listed parent still does
    assert ix.lookup_wire(b"\x03a.b\x07blocked\x03com\x00") == Match("adult", "blocked.com", True, False)
    assert ix.lookup_wire(b"\x03a b\x07blocked\x03com\x00").rule == "blocked.com"
    assert ix.lookup_wire(b"\x04\xc3\xa9t\xc3\x07blocked\x03com\x00").rule == "blocked.com"
    assert ix.lookup_wire(b"\x03x y\x07example\x03com\x00") is None
    # regexes see the presentation form (\xNN for bytes outside ASCII)
    assert ix.lookup_wire(b"\x04bin\xff\x07example\x03com\x00") is None
    ix2 = make(regexes=[(r"^bin\\xff\.", "ads")])
    assert ix2.lookup_wire(b"\x04bin\xff\x07example\x03com\x00").rule == r"^bin\\xff\."
    # bytes after the name (a cache key's type, class and flags) are ignored
    assert ix.lookup_wire(wire("www.blocked.com") + b"\x00\x01\x00\x01\x00").rule == "blocked.com"
    # malformed wire names are not blocked (the resolver has rejected them already)
    for bad in (b"", b"\x07blocked\x03com", b"\x07blocked\xc0\x0c", b"\x09blocked\x03com\x00"):
        assert ix.lookup_wire(bad) is None, bad


def test_lookup_wire_equals_lookup_on_many_names():
    rng = random.Random(5)
    b = IndexBuilder()
    names = [f"n{i}.{rng.choice(['ex', 'test', 'corp'])}{i % 97}.{rng.choice(['com', 'net', 'org'])}"
             for i in range(3000)]
    for i, n in enumerate(names):
        b.add(n, ["ads", "adult", "games"][i % 3], subdomains=bool(i & 1), important=i % 7 == 0)
        if i % 11 == 0:
            b.add("ok." + n, "allowlist", subdomains=True, allow=True)
    ix = BlockIndex.from_bytes(b.to_bytes())
    queries = names + ["www." + n for n in names] + ["ok." + n for n in names] + ["x.ok." + n for n in names[:500]]
    queries += [f"miss{i}.example.org" for i in range(500)]
    masks = [CATEGORY_BITS, ix.category_mask(["ads"]), ix.category_mask(["adult", "games"])]
    blocked = 0
    for q in queries:
        for mask in masks:
            blocked += both(ix, q, mask) is not None
    assert blocked > 3000


def _reference(rules, regexes, q, mask, amask):
    """The documented semantics, by brute force: None, or (category bit, important) of a winning block."""
    labels = q.split(".")
    blocks, allows = [], []
    for j in range(len(labels)):
        suffix = ".".join(labels[j:])
        for name, bit, sub, allow, important in rules:
            if name == suffix and (j == 0 or sub) and (1 << bit) & (amask if allow else mask):
                (allows if allow else blocks).append((bit, important))
    for pattern, bit, allow, important in regexes:
        if re.search(pattern, q) and (1 << bit) & (amask if allow else mask):
            (allows if allow else blocks).append((bit, important))
    if not blocks:
        return None
    if not allows:
        return blocks
    if any(imp for _, imp in allows):
        return None
    return [b for b in blocks if b[1]] or None


def test_random_rule_sets_agree_with_a_brute_force_reference():
    rng = random.Random(11)
    words = ["a", "b", "c", "ex", "net"]
    for _ in range(30):
        b = IndexBuilder()
        cats = ["ads", "adult", "games", "allowlist"]
        for c in cats:
            b.category_bit(c)
        rules, regexes = [], []
        for _ in range(rng.randrange(1, 25)):
            name = ".".join(rng.choice(words) for _ in range(rng.randrange(1, 4)))
            rule = (name, rng.randrange(4), rng.random() < 0.6, rng.random() < 0.3, rng.random() < 0.2)
            rules.append(rule)
            b.add(name, cats[rule[1]], subdomains=rule[2], allow=rule[3], important=rule[4])
        for _ in range(rng.randrange(0, 3)):
            rx = (rng.choice([r"^a\.", r"ex", r"^c\.b", r"net$"]), rng.randrange(4), rng.random() < 0.4,
                  rng.random() < 0.3)
            regexes.append(rx)
            b.add_regex(rx[0], cats[rx[1]], allow=rx[2], important=rx[3])
        ix = BlockIndex.from_bytes(b.to_bytes())
        for _ in range(60):
            q = ".".join(rng.choice(words) for _ in range(rng.randrange(1, 5)))
            mask, amask = rng.randrange(1, 16), rng.choice([15, 8, 0])
            want = _reference(rules, regexes, q, mask, amask)
            got = ix.lookup(q, mask, amask)
            assert ix.lookup_wire(wire(q), mask, amask) == got
            if want is None:
                assert got is None, (q, mask, amask, rules, regexes)
            else:
                assert got is not None, (q, mask, amask, rules, regexes)
                assert (ix.categories.index(got.category), got.important) in want, (q, got, want, rules, regexes)


def test_add_normalises_and_skips_bad_names():
    b = IndexBuilder()
    assert b.add("WWW.Example.COM.", "ads", subdomains=False)
    assert b.add("*.wild.example", "ads", subdomains=True)
    for bad in ("", "a..b", "has space.com", "x" * 64 + ".com", ".", "a/b.com", "ex*ample.com"):
        assert not b.add(bad, "ads", subdomains=True), bad
    assert b.skipped == 7 and b.added == 2
    ix = BlockIndex.from_bytes(b.to_bytes())
    assert ix.lookup("www.example.com").rule == "www.example.com"
    assert ix.lookup("a.wild.example").rule == "wild.example"
    assert ix.stats["skipped"] == 7


def test_add_rule_takes_parser_rules():
    b = IndexBuilder()
    b.add_rule(Rule("ads.example", True, False, False, None), "ads")
    b.add_rule(Rule("ok.ads.example", True, True, False, None), "ads")
    b.add_rule(Rule("", False, False, False, r"^pixel\."), "ads")
    ix = BlockIndex.from_bytes(b.to_bytes())
    assert ix.lookup("x.ads.example").rule == "ads.example"
    assert ix.lookup("x.ok.ads.example") is None
    assert ix.lookup("pixel.foo.net").regex


def test_category_bits_and_limit():
    b = IndexBuilder()
    for i in range(MAX_CATEGORIES):
        assert b.category_bit(f"c{i}") == i
    assert b.category_bit("c3") == 3
    with pytest.raises(ValueError, match="at most 31"):
        b.category_bit("one-too-many")
    with pytest.raises(ValueError):
        b.add("x.com", "one-too-many", subdomains=True)
    b.add("x.com", "c30", subdomains=True)
    ix = BlockIndex.from_bytes(b.to_bytes())
    assert ix.categories == [f"c{i}" for i in range(MAX_CATEGORIES)]
    assert ix.lookup("x.com") == Match("c30", "x.com", False, False)
    assert ix.category_mask(["c30"]) == 1 << 30


def test_stats_sources_and_empty(tmp_path):
    stats = small_builder().build(tmp_path / "i.idx")          # a Path works as well as a str
    assert stats["entries"] == 2 and stats["allow_entries"] == 1 and stats["regexes"] == 1
    assert stats["bytes"] == (tmp_path / "i.idx").stat().st_size and stats["seconds"] >= 0
    with BlockIndex.open(tmp_path / "i.idx") as ix:
        st = ix.stats
        assert (st["entries"], st["allow_entries"], st["regexes"], st["bytes"]) == (2, 1, 1, stats["bytes"])
        assert abs(st["built"] - time.time()) < 60
        assert ix.categories == ["ads", "adult", "allow"]
        assert ix.sources == [{"id": "list-1", "category": "ads", "entries": 2}]
    empty = BlockIndex.from_bytes(IndexBuilder().to_bytes())
    assert empty.lookup("anything.com") is None and empty.lookup_wire(wire("a.b.c")) is None
    assert empty.categories == [] and empty.stats["entries"] == 0 and empty.category_mask(["ads"]) == 0


def test_close_and_context_manager(tmp_path):
    path = str(tmp_path / "i.idx")
    small_builder().build(path)
    ix = BlockIndex.open(path)
    assert ix.lookup("x.ads.example")
    ix.close()
    ix.close()
    assert ix.closed
    with pytest.raises(ValueError):
        ix.lookup("x.ads.example")
    with pytest.raises(ValueError):
        ix.lookup_wire(wire("x.ads.example"))


# ------------------------------------------------------------------------------------------ file defences


@pytest.fixture(scope="module")
def good_file() -> bytes:
    return small_builder().to_bytes()


def _rechecksum(data: bytearray) -> bytes:
    h = hashlib.blake2b(bytes(data[:224]), digest_size=32)
    h.update(bytes(data[256:]))
    data[224:256] = h.digest()
    return bytes(data)


def test_every_flipped_byte_is_refused(good_file, tmp_path):
    assert BlockIndex.from_bytes(good_file).lookup("x.ads.example")
    for pos in range(len(good_file)):
        bad = bytearray(good_file)
        bad[pos] ^= 0x01 if pos % 2 else 0x80
        with pytest.raises(IndexFileError):
            BlockIndex.from_bytes(bytes(bad))
    # the same through a real file and mmap
    path = tmp_path / "flipped.idx"
    bad = bytearray(good_file)
    bad[len(bad) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(IndexFileError, match="checksum"):
        BlockIndex.open(str(path))


def test_truncated_and_extended_files_are_refused(good_file, tmp_path):
    for n in list(range(0, 300)) + list(range(300, len(good_file), 7)) + [len(good_file) - 1]:
        with pytest.raises(IndexFileError):
            BlockIndex.from_bytes(good_file[:n])
    with pytest.raises(IndexFileError, match="trailing"):
        BlockIndex.from_bytes(good_file + b"\0" * 8)
    for n in (0, 100, len(good_file) - 8):
        path = tmp_path / f"cut{n}.idx"
        path.write_bytes(good_file[:n])
        with pytest.raises(IndexFileError, match="truncated"):
            BlockIndex.open(str(path))


def test_wrong_magic_version_byte_order(good_file):
    bad = bytearray(good_file)
    bad[0:8] = b"NOTHEARX"
    with pytest.raises(IndexFileError, match="not a Hearth index"):
        BlockIndex.from_bytes(_rechecksum(bad))
    bad = bytearray(good_file)
    struct.pack_into("=I", bad, 8, 2)
    with pytest.raises(IndexFileError, match="version 2"):
        BlockIndex.from_bytes(_rechecksum(bad))
    bad = bytearray(good_file)
    bad[12:16] = bad[12:16][::-1]
    with pytest.raises(IndexFileError, match="byte order"):
        BlockIndex.from_bytes(_rechecksum(bad))
    with pytest.raises(IndexFileError, match="not a Hearth index"):
        BlockIndex.from_bytes(b"\x7fELF" + b"\0" * 400)


def test_consistent_checksum_but_bad_layout_is_refused(good_file):
    # A file whose checksum is right but whose section table lies (a buggy or hostile writer).
    bad = bytearray(good_file)
    struct.pack_into("=Q", bad, 56 + 16 + 8, 24)       # BLOCK_KEYS length: 3 keys, the header says 2
    with pytest.raises(IndexFileError, match="section"):
        BlockIndex.from_bytes(_rechecksum(bad))
    bad = bytearray(good_file)
    meta_off, meta_len = struct.unpack_from("=QQ", bad, 56)
    bad[meta_off:meta_off + meta_len] = b"{" * meta_len
    with pytest.raises(IndexFileError, match="metadata"):
        BlockIndex.from_bytes(_rechecksum(bad))


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        BlockIndex.open(str(tmp_path / "nope.idx"))


# ------------------------------------------------------------------------------------------ atomic builds


def _builder(tag: str, n: int = 200) -> IndexBuilder:
    b = IndexBuilder()
    for i in range(n):
        b.add(f"{tag}{i}.example", "ads", subdomains=True)
    return b


def test_build_replaces_atomically_while_readers_keep_the_old_file(tmp_path):
    path = str(tmp_path / "live.idx")
    _builder("old").build(path)
    old = BlockIndex.open(path)
    _builder("new").build(path)
    new = BlockIndex.open(path)
    assert old.lookup("old1.example") and not old.lookup("new1.example")
    assert new.lookup("new1.example") and not new.lookup("old1.example")
    old.close()
    new.close()
    assert os.listdir(tmp_path) == ["live.idx"]


def test_failed_build_leaves_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "live.idx")
    _builder("old").build(path)
    before = Path(path).read_bytes()

    def boom(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(idx.os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        _builder("new").build(path)
    monkeypatch.undo()
    assert Path(path).read_bytes() == before
    assert os.listdir(tmp_path) == ["live.idx"]      # the temp file is gone
    with BlockIndex.open(path) as ix:
        assert ix.lookup("old5.example") and not ix.lookup("new5.example")


def test_killed_build_leaves_previous_file_and_next_build_cleans_up(tmp_path):
    path = str(tmp_path / "live.idx")
    _builder("old").build(path)
    before = Path(path).read_bytes()
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from blocklists import index_build as index
        def die(fd):
            os.kill(os.getpid(), signal.SIGKILL)   # kill -9 with the temp file written but not renamed
        index.os.fsync = die
        b = index.IndexBuilder()
        for i in range(5000):
            b.add(f"new{{i}}.example", "ads", subdomains=True)
        b.build({path!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith("live.idx.tmp-")]
    assert len(leftovers) == 1
    assert Path(path).read_bytes() == before
    with BlockIndex.open(path) as ix:
        assert ix.lookup("old7.example") and not ix.lookup("new7.example")
    _builder("next").build(path)
    assert os.listdir(tmp_path) == ["live.idx"]
    with BlockIndex.open(path) as ix:
        assert ix.lookup("next7.example")


def test_build_keeps_temp_file_of_a_live_build(tmp_path):
    import fcntl

    path = str(tmp_path / "live.idx")
    busy = tmp_path / "live.idx.tmp-1"            # pid 1 is alive; the flock says a build is running
    busy.write_bytes(b"partial")
    stale = tmp_path / "live.idx.tmp-99999999"    # no such pid: a crashed build
    stale.write_bytes(b"partial")
    with open(busy, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        _builder("x").build(path)
        assert busy.exists() and not stale.exists()
    # an unlocked leftover whose pid was reused by a live process goes once it is old
    old = time.time() - 3600
    os.utime(busy, (old, old))
    _builder("x").build(path)
    assert sorted(os.listdir(tmp_path)) == ["live.idx"]


# ------------------------------------------------------------------------------------------ processes, real data


def test_two_processes_share_the_mapped_file(tmp_path):
    path = str(tmp_path / "live.idx")
    small_builder().build(path)
    mine = BlockIndex.open(path)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from blocklists.index import BlockIndex
        ix = BlockIndex.open({path!r})
        with open("/proc/self/maps") as f:
            mapped = any(line.rstrip().endswith({os.path.realpath(path)!r}) for line in f)
        print(mapped, ix.lookup("www.ads.example").rule, ix.lookup_wire(b"\\x07track12\\x03cdn\\x00").rule)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "ads.example", r"^track\d+\."]
    assert mine.lookup("www.ads.example").rule == "ads.example"
    assert mine.stats["mmap"] is True
    mine.close()


def test_popular_names_as_ads(test_data, tmp_path):
    names = (test_data / "popular" / "umbrella-top-20k.txt").read_text().split()
    assert len(names) == 20000
    b = IndexBuilder()
    added = sum(b.add(n, "ads", subdomains=i % 2 == 0) for i, n in enumerate(names))
    b.add("safe.google.com", "allowlist", subdomains=True, allow=True)
    t0 = time.perf_counter()
    stats = b.build(str(tmp_path / "pop.idx"))
    assert time.perf_counter() - t0 < 10
    assert added > 19750 and 18750 < stats["entries"] <= added
    assert stats["bytes"] < 16 * stats["entries"] + 4096
    ix = BlockIndex.open(str(tmp_path / "pop.idx"))
    rng = random.Random(3)
    for i in rng.sample(range(len(names)), 2000):
        name = names[i]
        if _normalise(name) is not None:                      # indexable
            assert both(ix, name) is not None or name.endswith("safe.google.com"), name
    assert both(ix, "google.com").rule == "google.com"              # rank 1, subtree
    assert both(ix, "deep.sub.google.com") == Match("ads", "google.com", True, False)
    assert both(ix, "www.safe.google.com") is None
    assert both(ix, "www.google.com").rule == "www.google.com"
    assert both(ix, "definitely-not-listed-hearth-test.example") is None
    misses = sum(ix.lookup(f"hearth-{i}.invalid") is not None for i in range(2000))
    assert misses == 0
    assert both(ix, "google.com", ix.category_mask(["adult"])) is None
    ix.close()
