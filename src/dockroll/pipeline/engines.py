"""The engine of an environment: its Docker engine, or its Swarm manager."""

from __future__ import annotations

from dockroll.config import Config
from dockroll.engine.docker import DockerEngine

__all__ = ["environment_engine", "host_engine"]


def host_engine(config: Config, environment: str) -> DockerEngine:
    """A client of the Docker engine ``environment`` names (a Swarm's manager), for plain
    containers there, whatever places the environment's replicas."""
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
