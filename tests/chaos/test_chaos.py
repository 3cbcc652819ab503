"""Seeded chaos under constant load: what `dockroll status --json` says is what serves.

Each round breaks something in the middle of a rollout and then recovers the
way an operator would: `dockroll` killed with SIGKILL at a random step of each
strategy and of a promotion, two deploys racing, the router container killed,
the registry going away mid-promotion, the Docker engine restarted or killed
with SIGKILL mid-rollout (an engine of the suite's own, see
``tests/chaos/private_engine.py``; the machine's engine is never touched).
Whatever happened, the round must end
consistent: one release serves on every replica, the ledger and the
environment's tag say that release, nothing is left unfinished or locked, and
wherever the router survived not one request failed.

`make chaos` runs it; ``CHAOS_SEED`` picks the rounds (printed, so a failing
round can be replayed exactly).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from dockroll import devenv, labels
from dockroll.ledger import StepStatus
from dockroll.refs import parse_reference
from dockroll.registry import RegistryClient
from tests.chaos.private_engine import PrivateEngine, clean_leftovers, ensure_tools
from tests.conftest import _unavailable, free_port
from tests.integration.rollout_support import (
    DOCKROLL,
    Load,
    Seeded,
    cli_env,
    real_substitutes,
    run_dockroll,
    seed_service,
    versions,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.slow]

OLD, NEW = "v1.0.0", "v1.1.0"
SEED = int(os.environ.get("CHAOS_SEED", "1"))
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "rolling": {"strategy": "rolling", "replicas": 2, "drain_timeout": "5s", "tags": ["rolling"]},
    "bluegreen": {
        "strategy": "blue-green",
        "replicas": 2,
        "blue_green": {"keep_previous": "10m"},
        "tags": ["bluegreen"],
    },
    "canary": {
        "strategy": "canary",
        "replicas": 2,
        "canary": {"steps": [25, 50, 100], "pause": "2s"},
        "tags": ["canary"],
    },
}


@pytest.fixture(scope="module")
def rng() -> random.Random:
    print(f"\nchaos seed {SEED} (CHAOS_SEED={SEED} replays these rounds)")
    return random.Random(SEED)


@dataclass
class OwnRegistry:
    """A registry of this suite's own, so taking it down disturbs nobody else."""

    instance: devenv.RegistryInstance

    def stop(self) -> None:
        assert self.instance.stop(), "the chaos registry did not stop"

    def start(self) -> None:
        self.instance = devenv.start_registry(
            port=self.instance.port, data_dir=self.instance.data_dir
        )
        assert self.instance.answers()


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRegistry]:
    data = tmp_path_factory.mktemp("chaos-registry")
    registry = OwnRegistry(devenv.start_registry(port=free_port(), data_dir=data))
    yield registry
    registry.instance.stop()


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    own_registry: OwnRegistry,
) -> Iterator[Seeded]:
    yield from seed_service(
        tmp_path_factory, own_registry.instance.address, ENVIRONMENTS, prefix="chaos"
    )


# -- the checks ---------------------------------------------------------------------


def _dockroll(seeded: Seeded, *args: str) -> subprocess.CompletedProcess[str]:
    return run_dockroll(seeded, *args)


def _status(seeded: Seeded, env: str) -> dict[str, Any]:
    done = _dockroll(seeded, "--json", "status", "--env", env)
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, Any] = json.loads(done.stdout)["environments"][0]
    return found


def _tag(seeded: Seeded, env: str) -> str | None:
    ref = parse_reference(seeded.config().image)
    with RegistryClient(ref.registry, lookup_credentials=False) as client:
        return client.manifest_digest(ref.repository, env)


def assert_consistent(seeded: Seeded, env: str, where: str) -> str:
    """What status says serves is what answers, alone and settled; returns the version."""
    status = _status(seeded, env)
    serving = status["serving"]
    assert len(serving) == 1, (where, status)
    digest = serving[0]
    version = next(v for v, r in seeded.releases.items() if r.digest == digest)
    assert status["ledger"]["digest"] == digest, (where, status["ledger"])
    assert status["unfinished"] is None, (where, status["unfinished"])
    assert status["lock"] is None, (where, status["lock"])
    assert status["drift"] == [], (where, status["drift"])
    weighted = [r for r in status["replicas"] if r["weight"]]
    assert len(weighted) == ENVIRONMENTS[env]["replicas"], (where, status["replicas"])
    assert {r["digest"] for r in weighted} == {digest}, where
    assert _tag(seeded, env) == digest, f"{where}: the {env} tag is not on {version}"
    assert versions(seeded.url(env), 20) == {version: 20}, where
    return version


# -- the faults ---------------------------------------------------------------------


def _last_deployment(seeded: Seeded, env: str) -> int:
    with seeded.ledger() as ledger:
        found = ledger.deployments(seeded.service, env, limit=1)
    return found[0].id if found else 0


def _when_step_runs(
    seeded: Seeded, env: str, process: subprocess.Popen[str], fraction: float, after: int
) -> tuple[int, int] | None:
    """Wait until the new deployment runs a step past ``fraction`` of its plan.

    Returns (that step, the number of steps), or None when the command ended first.
    """
    deadline = time.monotonic() + 180
    with seeded.ledger() as ledger:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return None
            latest = ledger.deployments(seeded.service, env, limit=1)
            if latest and latest[0].id > after:
                steps = ledger.deployment(latest[0].id).steps
                total = len(steps) - 1
                wanted = max(1, round(fraction * total))
                running = [s.index for s in steps if s.status is StepStatus.RUNNING]
                if running and running[0] >= wanted:
                    return running[0], total
            time.sleep(0.02)
    raise AssertionError(f"{env}: no step past {fraction:.0%} ran within 180 s")


def _start(seeded: Seeded, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DOCKROLL, *args],
        env=cli_env(seeded),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


RECOVERIES = (
    ("resume", "--env", "{env}"),
    ("abort", "--env", "{env}"),
    ("deploy", "{version}", "--env", "{env}"),
    ("rollback", "--env", "{env}"),
)


@dataclass
class Round:
    what: str
    failures: int
    requests: int
    serving: str


@pytest.fixture(scope="module")
def rounds() -> Iterator[list[Round]]:
    done: list[Round] = []
    yield done
    print("\nchaos rounds:")
    for entry in done:
        print(f"  {entry.what}: {entry.requests} requests, {entry.failures} failed")
        print(f"    serving {entry.serving}")


def _promote(seeded: Seeded, version: str, env: str) -> None:
    done = _dockroll(seeded, "promote", version, "--to", env)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_serving(seeded.url(env), version)


def _end_round(
    seeded: Seeded,
    env: str,
    where: str,
    load: Load,
    rounds: list[Round],
    *,
    expected: str | None = None,
) -> None:
    """The round's checks: consistent, on ``expected`` if given, no request failed."""
    serving = assert_consistent(seeded, env, where)
    if expected is not None:
        assert serving == expected, where
    rounds.append(Round(where, len(load.failures), len(load.answers), serving))
    assert len(load.answers) >= 100, where
    assert load.failures == [], (where, load.failures[:3])


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_a_command_killed_at_a_random_step_is_recovered(
    seeded: Seeded, env: str, rng: random.Random, rounds: list[Round]
) -> None:
    _promote(seeded, OLD, env)
    assert_consistent(seeded, env, f"{env} before the round")
    for number in range(2):
        current = assert_consistent(seeded, env, f"{env} round {number}")
        target = NEW if current == OLD else OLD
        fraction = rng.uniform(0.05, 0.95)
        verb = rng.choice(("deploy", "promote"))
        recovery = [part.format(env=env, version=target) for part in rng.choice(RECOVERIES)]
        with Load(seeded.url(env), threads=4) as load:
            load.wait_for(50)
            after = _last_deployment(seeded, env)
            command = (verb, target, "--env" if verb == "deploy" else "--to", env)
            process = _start(seeded, *command)
            reached = _when_step_runs(seeded, env, process, fraction, after)
            _kill(process)
            where = f"{env}: `{' '.join(command)}` killed at step {reached}, then {recovery}"
            if reached is not None:
                fixed = _dockroll(seeded, *recovery)
                assert fixed.returncode in (0, 2), f"{where}\n{fixed.stdout}{fixed.stderr}"
            # Whatever the recovery chose, a plain promotion of the target settles it all.
            _promote(seeded, target, env)
            load.wait_for(len(load.answers) + 50)
        _end_round(seeded, env, where, load, rounds, expected=target)


def test_two_deploys_racing_one_wins_cleanly(
    seeded: Seeded, rng: random.Random, rounds: list[Round]
) -> None:
    env = "rolling"
    _promote(seeded, OLD, env)
    with Load(seeded.url(env), threads=4) as load:
        load.wait_for(50)
        contenders = [("promote", NEW, "--to", env), ("deploy", NEW, "--env", env)]
        first, second = rng.sample(contenders, 2)
        a = _start(seeded, *first)
        time.sleep(rng.uniform(0.0, 0.5))
        b = _start(seeded, *second)
        out_a, _ = a.communicate(timeout=300)
        out_b, _ = b.communicate(timeout=300)
        codes = sorted([a.returncode, b.returncode])
        load.wait_for(len(load.answers) + 50)
    where = f"racing {first} and {second}: exit codes {codes}"
    # Either the second found the first holding the lock (12), or one went after the other.
    assert codes in ([0, 0], [0, 12]), f"{where}\n{out_a}\n{out_b}"
    _end_round(seeded, env, where, load, rounds)


def test_the_router_killed_mid_rollout_comes_back_consistent(
    seeded: Seeded, docker_client: docker.DockerClient, rng: random.Random, rounds: list[Round]
) -> None:
    env = rng.choice(list(ENVIRONMENTS))
    _promote(seeded, OLD, env)
    after = _last_deployment(seeded, env)
    process = _start(seeded, "deploy", NEW, "--env", env)
    fraction = rng.uniform(0.1, 0.9)
    reached = _when_step_runs(seeded, env, process, fraction, after)
    router = docker_client.containers.get(f"dockroll-router-{seeded.service}-{env}")
    router.kill()
    out, _ = process.communicate(timeout=300)
    where = f"{env}: router killed at step {reached}; the deploy exited {process.returncode}"
    # The next command brings the router back with what runs, then settles the rollout.
    _promote(seeded, NEW, env)
    serving = assert_consistent(seeded, env, where)
    assert serving == NEW, f"{where}\n{out}"
    rounds.append(Round(where, 0, 0, serving))


def test_the_registry_going_away_mid_promotion_leaves_nothing_ahead(
    seeded: Seeded,
    own_registry: OwnRegistry,
    rng: random.Random,
    rounds: list[Round],
) -> None:
    env = rng.choice(list(ENVIRONMENTS))
    _promote(seeded, OLD, env)
    with Load(seeded.url(env), threads=4) as load:
        load.wait_for(50)
        process = _start(seeded, "promote", NEW, "--to", env)
        time.sleep(rng.uniform(0.2, 4.0))
        own_registry.stop()
        out, _ = process.communicate(timeout=300)
        where = f"{env}: registry stopped mid-promotion; promote exited {process.returncode}"
        # While the registry is away, nothing may claim more than what runs.
        status = _status(seeded, env)
        assert len(status["serving"]) == 1, (where, status)
        assert status["ledger"]["digest"] == status["serving"][0], (where, out)
        own_registry.start()
        _promote(seeded, NEW, env)
        load.wait_for(len(load.answers) + 50)
    _end_round(seeded, env, where, load, rounds, expected=NEW)


def _assert_nothing_left(seeded: Seeded, client: docker.DockerClient, env: str) -> None:
    """App containers are exactly the router's servers; no job, lease or stopped replica."""
    status = _status(seeded, env)
    in_router = {r["name"] for r in status["replicas"] if r["weight"] is not None}
    containers = client.containers.list(
        all=True,
        filters={"label": [f"{labels.SERVICE}={seeded.service}", f"{labels.ENVIRONMENT}={env}"]},
    )
    roles = {c.name: c.labels.get(labels.ROLE) for c in containers}
    apps = {name for name, role in roles.items() if role == "app"}
    assert apps == in_router, (env, roles)
    assert set(roles.values()) <= {"app", "router", "router-network", "network"}, (env, roles)
    assert not [name for name in roles if name.endswith("-next")], (env, roles)


def test_no_container_is_left_behind(seeded: Seeded, docker_client: docker.DockerClient) -> None:
    """After every round: app containers are exactly the routers' servers, no job or lease."""
    for env in ENVIRONMENTS:
        _assert_nothing_left(seeded, docker_client, env)


# -- the engine itself --------------------------------------------------------------


@pytest.fixture(scope="module")
def private_engine(docker_client: docker.DockerClient) -> Iterator[PrivateEngine]:
    """A second dockerd of this suite's own, removed at the end whatever happened."""
    if os.geteuid() != 0:
        _unavailable("the engine rounds start a dockerd of their own, which needs root")
    ensure_tools()
    clean_leftovers()
    substitutes = json.loads(real_substitutes().read_text(encoding="utf-8"))
    router_images = ["haproxy:2.6", substitutes.get("haproxy:2.6", "")]
    engine = PrivateEngine(host=docker_client)
    try:
        took = engine.start()
        copied = engine.load([name for name in router_images if name])
        print(
            f"\nchaos engine at {engine.endpoint} (pool {engine.pool}) answered in {took:.1f} s;"
            f" loaded {', '.join(copied) or 'nothing'}"
        )
        _assert_host_engine_untouched(docker_client)
        yield engine
    finally:
        engine.close()


def _assert_host_engine_untouched(client: docker.DockerClient) -> None:
    """The machine's engine still starts a container on its default bridge (docker0)."""
    substitutes = json.loads(real_substitutes().read_text(encoding="utf-8"))
    image = substitutes.get("debian:bookworm-slim", "debian:bookworm-slim")
    client.containers.run(image, ["true"], remove=True, network_mode="bridge")


@pytest.fixture(scope="module")
def seeded_on_private(
    tmp_path_factory: pytest.TempPathFactory, registry: str, private_engine: PrivateEngine
) -> Iterator[Seeded]:
    """The same environments, each on the private engine; releases in the host registry."""
    environments = {
        name: {**settings, "engine": private_engine.endpoint}
        for name, settings in ENVIRONMENTS.items()
    }
    yield from seed_service(tmp_path_factory, registry, environments, prefix="chaosd")


@pytest.mark.parametrize("how", ["restart", "kill -9"])
def test_the_engine_restarted_mid_rollout_comes_back_consistent(
    seeded_on_private: Seeded,
    private_engine: PrivateEngine,
    how: str,
    rng: random.Random,
    rounds: list[Round],
) -> None:
    """dockerd stopped (SIGTERM, or SIGKILL) and started again at a random step of a rollout.

    The engine runs with live-restore (see tests/chaos/private_engine.py for why),
    so the router and the replicas keep running; the userland proxy behind the
    router's published port dies with dockerd and comes back with it, so requests
    fail while the engine is away. They are counted and printed, not forbidden;
    once the recovery has run none may fail.
    """
    seeded = seeded_on_private
    env = rng.choice(list(ENVIRONMENTS))
    if not _status(seeded, env)["serving"]:
        _promote(seeded, OLD, env)
    current = assert_consistent(seeded, env, f"{env} before the engine round")
    target = NEW if current == OLD else OLD
    fraction = rng.uniform(0.1, 0.9)
    recovery = [part.format(env=env, version=target) for part in rng.choice(RECOVERIES)]
    sig = signal.SIGTERM if how == "restart" else signal.SIGKILL
    with Load(seeded.url(env), threads=4) as load:
        load.wait_for(50)
        after = _last_deployment(seeded, env)
        router = private_engine.client.containers.get(f"dockroll-router-{seeded.service}-{env}")
        process = _start(seeded, "deploy", target, "--env", env)
        try:
            reached = _when_step_runs(seeded, env, process, fraction, after)
            down = private_engine.restart(sig)
            out, _ = process.communicate(timeout=300)
        finally:
            if process.stdout is not None and not process.stdout.closed:
                _kill(process)  # the round failed before the deploy ended
        where = (
            f"{env}: dockerd {'restarted' if how == 'restart' else 'killed with SIGKILL'} at "
            f"step {reached} ({down:.1f} s down); the deploy exited {process.returncode}, "
            f"then {recovery}"
        )
        fixed = _dockroll(seeded, *recovery)
        where += f" exited {fixed.returncode}"
        started = router.attrs["State"]["StartedAt"]
        router.reload()
        survived = router.attrs["State"]["StartedAt"] == started and router.status == "running"
        where += f"; the router {'kept running' if survived else 'was restarted'}"
        assert fixed.returncode in (0, 2, 10), f"{where}\n{out}\n{fixed.stdout}{fixed.stderr}"
        # Whatever the recovery chose, a plain promotion of the target settles it all.
        _promote(seeded, target, env)
        settled = time.monotonic()
        load.wait_for(len(load.answers) + 100)
    serving = assert_consistent(seeded, env, where)
    assert serving == target, f"{where}\n{out}"
    _assert_nothing_left(seeded, private_engine.client, env)
    _assert_host_engine_untouched(private_engine.host)
    failed = [a.at for a in load.failures]
    if failed:  # fast refusals make the count large: the window says more
        where += f"; requests failed for {max(failed) - min(failed):.1f} s"
    rounds.append(Round(where, len(load.failures), len(load.answers), serving))
    assert len(load.answers) >= 100, where
    after_recovery = [a for a in load.failures if a.at >= settled]
    assert after_recovery == [], (where, after_recovery[:3])
