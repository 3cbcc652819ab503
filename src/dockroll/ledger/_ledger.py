"""The :class:`Ledger`: history and intent of releases, promotions and deployments.

What runs is read from container labels; the ledger remembers how it got
there. Every timestamp can be passed in, so a lost ledger can be rebuilt from
labels and registry data with the original times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Engine, RowMapping, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from dockroll.errors import LedgerError
from dockroll.ledger._actor import who as current_actor
from dockroll.ledger._database import (
    create_ledger_engine,
    ledger_url,
    migrate,
    translate_errors,
    writer,
)
from dockroll.ledger._models import (
    AnalysisSampleRow,
    ApprovalRow,
    AuditEventRow,
    DeploymentRow,
    DeploymentStepRow,
    PromotionRow,
    ReleaseRow,
)
from dockroll.ledger._records import (
    AnalysisSample,
    Approval,
    AuditEvent,
    Deployment,
    DeploymentId,
    DeploymentKind,
    DeploymentStatus,
    DeploymentStep,
    HistoryEntry,
    HistoryKind,
    Outcome,
    Promotion,
    PromotionStatus,
    Release,
    ReleaseId,
    StepStatus,
)
from dockroll.ledger._sqlite_reads import deployment_from_row, previous_release
from dockroll.refs import Digest, is_digest

__all__ = ["Ledger", "open_ledger"]

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(*moments: datetime | None) -> None:
    # Caught here, before the database: a naive time is a caller's bug, not a ledger failure.
    for moment in moments:
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"the ledger needs timezone-aware datetimes, got naive {moment!r}")


def open_ledger(
    url: str | None = None,
    *,
    actor: str | None = None,
    clock: Clock | None = None,
    upgrade: bool = True,
) -> Ledger:
    """Open the ledger at ``url`` (default: ``$DOCKROLL_LEDGER_URL``, else SQLite in the
    state directory), upgrading its schema to the newest revision first.

    ``actor`` is who the records name when a call gives no ``who`` (default:
    :func:`who`); ``clock`` supplies "now" (aware datetimes).
    """
    engine = create_ledger_engine(ledger_url(url))
    try:
        if upgrade:
            migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    return Ledger(engine, actor=actor, clock=clock)


class Ledger:
    """Releases, promotions, approvals, deployments and the audit trail of services.

    Every method runs in its own short transaction and returns frozen records,
    never database rows. Lists come newest first. Close the ledger (or use it
    as a context manager) to release its connections.
    """

    def __init__(
        self, engine: Engine, *, actor: str | None = None, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=writer(engine), expire_on_commit=False)
        self._actor = actor
        self._clock = clock
        """Injected by tests; otherwise :meth:`_now` asks the database or this machine."""

    # -- lifecycle -------------------------------------------------------------

    def now(self) -> datetime:
        """The ledger's clock: what its records are stamped with (see :meth:`_now`)."""
        with self._read() as session:
            return self._now(session)

    def _now(self, session: Session) -> datetime:
        """The time records are stamped with, by one clock for every client.

        A PostgreSQL ledger is shared by machines whose clocks may disagree, and
        which release is current is decided by comparing these stamps, so they
        come from the database server. A SQLite ledger lives on one machine,
        whose clock it uses.
        """
        if self._clock is not None:
            return self._clock()
        if session.get_bind().dialect.name == "postgresql":
            stamp = session.scalar(select(func.clock_timestamp()))
            if isinstance(stamp, datetime):
                return stamp.astimezone(UTC)
        return _utcnow()

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def who(self) -> str:
        """The actor recorded when a call names none (resolved once per ledger)."""
        if self._actor is None:
            self._actor = current_actor()
        return self._actor

    # -- releases --------------------------------------------------------------

    def record_release(
        self,
        *,
        service: str,
        version: str,
        digest: Digest,
        registry: str,
        repository: str,
        tags: Iterable[str] = (),
        git_sha: str | None = None,
        build_date: datetime | None = None,
        labels: Mapping[str, str] | None = None,
        sbom_digest: Digest | None = None,
        pushed_at: datetime | None = None,
        created_by: str | None = None,
        committed_at: datetime | None = None,
    ) -> Release:
        """Record that ``digest`` was pushed as ``version`` of ``service``.

        Idempotent on (service, digest, version): recording it again returns
        the existing release, with any new ``tags`` added to its tag list and a
        missing ``sbom_digest`` (or ``committed_at``) filled in; everything else
        stays as first recorded.
        """
        if not is_digest(digest):
            raise LedgerError(f"{digest!r} is not a sha256 digest; the ledger records digests")
        _aware(build_date, pushed_at, committed_at)
        tag_list = list(dict.fromkeys(tags))
        for attempt in range(2):
            try:
                with self._write() as session:
                    row = session.scalars(
                        select(ReleaseRow)
                        .where(
                            ReleaseRow.service == service,
                            ReleaseRow.digest == digest,
                            ReleaseRow.version == version,
                        )
                        # Row lock: concurrent re-records merge tags instead of losing some.
                        .with_for_update()
                    ).one_or_none()
                    if row is None:
                        now = self._now(session)
                        row = ReleaseRow(
                            service=service,
                            version=version,
                            digest=digest,
                            image_registry=registry,
                            repository=repository,
                            tags=tag_list,
                            labels=dict(labels or {}),
                            git_sha=git_sha,
                            build_date=build_date,
                            pushed_at=pushed_at or now,
                            created_by=created_by or self.who(),
                            created_at=now,
                            sbom_digest=sbom_digest,
                            committed_at=committed_at,
                        )
                        session.add(row)
                    else:
                        merged = list(dict.fromkeys([*row.tags, *tag_list]))
                        if merged != row.tags:
                            row.tags = merged
                        if sbom_digest and not row.sbom_digest:
                            row.sbom_digest = sbom_digest
                        if committed_at and not row.committed_at:
                            row.committed_at = committed_at
                    session.flush()
                    return _release(row)
            except LedgerError as exc:
                # Another writer recorded the same release between our SELECT and
                # INSERT (PostgreSQL; SQLite writers are serialised): read theirs.
                if attempt == 0 and isinstance(exc.__cause__, IntegrityError):
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def find_release(self, service: str, version_or_digest: str) -> Release | None:
        """The release of ``service`` with that version or digest, if recorded.

        When a version was pushed more than once (or a digest under several
        versions), the most recently pushed one wins.
        """
        query = select(ReleaseRow).where(ReleaseRow.service == service)
        if is_digest(version_or_digest):
            query = query.where(ReleaseRow.digest == version_or_digest)
        else:
            query = query.where(ReleaseRow.version == version_or_digest)
        query = query.order_by(ReleaseRow.pushed_at.desc(), ReleaseRow.id.desc()).limit(1)
        with self._read() as session:
            row = session.scalars(query).first()
            return _release(row) if row else None

    def find_release_in_repository(
        self, registry: str, repository: str, version_or_digest: str
    ) -> Release | None:
        """A release of any service pushed to ``registry/repository`` with that version or
        digest, the most recently pushed first (services sharing one repository)."""
        query = select(ReleaseRow).where(
            ReleaseRow.image_registry == registry, ReleaseRow.repository == repository
        )
        if is_digest(version_or_digest):
            query = query.where(ReleaseRow.digest == version_or_digest)
        else:
            query = query.where(ReleaseRow.version == version_or_digest)
        query = query.order_by(ReleaseRow.pushed_at.desc(), ReleaseRow.id.desc()).limit(1)
        with self._read() as session:
            row = session.scalars(query).first()
            return _release(row) if row else None

    def get_release(self, service: str, version_or_digest: str) -> Release:
        """Like :meth:`find_release`, but a missing release is a :class:`LedgerError`."""
        release = self.find_release(service, version_or_digest)
        if release is None:
            raise LedgerError(
                f"no release {version_or_digest} of {service} in the ledger",
                hint=f"`dockroll releases --service {service}` lists the recorded releases",
            )
        return release

    def commit_times(self, ids: Iterable[ReleaseId]) -> dict[ReleaseId, datetime]:
        """When the source of each of these releases was committed, those recorded."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        query = select(ReleaseRow.id, ReleaseRow.committed_at).where(
            ReleaseRow.id.in_(wanted), ReleaseRow.committed_at.is_not(None)
        )
        with self._read() as session:
            return {ReleaseId(i): at for i, at in session.execute(query) if at is not None}

    def releases(self, service: str, limit: int | None = None) -> list[Release]:
        """Releases of ``service``, most recently pushed first."""
        query = (
            select(ReleaseRow)
            .where(ReleaseRow.service == service)
            .order_by(ReleaseRow.pushed_at.desc(), ReleaseRow.id.desc())
            .limit(limit)
        )
        with self._read() as session:
            return [_release(row) for row in session.scalars(query)]

    # -- promotions ------------------------------------------------------------

    def record_promotion(
        self,
        release: Release,
        *,
        to_env: str,
        from_env: str | None = None,
        tags: Iterable[str] = (),
        status: PromotionStatus = PromotionStatus.SUCCEEDED,
        reason: str | None = None,
        notes: str | None = None,
        who: str | None = None,
        at: datetime | None = None,
    ) -> Promotion:
        """Record that ``release``'s digest was promoted (retagged) into ``to_env``.

        Only real promotions belong here; a dry run changes nothing and is not
        recorded. ``tags`` are the registry tags written.
        """
        _aware(at)
        with self._write() as session:
            self._release_row(session, release)
            row = PromotionRow(
                release_id=release.id,
                service=release.service,
                digest=release.digest,
                from_env=from_env,
                to_env=to_env,
                status=PromotionStatus(status).value,
                tags=list(dict.fromkeys(tags)),
                promoted_by=who or self.who(),
                promoted_at=at or self._now(session),
                reason=reason,
                notes=notes,
            )
            session.add(row)
            session.flush()
            return _promotion(row)

    def fail_promotion(self, promotion: Promotion) -> Promotion:
        """Mark a recorded promotion failed: its deploy did not go through.

        A failed promotion never makes a release current and never lets a
        later deploy past ``promote_from``.
        """
        with self._write() as session:
            row = session.get(PromotionRow, promotion.id)
            if row is None:
                raise LedgerError(f"no promotion {promotion.id} in the ledger")
            row.status = PromotionStatus.FAILED.value
            session.flush()
            return _promotion(row)

    def promotions(
        self, service: str, env: str | None = None, *, limit: int | None = None
    ) -> list[Promotion]:
        """Promotions of ``service`` (into ``env`` when given), newest first."""
        query = select(PromotionRow).where(PromotionRow.service == service)
        if env is not None:
            query = query.where(PromotionRow.to_env == env)
        query = query.order_by(PromotionRow.promoted_at.desc(), PromotionRow.id.desc())
        with self._read() as session:
            return [_promotion(row) for row in session.scalars(query.limit(limit))]

    # -- approvals -------------------------------------------------------------

    def record_approval(
        self,
        release: Release,
        env: str,
        *,
        note: str | None = None,
        who: str | None = None,
        at: datetime | None = None,
    ) -> Approval:
        """Record that ``who`` approved ``release`` for ``env``."""
        _aware(at)
        with self._write() as session:
            self._release_row(session, release)
            row = ApprovalRow(
                release_id=release.id,
                env=env,
                approved_by=who or self.who(),
                approved_at=at or self._now(session),
                note=note,
            )
            session.add(row)
            session.flush()
            return _approval(row)

    def approvals(self, service: str, version: str, env: str | None = None) -> list[Approval]:
        """Approvals of ``version`` of ``service`` (for ``env`` when given), newest first."""
        query = (
            select(ApprovalRow)
            .join(ApprovalRow.release)
            .where(ReleaseRow.service == service, ReleaseRow.version == version)
        )
        if env is not None:
            query = query.where(ApprovalRow.env == env)
        query = query.order_by(ApprovalRow.approved_at.desc(), ApprovalRow.id.desc())
        with self._read() as session:
            return [_approval(row) for row in session.scalars(query)]

    # -- deployments -----------------------------------------------------------

    def start_deployment(
        self,
        release: Release,
        env: str,
        *,
        strategy: str,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
        status: DeploymentStatus = DeploymentStatus.RUNNING,
        reason: str | None = None,
        who: str | None = None,
        at: datetime | None = None,
    ) -> Deployment:
        """Record that a rollout of ``release`` into ``env`` begins (or is queued, ``pending``).

        The release the environment ran until now, per :meth:`current_release`,
        is kept as ``previous_release_id``: the natural rollback target.
        """
        _aware(at)
        status = DeploymentStatus(status)
        if status.finished:
            raise LedgerError(
                f"a deployment starts pending or running, not {status}",
                hint="record the outcome with finish_deployment()",
            )
        previous = previous_release(self, release, env)
        with self._write() as session:
            self._release_row(session, release)
            row = DeploymentRow(
                service=release.service,
                env=env,
                release_id=release.id,
                previous_release_id=previous.id if previous else None,
                digest=release.digest,
                kind=DeploymentKind(kind).value,
                strategy=str(strategy),
                status=status.value,
                started_by=who or self.who(),
                started_at=at or self._now(session),
                reason=reason,
            )
            session.add(row)
            session.flush()
            return _deployment(row)

    def record_step(
        self,
        deployment: Deployment | DeploymentId,
        index: int,
        kind: str,
        status: StepStatus,
        *,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> DeploymentStep:
        """Record step ``index`` of a deployment; call it before and after the step.

        The first call creates the step; later calls update its status, and
        ``detail`` keys are merged into what was recorded. Reaching a finished
        status stamps ``finished_at``.
        """
        _aware(at)
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        status = StepStatus(status)
        with self._write() as session:
            now = at or self._now(session)
            parent = session.get(DeploymentRow, deployment_id)
            if parent is None:
                raise LedgerError(f"no deployment {deployment_id} in the ledger")
            row = session.scalars(
                select(DeploymentStepRow)
                .where(
                    DeploymentStepRow.deployment_id == deployment_id,
                    DeploymentStepRow.index == index,
                )
                .with_for_update()
            ).one_or_none()
            if row is None:
                row = DeploymentStepRow(
                    deployment_id=deployment_id,
                    index=index,
                    kind=kind,
                    status=status.value,
                    started_at=now,
                    detail=dict(detail or {}),
                )
                session.add(row)
            else:
                if row.kind != kind:
                    raise LedgerError(
                        f"step {index} of deployment {deployment_id} is {row.kind!r}, not {kind!r}"
                    )
                row.status = status.value
                if detail:
                    row.detail = {**row.detail, **detail}
            row.finished_at = now if status.finished else None
            session.flush()
            return _step(row)

    def finish_deployment(
        self,
        deployment: Deployment | DeploymentId,
        status: DeploymentStatus,
        *,
        message: str | None = None,
        at: datetime | None = None,
    ) -> Deployment:
        """Record how a deployment ended: succeeded, failed, rolled_back or aborted."""
        _aware(at)
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        status = DeploymentStatus(status)
        if not status.finished:
            raise LedgerError(f"a deployment finishes with a final status, not {status}")
        with self._write() as session:
            row = session.get(DeploymentRow, deployment_id, with_for_update=True)
            if row is None:
                raise LedgerError(f"no deployment {deployment_id} in the ledger")
            if DeploymentStatus(row.status).finished:
                raise LedgerError(
                    f"deployment {deployment_id} already finished as {row.status}",
                    hint="start a new deployment (or a rollback) instead",
                )
            row.status = status.value
            row.finished_at = at or self._now(session)
            row.message = message
            session.flush()
            return _deployment(row)

    def deployment(self, deployment_id: DeploymentId) -> Deployment:
        """One deployment with its steps."""
        with self._read() as session:
            row = session.get(DeploymentRow, deployment_id)
            if row is None:
                raise LedgerError(f"no deployment {deployment_id} in the ledger")
            return _deployment(row)

    def deployments(
        self, service: str, env: str | None = None, *, limit: int | None = None
    ) -> list[Deployment]:
        """Deployments of ``service`` (into ``env`` when given), newest first, with steps."""
        query = select(DeploymentRow).where(DeploymentRow.service == service)
        if env is not None:
            query = query.where(DeploymentRow.env == env)
        query = query.order_by(DeploymentRow.started_at.desc(), DeploymentRow.id.desc())
        with self._read() as session:
            return [_deployment(row) for row in session.scalars(query.limit(limit)).unique()]

    def unfinished_deployment(self, service: str, env: str) -> Deployment | None:
        """The newest of ``env``'s last ten deployments that has not finished, with its steps.

        A rollout that is running, paused, or was cut short by a crash.
        """
        for deployment in self.deployments(service, env, limit=10):
            if not deployment.status.finished:
                return deployment
        return None

    def current_release(self, service: str, env: str) -> Release | None:
        """The release ``env`` runs according to the ledger (container labels are the truth).

        That is the release of the last succeeded deployment, or of the last
        succeeded promotion when no deployment was attempted after it (an
        environment fed by its registry tag alone). A promotion followed by a
        failed deployment does not count: the old release still runs.
        """
        with self._read() as session:
            promotion = session.scalars(
                select(PromotionRow)
                .where(
                    PromotionRow.service == service,
                    PromotionRow.to_env == env,
                    PromotionRow.status == PromotionStatus.SUCCEEDED.value,
                )
                .order_by(PromotionRow.promoted_at.desc(), PromotionRow.id.desc())
                .limit(1)
            ).first()
            in_env = (DeploymentRow.service == service, DeploymentRow.env == env)
            if promotion is not None:
                deployed_since = session.scalar(
                    select(
                        exists().where(*in_env, DeploymentRow.started_at >= promotion.promoted_at)
                    )
                )
                if not deployed_since:
                    return _release(promotion.release)
            deployment = session.scalars(
                select(DeploymentRow)
                .where(*in_env, DeploymentRow.status == DeploymentStatus.SUCCEEDED.value)
                .order_by(DeploymentRow.finished_at.desc(), DeploymentRow.id.desc())
                .limit(1)
            ).first()
            return _release(deployment.release) if deployment else None

    def record_cost(
        self,
        deployment: Deployment | DeploymentId,
        *,
        served_requests: int,
        failed_requests: int,
        traffic_seconds: float,
    ) -> Deployment:
        """Record what the new release of a deployment served before it was undone."""
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        if served_requests < 0 or failed_requests < 0 or traffic_seconds < 0:
            raise ValueError("a release's cost is never negative")
        with self._write() as session:
            row = session.get(DeploymentRow, deployment_id, with_for_update=True)
            if row is None:
                raise LedgerError(f"no deployment {deployment_id} in the ledger")
            row.served_requests = served_requests
            row.failed_requests = failed_requests
            row.traffic_seconds = traffic_seconds
            session.flush()
            return _deployment(row)

    def deployments_between(
        self,
        *,
        env: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        release: ReleaseId | None = None,
        limit: int | None = None,
    ) -> list[Deployment]:
        """Deployments of every service (or ``service``; of ``release``) started in
        ``[since, until)``, newest first, without their steps (reports read many)."""
        _aware(since, until)
        deployments = DeploymentRow.__table__
        # Plain rows, not ORM objects: reports and pages read a thousand of these at once.
        query = select(deployments, ReleaseRow.version.label("release_version")).join(
            ReleaseRow, ReleaseRow.id == deployments.c.release_id
        )
        if release is not None:
            query = query.where(deployments.c.release_id == release)
        if env is not None:
            query = query.where(deployments.c.env == env)
        if service is not None:
            query = query.where(deployments.c.service == service)
        if since is not None:
            query = query.where(deployments.c.started_at >= since)
        if until is not None:
            query = query.where(deployments.c.started_at < until)
        query = query.order_by(deployments.c.started_at.desc(), deployments.c.id.desc())
        with self._read() as session:
            rows = session.execute(query.limit(limit))
            return [deployment_from_row(row._mapping) for row in rows]

    def services(self) -> list[str]:
        """Every service the ledger has a release of, by name."""
        with self._read() as session:
            return list(session.scalars(select(ReleaseRow.service).distinct().order_by("service")))

    # -- analysis samples ------------------------------------------------------

    def record_sample(
        self,
        deployment: Deployment | DeploymentId,
        *,
        step_index: int,
        tick: int,
        elapsed: float,
        action: str,
        reason: str,
        percent: int | None = None,
        canary_weight: int = 0,
        baseline_weight: int = 0,
        canary: tuple[float, float, float | None] | None = None,
        baseline: tuple[float, float, float | None] | None = None,
        detail: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AnalysisSample:
        """Record one analysis tick of step ``step_index``.

        ``canary`` and ``baseline`` are (requests, errors, latency in ms) of the
        interval; None when the tick measured nothing. Recording the same tick
        again replaces it.
        """
        _aware(at)
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        canary_numbers = canary or (None, None, None)
        baseline_numbers = baseline or (None, None, None)
        with self._write() as session:
            row = session.scalars(
                select(AnalysisSampleRow).where(
                    AnalysisSampleRow.deployment_id == deployment_id,
                    AnalysisSampleRow.step_index == step_index,
                    AnalysisSampleRow.tick == tick,
                )
            ).one_or_none()
            if row is None:
                row = AnalysisSampleRow(
                    deployment_id=deployment_id, step_index=step_index, tick=tick
                )
                session.add(row)
            row.at = at or self._now(session)
            row.elapsed = elapsed
            row.percent = percent
            row.canary_weight = canary_weight
            row.baseline_weight = baseline_weight
            row.canary_requests, row.canary_errors, row.canary_latency_ms = canary_numbers
            row.baseline_requests, row.baseline_errors, row.baseline_latency_ms = baseline_numbers
            row.action = action
            row.reason = reason
            row.detail = dict(detail or {})
            try:
                session.flush()
            except IntegrityError as exc:
                raise LedgerError(f"no deployment {deployment_id} in the ledger") from exc
            return _sample(row)

    def samples(
        self, deployment: Deployment | DeploymentId, *, after: int | None = None
    ) -> list[AnalysisSample]:
        """The analysis samples of a deployment in the order they were taken.

        ``after``: only samples recorded after the one with that row id (for live views).
        """
        deployment_id = deployment.id if isinstance(deployment, Deployment) else deployment
        table = AnalysisSampleRow.__table__
        query = select(table).where(table.c.deployment_id == deployment_id)
        if after is not None:
            query = query.where(table.c.id > after)
        query = query.order_by(table.c.step_index, table.c.tick)
        with self._read() as session:
            # Plain rows: a long canary has thousands of samples.
            return [_sample(row._mapping) for row in session.execute(query)]

    # -- audit -----------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        service: str | None = None,
        env: str | None = None,
        target: str | None = None,
        detail: Mapping[str, Any] | None = None,
        outcome: Outcome = Outcome.OK,
        who: str | None = None,
        at: datetime | None = None,
    ) -> AuditEvent:
        """Append an event to the audit trail: ``who`` did ``action`` and how it ended.

        The record_* methods do not audit on their own; callers audit the
        actions users take, refused and failed ones included.
        """
        _aware(at)
        with self._write() as session:
            row = AuditEventRow(
                occurred_at=at or self._now(session),
                actor=who or self.who(),
                action=action,
                outcome=Outcome(outcome).value,
                service=service,
                env=env,
                target=target,
                detail=dict(detail or {}),
            )
            session.add(row)
            session.flush()
            return _audit_event(row)

    def audit_events(
        self,
        *,
        service: str | None = None,
        env: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """Audit events matching every filter given, newest first."""
        _aware(since)
        query = select(AuditEventRow)
        if service is not None:
            query = query.where(AuditEventRow.service == service)
        if env is not None:
            query = query.where(AuditEventRow.env == env)
        if action is not None:
            query = query.where(AuditEventRow.action == action)
        if actor is not None:
            query = query.where(AuditEventRow.actor == actor)
        if since is not None:
            query = query.where(AuditEventRow.occurred_at >= since)
        query = query.order_by(AuditEventRow.occurred_at.desc(), AuditEventRow.id.desc())
        with self._read() as session:
            return [_audit_event(row) for row in session.scalars(query.limit(limit))]

    # -- history ---------------------------------------------------------------

    def history(
        self, service: str, env: str | None = None, *, limit: int | None = None
    ) -> list[HistoryEntry]:
        """The timeline of ``service``: promotions, deployments and rollbacks, newest first.

        A deployment is placed at its start; its status says how it ended.
        """
        promotions = self.promotions(service, env, limit=limit)
        # A line of history needs no steps: leave them unread.
        deployments = self.deployments_between(service=service, env=env, limit=limit)
        entries = [_promotion_entry(p) for p in promotions]
        entries += [_deployment_entry(d) for d in deployments]
        # Same instant: a deployment follows the promotion that fed it.
        entries.sort(key=lambda e: (e.at, e.kind != HistoryKind.PROMOTION, e.record_id))
        entries.reverse()
        return entries[:limit] if limit is not None else entries

    # -- plumbing --------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with translate_errors(self._engine), self._reader() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with translate_errors(self._engine), self._writer() as session, session.begin():
            yield session

    def _release_row(self, session: Session, release: Release) -> ReleaseRow:
        row = session.get(ReleaseRow, release.id)
        if row is None or row.digest != release.digest or row.service != release.service:
            raise LedgerError(
                f"release {release.service} {release.version} ({release.digest}) "
                f"is not recorded in {self.url}",
                hint="record_release() it first",
            )
        return row


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _release(row: ReleaseRow) -> Release:
    return Release(
        id=ReleaseId(row.id),
        service=row.service,
        version=row.version,
        digest=Digest(row.digest),
        registry=row.image_registry,
        repository=row.repository,
        tags=tuple(row.tags),
        pushed_at=row.pushed_at,
        created_by=row.created_by,
        created_at=row.created_at,
        git_sha=row.git_sha,
        build_date=row.build_date,
        labels=_frozen(row.labels),
        sbom_digest=Digest(row.sbom_digest) if row.sbom_digest else None,
        committed_at=row.committed_at,
    )


def _promotion(row: PromotionRow) -> Promotion:
    return Promotion(
        id=row.id,
        release_id=ReleaseId(row.release_id),
        service=row.service,
        version=row.release.version,
        digest=Digest(row.digest),
        from_env=row.from_env,
        to_env=row.to_env,
        status=PromotionStatus(row.status),
        tags=tuple(row.tags),
        promoted_by=row.promoted_by,
        promoted_at=row.promoted_at,
        reason=row.reason,
        notes=row.notes,
    )


def _approval(row: ApprovalRow) -> Approval:
    return Approval(
        id=row.id,
        release_id=ReleaseId(row.release_id),
        service=row.release.service,
        version=row.release.version,
        digest=Digest(row.release.digest),
        env=row.env,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        note=row.note,
    )


def _step(row: DeploymentStepRow) -> DeploymentStep:
    return DeploymentStep(
        deployment_id=DeploymentId(row.deployment_id),
        index=row.index,
        kind=row.kind,
        status=StepStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        detail=_frozen(row.detail),
    )


def _deployment(row: DeploymentRow, *, with_steps: bool = True) -> Deployment:
    return Deployment(
        id=DeploymentId(row.id),
        service=row.service,
        env=row.env,
        release_id=ReleaseId(row.release_id),
        version=row.release.version,
        digest=Digest(row.digest),
        kind=DeploymentKind(row.kind),
        strategy=row.strategy,
        status=DeploymentStatus(row.status),
        started_by=row.started_by,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.reason,
        message=row.message,
        previous_release_id=(
            ReleaseId(row.previous_release_id) if row.previous_release_id is not None else None
        ),
        steps=tuple(_step(step) for step in row.steps) if with_steps else (),
        served_requests=row.served_requests,
        failed_requests=row.failed_requests,
        traffic_seconds=row.traffic_seconds,
    )


def _sample(row: AnalysisSampleRow | RowMapping) -> AnalysisSample:
    get = row.__getitem__ if isinstance(row, RowMapping) else row.__getattribute__
    return AnalysisSample(
        id=get("id"),
        deployment_id=DeploymentId(get("deployment_id")),
        step_index=get("step_index"),
        tick=get("tick"),
        at=get("at"),
        elapsed=get("elapsed"),
        percent=get("percent"),
        canary_weight=get("canary_weight"),
        baseline_weight=get("baseline_weight"),
        canary_requests=get("canary_requests"),
        canary_errors=get("canary_errors"),
        canary_latency_ms=get("canary_latency_ms"),
        baseline_requests=get("baseline_requests"),
        baseline_errors=get("baseline_errors"),
        baseline_latency_ms=get("baseline_latency_ms"),
        action=get("action"),
        reason=get("reason"),
        detail=_frozen(get("detail")),
    )


def _audit_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.occurred_at,
        actor=row.actor,
        action=row.action,
        outcome=Outcome(row.outcome),
        service=row.service,
        env=row.env,
        target=row.target,
        detail=_frozen(row.detail),
    )


def _promotion_entry(promotion: Promotion) -> HistoryEntry:
    return HistoryEntry(
        at=promotion.promoted_at,
        kind=HistoryKind.PROMOTION,
        record_id=promotion.id,
        service=promotion.service,
        env=promotion.to_env,
        version=promotion.version,
        digest=promotion.digest,
        status=promotion.status.value,
        who=promotion.promoted_by,
        from_env=promotion.from_env,
        reason=promotion.reason,
        notes=promotion.notes,
    )


def _deployment_entry(deployment: Deployment) -> HistoryEntry:
    kind = (
        HistoryKind.ROLLBACK
        if deployment.kind == DeploymentKind.ROLLBACK
        else HistoryKind.DEPLOYMENT
    )
    return HistoryEntry(
        at=deployment.started_at,
        kind=kind,
        record_id=deployment.id,
        service=deployment.service,
        env=deployment.env,
        version=deployment.version,
        digest=deployment.digest,
        status=deployment.status.value,
        who=deployment.started_by,
        strategy=deployment.strategy,
        reason=deployment.reason,
        notes=deployment.message,
        served_requests=deployment.served_requests,
        failed_requests=deployment.failed_requests,
        traffic_seconds=deployment.traffic_seconds,
    )
