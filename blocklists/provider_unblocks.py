"""Unblock requests to the list provider: the appliance's admin asks for a feed name to be unblocked (a false
positive), from the lists page.

They live in an outbox file, ``DATA_DIR/provider/unblocks.json`` (beside the enrolment state; written by
atomic rename under a file lock, since the web UI adds requests and the engine sends them and records the
provider's decisions). The engine sends the queued ones with the report outbox (same back-off, and after a
restart too); the provider counts an (appliance, request number) once. While requests are open, each
check-in asks for (and its answer carries) the decisions on this appliance's requests (approved: the name
is an allow entry of the next feed version; rejected: with the reviewer's reason), which the lists page
shows.

What leaves the appliance: the name, the admin's note (at most 500 characters), the UI language and the time.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from resolver.base.names import site_name

from .feed import atomic_write

NOTE_MAX = 500
KEEP = 200                      # the newest requests kept in the file
STATUSES = ("queued", "new", "approved", "rejected", "deferred")   # queued: not sent to the provider yet


def outbox_path(data_dir: str) -> str:
    return os.path.join(data_dir, "provider", "unblocks.json")


@contextmanager
def _locked(data_dir: str) -> Iterator[list]:
    """The requests, for reading and changing under the lock; saved when the block ends without error."""
    folder = os.path.dirname(outbox_path(data_dir))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".unblocks.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        items = load(data_dir)
        before = json.dumps(items, sort_keys=True)
        yield items
        if json.dumps(items, sort_keys=True) != before:
            data = json.dumps(items[-KEEP:], indent=1, sort_keys=True, ensure_ascii=False) + "\n"
            atomic_write(outbox_path(data_dir), data.encode("utf-8"), mode=0o600)


def load(data_dir: str) -> list[dict]:
    """Every request kept, oldest first (an unreadable file reads as none)."""
    try:
        with open(outbox_path(data_dir), encoding="utf-8") as fh:
            items = json.load(fh)
    except (OSError, ValueError):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), int)] if isinstance(items, list) \
        else []


def request_unblock(data_dir: str, name: Any, note: Any = "", lang: str = "", now: Optional[float] = None) -> dict:
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
    with _locked(data_dir) as items:
        for item in items:
            if item.get("domain") == domain and item.get("status") in ("queued", "new", "deferred"):
                raise ValueError(f"{domain} is already waiting for the provider's decision")
        entry = {"id": max([i["id"] for i in items] + [0]) + 1, "domain": domain, "note": note,
                 "lang": str(lang or "")[:16], "time": float(now if now is not None else time.time()),
                 "status": "queued", "sent": None, "reason": None, "decided_at": None}
        items.append(entry)
    return entry


def to_send(data_dir: str, limit: int = 50) -> list[dict]:
    """The outbox: requests the provider has not acknowledged yet, oldest first."""
    return [i for i in load(data_dir) if not i.get("sent")][:limit]


def open_requests(data_dir: str) -> int:
    """Requests sent and not decided yet (new or deferred): while there are any, check-ins ask for decisions."""
    return sum(1 for i in load(data_dir) if i.get("sent") and i.get("status") in ("new", "deferred"))


def payload(item: dict) -> dict:
    return {"id": item["id"], "domain": item["domain"], "note": item.get("note", "")[:NOTE_MAX],
            "lang": item.get("lang", ""), "time": item.get("time", 0.0)}


def mark_sent(data_dir: str, ids: list[int], now: Optional[float] = None) -> None:
    wanted = set(ids)
    with _locked(data_dir) as items:
        for item in items:
            if item["id"] in wanted and not item.get("sent"):
                item["sent"] = now if now is not None else time.time()
                if item.get("status") == "queued":
                    item["status"] = "new"


def apply_decisions(data_dir: str, decisions: Any) -> int:
    """Record the provider's answers (``[{id, status, reason, decided_at}]``); returns how many changed."""
    if not isinstance(decisions, list) or not decisions:
        return 0
    by_id = {d["id"]: d for d in decisions if isinstance(d, dict) and isinstance(d.get("id"), int)
             and d.get("status") in STATUSES}
    changed = 0
    with _locked(data_dir) as items:
        for item in items:
            d = by_id.get(item["id"])
            if d is None or not item.get("sent"):
                continue
            reason = d.get("reason")
            new = {"status": d["status"], "reason": str(reason)[:1000] if reason else None,
                   "decided_at": d.get("decided_at") if isinstance(d.get("decided_at"), (int, float)) else None}
            if any(item.get(k) != v for k, v in new.items()):
                item.update(new)
                changed += 1
    return changed
