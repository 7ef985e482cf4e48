"""Publishing: the curated lists (approved reports, authority orders) become the next signed feed version.

The feed is written by :func:`blocklists.feed.build_feed` (the same builder as ``hearth feed build``): the
lists are written to a temporary source folder with a feed.yaml, then built into ``data_dir/feed``, where
list files are content-addressed, the signature is written before the manifest and the manifest last, each
by atomic rename. A publish that fails or is killed half way leaves the previous manifest served intact."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Optional

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blocklists import feed as feedlib

from . import mirrors as mirrorlib
from .accounts import audit
from .models import AuthorityOrder, CuratedEntry, FeedVersion
from .reports import ALLOW_LIST

_LOCK = threading.Lock()


class PublishError(Exception):
    """Why nothing was published (the previous version stays served)."""


def key_dir(data_dir: str) -> str:
    return os.path.abspath(os.path.join(data_dir, "keys"))


def feed_dir(data_dir: str) -> str:
    return os.path.abspath(os.path.join(data_dir, "feed"))


def ensure_key(data_dir: str) -> str:
    """The feed's public key (base64), making the key pair at first start (private key mode 0600)."""
    kd = key_dir(data_dir)
    if not os.path.exists(os.path.join(kd, feedlib.PRIVATE_KEY_NAME)):
        feedlib.keygen(kd)
    return public_key(data_dir)


def public_key(data_dir: str) -> str:
    with open(os.path.join(key_dir(data_dir), feedlib.PUBLIC_KEY_NAME), encoding="ascii") as fh:
        return fh.read().strip()


def published_version(data_dir: str) -> int:
    try:
        with open(os.path.join(feed_dir(data_dir), feedlib.MANIFEST_NAME), "rb") as fh:
            return int(json.loads(fh.read())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def publish(s: Session, data_dir: str, title: str, actor: str, config: Optional[Any] = None) -> dict:
    """Build and sign the next version from every curated entry and the mirrored lists of ``config``
    (a ProviderConfig; downloaded now, a failed one publishes its last good copy); returns
    {version, lists, entries, mirrors}."""
    with _LOCK:
        copies, mirror_status = [], []
        if config is not None and config.mirrors:
            copies = mirrorlib.refresh(data_dir, config.mirrors, config.mirror_deadline, config.mirror_max_size)
            mirror_status = mirrorlib.status(data_dir, config.mirrors)
        rows = s.execute(select(CuratedEntry.list_id, CuratedEntry.category, CuratedEntry.domain,
                                CuratedEntry.order_id).order_by(CuratedEntry.list_id, CuratedEntry.domain)).all()
        if not rows and not copies:
            raise PublishError("nothing to publish yet: approve a report or enter an order first")
        ordered = {domain for list_id, _c, domain, order_id in rows if order_id is not None}
        lists: dict[str, dict] = {}
        for list_id, category, domain, order_id in rows:
            if list_id == ALLOW_LIST and domain in ordered:
                continue             # an authority's order beats an unblock (allows would beat mandatory lists)
            entry = lists.setdefault(list_id, {"category": category, "order_id": order_id, "domains": []})
            entry["domains"].append(domain)
        orders = {o.id: o for o in s.scalars(select(AuthorityOrder))}
        last = max(s.scalar(select(func.max(FeedVersion.version))) or 0, published_version(data_dir))
        version = last + 1
        os.makedirs(data_dir, exist_ok=True)
        src = tempfile.mkdtemp(prefix=".publish-", dir=data_dir)
        try:
            spec = []
            for list_id, entry in sorted(lists.items()):
                allow = list_id == ALLOW_LIST
                lines = [f"@@||{d}^" for d in entry["domains"]] if allow else entry["domains"]
                with open(os.path.join(src, list_id + ".txt"), "w", encoding="ascii") as fh:
                    fh.write("\n".join(lines) + "\n")
                order: Optional[AuthorityOrder] = orders.get(entry["order_id"])
                if order is not None:
                    item_title = f"{order.authority}, order {order.reference}"
                elif allow:
                    item_title = "Unblocked after review (false positives)"
                else:
                    item_title = f"Reviewed reports: {entry['category']}"
                item = {"id": list_id, "file": list_id + ".txt", "title": item_title, "category": entry["category"],
                        # the name and its subdomains; unblocked names as adblock exceptions (@@||name^)
                        "format": "adblock" if allow else "wildcard", "mandatory": order is not None}
                if order is not None:
                    item.update(authority=order.authority, reference=order.reference)
                spec.append(item)
            for copy in copies:          # mirrored upstream lists, as downloaded (their licence headers kept)
                list_id = f"mirror-{copy.config.id}"
                shutil.copyfile(copy.path, os.path.join(src, list_id + ".txt"))
                spec.append({"id": list_id, "file": list_id + ".txt", "title": f"Mirror of {copy.config.id}",
                             "category": copy.config.category, "format": copy.format,
                             "mandatory": copy.config.mandatory})
            with open(os.path.join(src, feedlib.FEED_YAML), "w", encoding="utf-8") as fh:
                yaml.safe_dump({"title": title, "lists": spec}, fh, allow_unicode=True, sort_keys=False)
            try:
                manifest = feedlib.build_feed(src, os.path.join(key_dir(data_dir), feedlib.PRIVATE_KEY_NAME),
                                              feed_dir(data_dir), version=version)
            except feedlib.FeedError as exc:
                raise PublishError(str(exc)) from None
        finally:
            shutil.rmtree(src, ignore_errors=True)
        now = time.time()
        total = sum(len(e["domains"]) for e in lists.values()) + sum(c.entries for c in copies)
        count = len(lists) + len(copies)
        s.add(FeedVersion(version=version, published_at=now, published_by=actor, lists=count, entries=total))
        for order in orders.values():
            if order.published_version is None and f"order-{order.id}" in lists:
                order.published_version, order.published_at = version, now
        failed = [m["id"] for m in mirror_status if m["error"]]
        audit(s, actor, "feed.publish", f"version {version}",
              f"{count} lists, {total} names" + (f"; mirrors failing: {', '.join(failed)}" if failed else ""))
        return {"version": manifest["version"], "lists": count, "entries": total, "mirrors": mirror_status}
