"""The traffic port: what dockroll needs from an L7 router, and nothing more.

Adapters implement :class:`Router` (HAProxy's lives in
:mod:`dockroll.router.haproxy`); unit tests of the layers above may use an
in-memory fake. Values here are plain frozen data so strategies and judges can
reason over them without I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

__all__ = [
    "MAX_WEIGHT",
    "BackendServer",
    "Counters",
    "RequestLog",
    "RequestTiming",
    "Router",
    "RouterInfo",
    "RouterStats",
    "ServerHealth",
    "ServerSpec",
    "ServerState",
    "traffic_shares",
    "weights_for_shares",
]

MAX_WEIGHT = 256
"""The largest weight a server can carry (HAProxy's limit)."""


class ServerState(StrEnum):
    """The administrative state the operator (dockroll) set on a server."""

    READY = "ready"
    """Takes new requests according to its weight."""
    DRAIN = "drain"
    """Takes no new requests; requests in flight finish."""
    MAINT = "maint"
    """Out of the backend; the only state a server may be deleted from."""


class ServerHealth(StrEnum):
    """What the router's own health checks say about a server."""

    UP = "up"
    DOWN = "down"
    """Failing checks, or not checked successfully yet."""
    NO_CHECK = "no check"
    """Not checked: the router trusts it."""


@dataclass(frozen=True)
class ServerSpec:
    """A server the caller wants in the backend."""

    name: str
    address: str
    """IPv4 address of the container on the environment's network."""
    port: int
    weight: int = 0
    check: bool = True


@dataclass(frozen=True, kw_only=True)
class Counters:
    """Traffic counters of a server or of the whole backend, as the router reports them.

    Totals only grow (until the router restarts); compare two snapshots to get rates.
    """

    current_sessions: int = 0
    queued: int = 0
    total_sessions: int = 0
    total_requests: int = 0
    http_1xx: int = 0
    http_2xx: int = 0
    http_3xx: int = 0
    http_4xx: int = 0
    http_5xx: int = 0
    http_other: int = 0
    connection_errors: int = 0
    response_errors: int = 0
    retries: int = 0
    redispatches: int = 0
    response_time_ms: float = 0.0
    """Average time to the first response byte over the last 1024 requests."""
    total_time_ms: float = 0.0
    """Average total session time over the last 1024 requests."""
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True, kw_only=True)
class BackendServer(Counters):
    """One server of the environment's backend, with its state and counters."""

    name: str
    address: str
    port: int
    weight: int
    state: ServerState
    health: ServerHealth
    check_status: str = ""
    """The router's last check result (HAProxy's ``L7OK``, ``L4CON``, ``INI`` …)."""

    @property
    def takes_traffic(self) -> bool:
        """Whether new requests can reach this server now."""
        return (
            self.state is ServerState.READY
            and self.health is not ServerHealth.DOWN
            and self.weight > 0
        )


@dataclass(frozen=True)
class RouterStats:
    """A snapshot of the router's counters, for analysis."""

    taken_at: datetime
    backend: Counters
    """The whole backend, including requests answered 503 because no server could take them."""
    servers: tuple[BackendServer, ...]

    def server(self, name: str) -> BackendServer | None:
        return next((s for s in self.servers if s.name == name), None)


@dataclass(frozen=True)
class RequestTiming:
    """One request the router answered, as its request log tells it."""

    at_ns: int
    """When it was logged (at its end), by the engine's clock, in nanoseconds since the epoch."""
    server: str
    """The server that answered; ``<NOSRV>`` when none could take it."""
    status: int
    """The HTTP status sent to the client (``-1`` when none was)."""
    response_ms: float | None
    """Time from sending the request to the server until its response headers came back;
    None when no response came (connection error, timeout, no server)."""
    total_ms: float
    """The request's whole active time in the router."""


@dataclass(frozen=True)
class RequestLog:
    """The requests logged after a cursor, and the cursor to continue from."""

    requests: tuple[RequestTiming, ...]
    cursor: int
    """The newest log timestamp seen (engine clock, ns): pass it as ``after`` next time."""
    skipped: int = 0
    """Log lines that were not request lines (other messages, lines cut short)."""


@dataclass(frozen=True)
class RouterInfo:
    """Where an environment's router runs and how to reach it."""

    environment: str
    container: str
    """Container name (``dockroll-router-<service>-<environment>``)."""
    container_id: str
    image: str
    network: str
    url: str
    """Where clients send requests, e.g. ``http://127.0.0.1:8080``."""
    metrics_url: str
    """HAProxy's Prometheus exporter."""
    admin: str
    """The runtime API: ``unix:<path>`` or ``tcp:<host>:<port>``."""
    created: bool
    """True when this call started the router (first time, or after it went missing)."""
    restored: tuple[str, ...] = field(default=())
    """Servers this call added because the backend lacked them."""
    reloaded: bool = False
    """True when this call applied a changed config by a hitless reload."""
    reload_pending: bool = False
    """The running router's config is outdated and the caller asked not to reload it."""
    outdated: str = ""
    """Why the running router needs a new container (image, listeners), and the command
    that replaces it; empty when it does not."""
    replaced: str = ""
    """How an upgrade moved it to a new container: ``hitless`` (new before old),
    ``migrate`` (once, from a router an older dockroll started), ``listeners`` (new
    published listeners), ``replace`` (a remote engine) or ``start``; empty otherwise."""


class Router(Protocol):
    """The operations dockroll performs on an environment's router.

    Every change is live: no restart, no reload, no dropped connection. The
    router does not stop anyone from weighting every server to zero; callers
    keep "the router never points at nothing" and can check it with
    :func:`traffic_shares` over :meth:`servers`.
    """

    def ensure(self, servers: Sequence[ServerSpec] = ()) -> RouterInfo:
        """Start the router if it is missing, then add each of ``servers`` it lacks.

        Servers it already has are left as they are. A router that had to be
        (re)created starts with an empty backend, so pass the servers that
        should be there.
        """
        ...

    def servers(self) -> tuple[BackendServer, ...]: ...

    def add_server(
        self, name: str, address: str, port: int, *, weight: int = 0, check: bool = True
    ) -> None:
        """Add a ready server; with ``check`` it counts as down until its first check passes."""
        ...

    def set_weight(self, name: str, weight: int) -> None: ...

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Change several weights in one exchange with the router, raises before cuts."""
        ...

    def set_ready(self, name: str) -> None:
        """Put a drained or disabled server back into rotation."""
        ...

    def drain(self, name: str) -> None:
        """Stop sending new requests to ``name``; requests in flight finish."""
        ...

    def wait_drained(self, name: str, timeout: float) -> BackendServer:
        """Wait until ``name`` has no session or queued request; RouterError after ``timeout``."""
        ...

    def wait_healthy(self, name: str, timeout: float) -> BackendServer:
        """Wait until the router's checks see ``name`` up; RouterError after ``timeout``."""
        ...

    def remove_server(self, name: str, *, timeout: float = 10.0) -> None:
        """Take ``name`` out of the backend and delete it once its last connection closed."""
        ...

    def stats(self) -> RouterStats: ...

    def request_log(self, after: int | None) -> RequestLog:
        """Every request the router logged after the cursor ``after``.

        ``None`` reads nothing and returns the cursor of now (the engine's
        clock), to start from. A router that was restarted or recreated in
        between still answers: its log is cut by time, not by position.
        """
        ...

    def remove(self) -> None:
        """Stop and remove the environment's router; missing is not an error."""
        ...

    def hold(self, until: datetime) -> None:
        """Make every new request wait at the router until :meth:`release`; 503 past ``until``."""
        ...

    def release(self) -> None:
        """Let held requests, and every new one, flow again."""
        ...


def traffic_shares(servers: Iterable[BackendServer]) -> dict[str, float]:
    """The share (0..1) of new requests each server receives, from weights and states.

    All zeros means the router points at nothing and answers 503.
    """
    servers = list(servers)
    total = sum(s.weight for s in servers if s.takes_traffic)
    return {s.name: (s.weight / total if total and s.takes_traffic else 0.0) for s in servers}


def weights_for_shares(shares: Mapping[str, float], *, total: int = 100) -> dict[str, int]:
    """Integer weights summing to ``total`` that split traffic as ``shares`` says.

    ``shares`` are relative (percentages, fractions, anything non-negative);
    rounding uses largest remainders so ``{"new": 1, "old": 2}`` becomes
    ``{"new": 33, "old": 67}`` and no server with a non-zero share ends at zero
    unless ``total`` is too small to give each one a unit.
    """
    if not 0 < total <= MAX_WEIGHT:
        raise ValueError(f"total weight must be between 1 and {MAX_WEIGHT}, not {total}")
    if any(not math.isfinite(v) or v < 0 for v in shares.values()):
        raise ValueError(f"shares must be finite and non-negative: {dict(shares)}")
    whole = sum(shares.values())
    if whole <= 0:
        raise ValueError("at least one share must be positive")
    exact = {name: value * total / whole for name, value in shares.items()}
    weights = {name: math.floor(value) for name, value in exact.items()}
    left = total - sum(weights.values())
    by_remainder = sorted(exact, key=lambda n: (-(exact[n] - weights[n]), n))
    for name in by_remainder[:left]:
        weights[name] += 1
    # A server that should get traffic must not be starved by rounding.
    for name, value in shares.items():
        if value > 0 and weights[name] == 0:
            donor = max(weights, key=lambda n: (weights[n], n))
            if weights[donor] > 1:
                weights[donor] -= 1
                weights[name] = 1
    return weights
