"""The compiled blocklist index's file format and name hashing (shared by the builder and the reader).

The index is one file, built atomically (:mod:`blocklists.index_build`), loaded with mmap
(:mod:`blocklists.index`).

Every category's names live in one sorted array of 64-bit keys (a hash of the
normalised name plus two flag bits) with a parallel array of category bits; allow
rules have their own array, which wins over block rules unless the block rule is
*important*; regex rules are kept apart in the metadata. The file is built beside
the live one and swapped in with an atomic rename, then mapped read-only, so start-up
costs one checksum pass and every process that opens the file shares its pages.

Names are hashed, not stored: a lookup hashes the queried name and each parent
suffix (``www.example.com``, ``example.com``, ``com``) and looks the hashes up. The
matched rule is therefore reported as the suffix that matched. A false match needs
two different names whose 62-bit keys collide: about n / 2**62 per probe (2e-13 for
1 M names).

Key (u64)
    ``name_hash(name) & ~3 | important << 1 | subtree``. ``name_hash`` is BLAKE2s with
    an 8-byte digest, read little-endian (stable on every machine), over the name's
    uncompressed wire form (``b"\\x07example\\x03com\\x00"``): every suffix of a query's
    wire name is then hashed in place, and a label holding a dot can never pose as two.
    BLAKE2s measured ~9% faster than BLAKE2b on short names on x86-64 and is built for
    32-bit CPUs (most OpenWrt routers). The four variants of one name (exact/subtree x
    plain/important) are adjacent in sort order, so one binary search finds them all.
    Only suffixes whose label count some entry has are hashed (``stats.depths`` in
    META). Single-label names (``||porn^``: a whole TLD) are not hashed at all: they sit in
    META as text and are looked up in a dict, so a three-label query costs two hashes.

File format, version 1. All integers are in the writer's native byte order, recorded by
the byte-order mark; a reader of the other order refuses the file (the index is built
on the device that uses it). Every section starts at a multiple of 8.

=======  ====  ===============================================================
offset   size  header field (256 bytes)
=======  ====  ===============================================================
0        8     magic ``b"HEARTHIX"``
8        4     format version (u32) = 1
12       4     byte-order mark (u32) 0x01020304
16       4     header size (u32) = 256
20       4     flags (u32), 0
24       8     file size in bytes (u64): a truncated or extended file is refused
32       8     build time (f64, Unix seconds)
40       4     block entries ``nb`` (u32)
44       4     allow entries ``na`` (u32)
48       4     palette size ``np`` (u32): distinct category masks
52       1     mask index width ``w``: 1, 2 or 4 bytes (u8 / u16 / u32)
53       1     block directory bits ``db``
54       1     allow directory bits ``da``
55       1     checksum algorithm: 1 = BLAKE2b-256
56       128   section table: 8 x (offset u64, length u64), in file order:
               META, BLOCK_KEYS, BLOCK_MASKS, BLOCK_DIR, ALLOW_KEYS, ALLOW_MASKS,
               ALLOW_DIR, PALETTE
184      40    reserved, zero
224      32    checksum: BLAKE2b-256 of bytes [0, 224) followed by [256, file size)
=======  ====  ===============================================================

=============  ===============================================================
section        content
=============  ===============================================================
META           UTF-8 JSON: ``{"categories": [name by bit], "sources": [{"id",
               "category", "entries"}], "regexes": [[pattern, category mask,
               flags (1 allow, 2 important)]], "single": {"block": [[label, tag,
               mask]], "allow": [...]}, "stats": {..., "depths": [block, allow]}}``
               (single: the single-label names; depths: bit d set when some hashed
               entry has d labels)
BLOCK_KEYS     nb x u64, sorted ascending, unique
BLOCK_MASKS    nb x u8/u16/u32: index into PALETTE of the entry's category mask
BLOCK_DIR      (2**db + 1) x u32: entries whose key's top ``db`` bits equal b are
               ``[dir[b], dir[b + 1])``; a lookup bisects only that bucket
               (~8 keys on average, 0.5 bytes per entry)
ALLOW_*        the same for allow rules
PALETTE        np x u32: category masks (bit i = category i, bits 0..30)
=============  ===============================================================

Size: 8 (key) + 1 or 2 (mask index) + ~0.5 (directory) bytes per entry.

Building: ``IndexBuilder.add`` hashes the name at once and appends one packed u64
(56 low key bits, category bit number) to one of 256 ``array('Q')`` buckets chosen by the
key's top byte: 8 bytes per added name and no Python object per entry. ``build`` sorts
bucket by bucket (small temporary lists), merges equal keys by OR-ing their category
bits, writes ``path.tmp-<pid>`` (flock-ed while written), fsyncs it, opens it to verify
it, renames it over ``path`` and fsyncs the directory. A crash at any point leaves the
previous file intact; the next build deletes temp files whose builder is gone.

Readers: ``BlockIndex.open`` maps the file read-only (MAP_SHARED), checks the header,
the checksum (one pass over the file) and the layout, then searches the mapped arrays
through ``memoryview`` casts without copying them. A rebuilt file is a new inode: a
reader keeps answering from the old mapping until it opens the new file and drops (or
``close()``-s, when no lookup is running) the old object.

Lookup semantics: the queried name matches exact and subtree entries of its own name and
subtree entries of each parent suffix; only entries whose categories intersect the
caller's mask count. If anything blocks, allow entries of the name (exact or subtree)
and its parents (subtree) and allow regexes are consulted: an important allow wins
over everything, an important block wins over plain allows, a plain allow wins over
plain blocks. Regexes are applied with ``re.search`` to the lower-case presentation name
without the trailing dot. Labels made of characters outside ``[a-z0-9_-]`` are never
indexed (``IndexBuilder.add`` refuses them), so they cannot match by hash; their
parents still can.
"""
from __future__ import annotations

import hashlib
import re
import struct
from array import array
from encodings import idna as _idna
from typing import NamedTuple, Optional

__all__ = ["MAX_CATEGORIES", "CATEGORY_BITS", "IMPORTANT", "FORMAT_VERSION", "MAGIC", "IndexFileError", "Match",
           "name_hash"]

MAX_CATEGORIES = 31                  # category bits 0..30
CATEGORY_BITS = 0x7FFFFFFF
IMPORTANT = 1 << 31                  # never a category: lookups ignore it; importance is per entry (key tag bit 1)
MAGIC = b"HEARTHIX"
FORMAT_VERSION = 1

_BOM = 0x01020304
_HEADER = struct.Struct("=8sIIIIQdIIIBBBB16Q")
_HEADER_SIZE = 256
_CSUM_OFF = 224
_CSUM_LEN = 32
_CSUM_BLAKE2B = 1
_SECTIONS = ("META", "BLOCK_KEYS", "BLOCK_MASKS", "BLOCK_DIR", "ALLOW_KEYS", "ALLOW_MASKS", "ALLOW_DIR", "PALETTE")
_TAG_SUB = 1
_TAG_IMPORTANT = 2
_LOW56 = (1 << 56) - 1
_DIR_TARGET = 8                      # average keys per directory bucket
_MAX_DIR_BITS = 24
_STALE_TMP_AGE = 600.0               # seconds: an unlocked temp file this old is removed even if its pid lives
_RX_FLAG_ALLOW = 1
_RX_FLAG_IMPORTANT = 2

_hash = hashlib.blake2s
_from_bytes = int.from_bytes
_NAME_RE = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}")
_LEN = [bytes((n,)) for n in range(64)]
_BAD_LEN = b"\x40"                    # stands for a label no wire name can hold (empty or over 63 bytes)

assert array("Q").itemsize == 8 and array("I").itemsize == 4 and array("H").itemsize == 2


class IndexFileError(Exception):
    """The index file is not a valid Hearth index (truncated, corrupt, foreign or of another version)."""


class Match(NamedTuple):
    category: str          # the blocking category (the lowest matching bit)
    rule: str              # the listed name that matched (the queried name or a parent), or the regex
    subdomain_of: bool     # matched through a parent's subtree entry
    important: bool        # the block rule was important (it beat an allow rule, or would have)
    regex: bool = False    # the rule is a regex


def _to_wire(name: bytes) -> tuple[bytes, list[int]]:
    """The uncompressed wire form of a dotted name and the offset of each label's length byte."""
    out = []
    offs = []
    o = 0
    for label in name.split(b"."):
        n = len(label)
        offs.append(o)
        o += n + 1
        out.append(_LEN[n] if 0 < n < 64 else _BAD_LEN)
        out.append(label)
    out.append(b"\0")
    return b"".join(out), offs


def name_hash(name: str) -> int:
    """Stable 64-bit hash of a normalised name: BLAKE2s (8-byte digest, read little-endian) of its
    uncompressed wire form, ``b"\\x07example\\x03com\\x00"`` for ``example.com``."""
    return _from_bytes(_hash(_to_wire(name.encode())[0], digest_size=8).digest(), "little")


def _presentation(w: bytes, offs: list) -> str:
    """Dotted text of wire name ``w`` (labels at ``offs``, ending at its zero byte); ``\\xNN`` for bytes
    outside ASCII and ``\\.`` for a dot inside a label. Plain names come out as long as ``w`` minus 2 and
    suffix ``j`` starts at ``offs[j]``."""
    text = bytearray(w[1:len(w) - 1])
    for o in offs[1:]:
        text[o - 1] = 46
    if text.isascii() and text.count(46) == len(offs) - 1:
        return text.decode("ascii")
    return ".".join(w[o + 1:o + 1 + w[o]].decode("ascii", "backslashreplace").replace(".", "\\.") for o in offs)


def _lowest_bit(bits: int) -> int:
    return (bits & -bits).bit_length() - 1


def _normalise(name: str) -> Optional[str]:
    """The indexable form of ``name`` (lower case, punycode, no trailing dot or ``*.``), or None."""
    name = name.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if name.startswith("*."):
        name = name[2:]
    if not name.isascii():
        try:
            name = ".".join(lb if lb.isascii() else _idna.ToASCII(lb).decode("ascii") for lb in name.split("."))
        except UnicodeError:
            return None
    if len(name) > 253 or not _NAME_RE.fullmatch(name):
        return None
    return name


