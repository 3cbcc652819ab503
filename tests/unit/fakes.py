"""An in-memory fake of the Engine port, for unit tests of the stages above it.

It keeps images and containers in dicts, records every call, and lets a test
script what happens: a build hook sees the request while secrets still exist,
``push_digests`` choose the digest per reference, and ``container_states``
script what :meth:`FakeEngine.container` reports call by call; containers are
found by id or by name, as the engine finds them. Commands run in a container
answer from ``exec_results`` (or ``on_execute``), copied files land in
``files``, signals in ``signals``. It proves the stages; only the integration
tests prove the Docker adapter.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from dockroll.engine.port import (
    BuildRequest,
    BuiltImage,
    ContainerInfo,
    ExecResult,
    Health,
    ImageInfo,
    PushAuth,
    RunRequest,
)
from dockroll.errors import ContainerNotFound, EngineError
from dockroll.events import Progress, ProgressCallback
from dockroll.refs import Digest, parse_reference

__all__ = ["ContainerState", "FakeEngine", "fake_digest", "image_info"]


def fake_digest(seed: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


def image_info(
    image_id: str,
    tags: tuple[str, ...] = (),
    *,
    labels: Mapping[str, str] | None = None,
    has_healthcheck: bool = True,
    size: int = 1_000_000,
) -> ImageInfo:
    return ImageInfo(
        image_id=image_id,
        tags=tags,
        repo_digests=(),
        size=size,
        labels=dict(labels or {}),
        env={},
        has_healthcheck=has_healthcheck,
        exposed_ports=("5000/tcp",),
    )


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about a container at one moment."""

    status: str = "running"
    health: Health = Health.HEALTHY
    exit_code: int | None = None


@dataclass
class _Container:
    info: ContainerInfo
    states: Iterator[ContainerState]
    current: ContainerState


@dataclass
class FakeEngine:
    """Implements :class:`dockroll.engine.port.Engine` in memory."""

    endpoint: str = "fake://engine"
    images: dict[str, ImageInfo] = field(default_factory=dict)
    """Image id → info; references resolve through each image's tags."""
    builds: list[BuildRequest] = field(default_factory=list)
    build_hook: Callable[[BuildRequest], None] | None = None
    """Called during a build, while the request's secret files still exist."""
    build_error: Exception | None = None
    pushes: list[tuple[str, PushAuth | None]] = field(default_factory=list)
    push_digests: dict[str, Digest] = field(default_factory=dict)
    """Reference → digest a push reports; default: a digest derived from the image id."""
    runs: list[RunRequest] = field(default_factory=list)
    published_port: int = 0
    """The host port every published container port maps to (a test's local server)."""
    container_states: list[ContainerState] = field(default_factory=lambda: [ContainerState()])
    """Consecutive answers of ``container()``; the last one repeats."""
    container_logs: str = ""
    containers: dict[str, _Container] = field(default_factory=dict)
    removed: list[tuple[str, float]] = field(default_factory=list)
    run_error: EngineError | None = None
    """Raised by the next ``run`` (once), as the engine refusing to start a container."""
    networks: dict[str, dict[str, str]] = field(default_factory=dict)
    """Network name → its labels."""
    executed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    exec_results: list[ExecResult] = field(default_factory=list)
    """Consecutive answers of ``execute``; exit 0 and no output once used up."""
    on_execute: Callable[[str, Sequence[str]], ExecResult | None] | None = None
    """Answers ``execute`` first, when it returns a result."""
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Container name → path → content, of the files a run or ``copy_files`` wrote."""
    copy_error: EngineError | None = None
    signals: list[tuple[str, str]] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)
    """Swarm node id → hostname; empty: one engine."""
    _published: dict[str, dict[int, int]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def add_image(self, image_id: str, *tags: str, **kwargs: object) -> ImageInfo:
        """Put an image on the engine (``kwargs`` as for :func:`image_info`)."""
        for other_id, other in list(self.images.items()):
            kept = tuple(t for t in other.tags if t not in tags)
            self.images[other_id] = replace(other, tags=kept)
        info = image_info(image_id, tuple(tags), **kwargs)  # type: ignore[arg-type]
        self.images[image_id] = info
        return info

    def ping(self) -> str:
        return "fake-1.0"

    def now(self) -> datetime:
        return datetime.now(UTC)

    def build(self, request: BuildRequest, progress: ProgressCallback) -> BuiltImage:
        self.builds.append(request)
        if self.build_hook is not None:
            self.build_hook(request)
        if self.build_error is not None:
            raise self.build_error
        progress(Progress("build", "fake build", detail=True))
        image_id = fake_digest(f"build-{len(self.builds)}")
        self.add_image(image_id, *request.tags, labels=request.labels)
        return BuiltImage(image_id=image_id, tags=tuple(request.tags), size=42, builder="fake")

    def image(self, reference: str) -> ImageInfo | None:
        if reference in self.images:
            return self.images[reference]
        for info in self.images.values():
            if reference in info.tags:
                return info
        return None

    def pull(self, reference: str, progress: ProgressCallback) -> ImageInfo:
        info = self.image(reference)
        if info is None:
            raise EngineError(f"fake engine cannot pull {reference}")
        return info

    def push(self, reference: str, auth: PushAuth | None, progress: ProgressCallback) -> Digest:
        self.pushes.append((reference, auth))
        info = self.image(reference)
        if info is None:
            raise EngineError(f"no such image {reference}")
        progress(Progress("push", f"{parse_reference(reference).tag}: Pushed", detail=True))
        return self.push_digests.get(reference, fake_digest(info.image_id))

    def run(self, request: RunRequest) -> ContainerInfo:
        if self.image(request.image) is None:
            raise EngineError(f"image {request.image} is not on the engine")
        if self.run_error is not None:
            error, self.run_error = self.run_error, None
            raise error
        self.runs.append(request)
        container_id = f"c{next(self._ids):063d}"
        states = iter(self.container_states)
        first = next(states)
        published = {port: self.published_port for port in request.publish}
        info = ContainerInfo(
            id=container_id,
            name=request.name or container_id[:12],
            image=request.image,
            status=first.status,
            health=first.health,
            exit_code=first.exit_code,
            # Like Docker: a container that is not running has no published ports.
            ports=dict(published) if first.status == "running" else {},
            labels=dict(request.labels),
        )
        self.containers[container_id] = _Container(info, states, first)
        self._published[container_id] = published
        self.files[info.name] = dict(request.files)
        return info

    def _id(self, key: str) -> str | None:
        if key in self.containers:
            return key
        return next((i for i, c in self.containers.items() if c.info.name == key), None)

    def container(self, container_id: str) -> ContainerInfo | None:
        found = self._id(container_id)
        entry = self.containers.get(found) if found else None
        if entry is None or found is None:
            return None
        container_id = found
        entry.current = next(entry.states, entry.current)
        state = entry.current
        ports = self._published[container_id] if state.status == "running" else {}
        return replace(
            entry.info,
            status=state.status,
            health=state.health,
            exit_code=state.exit_code,
            ports=ports,
        )

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        lines = self.container_logs.splitlines()
        return "\n".join(lines if tail is None else lines[-tail:])

    def remove(self, container_id: str, *, grace: float = 10.0) -> None:
        self.removed.append((container_id, grace))
        self.containers.pop(self._id(container_id) or container_id, None)

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        self.networks.setdefault(name, dict(labels))

    def _running(self, container: str) -> ContainerInfo:
        info = self.container(container)
        if info is None:
            raise ContainerNotFound(f"container {container} does not exist on {self.endpoint}")
        if not info.running:
            raise ContainerNotFound(f"container {container} is not running")
        return info

    def execute(self, container: str, command: Sequence[str]) -> ExecResult:
        self._running(container)
        self.executed.append((container, tuple(command)))
        if self.on_execute is not None:
            answer = self.on_execute(container, command)
            if answer is not None:
                return answer
        return self.exec_results.pop(0) if self.exec_results else ExecResult(0, "")

    def copy_files(self, container: str, directory: str, files: Mapping[str, bytes]) -> None:
        info = self.container(container)
        if info is None:
            raise ContainerNotFound(f"container {container} does not exist on {self.endpoint}")
        if self.copy_error is not None:
            raise self.copy_error
        written = self.files.setdefault(info.name, {})
        written.update({f"{directory.rstrip('/')}/{name}": data for name, data in files.items()})

    def node_names(self) -> dict[str, str]:
        return dict(self.nodes)

    def signal(self, container: str, signal: str) -> None:
        info = self._running(container)
        self.signals.append((info.name, signal))

    @property
    def running(self) -> list[str]:
        """Ids of containers started and not removed."""
        return list(self.containers)
