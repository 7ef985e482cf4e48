"""Organisations, users and tokens. A token is shown once and kept only as its SHA-256.

Prefixes tell the kinds apart: ``hpe_`` enrolment (an organisation's appliances register with it), ``hpu_``
a user's API token (Bearer), ``hpa_`` an appliance's own token (given at enrolment)."""
from __future__ import annotations

import hashlib
import secrets
import time
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ROLES, ApiToken, AuditEntry, EnrolmentToken, Organisation, User


class AccountError(ValueError):
    """A bad name or role, with a message for the person who typed it."""


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def audit(s: Session, actor: str, action: str, target: str = "", detail: str = "") -> None:
    s.add(AuditEntry(ts=time.time(), actor=actor, action=action, target=target[:300], detail=detail))


def _clean_name(name: str, what: str, limit: int) -> str:
    name = " ".join(str(name).split())
    if not name:
        raise AccountError(f"{what}: empty")
    if len(name) > limit:
        raise AccountError(f"{what}: at most {limit} characters")
    return name


def add_organisation(s: Session, name: str, actor: str = "cli") -> tuple[Organisation, str]:
    """Create the organisation if needed and give it a new enrolment token (returned in clear, once)."""
    name = _clean_name(name, "organisation name", 200)
    org = s.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        org = Organisation(name=name, created=time.time())
        s.add(org)
        s.flush()
        audit(s, actor, "org.add", name)
    token = new_token("hpe_")
    s.add(EnrolmentToken(organisation_id=org.id, token_hash=token_hash(token), created=time.time()))
    audit(s, actor, "org.enrolment-token", name)
    return org, token


def create_api_token(s: Session, user_name: str, role: str, actor: str = "cli") -> tuple[User, str]:
    """A new API token for ``user_name``, creating the user with ``role`` if needed.

    An existing user keeps their role unless it differs, in which case it is changed (and audited)."""
    if role not in ROLES:
        raise AccountError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    user_name = _clean_name(user_name, "user name", 100)
    user = s.scalar(select(User).where(User.name == user_name))
    if user is None:
        user = User(name=user_name, role=role, created=time.time())
        s.add(user)
        s.flush()
        audit(s, actor, "user.add", user_name, role)
    elif user.role != role:
        audit(s, actor, "user.role", user_name, f"{user.role} -> {role}")
        user.role = role
    token = new_token("hpu_")
    s.add(ApiToken(user_id=user.id, token_hash=token_hash(token), created=time.time()))
    audit(s, actor, "token.create", user_name)
    return user, token


def user_for_token(s: Session, token: str) -> Optional[User]:
    """The user a live (not revoked) API token belongs to, or None."""
    if not token.startswith("hpu_"):
        return None
    row = s.execute(select(User).join(ApiToken, ApiToken.user_id == User.id)
                    .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked.is_(None))).first()
    return row[0] if row else None


def revoke_api_tokens(s: Session, user_name: str, actor: str = "cli") -> int:
    user = s.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise AccountError(f"no user {user_name!r}")
    n = 0
    for tok in s.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked.is_(None))):
        tok.revoked = time.time()
        n += 1
    audit(s, actor, "token.revoke", user_name, f"{n} token(s)")
    return n


def organisation_for_enrolment(s: Session, token: str) -> Optional[Organisation]:
    if not token.startswith("hpe_"):
        return None
    row = s.execute(select(Organisation).join(EnrolmentToken, EnrolmentToken.organisation_id == Organisation.id)
                    .where(EnrolmentToken.token_hash == token_hash(token), EnrolmentToken.revoked.is_(None))).first()
    return row[0] if row else None


def list_users(s: Session) -> list[dict]:
    """Every user with their role and how many live API tokens they hold (never the tokens)."""
    from sqlalchemy import func

    live = dict(s.execute(select(ApiToken.user_id, func.count(ApiToken.id)).where(ApiToken.revoked.is_(None))
                          .group_by(ApiToken.user_id)).all())
    return [{"name": u.name, "role": u.role, "created": u.created, "tokens": live.get(u.id, 0)}
            for u in s.scalars(select(User).order_by(User.name))]


def set_role(s: Session, user_name: str, role: str, actor: str) -> dict:
    """Change a user's role (audited); the last admin cannot lose the role (nobody could manage users then)."""
    if role not in ROLES:
        raise AccountError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    user = s.scalar(select(User).where(User.name == user_name))
    if user is None:
        raise LookupError(f"no user {user_name!r}")
    if user.role == "admin" and role != "admin":
        admins = s.scalars(select(User.id).where(User.role == "admin")).all()
        if len(admins) <= 1:
            raise AccountError(f"{user_name} is the last admin: make another admin first")
    if user.role != role:
        audit(s, actor, "user.role", user_name, f"{user.role} -> {role}")
        user.role = role
    return {"name": user.name, "role": user.role}


def audit_entries(s: Session, actor: Optional[str] = None, action: Optional[str] = None,
                  limit: int = 1000) -> list[dict]:
    """The audit log, newest first; ``action`` matches a prefix (``report.`` gives every report decision)."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, 10000)))
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if action:
        q = q.where(AuditEntry.action.startswith(action, autoescape=True))
    return [{"ts": a.ts, "actor": a.actor, "action": a.action, "target": a.target, "detail": a.detail}
            for a in s.scalars(q)]
