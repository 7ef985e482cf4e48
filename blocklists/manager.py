"""List updates: gather every source, keep the last good copy of each, compile one index.

Sources, in order: the bundled starter lists, the lists subscribed in config
(``lists:``) and the lists of a signed provider feed (``feed:``). Each list is
downloaded beside its last good copy and checked (it parses, it is not empty,
it is mostly valid); a list that fails keeps its last good copy while the
others update, so one bad list never switches blocking off. The index is
built beside the live one and renamed into place; a crash mid-update leaves
the previous index loadable. Updates run in their own process
(`hearth lists update`), so a big compile never slows the DNS engine.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from resolver.configspec import option

from .parsers import FORMATS, ParseStats, parse_file

log = logging.getLogger("hearth.lists")

STARTER_DIR = Path(__file__).resolve().parent / "data"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_VALID_SHARE = 0.5      # a download with fewer valid lines than this is refused (HTML, garbage…)
MANDATORY_PREFIX = "mandatory:"


def _check_id(text: str) -> str:
    if not _ID.match(str(text)):
        raise ValueError(f"bad list id {text!r}: use lower-case letters, digits, '-', '_', '.'")
    return str(text)


def _check_url(text: str) -> str:
    text = str(text).strip()
    if not re.match(r"^(https?|file)://", text):
        raise ValueError(f"list url must start with https://, http:// or file://, got {text!r}")
    return text


def _check_category(text: str) -> str:
    text = str(text).strip().lower()
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,31}$", text):
        raise ValueError(f"bad category {text!r}: a short lower-case word such as adult, gambling, ads")
    return text


@dataclass(frozen=True)
class ListConfig:
    id: str = option("", "Short unique name of the list (lower case, digits, - _ .).", check=_check_id)
    url: str = option("", "Where to get it: https://…, http://… or file:///path.", check=_check_url)
    format: str = option("auto", "List syntax; auto detects it. See docs/list-formats.md for what each blocks.",
                         choices=("auto",) + FORMATS)
    category: str = option("", "Category the list's names belong to (adult, gambling, violence, drugs, dating, "
                           "social, games, video, ads, trackers, malware, phishing, scam, bypass, or your own).",
                           check=_check_category)
    enabled: bool = option(True, "Set false to keep the entry but not use the list.")
    mandatory: bool = option(False, "Enforced in every profile, whatever its categories (school or legal "
                             "requirements).")

    def __post_init__(self) -> None:
        if not self.id or not self.url or not self.category:
            raise ValueError("each list needs id, url and category")


def _check_key(text: str) -> str:
    import base64
    import binascii

    if not text:
        return text
    try:
        raw = base64.b64decode(str(text).strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public_key must be the base64 line from feed.pub") from None
    if len(raw) != 32:
        raise ValueError("public_key must be a 32-byte Ed25519 key in base64 (the line in feed.pub)")
    return str(text).strip()


@dataclass(frozen=True)
class FeedConfig:
    url: str = option("", "URL of a provider feed's manifest.json (https:// or file://), e.g. "
                      "https://feeds.example/hearth/manifest.json; empty: no feed.")
    public_key: str = option("", "The feed's Ed25519 public key (base64, from `hearth feed keygen`). Required "
                             "with url: unsigned or mis-signed feeds are refused.", check=_check_key)
    update_interval: float = option(6 * 3600, "How often the feed is checked (a random jitter of up to 10% is "
                                    "added so appliances do not all ask at once).", duration=True, minimum=300)
    max_list_size: int = option(64 * 1024 * 1024, "Largest list accepted, in bytes (also after decompression).",
                                minimum=1024)

    def __post_init__(self) -> None:
        if self.url and not self.public_key:
            raise ValueError("feed.url needs feed.public_key: Hearth only accepts signed feeds")
        if self.url and not re.match(r"^(https?|file)://", self.url):
            raise ValueError(f"feed.url must be https://, http:// or file://, got {self.url!r}")


@dataclass
class Source:
    """One list as the updater sees it."""

    id: str
    category: str
    format: str
    origin: str                    # starter | config | feed
    title: str = ""
    url: str = ""
    mandatory: bool = False
    path: Optional[str] = None     # the good copy to compile
    error: Optional[str] = None    # why the latest attempt failed (the good copy, if any, stays)
    changed: bool = False


@dataclass
class ListStatus:
    id: str
    category: str
    origin: str
    url: str = ""
    entries: int = 0
    last_success: Optional[float] = None
    last_attempt: Optional[float] = None
    error: Optional[str] = None
    mandatory: bool = False
    invalid: int = 0
    skipped: dict = field(default_factory=dict)


class UpdateBusy(Exception):
    """Another update holds the lock."""


class ListManager:
    def __init__(self, config: Any, progress: Optional[Callable[[str], None]] = None):
        self.config = config
        self.dir = Path(config.data_dir) / "lists"
        self.cache_dir = self.dir / "cache"
        self.index_path = self.dir / "index.bin"
        self.meta_path = self.dir / "index.json"
        self.status_path = self.dir / "status.json"
        self.progress = progress or (lambda msg: log.info("%s", msg))

    # ------------------------------------------------------------ sources

    def starter_sources(self) -> list[Source]:
        if not self.config.blocking.starter_lists:
            return []
        spec = yaml.safe_load((STARTER_DIR / "starter.yaml").read_text(encoding="utf-8"))
        return [Source(id=e["id"], category=e["category"], format=e["format"], origin="starter",
                       title=e.get("title", ""), url=f"bundled:{e['file']}", path=str(STARTER_DIR / e["file"]))
                for e in spec["lists"]]

    def config_sources(self) -> list[Source]:
        return [Source(id=c.id, category=c.category, format=c.format, origin="config", url=c.url,
                       mandatory=c.mandatory, path=self._good_copy(c.id))
                for c in self.config.lists if c.enabled]

    def _good_copy(self, list_id: str) -> Optional[str]:
        path = self.cache_dir / f"{list_id}.list"
        return str(path) if path.exists() else None

    # ------------------------------------------------------------ update

    def update(self, *, fetch: bool = True, only: Optional[set[str]] = None) -> dict:
        """Refresh sources (unless ``fetch`` is False), compile, install. Returns a report."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UpdateBusy("another list update is running") from None
            return self._update_locked(fetch, only)

    def _update_locked(self, fetch: bool, only: Optional[set[str]]) -> dict:
        started = time.time()
        status = self._load_status()
        sources = self.starter_sources() + self.config_sources()
        feed_sources, feed_error = self._feed_sources(fetch)
        sources += feed_sources
        ids = [s.id for s in sources]
        for dup in {i for i in ids if ids.count(i) > 1}:
            raise ValueError(f"list id {dup!r} is used twice (config, feed or starter lists)")
        for src in sources:
            if src.origin == "config" and fetch and (only is None or src.id in only):
                self._fetch_config_list(src)
        report = self._compile(sources, status, started, fetch)
        report["feed_error"] = feed_error
        return report

    def _fetch_config_list(self, src: Source) -> None:
        from .fetch import CachedFile, FetchLimits, fetch_url

        good = self.cache_dir / f"{src.id}.list"
        meta_path = self.cache_dir / f"{src.id}.json"
        previous = None
        if good.exists() and meta_path.exists():
            try:
                previous = CachedFile.from_dict(json.loads(meta_path.read_text()))
            except ValueError:
                previous = None
        staging = self.cache_dir / f"{src.id}.download"
        self.progress(f"{src.id}: downloading {src.url}")
        try:
            result = fetch_url(src.url, str(staging), previous, FetchLimits(max_bytes=self.config.feed.max_list_size))
        except Exception as exc:  # noqa: BLE001 - any failure keeps the good copy
            src.error = str(exc) or type(exc).__name__
            self.progress(f"{src.id}: FAILED, keeping the previous copy: {src.error}")
            return
        if result.not_modified:
            self.progress(f"{src.id}: not modified")
            return
        problem = self._check_list(str(staging), src.format)
        if problem:
            src.error = problem
            os.unlink(staging)
            self.progress(f"{src.id}: REFUSED, keeping the previous copy: {problem}")
            return
        os.replace(staging, good)
        cached = result.file
        cached.path = str(good)
        _write_json(meta_path, cached.to_dict())
        src.path, src.changed = str(good), True

    def _check_list(self, path: str, fmt: str) -> Optional[str]:
        """Why a downloaded list must not replace the good copy, or None."""
        stats = ParseStats()
        rules = sum(1 for _ in parse_file(path, fmt, stats))
        candidates = stats.rules + stats.invalid
        if rules == 0:
            return f"no usable entries ({stats.invalid} invalid lines)"
        if candidates and stats.rules / candidates < MIN_VALID_SHARE:
            sample = ", ".join(f"line {n}: {t[:40]!r}" for n, t in stats.invalid_samples[:3])
            return f"mostly invalid: {stats.invalid} of {candidates} lines ({sample})"
        return None

    def _feed_sources(self, fetch: bool) -> tuple[list[Source], Optional[str]]:
        feed = self.config.feed
        if not feed.url:
            return [], None
        from .feed import load_public_key
        from .fetch import FeedClient, FetchLimits

        client = FeedClient(feed.url, load_public_key(feed.public_key), str(self.dir / "feed"),
                            FetchLimits(max_bytes=feed.max_list_size))
        if fetch:
            self.progress(f"feed: checking {feed.url}")
            update = client.update()
        else:
            update = client.status()
        if update.error:
            self.progress(f"feed: FAILED, keeping the lists already accepted: {update.error}")
        sources = []
        for list_id, res in sorted(update.lists.items()):
            entry = res.entry or {}
            src = Source(id=list_id, category=_check_category(entry.get("category", "other")),
                         format=entry.get("format", "auto"), origin="feed", title=entry.get("title", ""),
                         url=entry.get("url", ""), mandatory=bool(entry.get("mandatory")), path=res.path,
                         error=res.error, changed=res.changed)
            if res.path and res.changed:
                problem = self._check_list(res.path, src.format)
                if problem:
                    src.error = problem
            sources.append(src)
            if res.error:
                self.progress(f"{list_id}: FAILED, keeping the previous copy: {res.error}")
        return sources, update.error

    # ------------------------------------------------------------ compile

    def _compile(self, sources: list[Source], status: dict, started: float, fetched: bool) -> dict:
        from .index import IndexBuilder

        builder = IndexBuilder()
        meta: dict[str, dict] = {}
        for src in sources:
            st = status.get(src.id) or ListStatus(src.id, src.category, src.origin)
            st.category, st.origin, st.url, st.mandatory = src.category, src.origin, src.url, src.mandatory
            if fetched or src.origin == "starter":
                st.last_attempt = started
            if src.error:
                st.error = src.error
            if not src.path:
                st.error = st.error or "no copy yet"
                status[src.id] = st
                continue
            index_category = f"{MANDATORY_PREFIX}{src.category}" if src.mandatory else src.category
            stats = ParseStats()
            t0 = time.monotonic()
            count = 0
            # explicit ``||tld^`` rules in adblock syntax block a whole TLD on purpose (oisd nsfw: .porn,
            # .xxx); in the bare-name formats a single label is far more likely a list error
            for rule in parse_file(src.path, src.format, stats, allow_single_label=src.format == "adblock"):
                if rule.regex is not None:
                    builder.add_regex(rule.regex, index_category, allow=rule.allow, important=rule.important)
                else:
                    builder.add(rule.name, index_category, subdomains=rule.subdomains, allow=rule.allow,
                                important=rule.important)
                count += 1
            builder.add_source(src.id, index_category, count)
            m = meta.setdefault(index_category, {"category": src.category, "lists": [], "mandatory": src.mandatory})
            m["lists"].append(src.id)
            st.entries, st.invalid, st.skipped = count, stats.invalid, dict(stats.skipped)
            if not src.error:
                st.error = None
                if fetched or src.origin == "starter" or st.last_success is None:
                    st.last_success = started
            status[src.id] = st
            self.progress(f"{src.id}: {count} entries ({src.category}{', mandatory' if src.mandatory else ''}; "
                          f"{stats.invalid} invalid, {sum(stats.skipped.values())} skipped) "
                          f"in {time.monotonic() - t0:.1f}s")
        for stale in set(status) - {s.id for s in sources}:
            del status[stale]  # unsubscribed lists leave the status too
        built = builder.build(str(self.index_path))
        _write_json(self.meta_path, {"built": time.time(), "categories": meta})
        self._save_status(status)
        self.progress(f"index: {built.get('entries', 0)} names, {built.get('bytes', 0) / 1e6:.1f} MB, "
                      f"built in {built.get('seconds', 0):.1f}s")
        return {"index": built, "lists": {k: v.__dict__ for k, v in status.items()}}

    # ------------------------------------------------------------ status

    def _load_status(self) -> dict[str, ListStatus]:
        try:
            raw = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}
        out = {}
        for k, v in raw.items():
            try:
                out[k] = ListStatus(**v)
            except TypeError:
                continue
        return out

    def _save_status(self, status: dict[str, ListStatus]) -> None:
        _write_json(self.status_path, {k: v.__dict__ for k, v in status.items()})

    def status(self) -> list[ListStatus]:
        return sorted(self._load_status().values(), key=lambda s: (s.origin != "starter", s.id))


def load_index(data_dir: str):
    """(BlockIndex, categories meta) of the installed index, or (None, {}) when there is none yet."""
    from .index import BlockIndex

    base = Path(data_dir) / "lists"
    if not (base / "index.bin").exists():
        return None, {}
    index = BlockIndex.open(str(base / "index.bin"))
    try:
        meta = json.loads((base / "index.json").read_text()).get("categories", {})
    except (OSError, ValueError):
        meta = {}
    return index, meta


def _write_json(path: Path, data: Any) -> None:
    tmp = Path(f"{path}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
