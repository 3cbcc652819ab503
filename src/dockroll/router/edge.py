"""The shared edge of an engine host: one HAProxy that routes by hostname to environments.

Environments that name ``hosts`` are served by the edge container
``dockroll-edge`` on their engine, whatever project (dockroll.yml) they come
from. It listens where the first such environment's ``edge.listen`` says;
an environment that asks for other addresses is refused, since one port
cannot be bound twice. The edge and every router it routes to share the
network ``dockroll-edge`` (a router joins it live, without a restart).

Routing is data, never config: ``routes.map`` maps each hostname to the
address of its environment's router on that network, ``owners.map`` to the
environment that claimed it. Both change through the runtime API (``add
map``/``set map``), so a second project joins without a reload and without a
failed request for the first. A hostname another environment claimed is
refused and the first keeps it. Requests for a hostname nobody claimed get
``404``. The edge passes each request to the router's own edge listener with
the PROXY protocol, so the router sees the client's address and keeps the
edge's ``X-Forwarded-*`` headers.

**TLS.** Listeners marked ``tls`` choose each hostname's certificate by SNI
from a crt-list (:mod:`dockroll.router.edge_tls`); certificates are added and
replaced through the runtime API, never by a restart. ``tls.map`` says, per
hostname with a certificate, whether plain HTTP is redirected to HTTPS and
the HSTS max-age. HTTP-01 challenges of an ACME CA are answered on the plain
listeners from ``acme.map`` before anything else.

**Host network.** The edge runs in the engine host's network namespace and
binds the listen addresses itself (no published ports, no docker-proxy); it
reaches each router by its address on the ``dockroll-edge`` bridge network,
which the host routes to. Its runtime API is a unix socket only. On a remote
engine its directories are named volumes and that socket is reached through
the engine connection (:mod:`dockroll.router.edge_remote`).

**Reload, upgrade.** The config's fingerprint is the global ``description``
(read with ``show info``). A config this dockroll renders differently is
applied by a hitless master-worker reload (:meth:`Edge.reload`): the new
worker takes over the listening sockets and the maps and certificates go
across as files. New listeners or a new image need a new container
(:meth:`Edge.upgrade`), never started as a side effect, and new before old:
the new container starts beside the running one with ``-x`` on the old one's
runtime socket, so it takes the listening sockets over (and binds the new
listeners itself); once it answers on the wanted config, the old one
soft-stops (it finishes its requests) and the new one takes its name. Each
container has its own config file and runtime socket (named after a token,
its ``generation`` label); ``run/admin.sock`` is a symlink to the serving
one's. An edge an older dockroll started with published ports cannot hand
its sockets over: its upgrade is a one-time restart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dockroll.engine.port import ContainerInfo, Engine, Mount, RunRequest
from dockroll.errors import DockrollError, EngineError, RouterError
from dockroll.listeners import EDGE_PORT, ROUTE_DEPTH, ListenAddress, route_hostname
from dockroll.router import acme, edge_tls, tls
from dockroll.router.edge_remote import (
    UnixSocketRelay,
    conf_volume,
    point_command,
    run_volume,
    seed_command,
)
from dockroll.router.hold import parse_map
from dockroll.router.runtime_api import AdminAddress, RuntimeApi, refusal
from dockroll.statedir import state_dir

__all__ = [
    "EDGE_CONTAINER",
    "EDGE_NETWORK",
    "EDGE_PORT",
    "Edge",
    "EdgeDescription",
    "EdgeReload",
    "EdgeRoute",
    "EdgeUpgrade",
    "render_edge_config",
]

EDGE_CONTAINER = "dockroll-edge"
EDGE_NETWORK = "dockroll-edge"
_PUBLIC_PORT = 8080
_CONFIG_DIR = "/usr/local/etc/haproxy"
_RUN_DIR = "/var/run/dockroll"
_ROUTES = "routes.map"
_OWNERS = "owners.map"
_TLS_MAP = "tls.map"
_CERT_LIST = "certs.list"
_LISTEN_LABEL = "dockroll.edge.listen"
_GENERATION_LABEL = "dockroll.edge.generation"
"""The token naming the container's config file and runtime socket; edges an older
dockroll started (published ports, no hand-over) do not carry it."""
_NEXT = "-next"
"""The suffix of the new container's name while it takes over from the old one."""
_STOP_GRACE = 35
"""Seconds a soft-stopping edge may take (``hard-stop-after`` is 30 s)."""
_DESCRIPTION = "dockroll-edge-config"
_POLL = 0.1


def edge_names() -> tuple[str, str]:
    """The edge's container and network names (``DOCKROLL_EDGE_NAME`` renames both)."""
    name = os.environ.get("DOCKROLL_EDGE_NAME") or EDGE_CONTAINER
    return name, name


def render_edge_config(
    listeners: Sequence[ListenAddress],
    tls_listeners: Sequence[ListenAddress] = (),
    *,
    fingerprint: str | None = None,
    published: bool = False,
    socket_name: str = "admin.sock",
) -> str:
    """The edge's haproxy.cfg; ``fingerprint`` (of the config rendered without it) is its
    ``description``, so ``show info`` tells which config runs.

    The edge binds the listen addresses in the host's network namespace, as root
    (ports below 1024), and its workers run as ``haproxy``. ``published`` renders the
    config of an edge an older dockroll started: bound inside its own network
    namespace on 8080, 8081 … with the engine publishing them.
    """
    conf = _CONFIG_DIR
    routes, owners, tls_map = f"{conf}/{_ROUTES}", f"{conf}/{_OWNERS}", f"{conf}/{_TLS_MAP}"
    ssl = (
        f" ssl crt {conf}/{edge_tls.DEFAULT_CERT} crt-list {conf}/{_CERT_LIST}"
        " ssl-min-ver TLSv1.2 alpn http/1.1"
    )
    description = [f"    description {_DESCRIPTION} {fingerprint}"] if fingerprint else []
    return "\n".join(
        [
            "# dockroll edge: routes by hostname; the routes are the maps, changed at runtime.",
            "global",
            "    log stdout format raw local0 info",
            f"    stats socket {_RUN_DIR}/{'admin.sock' if published else socket_name} "
            "mode 666 level admin expose-fd listeners",
            *description,
            *([] if published else ["    user haproxy", "    group haproxy"]),
            "    maxconn 8192",
            "    hard-stop-after 30s",
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    option dontlognull",
            # At a reload the old worker answers the next request of an idle keep-alive
            # connection (then closes it) instead of closing it under the client.
            "    option idle-close-on-response",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 60s",
            "    timeout http-request 10s",
            "    timeout http-keep-alive 5s",
            "",
            "frontend edge",
            *(
                f"    bind {_bind(address, i, published)}"
                + (ssl if address in tls_listeners else "")
                for i, address in enumerate(listeners)
            ),
            '    log-format "dockroll-edge %[var(txn.host)] %ST %Ta"',
            "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
            # The CA's HTTP-01 check gets its answer before the redirect and the 404.
            *acme.frontend_lines(conf),
            f"    http-request set-var(txn.route) var(txn.host),map({routes})",
            *_prefix_lines(routes),
            # Loads owners.map, so it exists at runtime (claims are checked against it).
            f"    http-request set-var(txn.owner) var(txn.key),map({owners})",
            "    http-request return status 404 content-type text/plain "
            'string "no site is served under this name here\\n" '
            "unless { var(txn.route) -m found }",
            # "<redirect 0|1>-<hsts seconds>" for hostnames that have a certificate here.
            f"    http-request set-var(txn.tls) var(txn.host),map({tls_map})",
            "    http-request redirect scheme https code 301 "
            "if !{ ssl_fc } { var(txn.tls),field(1,-) -m str 1 }",
            "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
            "    http-request set-header X-Forwarded-Proto http unless { ssl_fc }",
            "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
            "    http-after-response set-header Strict-Transport-Security "
            '"max-age=%[var(txn.tls),field(2,-)]" '
            "if { ssl_fc } { var(txn.tls),field(2,-) -m int gt 0 }",
            "    default_backend routers",
            "",
            "backend routers",
            # The server's address is the destination each request sets: its router's.
            "    http-request set-dst var(txn.route)",
            f"    server router 0.0.0.0:{EDGE_PORT} send-proxy-v2",
            "",
        ]
    )


def _bind(address: ListenAddress, index: int, published: bool) -> str:
    if published:
        return f":{_PUBLIC_PORT + index}"
    return f"{address} v6only" if address.ip.version == 6 else str(address)


def _prefix_lines(routes: str) -> list[str]:
    """Longest path prefix wins: ``host/seg1``, ``host/seg1/seg2`` … each found overrides.

    Prefixes match whole segments (``/api`` serves ``/api`` and ``/api/x``, not ``/apix``).
    """
    lines = ["    http-request set-var(txn.key) var(txn.host)"]
    for depth in range(2, ROUTE_DEPTH + 2):
        lines += [
            f"    http-request set-var(txn.segment) path,field({depth},/)",
            "    http-request set-var(txn.key) var(txn.key),concat(/,txn.segment,)",
            f"    http-request set-var(txn.route) var(txn.key),map({routes}) "
            f"if {{ var(txn.key),map({routes}) -m found }}",
        ]
    return lines


@dataclass(frozen=True)
class EdgeRoute:
    hostname: str
    """The hostname, with its path prefix if it has one (``shop.example.com/api``)."""
    owner: str
    """``service/environment`` that claimed it."""
    router: str
    """The router's address on the edge network."""
    tls: bool
    """Whether a certificate for it is loaded (plain HTTP then redirects, if asked)."""


@dataclass(frozen=True)
class EdgeDescription:
    """The edge as it runs (``dockroll edge status``)."""

    container: str
    container_id: str
    image: str
    started_at: str
    running: bool
    worker: int | None
    listeners: tuple[str, ...]
    """What the running container listens on (``tls`` marks HTTPS listeners)."""
    wanted_listeners: tuple[str, ...]
    config: str
    wanted_config: str
    verdict: str
    needs_upgrade: bool
    routes: tuple[EdgeRoute, ...] = ()
    certificates: tuple[edge_tls.ServedCertificate, ...] = ()


@dataclass(frozen=True)
class EdgeReload:
    previous_worker: int
    worker: int
    seconds: float


@dataclass(frozen=True)
class EdgeUpgrade:
    container: str
    """The new container's id."""
    how: str
    """``hitless`` (the new one took the sockets over), ``restart`` (a one-time restart of
    an edge an older dockroll started) or ``start`` (no edge ran)."""
    seconds: float


@dataclass(frozen=True)
class _Spec:
    listeners: tuple[ListenAddress, ...]
    tls: tuple[ListenAddress, ...] = field(default=())

    def label(self) -> str:
        return json.dumps([f"{a} tls" if a in self.tls else str(a) for a in self.listeners])


class Edge:
    """The edge of one engine host."""

    def __init__(
        self,
        engine: Engine,
        listeners: Sequence[ListenAddress],
        *,
        image: str | Callable[[], str] | None = None,
        tls_listeners: Sequence[ListenAddress] = (),
        state_root: Path | None = None,
        timeout: float = 20.0,
    ) -> None:
        self._engine = engine
        self.listeners = tuple(listeners)
        self.tls_listeners = tuple(tls_listeners)
        self._image = image
        self._state_root = state_root
        self._timeout = timeout
        self._remote = not engine.endpoint.startswith(("unix://", "npipe://"))
        """Its files are in named volumes, its runtime API is reached through the engine
        (:mod:`dockroll.router.edge_remote`)."""
        self._relay: UnixSocketRelay | None = None

    @property
    def name(self) -> str:
        return edge_names()[0]

    @property
    def engine(self) -> Engine:
        """The engine of the host the edge runs on."""
        return self._engine

    @property
    def network(self) -> str:
        """The network the edge and the routers it routes to share."""
        return edge_names()[1]

    @property
    def directory(self) -> Path:
        return (self._state_root or state_dir()) / self.name

    @property
    def acme_directory(self) -> Path:
        """The ACME account key and each hostname's certificate and key (0600)."""
        return (self._state_root or state_dir()) / "acme" / self.name

    @property
    def api(self) -> RuntimeApi:
        if self._remote:
            if self._relay is None:
                self._relay = UnixSocketRelay(
                    self._engine, self.name, f"{_RUN_DIR}/admin.sock", timeout=self._timeout
                )
            return self._remote_api(self.name, "admin.sock", self._relay)
        return RuntimeApi(
            AdminAddress(path=self.directory / "run" / "admin.sock"), owner="the edge"
        )

    def _remote_api(self, container: str, socket: str, relay: UnixSocketRelay) -> RuntimeApi:
        address = AdminAddress(path=Path(_RUN_DIR) / socket, container=container)
        return RuntimeApi(address, owner="the edge", timeout=self._timeout, transport=relay)

    def close(self) -> None:
        """End the relay to a remote edge's runtime API, if one was opened."""
        if self._relay is not None:
            self._relay.close()
            self._relay = None

    def _spec(self) -> _Spec:
        return _Spec(self.listeners, self.tls_listeners)

    def _label(self) -> str:
        return self._spec().label()

    def config_fingerprint(self, *, published: bool = False) -> str:
        """The fingerprint of the config this dockroll renders (``published``: for an edge
        an older dockroll started)."""
        text = render_edge_config(self.listeners, self.tls_listeners, published=published)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _render(self, generation: str | None) -> str:
        """The config of the container of ``generation`` (None: one an older dockroll started)."""
        published = generation is None
        return render_edge_config(
            self.listeners,
            self.tls_listeners,
            fingerprint=self.config_fingerprint(published=published),
            published=published,
            socket_name=_socket_name(generation),
        )

    def _compatible(self, running: str) -> bool:
        """Whether the running container's listeners are the ones this edge wants."""
        if running == self._label():
            return True
        # Edges started before TLS listeners existed label their addresses sorted.
        return not self.tls_listeners and running == json.dumps(
            sorted(str(a) for a in self.listeners)
        )

    def _current(self) -> ContainerInfo | None:
        """The edge's container; one an interrupted upgrade left under its temporary name
        while no other has the edge's name takes that name."""
        info = self._engine.container(self.name)
        if info is None:
            left = self._engine.container(self.name + _NEXT)
            if left is not None and left.running:
                self._engine.rename(left.id, self.name)
                self._point(left.labels.get(_GENERATION_LABEL), left.id)
                info = self._engine.container(self.name)
        return info

    def ensure(self, *, progress: Callable[[str], None] | None = None) -> str:
        """Start the edge when missing, reload it (hitless) when its config is outdated.

        RouterError when it runs with other listeners: only :meth:`upgrade` changes them.
        """
        self._engine.ensure_network(self.network, {"dockroll.role": "edge"})
        info = self._current()
        if info is not None and info.running:
            running = info.labels.get(_LISTEN_LABEL, "")
            if not self._compatible(running):
                raise RouterError(
                    f"the edge on this engine listens on {_listed(running)}; "
                    f"this environment asks for {_listed(self._label())}",
                    hint="give every environment with hosts the same edge.listen on one engine; "
                    "`dockroll edge upgrade` moves the edge to new listeners, dropping nothing",
                )
            self._wait_for_api()
            published = _GENERATION_LABEL not in info.labels
            if self.running_config() != self.config_fingerprint(published=published):
                if progress is not None:
                    progress(f"reloading {self.name} onto this dockroll's config (hitless)")
                self.reload()
            return info.id
        self._check_free("")
        if info is not None:
            self._engine.remove(info.id, grace=0)
            self._forget(info.labels.get(_GENERATION_LABEL))
        return self._start(self.name).id

    def _prepare(self) -> tuple[Path, Path]:
        conf, run = self.directory / "conf", self.directory / "run"
        if self._remote:  # the volumes are seeded by the container itself (_start)
            return conf, run
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)  # certificate keys are below, readable by the edge's user
        for path, mode in ((conf, 0o755), (run, 0o777), (conf / "certs", 0o755)):
            path.mkdir(exist_ok=True)
            path.chmod(mode)
        for name in (_ROUTES, _OWNERS, _TLS_MAP, _CERT_LIST, acme.CHALLENGE_MAP):
            if not (conf / name).exists():
                self._write(name, "")
        if not (conf / edge_tls.DEFAULT_CERT).exists():
            self._write(edge_tls.DEFAULT_CERT, edge_tls.default_certificate())
        self._write(acme.CHALLENGE_MAP, "")
        return conf, run

    def _start(self, name: str, *, take_over: str | None = None) -> ContainerInfo:
        """Start an edge container named ``name`` in the host's network namespace and wait
        until it answers on the wanted config; with ``take_over`` (the running one's runtime
        socket) it takes that one's listening sockets over first.

        RouterError when it does not come up; it is removed and nothing else changed.
        """
        image = self._present_image()
        conf, run = self._prepare()
        generation = secrets.token_hex(4)
        command = ["haproxy", "-f", f"{_CONFIG_DIR}/{_config_name(generation)}"]
        if take_over is not None:
            command += ["-x", f"{_RUN_DIR}/{take_over}"]
        mounts = [
            Mount(str(conf), _CONFIG_DIR, read_only=True, kind="bind"),
            Mount(str(run), _RUN_DIR, kind="bind"),
        ]
        files: dict[str, bytes] = {}
        if self._remote:
            # Written into the volume before the container starts; the maps and
            # certificates a running edge persisted there stay as they are.
            mounts = [
                Mount(conf_volume(self.name), _CONFIG_DIR),
                Mount(run_volume(self.name), _RUN_DIR),
            ]
            files = self._seed_files(_config_name(generation), self._render(generation))
            # Started by the seeding shell, not the image's entrypoint: master-worker
            # in the foreground (-W -db) is asked for here.
            command = self._seeded(["haproxy", "-W", "-db", *command[1:]])
        else:
            self._write(_config_name(generation), self._render(generation))
        request = RunRequest(
            image,
            name=name,
            labels={
                "dockroll.role": "edge",
                _LISTEN_LABEL: self._label(),
                _GENERATION_LABEL: generation,
            },
            command=command,
            restart_policy="unless-stopped",
            mounts=mounts,
            files=files,
            host_network=True,
            # Root binds ports below 1024 in the host's namespace; the workers drop to
            # haproxy (the config's `user`). A stop is a soft stop: requests finish.
            user="root",
            stop_signal="SIGUSR1",
            log_options={"max-size": "20m", "max-file": "3"},
        )
        try:
            info = self._engine.run(request)
        except EngineError as exc:
            made = self._engine.container(name)
            if made is not None and made.labels.get(_GENERATION_LABEL) == generation:
                self._engine.remove(made.id, grace=0)  # created, then refused to start
            self._forget(generation)
            raise RouterError(
                f"the engine refused to start the edge: {exc.message}; "
                "the edge that ran keeps serving as it was"
            ) from None
        try:
            self._wait_for(info.id, generation)
        except RouterError:
            logs = self._engine.logs(info.id, tail=8).strip()
            with contextlib.suppress(DockrollError):
                self._engine.remove(info.id, grace=0)
            self._forget(generation)
            taken = bind_failures(logs)
            if taken:
                raise RouterError(
                    f"the edge cannot listen on {', '.join(taken)} on the engine host "
                    f"({self._engine.endpoint}): another process has that address; the new "
                    "container was removed and nothing changed, an edge that ran keeps serving "
                    "as it was",
                    hint="free that address on the engine's host or choose another one in "
                    "edge.listen",
                ) from None
            raise RouterError(
                "the new edge container did not come up (it stopped, or did not answer "
                f"within {self._timeout:g}s); it was removed, and an edge that ran keeps "
                f"serving as it was. Its last output:\n{logs or '(none)'}",
                hint=f"is one of {', '.join(str(a) for a in self.listeners)} taken by another "
                "process? does the image run HAProxy 2.6 or later?",
            ) from None
        if take_over is None:
            self._point(generation, info.id)
        return info

    def _seed_files(self, config_name: str, config: str) -> dict[str, bytes]:
        """What a new container on a remote engine gets written into its config volume."""
        return {
            f"{_CONFIG_DIR}/{config_name}": config.encode(),
            f"{_CONFIG_DIR}/{edge_tls.DEFAULT_CERT}.seed": edge_tls.default_certificate().encode(),
        }

    def _seeded(self, command: Sequence[str]) -> list[str]:
        """``command`` after the files its config names are made in a fresh volume."""
        empty = (_ROUTES, _OWNERS, _TLS_MAP, _CERT_LIST, acme.CHALLENGE_MAP)
        return seed_command(_CONFIG_DIR, empty, edge_tls.DEFAULT_CERT, command)

    def _wait_for(self, container: str, generation: str) -> None:
        """Until the container of ``generation`` answers with the wanted config; RouterError
        when it stops or the time is up."""
        relay: UnixSocketRelay | None = None
        if self._remote:
            path = f"{_RUN_DIR}/{_socket_name(generation)}"
            relay = UnixSocketRelay(self._engine, container, path, timeout=self._timeout)
            api = self._remote_api(container, _socket_name(generation), relay)
        else:
            api = RuntimeApi(
                AdminAddress(path=self.directory / "run" / _socket_name(generation)),
                owner="the edge",
            )
        wanted = self.config_fingerprint()
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                with contextlib.suppress(DockrollError):
                    for line in api.execute("show info").splitlines():
                        key, _, value = line.partition(":")
                        if key.strip() == "description" and value.split()[1:] == [wanted]:
                            return
                info = self._engine.container(container)
                if info is None or not info.running or time.monotonic() >= deadline:
                    raise RouterError("the new edge container is not serving")
                time.sleep(_POLL)
        finally:
            if relay is not None:
                relay.close()

    def _point(self, generation: str | None, container: str) -> None:
        """Make ``run/admin.sock`` (the runtime API dockroll talks to) the socket of the
        container of ``generation`` (the running ``container``)."""
        if generation is None:
            return
        if self._remote:
            try:
                done = self._engine.execute(
                    container, point_command(_RUN_DIR, _socket_name(generation))
                )
            except EngineError as exc:
                raise RouterError(
                    f"pointing the edge's runtime API failed: {exc.message}"
                ) from None
            if done.exit_code != 0:
                raise RouterError(f"pointing the edge's runtime API failed: {done.output.strip()}")
            return
        run = self.directory / "run"
        link = run / "admin.sock.link"
        link.unlink(missing_ok=True)
        link.symlink_to(_socket_name(generation))
        link.replace(run / "admin.sock")

    def _forget(self, generation: str | None) -> None:
        """Remove the config file and runtime socket of a container that is gone."""
        if generation is None:
            return
        if self._remote:  # through a container of the edge that still runs, if any
            for name in (self.name, self.name + _NEXT):
                info = self._engine.container(name)
                if info is not None and info.running:
                    with contextlib.suppress(DockrollError):
                        self._engine.execute(
                            info.id,
                            [
                                "rm",
                                "-f",
                                f"{_CONFIG_DIR}/{_config_name(generation)}",
                                f"{_RUN_DIR}/{_socket_name(generation)}",
                            ],
                        )
                    return
            return
        (self.directory / "conf" / _config_name(generation)).unlink(missing_ok=True)
        (self.directory / "run" / _socket_name(generation)).unlink(missing_ok=True)

    def _resolve_image(self) -> str:
        if callable(self._image):
            return self._image()
        if self._image is None:
            raise RouterError("the edge's image is not known here")
        return self._image

    def _present_image(self) -> str:
        """The image, checked to be on the engine (a missing one changes nothing)."""
        image = self._resolve_image()
        if self._engine.image(image) is None:
            raise RouterError(
                f"the edge's image {image} is not on the engine; nothing changed, the edge "
                "keeps serving as it is",
                hint="pull or build it first, or fix router.image in dockroll.yml",
            )
        return image

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                self.api.execute("show info")
                return
            except DockrollError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(_POLL)

    def _write(self, name: str, text: str) -> None:
        if self._remote:
            folder, _, file = name.rpartition("/")
            directory = f"{_CONFIG_DIR}/{folder}" if folder else _CONFIG_DIR
            container = self.name
            if self._engine.container(container) is None:
                container += _NEXT  # an upgrade before the new one took the name
            try:
                self._engine.copy_files(container, directory, {file: text.encode()})
            except EngineError as exc:
                raise RouterError(f"writing {name} into the edge failed: {exc.message}") from None
            return
        conf = self.directory / "conf"
        tmp = conf / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)  # for the edge's user; the directory above is its owner's only
        tmp.replace(conf / name)

    # -- reading -------------------------------------------------------------------

    def _info(self, key: str) -> str | None:
        for line in self.api.execute("show info").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
        return None

    def running_config(self) -> str | None:
        words = (self._info("description") or "").split()
        return words[1] if len(words) == 2 and words[0] == _DESCRIPTION else None

    def worker(self) -> int:
        pid = self._info("Pid") or ""
        if not pid.isdigit():
            raise RouterError("the edge's `show info` names no worker")
        return int(pid)

    def owners(self) -> dict[str, str]:
        return parse_map(self.api.execute(f"show map {_CONFIG_DIR}/{_OWNERS}"))

    def routes(self) -> dict[str, str]:
        return parse_map(self.api.execute(f"show map {_CONFIG_DIR}/{_ROUTES}"))

    def tls_hosts(self) -> dict[str, str]:
        return parse_map(self.api.execute(f"show map {_CONFIG_DIR}/{_TLS_MAP}"))

    def _crt_list(self) -> list[str]:
        answer = self.api.execute(f"show ssl crt-list {_CONFIG_DIR}/{_CERT_LIST}")
        return [
            line.strip()
            for line in answer.splitlines()
            if line.strip() and not line.startswith("#") and line.startswith("/")
        ]

    def certificates(self) -> tuple[edge_tls.ServedCertificate, ...]:
        """Each hostname's certificate as the running edge serves it."""
        served = []
        for line in self._crt_list():
            path = line.split()[0]
            fields = edge_tls.parse_show_ssl_cert(self.api.execute(f"show ssl cert {path}"))
            served.append(
                edge_tls.ServedCertificate(
                    hostname=edge_tls.stored_hostname(path),
                    not_after=fields.get("notAfter", ""),
                    fingerprint=fields.get("SHA1 FingerPrint", ""),
                    subject=fields.get("Subject", ""),
                    issuer=fields.get("Issuer", ""),
                )
            )
        return tuple(sorted(served, key=lambda c: c.hostname))

    def describe(self) -> EdgeDescription:
        """What runs, from the engine and the runtime API; changes nothing."""
        info = self._engine.container(self.name)
        running = info is not None and info.running
        labels = info.labels if info is not None else {}
        label = labels.get(_LISTEN_LABEL, "")
        published = info is not None and _GENERATION_LABEL not in labels
        worker: int | None = None
        config: str | None = None
        routes: tuple[EdgeRoute, ...] = ()
        certificates: tuple[edge_tls.ServedCertificate, ...] = ()
        if running:
            with contextlib.suppress(DockrollError):
                worker = self.worker()
                config = self.running_config()
                owners, tls_hosts = self.owners(), self.tls_hosts()
                routes = tuple(
                    EdgeRoute(host, owners.get(host, ""), router, route_hostname(host) in tls_hosts)
                    for host, router in sorted(self.routes().items())
                )
                certificates = self.certificates()
        needs_upgrade = False
        if info is None:
            verdict = "missing: the next deploy of an environment with hosts starts it"
        elif not running:
            verdict = "stopped: the next deploy of an environment with hosts starts it"
        elif not self._compatible(label):
            verdict = (
                f"listens on {_listed(label)}, dockroll.yml asks for {_listed(self._label())}: "
                + (
                    "`dockroll edge upgrade` restarts it once (it predates hitless upgrades)"
                    if published
                    else "`dockroll edge upgrade` moves it, dropping nothing"
                )
            )
            needs_upgrade = True
        elif worker is None:
            verdict = "not answering on its runtime API"
        elif config != self.config_fingerprint(published=published):
            verdict = "runs an older config: `dockroll edge reload` (hitless) or the next deploy"
        else:
            verdict = "up to date"
            if published:
                verdict += (
                    " (it predates hitless upgrades: the next `dockroll edge upgrade` "
                    "restarts it once)"
                )
        return EdgeDescription(
            container=self.name,
            container_id=info.id if info is not None else "",
            image=info.image if info is not None else "",
            started_at=info.started.isoformat() if info and info.started else "",
            running=running,
            worker=worker,
            listeners=tuple(json.loads(label)) if label else (),
            wanted_listeners=tuple(json.loads(self._label())),
            config=config or "",
            wanted_config=self.config_fingerprint(published=published),
            verdict=verdict,
            needs_upgrade=needs_upgrade,
            routes=routes,
            certificates=certificates,
        )

    # -- changing --------------------------------------------------------------------

    def reload(self) -> EdgeReload:
        """Load the config this dockroll renders into the running edge, dropping nothing.

        The master starts a new worker that takes over the listening sockets; the
        old one finishes its requests. Routes, owners and certificates go across as
        the files they were persisted to. A config HAProxy refuses changes nothing.
        """
        started = time.monotonic()
        info = self._current()
        if info is None or not info.running:
            raise RouterError(f"the edge {self.name} does not run")
        generation = info.labels.get(_GENERATION_LABEL)
        previous = self.worker()
        self._persist()
        self._prepare_files_only()
        wanted = self.config_fingerprint(published=generation is None)
        text = self._render(generation)
        self._write("haproxy.cfg.next", text)
        self._check(info.id, "haproxy.cfg.next")
        self._write(_config_name(generation), text)
        try:
            self._engine.signal(info.id, "SIGUSR2")
        except EngineError as exc:
            raise RouterError(f"signalling {self.name} to reload failed: {exc.message}") from None
        deadline = time.monotonic() + self._timeout
        while True:
            with contextlib.suppress(DockrollError):
                worker = self.worker()
                if worker != previous and self.running_config() == wanted:
                    return EdgeReload(previous, worker, time.monotonic() - started)
            if time.monotonic() >= deadline:
                raise RouterError(
                    f"the edge has no new worker on the new config within {self._timeout:g}s; "
                    "the previous one keeps serving",
                    hint=f"`docker logs {self.name}` shows why",
                )
            time.sleep(_POLL)

    def _prepare_files_only(self) -> None:
        if self._remote:  # made when the container started (_seeded)
            return
        conf = self.directory / "conf"
        (conf / "certs").mkdir(exist_ok=True)
        for name in (_TLS_MAP, _CERT_LIST, acme.CHALLENGE_MAP):
            if not (conf / name).exists():
                self._write(name, "")
        if not (conf / edge_tls.DEFAULT_CERT).exists():
            self._write(edge_tls.DEFAULT_CERT, edge_tls.default_certificate())

    def _check(self, container: str, name: str) -> None:
        try:
            result = self._engine.execute(
                container, ["haproxy", "-c", "-q", "-f", f"{_CONFIG_DIR}/{name}"]
            )
        except EngineError as exc:
            raise RouterError(f"checking the edge's new config failed: {exc.message}") from None
        if result.exit_code != 0:
            raise RouterError(
                "HAProxy refuses the edge's new config, so the running one keeps serving "
                f"unchanged: {result.output.strip() or f'exit code {result.exit_code}'}"
            )

    def _check_with(self, image: str) -> None:
        """RouterError when HAProxy of ``image`` refuses the config (before anything starts)."""
        text = self._render(secrets.token_hex(4))
        command = ["haproxy", "-c", "-q", "-f", f"{_CONFIG_DIR}/haproxy.cfg.next"]
        if self._remote:
            request = RunRequest(
                image,
                command=self._seeded(command),
                labels={"dockroll.role": "edge-check"},
                mounts=[Mount(conf_volume(self.name), _CONFIG_DIR)],
                files=self._seed_files("haproxy.cfg.next", text),
                user="root",
            )
        else:
            self._write("haproxy.cfg.next", text)
            request = RunRequest(
                image,
                command=command,
                labels={"dockroll.role": "edge-check"},
                mounts=[
                    Mount(str(self.directory / "conf"), _CONFIG_DIR, read_only=True, kind="bind")
                ],
                user="root",
            )
        try:
            result = self._engine.run_job(request, timeout=self._timeout)
        except EngineError as exc:
            raise RouterError(f"checking the edge's new config failed: {exc.message}") from None
        if result.exit_code != 0:
            raise RouterError(
                f"HAProxy of {image} refuses the edge's config; nothing changed, the edge keeps "
                f"serving as it is: {result.logs.strip() or f'exit code {result.exit_code}'}"
            )

    def upgrade(self, *, progress: Callable[[str], None] | None = None) -> EdgeUpgrade:
        """Move the edge to a new container (new listeners or image), new before old.

        The new container takes the running one's listening sockets over (``-x`` on its
        runtime socket) and binds the new listeners; once it serves the wanted config
        the old one soft-stops, finishing its requests, and the new one takes its name.
        Nothing is refused meanwhile. An edge an older dockroll started (published
        ports) cannot hand its sockets over: it is restarted once. A taken address, a
        missing image or a config HAProxy refuses: RouterError, and the edge keeps
        serving as it was. Routes and certificates go across as files.
        """
        started = time.monotonic()

        def say(message: str) -> None:
            if progress is not None:
                progress(message)

        info = self._current()
        running = info is not None and info.running
        generation = info.labels.get(_GENERATION_LABEL) if info is not None else None
        self._check_free(info.labels.get(_LISTEN_LABEL, "") if info and running else "")
        image = self._present_image()
        if running:
            with contextlib.suppress(DockrollError):
                self._persist()
        self._prepare()
        self._check_with(image)
        self._engine.ensure_network(self.network, {"dockroll.role": "edge"})
        if info is None or not running or generation is None:
            if info is not None and running:
                say(
                    "one-time restart: the running edge predates hitless upgrades (its ports "
                    "are published by the engine and cannot be handed over); connections are "
                    "refused until the new one listens"
                )
            if info is not None:
                self._engine.remove(info.id, grace=0)
                self._forget(generation)
            new = self._start(self.name)
            how = "restart" if running else "start"
        else:
            left = self._engine.container(self.name + _NEXT)
            if left is not None:
                self._engine.remove(left.id, grace=0)
                self._forget(left.labels.get(_GENERATION_LABEL))
            say(
                f"starting a new {self.name} beside the running one: it takes the listening "
                "sockets over, then the old one finishes its requests and stops (hitless)"
            )
            new = self._start(self.name + _NEXT, take_over=_socket_name(generation))
            fresh = new.labels.get(_GENERATION_LABEL)
            self._point(fresh, new.id)
            self._engine.remove(info.id, grace=_STOP_GRACE)
            self._forget(generation)
            try:
                self._engine.rename(new.id, self.name)
            except EngineError:
                named = self._engine.container(self.name)
                if named is None or named.id != new.id:  # else a deploy took it over already
                    raise
            how = "hitless"
        return EdgeUpgrade(new.id, how, time.monotonic() - started)

    def _check_free(self, label: str) -> None:
        """RouterError, before anything stops, when a new listener is taken on this host."""
        if not self._engine.endpoint.startswith("unix://"):
            return  # another host: the new container fails to bind it (bind_failures)
        try:
            held = {entry.split()[0] for entry in json.loads(label or "[]")}
        except ValueError:
            held = set()
        for address in self.listeners:
            if str(address) in held:
                continue
            try:
                address.try_bind()
            except OSError as exc:
                raise RouterError(
                    f"the edge cannot listen on {address}: {exc.strerror or exc}; "
                    "nothing changed, the edge keeps serving as it is",
                    hint="free that address or choose another one in edge.listen",
                ) from None

    def claim(self, hosts: Sequence[str], owner: str, router_ip: str) -> None:
        """Route ``hosts`` to the router at ``router_ip``; RouterError if another owns one."""
        owners = self.owners()
        taken = {h: owners[h] for h in hosts if owners.get(h, owner) != owner}
        if taken:
            raise RouterError(
                "hostname "
                + ", ".join(f"{h} is already claimed by {o}" for h, o in sorted(taken.items()))
                + "; nothing changed",
                hint="a hostname routes to one environment: remove it from the other first",
            )
        self.release(owner, keep=hosts)  # hostnames it no longer names route nowhere
        routes = self.routes()
        commands = []
        for host in hosts:
            if routes.get(host) != router_ip:
                verb = "set" if host in routes else "add"
                commands.append(f"{verb} map {_CONFIG_DIR}/{_ROUTES} {host} {router_ip}")
            if owners.get(host) != owner:
                commands.append(f"add map {_CONFIG_DIR}/{_OWNERS} {host} {owner}")
        if commands:
            self.api.run(*commands)
        self._persist()

    def release(self, owner: str, *, keep: Sequence[str] = ()) -> list[str]:
        """Stop routing the hostnames ``owner`` claimed, except ``keep``; those released.

        A released hostname answers 404 and may be claimed by another project.
        """
        owners = self.owners()
        gone = sorted(h for h, o in owners.items() if o == owner and h not in keep)
        if not gone:
            return []
        routes = self.routes()
        commands = []
        for host in gone:
            if host in routes:
                commands.append(f"del map {_CONFIG_DIR}/{_ROUTES} {host}")
            commands.append(f"del map {_CONFIG_DIR}/{_OWNERS} {host}")
        still_routed = {route_hostname(h) for h in owners if h not in gone}
        tls = self.tls_hosts()
        for hostname in sorted({route_hostname(h) for h in gone} - still_routed):
            if hostname in tls:
                commands.append(f"del map {_CONFIG_DIR}/{_TLS_MAP} {hostname}")
        self.api.run(*commands)
        self._persist()
        return gone

    def _persist(self) -> None:
        """Write what the running edge has into the files a reload or restart starts from."""
        tables = ((_ROUTES, self.routes()), (_OWNERS, self.owners()), (_TLS_MAP, self.tls_hosts()))
        for name, entries in tables:
            self._write(name, "".join(f"{k} {v}\n" for k, v in sorted(entries.items())))
        self._write(_CERT_LIST, "".join(f"{line}\n" for line in self._crt_list()))

    # -- certificates ------------------------------------------------------------------

    def install_certificate(
        self,
        hostname: str,
        pem: str,
        *,
        source: str,
        redirect_http: bool = True,
        hsts_seconds: int | None = None,
    ) -> bool:
        """Serve ``pem`` (chain then key) for ``hostname`` by SNI; True when it changed.

        Checked first (covers the hostname, key matches); loaded through the runtime
        API; the certificate serving stays when anything is refused.
        """
        edge_tls.check_certificate(pem, hostname, source)
        path = edge_tls.certificate_path(_CONFIG_DIR, hostname)
        api = self.api
        shown = edge_tls.parse_show_ssl_cert(api.execute(f"show ssl cert {path}"))
        changed = shown.get("SHA1 FingerPrint", "").upper() != tls.certificate_fingerprint(pem)
        if changed:
            if not shown:
                created = api.execute(f"new ssl cert {path}")
                if "New empty certificate store" not in created:
                    raise RouterError(f"edge: `new ssl cert {path}` failed: {refusal(created)}")
            answer = api.execute_payload(f"set ssl cert {path}", pem)
            if "Transaction" not in answer:
                api.execute(f"abort ssl cert {path}")
                raise RouterError(
                    f"edge: HAProxy refused the certificate {source} for {hostname}; "
                    f"the one serving stays: {refusal(answer)}"
                )
            committed = api.execute(f"commit ssl cert {path}")
            if "Success" not in committed:
                api.execute(f"abort ssl cert {path}")
                raise RouterError(
                    f"edge: HAProxy refused the certificate {source} for {hostname}; "
                    f"the one serving stays: {refusal(committed)}"
                )
            self._write(f"certs/{hostname}.pem", pem)
        if not any(line.split()[0] == path for line in self._crt_list()):
            answer = api.execute_payload(
                f"add ssl crt-list {_CONFIG_DIR}/{_CERT_LIST}", f"{path} {hostname}"
            )
            if "Success" not in answer:
                raise RouterError(
                    f"edge: HAProxy did not add {hostname}'s certificate to its list: "
                    f"{refusal(answer)}"
                )
            changed = True
        flags = f"{1 if redirect_http else 0}-{hsts_seconds or 0}"
        table = self.tls_hosts()
        if table.get(hostname) != flags:
            verb = "set" if hostname in table else "add"
            api.run(f"{verb} map {_CONFIG_DIR}/{_TLS_MAP} {hostname} {flags}")
        self._persist()
        return changed

    def publish_challenge(self, path: str, answer: str) -> None:
        table = f"{_CONFIG_DIR}/{acme.CHALLENGE_MAP}"
        self.api.execute(f"del map {table} {path}")
        self.api.run(f"add map {table} {path} {answer}")

    def withdraw_challenge(self, path: str) -> None:
        self.api.execute(f"del map {_CONFIG_DIR}/{acme.CHALLENGE_MAP} {path}")

    def acme_store(self, hostname: str) -> acme.CertificateStore:
        root = self.acme_directory
        return acme.CertificateStore(root / hostname, account=root / "account.key")

    def renew_certificate(
        self,
        hostname: str,
        settings: acme.AcmeSettings,
        *,
        force: bool = False,
        redirect_http: bool = True,
        hsts_seconds: int | None = None,
        now: dt.datetime | None = None,
    ) -> acme.Renewal:
        """Have the CA issue ``hostname``'s certificate when due (or ``force``), then serve it.

        The edge answers the HTTP-01 challenge on its plain listeners. Raises
        CertificateError when the CA cannot issue one: the certificate serving stays.
        """
        store = self.acme_store(hostname)
        renewal = acme.renew(settings, store, self, force=force, now=now)
        self.install_certificate(
            hostname,
            tls.bundle(store.cert, store.key, "the edge"),
            source=str(store.cert),
            redirect_http=redirect_http,
            hsts_seconds=hsts_seconds,
        )
        return renewal


def bind_failures(logs: str) -> list[str]:
    """The addresses HAProxy says it could not bind because another process has them."""
    taken = []
    for line in logs.splitlines():
        if "cannot bind socket" in line and "in use" in line.lower():
            start, end = line.rfind("["), line.rfind("]")
            address = line[start + 1 : end] if 0 <= start < end else line.strip()
            if address not in taken:
                taken.append(address)
    return taken


def _config_name(generation: str | None) -> str:
    return f"haproxy-{generation}.cfg" if generation else "haproxy.cfg"


def _socket_name(generation: str | None) -> str:
    return f"admin-{generation}.sock" if generation else "admin.sock"


def _listed(label: str) -> str:
    try:
        return ", ".join(json.loads(label or "[]")) or "nothing"
    except ValueError:
        return label


def route_flags(table: Mapping[str, str], hostname: str) -> tuple[bool, int]:
    """``tls.map``'s entry of ``hostname`` as (redirect, HSTS seconds)."""
    redirect, _, hsts = table.get(hostname, "0-0").partition("-")
    return redirect == "1", int(hsts or 0)
