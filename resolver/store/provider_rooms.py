"""The list provider's link in SQL: the unblock-request outbox, the provider's decisions on forwarded reports and
the lease of the node that forwards (a mixin of :class:`resolver.store.sqlcommon.SQLStoreBase`, the same
statements on SQLite and PostgreSQL).

Everything is kept as rows of the settings table (JSON values; no schema change), so that several nodes on one
store (a campus) show the same requests and decisions and forward each one once:

* ``provider-unblock:ID``: one unblock request ``{id, domain, note, lang, time, status, sent, by, remote, reason,
  decided_at}``; ``by`` is the appliance id (at the provider) that sent it and ``remote`` the number it was sent
  under (``id``, except for requests imported from an older outbox file); ``provider-unblock-seq`` numbers them.
* ``provider-report:ID``: which appliance forwarded report ID (``by``) and the provider's decision on it.
* ``provider-lease``: ``{holder, node, until}``: the node whose appliance forwards reports and requests; another
  node takes over once the holder stopped renewing it.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Optional

from resolver.store.sqlcommon import Handle, SQLStoreBase, now_or, row

UNBLOCK, UNBLOCK_SEQ, REPORT, LEASE = "provider-unblock:", "provider-unblock-seq", "provider-report:", "provider-lease"
UNBLOCKS_KEPT = 200             # the newest requests kept
REPORTS_KEPT = 2000             # the newest forwarded reports whose forwarder and decision are kept
UNBLOCK_STATUSES = ("queued", "new", "approved", "rejected", "deferred")   # queued: not sent yet
WAITING = ("queued", "new", "deferred")
REPORT_STATUSES = ("approved", "rejected", "deferred")
NOTE_MAX = 500

_UPSERT = ("INSERT INTO settings (key, value) VALUES (?, ?)"
           " ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def _rows(db: Handle, prefix: str) -> dict[int, dict]:
    """The rows ``prefix``ID, by ID."""
    out = {}
    for k, value in db.execute("SELECT key, value FROM settings WHERE key LIKE ?", (prefix + "%",)).fetchall():
        suffix = k[len(prefix):]
        if suffix.isdigit():
            item = json.loads(value)
            if isinstance(item, dict):
                out[int(suffix)] = item
    return out


def _put(db: Handle, prefix: str, ident: int, item: dict) -> None:
    db.execute(_UPSERT, (f"{prefix}{int(ident)}", json.dumps(item, sort_keys=True, ensure_ascii=False)))


def _trim(db: Handle, prefix: str, ids: Iterable[int], keep: int) -> None:
    for old in sorted(ids)[:-keep]:
        db.execute("DELETE FROM settings WHERE key = ?", (f"{prefix}{old}",))


def _when(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _decision(d: Any) -> Optional[dict]:
    """A decision of a check-in answer, checked: {status, reason, decided_at} (+ category for reports)."""
    if not isinstance(d, dict) or isinstance(d.get("id"), bool) or not isinstance(d.get("id"), int):
        return None
    reason = d.get("reason")
    return {"status": d.get("status"), "reason": str(reason)[:1000] if reason else None,
            "decided_at": _when(d.get("decided_at")),
            "category": str(d["category"])[:32] if d.get("category") else None}


def record_forwarder(db: Handle, report_ids: Iterable[int], by: str) -> None:
    """Note (in the transaction ``db``) that the appliance ``by`` forwarded these reports."""
    for rid in report_ids:
        found = row(db, "SELECT value FROM settings WHERE key = ?", f"{REPORT}{int(rid)}")
        item = json.loads(found[0]) if found else {}
        item["by"] = str(by)
        _put(db, REPORT, rid, item)
    ids = [int(r[0][len(REPORT):]) for r in db.execute("SELECT key FROM settings WHERE key LIKE ?",
                                                       (REPORT + "%",)).fetchall() if r[0][len(REPORT):].isdigit()]
    if len(ids) > REPORTS_KEPT:
        _trim(db, REPORT, ids, REPORTS_KEPT)


class ProviderRooms(SQLStoreBase):
    """The list provider's outbox and decisions (see the module docstring)."""

    # -- unblock requests --------------------------------------------------------------------------

    def add_provider_unblock(self, domain: str, note: str = "", lang: str = "",
                             now: Optional[float] = None) -> dict:
        domain, note = str(domain), str(note or "").strip()
        if not domain:
            raise ValueError("which site? the name is empty")
        if len(note) > NOTE_MAX:
            raise ValueError(f"note: at most {NOTE_MAX} characters")
        with self._write(bump=False) as db:
            items = _rows(db, UNBLOCK)
            if any(i.get("domain") == domain and i.get("status") in WAITING for i in items.values()):
                raise ValueError(f"{domain} is already waiting for the provider's decision")
            ident = self._next_unblock_id(db, items)
            entry = {"id": ident, "domain": domain, "note": note, "lang": str(lang or "")[:16],
                     "time": now_or(now), "status": "queued", "sent": None, "by": None, "remote": ident,
                     "reason": None, "decided_at": None}
            _put(db, UNBLOCK, ident, entry)
            _trim(db, UNBLOCK, [*items, ident], UNBLOCKS_KEPT)
        return entry

    @staticmethod
    def _next_unblock_id(db: Handle, items: dict[int, dict]) -> int:
        """A number above every request's and every number a request was sent under (an appliance's numbers
        must not come back: the provider counts an (appliance, number) once)."""
        found = row(db, "SELECT value FROM settings WHERE key = ?", UNBLOCK_SEQ)
        used = [int(json.loads(found[0])) if found else 0, *items,
                *(i["remote"] for i in items.values() if isinstance(i.get("remote"), int))]
        ident = max(used) + 1
        db.execute(_UPSERT, (UNBLOCK_SEQ, json.dumps(ident)))
        return ident

    def list_provider_unblocks(self) -> list[dict]:
        with self._read() as db:
            return [item for _, item in sorted(_rows(db, UNBLOCK).items())]

    def mark_provider_unblocks_sent(self, ids: list[int], by: str, now: Optional[float] = None) -> int:
        wanted, changed = {int(i) for i in ids}, 0
        with self._write(bump=False) as db:
            for ident, item in _rows(db, UNBLOCK).items():
                if ident in wanted and not item.get("sent"):
                    item.update(sent=now_or(now), by=str(by))
                    if item.get("status") == "queued":
                        item["status"] = "new"
                    _put(db, UNBLOCK, ident, item)
                    changed += 1
        return changed

    def apply_provider_unblock_decisions(self, by: str, decisions: Any) -> int:
        if not isinstance(decisions, list) or not decisions:
            return 0
        checked = [_decision(d) for d in decisions]
        remote = {d["id"]: c for d, c in zip(decisions, checked) if c and c["status"] in UNBLOCK_STATUSES}
        changed = 0
        with self._write(bump=False) as db:
            for ident, item in _rows(db, UNBLOCK).items():
                new = remote.get(item.get("remote"))
                if new is None or not item.get("sent") or item.get("by") != by:
                    continue
                new = {k: new[k] for k in ("status", "reason", "decided_at")}
                if any(item.get(k) != v for k, v in new.items()):
                    item.update(new)
                    _put(db, UNBLOCK, ident, item)
                    changed += 1
        return changed

    def provider_unblocks_to_send(self, by: str, limit: int = 50) -> list[dict]:
        with self._write(bump=False) as db:
            items = _rows(db, UNBLOCK)
            used = {i.get("remote") for i in items.values() if i.get("sent") and i.get("by") == by}
            out = []
            for ident, item in sorted(items.items()):
                if item.get("sent"):
                    continue
                if item.get("remote") in used or not isinstance(item.get("remote"), int):
                    item["remote"] = self._next_unblock_id(db, items)   # a number ``by`` already sent
                    _put(db, UNBLOCK, ident, item)
                out.append(item)
                if len(out) >= limit:
                    break
        return out

    def import_provider_unblocks(self, items: list[dict], by: str) -> int:
        imported = 0
        with self._write(bump=False) as db:
            known = _rows(db, UNBLOCK)
            seen = {(i.get("domain"), i.get("time")) for i in known.values()}
            for old in sorted((i for i in items if isinstance(i, dict) and isinstance(i.get("id"), int)),
                              key=lambda i: i["id"]):
                when = _when(old.get("time")) or 0.0
                if not old.get("domain") or (str(old["domain"]), when) in seen:
                    continue                   # imported already
                sent = _when(old.get("sent"))
                # a sent request keeps the number the provider knows it by; a queued one gets a new number
                ident = old["id"] if sent and old["id"] not in known else self._next_unblock_id(db, known)
                status = old.get("status") if old.get("status") in UNBLOCK_STATUSES[1:] else "new"
                entry = {"id": ident, "domain": str(old["domain"]), "note": str(old.get("note") or "")[:NOTE_MAX],
                         "lang": str(old.get("lang") or "")[:16], "time": when,
                         "status": status if sent else "queued", "sent": sent, "by": str(by) if sent else None,
                         "remote": old["id"] if sent else ident,
                         "reason": str(old["reason"])[:1000] if old.get("reason") else None,
                         "decided_at": _when(old.get("decided_at"))}
                _put(db, UNBLOCK, ident, entry)
                known[ident] = entry
                seen.add((entry["domain"], when))
                imported += 1
            _trim(db, UNBLOCK, known, UNBLOCKS_KEPT)
        return imported

    # -- decisions on forwarded reports ------------------------------------------------------------

    def provider_report_decisions(self) -> dict[int, dict]:
        with self._read() as db:
            return {rid: item for rid, item in _rows(db, REPORT).items() if item.get("status")}

    def save_provider_report_decisions(self, by: str, decisions: Any) -> int:
        if not isinstance(decisions, list):
            return 0
        changed = 0
        with self._write(bump=False) as db:
            known = _rows(db, REPORT)
            for d in decisions:
                new = _decision(d)
                if new is None or new["status"] not in REPORT_STATUSES:
                    continue
                rid = d["id"]
                item = known.get(rid)
                if item is None:
                    # forwarded before the forwarder was recorded: only a report that was forwarded
                    if row(db, "SELECT 1 FROM reports WHERE id = ? AND forwarded_ts IS NOT NULL", rid) is None:
                        continue
                    item = {}
                elif item.get("by") not in (None, by):
                    continue                   # another appliance's report of that number
                if any(item.get(k) != v for k, v in new.items()):
                    item.update(new)
                    _put(db, REPORT, rid, item)
                    known[rid] = item
                    changed += 1
        return changed

    def reports_awaiting_decisions(self, by: str, since: float) -> int:
        with self._read() as db:
            forwarded = [r[0] for r in db.execute("SELECT id FROM reports WHERE forwarded_ts >= ?",
                                                  (float(since),)).fetchall()]
            known = _rows(db, REPORT) if forwarded else {}
        # decided ones too: a reviewer may decide again (approved by mistake, then rejected) within the window
        return sum(1 for rid in forwarded if known.get(rid, {}).get("by") in (None, by))

    # -- the forwarding node's lease ---------------------------------------------------------------

    def provider_lease(self, holder: str, ttl: float, node: str = "", now: Optional[float] = None) -> bool:
        now = now_or(now)
        with self._read() as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", LEASE)
        lease = json.loads(found[0]) if found else {}
        if lease.get("holder") == holder and float(lease.get("until", 0)) - now > ttl / 2:
            return True                        # held, and for long enough: no write
        if lease.get("holder") not in (None, holder) and float(lease.get("until", 0)) > now:
            return False
        with self._write(bump=False) as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", LEASE)
            lease = json.loads(found[0]) if found else {}
            if lease.get("holder") not in (None, holder) and float(lease.get("until", 0)) > now:
                return False                   # another node took it meanwhile
            since = lease.get("since") if lease.get("holder") == holder else now
            db.execute(_UPSERT, (LEASE, json.dumps({"holder": str(holder), "node": str(node), "since": since,
                                                    "until": now + float(ttl)})))
        return True

    def release_provider_lease(self, holder: str) -> None:
        with self._write(bump=False) as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", LEASE)
            if found and json.loads(found[0]).get("holder") == holder:
                db.execute("DELETE FROM settings WHERE key = ?", (LEASE,))

    def provider_lease_holder(self, now: Optional[float] = None) -> Optional[dict]:
        with self._read() as db:
            found = row(db, "SELECT value FROM settings WHERE key = ?", LEASE)
        lease = json.loads(found[0]) if found else None
        return lease if lease and float(lease.get("until", 0)) > now_or(now) else None
