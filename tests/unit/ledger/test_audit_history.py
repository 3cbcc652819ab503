"""The audit trail and the merged history."""

from __future__ import annotations

import json
from datetime import timedelta

from dockroll.ledger import (
    DeploymentKind,
    DeploymentStatus,
    HistoryKind,
    Ledger,
    Outcome,
)
from tests.unit.ledger.conftest import START, add_release


def test_audit_events_filtered_newest_first(ledger: Ledger) -> None:
    push = ledger.audit("push", service="web", target="127.0.0.1:5000/team/web:1.0.0")
    denied = ledger.audit(
        "promote",
        service="web",
        env="prod",
        target="1.0.0",
        outcome=Outcome.DENIED,
        detail={"rule": "requires_approval", "approvers": ["carol"]},
        who="mallory",
    )
    other = ledger.audit("deploy", service="api", env="prod", outcome=Outcome.FAILED)
    login = ledger.audit("registry-login")

    assert push.actor == "alice"
    assert push.outcome is Outcome.OK
    assert denied.detail == {"rule": "requires_approval", "approvers": ["carol"]}
    assert ledger.audit_events() == [login, other, denied, push]
    assert ledger.audit_events(service="web") == [denied, push]
    assert ledger.audit_events(env="prod") == [other, denied]
    assert ledger.audit_events(action="promote") == [denied]
    assert ledger.audit_events(actor="mallory") == [denied]
    assert ledger.audit_events(service="web", env="prod", action="promote") == [denied]
    assert ledger.audit_events(since=denied.at) == [login, other, denied]
    assert ledger.audit_events(limit=1) == [login]


def test_audit_keeps_a_given_time(ledger: Ledger) -> None:
    when = START - timedelta(days=30)
    event = ledger.audit("deploy", service="web", at=when)
    assert event.at == when
    assert ledger.audit_events()[-1] == event


def test_history_merges_promotions_deployments_and_rollbacks(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    ledger.finish_deployment(
        ledger.start_deployment(one, "dev", strategy="recreate"), DeploymentStatus.SUCCEEDED
    )
    ledger.record_promotion(one, from_env="dev", to_env="prod", notes="first release")
    ledger.finish_deployment(
        ledger.start_deployment(one, "prod", strategy="rolling"), DeploymentStatus.SUCCEEDED
    )
    ledger.record_promotion(two, from_env="dev", to_env="prod", reason="hotfix", notes="fix")
    ledger.finish_deployment(
        ledger.start_deployment(two, "prod", strategy="blue-green"),
        DeploymentStatus.ROLLED_BACK,
        message="p99 latency 2.1s > 500ms",
    )
    ledger.finish_deployment(
        ledger.start_deployment(one, "prod", strategy="blue-green", kind=DeploymentKind.ROLLBACK),
        DeploymentStatus.SUCCEEDED,
    )
    add_release(ledger, "1.0.0", service="api")

    prod = ledger.history("web", "prod")
    assert [(e.kind, e.version, e.status) for e in prod] == [
        (HistoryKind.ROLLBACK, "1.0.0", "succeeded"),
        (HistoryKind.DEPLOYMENT, "2.0.0", "rolled_back"),
        (HistoryKind.PROMOTION, "2.0.0", "succeeded"),
        (HistoryKind.DEPLOYMENT, "1.0.0", "succeeded"),
        (HistoryKind.PROMOTION, "1.0.0", "succeeded"),
    ]
    assert [e.at for e in prod] == sorted((e.at for e in prod), reverse=True)
    assert prod[1].notes == "p99 latency 2.1s > 500ms"
    assert prod[1].strategy == "blue-green"
    assert (prod[2].from_env, prod[2].reason, prod[2].notes) == ("dev", "hotfix", "fix")
    assert all(e.env == "prod" and e.service == "web" for e in prod)

    everywhere = ledger.history("web")
    assert len(everywhere) == 6
    assert everywhere[-1].env == "dev"
    assert ledger.history("web", limit=2) == everywhere[:2]
    assert ledger.history("api") == []


def test_history_puts_a_deployment_after_a_promotion_at_the_same_instant(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0")
    ledger.record_promotion(release, to_env="prod", at=START)
    ledger.start_deployment(release, "prod", strategy="rolling", at=START)

    kinds = [e.kind for e in ledger.history("web")]
    assert kinds == [HistoryKind.DEPLOYMENT, HistoryKind.PROMOTION]


def test_as_dict_is_json_ready(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0", labels={"a": "b"})
    deployment = ledger.start_deployment(release, "dev", strategy="rolling")
    ledger.record_step(deployment, 0, "start", "running", detail={"n": 1})  # type: ignore[arg-type]
    data = ledger.deployment(deployment.id).as_dict()

    assert json.loads(json.dumps(data)) == data
    assert data["steps"][0]["detail"] == {"n": 1}
    assert data["started_at"].endswith("+00:00")
    assert release.as_dict()["labels"] == {"a": "b"}
    assert release.as_dict()["tags"] == ["1.0.0"]
