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
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors

from dockroll.engine.docker import DockerEngine
from dockroll.errors import DockrollError, RouterError
from dockroll.listeners import ListenAddress
from dockroll.router.hold import parse_map
from dockroll.router.runtime_api import AdminAddress, RuntimeApi
from dockroll.statedir import state_dir

__all__ = ["EDGE_CONTAINER", "EDGE_NETWORK", "EDGE_PORT", "Edge", "render_edge_config"]

EDGE_CONTAINER = "dockroll-edge"
EDGE_NETWORK = "dockroll-edge"
EDGE_PORT = 8090
"""The routers' listener for the edge (PROXY protocol), on the edge network only."""
_PUBLIC_PORT = 8080
_CONFIG_DIR = "/usr/local/etc/haproxy"
_RUN_DIR = "/var/run/dockroll"
_ROUTES = "routes.map"
_OWNERS = "owners.map"
_LISTEN_LABEL = "dockroll.edge.listen"


def edge_names() -> tuple[str, str]:
    """The edge's container and network names (``DOCKROLL_EDGE_NAME`` renames both)."""
    name = os.environ.get("DOCKROLL_EDGE_NAME") or EDGE_CONTAINER
    return name, name


def render_edge_config(listeners: Sequence[ListenAddress]) -> str:
    routes, owners = f"{_CONFIG_DIR}/{_ROUTES}", f"{_CONFIG_DIR}/{_OWNERS}"
    return "\n".join(
        [
            "# dockroll edge: routes by hostname; the routes are the maps, changed at runtime.",
            "global",
            "    log stdout format raw local0 info",
            f"    stats socket {_RUN_DIR}/admin.sock mode 666 level admin expose-fd listeners",
            "    maxconn 8192",
            "    hard-stop-after 30s",
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    option dontlognull",
            "    timeout connect 2s",
            "    timeout client 30s",
            "    timeout server 60s",
            "    timeout http-request 10s",
            "    timeout http-keep-alive 5s",
            "",
            "frontend edge",
            *(f"    bind :{_PUBLIC_PORT + i}" for i in range(len(listeners))),
            '    log-format "dockroll-edge %[var(txn.host)] %ST %Ta"',
            "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
            f"    http-request set-var(txn.route) var(txn.host),map({routes})",
            f"    http-request set-var(txn.owner) var(txn.host),map({owners})",
            "    http-request return status 404 content-type text/plain "
            'string "no site is served under this name here\\n" '
            "unless { var(txn.route) -m found }",
            "    http-request set-header X-Forwarded-Proto http",
            "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
            "    default_backend routers",
            "",
            "backend routers",
            # The server's address is the destination each request sets: its router's.
            "    http-request set-dst var(txn.route)",
            f"    server router 0.0.0.0:{EDGE_PORT} send-proxy-v2",
            "",
        ]
    )


class Edge:
    """The edge of one engine host."""

    def __init__(
        self,
        engine: DockerEngine,
        listeners: Sequence[ListenAddress],
        *,
        image: str,
        state_root: Path | None = None,
        timeout: float = 20.0,
    ) -> None:
        self._engine = engine
        self.listeners = tuple(listeners)
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
    def api(self) -> RuntimeApi:
        return RuntimeApi(
            AdminAddress(path=self.directory / "run" / "admin.sock"), owner="the edge"
        )

    def _label(self) -> str:
        return json.dumps(sorted(str(a) for a in self.listeners))

    def ensure(self) -> str:
        """Start the edge when it is missing; RouterError when it listens elsewhere."""
        client = self._engine.client
        with contextlib.suppress(docker.errors.APIError):
            client.networks.create(self.network, driver="bridge", check_duplicate=True)
        try:
            attrs: dict[str, Any] = client.api.inspect_container(self.name)
        except docker.errors.NotFound:
            attrs = {}
        if attrs and (attrs.get("State") or {}).get("Running"):
            running = ((attrs.get("Config") or {}).get("Labels") or {}).get(_LISTEN_LABEL, "")
            if running != self._label():
                raise RouterError(
                    f"the edge on this engine listens on {', '.join(json.loads(running or '[]'))}; "
                    f"this environment asks for {', '.join(str(a) for a in self.listeners)}",
                    hint="give every environment with hosts the same edge.listen on one engine",
                )
            return str(attrs["Id"])
        if attrs:
            client.api.remove_container(self.name, force=True)
        conf, run = self.directory / "conf", self.directory / "run"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        for path, mode in ((conf, 0o755), (run, 0o777)):
            path.mkdir(exist_ok=True)
            path.chmod(mode)
        (conf / "haproxy.cfg").write_text(render_edge_config(self.listeners), encoding="utf-8")
        for name in (_ROUTES, _OWNERS):
            if not (conf / name).exists():
                (conf / name).write_text("", encoding="utf-8")
        for path in conf.iterdir():
            path.chmod(0o644)
        (run / "admin.sock").unlink(missing_ok=True)
        ports = {f"{_PUBLIC_PORT + i}/tcp": (a.host, a.port) for i, a in enumerate(self.listeners)}
        try:
            container = client.containers.run(
                self._image,
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
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                self.api.execute("show info")
                break
            except DockrollError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        return str(container.id)

    def owners(self) -> dict[str, str]:
        return parse_map(self.api.execute(f"show map {_CONFIG_DIR}/{_OWNERS}"))

    def routes(self) -> dict[str, str]:
        return parse_map(self.api.execute(f"show map {_CONFIG_DIR}/{_ROUTES}"))

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
        routes = self.routes()
        commands = []
        for host in hosts:
            verb = "set" if host in routes else "add"
            commands.append(f"{verb} map {_CONFIG_DIR}/{_ROUTES} {host} {router_ip}")
            verb = "set" if host in owners else "add"
            commands.append(f"{verb} map {_CONFIG_DIR}/{_OWNERS} {host} {owner}")
        if commands:
            self.api.run(*commands)
        self._persist()

    def _persist(self) -> None:
        conf = self.directory / "conf"
        for name, entries in ((_ROUTES, self.routes()), (_OWNERS, self.owners())):
            tmp = conf / f"{name}.tmp"
            tmp.write_text("".join(f"{k} {v}\n" for k, v in sorted(entries.items())))
            tmp.chmod(0o644)
            tmp.replace(conf / name)

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._engine.client.api.remove_container(self.name, force=True)
