"""A ledger history with every case the read queries tell apart, and a comparison of two
ways of reading it (the SQLAlchemy ledger and the plain SQLite reader)."""

from __future__ import annotations

from datetime import UTC, datetime

from dockroll.ledger import (
    DeploymentKind,
    DeploymentStatus,
    Ledger,
    LedgerReads,
    PromotionStatus,
    StepStatus,
)
from dockroll.refs import Digest
from tests.unit.ledger.conftest import add_release

PLACES = [
    ("web", "dev"),
    ("web", "staging"),
    ("web", "prod"),
    ("web", "qa"),
    ("web", "edge"),
    ("web", "nowhere"),
    ("api", "dev"),
    ("nothing", "dev"),
]
"""(service, environment) pairs: each of the history's cases, and none at all."""


def record_history(ledger: Ledger) -> None:
    """Releases, promotions and deployments in each state a query has to tell apart."""
    v1 = add_release(
        ledger,
        "1.0.0",
        git_sha="abc1234",
        build_date=datetime(2025, 2, 1, 8, 30, 15, 123456, tzinfo=UTC),
        committed_at=datetime(2025, 2, 1, 8, 0, tzinfo=UTC),
        labels={"org.opencontainers.image.version": "1.0.0", "team": "ünïcode"},
        sbom_digest=Digest("sha256:" + "5" * 64),
    )
    v2 = add_release(ledger, "1.1.0", labels={})
    v3 = add_release(ledger, "1.2.0")
    api = add_release(ledger, "0.1.0", service="api")

    # dev: two succeeded deployments, then one rolled back (with its cost), then a
    # rollback that succeeded; a deployment that failed.
    for release in (v1, v2):
        done = ledger.start_deployment(release, "dev", strategy="rolling")
        ledger.record_step(done, 0, "plan", StepStatus.SUCCEEDED, detail={"plan": {"new": ["a"]}})
        ledger.record_step(done, 1, "start", StepStatus.RUNNING)
        ledger.record_step(done, 1, "start", StepStatus.SUCCEEDED, detail={"names": ["a", "b"]})
        ledger.finish_deployment(done, DeploymentStatus.SUCCEEDED, message="rolled out")
    undone = ledger.start_deployment(v3, "dev", strategy="canary", reason="try 1.2")
    ledger.record_step(undone, 0, "set-weights", StepStatus.FAILED, detail={"weights": {"x": 10}})
    ledger.finish_deployment(undone, DeploymentStatus.ROLLED_BACK, message="error rate 12%")
    ledger.record_cost(undone, served_requests=120, failed_requests=14, traffic_seconds=31.5)
    back = ledger.start_deployment(v1, "dev", strategy="blue-green", kind=DeploymentKind.ROLLBACK)
    ledger.finish_deployment(back, DeploymentStatus.SUCCEEDED)
    failed = ledger.start_deployment(v3, "dev", strategy="rolling")
    ledger.finish_deployment(failed, DeploymentStatus.FAILED, message="did not start")

    # staging: promoted (no deployment since: the promotion says what runs), a failed
    # promotion after it that does not count.
    ledger.record_promotion(v1, to_env="staging", from_env="dev", tags=["staging"])
    ledger.record_promotion(
        v2, to_env="staging", from_env="dev", tags=["staging"], status=PromotionStatus.FAILED
    )

    # prod: a promotion, then a deployment of it that is still running (unfinished),
    # after an earlier succeeded one.
    first = ledger.start_deployment(v1, "prod", strategy="canary")
    ledger.finish_deployment(first, DeploymentStatus.SUCCEEDED)
    ledger.record_promotion(v2, to_env="prod", from_env="staging", reason="release train")
    running = ledger.start_deployment(v2, "prod", strategy="canary", reason="train")
    ledger.record_step(running, 0, "plan", StepStatus.SUCCEEDED, detail={"n": 1})
    ledger.record_step(running, 1, "pause", StepStatus.RUNNING, detail={"until": "later"})

    # qa: two overlapping rollouts; the one that finished last is current.
    early = ledger.start_deployment(v1, "qa", strategy="rolling")
    late = ledger.start_deployment(v2, "qa", strategy="rolling")
    ledger.finish_deployment(late, DeploymentStatus.SUCCEEDED)
    ledger.finish_deployment(early, DeploymentStatus.SUCCEEDED)

    # edge: a promotion and a failed deployment stamped the same instant: the deployment
    # counts as after the promotion, so the promotion no longer says what runs.
    before = ledger.start_deployment(v1, "edge", strategy="rolling")
    ledger.finish_deployment(before, DeploymentStatus.SUCCEEDED)
    instant = ledger.now()
    ledger.record_promotion(v3, to_env="edge", at=instant)
    same_time = ledger.start_deployment(v3, "edge", strategy="rolling", at=instant)
    ledger.finish_deployment(same_time, DeploymentStatus.FAILED)

    # api: a pending deployment only.
    ledger.start_deployment(api, "dev", strategy="recreate", status=DeploymentStatus.PENDING)


def assert_same_reads(expected: LedgerReads, actual: LedgerReads) -> None:
    """Every read `status` makes gives the same records from both."""
    for service, env in PLACES:
        place = f"{service}/{env}"
        assert actual.current_release(service, env) == expected.current_release(service, env), place
        assert actual.unfinished_deployment(service, env) == expected.unfinished_deployment(
            service, env
        ), place
        for limit in (None, 1, 10):
            assert actual.deployments(service, env, limit=limit) == expected.deployments(
                service, env, limit=limit
            ), (place, limit)
            assert actual.deployments_between(
                service=service, env=env, limit=limit
            ) == expected.deployments_between(service=service, env=env, limit=limit), (
                place,
                limit,
            )
        assert actual.deployments(service) == expected.deployments(service), service
    assert actual.deployments_between() == expected.deployments_between()
