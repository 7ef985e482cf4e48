"""The compiled blocklist index, read side: the file mapped read-only (mmap, shared by every process that
opens it), checked, and names looked up by hash of each suffix, with allow rules, importance and regexes.
The file format and the hashing are in :mod:`blocklists.index_format`, building in :mod:`blocklists.index_build`.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
from bisect import bisect_left
from encodings import idna as _idna
from typing import Any, Iterable, Optional

from resolver.base.compiled import load_compiled

from .index_format import (CATEGORY_BITS, FORMAT_VERSION, IMPORTANT, IndexFileError, MAGIC, MAX_CATEGORIES, Match, _BOM,
                           _CSUM_BLAKE2B, _CSUM_LEN, _CSUM_OFF, _HEADER, _HEADER_SIZE, _MAX_DIR_BITS, _RX_FLAG_ALLOW,
                           _RX_FLAG_IMPORTANT, _SECTIONS, _TAG_IMPORTANT, _TAG_SUB, _from_bytes, _hash, _lowest_bit,
                           _presentation, _to_wire)

__all__ = ["BlockIndex", "IndexFileError", "Match", "CATEGORY_BITS", "IMPORTANT", "MAX_CATEGORIES"]


def _load_accel() -> Any:
    """The compiled lookup (``blocklists/_indexscan.c``), or None (see :mod:`resolver.base.compiled`)."""
    return load_compiled("blocklists._indexscan")


# Read when an index is opened: an index opened while this is None searches in Python (tests switch it).
accel: Any = _load_accel()


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


class BlockIndex:
    """A read-only index, mapped from its file (``open``) or held in memory (``from_bytes``, ``empty``)."""

    def __init__(self, buf: Any, source: str = "<memory>", _mm: Optional[mmap.mmap] = None) -> None:
        self.path = source
        self._mm = _mm
        self._views: list[memoryview] = []
        self._closed = False
        self._rx_cache: dict[tuple[int, bool], list] = {}
        self._fast: Any = None
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
        if accel is not None:
            plan = bytes((depth_bits >> d) & 1 for d in range(130))
            try:
                self._fast = accel.Tables(mv, secs[1][0], nb, secs[2][0], secs[3][0], db, secs[4][0], na,
                                          secs[5][0], secs[6][0], da, secs[7][0], np_, width, plan, sblock, sallow,
                                          self._has_allow)
            except ValueError as exc:   # a directory out of order or past its table: no sound index
                raise IndexFileError(f"{src}: corrupt directory ({exc})") from None
        self._stats = {"entries": nb + n_single[0], "allow_entries": na + n_single[1], "regexes": len(compiled),
                       "bytes": size, "built": built, "categories": len(categories), "palette": np_,
                       "mask_width": width, "version": version, "path": src, "mmap": self._mm is not None,
                       "skipped": stats.get("skipped", 0)}

    # ---- closing

    def _release_views(self) -> None:
        if self._fast is not None:
            self._fast.release()
            self._fast = None
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
        if self._fast is not None:   # as lookup_wire; None: a label no wire name holds, which Python hashes as is
            res = self._fast.lookup(w, cat, allow_mask)
            if res is not None and res is not NotImplemented:
                if res == 0:
                    if not self._has_block_rx:
                        return None
                else:
                    w, offs, found, allows = res
                    if not self._has_allow:
                        return self._hash_match(found[0], w, offs, name)
                    return self._settle(w, offs, found, None, allows, cat, allow_mask & CATEGORY_BITS, name)
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
        if self._fast is not None:
            res = self._fast.lookup(name_wire, cat, allow_mask)
            if res is None:
                return None
            if res is not NotImplemented:
                if res == 0 and not self._has_block_rx:
                    return None
                if res != 0:
                    w, offs, found, allows = res
                    if not self._has_allow:
                        return self._hash_match(found[0], w, offs, None)
                    return self._settle(w, offs, found, None, allows, cat, allow_mask & CATEGORY_BITS, None)
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
        return self._settle(w, offs, found, rx, allows, cat, amask, rx_text)

    def _settle(self, w: bytes, offs: list, found: list, rx: Optional[Match], allows: list, cat: int, amask: int,
                rx_text: Optional[str]) -> Optional[Match]:
        """The verdict for a name blocked by ``found`` (hash matches) or ``rx`` when the index has allow rules:
        ``allows`` are the allow entries matching it (``amask``: the categories whose allow rules apply)."""
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

