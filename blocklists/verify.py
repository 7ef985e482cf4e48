"""Checking a published feed end to end (``hearth feed verify``): the manifest's signature, its schema and
every list's size and sha256, from a folder or over HTTP.

It sits above both :mod:`blocklists.feed` (the formats and the signature) and :mod:`blocklists.fetch` (the
downloads), so neither needs the other the wrong way round.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import fetch
from .feed_client import fetch_list, fetch_manifest_pair, manifest_url_for
from .feed import (MANIFEST_NAME, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, SIGNATURE_NAME, FeedError, entry_mismatch,
                   file_digest, load_public_key, verify_manifest)


def verify_feed(url_or_dir: str, public_key: Any) -> dict:
    """Check a published feed (a folder, or a manifest / folder URL): the signature, the manifest,
    and every list's size and sha256. Returns the manifest; raises FeedError naming every problem."""
    key = load_public_key(public_key)
    if os.path.isdir(url_or_dir):
        return _verify_dir(url_or_dir, key)
    manifest_url = manifest_url_for(url_or_dir)
    with tempfile.TemporaryDirectory(prefix="hearth-feed-verify-") as tmp:
        limits = fetch.FetchLimits()
        fetched = fetch_manifest_pair(manifest_url, tmp, limits)
        with open(fetched[0].file.path, "rb") as fh:
            manifest_bytes = fh.read()
        with open(fetched[1].file.path, "rb") as fh:
            sig = fh.read()
        manifest = verify_manifest(manifest_bytes, sig, key)
        problems = []
        for entry in manifest["lists"]:
            try:
                fetch_list(fetch.urljoin(manifest_url, entry["url"]), os.path.join(tmp, entry["id"]),
                                 None, entry, limits)
            except FeedError as exc:
                problems.append(f"{entry['id']}: {exc}")
    _raise_problems(problems, manifest)
    return manifest


def _verify_dir(out_dir: str, key: Ed25519PublicKey) -> dict:
    try:
        with open(os.path.join(out_dir, MANIFEST_NAME), "rb") as fh:
            manifest_bytes = fh.read(MAX_MANIFEST_BYTES + 1)
        with open(os.path.join(out_dir, SIGNATURE_NAME), "rb") as fh:
            sig = fh.read(MAX_SIGNATURE_BYTES)
    except OSError as exc:
        raise FeedError(f"{exc.filename}: {exc.strerror or exc}") from None
    manifest = verify_manifest(manifest_bytes, sig, key)
    problems = []
    for entry in manifest["lists"]:
        path = os.path.join(out_dir, *entry["url"].split("/"))
        try:
            size, digest = file_digest(path)
        except OSError as exc:
            problems.append(f"{entry['id']}: {path}: {exc.strerror or exc}")
            continue
        problem = entry_mismatch(entry, size, digest)
        if problem:
            problems.append(f"{entry['id']}: {problem}")
    _raise_problems(problems, manifest)
    return manifest


def _raise_problems(problems: list, manifest: dict) -> None:
    if problems:
        raise FeedError(f"feed version {manifest['version']}: {len(problems)} of {len(manifest['lists'])} lists "
                        f"failed: {'; '.join(problems)}")
