"""``dockroll accessory up|down|status|logs``: the environment's long-lived dependencies.

An accessory's container is ``<service>-<environment>-<name>``, on the
environment's network under its short name too, with the labels of everything
dockroll creates (role ``accessory``, ``dev.dockroll.accessory``) and the hash
of its settings. ``up`` starts what is missing, recreates what was started
with other settings (its volumes, and so its data, stay) and waits until each
is healthy; what already runs as configured is left alone. Releases never
touch accessories.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dockroll import labels
from dockroll.accessories import resolve_accessory
from dockroll.container_settings import run_request
from dockroll.engine.port import ContainerInfo, Engine, Health
from dockroll.errors import DockrollError, EngineError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.lock import EnvironmentLock
from dockroll.rollout.executor import network_name

if TYPE_CHECKING:
    from dockroll.config import Config
    from dockroll.container_settings import ContainerSpec

__all__ = [
    "ACCESSORY",
    "AccessoryStatus",
    "accessories_of",
    "accessory_down",
    "accessory_logs",
    "accessory_status",
    "accessory_up",
    "container_name",
]

ACCESSORY = labels.PREFIX + "accessory"
ROLE = "accessory"


@dataclass(frozen=True)
class AccessoryStatus:
    name: str
    container: str
    image: str
    state: str
    """running, exited …, or ``absent``."""
    health: str
    action: str = ""
    """What ``up``/``down`` did: started, recreated, unchanged, removed."""
    config_drift: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def container_name(config: Config, environment: str, name: str) -> str:
    return f"{config.service}-{environment}-{name}"


def accessories_of(config: Config, environment: str, names: list[str] | None = None) -> list[str]:
    """The accessories of ``environment`` (only ``names`` when given, each checked)."""
    config.environment(environment)
    here = [
        name
        for name, accessory in config.accessories.items()
        if accessory.environments is None or environment in accessory.environments
    ]
    for name in names or []:
        if name not in here:
            raise UsageError(
                f"no accessory {name!r} in {environment}",
                hint=f"accessories there: {', '.join(here) or 'none (see `accessories:`)'}",
            )
    return [name for name in here if not names or name in names]


def _find(engine: Engine, config: Config, environment: str, name: str) -> ContainerInfo | None:
    found = engine.containers(
        {**labels.selector(config.service, environment, ROLE), ACCESSORY: name}
    )
    return found[0] if found else None


def accessory_up(
    config: Config,
    environment: str,
    engine: Engine,
    names: list[str] | None = None,
    *,
    progress: ProgressCallback = discard,
    holder: str = "",
    lock_wait: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[AccessoryStatus]:
    """Start (or recreate when its settings changed) each accessory; wait until healthy.

    Under the environment's lock (taken by ``holder``, waiting up to ``lock_wait``
    seconds), so a deploy or another ``up`` never races it.
    """
    chosen = accessories_of(config, environment, names)
    # Env files and secrets of all of them are read before anything starts.
    specs = {name: resolve_accessory(config, environment, name) for name in chosen}
    if not chosen:
        return []
    for name in chosen:  # pulled first: a slow download holds no lock
        image = config.accessories[name].image
        if engine.image(image) is None:
            engine.pull(image, progress)
    lock = EnvironmentLock(
        engine, config.service, environment, image=config.accessories[chosen[0]].image
    )
    with lock.held(holder, reason="accessory up", operation="accessory-up", wait=lock_wait):
        return _up(
            config,
            environment,
            engine,
            chosen,
            specs=specs,
            progress=progress,
            sleep=sleep,
            clock=clock,
        )


def _up(
    config: Config,
    environment: str,
    engine: Engine,
    chosen: list[str],
    *,
    specs: Mapping[str, ContainerSpec],
    progress: ProgressCallback,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> list[AccessoryStatus]:
    network = network_name(config.service, environment)
    engine.ensure_network(network, labels.selector(config.service, environment, "network"))
    results = []
    for name in chosen:
        spec, accessory = specs[name], config.accessories[name]
        existing = _find(engine, config, environment, name)
        if (
            existing is not None
            and existing.running
            and existing.labels.get(labels.CONFIG_HASH) == spec.config_hash
        ):
            results.append(_status(name, existing, "unchanged"))
            continue
        action = "started"
        if existing is not None:
            action = "recreated"
            progress(Progress("accessory", f"{name}: settings changed, recreating it"))
            engine.remove(existing.id, grace=config.container.stop_grace)
        request = run_request(
            spec,
            accessory.image,
            name=container_name(config, environment, name),
            labels={
                **labels.selector(config.service, environment, ROLE),
                ACCESSORY: name,
                labels.CONFIG_HASH: spec.config_hash,
                labels.STARTED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            network=network,
            service=config.service,
            environment=environment,
        )
        engine.run(replace(request, network_aliases=(name,)))
        progress(Progress("accessory", f"{name}: started {request.name}, waiting for it"))
        info = _await(config, engine, request.name or name, sleep=sleep, clock=clock)
        results.append(_status(name, info, action))
    return results


def _await(
    config: Config,
    engine: Engine,
    container: str,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> ContainerInfo:
    """Healthy by its health check, or running for a second without one."""
    deadline = clock() + max(config.health.start_timeout, 60.0)
    up_since: float | None = None
    while True:
        info = engine.container(container)
        if info is None or info.status in ("exited", "dead") or info.restart_count > 0:
            logs = engine.logs(container, tail=20) if info else ""
            raise EngineError(
                f"accessory {container} stopped during start"
                + (f"; last log lines:\n{logs.rstrip()}" if logs.strip() else ""),
                hint=f"`dockroll accessory logs` shows its output; `docker inspect {container}`",
            )
        if info.health is Health.UNHEALTHY:
            raise EngineError(f"accessory {container} reports unhealthy")
        if info.running and info.health is Health.HEALTHY:
            return info
        if info.running and info.health is Health.NONE:
            up_since = clock() if up_since is None else up_since
            if clock() - up_since >= 1.0:
                return info
        if clock() >= deadline:
            raise EngineError(f"accessory {container} was not healthy in time")
        sleep(0.5)


def _status(name: str, info: ContainerInfo | None, action: str = "") -> AccessoryStatus:
    if info is None:
        return AccessoryStatus(name, "", "", "absent", "", action)
    return AccessoryStatus(
        name, info.name, info.image, info.status, info.health.value, action=action
    )


def accessory_down(
    config: Config,
    environment: str,
    engine: Engine,
    names: list[str] | None = None,
    *,
    volumes: bool = False,
    remove_volume: Callable[[str], bool] | None = None,
    holder: str = "",
    lock_wait: float = 0.0,
) -> list[AccessoryStatus]:
    """Stop and remove accessories; with ``volumes`` their named volumes too (their data).

    Under the environment's lock, as :func:`accessory_up`.
    """
    chosen = accessories_of(config, environment, names)
    running = [info for name in chosen if (info := _find(engine, config, environment, name))]
    if not running:  # nothing to stop: no lock, no image needed for one
        return _down(
            config, environment, engine, chosen, volumes=volumes, remove_volume=remove_volume
        )
    lock = EnvironmentLock(engine, config.service, environment, image=running[0].image)
    with lock.held(holder, reason="accessory down", operation="accessory-down", wait=lock_wait):
        return _down(
            config, environment, engine, chosen, volumes=volumes, remove_volume=remove_volume
        )


def _down(
    config: Config,
    environment: str,
    engine: Engine,
    chosen: list[str],
    *,
    volumes: bool,
    remove_volume: Callable[[str], bool] | None,
) -> list[AccessoryStatus]:
    results = []
    for name in chosen:
        existing = _find(engine, config, environment, name)
        if existing is not None:
            engine.remove(existing.id, grace=config.container.stop_grace)
        if volumes and remove_volume is not None:
            spec = resolve_accessory(config, environment, name)
            for volume in spec.volumes:
                if volume.kind == "volume":
                    remove_volume(spec.volume_name(config.service, environment, volume.source))
        results.append(
            AccessoryStatus(name, "", "", "absent", "", "removed" if existing else "absent")
        )
    return results


def accessory_status(config: Config, environment: str, engine: Engine) -> list[AccessoryStatus]:
    """Each accessory of ``environment``: its container's state and health, and drift."""
    results = []
    for name in accessories_of(config, environment):
        info = _find(engine, config, environment, name)
        status = _status(name, info)
        try:
            wanted = resolve_accessory(config, environment, name).config_hash
        except DockrollError:
            wanted = ""
        if info is not None and wanted:
            drift = info.labels.get(labels.CONFIG_HASH) != wanted
            status = AccessoryStatus(**{**status.to_json(), "config_drift": drift})
        results.append(status)
    return results


def accessory_logs(
    config: Config, environment: str, engine: Engine, name: str, *, tail: int | None = 100
) -> str:
    accessories_of(config, environment, [name])
    info = _find(engine, config, environment, name)
    if info is None:
        raise UsageError(
            f"accessory {name} does not run in {environment}",
            hint=f"`dockroll accessory up {name} --env {environment}` starts it",
        )
    return engine.logs(info.id, tail=tail)
