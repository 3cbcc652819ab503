"""What runs where, computed from container labels and the router, compared with the ledger.

Nothing here changes anything: a missing router or an unreachable engine is
reported, not repaired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockroll import labels
from dockroll.config import Config
from dockroll.engine.docker import DockerEngine
from dockroll.errors import DockrollError
from dockroll.ledger import Deployment, Ledger
from dockroll.lock import EnvironmentLock, LockInfo
from dockroll.router.haproxy import HaproxyRouter
from dockroll.router.port import BackendServer, traffic_shares

__all__ = ["EnvironmentStatus", "ReplicaStatus", "environment_status", "service_status"]


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
    drift: tuple[str, ...] = field(default=())

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
            "router": self.router,
            "ledger": {"version": self.ledger_version, "digest": self.ledger_digest},
            "serving": sorted(self.serving_digests),
            "replicas": [r.__dict__ for r in self.replicas],
            "unfinished": self.unfinished,
            "lock": self.lock,
            "drift": list(self.drift),
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


def environment_status(config: Config, name: str, ledger: Ledger) -> EnvironmentStatus:
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
    engine = DockerEngine(env.engine)
    try:
        engine.ping()
        containers = engine.containers(labels.selector(config.service, name))
    except DockrollError as exc:
        return EnvironmentStatus(**base, engine=f"unreachable: {exc.message}")
    base["engine"] = engine.endpoint
    servers: tuple[BackendServer, ...] = ()
    router = HaproxyRouter.for_environment(engine, config, name)
    if engine.container(router.container_name) is None:
        base["router"] = "not created yet (the first `dockroll deploy` starts it)"
    else:
        try:
            servers = router.servers()
            base["router"] = f"running ({router.container_name})"
        except DockrollError as exc:
            base["router"] = f"not answering: {exc.message}"
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
    wanted_hash = labels.config_hash(
        {
            "env": {**config.container.env, **env.env},
            "port": config.container.port,
            "health": config.health.model_dump(),
        }
    )
    replicas = []
    for info in sorted(containers, key=lambda c: c.name):
        server = by_name.get(info.name)
        replicas.append(
            ReplicaStatus(
                name=info.name,
                version=info.labels.get(labels.VERSION, "?"),
                digest=info.labels.get(labels.DIGEST, "?"),
                git_sha=info.labels.get(labels.GIT_SHA, ""),
                slot=info.labels.get(labels.SLOT, ""),
                since=info.labels.get(labels.STARTED, ""),
                state=info.status,
                health=info.health.value,
                weight=server.weight if server else None,
                share=shares.get(info.name, 0.0),
                router_health=server.health.value if server else "not in router",
                config_drift=info.labels.get(labels.CONFIG_HASH, wanted_hash) != wanted_hash,
            )
        )
    status = EnvironmentStatus(**base, replicas=tuple(replicas))
    return _with_drift(status, by_name)


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
    config: Config, ledger: Ledger, environments: list[str] | None = None
) -> tuple[list[EnvironmentStatus], list[str]]:
    """Every (or the named) environment's status, and drift across environments."""
    names = environments or list(config.environments)
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
