"""The rollout executor over in-memory fakes of the engine and router, with a real SQLite ledger.

Every test checks the rule the executor exists for: the router never points at
nothing (the fake router records any moment it does), except in ``recreate``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from dockroll import labels
from dockroll.config import (
    BlueGreenConfig,
    CanaryConfig,
    Config,
    EnvironmentConfig,
    HealthConfig,
    MigrationConfig,
    RollingConfig,
    Strategy,
)
from dockroll.errors import LockHeld, LockLost, RolloutError
from dockroll.hooks import Hooks
from dockroll.ledger import (
    Deployment,
    DeploymentStatus,
    Ledger,
    Release,
    StepStatus,
    open_ledger,
)
from dockroll.lock import EnvironmentLock
from dockroll.rollout.executor import RolloutOutcome, RolloutRunner, observe, pinned_image
from dockroll.rollout.plan import Plan, Target, plan_rollout
from tests.unit.rollout.fakes import Crash, FakeEngine, FakeRouter, Faults, fake_digest

SERVICE = "web"
ENV = "prod"
FULL = 100


@dataclass
class Clock:
    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.01)


@dataclass
class Harness:
    """One environment: fake engine and router (the world), a real ledger, two releases."""

    config: Config
    ledger: Ledger
    faults: Faults
    engine: FakeEngine
    router: FakeRouter
    v1: Release
    v2: Release
    clock: Clock = field(default_factory=Clock)

    def runner(self) -> RolloutRunner:
        return RolloutRunner(
            config=self.config,
            environment=ENV,
            engine=self.engine,
            router=self.router,
            ledger=self.ledger,
            sleep=self.clock.sleep,
            clock=self.clock,
        )

    def plan(self, release: Release) -> Plan:
        env = self.config.environment(ENV)
        return plan_rollout(
            env.strategy,
            observe(self.engine, self.router, SERVICE, ENV),
            _target(release, env.replicas),
            rolling=env.rolling,
            blue_green=env.blue_green,
            canary=env.canary,
            migration=env.migrate.command if env.migrate else None,
        )

    def deploy(self, release: Release) -> RolloutOutcome:
        self.engine.images.add(pinned_image(release))
        return self.runner().start(self.plan(release), release)

    def latest(self) -> Deployment:
        return self.ledger.deployment(self.ledger.deployments(SERVICE, ENV, limit=1)[0].id)

    def app_containers(self) -> dict[str, str]:
        """Running app containers: name → digest."""
        return {
            info.name: info.labels[labels.DIGEST]
            for info in self.engine.containers(labels.selector(SERVICE, ENV))
            if info.running
        }


def _target(release: Release, replicas: int) -> Target:
    return Target(SERVICE, ENV, release.version, release.digest, replicas)


def make_config(strategy: Strategy, replicas: int = 2, **env: Any) -> Config:
    return Config(
        service=SERVICE,
        image="127.0.0.1:5000/acme/web",
        health=HealthConfig(interval=0.01, start_timeout=2.0),
        environments={
            ENV: EnvironmentConfig(
                port=18080,
                strategy=strategy,
                replicas=replicas,
                drain_timeout=1.0,
                **env,
            )
        },
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def harness(ledger: Ledger, config: Config) -> Harness:
    faults = Faults()
    releases = [
        ledger.record_release(
            service=SERVICE,
            version=version,
            digest=fake_digest(version),
            registry="127.0.0.1:5000",
            repository="acme/web",
        )
        for version in ("v1.0.0", "v1.1.0")
    ]
    h = Harness(
        config=config,
        ledger=ledger,
        faults=faults,
        engine=FakeEngine(faults=faults),
        router=FakeRouter(faults=faults),
        v1=releases[0],
        v2=releases[1],
    )
    first = h.deploy(h.v1)
    assert first.status == "succeeded"
    h.faults.calls.clear()
    h.faults.changes = 0
    h.engine.runs.clear()
    return h


def assert_serves_only(h: Harness, release: Release, replicas: int = 2) -> None:
    """``release`` takes all traffic at full weight; no container of another release serves."""
    running = h.app_containers()
    serving = h.router.shares()
    assert len(serving) == replicas, (serving, h.router.weights())
    for name in serving:
        assert running.get(name) == release.digest, (name, running)
        assert h.router.weights()[name] == FULL
    others = {n for n, d in running.items() if d != release.digest}
    assert all(not h.router.shares().get(n) for n in others)


def assert_never_dark(h: Harness) -> None:
    assert h.router.violations == []


Setup = Callable[[Harness], None]


# -- the happy paths -------------------------------------------------------------------------


def test_rolling_performs_every_step_in_order_and_records_it_before_and_after(
    ledger: Ledger,
) -> None:
    h = harness(ledger, make_config(Strategy.ROLLING))
    seen: list[tuple[str, list[tuple[int, str]]]] = []

    def look(call: str) -> None:
        running = [(s.index, s.kind) for s in h.latest().steps if s.status is StepStatus.RUNNING]
        seen.append((call, running))

    h.faults.on_call = look
    plan = h.plan(h.v2)
    outcome = h.runner().start(plan, h.v2)

    assert outcome.status == "succeeded"
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.SUCCEEDED
    steps = sorted(deployment.steps, key=lambda s: s.index)
    assert [s.kind for s in steps] == ["plan", *(step.kind for step in plan.steps)]
    assert all(s.status is StepStatus.SUCCEEDED and s.finished_at for s in steps)
    assert steps[0].detail["plan"]["new"] == list(plan.new)
    assert steps[0].detail["image"] == pinned_image(h.v2)
    # Every engine and router change happened while exactly its own step was recorded running.
    kind_of_call = {
        "engine.run": "start",
        "router.add_server": "add-servers",
        "router.wait_healthy": "add-servers",
        "router.set_weights": "set-weights",
        "router.drain": "drain",
        "router.wait_drained": "drain",
        "router.remove_server": "stop",
        "engine.remove": "stop",
    }
    assert seen
    for call, running in seen:
        assert len(running) == 1, (call, running)
        assert running[0][1] == kind_of_call[call], (call, running)
    # The running steps follow the plan's order.
    indices = [running[0][0] for _, running in seen]
    assert indices == sorted(indices)
    assert_serves_only(h, h.v2)
    assert set(h.app_containers()) == set(plan.new)
    assert_never_dark(h)


@pytest.mark.parametrize(
    ("strategy", "settings"),
    [
        (Strategy.ROLLING, {"rolling": RollingConfig(batch_size=2, max_surge=2)}),
        (Strategy.ROLLING, {"rolling": RollingConfig(max_surge=0, max_unavailable=1)}),
        (Strategy.BLUE_GREEN, {"blue_green": BlueGreenConfig(keep_previous=0)}),
        (Strategy.BLUE_GREEN, {}),
        (Strategy.CANARY, {"canary": CanaryConfig(steps=[10, 50, 100], pause=1.0)}),
    ],
    ids=["rolling-surge-2", "rolling-no-surge", "blue-green", "blue-green-standby", "canary"],
)
def test_each_strategy_ends_on_the_new_release_and_never_goes_dark(
    ledger: Ledger, strategy: Strategy, settings: dict[str, object]
) -> None:
    h = harness(ledger, make_config(strategy, replicas=3, **settings))
    outcome = h.deploy(h.v2)
    assert outcome.status == "succeeded"
    assert_serves_only(h, h.v2, replicas=3)
    assert_never_dark(h)
    standby = set(outcome.plan.standby)
    assert {n for n, d in h.app_containers().items() if d == h.v1.digest} == standby
    for name in standby:
        assert h.router.weights()[name] == 0


def test_recreate_is_the_one_strategy_allowed_to_go_dark(ledger: Ledger) -> None:
    h = harness(ledger, make_config(Strategy.RECREATE))
    assert h.deploy(h.v2).status == "succeeded"
    assert_serves_only(h, h.v2)
    assert h.router.violations, "recreate stops everything before starting: a gap is expected"


# -- failure at each kind of step → compensation -------------------------------------------


def _fail_on(call: str, name_part: str = "") -> Setup:
    """Fail the first ``call`` whose arguments mention ``name_part``, once."""

    def predicate(h: Harness) -> None:
        failed: list[str] = []

        def when(seen: str, args: tuple[object, ...]) -> bool:
            if failed or seen != call or name_part not in repr(args):
                return False
            failed.append(seen)
            return True

        h.faults.fail_when = when

    return predicate


def _new_unhealthy(h: Harness) -> None:
    h.engine.unhealthy.update({f"{SERVICE}-{ENV}-r-3", f"{SERVICE}-{ENV}-green-1"})


def _new_crashes(h: Harness) -> None:
    h.engine.crashing.add(f"{SERVICE}-{ENV}-r-3")


def _router_never_sees_new_healthy(h: Harness) -> None:
    h.router.never_healthy.add(f"{SERVICE}-{ENV}-r-3")


def _canary_goes_down(h: Harness) -> None:
    h.router.down_after_add.add(f"{SERVICE}-{ENV}-canary-1")


def _migration_fails(h: Harness) -> None:
    h.engine.job_exit_code = 3


FAILURES: dict[str, tuple[Strategy, dict[str, Any], Setup, str]] = {
    # id: (strategy, settings, setup, the step kind that fails)
    "run-job": (
        Strategy.ROLLING,
        {"migrate": MigrationConfig(command=["sh", "-c", "exit 3"])},
        _migration_fails,
        "run-job",
    ),
    "start": (Strategy.ROLLING, {}, _fail_on("engine.run"), "start"),
    "start-second-batch": (
        Strategy.ROLLING,
        {},
        _fail_on("engine.run", f"{SERVICE}-{ENV}-r-4"),
        "start",
    ),
    "await-healthy-unhealthy": (Strategy.ROLLING, {}, _new_unhealthy, "await-healthy"),
    "await-healthy-exited": (Strategy.ROLLING, {}, _new_crashes, "await-healthy"),
    "add-servers": (Strategy.ROLLING, {}, _router_never_sees_new_healthy, "add-servers"),
    "set-weights": (Strategy.ROLLING, {}, _fail_on("router.set_weights"), "set-weights"),
    "drain": (Strategy.ROLLING, {}, _fail_on("router.drain", "r-1"), "drain"),
    "stop-router": (Strategy.ROLLING, {}, _fail_on("router.remove_server", "r-1"), "stop"),
    "stop-engine": (Strategy.ROLLING, {}, _fail_on("engine.remove", "r-1"), "stop"),
    "verify": (
        Strategy.BLUE_GREEN,
        {"blue_green": BlueGreenConfig(verify=["sh", "-c", "exit 4"])},
        lambda h: None,
        "verify",
    ),
    "blue-green-set-weights": (
        Strategy.BLUE_GREEN,
        {},
        _fail_on("router.set_weights"),
        "set-weights",
    ),
    "canary-pause": (
        Strategy.CANARY,
        {"canary": CanaryConfig(steps=[50, 100], pause=5.0)},
        _canary_goes_down,
        "pause",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_step_is_compensated_the_old_release_serves_at_full_weight(
    ledger: Ledger, case: str
) -> None:
    strategy, settings, setup, failing_kind = FAILURES[case]
    h = harness(ledger, make_config(strategy))
    h.config = make_config(strategy, **settings)
    old = dict(h.app_containers())
    setup(h)

    with pytest.raises(RolloutError) as raised:
        h.deploy(h.v2)

    assert raised.value.exit_code == 11
    assert "rolled back" in raised.value.message
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    failed = [s for s in deployment.steps if s.status is StepStatus.FAILED]
    assert [s.kind for s in failed] == [failing_kind]
    assert "injected" in failed[0].detail["error"] or failed[0].detail["error"]
    assert not [s for s in deployment.steps if s.status is StepStatus.RUNNING]
    # The same old replicas (by name and digest) serve again, at full weight, alone.
    assert h.app_containers() == old
    assert_serves_only(h, h.v1)
    assert set(h.router.weights()) == set(old)
    assert_never_dark(h)
    if failing_kind == "run-job":
        assert h.engine.runs == [], "a failed migration must stop before any replica starts"


def test_without_the_docker_healthcheck_the_router_check_alone_gates_traffic(
    ledger: Ledger,
) -> None:
    h = harness(ledger, make_config(Strategy.ROLLING))
    h.config = h.config.model_copy(
        update={"health": h.config.health.model_copy(update={"use_docker_healthcheck": False})}
    )
    _new_unhealthy(h)  # the engine's HEALTHCHECK says so, the router's /ready check passes
    assert h.deploy(h.v2).status == "succeeded"
    assert_serves_only(h, h.v2)

    h.router.never_healthy.add(f"{SERVICE}-{ENV}-r-1")  # the next free name
    with pytest.raises(RolloutError):
        h.deploy(h.v1)
    assert_serves_only(h, h.v2)
    assert_never_dark(h)


# -- canary paused by hand, resume, abort -----------------------------------------------------


def test_a_manual_canary_pause_returns_paused_and_resume_goes_on(ledger: Ledger) -> None:
    h = harness(
        ledger, make_config(Strategy.CANARY, canary=CanaryConfig(steps=[50, 100], pause=None))
    )
    outcome = h.deploy(h.v2)

    assert outcome.status == "paused"
    assert outcome.paused_at == 50
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.RUNNING
    pause = next(s for s in deployment.steps if s.kind == "pause")
    assert pause.status is StepStatus.RUNNING
    shares = h.router.shares()
    canary = [n for n in shares if h.app_containers()[n] == h.v2.digest]
    assert len(canary) == 1
    assert shares[canary[0]] == pytest.approx(0.5, abs=0.02)

    resumed = h.runner().resume(deployment, h.v2)
    assert resumed.status == "succeeded"
    assert h.latest().status is DeploymentStatus.SUCCEEDED
    assert_serves_only(h, h.v2)
    assert h.app_containers() == dict.fromkeys(resumed.plan.new, h.v2.digest)
    assert_never_dark(h)


def test_abort_undoes_a_paused_canary(ledger: Ledger) -> None:
    h = harness(
        ledger, make_config(Strategy.CANARY, canary=CanaryConfig(steps=[10, 100], pause=None))
    )
    old = dict(h.app_containers())
    assert h.deploy(h.v2).status == "paused"

    outcome = h.runner().abort(h.latest(), "looks wrong")

    assert outcome.status == "aborted"
    assert h.latest().status is DeploymentStatus.ABORTED
    assert h.latest().message == "looks wrong"
    assert h.app_containers() == old
    assert_serves_only(h, h.v1)
    assert_never_dark(h)


# -- a crash (the process killed) at every point, then resume or abort ----------------------

CRASH_CONFIGS = {
    "rolling": make_config(Strategy.ROLLING),
    "rolling-1-replica": make_config(Strategy.ROLLING, replicas=1),
    "blue-green": make_config(Strategy.BLUE_GREEN, blue_green=BlueGreenConfig(keep_previous=0)),
    "canary": make_config(Strategy.CANARY, canary=CanaryConfig(steps=[50, 100], pause=0.0)),
}


def _changes_of_a_clean_rollout(tmp_path: Path, config: Config) -> int:
    with open_ledger(f"sqlite:///{tmp_path / 'count.db'}", actor="ada") as counting:
        h = harness(counting, config)
        h.deploy(h.v2)
        return h.faults.changes


@pytest.mark.slow
@pytest.mark.parametrize("then", ["resume", "abort"])
@pytest.mark.parametrize("name", list(CRASH_CONFIGS))
def test_a_rollout_killed_at_any_change_can_be_resumed_or_aborted(
    tmp_path: Path, name: str, then: str
) -> None:
    config = CRASH_CONFIGS[name]
    total = _changes_of_a_clean_rollout(tmp_path, config)
    assert total >= 4
    replicas = config.environment(ENV).replicas
    for point in range(1, total + 1):
        with open_ledger(f"sqlite:///{tmp_path / f'{then}-{point}.db'}", actor="ada") as ledger:
            h = harness(ledger, config)
            old = dict(h.app_containers())
            h.faults.crash_after = point
            with pytest.raises(Crash):
                h.deploy(h.v2)
            killed = h.latest()
            where = f"killed after change {point} of {total}"
            assert killed.status is DeploymentStatus.RUNNING, where
            assert [s for s in killed.steps if s.status is StepStatus.RUNNING], where

            # A later process, with a fresh runner, finds the deployment unfinished.
            if then == "resume":
                outcome = h.runner().resume(killed, h.v2)
                assert outcome.status == "succeeded", where
                assert_serves_only(h, h.v2, replicas)
                assert set(h.app_containers()) == set(outcome.plan.new), where
            else:
                outcome = h.runner().abort(killed, "the deploying process died")
                assert outcome.status == "aborted", where
                assert h.app_containers() == old, where
                assert_serves_only(h, h.v1, replicas)
            assert set(h.router.weights()) == set(h.app_containers()), where
            assert h.router.violations == [], where


def test_a_new_replica_another_process_put_into_the_router_first_is_carried_on_with(
    ledger: Ledger,
) -> None:
    """A router recreated mid-rollout gets every running replica back, the new one too."""
    h = harness(ledger, make_config(Strategy.ROLLING))
    put_back: list[str] = []

    def recreated_router_restores(call: str) -> None:
        if call != "router.add_server" or put_back:
            return
        missing = [
            info
            for info in h.engine.containers(labels.selector(SERVICE, ENV))
            if info.running and info.name not in h.router.weights()
        ]
        assert len(missing) == 1
        put_back.append(missing[0].name)
        address = next(iter(missing[0].networks.values()))
        h.router.add_server(missing[0].name, address, 5000, weight=0, check=True)

    h.faults.on_call = recreated_router_restores
    outcome = h.deploy(h.v2)

    assert put_back
    assert outcome.status == "succeeded"
    assert_serves_only(h, h.v2)
    assert_never_dark(h)


def test_a_failing_pre_rollout_hook_stops_before_anything_changes(ledger: Ledger) -> None:
    h = harness(ledger, make_config(Strategy.ROLLING))
    containers, weights = dict(h.app_containers()), dict(h.router.weights())
    h.config = make_config(
        Strategy.ROLLING,
        hooks=Hooks.model_validate({"pre-rollout": [{"name": "freeze", "command": ["false"]}]}),
    )

    with pytest.raises(RolloutError, match="pre-rollout hook `freeze` failed"):
        h.deploy(h.v2)

    assert h.engine.runs == []
    assert h.app_containers() == containers
    assert h.router.weights() == weights
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    assert all(step.status is not StepStatus.FAILED for step in deployment.steps)
    assert_never_dark(h)


class _LibraryError(Exception):
    """What an HTTP client, Docker SDK or database driver raises: no DockrollError, no OSError."""


@pytest.mark.parametrize("error", [_LibraryError, KeyboardInterrupt])
def test_any_exception_during_a_step_is_compensated_then_raised_as_it_was(
    ledger: Ledger, error: type[BaseException]
) -> None:
    h = harness(ledger, make_config(Strategy.CANARY))
    h.config = make_config(Strategy.CANARY, canary=CanaryConfig(steps=[50, 100], pause=0.0))
    old = dict(h.app_containers())
    raised: list[str] = []

    def interrupt(call: str) -> None:
        # The first weight change takes the new replicas into traffic; fail the next one.
        if (
            call == "router.set_weights"
            and not raised
            and h.router.shares().get(f"{SERVICE}-{ENV}-canary-1")
        ):
            raised.append(call)
            raise error("connection reset while changing weights")

    h.faults.on_call = interrupt

    with pytest.raises(error):
        h.deploy(h.v2)

    assert raised
    deployment = h.latest()
    assert deployment.status is DeploymentStatus.ROLLED_BACK
    assert [s.kind for s in deployment.steps if s.status is StepStatus.FAILED] == ["set-weights"]
    assert h.app_containers() == old
    assert_serves_only(h, h.v1)
    assert_never_dark(h)


# -- the lock is renewed while a rollout runs ---------------------------------------------


def test_a_long_canary_pause_keeps_the_lock_renewed(ledger: Ledger) -> None:
    h = harness(
        ledger, make_config(Strategy.CANARY, canary=CanaryConfig(steps=[50, 100], pause=600.0))
    )
    lock = EnvironmentLock(h.engine, SERVICE, ENV, image="lock:1", monotonic=h.clock)
    lock.acquire("ada", operation="deploy", ttl=60)
    other = EnvironmentLock(h.engine, SERVICE, ENV, image="lock:1")
    seen_expired: list[float] = []
    beats: list[float] = []

    def heartbeat() -> None:
        h.engine.clock_skew = h.clock.now - 1000.0  # the engine's clock moves with the test's
        beats.append(h.clock.now)
        status = other.status()  # what another machine sees before this renewal
        if status is None or status.expired():
            seen_expired.append(h.clock.now)
        lock.heartbeat()

    h.engine.images.add(pinned_image(h.v2))
    runner = replace(h.runner(), heartbeat=heartbeat)
    outcome = runner.start(h.plan(h.v2), h.v2)

    assert outcome.status == "succeeded"
    assert max(beats) - min(beats) >= 600  # called through the whole pause
    assert max(b - a for a, b in itertools.pairwise(beats)) <= 15
    assert seen_expired == []
    with pytest.raises(LockHeld):
        other.acquire("bob", operation="deploy")


def test_a_rollout_whose_lock_was_taken_stops_without_touching_the_router(
    ledger: Ledger,
) -> None:
    h = harness(
        ledger, make_config(Strategy.CANARY, canary=CanaryConfig(steps=[50, 100], pause=30.0))
    )
    calls = 0

    def heartbeat() -> None:
        nonlocal calls
        calls += 1
        if calls > 8:  # inside the pause, with half the traffic on the canary
            raise LockLost("the prod lock of web was taken over while ada held it")

    h.engine.images.add(pinned_image(h.v2))
    runner = replace(h.runner(), heartbeat=heartbeat)
    with pytest.raises(LockLost):
        runner.start(h.plan(h.v2), h.v2)

    weights_when_lost = h.router.weights()
    assert any(h.app_containers().get(n) == h.v2.digest for n in weights_when_lost)
    # Left for the new holder to settle: nothing was rolled back from here.
    assert h.latest().status is DeploymentStatus.RUNNING
    assert_never_dark(h)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_migration_with_hold_holds_requests_only_while_it_runs(
    ledger: Ledger, exit_code: int
) -> None:
    h = harness(ledger, make_config(Strategy.ROLLING))
    migrate = MigrationConfig(command=["flask", "db", "upgrade"], hold=True, hold_max=20.0)
    h.config = make_config(Strategy.ROLLING, migrate=migrate)
    h.engine.job_exit_code = exit_code
    jobs_seen_held: list[bool] = []
    run_job = h.engine.run_job

    def watched(request: Any, timeout: float) -> Any:
        jobs_seen_held.append(h.router.held_until is not None)
        return run_job(request, timeout)

    h.engine.run_job = watched  # type: ignore[method-assign]

    if exit_code:
        with pytest.raises(RolloutError):
            h.deploy(h.v2)
    else:
        h.deploy(h.v2)

    assert jobs_seen_held == [True]
    assert h.router.holds == ["hold", "release"]
    assert h.router.held_until is None


def test_a_migration_without_hold_never_holds(ledger: Ledger) -> None:
    h = harness(ledger, make_config(Strategy.ROLLING))
    h.config = make_config(Strategy.ROLLING, migrate=MigrationConfig(command=["migrate"]))

    h.deploy(h.v2)

    assert h.router.holds == []
