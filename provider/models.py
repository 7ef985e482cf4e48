"""The provider's tables (SQLAlchemy 2 declarative models). Times are UNIX seconds (float) in every backend.

Schema changes are Alembic migrations in provider/migrations/versions (run at start by provider.db)."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .config import ROLES  # noqa: F401 - the roles, re-exported beside the tables

STATUSES = ("new", "approved", "rejected", "deferred")
KINDS = ("report", "unblock")   # a harmful site to block / a false positive to unblock


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[float] = mapped_column(Float)


class EnrolmentToken(Base):
    """What an appliance of an organisation presents once, to register (only its hash is kept)."""
    __tablename__ = "enrolment_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[float] = mapped_column(Float)
    revoked: Mapped[Optional[float]] = mapped_column(Float, nullable=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    """A user's Bearer token for the API (only its hash is kept)."""
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[float] = mapped_column(Float)
    revoked: Mapped[Optional[float]] = mapped_column(Float, nullable=True)


class Appliance(Base):
    """An enrolled appliance: its own random id (no hardware id), its organisation, what it last said."""
    __tablename__ = "appliances"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    registered: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    hearth_version: Mapped[str] = mapped_column(String(40), default="")
    feed_version: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    entries: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    revoked: Mapped[Optional[float]] = mapped_column(Float, nullable=True)


class ReportGroup(Base):
    """All reports (or all unblock requests) of one domain: the unit a reviewer decides on."""
    __tablename__ = "report_groups"
    __table_args__ = (UniqueConstraint("kind", "domain", name="uq_report_groups_kind_domain"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="report", server_default="report")
    domain: Mapped[str] = mapped_column(String(253))
    registrable: Mapped[str] = mapped_column(String(253), default="", server_default="", index=True)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)
    category: Mapped[str] = mapped_column(String(32), default="")      # the decided one (approve)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    decided_at: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


class Report(Base):
    """One forwarded report or unblock request; (appliance, kind, local_id) is unique, so one retried by the
    outbox counts once."""
    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("appliance_id", "kind", "local_id", name="uq_reports_appliance_kind_local"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="report", server_default="report")
    group_id: Mapped[int] = mapped_column(ForeignKey("report_groups.id"), index=True)
    appliance_id: Mapped[str] = mapped_column(ForeignKey("appliances.id"))
    local_id: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32), default="")      # suggested by the reporter
    note: Mapped[str] = mapped_column(String(500), default="")
    lang: Mapped[str] = mapped_column(String(16), default="")
    ts: Mapped[float] = mapped_column(Float)                            # when it was filed on the appliance
    received: Mapped[float] = mapped_column(Float, index=True)


class AuthorityOrder(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    authority: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(100))
    deadline: Mapped[str] = mapped_column(String(40), default="")
    category: Mapped[str] = mapped_column(String(32))
    created: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(100))
    published_version: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    published_at: Mapped[Optional[float]] = mapped_column(Float, nullable=True)


class CuratedEntry(Base):
    """A name the provider publishes: approved from reports (list ``cat-CATEGORY``) or ordered (``order-ID``)."""
    __tablename__ = "curated_entries"
    __table_args__ = (UniqueConstraint("list_id", "domain"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[str] = mapped_column(String(64), index=True)
    domain: Mapped[str] = mapped_column(String(253))
    category: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[Optional[int]] = mapped_column(ForeignKey("orders.id"), nullable=True)
    added: Mapped[float] = mapped_column(Float)


class FeedVersion(Base):
    __tablename__ = "feed_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    published_at: Mapped[float] = mapped_column(Float)
    published_by: Mapped[str] = mapped_column(String(100))
    lists: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int] = mapped_column(Integer)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
