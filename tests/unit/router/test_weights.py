"""Traffic shares from weights, and weights from wanted shares."""

from __future__ import annotations

import pytest

from dockroll.router import (
    BackendServer,
    ServerHealth,
    ServerState,
    traffic_shares,
    weights_for_shares,
)


def _server(
    name: str,
    weight: int,
    state: ServerState = ServerState.READY,
    health: ServerHealth = ServerHealth.UP,
) -> BackendServer:
    return BackendServer(
        name=name, address="10.0.0.1", port=80, weight=weight, state=state, health=health
    )


def test_shares_follow_weights_of_servers_that_take_traffic() -> None:
    shares = traffic_shares(
        [
            _server("a", 30),
            _server("b", 10),
            _server("drained", 50, state=ServerState.DRAIN),
            _server("down", 50, health=ServerHealth.DOWN),
            _server("unchecked", 0, health=ServerHealth.NO_CHECK),
        ]
    )

    assert shares == {"a": 0.75, "b": 0.25, "drained": 0.0, "down": 0.0, "unchecked": 0.0}


def test_all_zero_shares_mean_the_router_points_at_nothing() -> None:
    shares = traffic_shares([_server("a", 0), _server("b", 5, state=ServerState.MAINT)])

    assert shares == {"a": 0.0, "b": 0.0}
    assert traffic_shares([]) == {}


@pytest.mark.parametrize(
    ("shares", "total", "weights"),
    [
        ({"new": 10, "old": 90}, 100, {"new": 10, "old": 90}),
        ({"new": 1, "old": 2}, 100, {"new": 33, "old": 67}),
        ({"a": 1, "b": 1, "c": 1}, 100, {"a": 34, "b": 33, "c": 33}),
        ({"new": 0.5, "old": 0.5}, 256, {"new": 128, "old": 128}),
        ({"new": 100, "old": 0}, 100, {"new": 100, "old": 0}),
        ({"new": 0.1, "old": 99.9}, 100, {"new": 1, "old": 99}),
        ({"new": 0.001, "old": 99.999}, 100, {"new": 1, "old": 99}),
    ],
)
def test_weights_for_shares(shares: dict[str, float], total: int, weights: dict[str, int]) -> None:
    assert weights_for_shares(shares, total=total) == weights


def test_weights_always_sum_to_the_total() -> None:
    for new in range(101):
        weights = weights_for_shares({"new": new, "old": 100 - new})
        assert sum(weights.values()) == 100
        assert weights["new"] == new


@pytest.mark.parametrize(
    ("shares", "total", "message"),
    [
        ({"a": 1}, 0, "between 1 and 256"),
        ({"a": 1}, 257, "between 1 and 256"),
        ({"a": -1, "b": 2}, 100, "non-negative"),
        ({"a": float("nan")}, 100, "finite"),
        ({"a": 0, "b": 0}, 100, "positive"),
        ({}, 100, "positive"),
    ],
)
def test_weights_for_shares_rejects_nonsense(
    shares: dict[str, float], total: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        weights_for_shares(shares, total=total)
