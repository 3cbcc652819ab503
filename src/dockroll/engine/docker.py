"""The Docker engine adapter (docker SDK), builds through a BuildKit CLI."""

from __future__ import annotations

import contextlib
import io
import math
import os
import select
import socket
import ssl
import tarfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import docker
import docker.constants
import docker.errors
import docker.tls
import docker.types
import requests.exceptions

from dockroll.engine.api import (
    container_info,
    engine_time,
    engine_unavailable,
    first_line,
    image_info,
)
from dockroll.engine.buildkit import BuilderCli, find_builder, run_build

if TYPE_CHECKING:
    from dockroll.engine.ssh import EngineTunnel

from dockroll.engine.port import (
    BuildRequest,
    BuiltImage,
    ContainerInfo,
    ExecResult,
    ImageInfo,
    JobResult,
    PushAuth,
    RunRequest,
)
from dockroll.errors import (
    ContainerNotFound,
    EngineError,
    EngineUnavailable,
    PortInUse,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailable,
)
from dockroll.events import Progress, ProgressCallback
from dockroll.labels import ROLE
from dockroll.refs import Digest, is_digest, parse_reference, registry_unreachable_hint

__all__ = ["DockerEngine", "engine_time"]

_AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied")
_DOWN_WORDS = ("connection refused", "no such host", "i/o timeout", "dial tcp", "eof")
# How the engine says a port to publish is taken (docker-proxy or the kernel).
_PORT_TAKEN_WORDS = ("port is already allocated", "address already in use")


class DockerEngine:
    """A Docker engine at ``endpoint`` (``unix://``, ``tcp://``, ``ssh://``; default: env)."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout: float = 120,
        builder: BuilderCli | None = None,
        certs: Path | None = None,
    ) -> None:
        self._endpoint = endpoint or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if certs is None and endpoint is None and os.environ.get("DOCKER_TLS_VERIFY"):
            certs = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
        self._certs = certs
        """ca.pem, cert.pem and key.pem of a tcp:// engine that requires TLS (``--tlsverify``)."""
        self._timeout = timeout
        self._builder = builder
        self._client: docker.DockerClient | None = None
        self._tunnel: EngineTunnel | None = None

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            base_url = self._endpoint
            if self._endpoint.startswith("ssh://"):
                # Loaded only for ssh engines: the SDK talks to a tunnel's unix socket.
                from dockroll.engine.ssh import EngineTunnel  # noqa: PLC0415

                if self._tunnel is None:
                    self._tunnel = EngineTunnel(self._endpoint)
                    # an engine dropped without close() still ends its ssh process
                    weakref.finalize(self, self._tunnel.close)
                base_url = self._tunnel.open()
            try:
                if self._certs is None:
                    self._client = docker.DockerClient(
                        base_url=base_url, timeout=int(self._timeout), version="auto"
                    )
                else:
                    self._client = self._tls_client(base_url)
            except docker.errors.DockerException as exc:
                raise self._unavailable(exc) from None
        return self._client

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine (a unix socket or named pipe)."""
        return self._endpoint.startswith(("unix://", "npipe://"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._tunnel is not None:
            self._tunnel.close()

    def _tls_client(self, base_url: str) -> docker.DockerClient:
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's CA,
        # so the engine's own ca.pem must be pinned before the first request (the
        # API version negotiation), which is done afterwards.
        client = docker.DockerClient(
            base_url=base_url,
            timeout=int(self._timeout),
            version=docker.constants.MINIMUM_DOCKER_API_VERSION,
            tls=self._tls(),
        )
        client.api.trust_env = False
        client.api._version = client.api._retrieve_server_version()
        return client

    def _tls(self) -> docker.tls.TLSConfig:
        assert self._certs is not None
        files = {name: self._certs / f"{name}.pem" for name in ("ca", "cert", "key")}
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise EngineError(
                f"the engine {self._endpoint} needs TLS, but {', '.join(missing)} does not exist",
                hint="point the environment's engine_certs (or DOCKER_CERT_PATH) at the "
                "directory with the CA's ca.pem and this client's cert.pem and key.pem",
            )
        return docker.tls.TLSConfig(
            client_cert=(str(files["cert"]), str(files["key"])),
            ca_cert=str(files["ca"]),
            verify=True,
        )

    def _unavailable(self, exc: Exception) -> EngineUnavailable:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return EngineUnavailable(
                f"the engine at {self._endpoint} shows a certificate the CA in "
                f"{self._certs}/ca.pem did not sign (or one not made for that address)",
                hint="check that ca.pem is the CA that signed the engine's certificate, and that "
                "the engine's certificate names the address in `engine:`",
            )
        if self._certs is not None and ("SSL" in text or "tls" in text.lower()):
            return EngineUnavailable(
                f"the engine at {self._endpoint} refused the TLS handshake: {first_line(exc)}",
                hint=f"is {self._certs}/cert.pem signed by the CA the engine trusts "
                "(its tlscacert)?",
            )
        return engine_unavailable(self._endpoint, first_line(exc))

    @contextlib.contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Map SDK failures to dockroll errors that say what was being done."""
        try:
            yield
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) or "Connection" in str(exc):
                raise self._unavailable(exc) from None
            raise EngineError(f"{what} failed: {first_line(exc)}") from None

    def ping(self) -> str:
        with self._calls("ping"):
            version: dict[str, Any] = self.client.version()
            return str(version.get("Version", "unknown"))

    def now(self) -> datetime:
        with self._calls("reading the engine's clock"):
            info: dict[str, Any] = self.client.info()
        parsed = engine_time(str(info.get("SystemTime", "")))
        if parsed is None:
            raise EngineError(f"the engine reported an unreadable time: {info.get('SystemTime')!r}")
        return parsed

    def build(self, request: BuildRequest, progress: ProgressCallback) -> BuiltImage:
        self.ping()
        docker_host = self._endpoint if self._endpoint.startswith(("tcp://", "ssh://")) else None
        builder = self._builder or find_builder()
        image_id = run_build(request, progress, builder=builder, docker_host=docker_host)
        info = self.image(image_id)
        if info is None:
            raise EngineError(f"the build produced {image_id}, but the engine does not list it")
        return BuiltImage(
            image_id=image_id, tags=tuple(request.tags), size=info.size, builder=builder.mode
        )

    def image(self, reference: str) -> ImageInfo | None:
        with self._calls(f"inspecting image {reference}"):
            try:
                image = self.client.images.get(reference)
            except docker.errors.ImageNotFound:
                return None
            return image_info(image.attrs)

    def pull(self, reference: str, progress: ProgressCallback) -> ImageInfo:
        ref = parse_reference(reference, default_tag="latest")
        progress(Progress("pull", f"pulling {ref}"))
        with self._calls(f"pulling {ref}"):
            try:
                self.client.api.pull(
                    ref.name, tag=ref.digest or ref.tag, stream=False, decode=False
                )
            except docker.errors.APIError as exc:
                raise _registry_error(ref.registry, f"pulling {ref}", str(exc)) from None
        info = self.image(str(ref))
        if info is None:
            raise EngineError(f"pulled {ref}, but the engine does not list it")
        return info

    def push(self, reference: str, auth: PushAuth | None, progress: ProgressCallback) -> Digest:
        ref = parse_reference(reference)
        if not ref.tag:
            raise EngineError(f"push needs a tag: {reference}")
        auth_config = {"username": auth.username, "password": auth.password} if auth else None
        digest: str | None = None
        error: str | None = None
        with self._calls(f"pushing {ref}"):
            stream = self.client.api.push(
                ref.name, tag=ref.tag, stream=True, decode=True, auth_config=auth_config
            )
            # Read to the end even after an error: an abandoned stream leaks its connection.
            for event in stream:
                if "error" in event:
                    detail = event.get("errorDetail", {}).get("message") or event["error"]
                    error = error or str(detail)
                    continue
                aux = event.get("aux")
                if isinstance(aux, dict) and is_digest(str(aux.get("Digest", ""))):
                    digest = str(aux["Digest"])
                status = event.get("status")
                if status:
                    layer = event.get("id")
                    text = f"{layer}: {status}" if layer else str(status)
                    progress(Progress("push", text, detail=True))
        if error is not None:
            raise _registry_error(ref.registry, f"pushing {ref}", error)
        if digest is None:
            raise RegistryError(f"the engine pushed {ref} but reported no digest")
        return Digest(digest)

    def run(self, request: RunRequest) -> ContainerInfo:
        ports: dict[str, tuple[str, int | None]] = {
            f"{container}/tcp": ("127.0.0.1", host) for container, host in request.publish.items()
        }
        ports.update(
            {f"{container}/tcp": address for container, address in request.publish_on.items()}
        )
        healthcheck: dict[str, Any] | None = None
        if request.healthcheck is not None:
            healthcheck = dict(request.healthcheck)
        elif request.health_interval:
            # The engine keeps the image's test, timeout, retries and start period and
            # takes only the interval from here.
            interval = int(request.health_interval * 1e9)
            healthcheck = {"interval": interval}
        with self._calls(f"starting a container of {request.image}"):
            try:
                container = self.client.containers.create(
                    request.image,
                    command=list(request.command) if request.command else None,
                    name=request.name,
                    # Secrets go only into the create call; no message repeats them.
                    environment={**request.env, **request.secret_env},
                    labels=dict(request.labels),
                    ports=ports,
                    healthcheck=healthcheck,
                    restart_policy=_restart_policy(request),
                    network=request.network,
                    detach=True,
                    **_run_options(request),
                )
                try:
                    if request.files or request.config_files:
                        container.put_archive("/", _files_tar(request.files, request.config_files))
                    container.start()
                except docker.errors.APIError:
                    # Created but not started: nothing would ever start or remove it.
                    with contextlib.suppress(docker.errors.DockerException):
                        container.remove(force=True)
                    raise
            except docker.errors.ImageNotFound:
                raise EngineError(
                    f"image {request.image} is not on the engine {self._endpoint}",
                    hint="build it first (`dockroll build`) or pull it",
                ) from None
            except docker.errors.APIError as exc:
                what = f"{request.name} ({request.image})" if request.name else request.image
                detail = first_line(exc)
                if any(word in detail.lower() for word in _PORT_TAKEN_WORDS):
                    raise PortInUse(
                        f"the engine refused to start {what}: {detail}",
                        hint="another process listens on a port it publishes; free it or "
                        "publish another",
                    ) from None
                raise EngineError(f"the engine refused to start {what}: {detail}") from None
        info = self.container(container.id)
        if info is None:
            raise EngineError(f"container {container.id[:12]} vanished right after start")
        return info

    def container(self, container_id: str) -> ContainerInfo | None:
        with self._calls(f"inspecting container {container_id[:12]}"):
            try:
                attrs = self.client.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return None
            return container_info(attrs)

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        options: dict[str, Any] = {"tail": "all" if tail is None else tail}
        if since is not None:
            # The API takes whole seconds here; callers cut finer by the timestamps.
            options["since"] = max(1, math.floor(since.timestamp()))
        with self._calls(f"reading logs of {container_id[:12]}"):
            try:
                raw: bytes = self.client.api.logs(container_id, timestamps=timestamps, **options)
            except docker.errors.NotFound:
                return ""
            return raw.decode("utf-8", errors="replace")

    def remove(self, container_id: str, *, grace: float = 10.0) -> None:
        with self._calls(f"removing container {container_id[:12]}"):
            try:
                self.client.api.stop(container_id, timeout=int(grace))
            except docker.errors.NotFound:
                return
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container_id, force=True)

    def containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with self._calls("listing containers"):
            found = self.client.api.containers(all=True, filters=filters)
            infos = []
            for summary in found:
                try:
                    infos.append(container_info(self.client.api.inspect_container(summary["Id"])))
                except docker.errors.NotFound:  # removed between list and inspect
                    continue
            return infos

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        with self._calls(f"creating network {name}"):
            if self.client.api.networks(names=[name]):
                return
            try:
                self.client.api.create_network(
                    name, driver="bridge", labels=dict(labels), check_duplicate=True
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise

    def run_job(self, request: RunRequest, timeout: float) -> JobResult:
        started = time.monotonic()
        info = self.run(request)
        try:
            try:
                result = self.client.api.wait(info.id, timeout=timeout)
            except requests.exceptions.ReadTimeout:
                logs = self.logs(info.id, tail=50)
                raise EngineError(
                    f"the job {request.name or info.name} did not finish within {timeout:g}s; "
                    f"last log lines:\n{logs}",
                    hint="raise the timeout in dockroll.yml or make the job faster",
                ) from None
            code = int(result.get("StatusCode", -1))
            return JobResult(
                exit_code=code, logs=self.logs(info.id, tail=50), seconds=time.monotonic() - started
            )
        finally:
            self.remove(info.id, grace=1)

    def tag(self, image: str, repository: str, tag: str) -> None:
        with self._calls(f"tagging {image[:19]} as {repository}:{tag}"):
            self.client.api.tag(image, repository, tag=tag)

    def remove_image(self, reference: str) -> bool:
        with self._calls(f"removing image {reference}"):
            try:
                self.client.api.remove_image(reference)
            except docker.errors.ImageNotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # a container (maybe stopped) still uses it
                    return False
                raise
            return True

    def remove_volume(self, name: str) -> bool:
        """Delete a named volume (its data); False when it does not exist."""
        with self._calls(f"removing volume {name}"):
            try:
                self.client.api.remove_volume(name, force=True)
            except docker.errors.NotFound:
                return False
            return True

    def remove_network(self, name: str) -> bool:
        """Delete a network; False when it does not exist."""
        with self._calls(f"removing network {name}"):
            try:
                self.client.api.remove_network(name)
            except docker.errors.NotFound:
                return False
            return True

    def remove_volumes(self, prefix: str) -> list[str]:
        """Delete every volume whose name starts with ``prefix``; their names."""
        removed = []
        with self._calls(f"removing volumes {prefix}*"):
            found = self.client.api.volumes(filters={"name": prefix}).get("Volumes") or []
            for volume in found:
                name = str(volume.get("Name", ""))
                if name.startswith(prefix):
                    with contextlib.suppress(docker.errors.NotFound):
                        self.client.api.remove_volume(name, force=True)
                        removed.append(name)
        return sorted(removed)

    def reserve(self, name: str, image: str, labels: Mapping[str, str]) -> ContainerInfo | None:
        with self._calls(f"creating {name}"):
            try:
                created = self.client.api.create_container(
                    image, name=name, labels=dict(labels), command=["true"]
                )
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return None
                raise
            return self.container(created["Id"])

    def open_exec(
        self, container: str, command: Sequence[str], *, timeout: float
    ) -> DockerExecSession:
        api = self.client.api
        with self._calls(f"starting {command[0] if command else '?'} in {container[:40]}"):
            with self._running(container):
                created = api.exec_create(container, list(command), stdin=True)
            # What exec_start(socket=True) does, keeping the response: the raw
            # socket lives only as long as the response that carries it.
            response = api._post_json(
                api._url("/exec/{0}/start", created["Id"]),
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                data={"Tty": False, "Detach": False},
                stream=True,
            )
            raw = api._get_raw_response_socket(response)
        connection = getattr(raw, "_sock", raw)
        if not isinstance(connection, socket.socket):
            response.close()
            raise EngineError(f"the engine {self._endpoint} gave no socket for an attached exec")
        return DockerExecSession(connection, response, timeout=timeout)

    @contextlib.contextmanager
    def _running(self, container: str) -> Iterator[None]:
        """ContainerNotFound when the call inside finds ``container`` missing (404) or not
        running (409)."""
        try:
            yield
        except docker.errors.NotFound:
            raise ContainerNotFound(
                f"container {container} does not exist on {self._endpoint}"
            ) from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                raise ContainerNotFound(f"container {container} is not running") from None
            raise

    def execute(self, container: str, command: Sequence[str]) -> ExecResult:
        api = self.client.api
        with self._calls(f"running {command[0] if command else '?'} in {container[:40]}"):
            with self._running(container):
                created = api.exec_create(container, list(command))
            raw: bytes = api.exec_start(created["Id"])
            code = api.exec_inspect(created["Id"]).get("ExitCode")
        return ExecResult(
            exit_code=-1 if code is None else int(code),
            output=raw.decode("utf-8", errors="replace"),
        )

    def copy_files(self, container: str, directory: str, files: Mapping[str, bytes]) -> None:
        with self._calls(f"copying {', '.join(files)} into {container[:40]}"):
            try:
                self.client.api.put_archive(container, directory, _flat_tar(files))
            except docker.errors.NotFound:
                raise ContainerNotFound(
                    f"container {container} (or its {directory}) does not exist on {self._endpoint}"
                ) from None

    def signal(self, container: str, signal: str) -> None:
        with self._calls(f"sending {signal} to {container[:40]}"), self._running(container):
            self.client.api.kill(container, signal=signal)

    def node_names(self) -> Mapping[str, str]:
        return {}  # one engine, no Swarm nodes

    def save_image(self, reference: str) -> Iterator[bytes]:
        with self._calls(f"saving image {reference}"):
            try:
                yield from self.client.api.get_image(reference)
            except docker.errors.ImageNotFound:
                raise EngineError(
                    f"image {reference} is not on the engine {self._endpoint}"
                ) from None

    def load_image(self, chunks: Iterable[bytes]) -> None:
        with self._calls(f"loading an image into {self._endpoint}"):
            for event in self.client.api.load_image(chunks):
                if isinstance(event, dict) and "error" in event:
                    raise EngineError(
                        f"the engine {self._endpoint} could not load the image: {event['error']}"
                    )

    def export_rootfs(self, image: str) -> Iterator[bytes]:
        # `docker export` of a created (never started) container gives the final
        # filesystem in one tar with whiteouts applied, so no layer ordering,
        # whiteout or opaque-directory rules need repeating here (as `docker save`
        # would); the container costs one create/remove and never runs.
        with self._calls(f"creating a container to export {image}"):
            created = self.client.api.create_container(
                image,
                command=["/dockroll-export-never-started"],
                labels={ROLE: "export"},
                network_disabled=True,
            )
        container_id = created["Id"]
        try:
            with self._calls(f"exporting the filesystem of {image}"):
                yield from self.client.api.export(container_id)
        finally:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                self.client.api.remove_container(container_id, force=True, v=True)

    def rename(self, container: str, name: str) -> None:
        with self._calls(f"renaming container {container[:12]} to {name}"):
            try:
                self.client.api.rename(container, name)
            except docker.errors.APIError as exc:
                raise EngineError(
                    f"the engine refused to rename {container[:12]} to {name}: {first_line(exc)}"
                ) from None

    def connect_network(self, container: str, network: str) -> None:
        with self._calls(f"attaching {container[:12]} to {network}"):
            try:
                self.client.api.connect_container_to_network(container, network)
            except docker.errors.APIError as exc:
                attached = self.container(container)
                if attached is None or network not in attached.networks:
                    raise EngineError(
                        f"the engine could not attach {container[:12]} to {network}: "
                        f"{first_line(exc)}"
                    ) from None


def _restart_policy(request: RunRequest) -> dict[str, Any] | None:
    policy = request.restart_policy or ("unless-stopped" if request.restart else None)
    if policy is None or policy == "no":
        return None
    name, _, retries = policy.partition(":")
    if retries:
        return {"Name": name, "MaximumRetryCount": int(retries)}
    return {"Name": name}


def _run_options(request: RunRequest) -> dict[str, Any]:
    """The create options only some requests set (left out otherwise, as the SDK wants)."""
    options: dict[str, Any] = {}
    if request.entrypoint is not None:
        options["entrypoint"] = list(request.entrypoint)
    if request.mounts:
        options["mounts"] = [
            docker.types.Mount(
                target=mount.target,
                source=mount.source,
                type=mount.kind,
                read_only=mount.read_only,
                labels=dict(mount.labels) if mount.labels and mount.kind == "volume" else None,
            )
            for mount in request.mounts
        ]
    if request.memory is not None:
        options["mem_limit"] = request.memory
    if request.nano_cpus is not None:
        options["nano_cpus"] = request.nano_cpus
    if request.extra_hosts:
        options["extra_hosts"] = dict(request.extra_hosts)
    if request.host_network:
        options["network_mode"] = "host"
    if request.network_container is not None:
        options["network_mode"] = f"container:{request.network_container}"
    if request.user is not None:
        options["user"] = request.user
    if request.stop_signal is not None:
        options["stop_signal"] = request.stop_signal
    if request.log_options:
        options["log_config"] = docker.types.LogConfig(
            type="json-file", config=dict(request.log_options)
        )
    if request.network_aliases and request.network:
        options["networking_config"] = {
            request.network: docker.types.EndpointConfig(
                version="1.41", aliases=list(request.network_aliases)
            )
        }
    return options


def _files_tar(
    files: Mapping[str, bytes], config_files: Mapping[str, tuple[bytes, int]] | None = None
) -> bytes:
    """A tar of ``files`` (absolute paths) with their directories, readable by any user,
    and of ``config_files`` (path → content and mode), owned by root.

    A config file's missing directories are made by the engine (0755); existing ones,
    such as /etc, keep their mode and owner.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (content, mode) in sorted((config_files or {}).items()):
            info = tarfile.TarInfo(path.strip("/"))
            info.size, info.mode, info.mtime = len(content), mode, int(time.time())
            archive.addfile(info, io.BytesIO(content))
        made: set[str] = set()
        for path, content in sorted(files.items()):
            parts = path.strip("/").split("/")
            # The top directory (/run) exists in the image: only what is below it is made.
            for depth in range(2, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(content), 0o444
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _flat_tar(files: Mapping[str, bytes]) -> bytes:
    """A tar of ``files`` (plain names, no directory), each 0644 and dated now."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            if not name or "/" in name or name in (".", ".."):
                raise EngineError(f"not a plain file name: {name!r}")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, now
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class DockerExecSession:
    """An attached exec: stdin written raw, output read from the engine's framed stream.

    :meth:`send` and :meth:`receive` may run in two threads at once (a forward
    copies both ways). Over TLS they must not touch the connection at the same
    time: OpenSSL's connection state is not safe to read and write concurrently,
    and doing so loses the answer now and then. So every read and write is
    done without blocking, under one lock, and the waiting for the socket
    happens outside it.
    """

    def __init__(self, connection: socket.socket, response: Any, *, timeout: float) -> None:
        self._connection = connection
        self._response = response
        self._timeout = timeout
        self._lock = threading.Lock()
        connection.setblocking(False)

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = self._attempt(partial(self._connection.send, view), blocked=_WRITABLE)
            if isinstance(sent, int):
                view = view[sent:]

    def receive(self) -> bytes:
        # Each frame: stream (1 byte), 3 zero bytes, payload size (4 bytes, big-endian).
        header = self._read(8)
        if len(header) < 8:
            return b""
        size = int.from_bytes(header[4:8], "big")
        payload = self._read(size)
        if len(payload) < size:
            return b""
        return payload

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            wanted = size - len(data)
            chunk = self._attempt(partial(self._connection.recv, wanted), blocked=_READABLE)
            if isinstance(chunk, bytes):
                if not chunk:
                    break
                data += chunk
        return data

    def _attempt(self, operation: Callable[[], _T], *, blocked: str) -> _T | None:
        """``operation``'s result, or None after waiting for the socket to be ready for it."""
        with self._lock:
            try:
                return operation()
            except ssl.SSLWantReadError:
                blocked = _READABLE
            except ssl.SSLWantWriteError:
                blocked = _WRITABLE
            except BlockingIOError:
                pass
        # poll(), not epoll: a close from another thread then wakes the wait (POLLNVAL).
        poller = select.poll()
        try:
            poller.register(
                self._connection, select.POLLIN if blocked == _READABLE else select.POLLOUT
            )
            ready = poller.poll(self._timeout * 1000)
        except (ValueError, OSError):  # closed meanwhile
            raise OSError(0, "the exec session was closed") from None
        if not ready:
            raise TimeoutError(f"nothing arrived within {self._timeout:g}s")
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._connection.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._connection.close()
        with contextlib.suppress(OSError, requests.RequestException):
            self._response.close()


_READABLE, _WRITABLE = "readable", "writable"
_T = TypeVar("_T")


def _registry_error(registry: str, what: str, detail: str) -> RegistryError:
    lowered = detail.lower()
    if any(word in lowered for word in _AUTH_WORDS):
        return RegistryAuthError(
            f"registry {registry} refused {what}: {detail}",
            hint=f"run `docker login {registry}` or set DOCKROLL_REGISTRY_USERNAME "
            "and DOCKROLL_REGISTRY_PASSWORD",
        )
    if any(word in lowered for word in _DOWN_WORDS):
        return RegistryUnavailable(
            f"registry {registry} is not answering ({what}): {detail}",
            hint="is it running? " + registry_unreachable_hint(registry, through_engine=True),
        )
    return RegistryError(f"registry {registry} failed {what}: {detail}")
