"""Rebalance a Swarm environment: move replicas that share a node to a less loaded one.

dockroll spreads a Swarm environment's replicas when it starts them; after a
drain or a lost node Swarm may have put two on one node while another node
that may run them runs none, and they stay so until the next rollout. A
rebalance moves them now, under the environment's lock, as a recorded rollout
of the release that serves (:func:`dockroll.rollout.rebalance.plan_rebalance`):
new before old, through the same executor steps as a deploy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockroll import labels
from dockroll.config import Config
from dockroll.container_settings import resolve_container
from dockroll.engine.port import ContainerInfo, Engine
from dockroll.errors import UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import DeploymentKind, Release
from dockroll.pipeline.deploy import open_environment, unfinished_deployment
from dockroll.pipeline.engines import environment_engine
from dockroll.rollout.plan import Target
from dockroll.rollout.rebalance import Placed, plan_moves, plan_rebalance

if TYPE_CHECKING:
    from dockroll.ledger import Ledger

__all__ = ["Move", "RebalanceResult", "rebalance_environment"]


@dataclass(frozen=True)
class Move:
    """One replica moved (or, in a dry run, to be moved) off a node it shares."""

    replica: str
    node: str
    """The hostname of the node it shared."""
    replacement: str = ""
    replacement_node: str = ""
    """Where the replacement runs (empty in a dry run: the engine places it when it starts)."""

    def to_json(self) -> dict[str, str]:
        return {
            "replica": self.replica,
            "node": self.node,
            "replacement": self.replacement,
            "replacement_node": self.replacement_node,
        }


@dataclass(frozen=True)
class RebalanceResult:
    environment: str
    status: str
    """``balanced`` (nothing to move), ``dry-run`` (what would move) or ``succeeded``."""
    version: str
    moves: tuple[Move, ...] = ()
    nodes: dict[str, int] = field(default_factory=dict)
    """Hostname → replicas of the serving release on it, after the rebalance (before, in a
    dry run or when balanced)."""
    deployment: int | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "status": self.status,
            "version": self.version,
            "moves": [move.to_json() for move in self.moves],
            "nodes": dict(self.nodes),
            "deployment": self.deployment,
            "seconds": round(self.seconds, 3),
        }


def rebalance_environment(
    config: Config,
    environment: str,
    ledger: Ledger,
    *,
    dry_run: bool = False,
    progress: ProgressCallback = discard,
    reason: str | None = None,
    lock_wait: float = 0.0,
) -> RebalanceResult:
    """Move the serving release's replicas that share a node to less loaded eligible nodes.

    A dry run reads the environment and says what would move, changing nothing
    and taking no lock. A Swarm environment only; the replicas must run with the
    settings in dockroll.yml (otherwise a deploy rolls those out and spreads them)
    and no rollout may be unfinished.
    """
    env_config = config.environment(environment)
    if env_config.swarm is None:
        raise UsageError(
            f"{environment} does not run on a Swarm: all its replicas run on one engine, "
            "so there is nothing to rebalance",
            hint="rebalance is for environments with a `swarm:` section",
        )
    release = ledger.current_release(config.service, environment)
    if release is None:
        raise UsageError(
            f"nothing has been deployed to {environment} yet, so there is nothing to rebalance",
            hint=f"`dockroll deploy VERSION --env {environment}` first",
        )
    started = time.monotonic()
    if dry_run:
        engine = environment_engine(config, environment)
        try:
            engine.ping()
            placed, hostnames, eligible = _placement(config, environment, engine, release, None)
        finally:
            engine.close()
        moves = plan_moves(placed, eligible)
        before = _loads(placed, hostnames)
        if not moves:
            return RebalanceResult(environment, "balanced", release.version, nodes=before)
        return RebalanceResult(
            environment,
            "dry-run",
            release.version,
            tuple(Move(m.name, hostnames.get(m.node, m.node)) for m in moves),
            nodes=before,
        )

    env = open_environment(config, environment, ledger, progress)
    with env.held(
        ledger, progress, reason=reason or "rebalance", operation="rebalance", wait=lock_wait
    ):
        unfinished = unfinished_deployment(ledger, config.service, environment)
        if unfinished is not None:
            raise UsageError(
                f"deployment {unfinished.id} of {unfinished.version} to {environment} is "
                "unfinished; a rebalance moves only the replicas of a settled release",
                hint="`dockroll resume` or `dockroll abort` settles it; then rebalance",
            )
        weights = {server.name: server.weight for server in env.router.servers()}
        placed, hostnames, eligible = _placement(config, environment, env.engine, release, weights)
        moves = plan_moves(placed, eligible)
        if not moves:
            progress(Progress("rebalance", f"{environment} is balanced: nothing to move"))
            return RebalanceResult(
                environment, "balanced", release.version, nodes=_loads(placed, hostnames)
            )
        for move in moves:
            progress(
                Progress(
                    "rebalance",
                    f"{move.name} shares {hostnames.get(move.node, move.node)} with a sibling; "
                    "starting a replacement on a less loaded node",
                )
            )
        target = Target(
            service=config.service,
            environment=environment,
            version=release.version,
            digest=release.digest,
            replicas=env_config.replicas,
        )
        taken = {
            info.name
            for info in env.engine.containers(labels.selector(config.service, environment))
        }
        plan = plan_rebalance(moves, target, taken)
        names = ", ".join(plan.old)
        why = f"rebalance: {reason or f'moving {names} off nodes they shared'}"
        outcome = env.runner(ledger, progress).start(
            plan, release, kind=DeploymentKind.DEPLOY, reason=why
        )
        after = {
            info.name: info
            for info in env.engine.containers(labels.selector(config.service, environment))
            if info.running
        }
    done = tuple(
        Move(
            moved.name,
            hostnames.get(moved.node, moved.node),
            replacement,
            _hostname(after.get(replacement), hostnames),
        )
        for moved, replacement in zip(moves, plan.new, strict=True)
    )
    nodes: dict[str, int] = {}
    for info in after.values():
        if info.labels.get(labels.DIGEST) == release.digest:
            host = _hostname(info, hostnames)
            nodes[host] = nodes.get(host, 0) + 1
    ledger.audit(
        "rebalance",
        service=config.service,
        env=environment,
        target=release.version,
        detail={
            "deployment": outcome.deployment.id,
            "status": outcome.status,
            "moves": [move.to_json() for move in done],
        },
    )
    return RebalanceResult(
        environment,
        outcome.status,
        release.version,
        done,
        nodes=dict(sorted(nodes.items())),
        deployment=outcome.deployment.id,
        seconds=time.monotonic() - started,
    )


def _placement(
    config: Config,
    environment: str,
    engine: Engine,
    release: Release,
    weights: dict[str, int] | None,
) -> tuple[list[Placed], dict[str, str], list[str]]:
    """The serving release's running replicas with their nodes, the nodes' hostnames and
    the nodes the environment may run on.

    With ``weights`` (the router's), only replicas in rotation count; a dry run, which
    does not ask the router, counts every running replica of the release.
    """
    # Loaded only here: the Swarm adapter is for Swarm environments.
    from dockroll.engine.swarm import SwarmEngine  # noqa: PLC0415

    if not isinstance(engine, SwarmEngine):  # pragma: no cover - environment_engine's choice
        raise UsageError(f"{environment} does not run on a Swarm")
    swarm: SwarmEngine = engine
    spec = resolve_container(config, environment)
    placed: list[Placed] = []
    for info in swarm.containers(labels.selector(config.service, environment)):
        if not _serving(info, release, weights):
            continue
        if info.labels.get(labels.CONFIG_HASH) != spec.config_hash:
            raise UsageError(
                f"{info.name} runs with settings that differ from dockroll.yml; a rebalance "
                "starts replacements with the same settings, so it moves nothing",
                hint=f"`dockroll deploy {release.version} --env {environment}` rolls the new "
                "settings out and spreads the replicas",
            )
        weight = (weights or {}).get(info.name) or 0
        placed.append(Placed(info.name, info.node, info.labels.get(labels.SLOT, "r"), weight))
    eligible = swarm.placement_nodes()
    if eligible is None:
        raise UsageError(
            f"a placement constraint of {environment} cannot be evaluated here, so which "
            "nodes its replicas may run on is unknown",
            hint="rebalance reads node.id, node.hostname, node.role, node.platform.*, "
            "node.labels.* and engine.labels.* with == or !=",
        )
    return placed, dict(swarm.node_names()), eligible


def _serving(info: ContainerInfo, release: Release, weights: dict[str, int] | None) -> bool:
    if not info.running or not info.node or info.labels.get(labels.DIGEST) != release.digest:
        return False
    return weights is None or bool(weights.get(info.name))


def _hostname(info: ContainerInfo | None, hostnames: dict[str, str]) -> str:
    if info is None:
        return ""
    return hostnames.get(info.node) or info.node


def _loads(placed: list[Placed], hostnames: dict[str, str]) -> dict[str, int]:
    nodes: dict[str, int] = {}
    for replica in placed:
        host = hostnames.get(replica.node, replica.node)
        nodes[host] = nodes.get(host, 0) + 1
    return dict(sorted(nodes.items()))
