"""Rebalancing: which replicas move, the plan that moves them, and that it never goes dark."""

from __future__ import annotations

import pytest

from dockroll.config import Strategy
from dockroll.ledger import DeploymentStatus, Ledger
from dockroll.rollout.executor import observe
from dockroll.rollout.plan import AddServers, AwaitHealthy, Drain, SetWeights, Start, Stop, Target
from dockroll.rollout.rebalance import Placed, plan_moves, plan_rebalance
from tests.unit.rollout.test_executor import (
    ENV,
    SERVICE,
    assert_never_dark,
    assert_serves_only,
    harness,
    ledger,
    make_config,
)

__all__ = ["ledger"]  # the fixture, used by name


def _placed(*nodes: str, slot: str = "r") -> list[Placed]:
    return [Placed(f"web-prod-{slot}-{i}", node, slot, 100) for i, node in enumerate(nodes, 1)]


@pytest.mark.parametrize(
    ("nodes", "eligible", "moved"),
    [
        (("a", "a"), ("a", "b"), ["web-prod-r-1"]),  # two on one node, none on the other
        (("a", "b"), ("a", "b"), []),  # spread
        (("a", "a", "b"), ("a", "b"), []),  # 2 and 1: a move would only swap them
        (("a", "a", "a"), ("a", "b", "c"), ["web-prod-r-1", "web-prod-r-2"]),
        (("a", "a", "a", "a"), ("a", "b"), ["web-prod-r-1", "web-prod-r-2"]),
        (("a", "a"), ("a",), []),  # nowhere else to go
        (("a", "a"), ("b", "c"), []),  # on a drained node: Swarm's to move
        (("a", "a", "b", "b"), ("a", "b", "c", "d"), ["web-prod-r-1", "web-prod-r-3"]),
    ],
)
def test_a_replica_moves_only_when_the_move_spreads_them_better(
    nodes: tuple[str, ...], eligible: tuple[str, ...], moved: list[str]
) -> None:
    assert [p.name for p in plan_moves(_placed(*nodes), eligible)] == moved


def test_each_replacement_serves_before_the_replica_it_replaces_goes() -> None:
    moves = [Placed("web-prod-blue-1", "a", "blue", 100), Placed("web-prod-blue-3", "b", "blue", 7)]
    target = Target(SERVICE, ENV, "v1.0.0", "sha256:" + "0" * 64, 4)  # type: ignore[arg-type]
    taken = {"web-prod-blue-1", "web-prod-blue-2", "web-prod-blue-3", "web-prod-blue-4"}

    plan = plan_rebalance(moves, target, taken)

    assert plan.new == ("web-prod-blue-5", "web-prod-blue-6")
    assert plan.old == ("web-prod-blue-1", "web-prod-blue-3")
    assert plan.strategy is Strategy.ROLLING
    assert plan.steps[:6] == (
        Start(("web-prod-blue-5",), "blue"),
        AwaitHealthy(("web-prod-blue-5",)),
        AddServers(("web-prod-blue-5",)),
        SetWeights({"web-prod-blue-5": 100}),
        Drain(("web-prod-blue-1",)),
        Stop(("web-prod-blue-1",)),
    )
    # The replacement takes the weight of the one it replaces.
    assert plan.steps[9] == SetWeights({"web-prod-blue-6": 7})


def test_the_executor_performs_a_rebalance_without_going_dark(ledger: Ledger) -> None:
    h = harness(ledger, make_config(Strategy.ROLLING, replicas=2))
    observed = observe(h.engine, h.router, SERVICE, ENV)
    (first, second) = observed.replicas
    target = Target(SERVICE, ENV, h.v1.version, h.v1.digest, 2)
    plan = plan_rebalance(
        [Placed(first.name, "a", first.slot, 100)], target, {r.name for r in observed.replicas}
    )

    outcome = h.runner().start(plan, h.v1, reason="rebalance")

    assert outcome.status == "succeeded"
    assert set(h.app_containers()) == {second.name, *plan.new}
    assert_serves_only(h, h.v1)
    assert_never_dark(h)
    assert h.latest().status is DeploymentStatus.SUCCEEDED
    assert h.latest().reason == "rebalance"
