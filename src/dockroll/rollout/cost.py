"""What a release cost before it was undone: requests it failed, traffic it carried.

Measured when a rollout is rolled back or aborted, before the new replicas
leave the router: their counters say how many requests they answered and how
many of those failed; the deployment's recorded weight steps say which share
of the traffic they carried for how long (``traffic_seconds``: 10 % of the
traffic for 60 s is 6).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from dockroll.ledger import DeploymentId, DeploymentStep, StepStatus
from dockroll.router.port import Router, RouterStats

if TYPE_CHECKING:
    from dockroll.ledger import Ledger

__all__ = ["ReleaseCost", "measure_cost", "served_by", "traffic_seconds"]


@dataclass(frozen=True)
class ReleaseCost:
    served_requests: int
    failed_requests: int
    traffic_seconds: float


def served_by(stats: RouterStats, names: Collection[str]) -> tuple[int, int]:
    """Requests the servers ``names`` answered since they joined the router, and failed ones
    (5xx answers, connection and response errors)."""
    served = failed = 0
    for server in stats.servers:
        if server.name in names:
            served += server.total_requests
            failed += server.http_5xx + server.connection_errors + server.response_errors
    return served, min(failed, served) if served else failed


def traffic_seconds(
    steps: Iterable[DeploymentStep], new: Collection[str], until: datetime
) -> float:
    """The new servers' traffic share integrated over time, from the weights each
    ``set-weights`` step set (effective when it finished) until ``until``."""
    changes = sorted(
        (step.finished_at, step.detail["weights"])
        for step in steps
        if step.kind == "set-weights"
        and step.status is StepStatus.SUCCEEDED
        and step.finished_at is not None
        and isinstance(step.detail.get("weights"), dict)
    )
    total = 0.0
    for position, (at, weights) in enumerate(changes):
        end = changes[position + 1][0] if position + 1 < len(changes) else until
        whole = sum(int(w) for w in weights.values())
        share = sum(int(w) for n, w in weights.items() if n in new) / whole if whole else 0.0
        total += share * max(0.0, (min(end, until) - at).total_seconds())
    return round(total, 3)


def measure_cost(
    ledger: Ledger, router: Router, deployment: DeploymentId, new: Collection[str]
) -> ReleaseCost | None:
    """Measure and record what the new servers ``new`` of ``deployment`` cost; None when
    the router could not say (the rollback goes on regardless)."""
    try:
        served, failed = served_by(router.stats(), new)
        recorded = ledger.deployment(deployment)
        seconds = traffic_seconds(recorded.steps, new, ledger.now())
        ledger.record_cost(
            deployment, served_requests=served, failed_requests=failed, traffic_seconds=seconds
        )
    except Exception:  # a report: nothing may keep a rollback from happening
        return None
    return ReleaseCost(served, failed, seconds)
