"""Deployments and the steps a rollout executor records."""

from __future__ import annotations

import pytest

from dockroll.errors import LedgerError
from dockroll.ledger import (
    DeploymentId,
    DeploymentKind,
    DeploymentStatus,
    Ledger,
    StepStatus,
)
from tests.unit.ledger.conftest import add_release


def test_a_deployment_from_start_to_finish(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0")
    started = ledger.start_deployment(release, "dev", strategy="rolling", reason="new build")

    assert started.status is DeploymentStatus.RUNNING
    assert started.kind is DeploymentKind.DEPLOY
    assert (started.service, started.env, started.version) == ("web", "dev", "1.0.0")
    assert started.digest == release.digest
    assert started.started_by == "alice"
    assert started.finished_at is None
    assert started.previous_release_id is None
    assert started.steps == ()

    finished = ledger.finish_deployment(started.id, DeploymentStatus.SUCCEEDED, message="3/3 up")
    assert finished.status is DeploymentStatus.SUCCEEDED
    assert finished.finished_at is not None
    assert finished.finished_at > finished.started_at
    assert finished.message == "3/3 up"
    assert ledger.deployment(started.id) == finished


def test_steps_are_recorded_before_and_after(ledger: Ledger) -> None:
    deployment = ledger.start_deployment(add_release(ledger, "1.0.0"), "dev", strategy="canary")

    before = ledger.record_step(deployment, 0, "start", StepStatus.RUNNING, detail={"slot": "b"})
    assert before.finished_at is None
    after = ledger.record_step(
        deployment, 0, "start", StepStatus.SUCCEEDED, detail={"container": "web-b-1"}
    )
    assert after.started_at == before.started_at
    assert after.finished_at is not None
    assert after.detail == {"slot": "b", "container": "web-b-1"}
    ledger.record_step(deployment.id, 1, "shift_weight", StepStatus.PENDING, detail={"to": 10})
    ledger.record_step(deployment.id, 2, "drain", StepStatus.SKIPPED)

    steps = ledger.deployment(deployment.id).steps
    assert [(s.index, s.kind, s.status) for s in steps] == [
        (0, "start", StepStatus.SUCCEEDED),
        (1, "shift_weight", StepStatus.PENDING),
        (2, "drain", StepStatus.SKIPPED),
    ]
    assert steps[1].detail == {"to": 10}
    assert steps[2].finished_at is not None


def test_a_step_keeps_its_kind(ledger: Ledger) -> None:
    deployment = ledger.start_deployment(add_release(ledger, "1.0.0"), "dev", strategy="rolling")
    ledger.record_step(deployment, 0, "start", StepStatus.RUNNING)
    with pytest.raises(LedgerError, match="is 'start', not 'drain'"):
        ledger.record_step(deployment, 0, "drain", StepStatus.RUNNING)


def test_unknown_deployment_is_a_ledger_error(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="no deployment 42"):
        ledger.record_step(DeploymentId(42), 0, "start", StepStatus.RUNNING)
    with pytest.raises(LedgerError, match="no deployment 42"):
        ledger.finish_deployment(DeploymentId(42), DeploymentStatus.FAILED)
    with pytest.raises(LedgerError, match="no deployment 42"):
        ledger.deployment(DeploymentId(42))


def test_a_deployment_finishes_once_and_with_a_final_status(ledger: Ledger) -> None:
    release = add_release(ledger, "1.0.0")
    with pytest.raises(LedgerError, match="starts pending or running"):
        ledger.start_deployment(release, "dev", strategy="rolling", status=DeploymentStatus.FAILED)
    deployment = ledger.start_deployment(
        release, "dev", strategy="rolling", status=DeploymentStatus.PENDING
    )
    assert deployment.status is DeploymentStatus.PENDING
    with pytest.raises(LedgerError, match="final status"):
        ledger.finish_deployment(deployment, DeploymentStatus.RUNNING)
    ledger.finish_deployment(deployment, DeploymentStatus.ABORTED, message="lock held")
    with pytest.raises(LedgerError, match="already finished as aborted"):
        ledger.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)


def test_deployments_newest_first_by_env_with_previous_release(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    first = ledger.finish_deployment(
        ledger.start_deployment(one, "prod", strategy="rolling"), DeploymentStatus.SUCCEEDED
    )
    second = ledger.finish_deployment(
        ledger.start_deployment(two, "prod", strategy="blue-green"),
        DeploymentStatus.ROLLED_BACK,
        message="error rate 12% > 1%",
    )
    back = ledger.finish_deployment(
        ledger.start_deployment(
            one, "prod", strategy="blue-green", kind=DeploymentKind.ROLLBACK, who="pager"
        ),
        DeploymentStatus.SUCCEEDED,
    )
    dev = ledger.start_deployment(two, "dev", strategy="recreate")

    assert second.previous_release_id == one.id
    assert back.previous_release_id == one.id  # 2.0.0 never succeeded in prod
    assert back.kind is DeploymentKind.ROLLBACK
    assert back.started_by == "pager"
    assert ledger.deployments("web", "prod") == [back, second, first]
    assert ledger.deployments("web") == [dev, back, second, first]
    assert ledger.deployments("web", limit=2) == [dev, back]
    assert ledger.deployments("api") == []
    assert ledger.current_release("web", "prod") == one


def test_previous_release_is_what_ran_not_what_was_just_promoted(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    ledger.finish_deployment(
        ledger.start_deployment(one, "prod", strategy="rolling"), DeploymentStatus.SUCCEEDED
    )
    # The usual order: promote (retag) first, then roll the promoted digest out.
    ledger.record_promotion(two, from_env="staging", to_env="prod", tags=["prod"])
    assert ledger.current_release("web", "prod") == two
    deployment = ledger.start_deployment(two, "prod", strategy="canary")
    assert deployment.previous_release_id == one.id


def test_a_first_deployment_after_a_promotion_has_no_previous_release(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    ledger.record_promotion(one, to_env="dev", tags=["dev"])
    assert ledger.start_deployment(one, "dev", strategy="rolling").previous_release_id is None


def test_the_unfinished_deployment_of_an_environment_comes_with_its_steps(ledger: Ledger) -> None:
    one = add_release(ledger, "1.0.0")
    two = add_release(ledger, "2.0.0")
    assert ledger.unfinished_deployment("web", "prod") is None
    ledger.finish_deployment(
        ledger.start_deployment(one, "prod", strategy="rolling"), DeploymentStatus.SUCCEEDED
    )
    assert ledger.unfinished_deployment("web", "prod") is None
    running = ledger.start_deployment(two, "prod", strategy="canary")
    ledger.record_step(running, 0, "plan", StepStatus.SUCCEEDED)
    ledger.start_deployment(two, "dev", strategy="recreate")

    found = ledger.unfinished_deployment("web", "prod")
    assert found is not None
    assert found.id == running.id
    assert [step.kind for step in found.steps] == ["plan"]
    assert ledger.unfinished_deployment("api", "prod") is None
    ledger.finish_deployment(running, DeploymentStatus.ABORTED)
    assert ledger.unfinished_deployment("web", "prod") is None
