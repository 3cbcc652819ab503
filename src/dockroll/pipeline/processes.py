"""Processes without router (workers, schedulers) rolled out with the routed one.

A deploy of a release with ``processes:`` goes, under the environment's lock:

1. :func:`start_processes`: new replicas of every process without router start
   beside the old ones (same digest as the web, their own command) and must
   pass their check (HEALTHCHECK, or staying up for ``liveness`` seconds). One
   that fails removes what this step started and stops the deploy: nothing of
   the previous release was touched, so it keeps serving.
2. The routed process's rollout (the strategy, the router, the executor).
3. :meth:`ProcessSwitch.finish` once it serves: the old process replicas stop.
   A rollout rolled back calls :meth:`ProcessSwitch.undo` instead, which
   removes the new ones.

What runs is read from labels (``dev.dockroll.process``, role ``process``),
like everything else; :func:`retire_strays` settles what an interrupted
deploy left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from dockroll import labels
from dockroll.container_settings import ContainerSpec, resolve_container, run_request
from dockroll.engine.port import ContainerInfo, Engine, Health
from dockroll.errors import EngineError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Release
from dockroll.processes import background_processes, process_replicas

if TYPE_CHECKING:
    from dockroll.config import Config

__all__ = [
    "ProcessSwitch",
    "process_containers",
    "process_spec",
    "processes_converged",
    "retire_strays",
    "start_processes",
]

ROLE = "process"


def process_selector(service: str, environment: str, process: str | None = None) -> dict[str, str]:
    selector = labels.selector(service, environment, ROLE)
    if process is not None:
        selector[labels.PROCESS] = process
    return selector


def process_containers(
    engine: Engine, service: str, environment: str, process: str | None = None
) -> list[ContainerInfo]:
    """The replicas of processes without router (of one ``process``), by name."""
    found = engine.containers(process_selector(service, environment, process))
    return sorted(found, key=lambda info: info.name)


def _health_mode(config: Config, process: str) -> str:
    settings = config.processes[process]
    if settings.health == "auto":
        return "healthcheck" if settings.healthcheck is not None else "liveness"
    return settings.health


def process_spec(config: Config, environment: str, process: str) -> ContainerSpec:
    """How replicas of ``process`` run; a liveness-checked one runs without the image's
    HEALTHCHECK, which usually probes the web server a worker does not run."""
    spec = resolve_container(config, environment, process)
    if _health_mode(config, process) == "liveness" and spec.healthcheck is None:
        spec = replace(spec, healthcheck={"test": ["NONE"]})
    return spec


def processes_converged(config: Config, engine: Engine, environment: str, digest: str) -> bool:
    """Whether every process without router runs ``digest`` with today's settings, as many
    replicas as configured, and nothing else."""
    for process in background_processes(config):
        wanted = process_spec(config, environment, process).config_hash
        running = process_containers(engine, config.service, environment, process)
        if len(running) != process_replicas(config, environment, process):
            return False
        for info in running:
            if not info.running or info.labels.get(labels.DIGEST) != digest:
                return False
            if info.labels.get(labels.CONFIG_HASH) != wanted:
                return False
    known = set(background_processes(config))
    return all(
        info.labels.get(labels.PROCESS) in known
        for info in process_containers(engine, config.service, environment)
    )


@dataclass
class ProcessSwitch:
    """New process replicas started for a release, and the old ones they replace."""

    engine: Engine
    grace: float
    started: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    progress: ProgressCallback = discard

    def finish(self) -> None:
        """The new release serves: the old process replicas stop."""
        if self.replaced:
            self.progress(Progress("deploy", f"stopping {', '.join(self.replaced)}"))
        for name in self.replaced:
            self.engine.remove(name, grace=self.grace)

    def undo(self) -> None:
        """The release was rolled back: the new process replicas go, the old ones run on."""
        if self.started:
            self.progress(Progress("deploy", f"removing {', '.join(self.started)}"))
        for name in self.started:
            self.engine.remove(name, grace=1)


def _names(service: str, environment: str, process: str, count: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    index = 1
    while len(names) < count:
        name = f"{service}-{environment}-{process}-{index}"
        if name not in taken:
            names.append(name)
        index += 1
    return names


def start_processes(
    config: Config,
    engine: Engine,
    environment: str,
    release: Release,
    *,
    progress: ProgressCallback = discard,
    heartbeat: Callable[[], None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    only: list[str] | None = None,
) -> ProcessSwitch:
    """Start every process without router (or those in ``only``) of ``release`` beside the
    old replicas; check them.

    Raises EngineError (after removing what it started) when one does not start.
    """
    # The executor loads here: `status` lists process containers and never starts one.
    from dockroll.rollout.executor import network_name, pinned_image  # noqa: PLC0415

    switch = ProcessSwitch(engine, config.container.stop_grace, progress=progress)
    known = set(background_processes(config))
    processes = [name for name in background_processes(config) if only is None or name in only]
    # Replicas of a process no longer in dockroll.yml go with the old release.
    for info in process_containers(engine, config.service, environment):
        if info.labels.get(labels.PROCESS) not in known:
            switch.replaced.append(info.name)
    image = pinned_image(release)
    try:
        for process in processes:
            spec = process_spec(config, environment, process)
            existing = process_containers(engine, config.service, environment, process)
            switch.replaced += [info.name for info in existing]
            count = process_replicas(config, environment, process)
            taken = {info.name for info in existing}
            names = _names(config.service, environment, process, count, taken)
            for name in names:
                request = run_request(
                    spec,
                    image,
                    name=name,
                    labels=_labels(config, environment, process, release, spec),
                    network=network_name(config.service, environment),
                    service=config.service,
                    environment=environment,
                )
                switch.started.append(name)
                engine.run(request)
            if names:
                progress(Progress("deploy", f"started {process}: {', '.join(names)}"))
            for name in names:
                _await_started(
                    config, engine, process, name, heartbeat=heartbeat, sleep=sleep, clock=clock
                )
            if names:
                progress(Progress("deploy", f"{process} started: {', '.join(names)}"))
    except BaseException:
        switch.undo()
        raise
    return switch


def _labels(
    config: Config, environment: str, process: str, release: Release, spec: ContainerSpec
) -> dict[str, str]:
    return {
        labels.SERVICE: config.service,
        labels.ENVIRONMENT: environment,
        labels.ROLE: ROLE,
        labels.PROCESS: process,
        labels.RELEASE: str(release.id),
        labels.VERSION: release.version,
        labels.DIGEST: release.digest,
        labels.GIT_SHA: release.git_sha or "",
        labels.CONFIG_HASH: spec.config_hash,
        labels.STARTED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _await_started(
    config: Config,
    engine: Engine,
    process: str,
    name: str,
    *,
    heartbeat: Callable[[], None],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    """Wait until ``name`` passes its health check, or kept running for ``liveness``."""
    mode = _health_mode(config, process)
    liveness = config.processes[process].liveness
    timeout = config.health.start_timeout
    deadline = clock() + timeout
    up_since: float | None = None
    while True:
        heartbeat()
        info = engine.container(name)
        if info is None or info.status in ("exited", "dead") or info.restart_count > 0:
            logs = engine.logs(name, tail=20) if info else ""
            code = info.exit_code if info and info.exit_code is not None else "?"
            raise EngineError(
                f"{name} ({process}) stopped during start (exit code {code})"
                + (f"; last log lines:\n{logs.rstrip()}" if logs.strip() else "")
            )
        if mode == "liveness":
            if info.running:
                up_since = clock() if up_since is None else up_since
                if clock() - up_since >= liveness:
                    return
            else:
                up_since = None
        else:
            if info.health is Health.UNHEALTHY:
                raise EngineError(f"{name} ({process}) reports unhealthy")
            if info.running and info.health in (Health.HEALTHY, Health.NONE):
                if info.health is Health.NONE and mode == "image":
                    raise EngineError(
                        f"{name} ({process}) has no HEALTHCHECK to wait for",
                        hint=f"set processes.{process}.health to liveness or give it a "
                        "`healthcheck:`",
                    )
                return
        if clock() >= deadline:
            raise EngineError(
                f"{name} ({process}) did not start within {timeout:g}s",
                hint="raise health.start_timeout in dockroll.yml if it is just slow",
            )
        sleep(min(config.health.interval, 0.5))


def retire_strays(
    config: Config,
    engine: Engine,
    environment: str,
    serving: Release | None,
    progress: ProgressCallback = discard,
) -> list[str]:
    """Remove process replicas not of ``serving`` (what an interrupted deploy left)."""
    removed = []
    for info in process_containers(engine, config.service, environment):
        if serving is None or info.labels.get(labels.DIGEST) != serving.digest:
            removed.append(info.name)
            engine.remove(info.id, grace=config.container.stop_grace)
    if removed:
        progress(Progress("deploy", f"removed {', '.join(removed)}, not of the serving release"))
    return removed
