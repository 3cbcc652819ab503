"""Strategy planners, checked by playing their steps on a simulated environment."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dockroll.config import BlueGreenConfig, CanaryConfig, HealthConfig, RollingConfig, Strategy
from dockroll.engine.port import Health
from dockroll.refs import Digest
from dockroll.rollout.plan import (
    MAX_WEIGHT,
    AddServers,
    AwaitHealthy,
    Drain,
    Observed,
    Pause,
    Plan,
    Replica,
    RunJob,
    SetWeights,
    Start,
    Stop,
    Target,
    Verify,
    admits_traffic,
    plan_rollout,
    split_weights,
)

OLD = Digest("sha256:" + "0" * 64)
NEW = Digest("sha256:" + "1" * 64)


def observed(count: int, slot: str = "r", prefix: str = "web-prod-r") -> Observed:
    return Observed(
        tuple(
            Replica(name=f"{prefix}-{i}", version="v1", digest=OLD, slot=slot, weight=100)
            for i in range(1, count + 1)
        )
    )


def target(replicas: int) -> Target:
    return Target("web", "prod", "v2", NEW, replicas)


@dataclass
class Simulation:
    """Containers and router weights after each step; checks the invariants on the way."""

    running: dict[str, Digest] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    healthy: set[str] = field(default_factory=set)
    min_serving: int = 10**9
    max_running: int = 0

    @classmethod
    def of(cls, obs: Observed) -> Simulation:
        sim = cls()
        for replica in obs.replicas:
            sim.running[replica.name] = replica.digest
            sim.weights[replica.name] = replica.weight or 0
            sim.healthy.add(replica.name)
        return sim

    def serving(self) -> list[str]:
        return [n for n, w in self.weights.items() if w > 0 and n in self.healthy]

    def play(self, plan: Plan) -> None:
        for step in plan.steps:
            match step:
                case Start(names=names):
                    for name in names:
                        assert name not in self.running, f"{name} started twice"
                        self.running[name] = NEW
                case AwaitHealthy(names=names):
                    self.healthy.update(names)
                case AddServers(names=names):
                    for name in names:
                        assert name in self.healthy, f"{name} routed before it was healthy"
                        self.weights[name] = 0
                case SetWeights(weights=weights):
                    for name, weight in weights.items():
                        assert name in self.weights, f"{name} weighted but not in the router"
                        assert name in self.healthy
                        assert 0 <= weight <= MAX_WEIGHT
                        self.weights[name] = weight
                case Drain(names=names):
                    for name in names:
                        self.weights[name] = 0
                case Stop(names=names):
                    for name in names:
                        assert self.weights.get(name, 0) == 0, f"{name} stopped while weighted"
                        del self.running[name]
                        self.weights.pop(name, None)
                        self.healthy.discard(name)
                case RunJob() | Verify() | Pause():
                    pass
            self.max_running = max(self.max_running, len(self.running))
            self.min_serving = min(self.min_serving, len(self.serving()))

    def digests_serving(self) -> set[Digest]:
        return {self.running[n] for n in self.serving()}


ROLLING_CASES = [
    # (old replicas, new replicas, settings)
    (0, 2, RollingConfig()),
    (1, 1, RollingConfig()),
    (2, 2, RollingConfig()),
    (3, 3, RollingConfig(batch_size=2, max_surge=2)),
    (4, 2, RollingConfig()),
    (2, 4, RollingConfig()),
    (3, 3, RollingConfig(max_surge=0, max_unavailable=1)),
    (4, 4, RollingConfig(max_surge=0, max_unavailable=2, batch_size=2)),
    (1, 1, RollingConfig(max_surge=0, max_unavailable=1)),
    (5, 1, RollingConfig(max_surge=0, max_unavailable=3, batch_size=3)),
]


@pytest.mark.parametrize(("old", "new", "settings"), ROLLING_CASES)
def test_rolling_never_leaves_the_router_empty(old: int, new: int, settings: RollingConfig) -> None:
    obs = observed(old)
    plan = plan_rollout(Strategy.ROLLING, obs, target(new), rolling=settings)
    sim = Simulation.of(obs)
    sim.play(plan)
    if old:
        assert sim.min_serving >= 1
    assert sim.digests_serving() == {NEW}
    assert sorted(sim.running) == sorted(plan.new)
    assert len(plan.new) == new
    if settings.max_surge:
        assert sim.max_running <= max(old, new) + settings.max_surge


def test_rolling_surges_one_at_a_time_by_default() -> None:
    plan = plan_rollout(Strategy.ROLLING, observed(3), target(3))
    kinds = [step.kind for step in plan.steps]
    assert kinds[:6] == ["start", "await-healthy", "add-servers", "set-weights", "drain", "stop"]
    assert kinds.count("start") == 3


def test_rolling_runs_migration_before_anything_else() -> None:
    plan = plan_rollout(Strategy.ROLLING, observed(2), target(2), migration=["migrate", "up"])
    assert plan.steps[0] == RunJob(("migrate", "up"))


@pytest.mark.parametrize("old_slot", ["blue", "green"])
def test_blue_green_switches_everything_at_once_and_keeps_the_old_slot(old_slot: str) -> None:
    obs = observed(2, slot=old_slot, prefix=f"web-prod-{old_slot}")
    plan = plan_rollout(
        Strategy.BLUE_GREEN, obs, target(2), blue_green=BlueGreenConfig(verify=["true"])
    )
    sim = Simulation.of(obs)
    sim.play(plan)
    new_slot = "green" if old_slot == "blue" else "blue"
    assert all(f"-{new_slot}-" in name for name in plan.new)
    switches = [s for s in plan.steps if isinstance(s, SetWeights)]
    assert len(switches) == 1, "one atomic switch"
    assert isinstance(plan.steps[plan.steps.index(switches[0]) - 1], Verify)
    assert sim.min_serving >= 1
    assert sim.digests_serving() == {NEW}
    assert plan.standby == tuple(r.name for r in obs.replicas)
    assert all(name in sim.running for name in plan.standby), "old slot kept for switch-back"


def test_blue_green_without_keep_window_stops_the_old_slot() -> None:
    obs = observed(2, slot="blue", prefix="web-prod-blue")
    plan = plan_rollout(
        Strategy.BLUE_GREEN, obs, target(2), blue_green=BlueGreenConfig(keep_previous=0)
    )
    sim = Simulation.of(obs)
    sim.play(plan)
    assert set(sim.running) == set(plan.new)
    assert plan.standby == ()


def test_canary_steps_through_the_percentages() -> None:
    obs = observed(2, slot="stable", prefix="web-prod-stable")
    plan = plan_rollout(
        Strategy.CANARY, obs, target(2), canary=CanaryConfig(steps=[10, 50, 100], pause=5)
    )
    sim = Simulation.of(obs)
    sim.play(plan)
    shares = [s.percent for s in plan.steps if isinstance(s, SetWeights)]
    assert shares == [10, 50, 100]
    pauses = [s for s in plan.steps if isinstance(s, Pause)]
    assert [p.percent for p in pauses] == [10, 50]
    assert sim.min_serving >= 1
    assert sim.digests_serving() == {NEW}
    assert len(plan.new) == 2
    assert set(sim.running) == set(plan.new)


def test_canary_manual_pauses() -> None:
    obs = observed(1, slot="stable", prefix="web-prod-stable")
    plan = plan_rollout(Strategy.CANARY, obs, target(1), canary=CanaryConfig(pause=None))
    assert all(p.seconds is None for p in plan.steps if isinstance(p, Pause))


def test_canary_first_release_takes_all_traffic() -> None:
    plan = plan_rollout(Strategy.CANARY, Observed(), target(2))
    assert [s.percent for s in plan.steps if isinstance(s, SetWeights)] == [100]
    assert not any(isinstance(s, Pause) for s in plan.steps)


def test_recreate_has_downtime_by_design() -> None:
    obs = observed(2)
    plan = plan_rollout(Strategy.RECREATE, obs, target(2))
    sim = Simulation.of(obs)
    sim.play(plan)
    assert sim.min_serving == 0
    assert sim.digests_serving() == {NEW}


@pytest.mark.parametrize(
    ("old", "new", "percent"),
    [(1, 1, 10), (2, 1, 10), (2, 2, 50), (3, 1, 5), (1, 3, 90), (10, 1, 1), (0, 2, 100)],
)
def test_split_weights_gives_the_share(old: int, new: int, percent: int) -> None:
    old_names = [f"o{i}" for i in range(old)]
    new_names = [f"n{i}" for i in range(new)]
    weights = split_weights(old_names, new_names, percent)
    total = sum(weights.values())
    share = sum(weights[n] for n in new_names) / total * 100
    assert abs(share - percent) <= 1.5
    assert all(0 < w <= MAX_WEIGHT for w in weights.values())


def test_split_weights_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match=r"must be 0\.\.100"):
        split_weights(["a"], ["b"], 120)
    with pytest.raises(ValueError, match="no new servers"):
        split_weights(["a"], [], 10)


@pytest.mark.parametrize(
    ("steps", "message"),
    [([10, 50], "end at 100"), ([50, 10, 100], "increasing"), ([0, 100], "between 1 and 100")],
)
def test_canary_steps_validated(steps: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CanaryConfig(steps=steps)


@pytest.mark.parametrize(
    ("health", "path", "use_docker", "admitted"),
    [
        # The router's readiness check gates; the HEALTHCHECK only vetoes.
        (Health.STARTING, "/ready", True, True),
        (Health.HEALTHY, "/ready", True, True),
        (Health.NONE, "/ready", True, True),
        (Health.UNHEALTHY, "/ready", True, False),
        (Health.UNHEALTHY, "/ready", False, True),
        # No readiness path: the HEALTHCHECK is the gate, whatever the setting says.
        (Health.STARTING, None, True, False),
        (Health.STARTING, None, False, False),
        (Health.HEALTHY, None, False, True),
        (Health.NONE, None, True, True),
    ],
)
def test_the_images_healthcheck_vetoes_and_gates_only_without_a_readiness_path(
    health: Health, path: str | None, use_docker: bool, admitted: bool
) -> None:
    settings = HealthConfig(path=path, use_docker_healthcheck=use_docker)
    assert admits_traffic(health, settings) is admitted
