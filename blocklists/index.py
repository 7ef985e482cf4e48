"""The compiled blocklist index: one file, built atomically, loaded with mmap.

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
import json
import mmap
import os
import re
import struct
import time
from array import array
from bisect import bisect_left
from encodings import idna as _idna
from itertools import accumulate
from typing import Any, Iterable, NamedTuple, Optional

try:  # POSIX only; without it stale temporary files are judged by their pid alone
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "MAX_CATEGORIES", "CATEGORY_BITS", "IMPORTANT", "FORMAT_VERSION", "MAGIC", "IndexFileError", "Match",
    "name_hash", "IndexBuilder", "BlockIndex", "install_index",
]

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


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def install_index(tmp_built_path: str, live_path: str) -> None:
    """Atomically replace ``live_path`` with the finished, fsynced ``tmp_built_path`` (same directory).

    Readers that mapped the old file keep their pages; new opens see the new file.
    """
    os.replace(tmp_built_path, live_path)
    _fsync_dir(os.path.dirname(os.path.abspath(live_path)))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_stale_tmp(path: str) -> list[str]:
    """Delete ``path.tmp-<pid>`` files left by crashed builds. A build in progress holds an flock on its file."""
    directory, base = os.path.split(os.path.abspath(path))
    prefix = base + ".tmp-"
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for fname in names:
        if not fname.startswith(prefix):
            continue
        pid_text = fname[len(prefix):]
        full = os.path.join(directory, fname)
        try:
            pid = int(pid_text)
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            fd = os.open(full, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live build holds it
            if _pid_alive(pid) and now - os.fstat(fd).st_mtime < _STALE_TMP_AGE:
                continue  # its builder may be just starting; a reused pid's file goes once it is old
            os.unlink(full)
            removed.append(full)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


# --------------------------------------------------------------------------------------------- building


def _merge_buckets(buckets: list) -> tuple[array, array]:
    """Sorted unique keys and their OR-ed category masks from the per-top-byte buckets of packed values.

    A packed value is ``(key & (2**56 - 1)) << 5 | category_bit``; the bucket number is the key's top
    byte, so sorting each small bucket on its own sorts the whole and never needs one huge list.
    """
    keys = array("Q")
    masks = array("I")
    kappend, mappend = keys.append, masks.append
    for b, bucket in enumerate(buckets):
        if not bucket:
            continue
        base = b << 56
        prev = -1
        m = 0
        for v in sorted(bucket):
            k = v >> 5
            if k != prev:
                if prev >= 0:
                    kappend(base | prev)
                    mappend(m)
                prev = k
                m = 1 << (v & 31)
            else:
                m |= 1 << (v & 31)
        kappend(base | prev)
        mappend(m)
    return keys, masks


def _dir_bits(n: int) -> int:
    return min(_MAX_DIR_BITS, (n // _DIR_TARGET).bit_length())


def _directory(keys: array, bits: int) -> array:
    """``dir[b]`` = first index whose key's top ``bits`` bits are >= b; ``2**bits + 1`` entries."""
    shift = 64 - bits
    counts = array("I", bytes(4 << bits))
    for k in keys:
        counts[k >> shift] += 1
    out = array("I", [0])
    out.extend(accumulate(counts))
    return out


def _align8(n: int) -> int:
    return (n + 7) & ~7


def _serialise(categories: list, sources: list, regexes: list, single: dict, block: tuple, allow: tuple,
               built: float, extra_stats: dict) -> tuple[bytes, list]:
    """The header and the payload chunks (with padding) of an index file."""
    bkeys, bmasks = block
    akeys, amasks = allow
    palette_list = sorted(set(bmasks) | set(amasks))
    np_ = len(palette_list)
    width, code = (1, "B") if np_ <= 0x100 else (2, "H") if np_ <= 0x10000 else (4, "I")
    pos = {m: i for i, m in enumerate(palette_list)}
    bidx = array(code, map(pos.__getitem__, bmasks))
    aidx = array(code, map(pos.__getitem__, amasks))
    db, da = _dir_bits(len(bkeys)), _dir_bits(len(akeys))
    bdir, adir = _directory(bkeys, db), _directory(akeys, da)
    stats = {"entries": len(bkeys) + len(single["block"]), "allow_entries": len(akeys) + len(single["allow"]),
             "regexes": len(regexes), "built": built, "palette": np_, "mask_width": width, **extra_stats}
    meta = json.dumps({"categories": categories, "sources": sources, "single": single,
                       "regexes": [list(r) for r in regexes], "stats": stats},
                      separators=(",", ":"), sort_keys=True).encode()
    sections = [meta, bkeys, bidx, bdir, akeys, aidx, adir, array("I", palette_list)]
    table: list[int] = []
    chunks: list = []
    off = _HEADER_SIZE
    for sec in sections:
        length = len(sec) * (sec.itemsize if isinstance(sec, array) else 1)
        table += [off, length]
        chunks.append(sec)
        pad = _align8(length) - length
        if pad:
            chunks.append(bytes(pad))
        off += length + pad
    fixed = _HEADER.pack(MAGIC, FORMAT_VERSION, _BOM, _HEADER_SIZE, 0, off, built, len(bkeys), len(akeys), np_,
                         width, db, da, _CSUM_BLAKE2B, *table)
    fixed += bytes(_CSUM_OFF - len(fixed))
    h = hashlib.blake2b(fixed, digest_size=_CSUM_LEN)
    for c in chunks:
        h.update(c)
    return fixed + h.digest(), chunks


class IndexBuilder:
    """Accumulates rules compactly (8 bytes per added name) and writes an index file.

    Names are hashed as they are added; nothing per entry is kept as a Python object.
    """

    def __init__(self) -> None:
        self._bits: dict[str, int] = {}
        self._categories: list[str] = []
        self._block = [array("Q") for _ in range(256)]
        self._allow = [array("Q") for _ in range(256)]
        self._regexes: dict[tuple[str, int], int] = {}    # (pattern, flags) -> category mask
        self._depths = [0, 0]                               # bit d: some hashed block / allow entry has d labels
        self._single: list[dict[tuple[str, int], int]] = [{}, {}]   # block / allow: (label, tag) -> mask
        self._sources: list[dict] = []
        self.added = 0
        self.skipped = 0

    def category_bit(self, category: str) -> int:
        """The bit of ``category``, assigned in first-seen order; ValueError past MAX_CATEGORIES."""
        bit = self._bits.get(category)
        if bit is None:
            if not isinstance(category, str) or not category:
                raise ValueError(f"bad category name {category!r}")
            if len(self._categories) >= MAX_CATEGORIES:
                raise ValueError(f"too many categories: {category!r} would be number {len(self._categories) + 1}, "
                                 f"the index holds at most {MAX_CATEGORIES}")
            bit = self._bits[category] = len(self._categories)
            self._categories.append(category)
        return bit

    def add(self, name: str, category: str, *, subdomains: bool, allow: bool = False,
            important: bool = False) -> bool:
        """Add one name. Returns False (and counts it in ``skipped``) when the name cannot be a DNS name
        made of ``[a-z0-9_-]`` labels even after normalising (lower case, IDNA, trailing dot, ``*.``)."""
        if len(name) > 253 or not _NAME_RE.fullmatch(name):
            name = _normalise(name)
            if name is None:
                self.skipped += 1
                return False
        bit = self._bits.get(category)
        if bit is None:
            bit = self.category_bit(category)
        tag = (_TAG_SUB if subdomains else 0) | (_TAG_IMPORTANT if important else 0)
        self.added += 1
        depth = name.count(".") + 1
        if depth == 1:  # a whole TLD: few, kept as text
            single = self._single[allow]
            single[(name, tag)] = single.get((name, tag), 0) | 1 << bit
            return True
        out = []
        for label in name.encode().split(b"."):
            out.append(_LEN[len(label)])
            out.append(label)
        out.append(b"\0")
        key = _from_bytes(_hash(b"".join(out), digest_size=8).digest(), "little") & -4 | tag
        (self._allow if allow else self._block)[key >> 56].append((key & _LOW56) << 5 | bit)
        self._depths[allow] |= 1 << depth
        return True

    def add_regex(self, pattern: str, category: str, *, allow: bool = False, important: bool = False) -> None:
        """Add a regex rule, applied with ``re.search`` to the lower-case name. ValueError if it does not compile."""
        try:
            re.compile(pattern)
        except (re.error, TypeError) as exc:
            raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        bit = self.category_bit(category)
        flags = (_RX_FLAG_ALLOW if allow else 0) | (_RX_FLAG_IMPORTANT if important else 0)
        self._regexes[(pattern, flags)] = self._regexes.get((pattern, flags), 0) | 1 << bit

    def add_rule(self, rule: Any, category: str) -> bool:
        """Add a parser ``Rule`` (anything with name, subdomains, allow, important, regex attributes)."""
        if getattr(rule, "regex", None):
            self.add_regex(rule.regex, category, allow=rule.allow, important=rule.important)
            return True
        return self.add(rule.name, category, subdomains=rule.subdomains, allow=rule.allow, important=rule.important)

    def add_source(self, source_id: str, category: str, entries: int) -> None:
        """Record which list fed which category (metadata only)."""
        self.category_bit(category)
        self._sources.append({"id": source_id, "category": category, "entries": int(entries)})

    def _serialise(self) -> tuple[bytes, list, dict]:
        t0 = time.perf_counter()
        block = _merge_buckets(self._block)
        allow = _merge_buckets(self._allow)
        regexes = sorted((p, m, f) for (p, f), m in self._regexes.items())
        single = {kind: sorted([label, tag, mask] for (label, tag), mask in table.items())
                  for kind, table in zip(("block", "allow"), self._single)}
        header, chunks = _serialise(list(self._categories), list(self._sources), regexes, single, block, allow,
                                    time.time(), {"added": self.added, "skipped": self.skipped,
                                                  "depths": list(self._depths)})
        stats = {"entries": len(block[0]) + len(single["block"]),
                 "allow_entries": len(allow[0]) + len(single["allow"]), "regexes": len(regexes),
                 "bytes": len(header) + sum(len(c) * (c.itemsize if isinstance(c, array) else 1) for c in chunks),
                 "added": self.added, "skipped": self.skipped, "serialise_seconds": time.perf_counter() - t0}
        return header, chunks, stats

    def to_bytes(self) -> bytes:
        """The index file's content in memory (for tests and tools)."""
        header, chunks, _ = self._serialise()
        return header + b"".join(bytes(c) for c in chunks)

    def build(self, path: str) -> dict:
        """Write the index to ``path`` atomically and return its stats.

        The file is written as ``path.tmp-<pid>`` (flock-ed while written) in the same directory, fsynced,
        checked by opening it, then renamed over ``path`` and the directory fsynced. A crash at any point
        leaves the previous file intact; the next build removes temp files of dead builds.
        """
        t0 = time.perf_counter()
        path = os.fspath(path)
        _remove_stale_tmp(path)
        header, chunks, stats = self._serialise()
        tmp = f"{path}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                with os.fdopen(os.dup(fd), "wb") as f:
                    f.write(header)
                    for c in chunks:
                        f.write(c)
                    f.flush()
                    os.fsync(f.fileno())
                BlockIndex.open(tmp).close()     # never install a file we cannot read back
                install_index(tmp, path)
            finally:
                os.close(fd)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        stats["seconds"] = time.perf_counter() - t0
        stats["path"] = path
        return stats


# --------------------------------------------------------------------------------------------- reading


def _scan(table: tuple, js: tuple, hs: list, cat: int, stop: bool) -> list:
    """Entries of ``table`` matching suffix ``js[n]`` (label index) with key ``hs[n]``: [(suffix, bits, tag)]."""
    keys, midx, pal, dirv, shift = table
    out = []
    for j, h in zip(js, hs):
        b = h >> shift
        hi = dirv[b + 1]
        i = bisect_left(keys, h, dirv[b], hi)
        while i < hi:
            k = keys[i]
            if k - h > 3:
                break
            if j == 0 or k & _TAG_SUB:
                bits = pal[midx[i]] & cat
                if bits:
                    out.append((j, bits, k & 3))
                    if stop:
                        return out
            i += 1
    return out


def _single_hits(entries: tuple, n: int, cat: int) -> list:
    """Matches among the single-label entries of a name's last label (``n`` labels in the name)."""
    out = []
    for tag, mask in entries:
        if tag & _TAG_SUB or n == 1:
            bits = mask & cat
            if bits:
                out.append((n - 1, bits, tag))
    return out


def _single_table(rows: list) -> dict:
    """{label bytes: ((tag, mask), ...)} from META's [[label, tag, mask], ...]."""
    table: dict[bytes, list] = {}
    for label, tag, mask in rows:
        table.setdefault(label.encode("ascii"), []).append((int(tag) & 3, int(mask) & CATEGORY_BITS))
    return {k: tuple(v) for k, v in table.items()}


_EMPTY_FILE: Optional[bytes] = None


class BlockIndex:
    """A read-only index, mapped from its file (``open``) or held in memory (``from_bytes``, ``empty``)."""

    def __init__(self, buf: Any, source: str = "<memory>", _mm: Optional[mmap.mmap] = None) -> None:
        self.path = source
        self._mm = _mm
        self._views: list[memoryview] = []
        self._closed = False
        self._rx_cache: dict[tuple[int, bool], list] = {}
        try:
            self._load(buf)
        except BaseException:
            self._release_views()
            raise

    # ---- opening

    @classmethod
    def open(cls, path: str) -> BlockIndex:
        """Map ``path`` read-only and validate it; IndexFileError if it is not a sound index (OSError if unreadable)."""
        path = os.fspath(path)
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size < _HEADER_SIZE:
                raise IndexFileError(f"{path}: truncated: {size} bytes, smaller than the {_HEADER_SIZE}-byte header")
            mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        try:
            return cls(mm, path, mm)
        except BaseException:
            mm.close()
            raise

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<memory>") -> BlockIndex:
        return cls(data, source)

    @classmethod
    def empty(cls) -> BlockIndex:
        """An index that blocks nothing."""
        global _EMPTY_FILE
        if _EMPTY_FILE is None:
            _EMPTY_FILE = IndexBuilder().to_bytes()
        return cls(_EMPTY_FILE, "<empty>")

    def _view(self, mv: memoryview, off: int, length: int, fmt: str) -> memoryview:
        part = mv[off:off + length]
        self._views.append(part)
        cast = part.cast(fmt)
        self._views.append(cast)
        return cast

    def _load(self, buf: Any) -> None:
        src = self.path
        size = len(buf)
        if size < _HEADER_SIZE:
            raise IndexFileError(f"{src}: truncated: {size} bytes, smaller than the {_HEADER_SIZE}-byte header")
        (magic, version, bom, header_size, _flags, file_size, built, nb, na, np_, width, db, da, algo,
         *table) = _HEADER.unpack_from(buf, 0)
        if magic != MAGIC:
            raise IndexFileError(f"{src}: not a Hearth index (magic {magic!r}, expected {MAGIC!r})")
        if bom != _BOM:
            if bom == 0x04030201:
                raise IndexFileError(f"{src}: built on a machine of the other byte order; rebuild it on this one")
            raise IndexFileError(f"{src}: corrupt header (byte-order mark {bom:#010x})")
        if version != FORMAT_VERSION:
            raise IndexFileError(f"{src}: unsupported index format version {version} (this Hearth reads "
                                 f"version {FORMAT_VERSION}); rebuild the index")
        if header_size != _HEADER_SIZE:
            raise IndexFileError(f"{src}: corrupt header (header size {header_size})")
        if file_size != size:
            what = "truncated" if size < file_size else "has trailing data"
            raise IndexFileError(f"{src}: {what}: {size} bytes, the header says {file_size}")
        if algo != _CSUM_BLAKE2B:
            raise IndexFileError(f"{src}: unknown checksum algorithm {algo}")
        mv = memoryview(buf)
        self._views.append(mv)
        h = hashlib.blake2b(digest_size=_CSUM_LEN)
        with mv[:_CSUM_OFF] as part:
            h.update(part)
        with mv[_HEADER_SIZE:] as part:
            h.update(part)
        if h.digest() != bytes(mv[_CSUM_OFF:_CSUM_OFF + _CSUM_LEN]):
            raise IndexFileError(f"{src}: checksum mismatch: the file is corrupt")
        # The checksum only proves the file is what some writer wrote; check the layout too.
        if width not in (1, 2, 4) or db > _MAX_DIR_BITS or da > _MAX_DIR_BITS:
            raise IndexFileError(f"{src}: corrupt header (mask width {width}, directory bits {db}/{da})")
        code = {1: "B", 2: "H", 4: "I"}[width]
        expect = [None, nb * 8, nb * width, ((1 << db) + 1) * 4, na * 8, na * width, ((1 << da) + 1) * 4, np_ * 4]
        secs = []
        end = _HEADER_SIZE
        for i, name in enumerate(_SECTIONS):
            off, length = table[2 * i], table[2 * i + 1]
            if off % 8 or off < end or off + length > size or (expect[i] is not None and length != expect[i]):
                raise IndexFileError(f"{src}: corrupt section table ({name} at {off}, {length} bytes)")
            secs.append((off, length))
            end = off + length
        try:
            meta = json.loads(bytes(mv[secs[0][0]:secs[0][0] + secs[0][1]]).decode())
            categories = meta["categories"]
            sources = meta["sources"]
            regexes = meta["regexes"]
            stats = meta.get("stats", {})
            if not (isinstance(categories, list) and all(isinstance(c, str) for c in categories)
                    and len(categories) <= MAX_CATEGORIES and isinstance(sources, list)
                    and isinstance(regexes, list) and isinstance(stats, dict)):
                raise ValueError("bad types")
            compiled = [(re.compile(p), p, int(m) & CATEGORY_BITS, int(f)) for p, m, f in regexes]
            single = meta.get("single", {})
            sblock, sallow = _single_table(single.get("block", [])), _single_table(single.get("allow", []))
            depths = stats.get("depths", [-1, -1])
            depth_bits = int(depths[0]) | int(depths[1])
        except (ValueError, KeyError, TypeError, AttributeError, re.error, UnicodeError) as exc:
            raise IndexFileError(f"{src}: corrupt metadata: {exc}") from None
        bkeys = self._view(mv, *secs[1], "Q")
        bidx = self._view(mv, *secs[2], code)
        bdir = self._view(mv, *secs[3], "I")
        akeys = self._view(mv, *secs[4], "Q")
        aidx = self._view(mv, *secs[5], code)
        adir = self._view(mv, *secs[6], "I")
        pal = self._view(mv, *secs[7], "I")
        if bdir[0] != 0 or bdir[-1] != nb or adir[0] != 0 or adir[-1] != na:
            raise IndexFileError(f"{src}: corrupt directory")
        self.categories: list[str] = categories
        self.sources: list[dict] = sources
        self._bits = {c: i for i, c in enumerate(categories)}
        self._block = (bkeys, bidx, pal, bdir, 64 - db)
        self._allow = (akeys, aidx, pal, adir, 64 - da)
        self._nb, self._na = nb, na
        self._sblock, self._sallow = sblock, sallow
        n_single = (sum(len(v) for v in sblock.values()), sum(len(v) for v in sallow.values()))
        self._regexes = compiled
        # Per label count n: the suffixes (by index of their first label) worth hashing, i.e. those whose
        # label count some hashed entry has. Single-label names are in the dicts, so a TLD is never hashed.
        self._plans = [tuple(j for j in range(n) if depth_bits >> (n - j) & 1) for n in range(129)]
        self._has_block_rx = any(not f & _RX_FLAG_ALLOW for _, _, _, f in compiled)
        self._has_allow = na > 0 or bool(sallow) or any(f & _RX_FLAG_ALLOW for _, _, _, f in compiled)
        self._inert = nb == 0 and not sblock and not self._has_block_rx
        self._stats = {"entries": nb + n_single[0], "allow_entries": na + n_single[1], "regexes": len(compiled),
                       "bytes": size, "built": built, "categories": len(categories), "palette": np_,
                       "mask_width": width, "version": version, "path": src, "mmap": self._mm is not None,
                       "skipped": stats.get("skipped", 0)}

    # ---- closing

    def _release_views(self) -> None:
        for v in reversed(self._views):
            try:
                v.release()
            except (BufferError, ValueError):
                pass
        self._views = []

    def close(self) -> None:
        """Unmap the file. Later lookups raise ValueError."""
        if self._closed:
            return
        self._closed = True
        self._release_views()
        self._block = self._allow = None  # type: ignore[assignment]
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass  # someone still holds a view; the mapping goes with the last reference
            self._mm = None

    def __enter__(self) -> BlockIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # ---- information

    @property
    def stats(self) -> dict:
        return dict(self._stats)

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return self._stats["entries"]

    def __repr__(self) -> str:
        return (f"<BlockIndex {self.path} entries={self._stats['entries']} allow={self._stats['allow_entries']} "
                f"regexes={self._stats['regexes']}{' closed' if self._closed else ''}>")

    def category_mask(self, categories: Iterable[str]) -> int:
        """The mask of the named categories; names not in the index are ignored."""
        mask = 0
        for c in categories:
            bit = self._bits.get(c)
            if bit is not None:
                mask |= 1 << bit
        return mask

    # ---- lookups

    def lookup(self, name: str, mask: int = CATEGORY_BITS, allow_mask: int = CATEGORY_BITS) -> Optional[Match]:
        """Why ``name`` is blocked for the categories in ``mask``, or None.

        ``allow_mask`` selects which categories' allow rules apply (all by default). The name may carry a
        trailing dot, upper case or Unicode labels (converted to punycode).
        """
        if self._closed:
            raise ValueError("lookup on a closed BlockIndex")
        cat = mask & CATEGORY_BITS
        if not cat or self._inert:
            return None
        name = name.lower()
        if name.endswith("."):
            name = name[:-1]
        if not name:
            return None
        if not name.isascii():
            labels = []
            for lb in name.split("."):
                if not lb.isascii():
                    try:
                        lb = _idna.ToASCII(lb).decode("ascii")
                    except UnicodeError:
                        pass
                labels.append(lb)
            name = ".".join(labels)
        w, offs = _to_wire(name.encode("utf-8", "surrogatepass"))
        return self._decide(w, offs, cat, allow_mask, name)

    def lookup_wire(self, name_wire: bytes, mask: int = CATEGORY_BITS,
                    allow_mask: int = CATEGORY_BITS) -> Optional[Match]:
        """``lookup`` for an uncompressed wire name (``b"\\x03www\\x07example\\x03com\\x00"``); bytes after the
        terminating zero (a query's type and class, say) are ignored.

        A suffix holding a label with a byte outside ``[a-z0-9_-]`` (or a dot) cannot be in the index and
        never matches by hash; parents to its right still can. Regexes see the presentation form (``\\xNN``
        for bytes outside ASCII, ``\\.`` for a dot inside a label). A malformed wire name is not blocked.
        """
        if self._closed:
            raise ValueError("lookup on a closed BlockIndex")
        cat = mask & CATEGORY_BITS
        if not cat or self._inert:
            return None
        w = name_wire.lower()
        offs = []
        i = 0
        try:
            ln = w[0]
            while ln:
                if ln > 63:
                    return None
                offs.append(i)
                i += ln + 1
                ln = w[i]
        except IndexError:
            return None
        if not offs:
            return None
        if len(w) != i + 1:
            w = w[:i + 1]
        return self._decide(w, offs, cat, allow_mask, None)

    def _decide(self, w: bytes, offs: list, cat: int, amask: int, text: Optional[str]) -> Optional[Match]:
        """The verdict for wire name ``w`` (labels at ``offs``); ``text`` is its presentation form, if known."""
        n = len(offs)
        js = self._plans[n] if n < len(self._plans) else tuple(range(n))
        hs = [_from_bytes(_hash(w[offs[j]:], digest_size=8).digest(), "little") & -4 for j in js]
        has_allow = self._has_allow
        found = _scan(self._block, js, hs, cat, not has_allow) if self._nb and hs else []
        if self._sblock and (has_allow or not found):
            entries = self._sblock.get(w[offs[-1] + 1:-1])
            if entries:
                found += _single_hits(entries, n, cat)
        rx_text = text
        rx = None
        if found:
            if not has_allow:
                return self._hash_match(found[0], w, offs, text)
        else:
            if not self._has_block_rx:
                return None
            if rx_text is None:
                rx_text = _presentation(w, offs)
            rx = self._regex_match(rx_text, cat, False)
            if rx is None or not has_allow:
                return rx
        # Blocked: do allow rules let it through?
        amask &= CATEGORY_BITS
        allows = _scan(self._allow, js, hs, amask, False) if self._na and hs and amask else []
        if self._sallow and amask:
            entries = self._sallow.get(w[offs[-1] + 1:-1])
            if entries:
                allows += _single_hits(entries, n, amask)
        allowed = bool(allows)
        allowed_important = any(t & _TAG_IMPORTANT for _, _, t in allows)
        if not allowed_important and amask:
            for regex, _pattern, _bits, flags in self._regex_list(amask, True):
                if rx_text is None:
                    rx_text = _presentation(w, offs)
                if regex.search(rx_text):
                    allowed = True
                    if flags & _RX_FLAG_IMPORTANT:
                        allowed_important = True
                        break
        if not allowed:
            return self._hash_match(found[0], w, offs, rx_text) if found else rx
        if allowed_important:
            return None
        for f in found:
            if f[2] & _TAG_IMPORTANT:
                return self._hash_match(f, w, offs, rx_text)
        if self._has_block_rx:
            if rx_text is None:
                rx_text = _presentation(w, offs)
            return self._regex_match(rx_text, cat, True)
        return None

    def _hash_match(self, found: tuple, w: bytes, offs: list, text: Optional[str]) -> Match:
        j, bits, tag = found
        if text is None:
            text = _presentation(w, offs)
        if len(text) == len(w) - 2:    # plain text, aligned with the wire form
            rule = text[offs[j]:]
        else:                          # the matched suffix is plain even when the labels left of it are not
            rule = ".".join(w[o + 1:o + 1 + w[o]].decode("ascii", "replace") for o in offs[j:])
        return Match(self.categories[_lowest_bit(bits)], rule, j > 0, bool(tag & _TAG_IMPORTANT))

    def _regex_list(self, mask: int, allow: bool) -> list:
        key = (mask, allow)
        lst = self._rx_cache.get(key)
        if lst is None:
            lst = [(rx, p, m & mask, f) for rx, p, m, f in self._regexes
                   if m & mask and bool(f & _RX_FLAG_ALLOW) == allow]
            if len(self._rx_cache) > 64:
                self._rx_cache.clear()
            self._rx_cache[key] = lst
        return lst

    def _regex_match(self, text: str, cat: int, important_only: bool) -> Optional[Match]:
        for rx, pattern, bits, flags in self._regex_list(cat, False):
            if important_only and not flags & _RX_FLAG_IMPORTANT:
                continue
            if rx.search(text):
                return Match(self.categories[_lowest_bit(bits)], pattern, False, bool(flags & _RX_FLAG_IMPORTANT),
                             True)
        return None
