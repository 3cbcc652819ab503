"""Rollout plans: what runs, what should run, and the steps in between.

Strategies are pure functions ``plan(observed, target, settings) -> Plan``;
they never touch an engine or a router. The executor performs the steps in
order and records each one. Every plan keeps the rule that the router never
points at nothing: a replica gets weight only after it passed its health
check, and old replicas leave rotation only once new ones carry traffic
(``recreate`` is the exception, kept for comparison and for services that take
no traffic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from dockroll.config import BlueGreenConfig, CanaryConfig, HealthConfig, RollingConfig, Strategy
from dockroll.engine.port import Health
from dockroll.errors import UsageError
from dockroll.refs import Digest

__all__ = [
    "MAX_WEIGHT",
    "AddServers",
    "AwaitHealthy",
    "Drain",
    "Observed",
    "Pause",
    "Plan",
    "Replica",
    "RunJob",
    "SetWeights",
    "Start",
    "Step",
    "Stop",
    "Target",
    "Verify",
    "Watch",
    "admits_traffic",
    "plan_blue_green",
    "plan_canary",
    "plan_recreate",
    "plan_rolling",
    "plan_rollout",
    "split_weights",
]

MAX_WEIGHT = 256
"""HAProxy's largest server weight."""
FULL_WEIGHT = 100


@dataclass(frozen=True)
class Replica:
    """One running container of the service in an environment, as observed."""

    name: str
    version: str
    digest: Digest
    slot: str
    weight: int | None = None
    """Its weight in the router; None when the router does not know it."""
    health: Health = Health.NONE
    """What the image's HEALTHCHECK says (:func:`admits_traffic` reads it)."""
    image: str = ""
    """The pinned reference it runs (``repo@sha256:…``), to start it again on rollback."""


def admits_traffic(health: Health, settings: HealthConfig) -> bool:
    """Whether the image's HEALTHCHECK lets a running replica take traffic.

    The router's HTTP readiness check gates traffic; the HEALTHCHECK, when used,
    vetoes with "unhealthy", and while it is still "starting" leaves the verdict to
    the router. Without a readiness path the HEALTHCHECK is the gate: only "healthy"
    (or no HEALTHCHECK at all) admits. One rule for a new replica and for a standby
    a rollback switches back to.
    """
    if settings.path is not None and not settings.use_docker_healthcheck:
        return True
    if health in (Health.HEALTHY, Health.NONE):
        return True
    return health is Health.STARTING and settings.path is not None


@dataclass(frozen=True)
class Observed:
    replicas: tuple[Replica, ...] = ()

    @property
    def serving(self) -> tuple[Replica, ...]:
        return tuple(r for r in self.replicas if r.weight)

    def slots(self) -> set[str]:
        return {r.slot for r in self.replicas}


@dataclass(frozen=True)
class Target:
    """The release an environment should run."""

    service: str
    environment: str
    version: str
    digest: Digest
    replicas: int


# -- steps -------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start new replicas of the target release; they take no traffic yet."""

    names: tuple[str, ...]
    slot: str
    kind: str = field(default="start", init=False)


@dataclass(frozen=True)
class AwaitHealthy:
    """Wait until the replicas pass their health checks; abort the rollout if they never do."""

    names: tuple[str, ...]
    kind: str = field(default="await-healthy", init=False)


@dataclass(frozen=True)
class AddServers:
    """Put replicas into the router at weight 0, health-checked by the router."""

    names: tuple[str, ...]
    kind: str = field(default="add-servers", init=False)


@dataclass(frozen=True)
class SetWeights:
    """Change router weights in one go."""

    weights: Mapping[str, int]
    percent: int | None = None
    """The share of traffic the new release has after this step, when meaningful."""
    kind: str = field(default="set-weights", init=False)


@dataclass(frozen=True)
class Drain:
    """Take replicas out of rotation and wait (bounded) for their in-flight requests."""

    names: tuple[str, ...]
    kind: str = field(default="drain", init=False)


@dataclass(frozen=True)
class Stop:
    """Remove replicas from the router, stop them with a grace period, remove them."""

    names: tuple[str, ...]
    kind: str = field(default="stop", init=False)


@dataclass(frozen=True)
class RunJob:
    """A one-off job from the target image (migrations) before any new replica gets traffic."""

    command: tuple[str, ...]
    kind: str = field(default="run-job", init=False)


@dataclass(frozen=True)
class Verify:
    """A command that must pass against a new replica before the switch."""

    command: tuple[str, ...]
    name: str
    kind: str = field(default="verify", init=False)


@dataclass(frozen=True)
class Watch:
    """Watch the new release with all traffic while the old one can still take it back.

    Runs the environment's analysis (or health checks alone) for ``seconds``;
    a failure rolls back.
    """

    seconds: float
    kind: str = field(default="watch", init=False)


@dataclass(frozen=True)
class Pause:
    """Wait between canary steps: ``seconds``, or until promoted by hand when None."""

    seconds: float | None
    percent: int
    kind: str = field(default="pause", init=False)


Step = (
    Start | AwaitHealthy | AddServers | SetWeights | Drain | Stop | RunJob | Verify | Pause | Watch
)


@dataclass(frozen=True)
class Plan:
    strategy: Strategy
    steps: tuple[Step, ...]
    new: tuple[str, ...]
    """Names of the replicas the plan starts."""
    old: tuple[str, ...]
    """Names of the replicas it replaces."""
    standby: tuple[str, ...] = ()
    """Old replicas left running at weight 0 (blue-green switch-back window)."""
    note: str = ""


# -- helpers -----------------------------------------------------------------


def split_weights(old: Sequence[str], new: Sequence[str], percent: int) -> dict[str, int]:
    """Per-server weights giving ``new`` about ``percent`` % of traffic, ``old`` the rest.

    Each group's share is spread evenly over its servers; weights stay within
    HAProxy's 0..256 and a non-zero share never rounds down to weight 0.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be 0..100, not {percent}")
    if not new and percent > 0:
        raise ValueError("no new servers to give traffic to")
    if not old and percent < 100:
        percent = 100
    # Weights proportional to share / servers; scaled to stay within MAX_WEIGHT.
    raw_new = percent / len(new) if new else 0.0
    raw_old = (100 - percent) / len(old) if old else 0.0
    top = max(raw_new, raw_old)
    scale = min(FULL_WEIGHT, MAX_WEIGHT) / top if top else 0.0
    weights: dict[str, int] = {}
    for name in old:
        weights[name] = max(1, round(raw_old * scale)) if raw_old else 0
    for name in new:
        weights[name] = max(1, round(raw_new * scale)) if raw_new else 0
    return weights


def replica_names(target: Target, slot: str, count: int, taken: set[str]) -> tuple[str, ...]:
    """Fresh container names ``<service>-<env>-<slot>-<n>`` not used by any observed replica."""
    names: list[str] = []
    index = 1
    while len(names) < count:
        name = f"{target.service}-{target.environment}-{slot}-{index}"
        if name not in taken:
            names.append(name)
        index += 1
    return tuple(names)


def _taken(observed: Observed) -> set[str]:
    return {replica.name for replica in observed.replicas}


def _job(migration: Sequence[str] | None) -> tuple[Step, ...]:
    return (RunJob(tuple(migration)),) if migration else ()


def _counter_slot(observed: Observed, pair: tuple[str, str]) -> str:
    used = observed.slots()
    return pair[1] if pair[0] in used and pair[1] not in used else pair[0]


def _with_watch(plan: Plan, seconds: float) -> Plan:
    """Insert a watch after the last traffic shift, before the last old replicas go.

    Only when there are old replicas to go back to: with none, a failing watch
    could only leave the router pointing at nothing.
    """
    if seconds <= 0 or not plan.old:
        return plan
    steps = list(plan.steps)
    last_shift = max(i for i, step in enumerate(steps) if isinstance(step, SetWeights))
    retire = next(
        (i for i, step in enumerate(steps) if i > last_shift and isinstance(step, Drain)),
        len(steps),
    )
    steps.insert(retire, Watch(seconds))
    return replace(plan, steps=tuple(steps))


# -- strategies --------------------------------------------------------------


def plan_recreate(
    observed: Observed, target: Target, migration: Sequence[str] | None = None
) -> Plan:
    """Stop everything, then start the new release: downtime by design, for comparison."""
    old = tuple(r.name for r in observed.replicas)
    new = replica_names(target, "r", target.replicas, set())
    steps: list[Step] = [*_job(migration)]
    if old:
        steps += [Drain(old), Stop(old)]
    steps += [
        Start(new, "r"),
        AwaitHealthy(new),
        AddServers(new),
        SetWeights(split_weights((), new, 100), 100),
    ]
    return Plan(Strategy.RECREATE, tuple(steps), new, old, note="downtime between stop and start")


def plan_rolling(
    observed: Observed,
    target: Target,
    settings: RollingConfig,
    migration: Sequence[str] | None = None,
) -> Plan:
    """Replace replicas batch by batch; each batch healthy and weighted before old ones go.

    With ``max_surge`` > 0 new replicas start beside the old ones and an old
    batch leaves only after a new batch serves. With ``max_surge`` 0 an old
    batch leaves first (``max_unavailable`` at a time), but never the last
    serving replica: one replica always surges instead.
    """
    old = [r.name for r in observed.replicas]
    new_all = replica_names(target, "r", target.replicas, _taken(observed))
    steps: list[Step] = [*_job(migration)]
    make_room_first = settings.max_surge == 0 and settings.max_unavailable > 0 and len(old) > 1
    limit = settings.max_unavailable if make_room_first else max(settings.max_surge, 1)
    batch = max(1, min(settings.batch_size, limit))
    pending_new, pending_old, serving_new = list(new_all), list(old), 0
    while pending_new:
        starting, pending_new = tuple(pending_new[:batch]), pending_new[batch:]
        if make_room_first:
            count = min(batch, len(pending_old), len(pending_old) + serving_new - 1)
            retiring, pending_old = tuple(pending_old[:count]), pending_old[count:]
            if retiring:
                steps += [SetWeights(dict.fromkeys(retiring, 0)), Drain(retiring), Stop(retiring)]
        steps += [
            Start(starting, "r"),
            AwaitHealthy(starting),
            AddServers(starting),
            SetWeights(dict.fromkeys(starting, FULL_WEIGHT)),
        ]
        serving_new += len(starting)
        if not make_room_first:
            retiring, pending_old = tuple(pending_old[:batch]), pending_old[batch:]
            if retiring:
                steps += [Drain(retiring), Stop(retiring)]
    if pending_old:
        rest = tuple(pending_old)
        steps += [Drain(rest), Stop(rest)]
    return Plan(Strategy.ROLLING, tuple(steps), new_all, tuple(old))


def plan_blue_green(
    observed: Observed,
    target: Target,
    settings: BlueGreenConfig,
    migration: Sequence[str] | None = None,
) -> Plan:
    """Start the other slot beside the live one, verify it, switch all traffic at once."""
    slot = _counter_slot(observed, ("blue", "green"))
    old = tuple(r.name for r in observed.replicas)
    new = replica_names(target, slot, target.replicas, _taken(observed))
    steps: list[Step] = [*_job(migration), Start(new, slot), AwaitHealthy(new), AddServers(new)]
    if settings.verify:
        steps.append(Verify(tuple(settings.verify), new[0]))
    steps.append(SetWeights(split_weights(old, new, 100), 100))
    if old and settings.keep_previous <= 0:
        steps += [Drain(old), Stop(old)]
        return Plan(Strategy.BLUE_GREEN, tuple(steps), new, old)
    return Plan(
        Strategy.BLUE_GREEN,
        tuple(steps),
        new,
        old,
        standby=old,
        note=f"{slot} is live; the previous slot stays ready for {settings.keep_previous:g}s",
    )


def plan_canary(
    observed: Observed,
    target: Target,
    settings: CanaryConfig,
    migration: Sequence[str] | None = None,
) -> Plan:
    """Shift traffic to the new release step by step, pausing between steps."""
    old = tuple(r.name for r in observed.replicas)
    if not old:
        # Nothing to compare against: the first release takes all traffic at once.
        first = replica_names(target, "stable", target.replicas, set())
        steps: list[Step] = [
            *_job(migration),
            Start(first, "stable"),
            AwaitHealthy(first),
            AddServers(first),
            SetWeights(split_weights((), first, 100), 100),
        ]
        return Plan(Strategy.CANARY, tuple(steps), first, (), note="first release: no canary")
    slot = _counter_slot(observed, ("canary", "stable"))
    canary_count = max(1, math.ceil(target.replicas * settings.steps[0] / 100))
    canaries = replica_names(target, slot, canary_count, _taken(observed))
    steps = [*_job(migration), Start(canaries, slot), AwaitHealthy(canaries), AddServers(canaries)]
    new: tuple[str, ...] = canaries
    for index, percent in enumerate(settings.steps):
        if percent == 100 and len(new) < target.replicas:
            rest = replica_names(
                target, slot, target.replicas - len(new), _taken(observed) | set(new)
            )
            steps += [Start(rest, slot), AwaitHealthy(rest), AddServers(rest)]
            new = new + rest
        steps.append(SetWeights(split_weights(old, new, percent), percent))
        if percent < 100:
            steps.append(Pause(settings.pause, percent))
        elif index == len(settings.steps) - 1:
            steps += [Drain(old), Stop(old)]
    return Plan(Strategy.CANARY, tuple(steps), new, old)


def plan_rollout(
    strategy: Strategy,
    observed: Observed,
    target: Target,
    *,
    rolling: RollingConfig | None = None,
    blue_green: BlueGreenConfig | None = None,
    canary: CanaryConfig | None = None,
    migration: Sequence[str] | None = None,
    watch: float = 0.0,
) -> Plan:
    """The plan of ``strategy`` for moving ``observed`` to ``target``.

    With ``watch`` seconds, the new release is watched with all traffic before
    the last old replicas are stopped (not for ``recreate``).
    """
    if target.replicas < 1:
        raise UsageError("an environment needs at least one replica")
    match strategy:
        case Strategy.RECREATE:
            return plan_recreate(observed, target, migration)
        case Strategy.ROLLING:
            plan = plan_rolling(observed, target, rolling or RollingConfig(), migration)
        case Strategy.BLUE_GREEN:
            plan = plan_blue_green(observed, target, blue_green or BlueGreenConfig(), migration)
        case Strategy.CANARY:
            plan = plan_canary(observed, target, canary or CanaryConfig(), migration)
        case _:  # pragma: no cover
            raise UsageError(f"unknown strategy {strategy!r}")
    return _with_watch(plan, watch)
