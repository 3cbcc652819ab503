"""A real OCI registry on localhost: Debian's ``docker-registry``, or ``registry:2``.

Any number of instances can run side by side, one per port and data
directory (the auth tests start a second one with htpasswd). Each instance
keeps its config, pid file, log and blobs in its own directory::

    <data_dir>/config.yml   registry.pid   registry.log   storage/
"""

from __future__ import annotations

import secrets
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from dockroll.devenv._apt import apt_install, can_install
from dockroll.devenv.report import ComponentReport, ComponentState
from dockroll.devenv.system import LocalSystem, System, tail
from dockroll.errors import DevEnvError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.statedir import state_dir

__all__ = [
    "CONTAINER_IMAGE",
    "DEFAULT_PORT",
    "RegistryInstance",
    "container_name",
    "default_data_dir",
    "ensure_registry",
    "find_registry",
    "registry_config",
    "registry_status",
    "start_registry",
    "stop_registry",
    "write_htpasswd",
]

DEFAULT_PORT = 5000
CONTAINER_IMAGE = "registry:2"
COMPONENT = "registry"
RegistryKind = Literal["process", "container", "external"]

_CONTAINER_STORAGE = "/var/lib/registry"
_CONTAINER_CONFIG = "/etc/docker/registry/config.yml"
_CONTAINER_HTPASSWD = "/auth/htpasswd"


def default_data_dir(port: int = DEFAULT_PORT, root: Path | None = None) -> Path:
    """``<state>/registry`` for the default port, ``<state>/registry-<port>`` for others."""
    root = root or state_dir()
    return root / "registry" if port == DEFAULT_PORT else root / f"registry-{port}"


def container_name(port: int) -> str:
    """The name of the ``registry:2`` container dockroll runs for ``port``."""
    return f"dockroll-registry-{port}"


def registry_config(
    *, listen: str, storage_dir: str, secret: str, htpasswd: str | None = None
) -> str:
    """The distribution config (YAML) of one instance: deletes enabled, optional htpasswd."""
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": storage_dir},
            # retention and promotion tests delete manifests
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": listen,
            # a fixed secret per instance keeps upload sessions valid across restarts
            "secret": secret,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "dockroll-registry", "path": htpasswd}}
    return yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True)
class RegistryInstance:
    """A registry answering on ``host:port``; :meth:`stop` stops it if dockroll runs it."""

    port: int
    data_dir: Path
    kind: RegistryKind
    """``process`` (docker-registry), ``container`` (registry:2), ``external`` (not ours)."""
    host: str = "127.0.0.1"
    pid: int | None = None
    container: str | None = None
    htpasswd: Path | None = None
    started: bool = False
    """True when the call that returned this handle started the registry."""
    system: System = field(default_factory=LocalSystem, repr=False, compare=False)

    @property
    def address(self) -> str:
        """``host:port``, the form image references use."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://host:port``; the registry speaks plain HTTP on localhost."""
        return f"http://{self.address}"

    def answers(self, timeout: float = 2.0) -> bool:
        """True when ``GET /v2/`` answers like a registry (200, or 401 with auth)."""
        return self.system.http_status(f"{self.url}/v2/", timeout) in (200, 401)

    def stop(self, wait: float = 15.0) -> bool:
        """Stop the registry if dockroll runs it; False for an external one (left alone)."""
        if self.kind == "external":
            return False
        if self.kind == "container":
            assert self.container is not None
            done = self.system.run(["docker", "rm", "-f", self.container], timeout=60)
            if not done.ok and "No such container" not in done.stderr:
                raise DevEnvError(f"could not remove {self.container}: {done.why()}")
        elif self.pid is not None:
            self.system.signal(self.pid, signal.SIGTERM)
            deadline = self.system.monotonic() + wait
            while self.system.process_command(self.pid) is not None:
                if self.system.monotonic() > deadline:
                    self.system.signal(self.pid, signal.SIGKILL)
                    break
                self.system.sleep(0.1)
            (self.data_dir / "registry.pid").unlink(missing_ok=True)
        return True


def find_registry(
    *,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    system: System | None = None,
    root: Path | None = None,
) -> RegistryInstance | None:
    """The registry answering on ``host:port``, or None; raises if something else holds it."""
    system = system or LocalSystem()
    data_dir = data_dir or default_data_dir(port, root)
    status = system.http_status(f"http://{host}:{port}/v2/", 3.0)
    if status is None:
        return None
    if status not in (200, 401):
        raise DevEnvError(
            f"{host}:{port} answers GET /v2/ with {status}: something that is not a registry "
            "holds the port",
            hint="stop it, or choose another port with --registry-port",
        )
    htpasswd = data_dir / "htpasswd"
    auth = htpasswd if status == 401 and htpasswd.exists() else None
    pid = _registry_pid(system, data_dir)
    if pid is not None:
        return RegistryInstance(
            port, data_dir, "process", host, pid=pid, htpasswd=auth, system=system
        )
    name = container_name(port)
    running = system.run(["docker", "inspect", "-f", "{{.State.Running}}", name], timeout=15)
    if running.ok and running.stdout.strip() == "true":
        return RegistryInstance(
            port, data_dir, "container", host, container=name, htpasswd=auth, system=system
        )
    return RegistryInstance(port, data_dir, "external", host, system=system)


def _registry_pid(system: System, data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "registry.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    command = system.process_command(pid)
    if command is None or (command and "registry" not in command):
        return None  # stale pid file, or the pid now belongs to another program
    return pid


def start_registry(
    *,
    port: int = DEFAULT_PORT,
    data_dir: Path | None = None,
    htpasswd: Path | None = None,
    host: str = "127.0.0.1",
    system: System | None = None,
    progress: ProgressCallback = discard,
    root: Path | None = None,
    wait: float = 30.0,
) -> RegistryInstance:
    """Start (or reuse) a registry on ``host:port`` with data under ``data_dir``.

    Reuses whatever registry already answers there. Otherwise runs Debian's
    ``docker-registry`` detached (installing the package when root and
    missing), else the ``registry:2`` image if it is present or can be
    pulled. ``htpasswd`` (a bcrypt htpasswd file, see :func:`write_htpasswd`)
    turns on basic auth. Raises :class:`DevEnvError` when nothing works.
    """
    system = system or LocalSystem()
    data_dir = (data_dir or default_data_dir(port, root)).resolve()
    existing = find_registry(port=port, data_dir=data_dir, host=host, system=system)
    if existing is not None:
        return existing
    pid = _registry_pid(system, data_dir)
    if pid is not None:
        # ours, alive but not answering yet: wait for it rather than start a second one
        instance = RegistryInstance(port, data_dir, "process", host, pid=pid, system=system)
        _wait_until_answering(instance, wait, data_dir / "registry.log")
        return instance
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "storage").mkdir(exist_ok=True)
    auth_file = None
    if htpasswd is not None:
        # a copy inside the instance directory: the container variant mounts it from there
        auth_file = data_dir / "htpasswd"
        if htpasswd.resolve() != auth_file:
            auth_file.write_bytes(htpasswd.read_bytes())

    binary = system.which("docker-registry")
    if binary is None and can_install(system):
        apt_install(system, ["docker-registry"], progress)
        binary = system.which("docker-registry")
    if binary is not None:
        return _start_process(
            binary,
            port,
            data_dir,
            htpasswd=auth_file,
            host=host,
            system=system,
            progress=progress,
            wait=wait,
        )
    if _container_image_available(system, progress):
        return _start_container(
            port,
            data_dir,
            htpasswd=auth_file,
            host=host,
            system=system,
            progress=progress,
            wait=wait,
        )
    raise DevEnvError(
        f"no registry could be started on {host}:{port}: `docker-registry` is not installed "
        f"and the {CONTAINER_IMAGE} image cannot be pulled",
        hint="install Debian's docker-registry (`apt-get install docker-registry`, as root), "
        f"or make `docker pull {CONTAINER_IMAGE}` work, then rerun `dockroll dev up`",
    )


def _secret(data_dir: Path) -> str:
    path = data_dir / "http-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_hex(16)
        path.write_text(value + "\n")
        return value


def _start_process(
    binary: str,
    port: int,
    data_dir: Path,
    *,
    htpasswd: Path | None,
    host: str,
    system: System,
    progress: ProgressCallback,
    wait: float,
) -> RegistryInstance:
    config = data_dir / "config.yml"
    config.write_text(
        registry_config(
            listen=f"{host}:{port}",
            storage_dir=str(data_dir / "storage"),
            secret=_secret(data_dir),
            htpasswd=str(htpasswd) if htpasswd else None,
        )
    )
    log = data_dir / "registry.log"
    progress(Progress("dev", f"starting docker-registry on {host}:{port} (log: {log})"))
    pid = system.spawn([binary, "serve", str(config)], log=log)
    (data_dir / "registry.pid").write_text(f"{pid}\n")
    instance = RegistryInstance(
        port, data_dir, "process", host, pid=pid, htpasswd=htpasswd, started=True, system=system
    )
    _wait_until_answering(instance, wait, log)
    return instance


def _container_image_available(system: System, progress: ProgressCallback) -> bool:
    if system.which("docker") is None:
        return False
    if system.run(["docker", "image", "inspect", CONTAINER_IMAGE], timeout=30).ok:
        return True
    progress(Progress("dev", f"docker pull {CONTAINER_IMAGE}"))
    return system.run(["docker", "pull", CONTAINER_IMAGE], timeout=180).ok


def _start_container(
    port: int,
    data_dir: Path,
    *,
    htpasswd: Path | None,
    host: str,
    system: System,
    progress: ProgressCallback,
    wait: float,
) -> RegistryInstance:
    config = data_dir / "config.yml"
    config.write_text(
        registry_config(
            listen=":5000",
            storage_dir=_CONTAINER_STORAGE,
            secret=_secret(data_dir),
            htpasswd=_CONTAINER_HTPASSWD if htpasswd else None,
        )
    )
    name = container_name(port)
    system.run(["docker", "rm", "-f", name], timeout=60)  # a stopped leftover blocks the name
    argv = [
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "--label",
        "dockroll.devenv=registry",
        "-p",
        f"{host}:{port}:5000",
        "-v",
        f"{data_dir / 'storage'}:{_CONTAINER_STORAGE}",
        "-v",
        f"{config}:{_CONTAINER_CONFIG}:ro",
    ]
    if htpasswd is not None:
        argv += ["-v", f"{htpasswd}:{_CONTAINER_HTPASSWD}:ro"]
    progress(Progress("dev", f"starting {CONTAINER_IMAGE} as {name} on {host}:{port}"))
    done = system.run([*argv, CONTAINER_IMAGE], timeout=120)
    if not done.ok:
        raise DevEnvError(f"could not start {CONTAINER_IMAGE}: {done.why()}")
    instance = RegistryInstance(
        port,
        data_dir,
        "container",
        host,
        container=name,
        htpasswd=htpasswd,
        started=True,
        system=system,
    )
    _wait_until_answering(instance, wait, None)
    return instance


def _wait_until_answering(instance: RegistryInstance, wait: float, log: Path | None) -> None:
    system = instance.system
    deadline = system.monotonic() + wait
    while not instance.answers():
        died = instance.pid is not None and system.process_command(instance.pid) is None
        if died or system.monotonic() > deadline:
            why = "exited" if died else f"does not answer after {wait:.0f} s"
            details = tail(log) if log else ""
            if not died:
                instance.stop()
            elif instance.pid is not None:
                (instance.data_dir / "registry.pid").unlink(missing_ok=True)
            raise DevEnvError(
                f"the registry on {instance.address} {why}" + (f":\n{details}" if details else ""),
                hint=f"see {log}" if log else f"see `docker logs {instance.container}`",
            )
        system.sleep(0.1)


def write_htpasswd(
    path: Path,
    users: dict[str, str],
    *,
    system: System | None = None,
    progress: ProgressCallback = discard,
) -> Path:
    """Write a bcrypt htpasswd file (the only hash the registry accepts) for ``users``.

    Uses ``htpasswd`` from apache2-utils, installing it when root on Debian.
    """
    system = system or LocalSystem()
    if system.which("htpasswd") is None:
        if not can_install(system):
            raise DevEnvError(
                "`htpasswd` is needed to write a registry password file",
                hint="install apache2-utils (Debian/Ubuntu) or httpd-tools",
            )
        apt_install(system, ["apache2-utils"], progress)
    lines = []
    for user, password in users.items():
        done = system.run(["htpasswd", "-Bbn", user, password], timeout=30)
        if not done.ok:
            raise DevEnvError(f"htpasswd failed for {user}: {done.why()}")
        lines.append(done.stdout.strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def ensure_registry(
    *,
    port: int = DEFAULT_PORT,
    system: System | None = None,
    progress: ProgressCallback = discard,
    root: Path | None = None,
) -> ComponentReport:
    """``dev up``'s registry step: reuse or start the registry on 127.0.0.1:``port``."""
    system = system or LocalSystem()
    start = system.monotonic()
    instance = start_registry(port=port, system=system, progress=progress, root=root)
    detail = f"started ({_how(instance)})" if instance.started else "already running"
    if not instance.started and instance.kind == "external":
        detail += " (not started by dockroll)"
    return ComponentReport(
        COMPONENT,
        ComponentState.UP,
        detail,
        changed=instance.started,
        seconds=system.monotonic() - start,
        facts=_facts(instance),
    )


def _how(instance: RegistryInstance) -> str:
    if instance.kind == "process":
        return f"docker-registry, pid {instance.pid}"
    if instance.kind == "container":
        return f"container {instance.container}"
    return "external"


def _facts(instance: RegistryInstance) -> dict[str, str]:
    return {
        "address": instance.address,
        "kind": instance.kind,
        "data_dir": str(instance.data_dir),
        **({"pid": str(instance.pid)} if instance.pid else {}),
        **({"container": instance.container} if instance.container else {}),
    }


def registry_status(
    *, port: int = DEFAULT_PORT, system: System | None = None, root: Path | None = None
) -> ComponentReport:
    """Whether a registry answers on 127.0.0.1:``port``; changes nothing."""
    system = system or LocalSystem()
    try:
        instance = find_registry(port=port, system=system, root=root)
    except DevEnvError as exc:
        return ComponentReport(COMPONENT, ComponentState.DOWN, exc.message)
    if instance is None:
        return ComponentReport(
            COMPONENT,
            ComponentState.DOWN,
            f"nothing answers on 127.0.0.1:{port}",
            facts={"address": f"127.0.0.1:{port}"},
        )
    return ComponentReport(
        COMPONENT, ComponentState.UP, f"running ({_how(instance)})", facts=_facts(instance)
    )


def stop_registry(
    *, port: int = DEFAULT_PORT, system: System | None = None, root: Path | None = None
) -> ComponentReport:
    """Stop the registry on 127.0.0.1:``port`` if dockroll runs it; leave others alone."""
    system = system or LocalSystem()
    instance = find_registry(port=port, system=system, root=root)
    if instance is None:
        return ComponentReport(COMPONENT, ComponentState.DOWN, "not running")
    if not instance.stop():
        return ComponentReport(
            COMPONENT,
            ComponentState.UP,
            "left running (not started by dockroll)",
            facts=_facts(instance),
        )
    return ComponentReport(COMPONENT, ComponentState.DOWN, "stopped", changed=True)
