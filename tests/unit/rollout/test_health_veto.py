"""The health veto during a canary step: only the new release's replicas can fail it.

An old replica that fails the router's checks is the previous release's problem:
it is taken out of rotation and reported, the canary keeps its planned share,
and the new release is not rolled back for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockroll.config import CanaryConfig, Strategy
from dockroll.errors import RolloutError
from dockroll.events import Progress
from dockroll.ledger import DeploymentStatus, Ledger, StepStatus, open_ledger
from dockroll.rollout.executor import RolloutOutcome, pinned_image
from dockroll.router.port import ServerHealth
from tests.unit.rollout.test_executor import (
    ENV,
    SERVICE,
    Harness,
    assert_never_dark,
    assert_serves_only,
    harness,
    make_config,
)

OLD_1, OLD_2 = f"{SERVICE}-{ENV}-stable-1", f"{SERVICE}-{ENV}-stable-2"
CANARY_1 = f"{SERVICE}-{ENV}-canary-1"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def _canary(ledger: Ledger, replicas: int = 2) -> Harness:
    h = harness(ledger, make_config(Strategy.CANARY, replicas=replicas))
    h.config = make_config(
        Strategy.CANARY, replicas=replicas, canary=CanaryConfig(steps=[10, 50, 100], pause=5.0)
    )
    return h


def _falls_sick(h: Harness, name: str, *, flapping: bool = False) -> list[float]:
    """``name`` fails its router checks after the first second of the first step.

    ``flapping``: it passes them again a second later, and fails and passes in turn.
    Returns the canary's traffic share at each wait from then on.
    """
    sleep = h.clock.sleep
    waits = 0
    shares: list[float] = []

    def sleep_and_sicken(seconds: float) -> None:
        nonlocal waits
        waits += 1
        if waits == 1:
            h.router.set_health(name, ServerHealth.DOWN)
        elif flapping and waits > 1:
            h.router.set_health(name, ServerHealth.UP if waits % 2 else ServerHealth.DOWN)
        if waits >= 1:
            shares.append(h.router.shares().get(CANARY_1, 0.0))
        sleep(seconds)

    h.clock.sleep = sleep_and_sicken  # type: ignore[method-assign]
    return shares


def _deploy(h: Harness, said: list[str]) -> RolloutOutcome:
    def hear(event: Progress) -> None:
        said.append(event.message)

    runner = h.runner()
    runner.progress = hear
    h.engine.images.add(pinned_image(h.v2))
    return runner.start(h.plan(h.v2), h.v2)


@pytest.mark.parametrize("flapping", [False, True], ids=["down", "flapping"])
def test_a_sick_old_replica_is_taken_out_and_the_canary_goes_on(
    ledger: Ledger, flapping: bool
) -> None:
    h = _canary(ledger)
    shares = _falls_sick(h, OLD_1, flapping=flapping)
    said: list[str] = []

    outcome = _deploy(h, said)

    assert outcome.status == "succeeded", said
    assert h.latest().status is DeploymentStatus.SUCCEEDED
    assert any(
        m.startswith(f"{OLD_1} of the previous release failed its health checks at 10%")
        and "out of rotation" in m
        for m in said
    ), said
    first_pause = next(s for s in h.latest().steps if s.kind == "pause")
    assert first_pause.detail["out_of_rotation"] == [OLD_1]
    # Out for the rest of the rollout, even when its checks pass again: no 50 % step gives
    # it traffic, and the canary has its planned share throughout (the other old replica
    # takes the sick one's).
    fifty = [s for s in h.latest().steps if s.kind == "set-weights"][1]
    assert fifty.detail["weights"][OLD_1] == 0
    assert fifty.detail["weights"][OLD_2] > 0
    assert shares
    assert all(
        share == pytest.approx(0.1, abs=0.02) or share == pytest.approx(0.5, abs=0.02)
        for share in shares[1:]
    ), shares
    assert_serves_only(h, h.v2)
    assert_never_dark(h)


def test_the_only_old_replica_falling_sick_is_reported_and_keeps_its_weight(
    ledger: Ledger,
) -> None:
    # Nothing of the old release could take its share: its weight stays (the router skips it
    # while it is down) rather than leave anything pointing at nothing.
    h = _canary(ledger, replicas=1)
    _falls_sick(h, OLD_1)
    said: list[str] = []

    outcome = _deploy(h, said)

    assert outcome.status == "succeeded", said
    assert any(
        m.startswith(f"{OLD_1} of the previous release failed its health checks at 10%")
        for m in said
    ), said
    first_pause = next(s for s in h.latest().steps if s.kind == "pause")
    assert "out_of_rotation" not in first_pause.detail
    assert_serves_only(h, h.v2, replicas=1)
    assert_never_dark(h)


def test_a_sick_new_replica_still_rolls_back_and_the_message_names_the_new_release(
    ledger: Ledger,
) -> None:
    h = _canary(ledger)
    _falls_sick(h, CANARY_1)

    with pytest.raises(RolloutError) as raised:
        _deploy(h, [])

    assert f"{CANARY_1} of the new release ({h.v2.version}) failed its health checks at 10%" in (
        raised.value.message
    )
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    assert [s.kind for s in deployment.steps if s.status is StepStatus.FAILED] == ["pause"]
    assert_serves_only(h, h.v1)
    assert_never_dark(h)


def test_the_running_step_records_a_replica_taken_out_at_once(ledger: Ledger) -> None:
    # The step may end as a hold (here: `dockroll pause`) before it finishes: the record
    # says what was taken out all the same.
    h = _canary(ledger)
    _falls_sick(h, OLD_1)
    sleep = h.clock.sleep

    def sleep_then_ask_to_pause(seconds: float) -> None:
        sleep(seconds)
        running = h.ledger.deployments(SERVICE, ENV, limit=1)[0]
        h.ledger.audit("pause", service=SERVICE, env=ENV, target=str(running.id))

    h.clock.sleep = sleep_then_ask_to_pause  # type: ignore[method-assign]

    outcome = _deploy(h, [])

    assert outcome.status == "paused"
    pause = next(s for s in h.latest().steps if s.kind == "pause")
    assert pause.status is StepStatus.RUNNING
    assert pause.detail["out_of_rotation"] == [OLD_1]
    assert h.router.weights()[OLD_1] == 0
    assert_never_dark(h)
