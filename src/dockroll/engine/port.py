"""The container engine port: what dockroll needs from a runtime, and nothing more.

Adapters implement :class:`Engine` (the Docker SDK one lives in
:mod:`dockroll.engine.docker`); unit tests may use an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from dockroll.events import ProgressCallback
from dockroll.refs import Digest

__all__ = [
    "BuildRequest",
    "BuiltImage",
    "ContainerInfo",
    "Engine",
    "ExecResult",
    "ExecSession",
    "Health",
    "ImageInfo",
    "JobResult",
    "Mount",
    "PushAuth",
    "RunRequest",
]


class Health(StrEnum):
    """A container's health as the engine reports it."""

    NONE = "none"
    """The image has no HEALTHCHECK."""
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class BuildRequest:
    """Everything one image build needs."""

    context: Path
    dockerfile: Path
    tags: Sequence[str]
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)
    """Secret id → file handed to ``RUN --mount=type=secret,id=…``."""
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    platforms: Sequence[str] = ()


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    tags: tuple[str, ...]
    size: int
    builder: str
    """Which builder ran: ``buildx`` or ``buildkit`` (DOCKER_BUILDKIT=1)."""


@dataclass(frozen=True)
class ImageInfo:
    image_id: str
    tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int
    labels: Mapping[str, str]
    env: Mapping[str, str]
    has_healthcheck: bool
    exposed_ports: tuple[str, ...]


@dataclass(frozen=True)
class RunRequest:
    image: str
    name: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    publish: Mapping[int, int | None] = field(default_factory=dict)
    """Container port → host port on 127.0.0.1 (``None``: a random free port)."""
    network: str | None = None
    command: Sequence[str] | None = None
    restart: bool = False
    """Restart the container when it exits (``unless-stopped``)."""
    health_interval: float | None = None
    """Run the image's HEALTHCHECK this often (seconds) instead of the image's interval."""
    entrypoint: Sequence[str] | None = None
    restart_policy: str | None = None
    """``unless-stopped``, ``always``, ``on-failure[:N]`` or ``no``; overrides ``restart``."""
    mounts: Sequence[Mount] = ()
    memory: int | None = None
    """Memory limit in bytes."""
    nano_cpus: int | None = None
    """CPU limit in billionths of a core."""
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Mapping[str, Any] | None = None
    """The engine API's Healthcheck object; replaces the image's (``health_interval`` is
    then ignored)."""
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Environment variables that are secrets: never in a repr or a message."""
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    """Absolute path → content, written into the container before it starts (secrets)."""
    config_files: Mapping[str, tuple[bytes, int]] = field(default_factory=dict, repr=False)
    """Absolute path → (content, mode): config files that are not secrets, written into
    the container before it starts (Swarm configs on a Swarm)."""
    network_aliases: Sequence[str] = ()
    """Other names the container answers to on ``network`` (an accessory's short name)."""
    publish_on: Mapping[int, tuple[str, int]] = field(default_factory=dict)
    """Container port → (host address, host port), for listeners on other addresses than
    127.0.0.1 (a router's); beside ``publish``."""
    log_options: Mapping[str, str] = field(default_factory=dict)
    """Options of the engine's json-file log driver (``max-size``, ``max-file``); the
    engine's default logging when empty."""
    host_network: bool = False
    """Run in the engine host's network namespace (no ``network``, no ``publish``)."""
    user: str | None = None
    """The user the command runs as, instead of the image's."""
    stop_signal: str | None = None
    """The signal a stop (:meth:`Engine.remove`) sends first, instead of SIGTERM."""
    network_container: str | None = None
    """Run in the network namespace of this container (``container:<name>``): its
    networks, addresses and published ports (no ``network``, no ``publish``)."""


@dataclass(frozen=True)
class Mount:
    """A named volume (``volume``, created by the engine when missing) or a host path."""

    source: str
    target: str
    read_only: bool = False
    kind: str = "volume"
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of a volume the engine creates for this mount (``env down`` finds it)."""


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    image: str
    status: str
    """created, running, exited …"""
    health: Health
    exit_code: int | None
    ports: Mapping[int, int]
    """Container port → host port on 127.0.0.1, for published ports."""
    labels: Mapping[str, str]
    networks: Mapping[str, str] = field(default_factory=dict)
    """Network name → the container's IP address on it."""
    image_id: str = ""
    created: datetime | None = None
    """When the engine created it, by the engine's clock."""
    restart_count: int = 0
    """How often the engine restarted it (restart policy)."""
    node: str = ""
    """The Swarm node running it (its id), for replicas that are Swarm services."""
    started: datetime | None = None
    """When it last started, by the engine's clock; None when it never ran."""

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class JobResult:
    """How a one-off container ended."""

    exit_code: int
    logs: str
    seconds: float


@dataclass(frozen=True)
class ExecResult:
    """How a command run inside a container ended."""

    exit_code: int
    output: str
    """Its standard output and error, interleaved as the engine received them."""


class ExecSession(Protocol):
    """A command running inside a container, its stdin and stdout attached here."""

    def send(self, data: bytes) -> None:
        """Write to the command's stdin; OSError when the session is gone."""
        ...

    def receive(self) -> bytes:
        """The next output of the command (stdout and stderr); b"" once it ended.

        Raises TimeoutError when nothing arrives within the session's timeout.
        """
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, repr=False)
class PushAuth:
    """Registry credentials; never shown in reprs or logs."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"PushAuth(username={self.username!r}, password=***)"


class Engine(Protocol):
    """The operations dockroll performs on a container runtime."""

    @property
    def endpoint(self) -> str: ...

    def ping(self) -> str:
        """The engine's version; raises EngineUnavailable when it does not answer."""
        ...

    def now(self) -> datetime:
        """The engine's clock: locks on a shared engine are timed by it, not by clients."""
        ...

    def build(self, request: BuildRequest, progress: ProgressCallback) -> BuiltImage: ...

    def image(self, reference: str) -> ImageInfo | None:
        """The local image, or None when the engine does not have it."""
        ...

    def pull(self, reference: str, progress: ProgressCallback) -> ImageInfo: ...

    def push(self, reference: str, auth: PushAuth | None, progress: ProgressCallback) -> Digest: ...

    def run(self, request: RunRequest) -> ContainerInfo: ...

    def container(self, container_id: str) -> ContainerInfo | None: ...

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        """The container's output: its last ``tail`` lines (None: all), only those the engine
        received at or after ``since`` (whole seconds, the engine's clock), each prefixed with
        the engine's RFC 3339 nanosecond timestamp when ``timestamps``. "" when it is gone."""
        ...

    def remove(self, container_id: str, *, grace: float = 10.0) -> None:
        """Stop with a grace period, then remove; a missing container is not an error."""
        ...

    def containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """Every container (running or not) carrying all of ``labels``."""
        ...

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        """Create a bridge network unless it exists."""
        ...

    def run_job(self, request: RunRequest, timeout: float) -> JobResult:
        """Run a container to completion (bounded by ``timeout``), return its exit and logs."""
        ...

    def tag(self, image: str, repository: str, tag: str) -> None:
        """Point ``repository:tag`` at a local image."""
        ...

    def remove_image(self, reference: str) -> bool:
        """Untag and delete a local image; False when missing or still used by a container."""
        ...

    def reserve(self, name: str, image: str, labels: Mapping[str, str]) -> ContainerInfo | None:
        """Create (never start) a container named ``name``; None when the name is taken.

        The engine guarantees names are unique, which makes this an atomic
        test-and-set shared by every client of the engine (deployment locks).
        """
        ...

    def export_rootfs(self, image: str) -> Iterator[bytes]:
        """The image's merged filesystem as a tar stream, in chunks.

        Nothing is extracted or started: the adapter may create a stopped
        container to export and removes it when the stream ends or is closed.
        """
        ...

    def open_exec(self, container: str, command: Sequence[str], *, timeout: float) -> ExecSession:
        """Start ``command`` inside the running container ``container``, attached here."""
        ...

    def save_image(self, reference: str) -> Iterator[bytes]:
        """The image as a ``docker save`` tar stream, in chunks."""
        ...

    def load_image(self, chunks: Iterable[bytes]) -> None:
        """Load a ``docker save`` tar stream (as :meth:`save_image` gives it)."""
        ...

    def execute(self, container: str, command: Sequence[str]) -> ExecResult:
        """Run ``command`` to completion inside the running container ``container``.

        Raises :class:`~dockroll.errors.ContainerNotFound` when it does not run.
        """
        ...

    def copy_files(self, container: str, directory: str, files: Mapping[str, bytes]) -> None:
        """Write ``files`` (name → content, mode 0644) into ``directory`` of ``container``,
        running or not; an existing file is replaced.

        Raises :class:`~dockroll.errors.ContainerNotFound` when there is no such container.
        """
        ...

    def node_names(self) -> Mapping[str, str]:
        """Swarm node id → its hostname, in one call; empty off a Swarm."""
        ...

    def signal(self, container: str, signal: str) -> None:
        """Send ``signal`` (``SIGUSR2``, ``SIGHUP`` …) to the container's main process.

        Raises :class:`~dockroll.errors.ContainerNotFound` when it does not run.
        """
        ...

    def rename(self, container: str, name: str) -> None:
        """Give the container another name (it keeps running)."""
        ...

    def connect_network(self, container: str, network: str) -> None:
        """Attach the running container to ``network`` (live); already attached is fine."""
        ...
