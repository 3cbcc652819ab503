"""What each page shows, from the same library calls the CLI makes; plain data for templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockroll.config import Config
from dockroll.ledger import (
    AnalysisSample,
    Deployment,
    DeploymentId,
    Ledger,
)

__all__ = [
    "HISTORY_LIMIT",
    "audit_view",
    "deployment_view",
    "history_view",
    "release_view",
    "report_view",
    "sample_json",
    "status_view",
    "thresholds",
]

HISTORY_LIMIT = 200
"""Entries a history page shows (newest first); filters narrow them further."""


def status_view(config: Config, ledger: Ledger) -> dict[str, Any]:
    """Exactly what ``dockroll status --json`` prints."""
    from dockroll.pipeline.status import service_status  # noqa: PLC0415 - loads the engine

    statuses, notes = service_status(config, ledger, parallel=True)
    return {
        "service": config.service,
        "environments": [s.to_json() for s in statuses],
        "drift": notes,
    }


def sample_json(sample: AnalysisSample, started: Any) -> dict[str, Any]:
    """One sample for the timeline: seconds since the deployment began, rates, decision."""
    whole = sample.canary_weight + sample.baseline_weight
    return {
        "id": sample.id,
        "step": sample.step_index,
        "tick": sample.tick,
        "t": round((sample.at - started).total_seconds(), 3),
        "at": sample.at.isoformat(),
        "percent": sample.percent,
        "canary_share": round(sample.canary_weight / whole, 4) if whole else None,
        "canary_requests": sample.canary_requests,
        "baseline_requests": sample.baseline_requests,
        "canary_error_rate": sample.canary_error_rate,
        "baseline_error_rate": sample.baseline_error_rate,
        "canary_latency_ms": sample.canary_latency_ms,
        "baseline_latency_ms": sample.baseline_latency_ms,
        "action": sample.action,
        "reason": sample.reason,
    }


def thresholds(samples: list[AnalysisSample]) -> dict[str, float | None]:
    """The limits the analysis judged against, from the first recorded settings."""
    settings: Mapping[str, Any] = next(
        (s.detail["settings"] for s in samples if isinstance(s.detail.get("settings"), Mapping)),
        {},
    )
    success = settings.get("success_rate") or {}
    latency = settings.get("latency") or {}
    baseline = settings.get("baseline") or {}
    return {
        "max_error_rate": round(1 - float(success["min"]), 6) if "min" in success else None,
        "max_latency_ms": float(latency["max"]) * 1e3 if "max" in latency else None,
        "max_error_ratio": baseline.get("max_error_ratio"),
        "max_latency_ratio": baseline.get("max_latency_ratio"),
    }


def deployment_view(
    ledger: Ledger, deployment_id: int, *, after: int | None = None
) -> dict[str, Any]:
    """A deployment with its steps and its analysis samples (those after ``after``)."""
    deployment = ledger.deployment(DeploymentId(deployment_id))
    samples = ledger.samples(deployment, after=after)
    return {
        "deployment": _deployment_json(deployment),
        "samples": [sample_json(s, deployment.started_at) for s in samples],
        "thresholds": thresholds(samples) if after is None else None,
        "finished": deployment.status.finished,
    }


def _deployment_json(deployment: Deployment) -> dict[str, Any]:
    data = deployment.as_dict()
    for step in data["steps"]:
        detail = step.get("detail") or {}
        # The plan and analysis summaries are long; the page shows weights and evidence.
        step["weights"] = detail.get("weights")
        step["error"] = detail.get("error")
        step["evidence"] = (detail.get("evidence") or {}).get("reason")
        step["detail"] = None
    return data


def history_view(
    ledger: Ledger,
    service: str,
    *,
    env: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = HISTORY_LIMIT,
) -> list[dict[str, Any]]:
    """The service's history (newest first), filtered by environment, kind and status."""
    entries = ledger.history(service, env or None, limit=limit)
    return [
        entry.as_dict()
        for entry in entries
        if (not kind or entry.kind.value == kind) and (not status or entry.status == status)
    ]


def release_view(config: Config, ledger: Ledger, reference: str) -> dict[str, Any]:
    """A release: tags, digest, labels, SBOM, where the ledger says it runs, promotions,
    approvals and deployments."""
    release = ledger.get_release(config.service, reference)
    running = [
        env
        for env in config.environments
        if (current := ledger.current_release(config.service, env)) is not None
        and current.digest == release.digest
    ]
    return {
        "release": release.as_dict(),
        "running_in": running,
        "promotions": [
            p.as_dict() for p in ledger.promotions(config.service) if p.release_id == release.id
        ],
        "approvals": [a.as_dict() for a in ledger.approvals(config.service, release.version)],
        "deployments": [
            d.as_dict()
            for d in ledger.deployments_between(service=config.service, release=release.id)
        ],
    }


def audit_view(
    ledger: Ledger,
    service: str,
    *,
    env: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int = HISTORY_LIMIT,
) -> list[dict[str, Any]]:
    events = ledger.audit_events(
        service=service, env=env or None, action=action or None, actor=actor or None, limit=limit
    )
    return [event.as_dict() for event in events]


def report_view(ledger: Ledger, service: str | None, days: int) -> dict[str, Any]:
    from dockroll.pipeline.report import dora_report  # noqa: PLC0415

    return dora_report(ledger, days=days, service=service).as_dict()


def unfinished_ids(status: Mapping[str, Any]) -> dict[str, int]:
    """Environment → the id of its unfinished rollout, from a status view."""
    found: dict[str, int] = {}
    for env in status["environments"]:
        unfinished = env.get("unfinished")
        if unfinished:
            found[env["environment"]] = int(unfinished["deployment"])
    return found
