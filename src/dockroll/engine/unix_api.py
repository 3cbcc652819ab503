"""A light engine client: the calls ``dockroll status`` and the instant rollback make, over a
local engine's unix socket with the standard library.

``status`` asks the engine a handful of questions (is it there, its clock,
which containers carry some labels, what one container looks like); the
instant blue-green rollback also takes the environment's lock (a created
container, removed afterwards) and makes sure its network exists. Making
these calls with ``http.client`` over the socket spares the Docker SDK with
requests and urllib3 (about a tenth of a second of imports). Every other call
of the port goes to a :class:`~dockroll.engine.docker.DockerEngine` on the same
socket, made on first need, so the client is a whole engine. The JSON becomes
the port's records through the conversion the SDK adapter uses
(:mod:`dockroll.engine.api`).

Only ``unix://`` endpoints without TLS are spoken to this way:
:func:`light_engine` gives the SDK adapter for anything else.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from dockroll.engine.api import container_info, engine_time, engine_unavailable, first_line
from dockroll.engine.port import (
    BuildRequest,
    BuiltImage,
    ContainerInfo,
    Engine,
    ExecResult,
    ExecSession,
    ImageInfo,
    JobResult,
    PushAuth,
    RunRequest,
)
from dockroll.errors import EngineError
from dockroll.events import ProgressCallback
from dockroll.refs import Digest

if TYPE_CHECKING:
    from dockroll.engine.docker import DockerEngine

__all__ = ["UnixSocketEngine", "light_engine", "parse_response"]


def light_engine(endpoint: str, *, certs: Path | None = None) -> UnixSocketEngine | DockerEngine:
    """The engine at ``endpoint``: over its unix socket when it is one (and needs no TLS),
    else through the Docker SDK."""
    if endpoint.startswith("unix://") and certs is None:
        return UnixSocketEngine(endpoint)
    from dockroll.engine.docker import DockerEngine  # noqa: PLC0415 - tcp://, ssh://, TLS

    return DockerEngine(endpoint, certs=certs)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def parse_response(status: int, body: bytes, what: str) -> Any:
    """The JSON of an engine API answer; None for 404; EngineError for any other failure,
    with the engine's own ``message``."""
    if status == 404:
        return None
    if not 200 <= status < 300:
        raise EngineError(f"{what} failed: {_message(body) or f'HTTP {status}'}")
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise EngineError(f"{what} failed: the engine answered no JSON") from None


class UnixSocketEngine:
    """The Docker engine at a ``unix://`` endpoint: reads over the socket, the rest through
    the SDK adapter."""

    def __init__(self, endpoint: str, *, timeout: float = 120) -> None:
        if not endpoint.startswith("unix://"):
            raise ValueError(f"not a unix socket endpoint: {endpoint}")
        self._endpoint = endpoint
        self._path = endpoint.removeprefix("unix://")
        self._timeout = timeout
        self._connection: _UnixConnection | None = None
        self._docker: DockerEngine | None = None

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def local(self) -> bool:
        return True

    @property
    def adapter(self) -> DockerEngine:
        """The SDK adapter on the same socket, for the calls not made here."""
        if self._docker is None:
            from dockroll.engine.docker import DockerEngine  # noqa: PLC0415 - on first need

            self._docker = DockerEngine(self._endpoint, timeout=self._timeout)
        return self._docker

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._docker is not None:
            self._docker.close()

    # -- the calls made here -------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """One request on the kept-alive connection: the status and the body. A connection the
        engine closed while idle is opened again once, for a GET only (it changes nothing)."""
        headers = {"Host": "docker"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = _UnixConnection(self._path, self._timeout)
            wait = self._timeout if timeout is None else timeout
            self._connection.timeout = wait
            if self._connection.sock is not None:
                self._connection.sock.settimeout(wait)
            try:
                self._connection.request(method, path, body=data, headers=headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._connection.close()
                self._connection = None
                if attempt == 2 or method != "GET":
                    raise engine_unavailable(
                        self._endpoint, f"the engine closed the connection ({what})"
                    ) from None
            except OSError as exc:
                self._connection.close()
                self._connection = None
                raise engine_unavailable(self._endpoint, first_line(exc)) from None
            except http.client.HTTPException as exc:  # something else listens there
                self._connection.close()
                self._connection = None
                raise engine_unavailable(
                    self._endpoint, f"it does not answer HTTP ({type(exc).__name__})"
                ) from None
        raise AssertionError("unreachable")

    def _get(self, path: str, what: str) -> Any:
        """The JSON ``GET path`` answers; None for 404."""
        status, body = self._call("GET", path, what)
        return parse_response(status, body, what)

    def ping(self) -> str:
        version = self._get("/version", "ping")
        return str((version or {}).get("Version", "unknown"))

    def now(self) -> datetime:
        info = self._get("/info", "reading the engine's clock") or {}
        parsed = engine_time(str(info.get("SystemTime", "")))
        if parsed is None:
            raise EngineError(f"the engine reported an unreadable time: {info.get('SystemTime')!r}")
        return parsed

    def container(self, container_id: str) -> ContainerInfo | None:
        attrs = self._get(
            f"/containers/{quote(container_id, safe='')}/json",
            f"inspecting container {container_id[:12]}",
        )
        return None if attrs is None else container_info(attrs)

    def containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        filters = json.dumps({"label": [f"{key}={value}" for key, value in labels.items()]})
        found = self._get(
            "/containers/json?" + urlencode({"all": "1", "filters": filters}), "listing containers"
        )
        infos = []
        for summary in found or []:
            info = self.container(str(summary["Id"]))
            if info is not None:  # None: removed between list and inspect
                infos.append(info)
        return infos

    def node_names(self) -> Mapping[str, str]:
        return {}  # one engine, no Swarm nodes

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        what = f"creating network {name}"
        filters = json.dumps({"name": [name]})
        if self._get("/networks?" + urlencode({"filters": filters}), what):
            return
        status, body = self._call(
            "POST",
            "/networks/create",
            what,
            {"Name": name, "Driver": "bridge", "Labels": dict(labels), "CheckDuplicate": True},
        )
        if status != 409:  # 409: made by someone else meanwhile
            _expect(status, body, what)

    def reserve(self, name: str, image: str, labels: Mapping[str, str]) -> ContainerInfo | None:
        what = f"creating {name}"
        status, body = self._call(
            "POST",
            "/containers/create?" + urlencode({"name": name}),
            what,
            {"Image": image, "Labels": dict(labels), "Cmd": ["true"]},
        )
        if status == 409:  # the name is taken
            return None
        created = _expect(status, body, what)
        return self.container(str(created["Id"]))

    def remove(self, container_id: str, *, grace: float = 10.0) -> None:
        what = f"removing container {container_id[:12]}"
        quoted = quote(container_id, safe="")
        status, body = self._call(
            "POST",
            f"/containers/{quoted}/stop?t={int(grace)}",
            what,
            timeout=int(grace) + self._timeout,  # the engine answers once it stopped
        )
        if status == 404:
            return
        if status != 304:  # 304: it was not running
            _expect(status, body, what)
        status, body = self._call("DELETE", f"/containers/{quoted}?force=1", what)
        if status != 404:  # 404: gone meanwhile
            _expect(status, body, what)

    # -- the rest: the SDK adapter ------------------------------------------------------

    def build(self, request: BuildRequest, progress: ProgressCallback) -> BuiltImage:
        return self.adapter.build(request, progress)

    def image(self, reference: str) -> ImageInfo | None:
        return self.adapter.image(reference)

    def pull(self, reference: str, progress: ProgressCallback) -> ImageInfo:
        return self.adapter.pull(reference, progress)

    def push(self, reference: str, auth: PushAuth | None, progress: ProgressCallback) -> Digest:
        return self.adapter.push(reference, auth, progress)

    def run(self, request: RunRequest) -> ContainerInfo:
        return self.adapter.run(request)

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        return self.adapter.logs(container_id, tail, since=since, timestamps=timestamps)

    def run_job(self, request: RunRequest, timeout: float) -> JobResult:
        return self.adapter.run_job(request, timeout)

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.adapter.tag(image, repository, tag)

    def remove_image(self, reference: str) -> bool:
        return self.adapter.remove_image(reference)

    def export_rootfs(self, image: str) -> Iterator[bytes]:
        return self.adapter.export_rootfs(image)

    def open_exec(self, container: str, command: Sequence[str], *, timeout: float) -> ExecSession:
        return self.adapter.open_exec(container, command, timeout=timeout)

    def save_image(self, reference: str) -> Iterator[bytes]:
        return self.adapter.save_image(reference)

    def load_image(self, chunks: Iterable[bytes]) -> None:
        self.adapter.load_image(chunks)

    def execute(self, container: str, command: Sequence[str]) -> ExecResult:
        return self.adapter.execute(container, command)

    def copy_files(self, container: str, directory: str, files: Mapping[str, bytes]) -> None:
        self.adapter.copy_files(container, directory, files)

    def signal(self, container: str, signal: str) -> None:
        self.adapter.signal(container, signal)

    def rename(self, container: str, name: str) -> None:
        self.adapter.rename(container, name)

    def connect_network(self, container: str, network: str) -> None:
        self.adapter.connect_network(container, network)


def _expect(status: int, body: bytes, what: str) -> Any:
    """The JSON of an answer that must be a success; a 404 is an error here too."""
    if status == 404:
        raise EngineError(f"{what} failed: {_message(body) or 'not found'}")
    return parse_response(status, body, what)


def _message(body: bytes) -> str:
    try:
        message = str(json.loads(body).get("message") or "").strip()
    except (ValueError, AttributeError):
        message = body.decode("utf-8", errors="replace").strip()
    return message.splitlines()[0] if message else ""


if TYPE_CHECKING:
    _engine: Engine = UnixSocketEngine("unix:///")  # the client is a whole engine (mypy checks)
