"""An environment's lifecycle beyond rollouts: take it down, read its logs, pick a replica.

``env down`` removes everything dockroll created for one environment on its
engine (replicas of every process, jobs, accessories, the router, the
network; with ``volumes`` the environment's named volumes too) and keeps the
ledger's history. ``logs`` merges the output of an environment's replicas by
time, each line with the version and replica it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dockroll import labels
from dockroll.engine.docker import DockerEngine, engine_time
from dockroll.engine.port import ContainerInfo
from dockroll.errors import LockHeld, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.lock import EnvironmentLock
from dockroll.pipeline.engines import environment_engine
from dockroll.processes import background_processes, routed_process
from dockroll.rollout.executor import network_name

if TYPE_CHECKING:
    from dockroll.config import Config
    from dockroll.ledger import Ledger

__all__ = [
    "EnvDown",
    "LogLine",
    "environment_down",
    "log_containers",
    "log_lines",
    "pick_container",
]


@dataclass
class EnvDown:
    """What ``env down`` removed."""

    environment: str
    containers: list[str] = field(default_factory=list)
    router: bool = False
    network: bool = False
    volumes: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    """Hostnames released on the shared edge."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def environment_down(
    config: Config,
    environment: str,
    ledger: Ledger,
    *,
    volumes: bool = False,
    progress: ProgressCallback = discard,
) -> EnvDown:
    """Remove every container, the router and the network of ``environment``.

    Refused while someone holds the environment's lock or a rollout is
    unfinished (`dockroll abort` first). The ledger keeps its history; named
    volumes (data) stay unless ``volumes``.
    """
    from dockroll.pipeline.edge import leave_edge  # noqa: PLC0415
    from dockroll.router.haproxy import HaproxyRouter  # noqa: PLC0415

    unfinished = ledger.unfinished_deployment(config.service, environment)
    if unfinished is not None:
        raise UsageError(
            f"deployment {unfinished.id} of {unfinished.version} in {environment} is unfinished",
            hint=f"`dockroll abort --env {environment}` undoes it first",
        )
    engine = environment_engine(config, environment)
    try:
        engine.ping()
        lock = EnvironmentLock(engine, config.service, environment, "").status()
        if lock is not None and not lock.expired():
            raise LockHeld(
                f"{environment} is locked by {lock.holder}; it stays up",
                hint="wait for that command, or `dockroll lock release` it",
            )
        done = EnvDown(environment)
        selector = {labels.SERVICE: config.service, labels.ENVIRONMENT: environment}
        for info in sorted(engine.containers(selector), key=lambda c: c.name):
            progress(Progress("env", f"removing {info.name}"))
            engine.remove(info.id, grace=config.container.stop_grace)
            done.containers.append(info.name)
        # The engine host's shared edge, local or remote, stops routing its hostnames.
        done.hosts = leave_edge(config, environment, engine)
        if done.hosts:
            progress(Progress("env", f"released {', '.join(done.hosts)} on the edge"))
        router = HaproxyRouter.for_environment(engine, config, environment)
        if engine.container(router.container_name) is not None:
            progress(Progress("env", f"removing {router.container_name}"))
            done.router = True
        router.remove()
        done.network = engine.remove_network(network_name(config.service, environment))
        if volumes:
            done.volumes = engine.remove_volumes(f"dockroll-{config.service}-{environment}-")
    finally:
        engine.close()
    ledger.audit(
        "env-down",
        service=config.service,
        env=environment,
        target=environment,
        detail={"containers": len(done.containers), "volumes": len(done.volumes)},
    )
    return done


@dataclass(frozen=True)
class LogLine:
    at: datetime | None
    container: str
    process: str
    version: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "at": self.at.isoformat() if self.at else None}


def log_containers(
    config: Config, environment: str, engine: DockerEngine, process: str | None = None
) -> list[ContainerInfo]:
    """The replicas whose output ``logs`` shows: every process's, or ``process``'s."""
    routed = routed_process(config)
    known = [routed, *background_processes(config)]
    if process is not None and process not in known:
        raise UsageError(
            f"no process {process!r} in dockroll.yml", hint=f"processes: {', '.join(known)}"
        )
    found: list[ContainerInfo] = []
    if process in (None, routed):
        found += engine.containers(labels.selector(config.service, environment))
    if process != routed:
        selector = labels.selector(config.service, environment, "process")
        if process is not None:
            selector[labels.PROCESS] = process
        found += engine.containers(selector)
    return sorted(found, key=lambda info: info.name)


def log_lines(
    config: Config,
    engine: DockerEngine,
    containers: list[ContainerInfo],
    *,
    tail: int | None = 100,
    since: dict[str, datetime] | None = None,
) -> list[LogLine]:
    """The containers' output merged by time; only lines after ``since[name]`` when given."""
    routed = routed_process(config)
    lines: list[LogLine] = []
    for info in containers:
        after = (since or {}).get(info.name)
        text = engine.logs(info.id, tail=tail, since=after, timestamps=True)
        process = info.labels.get(labels.PROCESS) or routed
        version = info.labels.get(labels.VERSION, "?")
        for raw in text.splitlines():
            stamp, _, rest = raw.partition(" ")
            at = engine_time(stamp)
            if at is None:
                at, rest = None, raw
            elif after is not None and at <= after:
                continue
            lines.append(LogLine(at, info.name, process, version, rest))
    lines.sort(key=lambda line: (line.at is None, line.at or datetime.min, line.container))
    return lines


def pick_container(
    config: Config,
    environment: str,
    engine: DockerEngine,
    *,
    process: str | None = None,
    replica: str | None = None,
) -> ContainerInfo:
    """A running replica of ``process`` (the routed one by default), or the named one."""
    running = [c for c in log_containers(config, environment, engine, process) if c.running]
    if replica is not None:
        running = [c for c in running if c.name == replica]
    if not running:
        which = f"replica {replica}" if replica else f"replica of {process or 'the service'}"
        raise UsageError(
            f"no running {which} in {environment}",
            hint=f"`dockroll status --env {environment}` shows what runs",
        )
    return running[0]
