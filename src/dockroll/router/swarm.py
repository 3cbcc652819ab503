"""The router of a Swarm environment: servers that follow their replica's task by DNS.

On a Swarm a replica's task may move to another node (a drained node, a node
that died, a restart elsewhere) and comes back with another address, so a
server pinned to an address would point at nothing. HAProxy 2.6 refuses
``resolvers`` on servers added at runtime, so this router declares every
server an environment's rollouts may use in its config, one per replica name
(``<service>-<env>-<slot>-<n>``), each resolving that name, the replica's
``dnsrr`` service, through Docker's DNS (127.0.0.11) on the overlay network.
They start disabled (weight 0, in maintenance); adding a server through the
runtime API puts it into rotation with its weight, removing it puts it back
into maintenance. Whatever node runs a replica's task, the server follows it
within a second or two, and each replica keeps its own weight, so canary
shares stay exact across nodes.

Servers in forced maintenance are not in use and are left out of what the
router reports; the rest of the runtime API (weights, drain, health, stats,
request log) is :class:`~dockroll.router.haproxy.HaproxyRouter`'s.

Every change of a server is also saved to the router's server-state file,
which HAProxy loads whenever it starts: a router that restarts with its node
(a manager's engine restarted) serves the servers it had, at their weights,
before any dockroll command runs.

As on a remote engine, HAProxy runs in the network namespace of a holder
container (``<container>-net``) that joins the overlay network and publishes
the listeners on the manager, so ``dockroll router upgrade`` starts the new
HAProxy beside the old one and hands the listening sockets over: nothing is
refused (:meth:`~dockroll.router.haproxy.HaproxyRouter.upgrade`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dockroll.engine.port import Engine
from dockroll.errors import RouterError
from dockroll.events import ProgressCallback, discard
from dockroll.router.haproxy import _STATE_FILE, BACKEND, HaproxyRouter, HaproxySettings
from dockroll.router.port import BackendServer, RouterStats
from dockroll.router.runtime_api import (
    backend_counters,
    backend_servers,
    validate_server_name,
)

__all__ = ["RESOLVER", "SLOTS", "SwarmRouter", "resolvers_section", "swarm_replica_names"]

RESOLVER = "docker"
"""The resolvers section every DNS server line names: Docker's embedded DNS."""
SLOTS = ("r", "blue", "green", "stable", "canary")
"""Every slot a strategy names replicas after."""

# srv_admin_state bits (HAProxy's SRV_ADMF_*): forced maintenance marks an unused
# server; "disabled in the config" and "FQDN set at runtime" are only informative.
_FORCED_MAINT = 0x01
_INFORMATIVE = 0x04 | 0x40


def swarm_replica_names(service: str, environment: str, replicas: int) -> tuple[str, ...]:
    """Every name a rollout of ``replicas`` replicas may give one (old and new side by side)."""
    per_slot = 2 * replicas + 2
    return tuple(
        f"{service}-{environment}-{slot}-{index}"
        for slot in SLOTS
        for index in range(1, per_slot + 1)
    )


def resolvers_section(*, hold: float = 1.0) -> list[str]:
    """HAProxy's ``resolvers`` section for Docker's DNS; answers are trusted for ``hold``."""
    seconds = f"{max(1, round(hold))}s"
    return [
        f"resolvers {RESOLVER}",
        "    nameserver docker 127.0.0.11:53",
        "    accepted_payload_size 8192",
        "    resolve_retries 3",
        "    timeout resolve 1s",
        "    timeout retry 1s",
        *(
            f"    hold {status} {seconds}"
            for status in ("valid", "nx", "other", "refused", "timeout", "obsolete")
        ),
        "",
    ]


class SwarmRouter(HaproxyRouter):
    """An environment's router whose servers resolve their replicas' Swarm services."""

    # Like a remote engine's router, HAProxy runs in a holder's network namespace (the
    # holder joins the overlay network), so an image upgrade is a hand-over, new before
    # old. When the manager's engine restarts it starts the holder late (once the Swarm's
    # networks are back) and HAProxy, which cannot join a namespace not there yet, not at
    # all: the holder's watch starts it then (router/holder.py), and it serves the
    # servers of its server-state file before any dockroll command runs.
    # Its config declares a server per replica, restored by the server-state file.
    restores_servers = False

    def __init__(
        self,
        engine: Engine,
        *,
        service: str,
        environment: str,
        port: int,
        replica_names: Sequence[str],
        replica_port: int,
        settings: HaproxySettings | None = None,
        state_root: Path | None = None,
        progress: ProgressCallback = discard,
    ) -> None:
        super().__init__(
            engine,
            service=service,
            environment=environment,
            port=port,
            settings=settings,
            state_root=state_root,
            progress=progress,
        )
        self.replica_names = tuple(validate_server_name(name) for name in replica_names)
        if not 0 < replica_port < 65536:
            raise RouterError(f"router of {self.owner}: port {replica_port} is out of range")
        self.replica_port = replica_port

    # -- config ------------------------------------------------------------------

    def _render(self, fingerprint: str | None, servers: Sequence[str] = ()) -> str:
        # Every server is in the config: the ones a reload carries are among them,
        # and their weights and states go across in the server-state file.
        check = self.settings.check
        lines = [
            f"    server {name} {name}:{self.replica_port} resolvers {RESOLVER} "
            "resolve-prefer ipv4 init-addr none weight 0 "
            f"check inter {check.interval_ms} fall {check.fall} rise {check.rise} disabled"
            for name in self.replica_names
        ]
        return "\n".join([super()._render(fingerprint, lines), *resolvers_section()])

    def _server_line(self, row: Mapping[str, str]) -> str:
        return ""

    # -- servers -----------------------------------------------------------------

    def _state_rows(self) -> list[dict[str, str]]:
        rows = []
        for row in self.api.show_servers_state(BACKEND):
            admin = int(row.get("srv_admin_state", "0") or 0)
            if admin & _FORCED_MAINT:
                continue
            rows.append({**row, "srv_admin_state": str(admin & ~_INFORMATIVE)})
        return rows

    def servers(self) -> tuple[BackendServer, ...]:
        rows = self._state_rows()
        used = {row.get("srv_name", "") for row in rows}
        stats = [r for r in self.api.show_stat() if r.get("svname") in used]
        return backend_servers(stats, rows, BACKEND)

    def stats(self) -> RouterStats:
        rows = self.api.show_stat()
        states = self._state_rows()
        used = {row.get("srv_name", "") for row in states}
        return RouterStats(
            taken_at=datetime.now(UTC),
            backend=backend_counters(rows, BACKEND),
            servers=backend_servers([r for r in rows if r.get("svname") in used], states, BACKEND),
        )

    def add_server(
        self, name: str, address: str, port: int, *, weight: int = 0, check: bool = True
    ) -> None:
        """Put the declared server ``name`` into rotation; it resolves the replica itself
        (``address`` is where its task runs now, and may change)."""
        if validate_server_name(name) not in self.replica_names:
            raise RouterError(
                f"router of {self.owner} declares no server {name}",
                hint=f"its config predates the environment's replicas: `dockroll router reload "
                f"--env {self.environment}` declares the servers they need",
            )
        if port != self.replica_port:
            raise RouterError(
                f"router of {self.owner}: replica {name} listens on {port}, the router's "
                f"servers on {self.replica_port}",
                hint=f"`dockroll router reload --env {self.environment}`",
            )
        target = f"{BACKEND}/{name}"
        commands = [f"set weight {target} {weight}"]
        if check:
            # Down until a check on the resolved task passes, as a server added at runtime.
            commands += [f"set server {target} health down", f"enable health {target}"]
        else:
            commands.append(f"disable health {target}")
        commands.append(f"set server {target} state ready")
        self.api.run(*commands)

        self._save_servers()

    def remove_server(self, name: str, *, timeout: float = 10.0) -> None:
        if validate_server_name(name) not in self.replica_names:
            return
        target = f"{BACKEND}/{name}"
        self.api.run(f"set server {target} state maint", f"set weight {target} 0")
        self._save_servers()

    def _save_servers(self) -> None:
        """What serves now, for the next start of HAProxy (a reload writes its own).

        Called after every change of a server, a hand-over's included (servers restored
        while old and new ran were saved into the old container's file)."""
        self._put_file(_STATE_FILE, self.api.execute(f"show servers state {BACKEND}"))
