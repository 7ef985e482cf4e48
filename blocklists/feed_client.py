"""Keeping one signed provider feed (see :mod:`blocklists.feed`) in step on the appliance.

:class:`FeedClient` fetches the manifest and its signature (conditional GETs, :func:`blocklists.fetch.fetch_url`),
checks the signature before trusting anything, refuses rollbacks, downloads only the lists that changed and
checks each against its manifest entry (size, sha256); a list that cannot be brought up to date keeps its last
good copy.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests

from .feed import (MANIFEST_NAME, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, SIGNATURE_NAME, FeedError, atomic_write,
                   entry_mismatch, load_public_key, public_key_text, verify_manifest)
from .fetch import (CachedFile, FetchError, FetchLimits, FetchResult, _rename_quiet, _unlink_quiet, deadline_session,
                    fetch_url, redact)

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None

__all__ = ["FeedClient", "FeedUpdate", "ListResult", "fetch_list", "fetch_manifest_pair", "manifest_url_for"]


# --------------------------------------------------------------------------------------------------

def manifest_url_for(url_or_dir: str) -> str:
    """The manifest URL of a feed given as a manifest URL, a folder URL ending in ``/``, or a local path."""
    if not urlsplit(url_or_dir).scheme or (len(url_or_dir) > 1 and url_or_dir[1] == ":"):
        path = Path(os.path.abspath(url_or_dir))
        return (path / MANIFEST_NAME).as_uri() if path.is_dir() else path.as_uri()
    parts = urlsplit(url_or_dir)
    if parts.scheme.lower() == "file" and os.path.isdir(url2pathname(parts.path)):
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + MANIFEST_NAME))
    if parts.path.endswith("/") or not parts.path:
        return urlunsplit(parts._replace(path=(parts.path or "/") + MANIFEST_NAME))
    return url_or_dir


def signature_url_for(manifest_url: str) -> str:
    parts = urlsplit(manifest_url)
    return urlunsplit(parts._replace(path=parts.path + SIGNATURE_NAME[len(MANIFEST_NAME):]))


def _capped(limits: FetchLimits, max_bytes: int) -> FetchLimits:
    return dataclasses.replace(limits, max_bytes=min(limits.max_bytes, max_bytes))


def fetch_manifest_pair(manifest_url: str, dest_dir: str, limits: FetchLimits,
                        previous: tuple = (None, None), session: Optional[requests.Session] = None
                        ) -> tuple[FetchResult, FetchResult]:
    """The manifest, then its signature, into DEST_DIR (conditional on ``previous``, a pair of CachedFile)."""
    manifest = fetch_url(manifest_url, os.path.join(dest_dir, MANIFEST_NAME), previous[0],
                         _capped(limits, MAX_MANIFEST_BYTES), session)
    signature = fetch_url(signature_url_for(manifest_url), os.path.join(dest_dir, SIGNATURE_NAME), previous[1],
                          _capped(limits, MAX_SIGNATURE_BYTES), session)
    return manifest, signature


def fetch_list(url: str, dest_path: str, previous: Optional[CachedFile], entry: dict, limits: FetchLimits,
               session: Optional[requests.Session] = None) -> FetchResult:
    """Download one list of a verified manifest and check it against its entry (size, sha256).

    A file that does not match is removed and FetchError (kind "checksum") raised."""
    if entry["size"] > limits.max_bytes:
        raise FetchError(f"the manifest says {entry['size']} bytes, over the limit of {limits.max_bytes} bytes",
                         "too-big")
    capped = _capped(limits, entry["size"])
    try:
        result = fetch_url(url, dest_path, previous, capped, session)
        if result.not_modified and entry_mismatch(entry, result.file.size, result.file.sha256):
            result = fetch_url(url, dest_path, None, capped, session)  # a stale cache answered 304
    except FetchError as exc:
        if exc.kind == "too-big":
            raise FetchError(f"{redact(url)}: larger than the {entry['size']} bytes the manifest says", "checksum",
                             exc.status) from None
        raise
    problem = entry_mismatch(entry, result.file.size, result.file.sha256)
    if problem:
        if not result.not_modified:
            _unlink_quiet(result.file.path)
        raise FetchError(f"{redact(url)}: {problem}", "checksum")
    return result


@dataclass
class ListResult:
    path: Optional[str]         # the good copy to use (possibly from an earlier version), or None
    changed: bool               # the good copy was replaced by this update
    error: Optional[str]        # why this list could not be brought up to date
    entry: dict                 # the list's manifest entry


@dataclass
class FeedUpdate:
    version: Optional[int]      # the accepted feed version (None: none accepted yet)
    manifest: Optional[dict]    # the accepted manifest
    lists: dict[str, ListResult] = field(default_factory=dict)
    error: Optional[str] = None  # feed-level failure: nothing was changed
    previous_version: Optional[int] = None

    @property
    def changed(self) -> bool:
        return self.error is None and (self.version != self.previous_version
                                       or any(r.changed for r in self.lists.values()))


_STATE_FORMAT = 1


class FeedClient:
    """Keeps the lists of one signed feed in ``state_dir``::

        state.json              accepted version, per-list CachedFile, errors (written atomically)
        manifest.json(.sig)     the accepted manifest and its signature
        lists/ID.txt            the good copy of each list
        incoming/               downloads not yet checked
    """

    def __init__(self, url: str, public_key: Any, state_dir: str, limits: Optional[FetchLimits] = None):
        self.url = url
        self.manifest_url = manifest_url_for(url)
        self.public_key = load_public_key(public_key)
        self.state_dir = os.path.abspath(state_dir)
        self.limits = limits or FetchLimits()
        self.lists_dir = os.path.join(self.state_dir, "lists")
        self.incoming_dir = os.path.join(self.state_dir, "incoming")
        self.state_path = os.path.join(self.state_dir, "state.json")
        self._key_text = public_key_text(self.public_key)

    # -- state ---------------------------------------------------------------------------------------------

    def _fresh_state(self) -> dict:
        return {"format": _STATE_FORMAT, "url": self.manifest_url, "public_key": self._key_text, "version": 0,
                "manifest": None, "signature": None, "lists": {}, "errors": {}, "error": None,
                "last_attempt": None, "last_success": None}

    def load_state(self) -> dict:
        """The persisted state; a fresh one if there is none, it is unreadable, or it belongs to another
        feed URL or key (a different feed has its own version sequence)."""
        try:
            with open(self.state_path, encoding="utf-8") as fh:
                state = json.load(fh)
        except FileNotFoundError:
            return self._fresh_state()
        except (OSError, ValueError):
            _rename_quiet(self.state_path, self.state_path + ".corrupt")
            return self._recover_state()
        if (not isinstance(state, dict) or state.get("format") != _STATE_FORMAT
                or not isinstance(state.get("version"), int) or not isinstance(state.get("lists"), dict)):
            _rename_quiet(self.state_path, self.state_path + ".corrupt")
            return self._recover_state()
        if state.get("url") != self.manifest_url or state.get("public_key") != self._key_text:
            return self._fresh_state()
        state.setdefault("errors", {})
        return state

    def _recover_state(self) -> dict:
        """After a corrupt state file: keep the rollback floor from the accepted manifest if it still verifies."""
        state = self._fresh_state()
        manifest = self._accepted_manifest()
        if manifest is not None:
            state["version"] = manifest["version"]
        return state

    def _save_state(self, state: dict) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        atomic_write(self.state_path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    def _accepted_manifest(self) -> Optional[dict]:
        try:
            with open(os.path.join(self.state_dir, MANIFEST_NAME), "rb") as fh:
                data = fh.read(MAX_MANIFEST_BYTES + 1)
            with open(os.path.join(self.state_dir, SIGNATURE_NAME), "rb") as fh:
                sig = fh.read(MAX_SIGNATURE_BYTES)
            return verify_manifest(data, sig, self.public_key)
        except (OSError, FeedError):
            return None

    def status(self) -> FeedUpdate:
        """What is in force now, without downloading anything."""
        state = self.load_state()
        return self._current(state, state.get("error"))

    def _current(self, state: dict, error: Optional[str]) -> FeedUpdate:
        manifest = self._accepted_manifest() if state["version"] else None
        lists = {}
        for entry in (manifest or {}).get("lists", []):
            file = CachedFile.from_dict((state["lists"].get(entry["id"]) or {}).get("file"))
            path = file.path if file is not None and os.path.isfile(file.path) else None
            lists[entry["id"]] = ListResult(path, False, state["errors"].get(entry["id"]), entry)
        version = state["version"] or None
        return FeedUpdate(version, manifest, lists, error, version)

    # -- update --------------------------------------------------------------------------------------------

    def update(self) -> FeedUpdate:
        """Fetch, verify and apply the feed; see the module docs. Never raises FeedError: problems are
        reported in the result (``error`` for the feed, ``lists[id].error`` for one list)."""
        try:
            os.makedirs(self.state_dir, exist_ok=True)
        except OSError as exc:
            return FeedUpdate(None, None, {}, f"cannot create {self.state_dir}: {exc.strerror or exc}")
        lock = self._lock()
        if lock is None:
            state = self.load_state()
            return self._current(state, "another update of this feed is running")
        try:
            with deadline_session() as session:
                return self._update(session)
        except OSError as exc:  # the state folder itself failed us (disk full, permissions)
            return self._current(self.load_state(), f"{exc.filename or self.state_dir}: {exc.strerror or exc}")
        finally:
            lock.close()

    def _lock(self):
        fh = open(os.path.join(self.state_dir, ".lock"), "a")
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                return None
        return fh

    def _update(self, session: requests.Session) -> FeedUpdate:
        state = self.load_state()
        state["last_attempt"] = time.time()
        previous_version = state["version"] or None
        shutil.rmtree(self.incoming_dir, ignore_errors=True)
        try:
            os.makedirs(self.incoming_dir, exist_ok=True)
            os.makedirs(self.lists_dir, exist_ok=True)
            manifest, fetched = self._fetch_manifest(state, session)
            version = manifest["version"]
            if version < state["version"]:
                raise FeedError(f"version {version} is older than installed version {state['version']} "
                                "(rollback refused)")
            accepted = CachedFile.from_dict(state["manifest"])
            if version == state["version"] and accepted is not None and fetched[0].file.sha256 != accepted.sha256:
                raise FeedError(f"feed version {version} was re-published with different content; keeping the "
                                "accepted manifest until a higher version appears")
        except FeedError as exc:
            return self._fail(state, str(exc))
        except OSError as exc:
            return self._fail(state, f"{exc.filename or self.state_dir}: {exc.strerror or exc}")

        # The manifest is authentic and not older: it becomes the accepted one.
        for key, result, name in (("manifest", fetched[0], MANIFEST_NAME), ("signature", fetched[1], SIGNATURE_NAME)):
            if not result.not_modified:
                target = os.path.join(self.state_dir, name)
                os.replace(result.file.path, target)
                result.file.path = target
            state[key] = result.file.to_dict()
        state["version"] = version

        results = {}
        for entry in manifest["lists"]:
            results[entry["id"]] = self._update_list(entry, state, session)
        for list_id in set(state["lists"]) - set(results):  # dropped from the feed
            state["lists"].pop(list_id)
        in_use = {os.path.basename(r.path) for r in results.values() if r.path}
        for name in os.listdir(self.lists_dir):
            if name not in in_use:
                _unlink_quiet(os.path.join(self.lists_dir, name))
        state["errors"] = {k: v.error for k, v in results.items() if v.error}
        state["error"] = None
        state["last_success"] = time.time()
        shutil.rmtree(self.incoming_dir, ignore_errors=True)
        try:
            self._save_state(state)
        except FeedError as exc:
            return FeedUpdate(version, manifest, results, f"the update was applied but not recorded: {exc}",
                              previous_version)
        return FeedUpdate(version, manifest, results, None, previous_version)

    def _fetch_manifest(self, state: dict, session: requests.Session) -> tuple[dict, tuple]:
        previous = (CachedFile.from_dict(state["manifest"]), CachedFile.from_dict(state["signature"]))
        fetched = fetch_manifest_pair(self.manifest_url, self.incoming_dir, self.limits, previous, session)
        try:
            return self._verify(fetched), fetched
        except FetchError:
            raise
        except FeedError:
            pass
        # Once more, unconditionally: a feed published between our two requests (new manifest, old
        # signature or the reverse) or a stale cache look like a bad signature the first time.
        fetched = fetch_manifest_pair(self.manifest_url, self.incoming_dir, self.limits, (None, None), session)
        return self._verify(fetched), fetched

    def _verify(self, fetched: tuple) -> dict:
        with open(fetched[0].file.path, "rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
        with open(fetched[1].file.path, "rb") as fh:
            sig = fh.read(MAX_SIGNATURE_BYTES)
        return verify_manifest(data, sig, self.public_key)

    def _update_list(self, entry: dict, state: dict, session: requests.Session) -> ListResult:
        list_id = entry["id"]
        url = urljoin(self.manifest_url, entry["url"])
        known = state["lists"].get(list_id) or {}
        good = CachedFile.from_dict(known.get("file"))
        if good is not None and not os.path.isfile(good.path):
            good = None
        if good is not None and good.size == entry["size"] and good.sha256 == entry["sha256"]:
            if known.get("url") != url:  # same content, new address: validators belong to the old one
                good.etag = good.last_modified = None
                state["lists"][list_id] = {"url": url, "file": good.to_dict()}
            return ListResult(good.path, False, None, entry)
        previous = good if known.get("url") == url else None
        try:
            result = fetch_list(url, os.path.join(self.incoming_dir, list_id + ".txt"), previous, entry,
                                self.limits, session)
            target = os.path.join(self.lists_dir, list_id + ".txt")
            os.replace(result.file.path, target)
        except FeedError as exc:
            return ListResult(good.path if good else None, False, str(exc), entry)
        except OSError as exc:
            return ListResult(good.path if good else None, False, f"{exc.strerror or exc}", entry)
        if result.not_modified:
            return ListResult(target, False, None, entry)
        result.file.path = target
        state["lists"][list_id] = {"url": url, "file": result.file.to_dict()}
        return ListResult(target, True, None, entry)

    def _fail(self, state: dict, message: str) -> FeedUpdate:
        """A feed-level failure: record it, change nothing else."""
        shutil.rmtree(self.incoming_dir, ignore_errors=True)
        state["error"] = message
        try:
            self._save_state(state)
        except FeedError:
            pass
        return self._current(state, message)
