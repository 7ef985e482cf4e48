"""Authority orders: names an authority ordered blocked go into a mandatory list (``order-ID``) of the feed,
enforced in every profile of every appliance, which names the authority and the reference when it blocks."""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import audit
from .models import AuthorityOrder, CuratedEntry
from .reports import ReportError, check_category, check_domain

MAX_DOMAINS = 100_000


def _text(body: dict, key: str, limit: int, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise ReportError(f"{key}: expected text of 1 to {limit} characters" if required
                          else f"{key}: expected text of at most {limit} characters")
    return " ".join(value.split())


def add_order(s: Session, body: Any, actor: str) -> AuthorityOrder:
    if not isinstance(body, dict):
        raise ReportError("expected a JSON object {authority, reference, deadline, category, domains}")
    authority, reference = _text(body, "authority", 200), _text(body, "reference", 100)
    deadline = _text(body, "deadline", 40, required=False)
    category = check_category(body.get("category"))
    domains = body.get("domains")
    if isinstance(domains, str):   # pasted text or an uploaded file: one name a line (CSV: the first column)
        domains = [line.split(",")[0] for line in domains.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]
    if not isinstance(domains, list) or not domains:
        raise ReportError("domains: expected a non-empty list of host names")
    if len(domains) > MAX_DOMAINS:
        raise ReportError(f"domains: at most {MAX_DOMAINS} per order")
    names = sorted({check_domain(d, f"domains[{i}]") for i, d in enumerate(domains)})
    now = time.time()
    order = AuthorityOrder(authority=authority, reference=reference, deadline=deadline, category=category,
                           created=now, created_by=actor)
    s.add(order)
    s.flush()
    s.add_all([CuratedEntry(list_id=f"order-{order.id}", domain=n, category=category, order_id=order.id, added=now)
               for n in names])
    audit(s, actor, "order.add", f"{authority} {reference}", f"{len(names)} names, category {category}")
    return order


def list_orders(s: Session) -> list[dict]:
    out = []
    for o in s.scalars(select(AuthorityOrder).order_by(AuthorityOrder.created.desc())):
        count = len(s.scalars(select(CuratedEntry.id).where(CuratedEntry.order_id == o.id)).all())
        out.append({"id": o.id, "authority": o.authority, "reference": o.reference, "deadline": o.deadline or None,
                    "category": o.category, "domains": count, "created": o.created, "created_by": o.created_by,
                    "published_version": o.published_version,
                    "time_to_publish": (o.published_at - o.created) if o.published_at else None})
    return out
