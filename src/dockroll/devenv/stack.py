"""``dev up``, ``dev status`` and ``dev down``: the components in dependency order."""

from __future__ import annotations

from pathlib import Path

from dockroll.devenv.base_images import HAPROXY, PYTHON, base_image_status, ensure_base_image
from dockroll.devenv.cluster import SWARM_CLUSTER, ensure_swarm, remove_cluster, swarm_report
from dockroll.devenv.engine import engine_status, ensure_engine, stop_engine
from dockroll.devenv.postgres import ensure_postgres, postgres_status, stop_postgres
from dockroll.devenv.registry import DEFAULT_PORT, ensure_registry, registry_status, stop_registry
from dockroll.devenv.report import ComponentReport, ComponentState, DevEnvReport
from dockroll.devenv.system import LocalSystem, System
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.statedir import state_dir

__all__ = ["down", "status", "up"]


def up(
    *,
    registry_port: int = DEFAULT_PORT,
    router: bool = False,
    postgres: bool = False,
    swarm: bool = False,
    system: System | None = None,
    progress: ProgressCallback = discard,
    root: Path | None = None,
) -> DevEnvReport:
    """Bring up the local infrastructure, reusing whatever already runs.

    Engine, registry on 127.0.0.1:``registry_port`` and the Python base image
    always; the HAProxy base image with ``router``; PostgreSQL with
    ``postgres``; a three-node Swarm of Docker-in-Docker nodes with ``swarm``
    (:func:`~dockroll.devenv.cluster.ensure_swarm`). Idempotent: when
    everything is up it only checks, in seconds. Raises a
    :class:`~dockroll.errors.DockrollError` subclass at the first component
    that cannot be set up; earlier ones stay up.
    """
    system = system or LocalSystem()
    root = root or state_dir()
    start = system.monotonic()
    reports: list[ComponentReport] = []

    def step(report: ComponentReport) -> None:
        reports.append(report)
        progress(Progress("dev", f"{report.component}: {report.detail}"))

    progress(Progress("dev", "checking the Docker engine"))
    step(ensure_engine(system, progress=progress, root=root))
    progress(Progress("dev", f"checking the registry on 127.0.0.1:{registry_port}"))
    step(ensure_registry(port=registry_port, system=system, progress=progress, root=root))
    images = [(PYTHON, True)] + ([(HAPROXY, False)] if router else [])
    for image, required in images:
        progress(Progress("dev", f"checking base image {image.official}"))
        for report in ensure_base_image(
            image, system=system, progress=progress, root=root, required=required
        ):
            step(report)
    if postgres:
        progress(Progress("dev", "checking PostgreSQL"))
        step(ensure_postgres(system, progress=progress, root=root))
    if swarm:
        progress(Progress("dev", "checking the Swarm of Docker-in-Docker nodes"))
        step(swarm_report(ensure_swarm(system=system, progress=progress, root=root)))
    return DevEnvReport("up", tuple(reports), seconds=system.monotonic() - start)


def status(
    *, registry_port: int = DEFAULT_PORT, system: System | None = None, root: Path | None = None
) -> DevEnvReport:
    """Each component's state; starts, builds and stops nothing."""
    system = system or LocalSystem()
    start = system.monotonic()
    engine = engine_status(system)
    reports = [engine, registry_status(port=registry_port, system=system, root=root)]
    if engine.up:
        reports.append(base_image_status(PYTHON, system=system))
        reports.append(base_image_status(HAPROXY, system=system, required=False))
    reports.append(postgres_status(system))
    return DevEnvReport("status", tuple(reports), seconds=system.monotonic() - start)


def down(
    *,
    registry_port: int = DEFAULT_PORT,
    engine: bool = False,
    system: System | None = None,
    root: Path | None = None,
) -> DevEnvReport:
    """Stop what dockroll started: the registry, PostgreSQL, and with ``engine`` dockerd.

    Anything dockroll did not start is left running and reported as such.
    Base images stay: they are a cache, not a service.
    """
    system = system or LocalSystem()
    root = root or state_dir()
    start = system.monotonic()
    reports = [
        stop_registry(port=registry_port, system=system, root=root),
        stop_postgres(system, root=root),
    ]
    try:
        removed = remove_cluster(SWARM_CLUSTER, system=system)
    except DevEnvError:  # no engine to ask: no cluster to remove either
        removed = []
    if removed:
        reports.append(
            ComponentReport(
                f"{SWARM_CLUSTER} cluster",
                ComponentState.DOWN,
                f"removed {len(removed)} nodes, volumes and networks",
                changed=True,
                required=False,
            )
        )
    if engine:
        reports.append(stop_engine(system, root=root))
    else:
        current = engine_status(system)
        detail = "left running" if current.up else current.detail
        reports.append(ComponentReport("engine", current.state, detail, facts=current.facts))
    return DevEnvReport("down", tuple(reports), seconds=system.monotonic() - start)
