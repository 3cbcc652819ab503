"""The values the ledger hands to callers: frozen, detached from any session."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from dockroll.refs import Digest, ImageRef

__all__ = [
    "AnalysisSample",
    "Approval",
    "AuditEvent",
    "Deployment",
    "DeploymentId",
    "DeploymentKind",
    "DeploymentStatus",
    "DeploymentStep",
    "HistoryEntry",
    "HistoryKind",
    "Outcome",
    "Promotion",
    "PromotionStatus",
    "Release",
    "ReleaseId",
    "StepStatus",
]

ReleaseId = NewType("ReleaseId", int)
"""The ledger's key of a release."""

DeploymentId = NewType("DeploymentId", int)
"""The ledger's key of a deployment."""


class PromotionStatus(StrEnum):
    """Whether the registry retag of a promotion went through."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeploymentKind(StrEnum):
    """A deployment moves forward to a release, a rollback moves back to one."""

    DEPLOY = "deploy"
    ROLLBACK = "rollback"


class DeploymentStatus(StrEnum):
    """Where a deployment stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        """Whether no further change is expected."""
        return self not in (DeploymentStatus.PENDING, DeploymentStatus.RUNNING)


class StepStatus(StrEnum):
    """Where one step of a rollout stands."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        """Whether the step is over, for better or worse."""
        return self not in (StepStatus.PENDING, StepStatus.RUNNING)


class Outcome(StrEnum):
    """How an audited action ended."""

    OK = "ok"
    FAILED = "failed"
    DENIED = "denied"


class HistoryKind(StrEnum):
    """What a line of :meth:`Ledger.history` records."""

    PROMOTION = "promotion"
    DEPLOYMENT = "deployment"
    ROLLBACK = "rollback"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


class _Record:
    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (timestamps in ISO 8601)."""
        data: dict[str, Any] = _jsonable(self)
        return data


@dataclass(frozen=True)
class Release(_Record):
    """An image dockroll built and pushed: one digest under one version of a service."""

    id: ReleaseId
    service: str
    version: str
    digest: Digest
    registry: str
    repository: str
    tags: tuple[str, ...]
    pushed_at: datetime
    """When dockroll pushed it; retention keeps the most recent."""
    created_by: str
    created_at: datetime
    git_sha: str | None = None
    build_date: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    sbom_digest: Digest | None = None
    committed_at: datetime | None = None
    """When the release's source was committed (git commit time), if known."""

    @property
    def ref(self) -> ImageRef:
        """The image by digest, the way containers run it."""
        return ImageRef(registry=self.registry, repository=self.repository, digest=self.digest)


@dataclass(frozen=True)
class Promotion(_Record):
    """A release's digest moved into an environment by registry retag."""

    id: int
    release_id: ReleaseId
    service: str
    version: str
    digest: Digest
    from_env: str | None
    to_env: str
    status: PromotionStatus
    tags: tuple[str, ...]
    """The registry tags written."""
    promoted_by: str
    promoted_at: datetime
    reason: str | None = None
    notes: str | None = None
    """Release notes."""


@dataclass(frozen=True)
class Approval(_Record):
    """Someone approved a release for an environment."""

    id: int
    release_id: ReleaseId
    service: str
    version: str
    digest: Digest
    env: str
    approved_by: str
    approved_at: datetime
    note: str | None = None


@dataclass(frozen=True)
class DeploymentStep(_Record):
    """One step of a rollout as the executor recorded it."""

    deployment_id: DeploymentId
    index: int
    kind: str
    status: StepStatus
    started_at: datetime
    finished_at: datetime | None = None
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Deployment(_Record):
    """A rollout (or rollback) of a release into an environment."""

    id: DeploymentId
    service: str
    env: str
    release_id: ReleaseId
    version: str
    digest: Digest
    kind: DeploymentKind
    strategy: str
    status: DeploymentStatus
    started_by: str
    started_at: datetime
    finished_at: datetime | None = None
    reason: str | None = None
    message: str | None = None
    """Why it ended the way it did, when that needs saying."""
    previous_release_id: ReleaseId | None = None
    """What the environment ran before, per the ledger: the natural rollback target."""
    steps: tuple[DeploymentStep, ...] = ()
    served_requests: int | None = None
    """Requests the new release answered before it was rolled back or aborted."""
    failed_requests: int | None = None
    """Of those, the ones that failed (5xx, connection and response errors)."""
    traffic_seconds: float | None = None
    """The new release's traffic share integrated over time until its rollback:
    10 % of the traffic for 60 s is 6 traffic-seconds."""


@dataclass(frozen=True)
class AuditEvent(_Record):
    """Who did what, to which service and environment, and how it ended."""

    id: int
    at: datetime
    actor: str
    action: str
    outcome: Outcome
    service: str | None = None
    env: str | None = None
    target: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class HistoryEntry(_Record):
    """One line of a service's timeline: a promotion, deployment or rollback."""

    at: datetime
    kind: HistoryKind
    record_id: int
    """The promotion's or deployment's id."""
    service: str
    env: str
    version: str
    digest: Digest
    status: str
    who: str
    from_env: str | None = None
    strategy: str | None = None
    reason: str | None = None
    notes: str | None = None
    """Release notes of a promotion, or how a deployment ended."""
    served_requests: int | None = None
    failed_requests: int | None = None
    traffic_seconds: float | None = None
    """What an undone deployment's release served before it was undone (see Deployment)."""


@dataclass(frozen=True)
class AnalysisSample(_Record):
    """One analysis tick of a deployment's observed step: what was measured and decided.

    The request figures are those of the interval since the previous tick; they
    are None on a tick that only took the starting snapshot or whose provider
    failed. ``detail`` holds each check's verdict, per-request latencies when the
    router logged them, and (on a step's first tick) the analysis settings and
    the server groups, which is what a replay needs.
    """

    id: int
    deployment_id: DeploymentId
    step_index: int
    tick: int
    at: datetime
    elapsed: float
    """Seconds since the step's analysis began."""
    percent: int | None
    """The canary's planned share; None for a watch window at full traffic."""
    canary_weight: int
    baseline_weight: int
    canary_requests: float | None
    canary_errors: float | None
    canary_latency_ms: float | None
    baseline_requests: float | None
    baseline_errors: float | None
    baseline_latency_ms: float | None
    action: str
    """The analysis's decision after this tick: pass, fail, pause or continue."""
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def canary_error_rate(self) -> float | None:
        return _rate(self.canary_errors, self.canary_requests)

    @property
    def baseline_error_rate(self) -> float | None:
        return _rate(self.baseline_errors, self.baseline_requests)


def _rate(errors: float | None, requests: float | None) -> float | None:
    if errors is None or not requests:
        return None
    return min(1.0, errors / requests)
