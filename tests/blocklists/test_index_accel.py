"""The compiled index lookup (blocklists/_indexscan.c) against the pure-Python one: the same verdict for every
name, over indexes with and without allow rules, important rules, single-label entries and regexes, and
names a hostile client would send (long labels, mixed case, many labels, bytes outside ASCII, malformed wire)."""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from blocklists import index as index_mod
from blocklists.index import CATEGORY_BITS, BlockIndex
from blocklists.index_build import IndexBuilder

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(index_mod.accel is None,
                                reason="the compiled lookup was not built here (no compiler) or HEARTH_NO_ACCEL is set")

CATS = ("ads", "adult", "games", "social", "malware")
BASES = ["example.com", "ads.example.com", "tracker.net", "a.b.c.d.e.f.example.org", "porn", "casino.vn",
         "x-y_z.co.uk", "deep.sub.domain.test", "games.io", "t.co", "kid.example.com", "allowed.tracker.net"]


def wire(name: str) -> bytes:
    return b"".join(bytes([len(lb)]) + lb for lb in name.encode().split(b".") if lb) + b"\0"


def build(rng: random.Random, *, allow: bool, single: bool, regex: bool) -> bytes:
    b = IndexBuilder()
    names = list(BASES) + [f"n{i}.{rng.choice(['com', 'net', 'vn', 'example.org'])}" for i in range(400)]
    for name in names:
        if "." not in name and not single:
            continue
        b.add(name, rng.choice(CATS), subdomains=rng.random() < 0.6, important=rng.random() < 0.2)
    if single:
        b.add("zz", "adult", subdomains=True)
        b.add("yy", "ads", subdomains=False, important=True)
    if allow:
        for name in ("kid.example.com", "allowed.tracker.net", "n3.com", "co.uk", "vn", "example.org"):
            b.add(name, rng.choice(CATS), subdomains=rng.random() < 0.5, allow=True, important=rng.random() < 0.3)
        if single:
            b.add("zz", "adult", subdomains=True, allow=True)
    if regex:
        b.add_regex(r"^bad[0-9]+\.", "malware")
        if allow:
            b.add_regex(r"good", "malware", allow=True)
            b.add_regex(r"^vip\.", "ads", allow=True, important=True)
    return b.to_bytes()


def names(rng: random.Random) -> list:
    """Wire names: listed ones, their children and parents, mixed case, hostile and malformed ones."""
    out = []
    listed = list(BASES) + [f"n{i}.com" for i in range(40)] + ["a.zz", "zz", "yy", "b.yy", "bad12.x.com",
                                                               "good.ads.example.com", "vip.tracker.net"]
    for name in listed:
        for form in (name, "www." + name, "a.b." + name, name.upper(), "wWw." + name.title(),
                     name.split(".", 1)[-1]):
            out.append(wire(form))
    for _ in range(2000):
        labels = [rng.choice(["www", "api", "x" * rng.randint(1, 63), "A-b_C", "n7", "\u00e9t\u00e9".encode("utf-8")
                              .decode("latin-1"), "a.b", "EXAMPLE"]) for _ in range(rng.randint(0, 4))]
        labels.append(rng.choice(listed + ["unlisted.example", "com", "vn", "nothing.invalid"]))
        w = b"".join(bytes([len(lb.encode("latin-1"))]) + lb.encode("latin-1") for lb in ".".join(labels).split(".")
                     if lb) + b"\0"
        out.append(w)
        out.append(w + b"\x00\x01\x00\x01")              # a query's type and class after the name
    out += [b"", b"\0", b"\x40" + b"a" * 64 + b"\0", b"\x3f" + b"a" * 63 + b"\0", b"\x03www", b"\x03ww",
            b"\x03www\x07example", b"\xc0\x0c", b"\x03www\xc0\x0c", b"\x01a" * 127 + b"\x03com\0",
            b"\x01a" * 128 + b"\x03com\0", b"\x01a" * 400 + b"\x03com\0", b"\x3f" + b"b" * 63 + b"\0" * 3,
            (b"\x3f" + b"c" * 63) * 20 + b"\x07example\x03com\0", b"\x07EXAMPLE\x03COM\0", b"\x07ExAmPlE\x03cOm\0"]
    for _ in range(500):
        out.append(os.urandom(rng.randint(0, 80)))
    return out


@pytest.mark.parametrize("allow,single,regex", [(False, False, False), (False, True, False), (True, False, False),
                                                (True, True, False), (False, True, True), (True, True, True)])
def test_compiled_lookup_matches_python(allow: bool, single: bool, regex: bool, monkeypatch) -> None:
    rng = random.Random(hash((allow, single, regex)) & 0xFFFF)
    data = build(rng, allow=allow, single=single, regex=regex)
    fast = BlockIndex.from_bytes(data)
    monkeypatch.setattr(index_mod, "accel", None)
    slow = BlockIndex.from_bytes(data)
    assert fast._fast is not None and slow._fast is None
    masks = [CATEGORY_BITS, fast.category_mask(["ads"]), fast.category_mask(["adult", "malware"]), 0, -1, 1 << 40]
    blocked = 0
    for w in names(rng):
        for mask in masks:
            for amask in (CATEGORY_BITS, fast.category_mask(["ads", "games"]), 0):
                got, want = fast.lookup_wire(w, mask, amask), slow.lookup_wire(w, mask, amask)
                assert got == want, (w, mask, amask)
                blocked += want is not None
    assert blocked > 500          # the comparison saw plenty of blocks, not only misses
    # names as text (the budget meter's, the CLI's): lookup takes the compiled search too, with the same verdicts
    texts = [t for t in (_text(w) for w in names(rng)) if t is not None] + ["WWW.Ads.Example.COM.", "", ".", "a..com",
             "x" * 64 + ".com", "caf\u00e9.example.com", "\u00e9t\u00e9.zz", "b\udcff.yy", "a" * 300]
    blocked = 0
    for text in texts:
        for mask in masks:
            for amask in (CATEGORY_BITS, fast.category_mask(["ads", "games"]), 0):
                got, want = fast.lookup(text, mask, amask), slow.lookup(text, mask, amask)
                assert got == want, (text, mask, amask)
                blocked += want is not None
    assert blocked > 500


def _text(w: bytes):
    """The dotted text of a wire name (latin-1 for odd bytes), or None when it is not one."""
    labels, i = [], 0
    try:
        while w[i]:
            labels.append(w[i + 1:i + 1 + w[i]].decode("latin-1"))
            i += w[i] + 1
    except IndexError:
        return None
    return ".".join(labels)


def test_compiled_lookup_on_a_mapped_file(tmp_path) -> None:
    """The mmap'd index (as the engine opens it) answers through C, and close() gives the mapping back."""
    rng = random.Random(7)
    path = tmp_path / "index.bin"
    path.write_bytes(build(rng, allow=True, single=True, regex=False))
    ix = BlockIndex.open(str(path))
    assert ix._fast is not None
    m = ix.lookup_wire(wire("WWW.Ads.Example.com"))
    assert m is not None and m.rule in ("ads.example.com", "example.com")
    ix.close()
    assert ix._fast is None and ix._mm is None
    with pytest.raises(ValueError):
        ix.lookup_wire(wire("example.com"))


def test_compiled_hash_is_blake2s_8() -> None:
    rng = random.Random(3)
    for n in list(range(0, 200)) + [255, 256, 1000]:
        data = bytes(rng.randrange(256) for _ in range(n))
        assert index_mod.accel.name_hash(data) == int.from_bytes(hashlib.blake2s(data, digest_size=8).digest(),
                                                                 "little")


def test_tables_refuse_sections_outside_the_buffer() -> None:
    """A crafted file cannot make the C code read outside the buffer: bad sections are refused at open."""
    accel = index_mod.accel
    key = (accel.name_hash(b"\x01a\0") & ~3).to_bytes(8, sys.byteorder)
    one = (1).to_bytes(4, sys.byteorder)

    def buf(midx: int, top: int = 1) -> bytes:   # keys | masks | dir [0, top] | palette [1] | allow dir [0, 0]
        return key + bytes([midx]) + bytes(7) + bytes(4) + top.to_bytes(4, sys.byteorder) + one + bytes(12)

    ok = dict(buffer=buf(0), block_keys=0, nb=1, block_masks=8, block_dir=16, block_bits=0, allow_keys=0, na=0,
              allow_masks=0, allow_dir=32, allow_bits=0, palette=24, np=1, width=1, plan=bytes([0, 1]) + bytes(128),
              single_block={}, single_allow={}, has_allow=False)
    t = accel.Tables(**ok)
    assert t.lookup(b"\x01A\0", CATEGORY_BITS, 0) == (b"\x01a\0", [0], [(0, 1, 0)], [])
    assert t.lookup(b"\x01b\0", CATEGORY_BITS, 0) == 0
    for bad in (dict(block_keys=len(ok["buffer"])), dict(nb=10), dict(block_dir=36), dict(block_bits=30),
                dict(palette=-1), dict(np=100), dict(width=3), dict(plan=b"x"), dict(block_keys=-8),
                dict(buffer=buf(0, top=5))):
        with pytest.raises(ValueError):
            accel.Tables(**dict(ok, **bad))
    wild = accel.Tables(**dict(ok, buffer=buf(9)))       # a mask index past the palette: no category
    assert wild.lookup(b"\x01a\0", CATEGORY_BITS, 0) == 0
    t.release()
    with pytest.raises(ValueError):
        t.lookup(b"\x01a\0", 1, 1)


def test_no_accel_environment_switches_it_off() -> None:
    code = "from blocklists import index; print(index.accel is None)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env=dict(os.environ, HEARTH_NO_ACCEL="1")).stdout
    assert out.strip() == "True"


def test_a_directory_out_of_order_is_refused() -> None:
    """A file whose checksum is right but whose directory points outside its bucket order (made on purpose) is
    refused at open, as other corrupt layouts are, rather than searched."""
    import hashlib as _h
    import struct

    from blocklists.index_format import _CSUM_LEN, _CSUM_OFF, _HEADER, _HEADER_SIZE, IndexFileError

    data = bytearray(build(random.Random(5), allow=False, single=False, regex=False))
    fields = _HEADER.unpack_from(data, 0)
    table = fields[14:]
    doff, dlen = table[6], table[7]                 # BLOCK_DIR
    assert dlen >= 12
    struct.pack_into("=I", data, doff + 4, fields[7] + 1)   # bucket 1 starts past the last key
    h = _h.blake2b(digest_size=_CSUM_LEN)
    h.update(bytes(data[:_CSUM_OFF]))
    h.update(bytes(data[_HEADER_SIZE:]))
    data[_CSUM_OFF:_CSUM_OFF + _CSUM_LEN] = h.digest()
    with pytest.raises(IndexFileError, match=r"corrupt directory \(index tables out of range"):
        BlockIndex.from_bytes(bytes(data))
