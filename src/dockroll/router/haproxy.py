"""The HAProxy adapter of the traffic port: one HAProxy container per environment.

Each environment gets a container ``dockroll-router-<service>-<environment>``
on the network ``dockroll-<service>-<environment>`` (created when missing; app
containers join it and are addressed by their IP there). It listens on the
environment's port on 127.0.0.1 and serves HAProxy's Prometheus exporter on a
second port (the environment's port + 1000 unless configured).

The configuration holds no server: servers are added, weighted, drained and
deleted live through the runtime API, never by a reload. With no server that
can take a request, HAProxy answers 503 at once.

**Where the runtime API lives.** On a local engine (``unix://``) the config
directory is bind-mounted read-only and the admin socket is created in a
bind-mounted directory under the state dir, so dockroll talks to it from the
host. A remote engine (``tcp://``, ``ssh://``) cannot share a directory: the
config is copied into the container before it starts, and the runtime API
listens on the container's own loopback only, reached through the engine
connection (:mod:`dockroll.router.transport`); nothing publishes it. The image
of a local stand-in for HAProxy is copied to a remote engine that lacks it.

**Recreation.** :meth:`HaproxyRouter.ensure` starts the router when it is
missing, stopped, or runs an outdated configuration, then adds each server the
caller passes that the backend lacks. HAProxy keeps runtime changes in memory
only, so a router that restarted (engine restart, crash) comes back empty: the
caller, which knows which releases should serve, passes their servers on every
``ensure``. Servers added that way stay down until their first check passes.
The configuration's fingerprint (config text, published ports, image, log
settings) is a label of the container, so a router started by an older
dockroll, whose config differs (e.g. one without the request log), is replaced
by the first ``ensure`` after the upgrade, with its servers restored: the
environment's port refuses connections for the second or so that takes, and
``ensure`` returns once the restored servers with weight passed their first
check (or the start timeout ran out).

**Request log.** The public frontend logs every request to HAProxy's standard
output in :data:`~dockroll.router.request_log.LOG_FORMAT` (server name, status,
response time); :meth:`HaproxyRouter.request_log` reads the lines the engine
stored after a cursor, by the engine's timestamps, so analysis gets each
request's latency per interval instead of HAProxy's moving average. The engine
keeps at most 3 x 20 MB of it (json-file rotation).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from dockroll.config import Config
from dockroll.engine.base_images import load_substitutes
from dockroll.engine.docker import DockerEngine
from dockroll.errors import DockrollError, RouterError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.router.port import (
    BackendServer,
    RequestLog,
    RouterInfo,
    RouterStats,
    ServerHealth,
    ServerSpec,
)
from dockroll.router.remote import carry_image
from dockroll.router.request_log import LOG_FORMAT, parse_request_log
from dockroll.router.runtime_api import (
    AdminAddress,
    CheckSettings,
    RuntimeApi,
    add_server_commands,
    backend_counters,
    backend_servers,
    refusal,
    set_weights_commands,
    validate_server_name,
)
from dockroll.router.transport import LOOPBACK_ADMIN_PORT, ExecTransport
from dockroll.statedir import state_dir

__all__ = [
    "BACKEND",
    "OFFICIAL_IMAGE",
    "HaproxyRouter",
    "HaproxySettings",
    "render_config",
]

OFFICIAL_IMAGE = "haproxy:2.6"
BACKEND = "app"
"""The one backend of an environment's router."""

PUBLIC_PORT = 8080
METRICS_PORT = 8404
_CONFIG_DIR = "/usr/local/etc/haproxy"
_RUN_DIR = "/var/run/dockroll"
_SOCKET = "admin.sock"
_CONFIG_LABEL = "dockroll.router.config"
_POLL = 0.1
# The request log grows by a line per request: the engine keeps at most this much of it.
_LOG_CONFIG = {"type": "json-file", "config": {"max-size": "20m", "max-file": "3"}}
_NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOG_TAIL = 4096
_LOG_TAIL_MAX = 1 << 22


@dataclass(frozen=True)
class HaproxySettings:
    """How an environment's HAProxy is run and tuned; the defaults suit zero-downtime deploys."""

    health_path: str | None = "/ready"
    """HTTP path of the readiness check; None checks TCP connects only."""
    check: CheckSettings = field(default_factory=CheckSettings)
    metrics_port: int | None = None
    """Host port of the Prometheus exporter (``/metrics``) and stats page (``/stats``);
    the environment's port + 1000 when None."""
    bind: str = "127.0.0.1"
    """The engine host's address the public and metrics ports are published on."""
    image: str | None = None
    """The HAProxy image; None picks haproxy:2.6 when present or pullable, else the local
    substitute ``dockroll dev up --with router`` built."""
    connect_timeout: float = 2.0
    client_timeout: float = 30.0
    server_timeout: float = 30.0
    queue_timeout: float = 5.0
    retries: int = 3
    api_timeout: float = 5.0
    start_timeout: float = 20.0


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def render_config(
    *,
    service: str,
    environment: str,
    settings: HaproxySettings,
    admin_socket: bool = True,
    loopback_admin: bool = False,
) -> str:
    """The haproxy.cfg of an environment's router: frontends and an empty backend.

    ``admin_socket``: the runtime API on a unix socket in a shared directory;
    ``loopback_admin``: on the container's own 127.0.0.1, for remote engines.
    """
    sockets = []
    if admin_socket:
        sockets.append(f"    stats socket {_RUN_DIR}/{_SOCKET} mode 666 level admin")
    if loopback_admin:
        sockets.append(f"    stats socket ipv4@127.0.0.1:{LOOPBACK_ADMIN_PORT} level admin")
    if not sockets:
        raise RouterError(f"router of {service}/{environment} would have no runtime API")
    check = [f"    option httpchk GET {settings.health_path}"] if settings.health_path else []
    lines = [
        f"# dockroll router of {service}/{environment}.",
        "# Servers are added and changed at runtime through the stats socket, never here.",
        "global",
        "    log stdout format raw local0 info",
        *sockets,
        "    stats timeout 30s",
        "    maxconn 4096",
        "    hard-stop-after 30s",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlognull",
        # One server connection per request: a drained server's sessions end
        # with its last response, and nothing idles on a server about to go.
        "    option http-server-close",
        "    option redispatch 1",
        f"    retries {settings.retries}",
        "    retry-on conn-failure empty-response response-timeout",
        f"    timeout connect {_ms(settings.connect_timeout)}",
        f"    timeout client {_ms(settings.client_timeout)}",
        f"    timeout server {_ms(settings.server_timeout)}",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 5s",
        f"    timeout queue {_ms(settings.queue_timeout)}",
        f"    timeout check {_ms(max(settings.connect_timeout, 1.0))}",
        "",
        "frontend public",
        f"    bind :{PUBLIC_PORT}",
        # Every request, with the server that answered and its timers: analysis
        # judges latency per request and interval from these lines.
        f'    log-format "{LOG_FORMAT}"',
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        *check,
        # Resending a request whose answer never came is only safe when it is idempotent.
        "    http-request disable-l7-retry unless { method GET HEAD OPTIONS }",
        "",
        "frontend metrics",
        f"    bind :{METRICS_PORT}",
        "    no log",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        "",
    ]
    return "\n".join(lines)


class HaproxyRouter:
    """The router of one environment, run as an HAProxy container on ``engine``."""

    def __init__(
        self,
        engine: DockerEngine,
        *,
        service: str,
        environment: str,
        port: int,
        settings: HaproxySettings | None = None,
        state_root: Path | None = None,
        progress: ProgressCallback = discard,
    ) -> None:
        self._engine = engine
        self.service = service
        self.environment = environment
        self.port = port
        self.settings = settings or HaproxySettings()
        self._state_root = state_root
        self._progress = progress
        self._local = engine.endpoint.startswith(("unix://", "npipe://"))
        metrics = self.settings.metrics_port or port + 1000
        if not 0 < metrics < 65536:
            raise RouterError(
                f"router of {self.owner}: metrics port {metrics} is out of range",
                hint="set the router's metrics_port explicitly",
            )
        self.metrics_port = metrics
        self._log_tail = _LOG_TAIL
        self._relay: ExecTransport | None = None

    @classmethod
    def for_environment(
        cls,
        engine: DockerEngine,
        config: Config,
        environment: str,
        *,
        state_root: Path | None = None,
        progress: ProgressCallback = discard,
    ) -> HaproxyRouter:
        """The router of ``environment`` as dockroll.yml describes it."""
        try:
            env = config.environments[environment]
        except KeyError:
            raise RouterError(
                f"{config.service} has no environment {environment!r}",
                hint=f"dockroll.yml declares: {', '.join(config.environments) or 'none'}",
            ) from None
        health = config.health
        settings = HaproxySettings(
            health_path=health.path,
            check=CheckSettings(interval_ms=max(100, round(health.interval * 1000))),
            connect_timeout=min(health.timeout, 5.0),
            bind=env.router_bind,
        )
        return cls(
            engine,
            service=config.service,
            environment=environment,
            port=env.port,
            settings=settings,
            state_root=state_root,
            progress=progress,
        )

    @property
    def owner(self) -> str:
        return f"{self.service}/{self.environment}"

    @property
    def container_name(self) -> str:
        return f"dockroll-router-{self.service}-{self.environment}"

    @property
    def network(self) -> str:
        """The environment's Docker network; app containers join it."""
        return f"dockroll-{self.service}-{self.environment}"

    @property
    def directory(self) -> Path:
        """Host directory holding the config (``conf/``) and the admin socket (``run/``)."""
        return (self._state_root or state_dir()) / "routers" / f"{self.service}-{self.environment}"

    @property
    def admin(self) -> AdminAddress:
        if not self._local:
            return AdminAddress(
                host="127.0.0.1", port=LOOPBACK_ADMIN_PORT, container=self.container_name
            )
        return AdminAddress(path=self.directory / "run" / _SOCKET)

    @property
    def api(self) -> RuntimeApi:
        if not self._local and self._relay is None:
            self._relay = ExecTransport(
                self._engine, self.container_name, timeout=self.settings.api_timeout
            )
        transport = None if self._local else self._relay
        return RuntimeApi(
            self.admin, owner=self.owner, timeout=self.settings.api_timeout, transport=transport
        )

    # -- lifecycle ---------------------------------------------------------------

    def ensure(self, servers: Sequence[ServerSpec] = ()) -> RouterInfo:
        self._engine.ping()
        config = render_config(
            service=self.service,
            environment=self.environment,
            settings=self.settings,
            admin_socket=self._local,
            loopback_admin=not self._local,
        )
        fingerprint = self._fingerprint(config)
        self._ensure_network()
        attrs = self._inspect()
        running = attrs is not None and (attrs.get("State") or {}).get("Running") is True
        labels = ((attrs or {}).get("Config") or {}).get("Labels") or {}
        created = False
        if attrs is None or not running or labels.get(_CONFIG_LABEL) != fingerprint:
            if attrs is not None:
                self._progress(Progress("router", f"replacing router {self.container_name}"))
                self._remove_container(grace=1)
            attrs = self._start(config, fingerprint)
            created = True
        self._wait_for_api(attrs)
        restored = self._restore(servers)
        if created and restored:
            self._wait_restored([s for s in servers if s.name in restored])
        return RouterInfo(
            environment=self.environment,
            container=self.container_name,
            container_id=str(attrs["Id"]),
            image=str((attrs.get("Config") or {}).get("Image", "")),
            network=self.network,
            url=f"http://127.0.0.1:{self.port}",
            metrics_url=f"http://127.0.0.1:{self.metrics_port}/metrics",
            admin=str(self.admin),
            created=created,
            restored=restored,
        )

    def remove(self) -> None:
        """Stop and remove the router container and its files; the network stays for the apps."""
        self._remove_container(grace=5)
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- servers -----------------------------------------------------------------

    def servers(self) -> tuple[BackendServer, ...]:
        api = self.api
        return backend_servers(api.show_stat(), api.show_servers_state(BACKEND), BACKEND)

    def add_server(
        self, name: str, address: str, port: int, *, weight: int = 0, check: bool = True
    ) -> None:
        add, *enable = add_server_commands(
            BACKEND,
            name,
            address,
            port,
            weight=weight,
            check=self.settings.check if check else None,
        )
        api = self.api
        api.run(add)  # a new server sits in maintenance until the rest succeeds
        api.run(*enable)

    def set_weight(self, name: str, weight: int) -> None:
        self.set_weights({name: weight})

    def set_weights(self, weights: Mapping[str, int]) -> None:
        if not weights:
            return
        current = {s.name: s.weight for s in self.servers()}
        unknown = sorted(set(weights) - set(current))
        if unknown:
            raise RouterError(
                f"router of {self.owner} has no server {', '.join(unknown)}",
                hint=f"it has: {', '.join(sorted(current)) or 'no server at all'}",
            )
        self.api.run(*set_weights_commands(BACKEND, weights, current))

    def set_ready(self, name: str) -> None:
        self.api.run(f"set server {BACKEND}/{validate_server_name(name)} state ready")

    def drain(self, name: str) -> None:
        self.api.run(f"set server {BACKEND}/{validate_server_name(name)} state drain")

    def wait_drained(self, name: str, timeout: float) -> BackendServer:
        deadline = time.monotonic() + timeout
        while True:
            server = self._server(name)
            if server.current_sessions == 0 and server.queued == 0:
                return server
            if time.monotonic() >= deadline:
                raise RouterError(
                    f"router of {self.owner}: server {name} still has "
                    f"{server.current_sessions} requests in flight and {server.queued} queued "
                    f"after {timeout:g}s of draining",
                    hint="raise the environment's drain_timeout if requests legitimately "
                    "take that long",
                )
            time.sleep(_POLL)

    def wait_healthy(self, name: str, timeout: float) -> BackendServer:
        deadline = time.monotonic() + timeout
        while True:
            server = self._server(name)
            if server.health is not ServerHealth.DOWN:
                return server
            if time.monotonic() >= deadline:
                raise RouterError(
                    f"router of {self.owner}: server {name} ({server.address}:{server.port}) "
                    f"did not pass its health check within {timeout:g}s "
                    f"(last check: {server.check_status or 'none'})",
                    hint=f"does it answer GET {self.settings.health_path} with 2xx/3xx "
                    "on the environment's network?"
                    if self.settings.health_path
                    else "does it accept connections on the environment's network?",
                )
            time.sleep(_POLL)

    def remove_server(self, name: str, *, timeout: float = 10.0) -> None:
        target = f"{BACKEND}/{validate_server_name(name)}"
        api = self.api
        answer = api.execute(f"disable server {target}")
        if "No such server" in answer:
            return
        if refusal(answer):
            raise RouterError(
                f"router of {self.owner}: `disable server {target}` failed: {refusal(answer)}"
            )
        deadline = time.monotonic() + timeout
        while True:
            answer = api.execute(f"del server {target}")
            complaint = refusal(answer)
            if not complaint or "No such server" in complaint:
                return
            # HAProxy refuses while connections are still attached; they finish on their own.
            if "connection" not in complaint.lower() or time.monotonic() >= deadline:
                raise RouterError(
                    f"router of {self.owner}: `del server {target}` failed: {complaint}",
                    hint="drain the server and wait for it (wait_drained) before removing it",
                )
            time.sleep(_POLL)

    def stats(self) -> RouterStats:
        api = self.api
        rows = api.show_stat()
        states = api.show_servers_state(BACKEND)
        return RouterStats(
            taken_at=datetime.now(UTC),
            backend=backend_counters(rows, BACKEND),
            servers=backend_servers(rows, states, BACKEND),
        )

    def request_log(self, after: int | None) -> RequestLog:
        try:
            if after is None:
                now = self._engine.now()
                return RequestLog((), cursor=(now - _EPOCH) // timedelta(microseconds=1) * 1000)
            since = datetime.fromtimestamp(after // _NS, UTC)
            while True:
                # The engine reads a tail from the end of the file, but would decode the
                # whole log to apply `since` alone: ask for a tail and grow it if it was full.
                text = self._engine.logs(
                    self.container_name, tail=self._log_tail, since=since, timestamps=True
                )
                lines = text.splitlines()
                if len(lines) < self._log_tail or self._log_tail >= _LOG_TAIL_MAX:
                    break
                self._log_tail *= 4
        except DockrollError as exc:
            raise RouterError(
                f"router of {self.owner}: cannot read its request log: {exc.message}",
                hint=f"`docker logs {self.container_name}` shows whether the engine keeps it",
            ) from None
        return parse_request_log(lines, after=after, backend=BACKEND)

    def _server(self, name: str) -> BackendServer:
        for server in self.servers():
            if server.name == name:
                return server
        raise RouterError(f"router of {self.owner} has no server {name}")

    def _restore(self, servers: Sequence[ServerSpec]) -> tuple[str, ...]:
        if not servers:
            return ()
        present = {s.name for s in self.servers()}
        restored = []
        for spec in servers:
            if spec.name in present:
                continue
            self.add_server(
                spec.name, spec.address, spec.port, weight=spec.weight, check=spec.check
            )
            restored.append(spec.name)
        return tuple(restored)

    def _wait_restored(self, specs: Sequence[ServerSpec]) -> None:
        """Give restored servers their first check, so a recreated router serves on return.

        A server added back starts down; a caller resuming a rollout would take
        that for a failed health check. One that stays down past the start
        timeout is left for the caller's own checks to judge.
        """
        waiting = {s.name for s in specs if s.check and s.weight > 0}
        deadline = time.monotonic() + self.settings.start_timeout
        while waiting and time.monotonic() < deadline:
            up = {s.name for s in self.servers() if s.health is not ServerHealth.DOWN}
            waiting -= up
            if waiting:
                time.sleep(_POLL)

    # -- container ---------------------------------------------------------------

    @contextlib.contextmanager
    def _docker(self, what: str) -> Iterator[None]:
        try:
            yield
        except DockrollError:
            raise
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
            detail = getattr(exc, "explanation", None) or str(exc)
            raise RouterError(f"router of {self.owner}: {what} failed: {detail}") from None

    def _fingerprint(self, config: str) -> str:
        published = {
            "public": self.port,
            "metrics": self.metrics_port,
            "bind": self.settings.bind,
            "image": self.settings.image,
            "log": _LOG_CONFIG,
        }
        text = config + json.dumps(published, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _labels(self, fingerprint: str) -> dict[str, str]:
        return {
            "dockroll.service": self.service,
            "dockroll.environment": self.environment,
            "dockroll.role": "router",
            _CONFIG_LABEL: fingerprint,
        }

    def _inspect(self) -> dict[str, Any] | None:
        with self._docker(f"inspecting {self.container_name}"):
            try:
                attrs: dict[str, Any] = self._engine.client.api.inspect_container(
                    self.container_name
                )
            except docker.errors.NotFound:
                return None
            return attrs

    def _ensure_network(self) -> None:
        client = self._engine.client
        with self._docker(f"creating network {self.network}"):
            if any(n.name == self.network for n in client.networks.list(names=[self.network])):
                return
            try:
                client.networks.create(
                    self.network,
                    driver="bridge",
                    labels={
                        "dockroll.service": self.service,
                        "dockroll.environment": self.environment,
                    },
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # created concurrently: fine
                    raise

    def _image(self) -> str:
        if self.settings.image:
            return self.settings.image
        if self._engine.image(OFFICIAL_IMAGE) is not None:
            return OFFICIAL_IMAGE
        try:
            self._engine.pull(OFFICIAL_IMAGE, self._progress)
        except DockrollError as exc:
            substitute = load_substitutes().get(OFFICIAL_IMAGE)
            if substitute and not self._local:
                carry_image(self._engine, substitute, self._progress)
            if substitute and self._engine.image(substitute) is not None:
                self._progress(
                    Progress("router", f"using {substitute} in place of {OFFICIAL_IMAGE}")
                )
                return substitute
            raise RouterError(
                f"router of {self.owner}: no HAProxy image: {OFFICIAL_IMAGE} is not on the "
                f"engine and could not be pulled ({exc.message})",
                hint="run `dockroll dev up --with router` to build a local stand-in",
            ) from None
        return OFFICIAL_IMAGE

    def _prepare_directory(self, config: str) -> tuple[Path, Path]:
        conf, run = self.directory / "conf", self.directory / "run"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # the socket below is open to whoever can reach it
        for path, mode in ((conf, 0o755), (run, 0o777)):
            path.mkdir(exist_ok=True)
            # the container's user (uid 99 in the official image) must read and create here
            path.chmod(mode)
        tmp = conf / "haproxy.cfg.tmp"
        tmp.write_text(config, encoding="utf-8")
        tmp.chmod(0o644)
        tmp.replace(conf / "haproxy.cfg")
        (run / _SOCKET).unlink(missing_ok=True)
        return conf, run

    def _start(self, config: str, fingerprint: str) -> dict[str, Any]:
        image = self._image()
        conf, run = self._prepare_directory(config)
        ports: dict[str, tuple[str, int]] = {
            f"{PUBLIC_PORT}/tcp": (self.settings.bind, self.port),
            f"{METRICS_PORT}/tcp": (self.settings.bind, self.metrics_port),
        }
        volumes = (
            {
                str(conf): {"bind": _CONFIG_DIR, "mode": "ro"},
                str(run): {"bind": _RUN_DIR, "mode": "rw"},
            }
            if self._local
            else {}
        )
        self._progress(Progress("router", f"starting {self.container_name} from {image}"))
        client = self._engine.client
        with self._docker(f"starting {self.container_name} from {image}"):
            try:
                container = client.containers.create(
                    image,
                    name=self.container_name,
                    labels=self._labels(fingerprint),
                    ports=ports,
                    volumes=volumes,
                    network=self.network,
                    restart_policy={"Name": "unless-stopped"},
                    log_config=_LOG_CONFIG,
                )
                if not self._local:
                    container.put_archive(_CONFIG_DIR, _config_archive(config))
                container.start()
            except docker.errors.APIError as exc:
                with contextlib.suppress(docker.errors.DockerException):
                    client.api.remove_container(self.container_name, force=True)
                detail = exc.explanation or str(exc)
                hint = (
                    f"another process uses 127.0.0.1:{self.port} or {self.metrics_port}; "
                    "free it or give the environment another port"
                    if "allocated" in str(detail) or "address already in use" in str(detail)
                    else None
                )
                raise RouterError(
                    f"router of {self.owner}: the engine refused to start "
                    f"{self.container_name}: {detail}",
                    hint=hint,
                ) from None
        attrs = self._inspect()
        if attrs is None:
            raise RouterError(f"router of {self.owner}: {self.container_name} vanished on start")
        return attrs

    def _wait_for_api(self, attrs: Mapping[str, Any]) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        api = self.api
        while True:
            try:
                api.execute("show info")
                return
            except RouterError as exc:
                current = self._inspect()
                state = (current or {}).get("State") or {}
                if current is None or not state.get("Running") or time.monotonic() >= deadline:
                    logs = self._logs(str(attrs["Id"]))
                    raise RouterError(
                        f"router of {self.owner}: {self.container_name} does not answer "
                        f"on its runtime API ({exc.message})"
                        + (f"; its log ends with:\n{logs}" if logs else ""),
                        hint=f"`docker logs {self.container_name}` shows why",
                    ) from None
            time.sleep(_POLL)

    def _logs(self, container_id: str) -> str:
        with contextlib.suppress(docker.errors.DockerException):
            raw: bytes = self._engine.client.api.logs(container_id, tail=15)
            return raw.decode("utf-8", errors="replace").strip()
        return ""

    def _remove_container(self, *, grace: float) -> None:
        api = self._engine.client.api
        with self._docker(f"removing {self.container_name}"):
            try:
                api.stop(self.container_name, timeout=int(grace))
            except docker.errors.NotFound:
                return
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(self.container_name, force=True)


def _config_archive(config: str) -> bytes:
    data = config.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("haproxy.cfg")
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
