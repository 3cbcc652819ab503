"""A canary step ends on evidence: undecided at its end it is extended, then `no_data` decides.

The fake router counts the requests a test sends through it (``serve``) and the
analysis reads them from its stats, as it reads HAProxy's counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockroll.analysis import AnalysisSettings
from dockroll.config import CanaryConfig, Strategy
from dockroll.errors import RolloutError
from dockroll.events import Progress
from dockroll.ledger import DeploymentStatus, DeploymentStep, Ledger, StepStatus, open_ledger
from dockroll.rollout.executor import RolloutOutcome, pinned_image
from tests.unit.rollout.fakes import FakeRouter
from tests.unit.rollout.test_executor import (
    Harness,
    assert_never_dark,
    assert_serves_only,
    harness,
    make_config,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def _canary(
    ledger: Ledger, *, pause: float, per_second: float, **analysis: Any
) -> tuple[Harness, list[str]]:
    """A 10 % canary step analysed every second while ``per_second`` requests arrive."""
    h = harness(ledger, make_config(Strategy.CANARY))
    h.config = make_config(
        Strategy.CANARY,
        canary=CanaryConfig(steps=[10, 100], pause=pause),
        analysis=AnalysisSettings.model_validate({"interval": "1s", "watch": 0, **analysis}),
    )
    last = [h.clock.now]

    def traffic(router: FakeRouter) -> None:
        router.serve(per_second * (h.clock.now - last[0]))
        last[0] = h.clock.now

    h.router.on_stats = traffic
    return h, []


def _deploy(h: Harness, said: list[str]) -> RolloutOutcome:
    def hear(event: Progress) -> None:
        said.append(event.message)

    runner = h.runner()
    runner.progress = hear
    h.engine.images.add(pinned_image(h.v2))
    return runner.start(h.plan(h.v2), h.v2)


def _pause_step(h: Harness) -> DeploymentStep:
    return next(s for s in h.latest().steps if s.kind == "pause")


def test_a_quiet_canary_is_extended_and_never_passes_silently(ledger: Ledger) -> None:
    # 2 requests a second: 0.2 a second reach the 10 % canary, far from 100 in 5 s.
    h, said = _canary(ledger, pause=5.0, per_second=2.0, max_extension="60s")
    started = h.clock.now

    outcome = _deploy(h, said)

    # The default policy (inconclusive) goes on after the bound, but says why and records it.
    assert outcome.status == "succeeded"
    assert any(m.startswith("insufficient data, extending the step at 10%") for m in said), said
    assert any("going on without a pass (no_data: inconclusive)" in m for m in said), said
    evidence = _pause_step(h).detail["evidence"]
    assert evidence["ending"] == "proceed"
    assert evidence["min_sample"] == 100
    assert evidence["canary_requests"] < 100
    assert evidence["extended_seconds"] == pytest.approx(60.0, abs=1.0)
    assert h.clock.now - started >= 65.0
    assert_never_dark(h)


def test_the_extension_ends_once_the_minimum_sample_is_reached(ledger: Ledger) -> None:
    # 20 requests a second: 2 a second on the canary, too few per interval for the
    # per-interval judges (20), so the analysis stays undecided; 100 take about 50 s.
    h, said = _canary(ledger, pause=10.0, per_second=20.0)

    outcome = _deploy(h, said)

    assert outcome.status == "succeeded"
    evidence = _pause_step(h).detail["evidence"]
    assert evidence["ending"] == "proceed"
    assert evidence["canary_requests"] >= 100
    assert 30.0 <= evidence["extended_seconds"] <= 50.0, evidence
    assert "undecided after" in evidence["reason"]
    assert_serves_only(h, h.v2)


def test_a_step_too_short_to_judge_is_extended_until_the_analysis_passes(
    ledger: Ledger,
) -> None:
    # Healthy and busy (30 canary requests a second), but one second is no evidence.
    h, said = _canary(ledger, pause=1.0, per_second=300.0, min_sample=300)

    outcome = _deploy(h, said)

    assert outcome.status == "succeeded"
    pause = _pause_step(h)
    assert pause.detail["analysis"]["action"] == "pass", pause.detail
    assert pause.detail["evidence"]["ending"] == "pass"
    assert pause.detail["evidence"]["extended_seconds"] > 0
    assert any(m.startswith("analysis passed at 10%") for m in said), said
    assert_serves_only(h, h.v2)


def test_no_data_fail_rolls_back_a_step_that_ends_without_evidence(ledger: Ledger) -> None:
    h, said = _canary(ledger, pause=1.0, per_second=2.0, no_data="fail")
    old = dict(h.app_containers())

    with pytest.raises(RolloutError) as raised:
        _deploy(h, said)

    assert "rolled back" in raised.value.message
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    assert [s.kind for s in deployment.steps if s.status is StepStatus.FAILED] == ["pause"]
    assert h.app_containers() == old
    assert_serves_only(h, h.v1)
    assert_never_dark(h)


def test_no_data_fail_with_the_extension_spent_rolls_back(ledger: Ledger) -> None:
    # No interval lacks data for the judges that are left (the SPRT counts every request),
    # so only the end of the step can find that 100 canary requests never came.
    h, said = _canary(
        ledger,
        pause=5.0,
        per_second=30.0,
        no_data="fail",
        success_rate=None,
        baseline=None,
        max_extension="20s",
    )

    with pytest.raises(RolloutError) as raised:
        _deploy(h, said)

    assert "analysis undecided at 10% on the new release: insufficient data" in str(
        raised.value.message
    )
    failed = next(s for s in h.latest().steps if s.status is StepStatus.FAILED)
    assert failed.detail["analysis"]["evidence"]["ending"] == "fail"
    assert failed.detail["analysis"]["evidence"]["canary_requests"] < 100
    assert_serves_only(h, h.v1)
    assert_never_dark(h)


def test_no_data_pause_holds_a_step_that_ends_without_evidence(ledger: Ledger) -> None:
    h, said = _canary(ledger, pause=1.0, per_second=2.0, no_data="pause", max_extension=0)

    outcome = _deploy(h, said)

    assert outcome.status == "paused"
    assert outcome.paused_at == 10
    pause = _pause_step(h)
    assert pause.status is StepStatus.RUNNING
    assert pause.detail["evidence"]["ending"] == "pause"
    assert any("holding for a person (no_data: pause)" in m for m in said), said
    # A person looked and promotes: resuming goes on to the next step.
    resumed = h.runner().resume(h.latest(), h.v2)
    assert resumed.status == "succeeded"
    assert_serves_only(h, h.v2)
    assert_never_dark(h)


def test_without_analysis_a_step_ends_on_time(ledger: Ledger) -> None:
    h = harness(ledger, make_config(Strategy.CANARY))
    h.config = make_config(Strategy.CANARY, canary=CanaryConfig(steps=[10, 100], pause=5.0))
    said: list[str] = []
    started = h.clock.now

    assert _deploy(h, said).status == "succeeded"

    assert h.clock.now - started < 10.0
    assert not any("extending" in m for m in said)
