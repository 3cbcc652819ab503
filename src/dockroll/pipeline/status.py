"""What runs where, computed from container labels and the router, compared with the ledger.

Nothing here changes anything: a missing router or an unreachable engine is
reported, not repaired.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from dockroll import labels
from dockroll.config import Config, EnvironmentConfig
from dockroll.container_settings import resolve_container
from dockroll.engine.port import ContainerInfo, Engine
from dockroll.errors import DockrollError
from dockroll.ledger import Deployment, DeploymentStatus, LedgerReads
from dockroll.lock import EnvironmentLock, LockInfo
from dockroll.pipeline.engines import quick_engine
from dockroll.pipeline.standby import find_standby
from dockroll.refs import Digest
from dockroll.rollout.plan import Observed, Replica
from dockroll.rollout.rebalance import Placed, plan_moves
from dockroll.router.haproxy import HaproxyRouter
from dockroll.router.port import BackendServer, ServerHealth, traffic_shares

__all__ = [
    "EnvironmentStatus",
    "ProcessReplicaStatus",
    "ReplicaStatus",
    "environment_status",
    "last_undone",
    "replica_status",
    "service_status",
]


@dataclass(frozen=True)
class ReplicaStatus:
    name: str
    version: str
    digest: str
    git_sha: str
    slot: str
    since: str
    state: str
    """Container state: running, exited …"""
    health: str
    weight: int | None
    """Router weight; None when the router does not list it."""
    share: float
    """Share of new requests it receives (0..1)."""
    router_health: str
    config_drift: bool
    """Started with other settings than dockroll.yml has now."""
    router_check: str = ""
    """The router's last check result (``L7OK``, ``L4CON`` …); empty when it lists no check."""
    node: str = ""
    """The Swarm node running it (its id); empty off a Swarm."""
    node_hostname: str = ""
    """That node's hostname; empty off a Swarm or when the Swarm no longer lists the node."""

    @property
    def node_label(self) -> str:
        """The node as a person reads it: its hostname, else a short id."""
        return self.node_hostname or self.node[:12]

    @property
    def health_summary(self) -> str:
        """The engine's health, with the router's view beside it when the two disagree.

        The router's checks decide traffic, so "healthy" alone for a replica the router
        finds DOWN (``L4CON``: nothing listens) would mislead.
        """
        if self.router_health == "not in router":
            return self.health
        engine_ok = self.state == "running" and self.health in ("healthy", "none")
        router_ok = self.router_health != ServerHealth.DOWN.value
        if engine_ok == router_ok:
            return self.health
        view = " ".join(part for part in (self.router_health.upper(), self.router_check) if part)
        return f"{self.health} (router: {view})"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "health_summary": self.health_summary}


@dataclass(frozen=True)
class ProcessReplicaStatus:
    """A replica of a process without router (worker, scheduler …), from its labels."""

    process: str
    name: str
    version: str
    digest: str
    state: str
    health: str
    since: str
    config_drift: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EnvironmentStatus:
    name: str
    port: int
    strategy: str
    replicas: tuple[ReplicaStatus, ...] = ()
    router: str = "unknown"
    """running, missing, or an error."""
    engine: str = "unknown"
    ledger_version: str | None = None
    ledger_digest: str | None = None
    unfinished: dict[str, Any] | None = None
    lock: dict[str, object] | None = None
    standby: dict[str, object] | None = None
    """A blue-green standby slot and the end of its keep_previous window."""
    standby_note: str | None = None
    drift: tuple[str, ...] = field(default=())
    last_undone: dict[str, Any] | None = None
    """The newest rolled-back or aborted deployment of the last ten, with what it cost."""
    unreachable: DockrollError | None = field(default=None, compare=False)
    """Why the engine could not be read; the rest of the status is then the ledger's only."""
    router_unreachable: DockrollError | None = field(default=None, compare=False)
    """Why the router (which exists) could not be read: its weights and checks are unknown."""
    processes: tuple[ProcessReplicaStatus, ...] = ()
    """Replicas of the processes without router."""

    @property
    def serving_digests(self) -> set[str]:
        return {r.digest for r in self.replicas if r.share > 0}

    @property
    def versions(self) -> list[str]:
        seen: dict[str, float] = {}
        for replica in self.replicas:
            seen[replica.version] = seen.get(replica.version, 0.0) + replica.share
        return [f"{v} ({share:.0%})" for v, share in sorted(seen.items(), key=lambda i: -i[1])]

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.name,
            "port": self.port,
            "strategy": self.strategy,
            "engine": self.engine,
            "engine_reachable": self.unreachable is None,
            "router": self.router,
            "router_reachable": self.router_unreachable is None,
            "ledger": {"version": self.ledger_version, "digest": self.ledger_digest},
            "serving": sorted(self.serving_digests),
            "replicas": [r.to_json() for r in self.replicas],
            "unfinished": self.unfinished,
            "lock": self.lock,
            "standby": self.standby,
            "drift": list(self.drift),
            "processes": [p.to_json() for p in self.processes],
            "last_undone": self.last_undone,
        }


def _unfinished_json(deployment: Deployment) -> dict[str, Any]:
    steps = sorted(deployment.steps, key=lambda s: s.index)
    current = next((s for s in steps if not s.status.finished), None)
    return {
        "deployment": deployment.id,
        "version": deployment.version,
        "digest": deployment.digest,
        "kind": deployment.kind.value,
        "status": deployment.status.value,
        "started_by": deployment.started_by,
        "started_at": deployment.started_at.isoformat(),
        "step": f"{current.index}/{len(steps) - 1} {current.kind} ({current.status.value})"
        if current
        else None,
    }


def last_undone(ledger: LedgerReads, service: str, env: str) -> dict[str, Any] | None:
    """The newest of ``env``'s last ten deployments that was rolled back or aborted, with
    what its release cost (failed requests, traffic-seconds) when that was measured."""
    undone = (DeploymentStatus.ROLLED_BACK, DeploymentStatus.ABORTED)
    for deployment in ledger.deployments_between(service=service, env=env, limit=10):
        if deployment.status in undone:
            return {
                "deployment": deployment.id,
                "version": deployment.version,
                "status": deployment.status.value,
                "finished_at": deployment.finished_at.isoformat()
                if deployment.finished_at
                else None,
                "message": deployment.message,
                "served_requests": deployment.served_requests,
                "failed_requests": deployment.failed_requests,
                "traffic_seconds": deployment.traffic_seconds,
            }
    return None


def environment_status(config: Config, name: str, ledger: LedgerReads) -> EnvironmentStatus:
    """The status of one environment; never changes anything."""
    env = config.environment(name)
    base: dict[str, Any] = {"name": name, "port": env.port, "strategy": env.strategy.value}
    current = ledger.current_release(config.service, name)
    if current is not None:
        base["ledger_version"] = current.version
        base["ledger_digest"] = current.digest
    unfinished = ledger.unfinished_deployment(config.service, name)
    if unfinished is not None:
        base["unfinished"] = _unfinished_json(unfinished)
    base["last_undone"] = last_undone(ledger, config.service, name)
    engine = quick_engine(config, name)
    try:
        return _observed_status(config, name, env, engine, base, ledger=ledger)
    finally:
        engine.close()


def _observed_status(
    config: Config,
    name: str,
    env: EnvironmentConfig,
    engine: Engine,
    base: dict[str, Any],
    *,
    ledger: LedgerReads,
) -> EnvironmentStatus:
    try:
        engine.ping()
        containers = engine.containers(labels.selector(config.service, name))
    except DockrollError as exc:
        return EnvironmentStatus(**base, engine=f"unreachable: {exc.message}", unreachable=exc)
    base["engine"] = engine.endpoint
    servers: tuple[BackendServer, ...] = ()
    router = HaproxyRouter.for_environment(engine, config, name)
    if engine.container(router.container_name) is None:
        base["router"] = "not created yet (the first `dockroll deploy` starts it)"
    else:
        try:
            servers = router.servers()
            base["router"] = f"running ({router.container_name})"
            verdict = router.describe().verdict  # reads only, like everything here
            if verdict != "up to date":
                base["router"] += f"; {verdict}"
        except DockrollError as exc:
            base["router"] = f"not answering: {exc.message}"
            base["router_unreachable"] = exc
    shares = traffic_shares(servers)
    by_name = {server.name: server for server in servers}
    lock: LockInfo | None = None
    lock_image = ""  # reading a lock needs no image
    try:
        lock = EnvironmentLock(engine, config.service, name, lock_image).status()
    except DockrollError:
        lock = None
    if lock is not None:
        base["lock"] = {**lock.to_json(), "expired": lock.expired()}
    try:
        wanted_hash = resolve_container(config, name).config_hash
    except DockrollError:
        # An env file or secret not readable here: drift cannot be told, so none is claimed.
        wanted_hash = ""
    hostnames = _node_hostnames(engine, containers)
    replicas = [
        replica_status(
            info,
            by_name.get(info.name),
            shares.get(info.name, 0.0),
            wanted_hash,
            node_hostname=hostnames.get(info.node, ""),
        )
        for info in sorted(containers, key=lambda c: c.name)
    ]
    observed = Observed(
        tuple(
            Replica(r.name, r.version, Digest(r.digest), r.slot, weight=r.weight)
            for r in replicas
            if r.state == "running"
        )
    )
    standby = find_standby(config, name, ledger, observed)
    if standby is not None:
        base["standby"] = standby.to_json()
        base["standby_note"] = standby.describe()
    status = EnvironmentStatus(
        **base, replicas=tuple(replicas), processes=_process_statuses(config, name, engine)
    )
    status = _with_drift(status, by_name)
    if config.environment(name).swarm is not None and status.unfinished is None:
        note = _balance_note(engine, name, replicas)
        if note:
            status = replace(status, drift=(*status.drift, note))
    return status


def _balance_note(engine: Engine, name: str, replicas: list[ReplicaStatus]) -> str | None:
    """On a Swarm, whether serving replicas share a node while an eligible one runs fewer."""
    placed = [
        Placed(r.name, r.node, r.slot, r.weight or 0)
        for r in replicas
        if r.node and r.state == "running" and r.share > 0
    ]
    if len({p.node for p in placed}) == len(placed):
        return None  # no two on one node: the nodes need not be listed
    # Loaded only for Swarm environments.
    from dockroll.engine.swarm import SwarmEngine  # noqa: PLC0415

    if not isinstance(engine, SwarmEngine):
        return None
    try:
        eligible = engine.placement_nodes()
    except DockrollError:
        return None
    moves = plan_moves(placed, eligible or [])
    if not moves:
        return None
    return (
        f"{', '.join(m.name for m in moves)} "
        f"{'shares a node' if len(moves) == 1 else 'share nodes'} with another replica while "
        f"a node that may run them runs fewer: `dockroll rebalance --env {name}` spreads them"
    )


def _process_statuses(
    config: Config, name: str, engine: Engine
) -> tuple[ProcessReplicaStatus, ...]:
    from dockroll.pipeline.processes import process_containers, process_spec  # noqa: PLC0415

    wanted: dict[str, str] = {}
    for process in config.processes:
        try:
            wanted[process] = process_spec(config, name, process).config_hash
        except DockrollError:  # an env file or secret not readable here: drift unknown
            continue
    found = []
    for info in process_containers(engine, config.service, name):
        process = info.labels.get(labels.PROCESS, "?")
        found.append(
            ProcessReplicaStatus(
                process=process,
                name=info.name,
                version=info.labels.get(labels.VERSION, "?"),
                digest=info.labels.get(labels.DIGEST, ""),
                state=info.status,
                health=info.health.value,
                since=info.labels.get(labels.STARTED, ""),
                config_drift=process not in config.processes
                or (process in wanted and info.labels.get(labels.CONFIG_HASH) != wanted[process]),
            )
        )
    return tuple(found)


def _node_hostnames(engine: Engine, containers: list[ContainerInfo]) -> Mapping[str, str]:
    """Node id → hostname for the replicas on a Swarm: one listing of the nodes per status."""
    if not any(info.node for info in containers):
        return {}
    try:
        return engine.node_names()
    except DockrollError:  # the ids still say where the replicas run
        return {}


def replica_status(
    info: ContainerInfo,
    server: BackendServer | None,
    share: float,
    wanted_hash: str,
    *,
    node_hostname: str = "",
) -> ReplicaStatus:
    """One replica as its labels, the engine and the router (``server``) describe it."""
    return ReplicaStatus(
        name=info.name,
        version=info.labels.get(labels.VERSION, "?"),
        digest=info.labels.get(labels.DIGEST, "?"),
        git_sha=info.labels.get(labels.GIT_SHA, ""),
        slot=info.labels.get(labels.SLOT, ""),
        since=info.labels.get(labels.STARTED, ""),
        state=info.status,
        health=info.health.value,
        weight=server.weight if server else None,
        share=share,
        router_health=server.health.value if server else "not in router",
        config_drift=bool(wanted_hash)
        and info.labels.get(labels.CONFIG_HASH, wanted_hash) != wanted_hash,
        # HAProxy marks a check still running with "* ".
        router_check=server.check_status.removeprefix("* ") if server else "",
        node=info.node,
        node_hostname=node_hostname,
    )


def _with_drift(status: EnvironmentStatus, servers: dict[str, BackendServer]) -> EnvironmentStatus:
    notes: list[str] = []
    serving = status.serving_digests
    if not serving and status.replicas:
        notes.append("no replica takes traffic: the router points at nothing")
    if len(serving) > 1 and status.unfinished is None:
        notes.append("more than one release takes traffic outside a rollout")
    if status.ledger_digest and serving and status.ledger_digest not in serving:
        notes.append(f"the ledger says {status.ledger_version} runs, but the router serves another")
    if status.unfinished is not None:
        notes.append(
            f"rollout {status.unfinished['deployment']} of {status.unfinished['version']} "
            "is unfinished: `dockroll resume`, `dockroll abort` or a new deploy settles it"
        )
    for replica in status.replicas:
        if replica.state != "running":
            notes.append(f"{replica.name} is {replica.state}")
        if replica.config_drift:
            notes.append(f"{replica.name} runs with settings that differ from dockroll.yml")
    container_names = {r.name for r in status.replicas}
    for name in servers:
        if name not in container_names:
            notes.append(f"the router lists {name}, which no longer runs")
    return EnvironmentStatus(**{**status.__dict__, "drift": tuple(notes)})


def service_status(
    config: Config,
    ledger: LedgerReads,
    environments: list[str] | None = None,
    *,
    parallel: bool = False,
) -> tuple[list[EnvironmentStatus], list[str]]:
    """Every (or the named) environment's status, and drift across environments.

    ``parallel`` reads the environments at once, one thread each (a long-running
    reader such as the dashboard); the result is the same.
    """
    names = environments or list(config.environments)
    if parallel and len(names) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(names))) as pool:
            statuses = list(pool.map(lambda name: environment_status(config, name, ledger), names))
    else:
        statuses = [environment_status(config, name, ledger) for name in names]
    notes: list[str] = []
    for status in statuses:
        source = config.environment(status.name).promote_from
        upstream = next((s for s in statuses if s.name == source), None)
        if upstream is None or not status.serving_digests or not upstream.serving_digests:
            continue
        if not status.serving_digests & upstream.serving_digests:
            notes.append(f"{status.name} and {upstream.name} run different digests")
    return statuses, notes
