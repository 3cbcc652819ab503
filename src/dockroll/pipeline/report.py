"""DORA metrics from the ledger: how often, how fast, how safely, how quickly restored.

Per environment, over the ``days`` before ``until``, for every service (or one):

- **deployment frequency**: deployments (not rollbacks) that succeeded, and per day;
- **lead time for changes**: from a release's commit time (recorded at push) to
  its first successful deployment into the environment; the median over the
  releases whose commit time is known;
- **change failure rate**: of the deployments that finished, the share that
  failed (rolled back, aborted, failed) or were undone by a rollback deployment
  that followed them;
- **time to restore**: for each failed change, from the start of the deployment
  to the end of its automatic rollback or abort, or, for a release undone
  later, from the end of its deployment to the end of the rollback; the median.

Only deployments that started inside the window count; one still running is
neither a change nor a failure yet.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dockroll.errors import UsageError
from dockroll.ledger import (
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    Ledger,
    ReleaseId,
)

__all__ = ["WINDOWS", "DoraReport", "EnvironmentReport", "dora_report", "duration_text"]

WINDOWS = (7, 30, 90)
"""The windows, in days, a report covers."""

_UNDONE = (DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK, DeploymentStatus.ABORTED)


@dataclass(frozen=True)
class EnvironmentReport:
    """The four DORA metrics of one environment over one window."""

    env: str
    deployments: int
    """Successful deployments (rollbacks left out)."""
    per_day: float
    changes: int
    """Deployments that finished, for better or worse."""
    failed_changes: int
    change_failure_rate: float | None
    """None without any change."""
    lead_time_seconds: float | None
    """Median commit → running here; None when no deployed release has a commit time."""
    lead_times: int
    """Releases the lead time is the median of."""
    time_to_restore_seconds: float | None
    """Median; None without a restored failure."""
    restores: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DoraReport:
    days: int
    since: datetime
    until: datetime
    service: str | None
    environments: tuple[EnvironmentReport, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "service": self.service,
            "environments": [report.as_dict() for report in self.environments],
        }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def dora_report(
    ledger: Ledger,
    *,
    days: int,
    environments: Sequence[str] | None = None,
    service: str | None = None,
    until: datetime | None = None,
) -> DoraReport:
    """The DORA metrics of ``environments`` (default: every one with a deployment in the
    window) over the ``days`` (7, 30 or 90) before ``until`` (default: the ledger's now)."""
    if days not in WINDOWS:
        raise UsageError(f"a report covers 7, 30 or 90 days, not {days}", hint="--days 7, 30 or 90")
    end = until or ledger.now()
    since = end - timedelta(days=days)
    found = ledger.deployments_between(env=None, service=service, since=since, until=end)
    by_env: dict[str, list[Deployment]] = defaultdict(list)
    for deployment in found:
        by_env[deployment.env].append(deployment)
    names = list(environments) if environments else sorted(by_env)
    commits = ledger.commit_times(d.release_id for d in found)
    reports = []
    for env in names:
        deployments = sorted(by_env.get(env, []), key=lambda d: (d.started_at, d.id))
        reports.append(_environment(env, deployments, days, commits))
    return DoraReport(days, since, end, service, tuple(reports))


def _environment(
    env: str, deployments: list[Deployment], days: int, commits: Mapping[ReleaseId, datetime]
) -> EnvironmentReport:
    succeeded = changes = failed = 0
    lead_times: dict[ReleaseId, float] = {}
    restores: list[float] = []
    by_service: dict[str, list[Deployment]] = defaultdict(list)
    for deployment in deployments:
        by_service[deployment.service].append(deployment)
    for history in by_service.values():
        for position, deployment in enumerate(history):
            if deployment.kind is not DeploymentKind.DEPLOY or not deployment.status.finished:
                continue
            finished = deployment.finished_at or deployment.started_at
            changes += 1
            if deployment.status in _UNDONE:
                failed += 1
                restores.append(_seconds(deployment.started_at, finished))
                continue
            succeeded += 1
            committed = commits.get(deployment.release_id)
            if committed is not None and deployment.release_id not in lead_times:
                lead_times[deployment.release_id] = _seconds(committed, finished)
            after = history[position + 1] if position + 1 < len(history) else None
            if (
                after is not None
                and after.kind is DeploymentKind.ROLLBACK
                and after.status is DeploymentStatus.SUCCEEDED
                and after.finished_at is not None
            ):
                failed += 1
                restores.append(_seconds(finished, after.finished_at))
    return EnvironmentReport(
        env=env,
        deployments=succeeded,
        per_day=round(succeeded / days, 3),
        changes=changes,
        failed_changes=failed,
        change_failure_rate=round(failed / changes, 4) if changes else None,
        lead_time_seconds=_median(list(lead_times.values())),
        lead_times=len(lead_times),
        time_to_restore_seconds=_median(restores),
        restores=len(restores),
    )


def duration_text(seconds: float | None) -> str:
    """``95`` → ``1m 35s``; ``None`` → ``-``."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(shown[:2]) or "0s"
