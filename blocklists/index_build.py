"""Building the compiled blocklist index (its format: :mod:`blocklists.index_format`): rules gathered per
category into sorted key arrays with a directory, serialised, checksummed, written beside the live file and
installed with an atomic rename; stale temporary files of crashed builds are cleaned up."""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from array import array
from itertools import accumulate
from typing import Any

try:  # POSIX only; without it stale temporary files are judged by their pid alone
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

from .index import BlockIndex
from .index_format import (FORMAT_VERSION, MAGIC, MAX_CATEGORIES, _BOM, _CSUM_BLAKE2B, _CSUM_LEN, _CSUM_OFF,
                           _DIR_TARGET, _HEADER, _HEADER_SIZE, _LEN, _LOW56, _MAX_DIR_BITS, _NAME_RE, _RX_FLAG_ALLOW,
                           _RX_FLAG_IMPORTANT, _STALE_TMP_AGE, _TAG_IMPORTANT, _TAG_SUB, _from_bytes, _hash, _normalise)

__all__ = ["IndexBuilder", "install_index"]


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


