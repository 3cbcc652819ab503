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

**Starting, reloading, replacing.** :meth:`HaproxyRouter.ensure` starts the
router when it is missing or stopped, then adds each server the caller passes
that the backend lacks. HAProxy keeps runtime changes in memory only; a router
that restarted without dockroll (engine restart, crash) adds back the servers
it had itself (:mod:`dockroll.router.restore`), and the caller, which knows
which releases should serve, passes their servers on every ``ensure`` for what
is still missing. Servers added that way stay down until their first check passes. A
running router is never restarted by ``ensure``: a config that differs from
what this dockroll renders (its fingerprint is the global ``description``, read
with ``show info``) is applied by :meth:`HaproxyRouter.reload`, a hitless
master-worker reload that carries the running servers across; what only a new
container can change (image, published listeners, log settings: a second
fingerprint, kept in a container label) is reported and left to
:meth:`HaproxyRouter.upgrade`, which starts a new container before the old one
stops: on a local engine HAProxy runs in the network namespace of a holder
container (``<container>-net``) that publishes the listeners and joins the
networks, so a new HAProxy can take the running one's listening sockets over.

**Hand-overs on a remote engine.** A remote engine runs the router in a holder
the same way (on a Swarm manager too: see
:mod:`dockroll.router.swarm`); what differs is what a new HAProxy needs from
the old one. Its unix runtime socket (the one ``-x`` takes the listening
sockets from) is in a named volume, ``dockroll-router-<service>-<env>-run``
mounted at ``/var/lib/haproxy`` in each HAProxy container of the router, never
in a host directory; config files are copied into each new container before it
starts. Old and new share the holder's 127.0.0.1, so each HAProxy container
serves its loopback runtime API on a port of its own (``DOCKROLL_ADMIN_PORT``,
kept in the ``dockroll.router.admin-port`` label), which the exec relay reads:
``-x`` hands every listening socket of the old process over, its API listener
included, and on one port for both the relay's connections would reach the old
or the new HAProxy at random. Nothing publishes these ports; they are reached
only from inside.

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
import ipaddress
import json
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dockroll import labels as dockroll_labels
from dockroll.config import AcmeConfig, Config
from dockroll.engine.base_images import load_substitutes
from dockroll.engine.port import ContainerInfo, Engine, Mount, RunRequest
from dockroll.errors import DockrollError, EngineError, PortInUse, RouterError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.listeners import EDGE_PORT, ListenAddress
from dockroll.router import acme, forwarding, tls
from dockroll.router import hold as holding
from dockroll.router import restore as restoring
from dockroll.router.holder import ENGINE_SOCKET, holder_entrypoint, socket_mount
from dockroll.router.port import (
    BackendServer,
    RequestLog,
    RouterInfo,
    RouterStats,
    ServerHealth,
    ServerSpec,
    ServerState,
)
from dockroll.router.remote import carry_image
from dockroll.router.request_log import (
    LOG_FORMAT,
    AccessEntry,
    parse_access_log,
    parse_request_log,
)
from dockroll.router.runtime_api import (
    AdminAddress,
    CheckSettings,
    RuntimeApi,
    add_server_commands,
    backend_counters,
    backend_servers,
    parse_servers_state,
    refusal,
    set_weights_commands,
    validate_server_name,
)
from dockroll.router.transport import ADMIN_PORT_LABEL, LOOPBACK_ADMIN_PORT, ExecTransport
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
# What only a new container can change (image, published addresses, mounts, log settings).
_CONTAINER_LABEL = "dockroll.router.container"
_STATE_FILE = "servers.state"
# A local router's HAProxy runs in the network namespace of a long-lived holder
# container that publishes its listeners and joins its networks, so a new HAProxy
# can start beside the old one and take its listening sockets over (-x).
_HOLDER_LABEL = "dockroll.router.network"
_GENERATION_LABEL = "dockroll.router.generation"
_HOLDER_SUFFIX = "-net"
_NEXT_SUFFIX = "-next"
# Each HAProxy container of a holder has its own runtime socket: `-x` matches unix
# sockets by path, and a new one must not reuse its predecessor's.
_SOCKET_ENV = "DOCKROLL_ADMIN_SOCKET"
# On a remote engine each HAProxy container's runtime API has a loopback port of its own
# (old and new share the holder's 127.0.0.1), and its unix socket is in a named volume.
_PORT_ENV = "DOCKROLL_ADMIN_PORT"
_VOLUME_RUN_DIR = "/var/lib/haproxy"
_ADMIN_PORTS = range(20000, 30000)
# How long an old HAProxy may finish its requests after a hand-over (hard-stop-after 30s).
_HANDOVER_GRACE = 35.0
# On a remote engine the admin socket is TCP: listeners pass to a reloaded worker here.
_RELOAD_SOCKET = "/var/lib/haproxy/reload.sock"
_DESCRIPTION = "dockroll-config"
_EMPTY_STATE = "1\n"
_CHECK_ENABLED = 0x04  # CHK_ST_ENABLED in srv_check_state
_POLL = 0.1
# The request log grows by a line per request: the engine keeps at most this much of it.
_LOG_OPTIONS = {"max-size": "20m", "max-file": "3"}
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
    listeners: tuple[ListenAddress, ...] = ()
    """Host addresses of the public frontend; ``<bind>:<port>`` when empty."""
    accept_proxy: tuple[ListenAddress, ...] = ()
    """Listeners that expect the PROXY protocol from a load balancer in front."""
    tls_listeners: tuple[ListenAddress, ...] = ()
    """Listeners that serve HTTPS with ``tls_cert``/``tls_key``."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    acme: acme.AcmeSettings | None = None
    """Certificate from an ACME CA (kept in the state dir) instead of ``tls_cert``/``tls_key``;
    plain listeners answer its HTTP-01 challenges."""
    redirect_http: bool = True
    hsts_seconds: int | None = None
    edge: bool = False
    """Also listen for the shared edge (PROXY protocol), on the edge network only."""
    metrics_address: ListenAddress | None = None
    """Host address of the metrics listener; overrides ``metrics_port`` (on ``bind``)."""
    bind: str = "127.0.0.1"
    """The engine host's address the default public and metrics listeners are published on."""
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
    fingerprint: str | None = None,
    servers: Sequence[str] = (),
    admin_path: str = f"{_RUN_DIR}/{_SOCKET}",
    loopback_port: str = str(LOOPBACK_ADMIN_PORT),
    restore: bool = False,
    state_file: str = f"{_CONFIG_DIR}/{_STATE_FILE}",
) -> str:
    """The haproxy.cfg of an environment's router: frontends and a backend.

    ``admin_socket``: the runtime API on a unix socket in a shared directory;
    ``loopback_admin``: also on the container's own 127.0.0.1, for remote engines.
    The backend is empty but for ``servers`` (``server`` lines), which a reload
    carries over from the running worker. ``fingerprint`` (of the config
    rendered without it and without servers) is the global ``description``, so
    ``show info`` tells which config a router runs. ``admin_path``: where the unix
    socket is (a quoted ``"${VAR}"`` names it per container); ``loopback_port``: the
    loopback API's port (``${VAR}`` names it per container). ``restore``: the master
    runs :mod:`dockroll.router.restore` at start, which adds the servers back.
    ``state_file``: the server-state file HAProxy loads when it starts.
    """
    sockets = []
    # "expose-fd listeners": a reloaded worker takes over the listening sockets
    # from the running one (the master passes -x), so no connection is refused.
    if admin_socket:
        sockets.append(f"    stats socket {admin_path} mode 666 level admin expose-fd listeners")
    else:
        sockets.append(
            f"    stats socket {_RELOAD_SOCKET} mode 600 level admin expose-fd listeners"
        )
    if loopback_admin:
        address = f"ipv4@127.0.0.1:{loopback_port}"
        if "$" in loopback_port:
            address = f'"{address}"'
        sockets.append(f"    stats socket {address} level admin")
    if not admin_socket and not loopback_admin:
        raise RouterError(f"router of {service}/{environment} would have no runtime API")
    description = [f"    description {_DESCRIPTION} {fingerprint}"] if fingerprint else []
    check = [f"    option httpchk GET {settings.health_path}"] if settings.health_path else []
    # A program needs master-worker mode; said here too, so `haproxy -c` accepts it.
    master = ["    master-worker"] if restore else []
    program = (
        [
            "",
            *restoring.program_lines(
                _CONFIG_DIR,
                admin_path if admin_socket else _RELOAD_SOCKET,
                f"{_CONFIG_DIR}/{holding.STATE_MAP}",
                BACKEND,
            ),
        ]
        if restore
        else []
    )
    lines = [
        f"# dockroll router of {service}/{environment}.",
        "# Servers are added and changed at runtime through the stats socket, never here.",
        "global",
        *master,
        "    log stdout format raw local0 info",
        *sockets,
        *description,
        *holding.global_lines(_CONFIG_DIR),
        # Weights, drain/maintenance and check results of the servers a reload carries.
        f"    server-state-file {state_file}",
        "    stats timeout 30s",
        "    maxconn 4096",
        "    hard-stop-after 30s",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    load-server-state-from-file global",
        "    option dontlognull",
        # At a reload the old worker answers the next request of an idle keep-alive
        # connection (then closes it) instead of closing it under the client.
        "    option idle-close-on-response",
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
        # One container port per listener, each published on its host address.
        *(
            f"    bind :{PUBLIC_PORT + i}"
            + (" accept-proxy" if address in settings.accept_proxy else "")
            + (tls.bind_options(_CONFIG_DIR) if address in settings.tls_listeners else "")
            for i, address in enumerate(settings.listeners or [None])
        ),
        *([f"    bind :{EDGE_PORT} accept-proxy"] if settings.edge else []),
        # Every request, with the server that answered and its timers: analysis
        # judges latency per request and interval from these lines.
        f'    log-format "{LOG_FORMAT}"',
        # Before the hold and the HTTPS redirect: the CA's check always gets its answer.
        *(acme.frontend_lines(_CONFIG_DIR) if settings.acme else []),
        *holding.frontend_lines(_CONFIG_DIR),
        *forwarding.frontend_lines(),
        *(
            tls.frontend_lines(
                redirect_http=settings.redirect_http, hsts_seconds=settings.hsts_seconds
            )
            if settings.tls_listeners
            else []
        ),
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
        *check,
        # Resending a request whose answer never came is only safe when it is idempotent.
        "    http-request disable-l7-retry unless { method GET HEAD OPTIONS }",
        *servers,
        "",
        "frontend metrics",
        f"    bind :{METRICS_PORT}",
        "    no log",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 5s",
        *program,
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class RouterReload:
    """What a hitless reload did."""

    previous_worker: int
    """PID of the worker that served before (it finishes its requests, then exits)."""
    worker: int
    """PID of the worker on the new config."""
    carried: tuple[str, ...]
    """Servers that went across with their weights, states and check results."""
    restored: tuple[str, ...]
    """Servers the caller passed that the router lacked, added after the switch."""
    seconds: float


@dataclass(frozen=True)
class RouterDescription:
    """An environment's router as it runs (``dockroll router status``)."""

    container: str
    container_id: str
    image: str
    started_at: str
    running: bool
    worker: int | None
    listeners: tuple[str, ...]
    metrics: str
    admin: str
    config: str
    """Fingerprint of the config the router loaded; empty when unknown."""
    wanted_config: str
    """Fingerprint of the config this dockroll renders."""
    verdict: str
    """"up to date", or what is outdated and which command fixes it."""
    needs_upgrade: bool = False
    """Only a new container can apply what changed (``dockroll router upgrade``)."""


class HaproxyRouter:
    """The router of one environment, run as an HAProxy container on ``engine``."""

    network_holder = True
    """Whether, on a local engine, HAProxy runs in the network namespace of a holder
    container (``<container_name>-net``) that publishes the listeners and joins the
    networks, so :meth:`upgrade` can start a new HAProxy beside the old one."""

    restores_servers = True
    """Whether the router keeps its servers in a file and adds them back itself when it
    starts without dockroll (:mod:`dockroll.router.restore`)."""

    def __init__(
        self,
        engine: Engine,
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
        if self.settings.metrics_address is not None:
            metrics = self.settings.metrics_address.port
        if not 0 < metrics < 65536:
            raise RouterError(
                f"router of {self.owner}: metrics port {metrics} is out of range",
                hint="set the router's metrics_port explicitly",
            )
        self.metrics_port = metrics
        bind = self.settings.bind
        self.metrics_address = self.settings.metrics_address or ListenAddress(bind, metrics)
        self.listeners = self.settings.listeners or (ListenAddress(bind, port),)
        self._log_tail = _LOG_TAIL
        self._relay: ExecTransport | None = None
        # Once resolved, for the rest of this command: asking the registry for haproxy:2.6
        # again where it cannot be pulled costs seconds each time.
        self._resolved_image: str | None = None

    @classmethod
    def for_environment(
        cls,
        engine: Engine,
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
            listeners=tuple(env.listeners()),
            accept_proxy=tuple(
                listener.listen_address for listener in env.router.listen if listener.proxy_protocol
            ),
            tls_listeners=tuple(
                listener.listen_address for listener in env.router.listen if listener.tls
            ),
            tls_cert=(config.root / env.router.tls.cert)
            if env.router.tls and env.router.tls.cert
            else None,
            tls_key=(config.root / env.router.tls.key)
            if env.router.tls and env.router.tls.key
            else None,
            acme=_acme_settings(config, env.router.tls.acme)
            if env.router.tls and env.router.tls.acme
            else None,
            redirect_http=env.router.tls.redirect_http if env.router.tls else True,
            edge=bool(env.hosts),
            hsts_seconds=round(env.router.tls.hsts)
            if env.router.tls and env.router.tls.hsts
            else None,
            metrics_address=env.metrics_address(),
            bind=env.router_bind,
        )
        if env.swarm is not None:
            # Replicas' tasks move between nodes: servers follow them by DNS.
            from dockroll.router.swarm import SwarmRouter, swarm_replica_names  # noqa: PLC0415

            if env.swarm.router == "service":
                # One task per ingress node: see dockroll.router.swarm_service.
                from dataclasses import replace  # noqa: PLC0415

                from dockroll.router.swarm_service import SwarmServiceRouter  # noqa: PLC0415

                return SwarmServiceRouter(
                    engine,
                    service=config.service,
                    environment=environment,
                    port=env.port,
                    replica_names=swarm_replica_names(config.service, environment, env.replicas),
                    replica_port=config.container.port,
                    ingress=env.swarm.ingress,
                    settings=replace(settings, image=env.swarm.router_image)
                    if env.swarm.router_image
                    else settings,
                    state_root=state_root,
                    progress=progress,
                )
            return SwarmRouter(
                engine,
                service=config.service,
                environment=environment,
                port=env.port,
                replica_names=swarm_replica_names(config.service, environment, env.replicas),
                replica_port=config.container.port,
                settings=settings,
                state_root=state_root,
                progress=progress,
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
    def engine(self) -> Engine:
        return self._engine

    @property
    def owner(self) -> str:
        return f"{self.service}/{self.environment}"

    @property
    def container_name(self) -> str:
        return f"dockroll-router-{self.service}-{self.environment}"

    @property
    def holder_name(self) -> str:
        """The container holding the router's network namespace: listeners and networks."""
        return f"{self.container_name}{_HOLDER_SUFFIX}"

    @property
    def _holds(self) -> bool:
        return self.network_holder

    @property
    def _remote_holds(self) -> bool:
        """A holder on a remote engine: runtime sockets in a volume, a loopback port each."""
        return self._holds and not self._local

    @property
    def run_volume(self) -> str:
        """The named volume of the runtime sockets on a remote engine (``-x`` needs them)."""
        return f"{self.container_name}-run"

    def network_owner(self) -> str:
        """The container whose networks and addresses the router has (the edge joins it)."""
        if self._holds:
            found = self._inspect()
            if found is not None and _GENERATION_LABEL in found.labels:
                return self.holder_name
        return self.container_name

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
                self._engine,
                self.container_name,
                port=None if self._remote_holds else LOOPBACK_ADMIN_PORT,
                timeout=self.settings.api_timeout,
            )
        transport = None if self._local else self._relay
        return RuntimeApi(
            self.admin, owner=self.owner, timeout=self.settings.api_timeout, transport=transport
        )

    # -- lifecycle ---------------------------------------------------------------

    def ensure(
        self,
        servers: Sequence[ServerSpec] = (),
        *,
        reload: bool = True,
        restore_running: bool = True,
    ) -> RouterInfo:
        """Start the router when missing or stopped, reload it when its config is outdated.

        A running router is never restarted here: a config change is applied by
        a hitless :meth:`reload` (or, with ``reload=False``, left for the caller,
        which then sees ``reload_pending``); a change only a new container can
        make (image, listeners, log settings) is reported in ``outdated`` and
        left to :meth:`upgrade`.
        A router whose holder went away is started again, holder first.

        ``servers`` missing from a router started here are always added back.
        With ``restore_running=False`` a router that was already running is
        left for :meth:`restore` under the environment's lock: a rollout
        holding it may be about to add those very servers itself.
        """
        self._engine.ping()
        config_fp = self.config_fingerprint()
        container_fp = self._container_fingerprint()
        self._ensure_network()
        found = self._current()
        created = reloaded = pending = False
        outdated = ""
        if found is None or not _up(found) or not self._namespace_up(found):
            if found is not None:
                self._progress(Progress("router", f"starting {self.container_name} again"))
                self._remove_container(grace=1)
            container = self._start(self._render(config_fp), container_fp, config_fp)
            created = True
        else:
            container = found
        self._wait_for_api(container)
        if not created:
            if container.labels.get(_CONTAINER_LABEL) != container_fp:
                outdated = self._outdated_note(container)
                self._progress(Progress("router", outdated))
            elif self.running_config() != config_fp:
                if reload:
                    self.reload(servers)
                    reloaded = True
                else:
                    pending = True
            else:
                self.sync_certificate()
        restored = self.restore(servers) if created or restore_running else ()
        if created:  # restored here or by the router's own restore, they get a first check
            self._wait_restored(servers)
        return RouterInfo(
            environment=self.environment,
            container=self.container_name,
            container_id=container.id,
            image=container.image,
            network=self.network,
            url=f"http://{self.listeners[0].local_host}:{self.listeners[0].port}",
            metrics_url=f"http://{self.metrics_address.local_host}:{self.metrics_port}/metrics",
            admin=str(self.admin),
            created=created,
            restored=restored,
            reloaded=reloaded,
            reload_pending=pending,
            outdated=outdated,
        )

    def config_fingerprint(self) -> str:
        """The fingerprint of the config this dockroll renders (servers left out)."""
        text = self._render(None) + holding.hold_script(self._state_map)
        if self.restores_servers:
            text += restoring.restore_script()
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def _state_map(self) -> str:
        return f"{_CONFIG_DIR}/{holding.STATE_MAP}"

    def flags(self) -> dict[str, str]:
        """The hold and maintenance flags as the running router has them."""
        flags = holding.parse_map(self.api.execute(f"show map {self._state_map}"))
        flags.pop(restoring.KEY, None)  # the restore's progress, not a flag
        return {**holding.DEFAULT_STATE, **flags}

    def hold(self, until: datetime) -> None:
        """Hold every new request at the router until :meth:`release`, or 503 past ``until``."""
        deadline = f"{until.timestamp():.3f}"
        self._set_flags({"hold_until": deadline, "hold": "on"})

    def release(self) -> None:
        """Let held requests (and every new one) flow."""
        self._set_flags({"hold": "off", "hold_until": "0"})

    def set_maintenance(self, on: bool) -> None:
        """Answer every request with the maintenance page (503, Retry-After), or stop."""
        self._set_flags({"maintenance": "on" if on else "off"})

    def _set_flags(self, flags: Mapping[str, str]) -> None:
        path = self._state_map
        self.api.run(*(f"set map {path} {key} {value}" for key, value in flags.items()))
        # A router that restarts starts from the file: keep it in step.
        self._put_file(holding.STATE_MAP, self._state_text(self.flags()))

    def _state_text(self, flags: Mapping[str, str], restore: str = restoring.PENDING) -> str:
        """The state map file: the flags, and the restore a router starting from it runs."""
        extra = {restoring.KEY: restore} if self.restores_servers else {}
        return holding.render_state({**flags, **extra})

    def running_config(self) -> str | None:
        """The fingerprint of the config the running router loaded; None when it has none."""
        for line in self.api.execute("show info").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "description":
                words = value.split()
                if len(words) == 2 and words[0] == _DESCRIPTION:
                    return words[1]
        return None

    def reload(self, servers: Sequence[ServerSpec] = ()) -> RouterReload:
        """Load the config this dockroll renders into the running router, dropping nothing.

        HAProxy's master starts a new worker on the new config, hands it the
        listening sockets of the running one (``expose-fd listeners``), and lets
        the old worker finish the requests it has. The servers the running
        worker has (added at runtime, so in no config) are written into the new
        config with their addresses, and their weights, drain/maintenance and
        check results go across in a server-state file: the new worker serves
        from its first request. A config HAProxy refuses is checked before the
        switch and changes nothing. ``servers`` it then lacks are added.
        Concurrent runtime changes made while this runs may be lost: callers
        hold the environment's lock.
        """
        started = time.monotonic()
        api = self.api
        state = api.execute(f"show servers state {BACKEND}")
        rows = [r for r in parse_servers_state(state) if r.get("be_name") == BACKEND]
        previous = self._worker_pid()
        flags = self.flags()
        config_fp = self.config_fingerprint()
        self._write_carried(state, rows, flags, config_fp, restore=restoring.DONE)
        self._progress(Progress("router", f"reloading {self.container_name} (hitless)"))
        with self._engine_call(f"signalling {self.container_name} to reload"):
            self._engine.signal(self.container_name, "SIGUSR2")
        worker = self._wait_reloaded(previous, config_fp)
        # A restart (engine restart, crash) starts from the file with no server; the
        # restore adds them back, and the caller passes what should serve to ensure.
        self._put_file("haproxy.cfg", self._render(config_fp))
        if self.restores_servers:  # a start after this reload runs the restore again
            self._put_file(holding.STATE_MAP, self._state_text(flags))
        restored = self.restore(servers)
        return RouterReload(
            previous_worker=previous,
            worker=worker,
            carried=tuple(row.get("srv_name", "") for row in rows),
            restored=restored,
            seconds=time.monotonic() - started,
        )

    def upgrade(self, servers: Sequence[ServerSpec] = ()) -> RouterInfo:
        """Move the router to a new container (new image, container settings), new before old.

        The new HAProxy starts in the holder's network namespace beside the running one
        and takes its listening sockets over (:meth:`_hand_over`), on a local or a remote
        engine: nothing is refused. What the holder itself must change (published
        listeners), a router an older dockroll started (its own container publishes its
        listeners), and a router without a holder are replaced instead, which is NOT hitless:
        connections are refused from the old container's stop until the new one
        listens, about a second. Either way the servers the old router had go across
        with their weights (drained ones drained), and ``servers`` it lacked are added;
        it returns once those with weight passed their first check. ``replaced`` in the
        result says which it was.
        """
        self._engine.ping()
        found = self._current()
        kind = self._upgrade_kind(found) if found is not None and _up(found) else "start"
        if kind == "hitless" and found is not None:
            return self._hand_over(found, servers)
        carried: list[ServerSpec] = []
        drained: list[str] = []
        if found is not None and _up(found):
            with contextlib.suppress(RouterError):  # a router that does not answer has none
                for server in self.servers():
                    carried.append(
                        ServerSpec(
                            server.name,
                            server.address,
                            server.port,
                            weight=server.weight,
                            check=server.health is not ServerHealth.NO_CHECK,
                        )
                    )
                    if server.state is not ServerState.READY:
                        drained.append(server.name)
        names = {spec.name for spec in carried}
        wanted = [*carried, *(spec for spec in servers if spec.name not in names)]
        config_fp = self.config_fingerprint()
        self._ensure_network()
        if kind in ("migrate", "listeners"):
            self._check_free(found)
        self._progress(Progress("router", self._replacing_note(kind)))
        self._remove_container(grace=1)
        container = self._start(self._render(config_fp), self._container_fingerprint(), config_fp)
        self._wait_for_api(container)
        restored = self.restore(wanted)
        for name in drained:
            self.drain(name)
        # Restored here or by the router's own restore: either way, their first check.
        self._wait_restored([s for s in wanted if s.name not in drained])
        info = self.ensure(reload=False)
        return RouterInfo(
            **{**info.__dict__, "created": True, "restored": restored, "replaced": kind}
        )

    def describe(self) -> RouterDescription:
        """What runs, from the engine and the runtime API; changes nothing."""
        found = self._inspect()
        running = found is not None and _up(found)
        worker: int | None = None
        config: str | None = None
        needs_upgrade = False
        if running:
            with contextlib.suppress(RouterError):
                worker = self._worker_pid()
                config = self.running_config()
        if found is None:
            verdict = "missing: the next deploy starts it"
        elif not running:
            verdict = "stopped: the next deploy starts it"
        elif found.labels.get(_CONTAINER_LABEL) != self._container_fingerprint():
            verdict = self._outdated_note(found)
            needs_upgrade = True
        elif worker is None:
            verdict = "not answering on its runtime API"
        elif config != self.config_fingerprint():
            verdict = (
                f"runs an older config: `dockroll router reload --env {self.environment}` "
                "(hitless) or the next deploy applies it"
            )
        else:
            verdict = "up to date"
        return RouterDescription(
            container=self.container_name,
            container_id=found.id if found else "",
            image=found.image if found else "",
            started_at=found.started.isoformat() if found and found.started else "",
            running=running,
            worker=worker,
            listeners=tuple(str(a) for a in self.listeners),
            metrics=str(self.metrics_address),
            admin=str(
                AdminAddress(host="127.0.0.1", port=_label_port(found), container=found.name)
                if found is not None and self._remote_holds
                else self.admin
            ),
            config=config or "",
            wanted_config=self.config_fingerprint(),
            verdict=verdict,
            needs_upgrade=needs_upgrade,
        )

    def _outdated_note(self, found: ContainerInfo) -> str:
        how = {
            "hitless": "starts a new one beside it (hitless)",
            "migrate": "moves it, this once, into a container of its own that holds its "
            "listeners (not hitless this once: connections are refused for about a second; "
            "later upgrades are hitless)",
            "listeners": "replaces it and the container holding its listeners (not hitless: "
            "published listeners change only with a new holder; connections are refused "
            "for about a second)",
        }.get(
            self._upgrade_kind(found),
            "replaces it (not hitless: connections are refused for about a second)",
        )
        return (
            f"router {self.container_name} runs an older image, listeners or container "
            "settings, which only a new container can change; it keeps serving as it is. "
            f"`dockroll router upgrade --env {self.environment}` {how}"
        )

    def _render(self, fingerprint: str | None, servers: Sequence[str] = ()) -> str:
        return render_config(
            service=self.service,
            environment=self.environment,
            settings=self.settings,
            admin_socket=self._local or self._holds,
            loopback_admin=not self._local,
            fingerprint=fingerprint,
            servers=servers,
            admin_path=f'"${{{_SOCKET_ENV}}}"' if self._holds else f"{_RUN_DIR}/{_SOCKET}",
            loopback_port=f"${{{_PORT_ENV}}}" if self._remote_holds else str(LOOPBACK_ADMIN_PORT),
            restore=self.restores_servers,
        )

    def _server_line(self, row: Mapping[str, str]) -> str:
        """A running server as a config line; its current weight comes from the state file.

        HAProxy applies a saved weight only when the config's weight equals the saved
        initial weight, so the line carries that one.
        """
        name = validate_server_name(row.get("srv_name", ""))
        address = str(ipaddress.ip_address(row.get("srv_addr", "")))
        port = int(row.get("srv_port", "0"))
        line = f"    server {name} {address}:{port} weight {int(row.get('srv_iweight', '1'))}"
        if int(row.get("srv_check_state", "0")) & _CHECK_ENABLED:
            check = self.settings.check
            line += f" check inter {check.interval_ms} fall {check.fall} rise {check.rise}"
        return line

    def _worker_pid(self) -> int:
        for line in self.api.execute("show info").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Pid" and value.strip().isdigit():
                return int(value)
        raise RouterError(f"router of {self.owner}: `show info` names no worker")

    def _put_file(self, name: str, text: str) -> None:
        if self._local:
            conf = self.directory / "conf"
            tmp = conf / f"{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o644)
            tmp.replace(conf / name)
            return
        with self._engine_call(f"copying {name} into {self.container_name}"):
            self._engine.copy_files(self.container_name, _CONFIG_DIR, {name: text.encode()})

    def _check_config(self, name: str) -> None:
        """HAProxy's own check of a config file, inside the router's container."""
        with self._engine_call(f"checking the new config in {self.container_name}"):
            result = self._engine.execute(
                self.container_name, ["haproxy", "-c", "-q", "-f", f"{_CONFIG_DIR}/{name}"]
            )
        output, code = result.output.strip(), result.exit_code
        if code != 0:
            raise RouterError(
                f"router of {self.owner}: HAProxy refuses the new config, so the running one "
                f"keeps serving unchanged: {output or f'exit code {code}'}",
            )

    def _wait_reloaded(self, previous: int, config_fp: str) -> int:
        deadline = time.monotonic() + self.settings.start_timeout
        while True:
            with contextlib.suppress(RouterError):  # the socket moves to the new worker
                worker = self._worker_pid()
                if worker != previous and self.running_config() == config_fp:
                    return worker
            if time.monotonic() >= deadline:
                raise RouterError(
                    f"router of {self.owner}: no new worker on the new config within "
                    f"{self.settings.start_timeout:g}s; the previous one keeps serving",
                    hint=f"`docker logs {self.container_name}` shows why",
                )
            time.sleep(_POLL)

    def remove(self) -> None:
        """Stop and remove the router container and its files; the network stays for the apps."""
        self._remove_container(grace=5)
        if self._holds:
            for name in (self.container_name + _NEXT_SUFFIX, self.holder_name):
                with self._engine_call(f"removing {name}"):
                    self._engine.remove(name, grace=0)
        if self._remote_holds:
            # Docker engines remove volumes; nothing else the router runs on makes one.
            remove_volume = getattr(self._engine, "remove_volume", None)
            if callable(remove_volume):
                with self._engine_call(f"removing volume {self.run_volume}"):
                    remove_volume(self.run_volume)
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
        self._await_restore()
        api = self.api
        api.run(add)  # a new server sits in maintenance until the rest succeeds
        api.run(*enable)
        self._save_servers()

    def set_weight(self, name: str, weight: int) -> None:
        self.set_weights({name: weight})

    def set_weights(self, weights: Mapping[str, int]) -> None:
        if not weights:
            return
        self._await_restore()
        current = {s.name: s.weight for s in self.servers()}
        unknown = sorted(set(weights) - set(current))
        if unknown:
            raise RouterError(
                f"router of {self.owner} has no server {', '.join(unknown)}",
                hint=f"it has: {', '.join(sorted(current)) or 'no server at all'}",
            )
        self.api.run(*set_weights_commands(BACKEND, weights, current))
        self._save_servers()

    def set_ready(self, name: str) -> None:
        self._await_restore()
        self.api.run(f"set server {BACKEND}/{validate_server_name(name)} state ready")
        self._save_servers()

    def drain(self, name: str) -> None:
        self._await_restore()
        self.api.run(f"set server {BACKEND}/{validate_server_name(name)} state drain")
        self._save_servers()

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
        self._await_restore()
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
                self._save_servers()
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

    def access_log(self, *, since: datetime | None = None, tail: int = 100) -> list[AccessEntry]:
        """The last ``tail`` requests the router logged (since ``since``), oldest first."""
        try:
            text = self._engine.logs(self.container_name, tail=tail, since=since, timestamps=True)
        except DockrollError as exc:
            raise RouterError(
                f"router of {self.owner}: cannot read its request log: {exc.message}",
                hint=f"`docker logs {self.container_name}` shows whether the engine keeps it",
            ) from None
        return parse_access_log(text.splitlines())

    def _server(self, name: str) -> BackendServer:
        for server in self.servers():
            if server.name == name:
                return server
        raise RouterError(f"router of {self.owner} has no server {name}")

    def restore(self, servers: Sequence[ServerSpec]) -> tuple[str, ...]:
        """Add the ``servers`` the router lacks, as given; the names added, in order."""
        self._await_restore()
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

    def _save_servers(self) -> None:
        """Write the servers the router has now where its restore finds them at a start."""
        if not self.restores_servers or (self._local and not (self.directory / "conf").is_dir()):
            return  # a local router has its files, or was not started from this state dir
        state = self.api.execute(f"show servers state {BACKEND}")
        rows = [r for r in parse_servers_state(state) if r.get("be_name") == BACKEND]
        self._put_file(restoring.RESTORE_FILE, restoring.render_servers(rows, self.settings.check))

    def _await_restore(self) -> None:
        """Wait until a router that started without dockroll has added its servers back.

        The restore marks its progress in the state map; a command changes servers only
        once it is done, so the two never interleave and the command's changes come last.
        A restore that never finishes (no Perl in the image) is waited for only until
        :data:`~dockroll.router.restore.WINDOW_SECONDS` after the router started.
        """
        if not self.restores_servers:
            return
        deadline: float | None = None
        while True:
            flags = holding.parse_map(self.api.execute(f"show map {self._state_map}"))
            if flags.get(restoring.KEY, restoring.DONE) == restoring.DONE:
                return
            if deadline is None:
                found = self._inspect()
                if found is None or found.started is None:
                    return
                age = (self._engine.now() - found.started).total_seconds()
                deadline = time.monotonic() + restoring.WINDOW_SECONDS - age
                if age < restoring.WINDOW_SECONDS:
                    self._progress(
                        Progress(
                            "router", f"waiting for {self.container_name} to add its servers back"
                        )
                    )
            if time.monotonic() >= deadline:
                return
            time.sleep(_POLL)

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
    def _engine_call(self, what: str) -> Iterator[None]:
        """Engine failures while doing ``what`` become the router's errors (exit 10)."""
        try:
            yield
        except EngineError as exc:
            raise RouterError(
                f"router of {self.owner}: {what} failed: {exc.message}", hint=exc.hint
            ) from None

    def _container_fingerprint(self) -> str:
        published = {
            "public": self.port,
            "metrics": self.metrics_port,
            "listeners": [str(a) for a in self.listeners],
            "metrics_address": str(self.metrics_address),
            "image": self.settings.image,
            "log": {"type": "json-file", "config": _LOG_OPTIONS},
            "local": self._local,
            "reload": "master-worker, expose-fd listeners, server-state-file",
        }
        if self._holds:
            published["network"] = "holder; a new HAProxy takes the listeners over (-x)"
        if self._remote_holds:
            published["run"] = "named volume; a loopback API port per container"
        text = json.dumps(published, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _labels(self, container_fp: str, config_fp: str) -> dict[str, str]:
        return {
            "dockroll.service": self.service,
            "dockroll.environment": self.environment,
            "dockroll.role": "router",
            _CONFIG_LABEL: config_fp,
            _CONTAINER_LABEL: container_fp,
            # The scheme of everything else dockroll creates (selected by `env down`).
            **dockroll_labels.selector(self.service, self.environment, "router"),
        }

    def _inspect(self) -> ContainerInfo | None:
        with self._engine_call(f"inspecting {self.container_name}"):
            return self._engine.container(self.container_name)

    def _ensure_network(self) -> None:
        labels = {
            "dockroll.service": self.service,
            "dockroll.environment": self.environment,
            **dockroll_labels.selector(self.service, self.environment, "network"),
        }
        with self._engine_call(f"creating network {self.network}"):
            self._engine.ensure_network(self.network, labels)

    def image(self) -> str:
        """The image the router is (or would be) started from; pulls it when missing."""
        return self._image()

    def _image(self) -> str:
        if self._resolved_image is None:
            self._resolved_image = self._find_image()
        return self._resolved_image

    def _find_image(self) -> str:
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
        for name, text in self._start_files().items():
            # 0644 for the container's user; the directory above is 0700 (the key is here).
            (conf / name).write_text(text, encoding="utf-8")
            (conf / name).chmod(0o644)
        (run / _SOCKET).unlink(missing_ok=True)
        return conf, run

    def _start_files(self) -> dict[str, str]:
        """Files beside haproxy.cfg that a router starts with."""
        state = self.directory / "conf" / holding.STATE_MAP
        flags: dict[str, str] = {}
        if self._local and state.is_file():  # a maintenance or hold outlives a new container
            flags = holding.parse_state(state.read_text(encoding="utf-8"))
        flags.pop(restoring.KEY, None)  # a new container's restore starts anew
        files = {
            _STATE_FILE: _EMPTY_STATE,
            holding.STATE_MAP: self._state_text(flags),
            holding.LUA_FILE: holding.hold_script(self._state_map),
        }
        if self.restores_servers:
            files[restoring.SCRIPT_FILE] = restoring.restore_script()
            # A router started anew adds back the servers its predecessor had, then the
            # command that started it adds what it lacks (ensure).
            servers = self.directory / "conf" / restoring.RESTORE_FILE
            files[restoring.RESTORE_FILE] = (
                servers.read_text(encoding="utf-8") if self._local and servers.is_file() else ""
            )
        if self.settings.tls_listeners:
            files[tls.CERT_FILE] = self._certificate()
        if self.settings.acme:
            files[acme.CHALLENGE_MAP] = ""
        return files

    # -- certificates from an ACME CA ---------------------------------------------

    @property
    def acme_store(self) -> acme.CertificateStore:
        """Where the ACME account key and the issued certificate are kept (0600)."""
        root = (self._state_root or state_dir()) / "acme" / f"{self.service}-{self.environment}"
        return acme.CertificateStore(root)

    def publish_challenge(self, path: str, answer: str) -> None:
        table = f"{_CONFIG_DIR}/{acme.CHALLENGE_MAP}"
        self.api.execute(f"del map {table} {path}")
        self.api.run(f"add map {table} {path} {answer}")

    def withdraw_challenge(self, path: str) -> None:
        self.api.execute(f"del map {_CONFIG_DIR}/{acme.CHALLENGE_MAP} {path}")

    def renew_certificate(self, *, force: bool = False) -> acme.Renewal:
        """Have the ACME CA renew the certificate when due (or ``force``), then load it live.

        Raises :class:`CertificateError` when the CA cannot issue it; the certificate
        that served keeps serving.
        """
        if self.settings.acme is None:
            raise RouterError(
                f"router of {self.owner}: its certificate does not come from an ACME CA",
                hint="set router.tls.acme in dockroll.yml, or replace the certificate files",
            )
        renewal = acme.renew(self.settings.acme, self.acme_store, self, force=force)
        self.sync_certificate()
        return renewal

    def _certificate(self) -> str:
        if self.settings.acme is not None:
            store = self.acme_store
            store.ensure_stand_in(self.settings.acme.domains)
            return tls.bundle(store.cert, store.key, self.owner)
        if self.settings.tls_cert is None or self.settings.tls_key is None:
            raise RouterError(
                f"router of {self.owner}: TLS listeners without a certificate",
                hint="set router.tls.cert and router.tls.key",
            )
        return tls.bundle(self.settings.tls_cert, self.settings.tls_key, self.owner)

    def sync_certificate(self) -> bool:
        """Load the certificate files into the running router if it serves another one.

        Through the runtime API (``set ssl cert``, ``commit ssl cert``): nothing
        restarts. HAProxy refuses a key that does not match; the certificate
        that served keeps serving and the error says why. True when it changed.
        """
        if not self.settings.tls_listeners:
            return False
        pem = self._certificate()
        wanted = tls.certificate_fingerprint(pem)
        path = f"{_CONFIG_DIR}/{tls.CERT_FILE}"
        running = ""
        for line in self.api.execute(f"show ssl cert {path}").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "SHA1 FingerPrint":
                running = value.strip().upper()
        if running == wanted:
            return False
        # Through the runtime API's transport: a router on a remote engine is reached too.
        answer = self.api.execute_payload(f"set ssl cert {path}", pem)
        if "Transaction" not in answer:
            self.api.execute(f"abort ssl cert {path}")
            raise RouterError(
                f"router of {self.owner}: HAProxy refused the certificate "
                f"{self._certificate_source}; the one serving stays: {refusal(answer)}",
            )
        committed = self.api.execute(f"commit ssl cert {path}")
        if "Success" not in committed:
            self.api.execute(f"abort ssl cert {path}")
            raise RouterError(
                f"router of {self.owner}: HAProxy refused the certificate "
                f"{self._certificate_source} with {self._key_source}; the one serving "
                f"stays: {refusal(committed)}",
                hint="does the key belong to the certificate?",
            )
        self._put_file(tls.CERT_FILE, pem)
        self._progress(Progress("router", f"loaded the certificate {self._certificate_source}"))
        return True

    @property
    def _certificate_source(self) -> Path | None:
        return self.acme_store.cert if self.settings.acme else self.settings.tls_cert

    @property
    def _key_source(self) -> Path | None:
        return self.acme_store.key if self.settings.acme else self.settings.tls_key

    def _start(self, config: str, container_fp: str, config_fp: str) -> ContainerInfo:
        if self._remote_holds:
            image = self._image()
            self._ensure_holder(image)
            return self._run_haproxy(
                self.container_name,
                secrets.token_hex(4),
                container_fp,
                config_fp,
                image=image,
                files={"haproxy.cfg": config, **self._start_files()},
            )
        if self._holds:
            self._prepare_directory(config)
            for stale in (self.directory / "run").glob("admin-*.sock"):
                stale.unlink(missing_ok=True)  # nothing runs that could listen there
            image = self._image()
            self._ensure_holder(image)
            generation = secrets.token_hex(4)
            self._point(generation)
            return self._run_haproxy(
                self.container_name, generation, container_fp, config_fp, image=image
            )
        image = self._image()
        conf, run = self._prepare_directory(config)
        published = {
            PUBLIC_PORT + i: (address.host, address.port)
            for i, address in enumerate(self.listeners)
        }
        published[METRICS_PORT] = (self.metrics_address.host, self.metrics_address.port)
        mounts = (
            (
                Mount(str(conf), _CONFIG_DIR, read_only=True, kind="bind"),
                Mount(str(run), _RUN_DIR, kind="bind"),
            )
            if self._local
            else ()
        )
        files = (
            {}
            if self._local
            else {
                f"{_CONFIG_DIR}/{name}": text.encode()
                for name, text in {"haproxy.cfg": config, **self._start_files()}.items()
            }
        )
        request = RunRequest(
            image,
            name=self.container_name,
            labels=self._labels(container_fp, config_fp),
            publish_on=published,
            mounts=mounts,
            network=self.network,
            restart_policy="unless-stopped",
            log_options=_LOG_OPTIONS,
            files=files,
        )
        self._progress(Progress("router", f"starting {self.container_name} from {image}"))
        return self._run(request)

    def _run(self, request: RunRequest) -> ContainerInfo:
        try:
            return self._engine.run(request)
        except PortInUse as exc:
            taken = ", ".join(str(a) for a in (*self.listeners, self.metrics_address))
            raise RouterError(
                f"router of {self.owner}: {exc.message}",
                hint=f"another process listens on one of {taken}; free it or give the "
                "environment other listeners (router.listen, router.metrics)",
            ) from None
        except EngineError as exc:
            raise RouterError(f"router of {self.owner}: {exc.message}", hint=exc.hint) from None

    def _wait_for_api(self, container: ContainerInfo) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        api = self.api
        while True:
            try:
                api.execute("show info")
                return
            except RouterError as exc:
                current = self._inspect()
                if current is None or not _up(current) or time.monotonic() >= deadline:
                    logs = self._logs(container.id)
                    raise RouterError(
                        f"router of {self.owner}: {self.container_name} does not answer "
                        f"on its runtime API ({exc.message})"
                        + (f"; its log ends with:\n{logs}" if logs else ""),
                        hint=f"`docker logs {self.container_name}` shows why",
                    ) from None
            time.sleep(_POLL)

    def _logs(self, container_id: str) -> str:
        with contextlib.suppress(DockrollError):
            return self._engine.logs(container_id, tail=15).strip()
        return ""

    def _remove_container(self, *, grace: float) -> None:
        with self._engine_call(f"removing {self.container_name}"):
            self._engine.remove(self.container_name, grace=grace)
        if self._relay is not None:  # a new container may have another API port
            self._relay.close()

    # -- new before old: a holder of the network namespace, HAProxy containers in it ----

    def _current(self) -> ContainerInfo | None:
        """The HAProxy container; one a hand-over left under its temporary name while none
        has the router's name takes that name."""
        found = self._inspect()
        if found is None and self._holds:
            left = self._engine.container(self.container_name + _NEXT_SUFFIX)
            if left is not None and _up(left) and _GENERATION_LABEL in left.labels:
                with self._engine_call(f"renaming {left.name} to {self.container_name}"):
                    self._engine.rename(left.id, self.container_name)
                self._point(left.labels[_GENERATION_LABEL])
                found = self._inspect()
        return found

    def _namespace_up(self, found: ContainerInfo) -> bool:
        """Whether the holder whose namespace the HAProxy container runs in is up, and
        was so when HAProxy started (a holder that restarted since has a new namespace)."""
        if _GENERATION_LABEL not in found.labels:
            return True
        with self._engine_call(f"inspecting {self.holder_name}"):
            holder = self._engine.container(self.holder_name)
        if holder is None or not _up(holder):
            return False
        return holder.started is None or found.started is None or holder.started <= found.started

    def _holder_fingerprint(self) -> str:
        held = {
            "listeners": [str(a) for a in self.listeners],
            "metrics_address": str(self.metrics_address),
            "network": self.network,
        }
        return hashlib.sha256(json.dumps(held, sort_keys=True).encode()).hexdigest()[:16]

    def _upgrade_kind(self, found: ContainerInfo) -> str:
        """How :meth:`upgrade` moves the running ``found`` to a new container: ``hitless``,
        ``migrate`` (an older dockroll's, which published its own listeners), ``listeners``
        (the holder must change) or ``replace`` (a router without a holder)."""
        if not self._holds:
            return "replace"
        if _GENERATION_LABEL not in found.labels:
            return "migrate"
        with self._engine_call(f"inspecting {self.holder_name}"):
            holder = self._engine.container(self.holder_name)
        if (
            holder is None
            or not _up(holder)
            or holder.labels.get(_HOLDER_LABEL) != self._holder_fingerprint()
        ):
            return "listeners"
        return "hitless"

    def _check_free(self, found: ContainerInfo | None) -> None:
        """RouterError, before anything stops, when an address the router does not hold yet
        is taken on this host (a replacement would otherwise leave nothing listening)."""
        held = set(found.ports.values()) if found is not None else set()
        with self._engine_call(f"inspecting {self.holder_name}"):
            holder = self._engine.container(self.holder_name)
        if holder is not None:
            held |= set(holder.ports.values())
        for address in (*self.listeners, self.metrics_address):
            if address.port in held or not self._local:  # a remote host's: its engine says
                continue
            try:
                address.try_bind()
            except OSError as exc:
                raise RouterError(
                    f"router of {self.owner} cannot listen on {address}: "
                    f"{exc.strerror or exc}; nothing changed, it keeps serving as it is",
                    hint="free that address or give the environment other listeners "
                    "(router.listen, router.metrics)",
                ) from None

    def _replacing_note(self, kind: str) -> str:
        refused = "connections are refused until the new one listens"
        if kind == "migrate":
            return (
                f"one-time restart: {self.container_name} predates hitless upgrades (its "
                "listeners are published by its own container and cannot be handed over); "
                f"{refused}; later upgrades are hitless"
            )
        if kind == "listeners":
            return (
                f"replacing {self.container_name} and {self.holder_name} (not hitless: "
                f"its published listeners change, which needs a new holder); {refused}"
            )
        if kind == "start":
            return f"starting {self.container_name}"
        return f"replacing {self.container_name} (not hitless); {refused}"

    def _ensure_holder(self, image: str) -> None:
        """Start the holder of the router's namespace unless it runs with the wanted
        listeners: it publishes them and joins the environment's network."""
        wanted = self._holder_fingerprint()
        with self._engine_call(f"inspecting {self.holder_name}"):
            found = self._engine.container(self.holder_name)
        if found is not None and _up(found) and found.labels.get(_HOLDER_LABEL) == wanted:
            return
        if found is not None:
            with self._engine_call(f"removing {self.holder_name}"):
                self._engine.remove(found.id, grace=0)
        published = {
            PUBLIC_PORT + i: (address.host, address.port)
            for i, address in enumerate(self.listeners)
        }
        published[METRICS_PORT] = (self.metrics_address.host, self.metrics_address.port)
        request = RunRequest(
            image,
            name=self.holder_name,
            labels={
                "dockroll.service": self.service,
                "dockroll.environment": self.environment,
                **dockroll_labels.selector(self.service, self.environment, "router-network"),
                _HOLDER_LABEL: wanted,
            },
            # Holds the namespace, and starts HAProxy when an engine restart did not
            # (router/holder.py): the same image, present anyway.
            entrypoint=holder_entrypoint(self.container_name),
            user="0",
            mounts=[socket_mount(self._engine.endpoint)],
            publish_on=published,
            network=self.network,
            restart_policy="unless-stopped",
            stop_signal="SIGKILL",
        )
        self._progress(
            Progress("router", f"starting {self.holder_name}, which holds the router's listeners")
        )
        try:
            self._run(request)
        except RouterError as exc:
            if "bind source path does not exist" not in exc.message:
                raise
            # No engine socket where the watch looks for it (a rootless engine on a remote
            # host): the holder only holds the namespace.
            self._progress(
                Progress(
                    "router",
                    f"warning: no engine socket at {ENGINE_SOCKET} on that host; "
                    f"{self.holder_name} cannot start {self.container_name} after an engine "
                    "restart, the next deploy does",
                )
            )
            sleeping = replace(
                request, entrypoint=["sleep"], command=["infinity"], user=None, mounts=()
            )
            self._run(sleeping)

    def _run_haproxy(
        self,
        name: str,
        generation: str,
        container_fp: str,
        config_fp: str,
        *,
        image: str,
        take_over: str | None = None,
        previous_port: int | None = None,
        files: Mapping[str, str] | None = None,
    ) -> ContainerInfo:
        """Start HAProxy as ``name`` in the holder's namespace, with the runtime socket of
        ``generation``; with ``take_over`` (a running one's generation) it takes that
        one's listening sockets over first. On a remote engine ``files`` (name → text) go
        into its config directory before it starts, and its loopback API gets a port
        other than ``previous_port`` (the running one's)."""
        conf, run = self.directory / "conf", self.directory / "run"
        run_dir = _VOLUME_RUN_DIR if self._remote_holds else _RUN_DIR
        command = ["haproxy", "-f", f"{_CONFIG_DIR}/haproxy.cfg"]
        if take_over is not None:
            command += ["-x", f"{run_dir}/{_socket_name(take_over)}"]
        labels = {**self._labels(container_fp, config_fp), _GENERATION_LABEL: generation}
        env = {_SOCKET_ENV: f"{run_dir}/{_socket_name(generation)}"}
        mounts: tuple[Mount, ...] = (
            Mount(str(conf), _CONFIG_DIR, read_only=True, kind="bind"),
            Mount(str(run), _RUN_DIR, kind="bind"),
        )
        copied: dict[str, bytes] = {}
        if self._remote_holds:
            port = _admin_port(generation, previous_port)
            labels[ADMIN_PORT_LABEL] = str(port)
            env[_PORT_ENV] = str(port)
            # The image's /var/lib/haproxy belongs to HAProxy's user: a new volume copies that.
            mounts = (Mount(self.run_volume, _VOLUME_RUN_DIR, labels=self._volume_labels()),)
            copied = {f"{_CONFIG_DIR}/{n}": text.encode() for n, text in (files or {}).items()}
        request = RunRequest(
            image,
            name=name,
            labels=labels,
            command=command,
            env=env,
            mounts=mounts,
            files=copied,
            network_container=self.holder_name,
            restart_policy="unless-stopped",
            log_options=_LOG_OPTIONS,
            # A stop is a soft stop: the old HAProxy of a hand-over finishes its requests.
            stop_signal="SIGUSR1",
        )
        self._progress(Progress("router", f"starting {name} from {image}"))
        return self._run(request)

    def _volume_labels(self) -> dict[str, str]:
        return {
            "dockroll.service": self.service,
            "dockroll.environment": self.environment,
            **dockroll_labels.selector(self.service, self.environment, "router-run"),
        }

    def _point(self, generation: str) -> None:
        """Make ``run/admin.sock`` (the runtime API path) the socket of ``generation``."""
        if self._remote_holds:
            return  # the relay reads each container's port from its label
        run = self.directory / "run"
        link = run / f"{_SOCKET}.link"
        link.unlink(missing_ok=True)
        link.symlink_to(_socket_name(generation))
        link.replace(run / _SOCKET)

    def _hand_over(self, found: ContainerInfo, servers: Sequence[ServerSpec]) -> RouterInfo:
        """Start a new HAProxy container beside ``found`` in the holder's namespace.

        It takes the listening sockets over (``-x`` on the running one's runtime
        socket) and starts with the running servers in its config and their weights,
        drain/maintenance and check results in the server-state file, as a reload
        does. Once it serves the wanted config with those servers up, the runtime API
        path points at it, the old one soft-stops (finishing its requests) and the new
        one takes the router's name. Nothing is refused meanwhile. A new container that
        does not come up is removed and the old one keeps serving as it was. Callers
        hold the environment's lock: runtime changes made meanwhile would be lost.
        """
        started = time.monotonic()
        previous = found.labels[_GENERATION_LABEL]
        api = self.api
        state = api.execute(f"show servers state {BACKEND}")
        rows = [r for r in parse_servers_state(state) if r.get("be_name") == BACKEND]
        serving = {s.name for s in self.servers() if s.health is ServerHealth.UP}
        flags = self.flags()
        config_fp = self.config_fingerprint()
        container_fp = self._container_fingerprint()
        files = self._write_carried(state, rows, flags, config_fp)
        name = self.container_name + _NEXT_SUFFIX
        image = self._image()
        with self._engine_call(f"removing {name}"):
            self._engine.remove(name, grace=0)  # one an interrupted hand-over left
        self._progress(
            Progress(
                "router",
                f"starting a new {self.container_name} beside the running one: it takes the "
                "listening sockets over, then the old one finishes its requests and stops "
                "(hitless)",
            )
        )
        generation = secrets.token_hex(4)
        new: ContainerInfo | None = None
        try:
            new = self._run_haproxy(
                name,
                generation,
                container_fp,
                config_fp,
                image=image,
                take_over=previous,
                previous_port=_label_port(found),
                files=files,
            )
            self._wait_serving(new, generation, config_fp, serving)
        except RouterError as exc:
            logs = self._logs(new.id) if new is not None else ""
            with contextlib.suppress(DockrollError):
                self._engine.remove(name, grace=0)
            (self.directory / "run" / _socket_name(generation)).unlink(missing_ok=True)
            self._put_file("haproxy.cfg", self._render(config_fp))
            raise RouterError(
                f"router of {self.owner}: the new HAProxy container did not come up "
                f"({exc.message}); it was removed and {self.container_name} keeps serving "
                "as it was" + (f"; its log ends with:\n{logs}" if logs else ""),
                hint="does the image run HAProxy 2.6 or later?",
            ) from None
        self._point(generation)
        if self._relay is not None:  # on a remote engine: the new one's own loopback port
            self._relay.retarget(name)
        restored = self.restore(servers)
        self._progress(Progress("router", f"stopping the old {self.container_name} softly"))
        self._remove_container(grace=_HANDOVER_GRACE)
        (self.directory / "run" / _socket_name(previous)).unlink(missing_ok=True)
        with self._engine_call(f"renaming {name} to {self.container_name}"):
            try:
                self._engine.rename(new.id, self.container_name)
            except EngineError:
                named = self._engine.container(self.container_name)
                if named is None or named.id != new.id:  # else another command renamed it
                    raise
        if self._relay is not None:
            self._relay.retarget(self.container_name)
        # A restart starts from the file with no server; the restore adds them back.
        self._put_file("haproxy.cfg", self._render(config_fp))
        self._wait_restored([s for s in servers if s.name in restored])
        self._save_servers()  # into the new container on a remote engine
        self._progress(
            Progress(
                "router",
                f"handed {self.container_name} over hitless in "
                f"{time.monotonic() - started:.1f}s (carried {len(rows)} servers)",
            )
        )
        info = self.ensure(reload=False)
        return RouterInfo(
            **{**info.__dict__, "created": True, "restored": restored, "replaced": "hitless"}
        )

    def _write_carried(
        self,
        state: str,
        rows: Sequence[Mapping[str, str]],
        flags: Mapping[str, str],
        config_fp: str,
        *,
        restore: str = restoring.PENDING,
    ) -> dict[str, str]:
        """The files a new HAProxy starts with the running servers from; checked first.
        Also returned (name → text): a new container on a remote engine gets them copied.
        ``restore``: the restore's mark in the state map it starts with (a reloaded worker
        runs none: ``done``)."""
        config = self._render(config_fp, [self._server_line(row) for row in rows])
        files = {"haproxy.cfg.next": config, holding.LUA_FILE: holding.hold_script(self._state_map)}
        if self.restores_servers:
            files[restoring.SCRIPT_FILE] = restoring.restore_script()
            files[restoring.RESTORE_FILE] = restoring.render_servers(rows, self.settings.check)
        if self.settings.tls_listeners:
            files[tls.CERT_FILE] = self._certificate()
        if self.settings.acme:
            files[acme.CHALLENGE_MAP] = ""
        for name, text in files.items():
            self._put_file(name, text)
        self._check_config("haproxy.cfg.next")
        files[_STATE_FILE] = state
        files[holding.STATE_MAP] = self._state_text(flags, restore)
        files["haproxy.cfg"] = config
        for name in (_STATE_FILE, holding.STATE_MAP, "haproxy.cfg"):
            self._put_file(name, files[name])
        return files

    def _wait_serving(
        self, container: ContainerInfo, generation: str, config_fp: str, serving: set[str]
    ) -> None:
        """Until the HAProxy of ``generation`` answers on ``config_fp`` and has each server
        in ``serving`` up (their state came across; a first check confirms it)."""
        if self._remote_holds:
            relay = ExecTransport(
                self._engine, container.name, port=None, timeout=self.settings.api_timeout
            )
            try:
                api = RuntimeApi(
                    AdminAddress(host="127.0.0.1", port=relay.port, container=container.name),
                    owner=self.owner,
                    timeout=self.settings.api_timeout,
                    transport=relay,
                )
                self._poll_serving(api, container, config_fp, serving)
            finally:
                relay.close()
            return
        api = RuntimeApi(
            AdminAddress(path=self.directory / "run" / _socket_name(generation)),
            owner=self.owner,
            timeout=self.settings.api_timeout,
        )
        self._poll_serving(api, container, config_fp, serving)

    def _poll_serving(
        self, api: RuntimeApi, container: ContainerInfo, config_fp: str, serving: set[str]
    ) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        loaded = False
        while True:
            with contextlib.suppress(RouterError):
                if not loaded:
                    for line in api.execute("show info").splitlines():
                        key, _, value = line.partition(":")
                        if key.strip() == "description" and value.split()[1:] == [config_fp]:
                            loaded = True
                if loaded:
                    servers = backend_servers(
                        api.show_stat(), api.show_servers_state(BACKEND), BACKEND
                    )
                    up = {s.name for s in servers if s.health is ServerHealth.UP}
                    if serving <= up:
                        return
            with self._engine_call(f"inspecting {container.name}"):
                current = self._engine.container(container.id)
            if current is None or not current.running:
                raise RouterError("it stopped")
            if time.monotonic() >= deadline:
                if loaded:
                    return  # a server went down meanwhile: the old router lost it too
                raise RouterError(f"no answer within {self.settings.start_timeout:g}s")
            time.sleep(_POLL)


def _socket_name(generation: str) -> str:
    return f"admin-{generation}.sock"


def _label_port(container: ContainerInfo) -> int:
    """The loopback port of ``container``'s runtime API, as its label names it."""
    label = container.labels.get(ADMIN_PORT_LABEL, "")
    return int(label) if label.isdigit() else LOOPBACK_ADMIN_PORT


def _admin_port(generation: str, previous: int | None) -> int:
    """A loopback port for the runtime API of ``generation``, never ``previous``'s."""
    port = _ADMIN_PORTS[int(generation, 16) % len(_ADMIN_PORTS)]
    if port == previous:
        port = _ADMIN_PORTS[(port - _ADMIN_PORTS.start + 1) % len(_ADMIN_PORTS)]
    return port


def _up(container: ContainerInfo) -> bool:
    """Whether the engine counts the container as running: also while its restart policy
    restarts it or while it is paused, which a new container would not mend."""
    return container.status in ("running", "restarting", "paused")


def _acme_settings(config: Config, acme_config: AcmeConfig) -> acme.AcmeSettings:
    return acme.AcmeSettings(
        directory=acme_config.directory,
        domains=tuple(acme_config.domains),
        email=acme_config.email,
        ca_bundle=(config.root / acme_config.ca_bundle) if acme_config.ca_bundle else None,
        renew_before=acme_config.renew_before,
    )
