"""Reports from the fleet, grouped by domain, and the reviewers' decisions on them."""
from __future__ import annotations

import re
import time
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resolver.base.names import normalise_name

from .accounts import audit
from .models import STATUSES, Appliance, CuratedEntry, ReportGroup, Report

CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NOTE_MAX = 500
BATCH_MAX = 100
ACTIONS = ("approve", "reject", "defer")


class ReportError(ValueError):
    """A bad report or decision (400), with what is wrong."""


def check_domain(text: Any, where: str = "domain") -> str:
    if not isinstance(text, str):
        raise ReportError(f"{where}: expected a host name, got {type(text).__name__}")
    try:
        name = normalise_name(text)
    except ValueError as exc:
        raise ReportError(f"{where}: {exc}") from None
    if "." not in name:
        raise ReportError(f"{where}: {text[:80]!r} is not a site name (no dot)")
    return name


def check_category(text: Any, where: str = "category") -> str:
    if not isinstance(text, str) or not CATEGORY.match(text):
        raise ReportError(f"{where}: expected a short lower-case word such as gambling, adult, scam")
    return text


def receive(s: Session, app: Appliance, items: Any) -> dict:
    """Store a batch of reports from ``app``; a (appliance, local id) already stored is acknowledged again but
    not counted twice. Returns {accepted: [local ids], new: n}."""
    if not isinstance(items, list) or not items:
        raise ReportError("reports: expected a non-empty list")
    if len(items) > BATCH_MAX:
        raise ReportError(f"reports: at most {BATCH_MAX} per request")
    parsed = []
    for i, item in enumerate(items):
        where = f"reports[{i}]"
        if not isinstance(item, dict):
            raise ReportError(f"{where}: expected an object")
        local_id = item.get("id")
        if isinstance(local_id, bool) or not isinstance(local_id, int) or local_id < 0:
            raise ReportError(f"{where}.id: expected the appliance's report number")
        note = item.get("note", "") or ""
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise ReportError(f"{where}.note: text of at most {NOTE_MAX} characters")
        category = item.get("category") or "other"
        check_category(category, f"{where}.category")
        ts = item.get("time")
        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
            raise ReportError(f"{where}.time: expected UNIX seconds")
        lang = item.get("lang", "") or ""
        if not isinstance(lang, str) or not re.match(r"^[A-Za-z-]{0,16}$", lang):
            raise ReportError(f"{where}.lang: expected a language code such as vi or en")
        parsed.append((local_id, check_domain(item.get("domain"), f"{where}.domain"), category, note, lang,
                       float(ts)))
    now, new = time.time(), 0
    for local_id, domain, category, note, lang, ts in parsed:
        if s.scalar(select(Report.id).where(Report.appliance_id == app.id, Report.local_id == local_id)):
            continue
        group = s.scalar(select(ReportGroup).where(ReportGroup.domain == domain))
        if group is None:
            group = ReportGroup(domain=domain, status="new", first_seen=now, last_seen=now, category="", reason="",
                                decided_by="")
            s.add(group)
            s.flush()
        group.last_seen = now
        if group.status == "deferred":
            group.status = "new"     # a deferred name comes back to the queue when reported again
        s.add(Report(group_id=group.id, appliance_id=app.id, local_id=local_id, category=category, note=note,
                     lang=lang, ts=ts, received=now))
        new += 1
    return {"accepted": [p[0] for p in parsed], "new": new}


def recent_count(s: Session, appliance_id: str, since: float) -> int:
    return s.scalar(select(func.count(Report.id)).where(Report.appliance_id == appliance_id,
                                                         Report.received >= since)) or 0


def list_groups(s: Session, status: Optional[str] = None, limit: int = 500) -> list[dict]:
    """Report groups (newest activity first) with counts, suggested categories, notes, and listing status."""
    if status is not None and status not in STATUSES:
        raise ReportError(f"status: expected one of {', '.join(STATUSES)}")
    q = select(ReportGroup).order_by(ReportGroup.last_seen.desc()).limit(max(1, min(limit, 5000)))
    if status is not None:
        q = q.where(ReportGroup.status == status)
    out = []
    for g in s.scalars(q):
        out.append(group_view(s, g))
    return out


def group_view(s: Session, g: ReportGroup) -> dict:
    rows = s.execute(select(Report.category, Report.note, Report.appliance_id, Appliance.organisation_id)
                     .join(Appliance, Appliance.id == Report.appliance_id).where(Report.group_id == g.id)).all()
    suggested: dict[str, int] = {}
    for r in rows:
        suggested[r.category] = suggested.get(r.category, 0) + 1
    listed = sorted({c for (c,) in s.execute(select(CuratedEntry.category).where(CuratedEntry.domain == g.domain))})
    top = max(suggested, key=suggested.get) if suggested else ""
    return {"id": g.id, "domain": g.domain, "status": g.status, "category": g.category or top,
            "suggested": suggested, "reports": len(rows), "appliances": len({r.appliance_id for r in rows}),
            "organisations": len({r.organisation_id for r in rows}), "first_seen": g.first_seen,
            "last_seen": g.last_seen, "notes": [r.note for r in rows if r.note][:50], "listed_in": listed,
            "reason": g.reason or None, "decided_by": g.decided_by or None, "decided_at": g.decided_at}


def decide(s: Session, group_id: int, body: Any, actor: str) -> dict:
    """approve (into ``category``: the name goes into the curated list ``cat-CATEGORY`` at the next publish),
    reject (``reason`` required: the appliance's admin sees it) or defer."""
    if not isinstance(body, dict):
        raise ReportError("expected a JSON object {action, category, reason}")
    action = body.get("action")
    if action not in ACTIONS:
        raise ReportError(f"action: expected one of {', '.join(ACTIONS)}")
    g = s.get(ReportGroup, group_id)
    if g is None:
        raise LookupError(f"no report {group_id}")
    reason = body.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > 1000:
        raise ReportError("reason: text of at most 1000 characters")
    now = time.time()
    if action == "approve":
        category = check_category(body.get("category"))
        if not s.scalar(select(CuratedEntry.id).where(CuratedEntry.list_id == f"cat-{category}",
                                                      CuratedEntry.domain == g.domain)):
            s.add(CuratedEntry(list_id=f"cat-{category}", domain=g.domain, category=category, added=now))
        g.status, g.category = "approved", category
    elif action == "reject":
        if not reason.strip():
            raise ReportError("reason: say why the report is rejected (the appliance's admin sees it)")
        g.status = "rejected"
    else:
        g.status = "deferred"
    g.reason, g.decided_by, g.decided_at = reason, actor, now
    audit(s, actor, f"report.{action}", g.domain, f"category={g.category} reason={reason}"[:1000])
    return group_view(s, g)
