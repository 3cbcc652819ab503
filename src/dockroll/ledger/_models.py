"""The ledger's tables as SQLAlchemy models; private — callers get records, not rows.

The initial migration spells out the same schema; ``tests/unit/ledger`` checks
that the two agree, so a change here needs a new revision in ``migrations/``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

from dockroll.ledger._schema import (
    ANALYSIS_SAMPLES,
    APPROVALS,
    AUDIT_EVENTS,
    DEPLOYMENT_STEPS,
    DEPLOYMENTS,
    PROMOTIONS,
    RELEASES,
)

__all__ = [
    "AnalysisSampleRow",
    "ApprovalRow",
    "AuditEventRow",
    "Base",
    "DeploymentRow",
    "DeploymentStepRow",
    "PromotionRow",
    "ReleaseRow",
]

# Named constraints let later migrations drop or alter them, SQLite's batch mode included.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DIGEST_LENGTH = 71  # "sha256:" + 64 hex digits


class JSONDocument(TypeDecorator[Any]):
    """JSON everywhere; JSONB on PostgreSQL so it can be indexed and queried later.

    The PostgreSQL dialect is imported only by a PostgreSQL ledger (a variant type
    would import it for SQLite too, and every command opening the ledger would pay).
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB  # noqa: PLC0415 - see above

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always returned timezone-aware.

    SQLite keeps no offset, so values go in as naive UTC (which also makes its
    text ordering chronological) and come back with ``tzinfo=UTC``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the ledger stores aware timestamps only, got naive {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


PROMOTION_STATUSES = ("succeeded", "failed")
DEPLOYMENT_KINDS = ("deploy", "rollback")
DEPLOYMENT_STATUSES = ("pending", "running", "succeeded", "failed", "rolled_back", "aborted")
STEP_STATUSES = ("pending", "running", "succeeded", "failed", "skipped")
OUTCOMES = ("ok", "failed", "denied")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ReleaseRow(Base):
    __tablename__ = RELEASES
    __table_args__ = (
        UniqueConstraint("service", "digest", "version"),
        Index(None, "service", "pushed_at"),
        Index(None, "service", "version"),
        Index(None, "digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    # "registry" as an attribute name would shadow the declarative registry.
    image_registry: Mapped[str] = mapped_column("registry", String(255))
    repository: Mapped[str] = mapped_column(String(255))
    tags: Mapped[list[str]] = mapped_column(JSONDocument())
    labels: Mapped[dict[str, str]] = mapped_column(JSONDocument())
    git_sha: Mapped[str | None] = mapped_column(String(64))
    build_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sbom_digest: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PromotionRow(Base):
    __tablename__ = PROMOTIONS
    __table_args__ = (
        CheckConstraint(_one_of("status", PROMOTION_STATUSES), name="status"),
        Index(None, "service", "to_env", "promoted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    service: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    from_env: Mapped[str | None] = mapped_column(String(64))
    to_env: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    tags: Mapped[list[str]] = mapped_column(JSONDocument())
    promoted_by: Mapped[str] = mapped_column(String(255))
    promoted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)

    release: Mapped[ReleaseRow] = relationship(lazy="joined", innerjoin=True)


class ApprovalRow(Base):
    __tablename__ = APPROVALS
    __table_args__ = (Index(None, "release_id", "env"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    env: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str] = mapped_column(String(255))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)

    release: Mapped[ReleaseRow] = relationship(lazy="joined", innerjoin=True)


class DeploymentRow(Base):
    __tablename__ = DEPLOYMENTS
    __table_args__ = (
        CheckConstraint(_one_of("kind", DEPLOYMENT_KINDS), name="kind"),
        CheckConstraint(_one_of("status", DEPLOYMENT_STATUSES), name="status"),
        Index(None, "service", "env", "started_at"),
        Index(None, "env", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service: Mapped[str] = mapped_column(String(128))
    env: Mapped[str] = mapped_column(String(64))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    previous_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    started_by: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    served_requests: Mapped[int | None] = mapped_column(Integer)
    failed_requests: Mapped[int | None] = mapped_column(Integer)
    traffic_seconds: Mapped[float | None] = mapped_column(Float)

    release: Mapped[ReleaseRow] = relationship(
        lazy="joined", innerjoin=True, foreign_keys=[release_id]
    )
    steps: Mapped[list[DeploymentStepRow]] = relationship(
        lazy="selectin",
        order_by="DeploymentStepRow.index",
        cascade="all, delete-orphan",
        back_populates="deployment",
    )


class DeploymentStepRow(Base):
    __tablename__ = DEPLOYMENT_STEPS
    __table_args__ = (
        UniqueConstraint("deployment_id", "index"),
        CheckConstraint(_one_of("status", STEP_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument())

    deployment: Mapped[DeploymentRow] = relationship(back_populates="steps")


class AuditEventRow(Base):
    __tablename__ = AUDIT_EVENTS
    __table_args__ = (
        CheckConstraint(_one_of("outcome", OUTCOMES), name="outcome"),
        Index(None, "occurred_at"),
        Index(None, "service", "occurred_at"),
        Index(None, "action", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    service: Mapped[str | None] = mapped_column(String(128))
    env: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument())


class AnalysisSampleRow(Base):
    __tablename__ = ANALYSIS_SAMPLES
    __table_args__ = (UniqueConstraint("deployment_id", "step_index", "tick"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    step_index: Mapped[int] = mapped_column(Integer)
    tick: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    elapsed: Mapped[float] = mapped_column(Float)
    percent: Mapped[int | None] = mapped_column(Integer)
    canary_weight: Mapped[int] = mapped_column(Integer)
    baseline_weight: Mapped[int] = mapped_column(Integer)
    canary_requests: Mapped[float | None] = mapped_column(Float)
    canary_errors: Mapped[float | None] = mapped_column(Float)
    canary_latency_ms: Mapped[float | None] = mapped_column(Float)
    baseline_requests: Mapped[float | None] = mapped_column(Float)
    baseline_errors: Mapped[float | None] = mapped_column(Float)
    baseline_latency_ms: Mapped[float | None] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
