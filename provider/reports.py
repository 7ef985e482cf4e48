"""Reports from the fleet, grouped by domain, and the reviewers' decisions on them."""
from __future__ import annotations

import re
import time
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resolver.base.names import site_name

from .accounts import audit
from .models import KINDS, STATUSES, Appliance, CuratedEntry, ReportGroup, Report
from .psl import registrable_domain

CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NOTE_MAX = 500
BATCH_MAX = 100
ACTIONS = ("approve", "reject", "defer")
ALLOW_LIST = "allow"          # the curated list of approved unblock requests (published as @@ exceptions)


class ReportError(ValueError):
    """A bad report or decision (400), with what is wrong."""


def check_domain(text: Any, where: str = "domain") -> str:
    if not isinstance(text, str):
        raise ReportError(f"{where}: expected a host name, got {type(text).__name__}")
    try:
        return site_name(text, where)
    except ValueError as exc:
        raise ReportError(str(exc)) from None


def check_category(text: Any, where: str = "category") -> str:
    if not isinstance(text, str) or not CATEGORY.match(text):
        raise ReportError(f"{where}: expected a short lower-case word such as gambling, adult, scam")
    return text


def receive(s: Session, app: Appliance, items: Any, kind: str = "report") -> dict:
    """Store a batch of reports (``kind`` report) or unblock requests (``kind`` unblock) from ``app``; an
    (appliance, kind, local id) already stored is acknowledged again but not counted twice.
    Returns {accepted: [local ids], new: n}."""
    field = "reports" if kind == "report" else "requests"
    if not isinstance(items, list) or not items:
        raise ReportError(f"{field}: expected a non-empty list")
    if len(items) > BATCH_MAX:
        raise ReportError(f"{field}: at most {BATCH_MAX} per request")
    parsed = []
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise ReportError(f"{where}: expected an object")
        local_id = item.get("id")
        if isinstance(local_id, bool) or not isinstance(local_id, int) or local_id < 0:
            raise ReportError(f"{where}.id: expected the appliance's report number")
        note = item.get("note", "") or ""
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise ReportError(f"{where}.note: text of at most {NOTE_MAX} characters")
        category = (item.get("category") or "other") if kind == "report" else ""
        if kind == "report":
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
        if s.scalar(select(Report.id).where(Report.appliance_id == app.id, Report.kind == kind,
                                            Report.local_id == local_id)):
            continue
        group = s.scalar(select(ReportGroup).where(ReportGroup.kind == kind, ReportGroup.domain == domain))
        if group is None:
            group = ReportGroup(kind=kind, domain=domain, registrable=registrable_domain(domain), status="new",
                                first_seen=now, last_seen=now, category="", reason="", decided_by="")
            s.add(group)
            s.flush()
        group.last_seen = now
        if group.status == "deferred":
            group.status = "new"     # a deferred name comes back to the queue when reported again
        s.add(Report(group_id=group.id, appliance_id=app.id, kind=kind, local_id=local_id, category=category, note=note,
                     lang=lang, ts=ts, received=now))
        new += 1
    return {"accepted": [p[0] for p in parsed], "new": new}


def recent_count(s: Session, appliance_id: str, since: float) -> int:
    return s.scalar(select(func.count(Report.id)).where(Report.appliance_id == appliance_id,
                                                         Report.received >= since)) or 0


def list_groups(s: Session, status: Optional[str] = None, limit: int = 500, *, kind: Optional[str] = None,
                registrable: Optional[str] = None) -> list[dict]:
    """Report groups (newest activity first) with counts, suggested categories, notes, and listing status;
    optionally only one kind (report, unblock) or the names under one registrable domain."""
    if status is not None and status not in STATUSES:
        raise ReportError(f"status: expected one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise ReportError(f"kind: expected one of {', '.join(KINDS)}")
    q = select(ReportGroup).order_by(ReportGroup.last_seen.desc()).limit(max(1, min(limit, 5000)))
    if status is not None:
        q = q.where(ReportGroup.status == status)
    if kind is not None:
        q = q.where(ReportGroup.kind == kind)
    if registrable is not None:
        q = q.where(ReportGroup.registrable == check_domain(registrable, "registrable"))
    groups = list(s.scalars(q))
    siblings = _sibling_counts(s, {g.registrable for g in groups})
    return [group_view(s, g, siblings) for g in groups]


def _sibling_counts(s: Session, registrables: set) -> dict:
    """How many names (reported or asked to unblock, any status) share each registrable domain."""
    if not registrables:
        return {}
    rows = s.execute(select(ReportGroup.registrable, func.count(func.distinct(ReportGroup.domain)))
                     .where(ReportGroup.registrable.in_(sorted(registrables))).group_by(ReportGroup.registrable))
    return dict(rows.all())


def by_registrable(s: Session, status: Optional[str] = None, kind: str = "report") -> list[dict]:
    """The groups of one kind gathered under their registrable domain (``a.bad.example`` and ``b.bad.example``
    under ``bad.example``), most reported first: names, reports, appliances, organisations, first/last seen."""
    if status is not None and status not in STATUSES:
        raise ReportError(f"status: expected one of {', '.join(STATUSES)}")
    if kind not in KINDS:
        raise ReportError(f"kind: expected one of {', '.join(KINDS)}")
    q = (select(ReportGroup.registrable, ReportGroup.id, ReportGroup.domain, ReportGroup.status,
                ReportGroup.first_seen, ReportGroup.last_seen, Report.appliance_id, Appliance.organisation_id)
         .join(Report, Report.group_id == ReportGroup.id).join(Appliance, Appliance.id == Report.appliance_id)
         .where(ReportGroup.kind == kind))
    if status is not None:
        q = q.where(ReportGroup.status == status)
    out: dict[str, dict] = {}
    for row in s.execute(q):
        e = out.setdefault(row.registrable, {"registrable": row.registrable, "domains": {}, "reports": 0,
                                             "appliances": set(), "organisations": set(),
                                             "first_seen": row.first_seen, "last_seen": row.last_seen})
        e["domains"][row.domain] = {"id": row.id, "domain": row.domain, "status": row.status}
        e["reports"] += 1
        e["appliances"].add(row.appliance_id)
        e["organisations"].add(row.organisation_id)
        e["first_seen"], e["last_seen"] = min(e["first_seen"], row.first_seen), max(e["last_seen"], row.last_seen)
    result = [{**e, "domains": sorted(e["domains"].values(), key=lambda d: d["domain"]),
               "appliances": len(e["appliances"]), "organisations": len(e["organisations"])} for e in out.values()]
    return sorted(result, key=lambda e: (-e["reports"], e["registrable"]))


def group_view(s: Session, g: ReportGroup, siblings: Optional[dict] = None) -> dict:
    if siblings is None:
        siblings = _sibling_counts(s, {g.registrable})
    rows = s.execute(select(Report.category, Report.note, Report.appliance_id, Appliance.organisation_id)
                     .join(Appliance, Appliance.id == Report.appliance_id).where(Report.group_id == g.id)).all()
    suggested: dict[str, int] = {}
    for r in rows:
        suggested[r.category] = suggested.get(r.category, 0) + 1
    listed = sorted({c for (c,) in s.execute(select(CuratedEntry.category).where(CuratedEntry.domain == g.domain))})
    top = max(suggested, key=suggested.get) if suggested else ""
    return {"id": g.id, "kind": g.kind, "domain": g.domain, "registrable": g.registrable,
            "same_registrable": siblings.get(g.registrable, 1), "status": g.status, "category": g.category or top,
            "suggested": suggested, "reports": len(rows), "appliances": len({r.appliance_id for r in rows}),
            "organisations": len({r.organisation_id for r in rows}), "first_seen": g.first_seen,
            "last_seen": g.last_seen, "notes": [r.note for r in rows if r.note][:50], "listed_in": listed,
            "reason": g.reason or None, "decided_by": g.decided_by or None, "decided_at": g.decided_at}


def decide(s: Session, group_id: int, body: Any, actor: str) -> dict:
    """A report: approve (into ``category``: the name goes into the curated list ``cat-CATEGORY`` at the next
    publish), reject (``reason`` required: the appliance's admin sees it) or defer.

    An unblock request: approve (the name leaves the curated ``cat-*`` lists and goes into the ``allow`` list,
    published as exceptions that beat every non-mandatory list, mirrored ones too; a name an authority ordered
    blocked cannot be unblocked this way), reject (with a reason) or defer."""
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
    if action == "approve" and g.kind == "unblock":
        ordered = s.scalar(select(CuratedEntry.list_id).where(CuratedEntry.domain == g.domain,
                                                               CuratedEntry.order_id.is_not(None)))
        if ordered:
            raise ReportError(f"{g.domain} is blocked by an authority's order ({ordered}): it cannot be unblocked "
                              "by review")
        for entry in s.scalars(select(CuratedEntry).where(CuratedEntry.domain == g.domain,
                                                          CuratedEntry.list_id.like("cat-%"))):
            s.delete(entry)
        if not s.scalar(select(CuratedEntry.id).where(CuratedEntry.list_id == ALLOW_LIST,
                                                      CuratedEntry.domain == g.domain)):
            s.add(CuratedEntry(list_id=ALLOW_LIST, domain=g.domain, category=ALLOW_LIST, added=now))
        g.status, g.category = "approved", ALLOW_LIST
    elif action == "approve":
        category = check_category(body.get("category"))
        if category == ALLOW_LIST:
            raise ReportError(f"category: {ALLOW_LIST!r} is the list of unblocked names, choose a blocking one")
        if not s.scalar(select(CuratedEntry.id).where(CuratedEntry.list_id == f"cat-{category}",
                                                      CuratedEntry.domain == g.domain)):
            s.add(CuratedEntry(list_id=f"cat-{category}", domain=g.domain, category=category, added=now))
        for entry in s.scalars(select(CuratedEntry).where(CuratedEntry.list_id == ALLOW_LIST,
                                                          CuratedEntry.domain == g.domain)):
            s.delete(entry)          # blocked again after an earlier unblock
        g.status, g.category = "approved", category
    elif action == "reject":
        if not reason.strip():
            raise ReportError("reason: say why it is rejected (the appliance's admin sees it)")
        g.status = "rejected"
    else:
        g.status = "deferred"
    g.reason, g.decided_by, g.decided_at = reason, actor, now
    prefix = "report" if g.kind == "report" else "unblock"
    audit(s, actor, f"{prefix}.{action}", g.domain, f"category={g.category} reason={reason}"[:1000])
    return group_view(s, g)


def decisions_for(s: Session, appliance_id: str, limit: int = 200, kind: str = "unblock") -> list[dict]:
    """What became of this appliance's unblock requests (``kind`` unblock, every status) or of its decided
    reports (``kind`` report), newest first: its own number, the name, the status, the category of an approved
    report and the reviewer's reason of a rejected or deferred one (never who else asked)."""
    q = (select(Report.local_id, ReportGroup.domain, ReportGroup.status, ReportGroup.category,
                ReportGroup.reason, ReportGroup.decided_at)
         .join(ReportGroup, ReportGroup.id == Report.group_id)
         .where(Report.appliance_id == appliance_id, Report.kind == kind))
    if kind == "report":
        q = q.where(ReportGroup.status != "new")
    rows = s.execute(q.order_by(Report.id.desc()).limit(limit)).all()
    out = []
    for r in rows:
        d = {"id": r.local_id, "domain": r.domain, "status": r.status,
             "reason": (r.reason or None) if r.status in ("rejected", "deferred") else None,
             "decided_at": r.decided_at}
        if kind == "report":
            d["category"] = r.category if r.status == "approved" else None
        out.append(d)
    return out


def decide_many(s: Session, ids: Any, body: Any, actor: str) -> dict:
    """The same decision on several groups (the queue's bulk actions), each on its own: a refused one (an ordered
    name, a missing reason) is refused before it changes anything and leaves the others decided.
    Returns {decided, errors}."""
    if not isinstance(ids, list) or not ids or len(ids) > 500:
        raise ReportError("ids: expected a list of 1 to 500 report ids")
    if any(isinstance(i, bool) or not isinstance(i, int) for i in ids):
        raise ReportError("ids: expected whole numbers")
    if not isinstance(body, dict) or body.get("action") not in ACTIONS:
        raise ReportError(f"action: expected one of {', '.join(ACTIONS)}")
    decided, errors = [], []
    for group_id in dict.fromkeys(ids):
        try:
            decided.append(decide(s, group_id, body, actor))
        except ReportError as exc:
            errors.append({"id": group_id, "error": str(exc)})
        except LookupError as exc:
            errors.append({"id": group_id, "error": str(exc.args[0] if exc.args else exc)})
    return {"decided": decided, "errors": errors}


def group_detail(s: Session, g: ReportGroup) -> dict:
    """One group with every report (time, language, suggested category, note; never which appliance), the
    other names under its registrable domain and its history in the audit log."""
    from .models import AuditEntry

    view = group_view(s, g)
    view["items"] = [{"time": r.ts, "received": r.received, "lang": r.lang, "category": r.category,
                      "note": r.note, "organisation_id": r.organisation_id}
                     for r in s.execute(select(Report.ts, Report.received, Report.lang, Report.category, Report.note,
                                               Appliance.organisation_id)
                                        .join(Appliance, Appliance.id == Report.appliance_id)
                                        .where(Report.group_id == g.id).order_by(Report.received.desc()))]
    view["siblings"] = [{"id": o.id, "kind": o.kind, "domain": o.domain, "status": o.status}
                        for o in s.scalars(select(ReportGroup).where(ReportGroup.registrable == g.registrable,
                                                                     ReportGroup.id != g.id)
                                           .order_by(ReportGroup.domain).limit(200))]
    prefix = "report." if g.kind == "report" else "unblock."
    view["history"] = [{"ts": a.ts, "actor": a.actor, "action": a.action, "detail": a.detail}
                       for a in s.scalars(select(AuditEntry).where(AuditEntry.target == g.domain,
                                                                   AuditEntry.action.like(prefix + "%"))
                                          .order_by(AuditEntry.id.desc()).limit(100))]
    return view
