"""The engine of an environment: its Docker engine, or its Swarm manager."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dockroll.config import Config

if TYPE_CHECKING:
    from dockroll.engine.docker import DockerEngine
    from dockroll.engine.unix_api import UnixSocketEngine

__all__ = ["environment_engine", "host_engine", "quick_engine"]


def host_engine(config: Config, environment: str) -> DockerEngine:
    """A client of the Docker engine ``environment`` names (a Swarm's manager), for plain
    containers there, whatever places the environment's replicas."""
    from dockroll.engine.docker import DockerEngine  # noqa: PLC0415 - the SDK on first use

    env = config.environment(environment)
    certs = (config.root / env.engine_certs.expanduser()) if env.engine_certs else None
    return DockerEngine(env.engine, certs=certs)


def environment_engine(config: Config, environment: str) -> DockerEngine:
    """A client of the engine ``environment`` runs on, as dockroll.yml describes it."""
    env = config.environment(environment)
    certs = (config.root / env.engine_certs.expanduser()) if env.engine_certs else None
    if env.swarm is None:
        return host_engine(config, environment)
    # Loaded only for Swarm environments.
    from dockroll.engine.swarm import SwarmEngine, SwarmPlacement  # noqa: PLC0415

    swarm = env.swarm
    placement = SwarmPlacement(
        constraints=tuple(swarm.constraints),
        cpus=swarm.cpus,
        memory=swarm.memory_mb * 1024 * 1024 if swarm.memory_mb else None,
        restart_attempts=swarm.restart_attempts,
        stop_grace=config.container.stop_grace,
    )
    return SwarmEngine(
        env.engine, placement=placement, start_timeout=config.health.start_timeout, certs=certs
    )


def quick_engine(config: Config, environment: str) -> DockerEngine | UnixSocketEngine:
    """The engine of ``environment`` for the commands that must answer at once (``dockroll
    status``, the rollback): a local engine's unix socket is spoken to without the Docker SDK
    for what they ask (:mod:`dockroll.engine.unix_api`, which hands anything else to the SDK
    adapter); a Swarm, a ``tcp://`` or ``ssh://`` engine, or one behind TLS, is what
    :func:`environment_engine` gives."""
    env = config.environment(environment)
    endpoint = env.engine or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    tls_from_env = env.engine is None and bool(os.environ.get("DOCKER_TLS_VERIFY"))
    if env.swarm is not None or env.engine_certs or tls_from_env:
        return environment_engine(config, environment)
    from dockroll.engine.unix_api import light_engine  # noqa: PLC0415 - status only

    return light_engine(endpoint)
