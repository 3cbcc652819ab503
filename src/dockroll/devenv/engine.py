"""The Docker engine: use the one that answers, or install and start Debian's."""

from __future__ import annotations

import signal
from pathlib import Path

from dockroll.devenv import _record
from dockroll.devenv._apt import apt_install, can_install
from dockroll.devenv.report import ComponentReport, ComponentState
from dockroll.devenv.system import EngineProbe, LocalSystem, System, tail
from dockroll.errors import EngineUnavailable
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.statedir import state_dir

__all__ = ["engine_status", "ensure_engine", "stop_engine"]

COMPONENT = "engine"
_LOCAL_SOCKETS = {"unix:///var/run/docker.sock", "unix:///run/docker.sock"}
_PROBE_TIMEOUT = 5.0


def _endpoint(system: System) -> str:
    return system.env("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _up(
    probe: EngineProbe, system: System, detail: str, *, changed: bool = False, seconds: float = 0.0
) -> ComponentReport:
    return ComponentReport(
        COMPONENT,
        ComponentState.UP,
        detail,
        changed=changed,
        seconds=seconds,
        facts={"version": probe.version or "", "endpoint": _endpoint(system)},
    )


def engine_status(system: System | None = None) -> ComponentReport:
    """Whether an engine answers at ``DOCKER_HOST`` (or the local socket); changes nothing."""
    system = system or LocalSystem()
    probe = system.probe_engine(_PROBE_TIMEOUT)
    if probe.up:
        return _up(probe, system, f"Docker {probe.version}")
    return ComponentReport(
        COMPONENT,
        ComponentState.DOWN,
        f"no engine answers at {_endpoint(system)}: {probe.error}",
        facts={"endpoint": _endpoint(system)},
    )


def ensure_engine(
    system: System | None = None,
    *,
    progress: ProgressCallback = discard,
    root: Path | None = None,
    wait: float = 60.0,
) -> ComponentReport:
    """Make sure a Docker engine answers, starting Debian's ``dockerd`` if dockroll may.

    Uses the engine that answers if there is one (``DOCKER_HOST`` honoured).
    Otherwise, as root on a Debian-like system, installs ``docker.io`` when
    ``dockerd`` is missing and starts it detached, logging to
    ``<state>/logs/dockerd.log``. A ``dockerd`` that runs but is slow to answer
    is waited for, never doubled. Raises :class:`EngineUnavailable` with what
    to install or start when none of that is possible.
    """
    system = system or LocalSystem()
    root = root or state_dir()
    start = system.monotonic()
    probe = system.probe_engine(_PROBE_TIMEOUT)
    if probe.up:
        return _up(probe, system, "already running", seconds=system.monotonic() - start)

    endpoint = _endpoint(system)
    if endpoint not in _LOCAL_SOCKETS:
        # Starting a local dockerd would not make a remote or custom endpoint answer.
        raise EngineUnavailable(
            f"no Docker engine answers at DOCKER_HOST={endpoint}: {probe.error}",
            hint="start the engine behind that endpoint, or unset DOCKER_HOST to use the local one",
        )

    running = system.find_processes("dockerd")
    if running:
        pid = running[0]
        progress(Progress("dev", f"dockerd (pid {pid}) runs but does not answer yet; waiting"))
        probe = _wait_for_engine(system, wait, pid=None)
        if probe.up:
            return _up(probe, system, "already running", seconds=system.monotonic() - start)
        raise EngineUnavailable(
            f"dockerd (pid {pid}) is running but does not answer at {endpoint} "
            f"after {wait:.0f} s: {probe.error}",
            hint="check its log; dockroll does not start a second dockerd next to it",
        )

    if not system.is_root():
        raise EngineUnavailable(
            f"no Docker engine answers at {endpoint}: {probe.error}",
            hint="start Docker (Docker Desktop, or `sudo systemctl start docker`), or rerun "
            "`dockroll dev up` as root on Debian/Ubuntu to let it install and start docker.io",
        )
    if system.which("dockerd") is None:
        if not can_install(system):
            raise EngineUnavailable(
                f"no Docker engine answers at {endpoint} and dockerd is not installed",
                hint="install Docker Engine (on Debian/Ubuntu: `apt-get install docker.io`) "
                "and start it",
            )
        apt_install(system, ["docker.io"], progress)

    log = root / "logs" / "dockerd.log"
    progress(Progress("dev", f"starting dockerd (log: {log})"))
    pid = system.spawn(["dockerd"], log=log)
    _record.remember(root, COMPONENT, {"pid": pid})
    probe = _wait_for_engine(system, wait, pid=pid)
    if probe.up:
        return _up(probe, system, "started", changed=True, seconds=system.monotonic() - start)
    alive = system.process_command(pid) is not None
    raise EngineUnavailable(
        f"dockerd (pid {pid}) {'does not answer' if alive else 'exited'} "
        f"after starting: {probe.error}\n{tail(log)}",
        hint=f"see {log}",
    )


def _wait_for_engine(system: System, wait: float, *, pid: int | None) -> EngineProbe:
    deadline = system.monotonic() + wait
    probe = system.probe_engine(_PROBE_TIMEOUT)
    while not probe.up and system.monotonic() < deadline:
        if pid is not None and system.process_command(pid) is None:
            break  # it died: waiting longer cannot help
        system.sleep(0.5)
        probe = system.probe_engine(_PROBE_TIMEOUT)
    return probe


def stop_engine(
    system: System | None = None, *, root: Path | None = None, wait: float = 30.0
) -> ComponentReport:
    """Stop ``dockerd`` only if dockroll started it; otherwise leave it running."""
    system = system or LocalSystem()
    root = root or state_dir()
    record = _record.recall(root, COMPONENT)
    pid = int(record["pid"]) if record and "pid" in record else None
    command = system.process_command(pid) if pid is not None else None
    if pid is None or command is None or (command and "dockerd" not in command):
        _record.forget(root, COMPONENT)
        status = engine_status(system)
        detail = "left running (not started by dockroll)" if status.up else status.detail
        return ComponentReport(COMPONENT, status.state, detail, facts=status.facts)
    system.signal(pid, signal.SIGTERM)
    deadline = system.monotonic() + wait
    while system.process_command(pid) is not None and system.monotonic() < deadline:
        system.sleep(0.2)
    if system.process_command(pid) is not None:
        raise EngineUnavailable(
            f"dockerd (pid {pid}) did not stop within {wait:.0f} s",
            hint=f"stop it with `kill {pid}`",
        )
    _record.forget(root, COMPONENT)
    return ComponentReport(COMPONENT, ComponentState.DOWN, "stopped", changed=True)
