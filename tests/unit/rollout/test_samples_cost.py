"""Each analysis tick of a rollout lands in the ledger; an undone release's cost is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dockroll.analysis import AnalysisSettings
from dockroll.analysis.replay import replay
from dockroll.config import CanaryConfig, Strategy
from dockroll.errors import RolloutError
from dockroll.ledger import (
    DeploymentId,
    DeploymentStatus,
    DeploymentStep,
    Ledger,
    StepStatus,
    open_ledger,
)
from dockroll.rollout.cost import traffic_seconds
from dockroll.rollout.executor import pinned_image
from tests.unit.rollout.fakes import FakeRouter
from tests.unit.rollout.test_executor import Harness, harness, make_config


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def _canary(ledger: Ledger, *, failing: bool) -> Harness:
    """A 10 % canary step of 20 s, analysed every second under 500 requests a second."""
    h = harness(ledger, make_config(Strategy.CANARY))
    h.config = make_config(
        Strategy.CANARY,
        canary=CanaryConfig(steps=[10, 100], pause=20.0),
        analysis=AnalysisSettings.model_validate({"interval": "1s", "watch": 0}),
    )
    last = [h.clock.now]

    def traffic(router: FakeRouter) -> None:
        new = [s.name for s in router.servers() if s.name not in h.old_names]
        router.serve(500 * (h.clock.now - last[0]), failing=new if failing else ())
        last[0] = h.clock.now

    h.old_names = {s.name for s in h.router.servers()}  # type: ignore[attr-defined]
    h.router.on_stats = traffic
    h.engine.images.add(pinned_image(h.v2))
    return h


def test_every_tick_of_a_passing_canary_is_recorded_with_weights_and_decision(
    ledger: Ledger,
) -> None:
    h = _canary(ledger, failing=False)
    h.runner().start(h.plan(h.v2), h.v2)

    deployment = h.latest()
    assert deployment.status is DeploymentStatus.SUCCEEDED
    samples = ledger.samples(deployment)
    pause = next(s for s in deployment.steps if s.kind == "pause")
    assert samples
    assert {s.step_index for s in samples} == {pause.index}
    first, measured = samples[0], samples[1:]
    assert first.detail["sampled"] == "snapshot"
    assert first.detail["settings"]["interval"] == 1.0
    assert set(first.detail["groups"]) == {"canary", "baseline"}
    assert first.canary_requests is None
    assert all(s.percent == 10 for s in samples)
    shares = [s.canary_weight / (s.canary_weight + s.baseline_weight) for s in samples]
    assert shares == [pytest.approx(0.1, abs=0.005)] * len(samples)
    assert all(s.detail["sampled"] == "measured" for s in measured)
    assert sum(s.canary_requests or 0 for s in measured) == pytest.approx(
        0.1 * sum((s.canary_requests or 0) + (s.baseline_requests or 0) for s in measured), rel=0.1
    )
    assert all(s.canary_errors == 0 for s in measured)
    assert samples[-1].action == "pass"
    assert not replay(samples, {}).differs
    assert [s.tick for s in samples] == list(range(1, len(samples) + 1))
    assert deployment.failed_requests is None  # nothing was undone


def test_a_failing_canary_records_its_failing_ticks_and_what_it_cost(ledger: Ledger) -> None:
    h = _canary(ledger, failing=True)
    with pytest.raises(RolloutError):
        h.runner().start(h.plan(h.v2), h.v2)

    deployment = h.latest()
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    samples = ledger.samples(deployment)
    last = samples[-1]
    assert last.action == "fail"
    assert last.canary_error_rate == 1.0
    assert last.baseline_error_rate == 0.0
    assert last.reason in deployment.message  # type: ignore[operator]
    failed_checks = [v["check"] for v in last.detail["verdicts"] if v["outcome"] == "fail"]
    assert failed_checks
    # What was recorded is enough to reach the same decisions again, tick by tick.
    again = replay(samples, {})
    assert [t.action for t in again.ticks] == [s.action for s in samples]
    assert not again.differs
    measured = sum(s.canary_errors or 0 for s in samples)
    assert deployment.failed_requests is not None
    assert deployment.failed_requests == deployment.served_requests
    assert deployment.failed_requests >= measured > 0
    assert deployment.traffic_seconds is not None
    # 10 % of the traffic from the weight step until the rollback began.
    weighted = next(s for s in deployment.steps if s.kind == "set-weights" and s.detail)
    assert weighted.finished_at is not None
    assert 0 < deployment.traffic_seconds <= 0.1 * 60


def _weights_step(index: int, at: datetime, weights: dict[str, int]) -> DeploymentStep:
    return DeploymentStep(
        deployment_id=DeploymentId(1),
        index=index,
        kind="set-weights",
        status=StepStatus.SUCCEEDED,
        started_at=at,
        finished_at=at,
        detail={"weights": weights},
    )


def test_traffic_seconds_integrate_the_new_share_over_each_weight_step() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [
        _weights_step(6, t0 + timedelta(seconds=30), {"new-1": 50, "old-1": 50}),
        _weights_step(3, t0, {"new-1": 10, "old-1": 90}),
        DeploymentStep(DeploymentId(1), 4, "pause", StepStatus.SUCCEEDED, t0, t0, {}),
        _weights_step(8, t0 + timedelta(seconds=40), {}),
    ]
    # 10 % for 30 s, then 50 % for 10 s, then no weights recorded (share 0) until the end.
    assert traffic_seconds(steps, {"new-1"}, t0 + timedelta(seconds=100)) == 8.0
    assert traffic_seconds(steps, {"new-1"}, t0 + timedelta(seconds=20)) == 2.0
    assert traffic_seconds([], {"new-1"}, t0) == 0.0
