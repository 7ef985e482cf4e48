"""Mirrored upstream lists (``mirrors:`` in provider.yaml, e.g. the hostsVN lists): downloaded at each publish
and published in the feed beside the curated lists, as ``mirror-ID``.

Each download goes through :func:`blocklists.fetch.fetch_url` (conditional GET, size cap, one deadline for
connecting, headers, body and retries) into a temporary file, is parsed with :mod:`blocklists.parsers`, and
only a list that yields entries replaces the good copy ``DATA_DIR/mirrors/ID.txt`` (atomic rename). A mirror
that fails (down, 5xx, an HTML page, empty, too big, too slow) keeps its last good copy in the feed and its
error in ``DATA_DIR/mirrors/state.json`` (``GET /api/v1/mirrors``, the console's lists page)."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from blocklists import parsers
from blocklists.feed import FeedError, atomic_write
from blocklists.fetch import CachedFile, FetchError, FetchLimits, fetch_url, redact
from blocklists.manager import ListConfig

log = logging.getLogger("hearth.provider")


@dataclass(frozen=True)
class MirrorCopy:
    """A mirror's good copy, ready to publish."""
    config: ListConfig
    path: str
    format: str
    entries: int


def mirror_dir(data_dir: str) -> str:
    return os.path.abspath(os.path.join(data_dir, "mirrors"))


def _state_path(data_dir: str) -> str:
    return os.path.join(mirror_dir(data_dir), "state.json")


def load_state(data_dir: str) -> dict:
    try:
        with open(_state_path(data_dir), encoding="utf-8") as fh:
            state = json.load(fh)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def _count(path: str, fmt: str) -> tuple[int, str]:
    """(rules, the syntax) of a downloaded list; auto is resolved so the feed names one syntax."""
    if fmt == "auto":
        with open(path, "rb") as fh:
            fmt = parsers.detect_format(fh.read(64 * 1024).splitlines()[:200])
    stats = parsers.ParseStats()
    n = sum(1 for _ in parsers.parse_file(path, fmt, stats))
    return n, fmt


def refresh(data_dir: str, mirrors: Sequence[ListConfig], deadline: float, max_bytes: int) -> list[MirrorCopy]:
    """Download every enabled mirror; returns the good copies to publish (fresh or kept from before)."""
    folder = mirror_dir(data_dir)
    os.makedirs(folder, exist_ok=True)
    state = load_state(data_dir)
    limits = FetchLimits(total_timeout=deadline, max_bytes=max_bytes, connect_timeout=min(10.0, deadline))
    copies = []
    for m in mirrors:
        if not m.enabled:
            continue
        entry: dict[str, Any] = dict(state.get(m.id) or {})
        if entry.get("url") != m.url:             # another address: start again
            entry = {"url": m.url}
        good = os.path.join(folder, m.id + ".txt")
        previous = CachedFile.from_dict(entry.get("cached")) if os.path.exists(good) else None
        tmp = os.path.join(folder, f".{m.id}.download")
        entry["last_attempt"] = time.time()
        try:
            result = fetch_url(m.url, tmp, previous, limits)
            if not result.not_modified:
                n, fmt = _count(tmp, m.format)
                if n == 0:
                    raise FetchError(f"{redact(m.url)}: no entries in the {fmt} syntax", "empty")
                os.replace(tmp, good)
                result.file.path = good
                entry.update(cached=result.file.to_dict(), entries=n, format=fmt)
            entry.update(error=None, last_success=time.time())
        except (FetchError, FeedError, OSError, ValueError) as exc:
            entry["error"] = str(exc)
            log.warning("mirror %s failed, its last good copy stays in the feed: %s", m.id, exc)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        state[m.id] = entry
        if os.path.exists(good) and entry.get("entries"):
            copies.append(MirrorCopy(m, good, entry.get("format") or m.format, int(entry["entries"])))
    atomic_write(_state_path(data_dir), (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return copies


def status(data_dir: str, mirrors: Sequence[ListConfig]) -> list[dict]:
    """What each configured mirror looks like now (the address without credentials)."""
    state = load_state(data_dir)
    out = []
    for m in mirrors:
        e: dict = state.get(m.id) or {}
        cached: Optional[CachedFile] = CachedFile.from_dict(e.get("cached"))
        out.append({"id": m.id, "url": redact(m.url), "category": m.category, "mandatory": m.mandatory,
                    "enabled": m.enabled, "entries": e.get("entries"), "format": e.get("format") or m.format,
                    "sha256": cached.sha256 if cached else None, "last_attempt": e.get("last_attempt"),
                    "last_success": e.get("last_success"), "error": e.get("error")})
    return out
