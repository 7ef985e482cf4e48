"""Appliances: enrolment with an organisation's token, check-ins, the fleet view."""
from __future__ import annotations

import re
import time
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from .accounts import audit, new_token, organisation_for_enrolment, token_hash
from .models import Appliance, Organisation

APPLIANCE_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class FleetError(ValueError):
    """A request an appliance got wrong (400), or a refused enrolment (``status`` 401)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def enrol(s: Session, enrolment_token: str, appliance_id: str, hearth_version: str = "") -> tuple[Appliance, str]:
    """Register ``appliance_id`` with the organisation of ``enrolment_token``; returns its own token (once).

    Enrolling again with the same id (an appliance that lost its token) replaces the token."""
    org = organisation_for_enrolment(s, str(enrolment_token or ""))
    if org is None:
        raise FleetError("unknown or revoked enrolment token", 401)
    if not APPLIANCE_ID.match(str(appliance_id or "")):
        raise FleetError("appliance_id: expected 16-64 letters, digits, '-' or '_'")
    token = new_token("hpa_")
    now = time.time()
    app = s.get(Appliance, appliance_id)
    if app is None:
        app = Appliance(id=appliance_id, organisation_id=org.id, token_hash=token_hash(token), registered=now,
                        last_seen=now, hearth_version=_short(hearth_version, 40), last_error="")
        s.add(app)
    else:
        if app.organisation_id != org.id:
            raise FleetError("this appliance id is enrolled with another organisation", 401)
        app.token_hash, app.last_seen, app.revoked = token_hash(token), now, None
    audit(s, f"appliance:{appliance_id}", "appliance.enrol", org.name)
    return app, token


def appliance_for_token(s: Session, token: str) -> Optional[Appliance]:
    if not token.startswith("hpa_"):
        return None
    return s.scalar(select(Appliance).where(Appliance.token_hash == token_hash(token), Appliance.revoked.is_(None)))


def check_in(app: Appliance, body: dict) -> None:
    """Record what the appliance says about itself (each field optional, checked)."""
    app.last_seen = time.time()
    if "hearth_version" in body:
        app.hearth_version = _short(body["hearth_version"], 40)
    for key in ("feed_version", "entries"):
        if key in body:
            value = body[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise FleetError(f"{key}: expected a whole number or null")
            setattr(app, key, value)
    if "last_error" in body:
        app.last_error = _short(body["last_error"] or "", 1000)


def fleet(s: Session, poll_interval: float = 300.0) -> list[dict[str, Any]]:
    """Every appliance, newest contact first; ``behind``: not seen for more than two poll intervals."""
    now = time.time()
    rows = s.execute(select(Appliance, Organisation.name).join(Organisation)
                     .order_by(Appliance.last_seen.desc())).all()
    return [{"id": a.id, "organisation": org, "hearth_version": a.hearth_version, "feed_version": a.feed_version,
             "entries": a.entries, "last_seen": a.last_seen, "last_error": a.last_error or None,
             "registered": a.registered, "revoked": a.revoked is not None,
             "behind": a.last_seen is None or now - a.last_seen > 2 * poll_interval} for a, org in rows]


def fleet_csv(rows: list[dict[str, Any]]) -> str:
    """The fleet as CSV (a leading = + - @ is quoted with ' so a spreadsheet never runs it as a formula)."""
    import csv
    import io

    out = io.StringIO()
    fields = ["id", "organisation", "hearth_version", "feed_version", "entries", "last_seen", "behind", "last_error"]
    writer = csv.DictWriter(out, fields, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in row.items()})
    return out.getvalue()


def _short(value: Any, limit: int) -> str:
    return str(value)[:limit]
