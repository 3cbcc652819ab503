"""In-memory fakes of the Engine and Router ports for unit tests of the rollout executor.

:class:`FakeEngine` keeps containers by name (and id), gives each an address on
the network it joins and reports it healthy unless a test says otherwise.
:class:`FakeRouter` keeps a backend of weighted servers and checks, after every
call, that something still takes traffic once anything ever did: the rule
"the router never points at nothing". Both count every changing call, and
:class:`Faults` can make any call fail (a dockroll error the executor handles)
or *crash* (an exception that stands for the process dying on the spot, so
nothing after it runs: no compensation, no ledger update).

They prove the executor's logic; only the integration tests prove the adapters.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from dockroll.engine.port import (
    BuildRequest,
    BuiltImage,
    ContainerInfo,
    Health,
    ImageInfo,
    JobResult,
    PushAuth,
    RunRequest,
)
from dockroll.errors import EngineError, RouterError
from dockroll.events import ProgressCallback
from dockroll.refs import Digest
from dockroll.router.port import (
    BackendServer,
    Counters,
    RequestLog,
    RequestTiming,
    RouterInfo,
    RouterStats,
    ServerHealth,
    ServerSpec,
    ServerState,
    traffic_shares,
)

__all__ = ["Crash", "FakeEngine", "FakeRouter", "Faults", "fake_digest"]


def fake_digest(seed: str) -> Digest:
    return Digest("sha256:" + hashlib.sha256(seed.encode()).hexdigest())


class Crash(BaseException):
    """The process dies here: not an Exception, so nothing in dockroll catches it."""


@dataclass
class Faults:
    """Which calls fail or crash, shared by the fake engine and router.

    ``fail`` maps a call name (``engine.run``, ``router.set_weights`` …) to the
    number of its next calls that raise the port's error. ``crash_after`` makes
    the N-th changing call overall (1-based) take effect and then kill the process.
    """

    fail: dict[str, int] = field(default_factory=dict)
    fail_when: Callable[[str, tuple[object, ...]], bool] | None = None
    """Called with the call name and arguments; True fails that call."""
    crash_after: int | None = None
    on_call: Callable[[str], None] | None = None
    """Sees every call before it happens (to read the ledger at that moment)."""
    changes: int = 0
    calls: list[str] = field(default_factory=list)

    def before(self, call: str, *args: object) -> None:
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        remaining = self.fail.get(call, 0)
        if remaining > 0 or (self.fail_when is not None and self.fail_when(call, args)):
            if remaining > 0:
                self.fail[call] = remaining - 1
            error = RouterError if call.startswith("router.") else EngineError
            raise error(f"injected failure of {call}{args!r}")

    def changed(self, call: str) -> None:
        """A changing call took effect; maybe the process dies right now."""
        self.changes += 1
        if self.crash_after is not None and self.changes == self.crash_after:
            self.crash_after = None
            raise Crash(f"killed after {call} (change {self.changes})")


@dataclass
class _Container:
    info: ContainerInfo


@dataclass
class FakeEngine:
    """Implements :class:`dockroll.engine.port.Engine` in memory, addressed by name or id."""

    faults: Faults = field(default_factory=Faults)
    endpoint: str = "fake://engine"
    images: set[str] = field(default_factory=set)
    unhealthy: set[str] = field(default_factory=set)
    """Container names that report unhealthy once started."""
    crashing: set[str] = field(default_factory=set)
    """Container names that exit at once."""
    job_exit_code: int = 0
    jobs: list[RunRequest] = field(default_factory=list)
    runs: list[RunRequest] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    clock_skew: float = 0.0
    """Seconds the engine's clock is ahead of this machine's."""
    _containers: dict[str, ContainerInfo] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _addresses: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    # -- state for assertions ---------------------------------------------------

    def names(self, **labels: str) -> set[str]:
        """Names of running containers carrying ``labels`` (dotted keys as given)."""
        return {
            info.name
            for info in self._containers.values()
            if info.running and all(info.labels.get(k) == v for k, v in labels.items())
        }

    def by_name(self, name: str) -> ContainerInfo | None:
        return next((c for c in self._containers.values() if c.name == name), None)

    # -- the port -----------------------------------------------------------------

    def ping(self) -> str:
        return "fake-1.0"

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_skew)

    def build(self, request: BuildRequest, progress: ProgressCallback) -> BuiltImage:
        raise NotImplementedError

    def image(self, reference: str) -> ImageInfo | None:
        if reference not in self.images:
            return None
        return ImageInfo(reference, (), (), 1, {}, {}, True, ("5000/tcp",))

    def pull(self, reference: str, progress: ProgressCallback) -> ImageInfo:
        self.images.add(reference)
        info = self.image(reference)
        assert info is not None
        return info

    def push(self, reference: str, auth: PushAuth | None, progress: ProgressCallback) -> Digest:
        raise NotImplementedError

    def run(self, request: RunRequest) -> ContainerInfo:
        self.faults.before("engine.run", request.name)
        if request.name is not None and self.by_name(request.name) is not None:
            raise EngineError(f"the name {request.name} is already in use")
        container_id = f"c{next(self._ids):063d}"
        name = request.name or container_id[:12]
        crashing = name in self.crashing
        info = ContainerInfo(
            id=container_id,
            name=name,
            image=request.image,
            status="exited" if crashing else "running",
            health=Health.UNHEALTHY if name in self.unhealthy else Health.HEALTHY,
            exit_code=1 if crashing else None,
            ports={},
            labels=dict(request.labels),
            networks={request.network: f"10.0.0.{next(self._addresses)}"}
            if request.network
            else {},
        )
        self._containers[container_id] = info
        self.runs.append(request)
        self.faults.changed("engine.run")
        return info

    def container(self, container_id: str) -> ContainerInfo | None:
        found = self._containers.get(container_id) or self.by_name(container_id)
        return replace(found) if found is not None else None

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        return "fake log line"

    def remove(self, container_id: str, *, grace: float = 10.0) -> None:
        info = self.container(container_id)
        self.faults.before("engine.remove", info.name if info else container_id)
        if info is None:
            return
        del self._containers[info.id]
        self.removed.append(info.name)
        self.faults.changed("engine.remove")

    def containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        return [
            replace(info)
            for info in self._containers.values()
            if all(info.labels.get(k) == v for k, v in labels.items())
        ]

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        return None

    def run_job(self, request: RunRequest, timeout: float) -> JobResult:
        self.faults.before("engine.run_job", tuple(request.command or ()))
        self.jobs.append(request)
        return JobResult(
            self.job_exit_code, "migrating…\nfailed" if self.job_exit_code else "", 0.1
        )

    def reserve(self, name: str, image: str, labels: Mapping[str, str]) -> ContainerInfo | None:
        if self.by_name(name) is not None:
            return None
        container_id = f"c{next(self._ids):063d}"
        info = ContainerInfo(
            container_id,
            name,
            image,
            "created",
            Health.NONE,
            None,
            {},
            labels,
            created=self.now(),
        )
        self._containers[container_id] = info
        return info


@dataclass
class _Server:
    name: str
    address: str
    port: int
    weight: int
    state: ServerState = ServerState.READY
    health: ServerHealth = ServerHealth.UP
    sessions: int = 0


@dataclass
class FakeRouter:
    """Implements :class:`dockroll.router.port.Router` in memory and watches the invariant.

    ``violations`` lists every call after which nothing took traffic although
    something did before; ``serving_log`` the traffic shares after each change.
    """

    faults: Faults = field(default_factory=Faults)
    never_healthy: set[str] = field(default_factory=set)
    """Servers whose router checks never pass."""
    down_after_add: set[str] = field(default_factory=set)
    """Servers that pass the first check and then fail (seen during a canary pause)."""
    on_stats: Callable[[FakeRouter], None] | None = None
    """Called before each :meth:`stats` snapshot: the test's traffic since the last one,
    usually through :meth:`serve`. Without it ``stats`` is not available, as before."""
    _servers: dict[str, _Server] = field(default_factory=dict)
    _answered: dict[str, list[float]] = field(default_factory=dict)
    _logged: dict[str, int] = field(default_factory=dict)
    """Requests per server already handed out by :meth:`request_log`."""
    served: bool = False
    violations: list[str] = field(default_factory=list)
    serving_log: list[dict[str, float]] = field(default_factory=list)
    drained: list[str] = field(default_factory=list)
    held_until: datetime | None = None
    holds: list[str] = field(default_factory=list)
    """"hold" and "release" in the order they were called."""

    def hold(self, until: datetime) -> None:
        self.held_until = until
        self.holds.append("hold")

    def release(self) -> None:
        self.held_until = None
        self.holds.append("release")

    # -- state for assertions ---------------------------------------------------

    def weights(self) -> dict[str, int]:
        return {s.name: s.weight for s in self._servers.values()}

    def shares(self) -> dict[str, float]:
        return {k: v for k, v in traffic_shares(self.servers()).items() if v}

    def _check(self, call: str) -> None:
        shares = self.shares()
        self.serving_log.append(shares)
        if shares:
            self.served = True
        elif self.served:
            self.violations.append(f"nothing takes traffic after {call}: {self.weights()}")

    def _server_for(self, name: str) -> _Server:
        try:
            return self._servers[name]
        except KeyError:
            raise RouterError(f"fake router has no server {name}") from None

    # -- the port -----------------------------------------------------------------

    def ensure(self, servers: Sequence[ServerSpec] = ()) -> RouterInfo:
        restored = []
        for spec in servers:
            if spec.name not in self._servers:
                self.add_server(
                    spec.name, spec.address, spec.port, weight=spec.weight, check=spec.check
                )
                restored.append(spec.name)
        return RouterInfo(
            "env", "router", "r1", "haproxy", "net", "http://x", "http://m", "unix:x", False,
            tuple(restored),
        )  # fmt: skip

    def servers(self) -> tuple[BackendServer, ...]:
        return tuple(
            BackendServer(
                name=s.name,
                address=s.address,
                port=s.port,
                weight=s.weight,
                state=s.state,
                health=s.health,
                current_sessions=s.sessions,
            )
            for s in self._servers.values()
        )

    def add_server(
        self, name: str, address: str, port: int, *, weight: int = 0, check: bool = True
    ) -> None:
        self.faults.before("router.add_server", name)
        if name in self._servers:
            raise RouterError(f"fake router already has {name}")
        # As with HAProxy, two exchanges: the server appears in maintenance, unchecked;
        # then it is enabled with its check. A process killed between them leaves it half added.
        server = _Server(
            name, address, port, weight, state=ServerState.MAINT, health=ServerHealth.NO_CHECK
        )
        self._servers[name] = server
        self._check("add_server")
        self.faults.changed("router.add_server")
        server.state = ServerState.READY
        server.health = ServerHealth.DOWN if check else ServerHealth.NO_CHECK
        self._check("enable_server")
        self.faults.changed("router.enable_server")

    def set_weight(self, name: str, weight: int) -> None:
        self.set_weights({name: weight})

    def set_weights(self, weights: Mapping[str, int]) -> None:
        self.faults.before("router.set_weights", dict(weights))
        unknown = set(weights) - set(self._servers)
        if unknown:
            raise RouterError(f"fake router has no server {', '.join(sorted(unknown))}")
        for name, weight in weights.items():
            self._servers[name].weight = weight
        self._check("set_weights")
        self.faults.changed("router.set_weights")

    def set_ready(self, name: str) -> None:
        self.faults.before("router.set_ready", name)
        self._server_for(name).state = ServerState.READY
        self._check("set_ready")
        self.faults.changed("router.set_ready")

    def drain(self, name: str) -> None:
        self.faults.before("router.drain", name)
        self._server_for(name).state = ServerState.DRAIN
        self.drained.append(name)
        self._check("drain")
        self.faults.changed("router.drain")

    def wait_drained(self, name: str, timeout: float) -> BackendServer:
        self.faults.before("router.wait_drained", name)
        return next(s for s in self.servers() if s.name == name)

    def wait_healthy(self, name: str, timeout: float) -> BackendServer:
        self.faults.before("router.wait_healthy", name)
        server = self._server_for(name)
        if name in self.never_healthy:
            raise RouterError(f"{name} did not pass its health check within {timeout:g}s")
        server.health = ServerHealth.UP
        self._check("wait_healthy")
        if name in self.down_after_add:
            server.health = ServerHealth.DOWN
        return next(s for s in self.servers() if s.name == name)

    def remove_server(self, name: str, *, timeout: float = 10.0) -> None:
        self.faults.before("router.remove_server", name)
        if self._servers.pop(name, None) is None:
            return
        self._check("remove_server")
        self.faults.changed("router.remove_server")

    def set_health(self, name: str, health: ServerHealth) -> None:
        """What the router's own checks say of ``name`` from now on (a replica falls sick)."""
        self._server_for(name).health = health
        self._check("set_health")

    def serve(self, requests: float, *, failing: Sequence[str] = ()) -> None:
        """``requests`` arrive now and split by the traffic shares; ``failing`` servers 5xx them.

        Counts are kept as fractions (0.5 request a second to a 10 % canary adds up)
        and reported whole, as a router would.
        """
        for name, share in self.shares().items():
            answered = self._answered.setdefault(name, [0.0, 0.0])
            answered[0] += requests * share
            if name in failing:
                answered[1] += requests * share

    def stats(self) -> RouterStats:
        if self.on_stats is None:
            raise NotImplementedError("set FakeRouter.on_stats to give the fake router traffic")
        self.faults.before("router.stats")
        self.on_stats(self)
        servers = []
        for server in self.servers():
            requests, errors = self._answered.get(server.name, [0.0, 0.0])
            servers.append(
                replace(
                    server,
                    total_requests=int(requests),
                    http_2xx=int(requests) - int(errors),
                    http_5xx=int(errors),
                    response_time_ms=20.0,
                )
            )
        return RouterStats(datetime.now(UTC), Counters(), tuple(servers))

    def request_log(self, after: int | None) -> RequestLog:
        """The requests :meth:`serve` sent since the last call, each answered in 20 ms."""
        if self.on_stats is None:
            raise NotImplementedError("set FakeRouter.on_stats to give the fake router traffic")
        cursor = (after or 0) + 1
        timings = []
        for name, (requests, errors) in self._answered.items():
            logged = self._logged.get(name, 0)
            for number in range(logged, int(requests)):
                status = 500 if number < int(errors) else 200
                timings.append(RequestTiming(cursor, name, status, 20.0, 20.0))
            self._logged[name] = max(logged, int(requests))
        return RequestLog(tuple(timings), cursor)

    def remove(self) -> None:
        self._servers.clear()
