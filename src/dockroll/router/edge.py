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

**Reload, upgrade.** The config's fingerprint is the global ``description``
(read with ``show info``). A config this dockroll renders differently is
applied by a hitless master-worker reload (:meth:`Edge.reload`): the new
worker takes over the listening sockets and the maps and certificates go
across as files. New listeners or a new image need a new container
(:meth:`Edge.upgrade`), which is never done as a side effect and is not
hitless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from dockroll.engine.docker import DockerEngine
from dockroll.errors import DockrollError, RouterError
from dockroll.listeners import ROUTE_DEPTH, ListenAddress, route_hostname
from dockroll.router import acme, edge_tls, tls
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
    "render_edge_config",
]

EDGE_CONTAINER = "dockroll-edge"
EDGE_NETWORK = "dockroll-edge"
EDGE_PORT = 8090
"""The routers' listener for the edge (PROXY protocol), on the edge network only."""
_PUBLIC_PORT = 8080
_CONFIG_DIR = "/usr/local/etc/haproxy"
_RUN_DIR = "/var/run/dockroll"
_ROUTES = "routes.map"
_OWNERS = "owners.map"
_TLS_MAP = "tls.map"
_CERT_LIST = "certs.list"
_LISTEN_LABEL = "dockroll.edge.listen"
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
) -> str:
    """The edge's haproxy.cfg; ``fingerprint`` (of the config rendered without it) is its
    ``description``, so ``show info`` tells which config runs."""
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
            f"    stats socket {_RUN_DIR}/admin.sock mode 666 level admin expose-fd listeners",
            *description,
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
                f"    bind :{_PUBLIC_PORT + i}" + (ssl if address in tls_listeners else "")
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
class _Spec:
    listeners: tuple[ListenAddress, ...]
    tls: tuple[ListenAddress, ...] = field(default=())

    def label(self) -> str:
        return json.dumps([f"{a} tls" if a in self.tls else str(a) for a in self.listeners])


class Edge:
    """The edge of one engine host."""

    def __init__(
        self,
        engine: DockerEngine,
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

    @property
    def name(self) -> str:
        return edge_names()[0]

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
        return RuntimeApi(
            AdminAddress(path=self.directory / "run" / "admin.sock"), owner="the edge"
        )

    def _spec(self) -> _Spec:
        return _Spec(self.listeners, self.tls_listeners)

    def _label(self) -> str:
        return self._spec().label()

    def config_fingerprint(self) -> str:
        text = render_edge_config(self.listeners, self.tls_listeners)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _render(self) -> str:
        return render_edge_config(
            self.listeners, self.tls_listeners, fingerprint=self.config_fingerprint()
        )

    def _compatible(self, running: str) -> bool:
        """Whether the running container's listeners are the ones this edge wants."""
        if running == self._label():
            return True
        # Edges started before TLS listeners existed label their addresses sorted.
        return not self.tls_listeners and running == json.dumps(
            sorted(str(a) for a in self.listeners)
        )

    def _inspect(self) -> dict[str, Any]:
        try:
            attrs: dict[str, Any] = self._engine.client.api.inspect_container(self.name)
        except docker.errors.NotFound:
            return {}
        return attrs

    def ensure(self, *, progress: Callable[[str], None] | None = None) -> str:
        """Start the edge when missing, reload it (hitless) when its config is outdated.

        RouterError when it runs with other listeners: only :meth:`upgrade` changes them.
        """
        client = self._engine.client
        with contextlib.suppress(docker.errors.APIError):
            client.networks.create(self.network, driver="bridge", check_duplicate=True)
        attrs = self._inspect()
        if attrs and (attrs.get("State") or {}).get("Running"):
            running = ((attrs.get("Config") or {}).get("Labels") or {}).get(_LISTEN_LABEL, "")
            if not self._compatible(running):
                raise RouterError(
                    f"the edge on this engine listens on {_listed(running)}; "
                    f"this environment asks for {_listed(self._label())}",
                    hint="give every environment with hosts the same edge.listen on one engine; "
                    "`dockroll edge upgrade` moves the edge to new listeners (not hitless)",
                )
            self._wait_for_api()
            if self.running_config() != self.config_fingerprint():
                if progress is not None:
                    progress(f"reloading {self.name} onto this dockroll's config (hitless)")
                self.reload()
            return str(attrs["Id"])
        if attrs:
            client.api.remove_container(self.name, force=True)
        return self._start()

    def _prepare(self) -> tuple[Path, Path]:
        conf, run = self.directory / "conf", self.directory / "run"
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
        self._write("haproxy.cfg", self._render())
        return conf, run

    def _start(self) -> str:
        client = self._engine.client
        image = self._resolve_image()
        conf, run = self._prepare()
        (run / "admin.sock").unlink(missing_ok=True)
        ports = {f"{_PUBLIC_PORT + i}/tcp": (a.host, a.port) for i, a in enumerate(self.listeners)}
        try:
            container = client.containers.run(
                image,
                name=self.name,
                labels={"dockroll.role": "edge", _LISTEN_LABEL: self._label()},
                ports=ports,
                volumes={
                    str(conf): {"bind": _CONFIG_DIR, "mode": "ro"},
                    str(run): {"bind": _RUN_DIR, "mode": "rw"},
                },
                network=self.network,
                restart_policy={"Name": "unless-stopped"},
                log_config={"type": "json-file", "config": {"max-size": "20m", "max-file": "3"}},
                detach=True,
            )
        except docker.errors.APIError as exc:
            with contextlib.suppress(docker.errors.DockerException):
                client.api.remove_container(self.name, force=True)
            raise RouterError(
                f"the engine refused to start the edge: {exc.explanation or exc}",
                hint=f"is one of {', '.join(str(a) for a in self.listeners)} taken?",
            ) from None
        self._wait_for_api()
        return str(container.id)

    def _resolve_image(self) -> str:
        if callable(self._image):
            return self._image()
        if self._image is None:
            raise RouterError("the edge's image is not known here")
        return self._image

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
        attrs = self._inspect()
        running = bool(attrs) and (attrs.get("State") or {}).get("Running") is True
        label = ((attrs.get("Config") or {}).get("Labels") or {}).get(_LISTEN_LABEL, "")
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
        if not attrs:
            verdict = "missing: the next deploy of an environment with hosts starts it"
        elif not running:
            verdict = "stopped: the next deploy of an environment with hosts starts it"
        elif not self._compatible(label):
            verdict = (
                f"listens on {_listed(label)}, dockroll.yml asks for {_listed(self._label())}: "
                "`dockroll edge upgrade` replaces it (not hitless: connections are refused "
                "for about a second)"
            )
            needs_upgrade = True
        elif worker is None:
            verdict = "not answering on its runtime API"
        elif config != self.config_fingerprint():
            verdict = "runs an older config: `dockroll edge reload` (hitless) or the next deploy"
        else:
            verdict = "up to date"
        return EdgeDescription(
            container=self.name,
            container_id=str(attrs.get("Id", "")),
            image=str((attrs.get("Config") or {}).get("Image", "")),
            started_at=str((attrs.get("State") or {}).get("StartedAt", "")),
            running=running,
            worker=worker,
            listeners=tuple(json.loads(label)) if label else (),
            wanted_listeners=tuple(json.loads(self._label())),
            config=config or "",
            wanted_config=self.config_fingerprint(),
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
        previous = self.worker()
        self._persist()
        self._prepare_files_only()
        wanted = self.config_fingerprint()
        self._write("haproxy.cfg.next", self._render())
        self._check("haproxy.cfg.next")
        self._write("haproxy.cfg", self._render())
        try:
            self._engine.client.api.kill(self.name, signal="SIGUSR2")
        except docker.errors.APIError as exc:
            raise RouterError(f"signalling {self.name} to reload failed: {exc}") from None
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
        conf = self.directory / "conf"
        (conf / "certs").mkdir(exist_ok=True)
        for name in (_TLS_MAP, _CERT_LIST, acme.CHALLENGE_MAP):
            if not (conf / name).exists():
                self._write(name, "")
        if not (conf / edge_tls.DEFAULT_CERT).exists():
            self._write(edge_tls.DEFAULT_CERT, edge_tls.default_certificate())

    def _check(self, name: str) -> None:
        api = self._engine.client.api
        try:
            exec_id = api.exec_create(
                self.name, ["haproxy", "-c", "-q", "-f", f"{_CONFIG_DIR}/{name}"]
            )["Id"]
            output = api.exec_start(exec_id).decode("utf-8", errors="replace").strip()
            code = api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError as exc:
            raise RouterError(f"checking the edge's new config failed: {exc}") from None
        if code != 0:
            raise RouterError(
                "HAProxy refuses the edge's new config, so the running one keeps serving "
                f"unchanged: {output or f'exit code {code}'}"
            )

    def upgrade(self) -> str:
        """Replace the edge's container (new listeners or image): NOT hitless.

        Connections are refused from the old container's stop until the new one
        listens, about a second. Routes and certificates go across as files.
        """
        attrs = self._inspect()
        label = ((attrs.get("Config") or {}).get("Labels") or {}).get(_LISTEN_LABEL, "")
        self._check_free(label)
        if attrs and (attrs.get("State") or {}).get("Running"):
            with contextlib.suppress(DockrollError):
                self._persist()
        self._resolve_image()  # before anything stops: a missing image changes nothing
        with contextlib.suppress(docker.errors.NotFound):
            self._engine.client.api.remove_container(self.name, force=True)
        return self._start()

    def _check_free(self, label: str) -> None:
        """RouterError, before anything stops, when a new listener is taken on this host."""
        if not self._engine.endpoint.startswith("unix://"):
            return  # another host: the engine says so when the container starts
        try:
            held = {entry.split()[0] for entry in json.loads(label or "[]")}
        except ValueError:
            held = set()
        for address in self.listeners:
            if str(address) in held:
                continue
            family = socket.AF_INET6 if address.ip.version == 6 else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((address.host, address.port))
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

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._engine.client.api.remove_container(self.name, force=True)

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


def _listed(label: str) -> str:
    try:
        return ", ".join(json.loads(label or "[]")) or "nothing"
    except ValueError:
        return label


def route_flags(table: Mapping[str, str], hostname: str) -> tuple[bool, int]:
    """``tls.map``'s entry of ``hostname`` as (redirect, HSTS seconds)."""
    redirect, _, hsts = table.get(hostname, "0-0").partition("-")
    return redirect == "1", int(hsts or 0)
