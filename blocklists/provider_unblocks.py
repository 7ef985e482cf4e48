"""Unblock requests to the list provider: the appliance's admin asks for a feed name to be unblocked (a false
positive), from the lists page.

They live in the store (``add_provider_unblock`` and its neighbours, as rows of its settings table), so every
node of a store several nodes share (a campus) shows the same requests; the web UI adds them, the engine of the
node that holds the forwarding lease sends the queued ones with the report outbox (same back-off, and after a
restart too) and records the provider's acknowledgement; the provider counts an (appliance, request number)
once. While requests are open, the check-ins of the appliance that sent them ask for (and their answer carries)
the decisions (approved: the name is an allow entry of the next feed version; rejected: with the reviewer's
reason), which the lists page shows. Older appliances kept them in ``DATA_DIR/provider/unblocks.json``: that file
is moved into the store at the first start (:func:`migrate_file`).

What leaves the appliance: the name, the admin's note (at most 500 characters), the UI language and the time.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
from typing import Any, Optional

from resolver.base.names import site_name

NOTE_MAX = 500
STATUSES = ("queued", "new", "approved", "rejected", "deferred")   # queued: not sent to the provider yet

log = logging.getLogger("hearth.provider")


def outbox_path(data_dir: str) -> str:
    """The outbox file of older appliances (moved into the store at the first start)."""
    return os.path.join(data_dir, "provider", "unblocks.json")


def load(store: Any) -> list[dict]:
    """Every request kept, oldest first."""
    return store.list_provider_unblocks()


def request_unblock(store: Any, name: Any, note: Any = "", lang: str = "", now: Optional[float] = None) -> dict:
    """Queue a request to unblock ``name``; raises ValueError (a message for the admin) on a bad name or note,
    or when the same name is already waiting for a decision."""
    text = str(name or "").strip()
    if "//" in text:                                # a pasted address: its host
        from urllib.parse import urlsplit

        text = urlsplit(text).hostname or ""
    domain = site_name(text)
    note = str(note or "").strip()
    if len(note) > NOTE_MAX:
        raise ValueError(f"note: at most {NOTE_MAX} characters")
    return store.add_provider_unblock(domain, note, str(lang or "")[:16], now=now)


def open_requests(store: Any, by: str, since: float = 0.0) -> int:
    """Requests the appliance ``by`` sent that are not decided yet (new or deferred), or were asked since
    ``since`` (UNIX time), decided or not: while there are any, its check-ins ask for decisions, so a
    reviewer's second decision on a recent request reaches the lists page too."""
    return sum(1 for i in load(store) if i.get("sent") and i.get("by") == by
               and (i.get("status") in ("new", "deferred") or float(i.get("time") or 0) >= since > 0))


def payload(item: dict) -> dict:
    """What leaves the appliance for one request (under the number the provider knows it by)."""
    return {"id": item.get("remote", item["id"]), "domain": item["domain"], "note": item.get("note", "")[:NOTE_MAX],
            "lang": item.get("lang", ""), "time": item.get("time", 0.0)}


def migrate_file(data_dir: str, store: Any, by: str) -> int:
    """Move an older appliance's outbox file into the store (its sent requests were sent by the appliance ``by``)
    and rename it ``unblocks.json.migrated``; returns how many requests it added. Safe to run from several
    processes and again after a crash half way (a request imported already is skipped)."""
    path = outbox_path(data_dir)
    if not os.path.exists(path):
        return 0
    with open(os.path.join(os.path.dirname(path), ".unblocks.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as fh:
                items = json.load(fh)
        except FileNotFoundError:
            return 0                                 # another process moved it meanwhile
        except (OSError, ValueError) as exc:
            log.warning("provider: cannot read %s (%s): its requests are not moved into the store", path, exc)
            return 0
        n = store.import_provider_unblocks(items if isinstance(items, list) else [], by)
        os.replace(path, path + ".migrated")
    if n:
        log.info("provider: %d unblock request(s) moved from %s into the store", n, path)
    return n
