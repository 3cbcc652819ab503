"""Process types of one release: ``web`` behind the router, workers and schedulers beside it.

Every process runs the same digest with its own command and replica count;
one of them (``web`` unless another says ``router: true``) takes traffic
through the router and is rolled out by the strategy, the others are started
beside the old ones, checked, and retired once the routed process serves (see
:mod:`dockroll.pipeline.processes`). A dockroll.yml without ``processes:`` has
one process, the routed one, run as before.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dockroll.container_settings import ContainerSettings, _Model
from dockroll.durations import Duration

if TYPE_CHECKING:
    from dockroll.config import Config

__all__ = [
    "DEFAULT_ROUTED",
    "ProcessConfig",
    "ProcessOverride",
    "background_processes",
    "process_problems",
    "process_replicas",
    "processes_starting",
    "routed_process",
]

DEFAULT_ROUTED = "web"
_PROCESS_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# Replica names are <service>-<environment>-<slot>-<n>: a process may not take a slot's name.
_SLOT_NAMES = frozenset({"r", "blue", "green", "stable", "canary"})


class ProcessConfig(ContainerSettings):
    """One process type: the container settings it changes, its replicas and its health."""

    router: bool | None = None
    """Whether it takes traffic through the router; true for ``web`` when none says so.
    Exactly one process does; its replicas are the environment's ``replicas``."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables of this process only, over `container.env`."""
    replicas: int | None = Field(None, ge=0, le=64)
    """Replicas of a process without router (default 1; 0 runs none); an environment's
    `processes.NAME.replicas` overrides it."""
    health: Literal["auto", "healthcheck", "image", "liveness"] = "auto"
    """How a new replica of a process without router counts as started: `healthcheck` (its
    own `healthcheck:` passes), `image` (the image's HEALTHCHECK passes) or `liveness`
    (running, never restarted, for `liveness` seconds; the image's HEALTHCHECK, usually
    the web's, is turned off). `auto`: `healthcheck` when it has one, else `liveness`."""
    liveness: Duration = 3.0
    """How long a process checked by liveness must keep running before it counts as started."""
    start: Literal["before-web", "after-web"] = "before-web"
    """`before-web`: new replicas start and pass their check before the routed process's
    rollout (a failure changes nothing); `after-web`: only once the routed process's new
    release serves (a failure rolls that back too). Either way the old replicas stop once
    both the routed process and this one run the new release."""


class ProcessOverride(_Model):
    """What an environment changes about a process."""

    replicas: int | None = Field(None, ge=0, le=64)
    """Replicas of the process in this environment."""


def routed_process(config: Config) -> str:
    """The name of the process that takes traffic (``web`` when there are no processes)."""
    for name, process in config.processes.items():
        if process.router:
            return name
    return DEFAULT_ROUTED


def background_processes(config: Config) -> list[str]:
    """The processes without router, in dockroll.yml's order."""
    routed = routed_process(config)
    return [name for name in config.processes if name != routed]


def processes_starting(config: Config, when: str) -> list[str]:
    """The processes without router whose new replicas start ``before-web`` or ``after-web``."""
    return [name for name in background_processes(config) if config.processes[name].start == when]


def process_replicas(config: Config, environment: str, name: str) -> int:
    """How many replicas of the process without router ``name`` run in ``environment``."""
    env = config.environments.get(environment)
    override = env.processes.get(name) if env is not None else None
    if override is not None and override.replicas is not None:
        return override.replicas
    replicas = config.processes[name].replicas
    return 1 if replicas is None else replicas


def process_problems(config: Config) -> list[str]:
    """What is wrong with the ``processes:`` of a config, field by field."""
    problems: list[str] = []
    for name in config.processes:
        if not _PROCESS_NAME.match(name) or name in _SLOT_NAMES:
            problems.append(
                f"processes.{name}: a process name is up to 20 lowercase letters, digits and "
                f"'-', starting with a letter, and not one of {', '.join(sorted(_SLOT_NAMES))}"
            )
    if config.processes:
        routed = [n for n, p in config.processes.items() if p.router]
        unrouted_web = DEFAULT_ROUTED in config.processes and (
            config.processes[DEFAULT_ROUTED].router is False
        )
        if len(routed) > 1:
            problems.append(
                f"processes {', '.join(routed)} all say router: true; one process takes traffic"
            )
        elif not routed and (DEFAULT_ROUTED not in config.processes or unrouted_web):
            problems.append(
                "processes: no process takes traffic; name one `web` or give one `router: true`"
            )
        name = routed_process(config)
        if name in config.processes and config.processes[name].replicas is not None:
            problems.append(
                f"processes.{name}.replicas: the process with the router runs the "
                "environment's `replicas`; set them there"
            )
    for env_name, env in config.environments.items():
        for name in env.processes:
            if name not in config.processes or name == routed_process(config):
                known = ", ".join(background_processes(config)) or "none"
                problems.append(
                    f"environments.{env_name}.processes.{name}: not a process without router "
                    f"(those are: {known})"
                )

    return problems
