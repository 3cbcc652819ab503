"""The router of a Swarm environment as a global Swarm service on the ingress nodes.

With ``swarm.router: service`` an environment's router is not one container
on the manager but a ``global`` Swarm service constrained to the nodes
labelled for ingress (``node.labels.dockroll.ingress==true`` unless
configured): one HAProxy task per ingress node, its listeners and metrics
port published on that node's own ports (``host`` mode: no routing mesh, no
IPVS), on the environment's overlay network, its ``haproxy.cfg`` from a Swarm
config named by a hash of its content (a changed config is a new config and a
service update, one node at a time). Servers are declared and resolved by DNS
as :class:`~dockroll.router.swarm.SwarmRouter` does.

**TLS listeners** take their certificate from files (``router.tls.cert`` and
``key``): the bundle is a Swarm secret mounted where a router container keeps
it, so the config and the runtime API commands are the same in both modes. A
replaced certificate is a new secret and a service update, node by node, and a
task that restarts comes back with it; a key that is not the certificate's own
is refused before the service changes. Certificates from an ACME CA and
hostnames on the edge are not supported in this mode.

**Every task gets every change.** Each runtime command is sent to every
running task (:class:`FanOut`); a refusal by any task is the command's
refusal, so weights, drains and canary shares are the same on every ingress
node. Reads cover all tasks: ``show stat`` counters are summed over the tasks;
the request log is the service's log, which the manager merges from every node.

**Reaching a task on another node.** The manager's engine cannot exec into a
container on a worker, and an unauthenticated admin socket on the network is
not acceptable. Each task's config has a TCP frontend on the overlay network
(:data:`ADMIN_PORT`, never published) that terminates TLS and *requires* a
client certificate signed by the environment's own CA; its backend is the
task's unix stats socket. (HAProxy 2.6 ignores ``ssl``/``verify`` on a
``stats socket ipv4@`` line and answers in plain text, so the CLI socket itself
is never put on the network.) dockroll keeps the CA, the server and the client
certificate in the state dir (0600); the service gets the CA and the server
certificate as Swarm secrets. dockroll reaches each task's overlay address
through a forward carried over the manager's engine connection by a small
relay container on the manager (:class:`~dockroll.router.transport.ExecForward`)
and speaks TLS end to end with its client certificate.

**A task that (re)starts** (its container killed, a node reboot, a service
update) starts from the state its node's previous task kept: each task's
server-state file is in a volume of its node, kept up to date by a loop its
master runs (:mod:`dockroll.router.state_keeper`), so it serves at once with
the servers, weights and drain states it last had. A task on a node that never
ran one has none and answers 503 until restored, and a task that was down
while a change was made starts from the state before it. ``ensure`` detects
both, and :meth:`SwarmServiceRouter.restore` (run under the environment's
lock, as for a restarted router container) gives every task whose servers
differ from those of the task that has run longest that task's servers, or
the caller's servers when it has none.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockroll.engine.port import Engine, RunRequest
from dockroll.errors import DockrollError, EngineError, RouterError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.router import hold as holding
from dockroll.router import state_keeper as keeping
from dockroll.router import tls
from dockroll.router.haproxy import (
    _CONFIG_DIR,
    BACKEND,
    METRICS_PORT,
    OFFICIAL_IMAGE,
    PUBLIC_PORT,
    HaproxySettings,
    RouterDescription,
    RouterReload,
    render_config,
)
from dockroll.router.port import RouterInfo, ServerSpec
from dockroll.router.runtime_api import AdminAddress, RuntimeApi, refusal
from dockroll.router.swarm import RESOLVER, SwarmRouter, resolvers_section
from dockroll.router.transport import ExecForward

if TYPE_CHECKING:
    from dockroll.engine.swarm import SwarmEngine
    from dockroll.engine.swarm_global import GlobalService, GlobalTask

__all__ = [
    "ADMIN_PORT",
    "DEFAULT_INGRESS",
    "READY_PATH",
    "AdminPki",
    "FanOut",
    "SwarmServiceRouter",
    "TlsTransport",
    "admin_lines",
    "merge_stat",
]

ADMIN_PORT = 9443
"""The TLS admin frontend's port on each task's overlay address (never published)."""
DEFAULT_INGRESS = ("node.labels.dockroll.ingress==true",)
_SOCKET = "/var/lib/haproxy/admin.sock"
_SERVER_PEM = "/run/secrets/dockroll-admin.pem"
_CA_PEM = "/run/secrets/dockroll-admin-ca.pem"
_SITE_PEM = f"{_CONFIG_DIR}/{tls.CERT_FILE}"
_SERVER_NAME = "dockroll-router"
_RELAY_SUFFIX = "-relay"
_DRAIN = 0x08  # SRV_ADMF_FDRAIN in srv_admin_state
_POLL = 0.25
# `show stat` columns that count: summed over the tasks. Others come from the first task.
_SUMMED = frozenset(
    {
        "qcur", "scur", "stot", "bin", "bout", "dreq", "dresp", "ereq", "econ", "eresp",
        "wretr", "wredis", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
        "hrsp_other", "req_tot", "cli_abrt", "srv_abrt", "lbtot",
    }
)  # fmt: skip
_AVERAGED = frozenset({"qtime", "ctime", "rtime", "ttime"})


def admin_lines(*, port: int = ADMIN_PORT, socket_path: str = _SOCKET) -> list[str]:
    """A TCP frontend that admits only clients with the environment's certificate and
    passes their connection to the task's own unix stats socket."""
    return [
        "frontend dockroll_admin",
        "    mode tcp",
        "    no log",
        f"    bind :{port} ssl crt {_SERVER_PEM} ca-file {_CA_PEM} verify required",
        "    default_backend dockroll_admin",
        "",
        "backend dockroll_admin",
        "    mode tcp",
        f"    server cli unix@{socket_path}",
        "",
    ]


READY_PATH = "/ready"
"""On each task's metrics port: 200 while a server of the backend can take requests, else 503."""


def ready_lines() -> list[str]:
    """Rules of the metrics frontend answering :data:`READY_PATH` for a load balancer."""
    return [
        f"    http-request return status 200 content-type text/plain string ready "
        f"if {{ path {READY_PATH} }} {{ nbsrv({BACKEND}) gt 0 }}",
        f"    http-request return status 503 content-type text/plain string no-server "
        f"if {{ path {READY_PATH} }}",
    ]


def merge_stat(answers: Sequence[str]) -> str:
    """Several ``show stat`` answers (CSV) as one: counters summed, averages averaged."""
    if len(answers) == 1:
        return answers[0]
    header = ""
    merged: dict[tuple[str, str], dict[str, str]] = {}
    averaged: dict[tuple[str, str], dict[str, list[float]]] = {}
    order: list[tuple[str, str]] = []
    for answer in answers:
        lines = answer.splitlines()
        if not lines or not lines[0].startswith("# "):
            continue
        header = header or lines[0]
        for row in csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]]))):
            key = (row.get("pxname", ""), row.get("svname", ""))
            if key not in merged:
                merged[key] = dict(row)
                averaged[key] = {}
                order.append(key)
            else:
                kept = merged[key]
                for column in _SUMMED:
                    if row.get(column):
                        kept[column] = str(_int(kept.get(column)) + _int(row[column]))
            for column in _AVERAGED:
                if row.get(column):
                    averaged[key].setdefault(column, []).append(float(row[column]))
    if not header:
        return answers[0]
    for key, columns in averaged.items():
        for column, values in columns.items():
            merged[key][column] = str(round(sum(values) / len(values)))
    names = header[2:].split(",")
    out = io.StringIO()
    out.write(header + "\n")
    writer = csv.writer(out, lineterminator="\n")
    for key in order:
        writer.writerow([merged[key].get(name, "") or "" for name in names])
    return out.getvalue()


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


class FanOut:
    """A runtime API transport that sends each line to every task of the router.

    ``targets`` lists the tasks to reach now, as (name, transport). A change
    reaches every task or the exchange fails naming the task that did not
    answer; the first refusal is the answer. ``show stat`` is merged over all
    tasks; any other read is the first task's answer.
    """

    def __init__(self, targets: Callable[[], Sequence[tuple[str, Callable[[str], str]]]]) -> None:
        self._targets = targets

    def __call__(self, line: str) -> str:
        targets = list(self._targets())
        if not targets:
            raise OSError(0, "no router task runs")
        commands = [c.strip() for c in line.split(";")]
        reads = all(c.startswith("show ") for c in commands)
        if reads and not all(c.startswith("show stat") for c in commands):
            return self._send(targets[0], line)
        answers = [self._send(target, line) for target in targets]
        if reads:
            return merge_stat(answers)
        return next((a for a in answers if refusal(a)), answers[0])

    @staticmethod
    def _send(target: tuple[str, Callable[[str], str]], line: str) -> str:
        name, send = target
        try:
            return send(line)
        except OSError as exc:
            raise OSError(0, f"router task {name}: {exc.strerror or exc}") from None


class TlsTransport:
    """One exchange per connection with a task's admin frontend, TLS with a client cert."""

    def __init__(
        self, connect: Callable[[], socket.socket], context: ssl.SSLContext, timeout: float
    ) -> None:
        self._connect = connect
        self._context = context
        self._timeout = timeout

    def __call__(self, line: str) -> str:
        raw = self._connect()
        raw.settimeout(self._timeout)
        try:
            with self._context.wrap_socket(raw, server_hostname=_SERVER_NAME) as conn:
                conn.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    try:
                        chunk = conn.recv(65536)
                    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
        except ssl.SSLError as exc:
            raise OSError(0, f"TLS with the router task failed: {exc.reason or exc}") from None
        except TimeoutError:
            raise OSError(0, f"no answer within {self._timeout:g}s") from None
        finally:
            raw.close()
        return b"".join(chunks).decode("utf-8", errors="replace")


class AdminPki:
    """The environment's CA, the tasks' server certificate and dockroll's client certificate."""

    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server(self) -> Path:
        return self.directory / "server.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    def ensure(self) -> None:
        """Generate what is missing (a new CA re-issues both certificates)."""
        if all(p.is_file() for p in (self.ca, self.server, self.client_cert, self.client_key)):
            return
        from cryptography import x509  # noqa: PLC0415 - only environments that need it
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

        now = _dt.datetime.now(_dt.UTC)

        def name(common: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name(f"dockroll router CA {self.owner}")
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )

        def issue(common: str, usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
            key = ec.generate_private_key(ec.SECP256R1())
            builder = (
                x509.CertificateBuilder()
                .subject_name(name(common))
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(minutes=5))
                .not_valid_after(now + _dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            )
            if usage == ExtendedKeyUsageOID.SERVER_AUTH:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.DNSName(_SERVER_NAME)]), critical=False
                )
            cert = builder.sign(ca_key, hashes.SHA256())
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return cert.public_bytes(serialization.Encoding.PEM), key_pem

        server_cert, server_key = issue(_SERVER_NAME, ExtendedKeyUsageOID.SERVER_AUTH)
        client_cert, client_key = issue("dockroll", ExtendedKeyUsageOID.CLIENT_AUTH)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        for path, data in (
            (self.ca, ca.public_bytes(serialization.Encoding.PEM)),
            (self.server, server_cert + server_key),
            (self.client_cert, client_cert),
            (self.client_key, client_key),
        ):
            tmp = path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.chmod(0o600)
            tmp.write_bytes(data)
            tmp.replace(path)

    def context(self) -> ssl.SSLContext:
        """A client context trusting only the CA, presenting dockroll's certificate."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@dataclass(frozen=True)
class RouterTask:
    """A router task as ``status`` shows it."""

    node: str
    state: str
    address: str
    error: str


class SwarmServiceRouter(SwarmRouter):
    """The router of a Swarm environment run as a global service on its ingress nodes."""

    # Its tasks are Swarm's, one per ingress node: no holder, no hand-over.
    network_holder = False

    def __init__(
        self,
        engine: Engine,
        *,
        service: str,
        environment: str,
        port: int,
        replica_names: Sequence[str],
        replica_port: int,
        ingress: Sequence[str] = DEFAULT_INGRESS,
        settings: HaproxySettings | None = None,
        state_root: Path | None = None,
        progress: ProgressCallback = discard,
    ) -> None:
        super().__init__(
            engine,
            service=service,
            environment=environment,
            port=port,
            replica_names=replica_names,
            replica_port=replica_port,
            settings=settings,
            state_root=state_root,
            progress=progress,
        )
        if self.settings.acme or self.settings.edge:
            raise RouterError(
                f"router of {self.owner}: `swarm.router: service` does not support "
                + (
                    "certificates from an ACME CA"
                    if self.settings.acme
                    else "hostnames on the edge"
                )
                + " yet",
                hint="give its TLS listeners a certificate from files (router.tls.cert and "
                "router.tls.key)"
                if self.settings.acme
                else "serve the environment on its own listeners (router.listen), "
                "or use `swarm.router: container` for it",
            )
        self.ingress = tuple(ingress) or DEFAULT_INGRESS
        self.pki = AdminPki(self.directory / "pki", self.owner)
        self._forwards: dict[str, ExecForward] = {}
        self._only: str | None = None
        self._unanswered = ""
        self._tasks_lock = threading.Lock()

    # -- what the tasks run ----------------------------------------------------

    def _render(self, fingerprint: str | None, servers: Sequence[str] = ()) -> str:
        check = self.settings.check
        lines = [
            f"    server {name} {name}:{self.replica_port} resolvers {RESOLVER} "
            "resolve-prefer ipv4 init-addr none weight 0 "
            f"check inter {check.interval_ms} fall {check.fall} rise {check.rise} disabled"
            for name in self.replica_names
        ]
        base = render_config(
            service=self.service,
            environment=self.environment,
            settings=self.settings,
            admin_socket=True,
            fingerprint=fingerprint,
            servers=lines,
            admin_path=_SOCKET,
            state_file=keeping.STATE_FILE,
        )
        # Each node tells a load balancer in front whether it can serve: a task that
        # started without its node's state has no server in rotation until it is restored.
        lines = base.split("\n")
        at = lines.index("frontend metrics") + 1
        lines[at:at] = ready_lines()
        # The keeper is a program of the master: master-worker mode, said in the config.
        at = lines.index("global") + 1
        lines[at:at] = ["    master-worker"]
        return "\n".join(
            [
                *lines,
                *resolvers_section(),
                *admin_lines(),
                *keeping.program(_CONFIG_DIR, _SOCKET, BACKEND, self._state_map),
                "",
            ]
        )

    def _swarm(self) -> SwarmEngine:
        from dockroll.engine.swarm import SwarmEngine  # noqa: PLC0415 - Swarm environments

        if not isinstance(self._engine, SwarmEngine):
            raise RouterError(
                f"router of {self.owner}: `swarm.router: service` needs the environment's "
                "engine to be a Swarm manager",
                hint="add a `swarm:` section and name a manager in `engine:`",
            )
        return self._engine

    def service_spec(self) -> GlobalService:
        """The global service the tasks run."""
        from dockroll.engine.swarm_global import GlobalService  # noqa: PLC0415

        ports = {address.port: PUBLIC_PORT + i for i, address in enumerate(self.listeners)}
        ports[self.metrics_address.port] = METRICS_PORT
        config = self._render(self.config_fingerprint())
        configs = {
            f"{_CONFIG_DIR}/haproxy.cfg": config.encode(),
            f"{_CONFIG_DIR}/{holding.STATE_MAP}": holding.render_state({}).encode(),
            f"{_CONFIG_DIR}/{holding.LUA_FILE}": holding.hold_script(self._state_map).encode(),
            f"{_CONFIG_DIR}/{keeping.SCRIPT_FILE}": keeping.keeper_script().encode(),
        }
        return GlobalService(
            name=self.container_name,
            image=self._image(),
            network=self.network,
            constraints=self.ingress,
            ports=ports,
            configs=configs,
            secrets={
                _SERVER_PEM: self.pki.server.read_bytes(),
                _CA_PEM: self.pki.ca.read_bytes(),
                **self._certificate_secret(),
            },
            labels={"dockroll.service": self.service, "dockroll.environment": self.environment},
            volumes={self.state_volume: keeping.STATE_DIR},
        )

    def _certificate_secret(self) -> dict[str, bytes]:
        """The TLS listeners' certificate and key, a Swarm secret where HAProxy reads them.

        At the path a router container uses (:data:`_SITE_PEM`): the same config and
        the same runtime API commands serve both. Checked first: a key that is not the
        certificate's own is refused before the service changes.
        """
        if not self.settings.tls_listeners:
            return {}
        pem = self._certificate()
        tls.check_pair(pem, self.owner, self._certificate_source, self._key_source)
        return {_SITE_PEM: pem.encode()}

    def sync_certificate(self) -> bool:
        """Load the certificate files live into every task that serves another one.

        The files are checked first (nothing changes when the key is not the
        certificate's). A task that restarts reads the service's secret, which
        :meth:`ensure` replaces with a new one, a service update node by node.
        """
        if not self.settings.tls_listeners:
            return False
        self._certificate_secret()
        changed = False
        for _, address in self._running_tasks():
            with self._task(address):
                changed = super().sync_certificate() or changed
        return changed

    @property
    def state_volume(self) -> str:
        """The volume each ingress node keeps its task's server state in.

        Named after the environment's admin CA too: an environment brought down and
        up again gets a new CA, so a new volume, never the state of one before it."""
        digest = hashlib.sha256(self.pki.ca.read_bytes()).hexdigest()[:12]
        return f"{self.container_name}-state-{digest}"

    # -- lifecycle ---------------------------------------------------------------

    def ensure(
        self,
        servers: Sequence[ServerSpec] = (),
        *,
        reload: bool = True,
        restore_running: bool = True,
    ) -> RouterInfo:
        from dockroll.engine.swarm_global import (  # noqa: PLC0415
            deploy_global,
            matching_nodes,
            prune_objects,
        )

        swarm = self._swarm()
        self._engine.ping()
        self._ensure_network()
        with self._engine_call("listing the ingress nodes"):
            nodes = matching_nodes(swarm, self.ingress)
        usable = [n for n in nodes if n.ready and n.active]
        if not usable:
            wanted = " and ".join(self.ingress)
            label = next(
                (c.split("==")[0].removeprefix("node.labels.") for c in self.ingress if "==" in c),
                "dockroll.ingress",
            )
            raise RouterError(
                f"router of {self.owner}: no ready, active Swarm node matches {wanted}, so the "
                "router service would run nowhere",
                hint=f"label the ingress nodes on the manager: `docker node update --label-add "
                f"{label}=true <node>`, or set swarm.ingress to constraints that match",
            )
        self.pki.ensure()
        spec = self.service_spec()
        with self._engine_call(f"deploying service {self.container_name}"):
            outcome = deploy_global(swarm, spec)
        if outcome != "unchanged":
            self._progress(Progress("router", f"{outcome} service {self.container_name}"))
        relay = self._ensure_relay()
        self._wait_tasks({n.id for n in usable}, updated=outcome == "updated")
        if outcome == "updated":
            with contextlib.suppress(EngineError):
                prune_objects(swarm, self.container_name)
        stale = self._stale(self._views(), servers)
        restored: tuple[str, ...] = ()
        if stale and (outcome == "created" or restore_running):
            restored = self.restore(servers)
        elif stale:
            self._progress(
                Progress(
                    "router",
                    "; ".join(stale.values()) + ": restored under the environment's lock",
                )
            )
        first = self.listeners[0]
        return RouterInfo(
            environment=self.environment,
            container=self.container_name,
            container_id=relay,
            image=self._image(),
            network=self.network,
            url=f"http://{first.local_host}:{first.port}",
            metrics_url=f"http://{self.metrics_address.local_host}:{self.metrics_port}/metrics",
            admin=str(self.admin),
            created=outcome == "created",
            restored=restored,
            reloaded=outcome == "updated",
        )

    def reload(self, servers: Sequence[ServerSpec] = ()) -> RouterReload:
        """A changed config is a new Swarm config and a service update, one node at a time."""
        started = time.monotonic()
        info = self.ensure(servers)
        return RouterReload(
            previous_worker=0,
            worker=0,
            carried=(),
            restored=info.restored,
            seconds=time.monotonic() - started,
        )

    def upgrade(self, servers: Sequence[ServerSpec] = ()) -> RouterInfo:
        return self.ensure(servers)

    def remove(self) -> None:
        """Remove the service, its configs and secrets, the relay and dockroll's certificates."""
        import shutil  # noqa: PLC0415

        from dockroll.engine.swarm_global import remove_global  # noqa: PLC0415

        self.close()
        with self._engine_call(f"removing {self.relay_name}"):
            self._engine.remove(self.relay_name, grace=0)
        with self._engine_call(f"removing service {self.container_name}"):
            remove_global(self._swarm(), self.container_name)
        shutil.rmtree(self.directory, ignore_errors=True)

    def close(self) -> None:
        for forward in self._forwards.values():
            forward.__exit__(None, None, None)
        self._forwards.clear()

    def describe(self) -> RouterDescription:
        tasks = self.tasks()
        running = [t for t in tasks if t.state == "running"]
        if not tasks:
            verdict = "missing: the next deploy starts it"
        elif len(running) == len(tasks):
            verdict = f"{len(tasks)} tasks running"
        else:
            verdict = "not every task runs"
        return RouterDescription(
            container=self.container_name,
            container_id="",
            image=self._image(),
            started_at="",
            running=bool(running),
            worker=None,
            listeners=tuple(str(a) for a in self.listeners),
            metrics=str(self.metrics_address),
            admin=str(self.admin),
            config="",
            wanted_config=self.config_fingerprint(),
            verdict=verdict
            + ": "
            + (
                ", ".join(
                    f"{t.node} {t.state}" + (f" ({t.error})" if t.error else "") for t in tasks
                )
                or "none"
            ),
        )

    def tasks(self) -> list[RouterTask]:
        """The router's current task on each node (the newest one per node)."""
        from dockroll.engine.swarm_global import global_tasks  # noqa: PLC0415

        with self._engine_call(f"listing the tasks of {self.container_name}"):
            found = global_tasks(self._swarm(), self.container_name, self.network)
        seen: set[str] = set()
        tasks = []
        for task in found:
            if task.node_id in seen:
                continue
            seen.add(task.node_id)
            tasks.append(RouterTask(task.node, task.state, task.address, task.error))
        return sorted(tasks, key=lambda t: t.node)

    # -- the runtime API of every task ---------------------------------------------

    @property
    def relay_name(self) -> str:
        return f"{self.container_name}{_RELAY_SUFFIX}"

    @property
    def admin(self) -> AdminAddress:
        return AdminAddress(host="tasks", port=ADMIN_PORT, container=self.relay_name)

    @property
    def api(self) -> RuntimeApi:
        return RuntimeApi(
            self.admin,
            owner=self.owner,
            timeout=self.settings.api_timeout,
            transport=FanOut(self._targets),
        )

    def _ensure_relay(self) -> str:
        with self._engine_call(f"inspecting {self.relay_name}"):
            found = self._engine.container(self.relay_name)
        if found is not None and found.running:
            return found.id
        if found is not None:
            with self._engine_call(f"removing {self.relay_name}"):
                self._engine.remove(found.id, grace=0)
        image = self._image()
        with self._engine_call(f"pulling {image} for {self.relay_name}"):
            if self._engine.image(image) is None:
                self._engine.pull(image, self._progress)
        request = RunRequest(
            image,
            name=self.relay_name,
            labels={"dockroll.router.relay-of": self.container_name},
            entrypoint=["sleep"],
            command=["infinity"],
            network=self.network,
            restart_policy="unless-stopped",
            stop_signal="SIGKILL",
        )
        return self._run(request).id

    def _running_tasks(self) -> list[tuple[str, str]]:
        """(node, overlay address) of each running task, the longest-running first."""
        from dockroll.engine.swarm_global import global_tasks  # noqa: PLC0415

        with self._engine_call(f"listing the tasks of {self.container_name}"):
            found = global_tasks(self._swarm(), self.container_name, self.network)
        running = [t for t in found if t.running and t.address]
        return [(t.node, t.address) for t in sorted(running, key=lambda t: (t.created, t.node))]

    def _targets(self) -> list[tuple[str, Callable[[str], str]]]:
        tasks = self._running_tasks()
        if self._only is not None:
            tasks = [t for t in tasks if t[1] == self._only]
        return [(f"{node} ({address})", self._transport(address)) for node, address in tasks]

    def _transport(self, address: str) -> Callable[[str], str]:
        with self._tasks_lock:
            forward = self._forwards.get(address)
            if forward is None:
                forward = ExecForward(self._engine, self.relay_name, address, ADMIN_PORT)
                forward.__enter__()
                self._forwards[address] = forward
        port = forward.local_port
        return TlsTransport(
            lambda: socket.create_connection(("127.0.0.1", port), timeout=5),
            self.pki.context(),
            self.settings.api_timeout,
        )

    @contextlib.contextmanager
    def _task(self, address: str) -> Iterator[None]:
        """Send the runtime API's commands to the task at ``address`` only, meanwhile."""
        self._only = address
        try:
            yield
        finally:
            self._only = None

    def _task_servers(self, task: tuple[str, str]) -> dict[str, dict[str, str]]:
        """The servers task ``task`` uses (not in forced maintenance), by name."""
        with self._task(task[1]):
            return {row["srv_name"]: row for row in self._state_rows() if row.get("srv_name")}

    def _wait_tasks(self, nodes: set[str], *, updated: bool) -> list[tuple[str, str]]:
        """Every ingress node's task running the service's current spec and answering;
        RouterError naming a failed one.

        After a service update, Swarm replaces the tasks one node at a time: a node's
        old task still runs, and a change sent to it would be lost with it. A task
        refused a port its node already uses fails at once: Swarm would only try again
        and again."""
        from dockroll.engine.swarm_global import global_tasks  # noqa: PLC0415

        deadline = time.monotonic() + max(self.settings.start_timeout, 60.0) * (2 if updated else 1)
        while True:
            with self._engine_call(f"listing the tasks of {self.container_name}"):
                found = global_tasks(self._swarm(), self.container_name, self.network)
            newest: dict[str, GlobalTask] = {}
            for task in found:
                newest.setdefault(task.node_id, task)
            running = {
                t.node_id: t
                for t in found
                if t.running and t.current and t.address and t.node_id in nodes
            }
            # The newest task of a node may be the next attempt, its error on the one before.
            erred: dict[str, GlobalTask] = {}
            for task in found:
                if task.error and task.node_id not in running:
                    erred.setdefault(task.node_id, task)
            failed = list(erred.values())
            taken = [t for t in failed if _port_taken(t.error)]
            if set(running) >= nodes:
                pairs = sorted((t.node, t.address) for t in running.values())
                if self._answering(pairs):
                    return pairs
            if taken or time.monotonic() >= deadline:
                detail = "; ".join(
                    [f"{t.node}: {t.error}" for t in taken or failed]
                    + [
                        f"{t.node}: "
                        + (
                            "still runs the previous spec"
                            if t.running and not t.current
                            else t.state
                        )
                        for t in newest.values()
                        if t.node_id not in running and t.node_id not in erred
                    ]
                    + ([f"runtime API of {self._unanswered}"] if self._unanswered else [])
                )
                first = "a port it publishes is taken" if taken else "its task did not start"
                raise RouterError(
                    f"router of {self.owner}: {first} on an ingress node"
                    + (f" ({detail})" if detail else ""),
                    hint="free the port on that node or give the environment other listeners "
                    "(port, router.listen, router.metrics); `docker service ps --no-trunc "
                    f"{self.container_name}` on the manager tells more",
                )
            time.sleep(_POLL * 4)

    def _answering(self, pairs: Sequence[tuple[str, str]]) -> bool:
        for pair in pairs:
            try:
                with self._task(pair[1]):
                    self.api.execute("show info")
            except DockrollError as exc:
                self._unanswered = f"{pair[0]}: {exc.message}"
                return False
        return True

    def restore(self, servers: Sequence[ServerSpec]) -> tuple[str, ...]:
        """Give each task whose servers differ from the reference's the reference's servers.

        The reference is the task that has run longest: it got every change since the
        others started. When it has no servers (it started empty, nothing restored it),
        ``servers``, the caller's view of the environment's replicas, are.
        """
        views = self._views()
        stale = self._stale(views, servers)
        if not stale:
            return ()
        wanted = self._reference(views, servers)
        restored: list[str] = []
        for task, why in stale.items():
            self._progress(Progress("router", f"restoring {why}"))
            view = views[task]
            with self._task(task[1]):
                for name in sorted(set(view) - set(wanted)):
                    target = f"{BACKEND}/{name}"
                    self.api.run(f"set server {target} state maint", f"set weight {target} 0")
                for name, (weight, state) in sorted(wanted.items()):
                    target = f"{BACKEND}/{name}"
                    if view.get(name) == (weight, state):
                        continue
                    if name in view:
                        self.api.run(
                            f"set weight {target} {weight}", f"set server {target} state {state}"
                        )
                    else:
                        self.api.run(
                            f"set weight {target} {weight}",
                            f"set server {target} health down",
                            f"enable health {target}",
                            f"set server {target} state {state}",
                        )
                    restored.append(name)
        return tuple(dict.fromkeys(restored))

    def _views(self) -> dict[tuple[str, str], dict[str, tuple[int, str]]]:
        """Each running task's servers in use, as (weight, ready|drain), longest-running first."""
        views: dict[tuple[str, str], dict[str, tuple[int, str]]] = {}
        for task in self._running_tasks():
            view = {}
            for name, row in self._task_servers(task).items():
                admin = int(row.get("srv_admin_state", "0") or 0)
                view[name] = (
                    int(row.get("srv_uweight", "0") or 0),
                    "drain" if admin & _DRAIN else "ready",
                )
            views[task] = view
        return views

    def _reference(
        self,
        views: dict[tuple[str, str], dict[str, tuple[int, str]]],
        servers: Sequence[ServerSpec],
    ) -> dict[str, tuple[int, str]]:
        oldest = next(iter(views.values()), {})
        if oldest:
            return oldest
        return {s.name: (s.weight, "ready") for s in servers if s.name in self.replica_names}

    def _stale(
        self,
        views: dict[tuple[str, str], dict[str, tuple[int, str]]],
        servers: Sequence[ServerSpec],
    ) -> dict[tuple[str, str], str]:
        """The tasks to restore, each with why."""
        wanted = self._reference(views, servers)
        if not wanted:
            return {}
        reference = next(iter(views), None)
        stale = {}
        for task, view in views.items():
            if view == wanted:
                continue
            if not view:
                stale[task] = f"the router task on {task[0]}, which came back without servers"
            elif task == reference:
                stale[task] = (
                    f"the router task on {task[0]}, which has other servers than the replicas"
                )
            else:
                stale[task] = (
                    f"the router task on {task[0]}, whose servers differ from those of "
                    f"{reference[0] if reference else 'the replicas'}"
                )
        return stale

    def _find_image(self) -> str:
        # Every ingress node pulls it: a stand-in built on one engine would reach none.
        return self.settings.image or OFFICIAL_IMAGE

    def _put_file(self, name: str, text: str) -> None:
        """The tasks' files are Swarm configs and secrets, replaced by :meth:`ensure` only;
        a task's server state is kept on its node by the task itself."""

    def running_config(self) -> str | None:
        return self.config_fingerprint()


def _port_taken(error: str) -> bool:
    """Whether a task's error says a port it publishes is taken on its node.

    Not the scheduler's "host-mode port already in use" on a task it has not placed
    yet: in a service update it counts the ports of the node's old task until that
    one has stopped, and then places the new one.
    """
    lowered = error.lower()
    if "host-mode port already in use" in lowered:
        return False
    return "already in use" in lowered or "port is already allocated" in lowered
