"""Rebalancing: which replicas to move off a node they share, and the steps that move them.

On a Swarm, dockroll spreads an environment's replicas when it starts them; a
drain or a lost node may later leave two of them on one node while another
node that may run them runs none. Moving one is a small rolling rollout of the
release that already serves: a replacement starts (the engine places it on a
less loaded node), takes the moved replica's weight once its checks pass, and
only then is the moved one drained and stopped. Pure functions over plain data,
like the strategies in :mod:`dockroll.rollout.plan`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockroll.config import Strategy
from dockroll.rollout.plan import (
    AddServers,
    AwaitHealthy,
    Drain,
    Plan,
    SetWeights,
    Start,
    Step,
    Stop,
    Target,
    replica_names,
)

__all__ = ["Placed", "plan_moves", "plan_rebalance"]


@dataclass(frozen=True)
class Placed:
    """A serving replica and the node it runs on."""

    name: str
    node: str
    slot: str
    weight: int


def plan_moves(placed: Sequence[Placed], eligible: Sequence[str]) -> list[Placed]:
    """The replicas to move so that no eligible node runs two more than another.

    A replica moves when its node runs at least two more of ``placed`` than the
    least loaded of the ``eligible`` nodes: only then does the move make the
    spread better (two replicas on one node and none on the other; not two on
    one and one on the other). Replicas on a node that is not eligible (drained,
    down) are Swarm's to move and count nowhere. Within a node, the first by name
    moves first.
    """
    loads = dict.fromkeys(eligible, 0)
    for replica in placed:
        if replica.node in loads:
            loads[replica.node] += 1
    moves: list[Placed] = []
    for replica in sorted(placed, key=lambda r: r.name):
        if replica.node not in loads:
            continue
        least = min(loads, key=lambda node: (loads[node], node))
        if loads[replica.node] - loads[least] >= 2:
            loads[replica.node] -= 1
            loads[least] += 1
            moves.append(replica)
    return moves


def plan_rebalance(moves: Sequence[Placed], target: Target, taken: set[str]) -> Plan:
    """One replacement per moved replica, each serving before the one it replaces goes.

    Replacements are started one at a time, so the engine places each with the
    previous move already done; each takes the weight of the replica it replaces.
    """
    steps: list[Step] = []
    new: list[str] = []
    for moved in moves:
        (name,) = replica_names(target, moved.slot, 1, taken | set(new))
        new.append(name)
        steps += [
            Start((name,), moved.slot),
            AwaitHealthy((name,)),
            AddServers((name,)),
            SetWeights({name: moved.weight}),
            Drain((moved.name,)),
            Stop((moved.name,)),
        ]
    return Plan(
        Strategy.ROLLING,
        tuple(steps),
        tuple(new),
        tuple(moved.name for moved in moves),
        note=f"rebalanced: moved {', '.join(moved.name for moved in moves)}",
    )
