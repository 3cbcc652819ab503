"""`dockroll pause` requests against the executor: held at the current split, consumed by resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockroll.config import CanaryConfig, Strategy
from dockroll.ledger import DeploymentStatus, Ledger, open_ledger
from tests.unit.rollout.test_executor import SERVICE, Harness, harness, make_config


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def _ask_to_pause_once(h: Harness) -> None:
    """Record a `dockroll pause` for the running deployment at the first wait of a step."""
    sleep = h.clock.sleep
    asked = False

    def sleep_then_ask(seconds: float) -> None:
        nonlocal asked
        if not asked:
            asked = True
            running = h.ledger.deployments(SERVICE, "prod", limit=1)[0]
            h.ledger.audit("pause", service=SERVICE, env="prod", target=str(running.id))
        sleep(seconds)

    h.clock.sleep = sleep_then_ask  # type: ignore[method-assign]


def test_a_pause_request_holds_the_canary_and_resume_consumes_it(ledger: Ledger) -> None:
    h = harness(
        ledger, make_config(Strategy.CANARY, canary=CanaryConfig(steps=[10, 50, 100], pause=5.0))
    )
    _ask_to_pause_once(h)

    paused = h.deploy(h.v2)
    assert paused.status == "paused"
    assert paused.paused_at == 10
    assert h.latest().status is DeploymentStatus.RUNNING

    # The request was answered by that pause; resuming must not stop at the next step again.
    resumed = h.runner().resume(h.latest(), h.v2)
    assert resumed.status == "succeeded"
    assert h.latest().status is DeploymentStatus.SUCCEEDED


def test_a_new_pause_request_after_resume_holds_again(ledger: Ledger) -> None:
    h = harness(
        ledger, make_config(Strategy.CANARY, canary=CanaryConfig(steps=[10, 50, 100], pause=5.0))
    )
    _ask_to_pause_once(h)
    assert h.deploy(h.v2).paused_at == 10

    _ask_to_pause_once(h)
    again = h.runner().resume(h.latest(), h.v2)
    assert again.status == "paused"
    assert again.paused_at == 50
