"""Deploys, rollbacks and canaries of the sample service on the real engine, registry and HAProxy.

Every rollout here runs under constant load where it matters and checks what
the user is promised: no request fails, each answer comes from the old or the
new release, and a failed rollout leaves everything as it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import docker
import pytest

from dockroll import labels
from dockroll.cli.app import main
from dockroll.config import Config, MigrationConfig
from dockroll.errors import LockHeld, PolicyRefusal, RolloutError
from dockroll.events import Progress
from dockroll.ledger import DeploymentStatus, StepStatus
from dockroll.lock import EnvironmentLock
from dockroll.pipeline.deploy import (
    continue_rollout,
    deploy_release,
    open_environment,
    rollback_release,
)
from dockroll.pipeline.status import environment_status
from dockroll.refs import ImageRef, parse_reference
from dockroll.registry import RegistryClient, retag
from dockroll.rollout.executor import observe
from dockroll.router.haproxy import BACKEND
from tests.integration.rollout_support import (
    BAD,
    Load,
    Seeded,
    seed_service,
    state_of,
    versions,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD, NEW = "v1.0.0", "v1.1.0"
ENVIRONMENTS = {
    "rolling": {"strategy": "rolling", "replicas": 2, "drain_timeout": "5s"},
    "bluegreen": {"strategy": "blue-green", "replicas": 2, "blue_green": {"keep_previous": "5m"}},
    "canary": {
        "strategy": "canary",
        "replicas": 2,
        "canary": {"steps": [25, 100], "pause": None},
    },
    "bad": {"strategy": "rolling", "replicas": 2},
    "migrate": {"strategy": "rolling", "replicas": 1},
    "router": {"strategy": "rolling", "replicas": 2},
    "tagged": {"strategy": "rolling", "replicas": 1, "tags": ["tagged", "tagged-{{version}}"]},
    "checked": {"strategy": "rolling", "replicas": 1},
    "stopped": {"strategy": "rolling", "replicas": 1},
    "restarted": {"strategy": "rolling", "replicas": 2},
}


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_service(tmp_path_factory, registry, ENVIRONMENTS, prefix="deploy")


@pytest.fixture
def env(seeded: Seeded) -> Iterator[Seeded]:
    with state_of(seeded):
        yield seeded


def _deploy(seeded: Seeded, environment: str, version: str, config: Config | None = None) -> str:
    with seeded.ledger() as ledger:
        outcome = deploy_release(
            config or seeded.config(), environment, seeded.releases[version], ledger
        )
    return outcome.status if outcome else "unchanged"


def _app_containers(client: docker.DockerClient, seeded: Seeded, environment: str) -> list[object]:
    return list(
        client.containers.list(
            all=True,
            filters={
                "label": [
                    f"{labels.SERVICE}={seeded.service}",
                    f"{labels.ENVIRONMENT}={environment}",
                    f"{labels.ROLE}=app",
                ]
            },
        )
    )


def test_rolling_update_under_load_drops_nothing(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    assert _deploy(env, "rolling", OLD) == "succeeded"
    wait_serving(env.url("rolling"), OLD)

    with Load(env.url("rolling"), threads=6) as load:
        load.wait_for(200)
        assert _deploy(env, "rolling", NEW) == "succeeded"
        load.wait_for(1200)

    answered = load.versions()
    print(f"rolling under load: {len(load.answers)} requests, {answered}")
    assert len(load.answers) >= 1000
    assert load.failures == [], load.failures[:5]
    assert set(answered) <= {OLD, NEW}
    assert answered[NEW] > 0
    assert versions(env.url("rolling"), 40) == {NEW: 40}

    # Every app container carries the labels status and rollback read.
    containers = _app_containers(docker_client, env, "rolling")
    assert len(containers) == 2
    release = env.releases[NEW]
    for container in containers:
        found = container.labels  # type: ignore[attr-defined]
        assert found[labels.SERVICE] == env.service
        assert found[labels.ENVIRONMENT] == "rolling"
        assert found[labels.RELEASE] == str(release.id)
        assert found[labels.VERSION] == NEW
        assert found[labels.DIGEST] == release.digest
        assert found[labels.SLOT] == "r"
        assert len(found[labels.CONFIG_HASH]) == 16
        assert container.attrs["Config"]["Image"].endswith("@" + release.digest)  # type: ignore[attr-defined]


def test_blue_green_switches_and_rolls_back_within_a_second(env: Seeded) -> None:
    url = env.url("bluegreen")
    assert _deploy(env, "bluegreen", OLD) == "succeeded"
    wait_serving(url, OLD)

    with Load(url, threads=6) as load:
        load.wait_for(200)
        assert _deploy(env, "bluegreen", NEW) == "succeeded"
        switched = time.monotonic()
        load.wait_for(len(load.answers) + 300)
        with env.ledger() as ledger:
            started = time.monotonic()
            outcome = rollback_release(env.config(), "bluegreen", ledger)
            seconds = time.monotonic() - started
        back = time.monotonic()
        load.wait_for(len(load.answers) + 300)

    print(f"blue-green rollback took {seconds:.3f}s; {len(load.answers)} requests under load")
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert outcome.deployment.kind.value == "rollback"
    assert seconds < 1.0
    assert len(load.answers) >= 800
    assert load.failures == [], load.failures[:5]
    assert load.versions(since=switched).keys() <= {NEW, OLD}
    # Every request sent after the rollback call returned was answered by the old release.
    assert load.versions(since=back).keys() == {OLD}
    assert versions(url, 40) == {OLD: 40}


def test_canary_pauses_at_its_step_then_abort_goes_back_and_promote_goes_on(
    env: Seeded,
) -> None:
    url = env.url("canary")
    assert _deploy(env, "canary", OLD) == "succeeded"
    wait_serving(url, OLD)

    # Paused at 25 %: about a quarter of the answers come from the canary.
    assert _deploy(env, "canary", NEW) == "paused"
    shares = versions(url, 400)
    print(f"canary at 25%: {shares}")
    assert set(shares) == {OLD, NEW}
    assert 0.15 <= shares[NEW] / 400 <= 0.35

    with env.ledger() as ledger:
        aborted = continue_rollout(env.config(), "canary", ledger, abort=True)
    assert aborted.status == "aborted"
    assert versions(url, 40) == {OLD: 40}

    with Load(url, threads=4) as load:
        assert _deploy(env, "canary", NEW) == "paused"
        with env.ledger() as ledger:
            promoted = continue_rollout(env.config(), "canary", ledger)
        load.wait_for(len(load.answers) + 100)
    assert promoted.status == "succeeded"
    assert len(load.answers) >= 100
    assert load.failures == [], load.failures[:5]
    assert versions(url, 40) == {NEW: 40}


def test_a_release_that_never_gets_ready_changes_nothing(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    url = env.url("bad")
    assert _deploy(env, "bad", OLD) == "succeeded"
    wait_serving(url, OLD)
    with env.ledger() as ledger:
        environment = open_environment(env.config(), "bad", ledger)
    before_weights = {s.name: s.weight for s in environment.router.servers()}
    before_ids = {c.id for c in _app_containers(docker_client, env, "bad")}  # type: ignore[attr-defined]

    # It never gets ready, so waiting long proves nothing: give up after 8 s.
    config = env.config()
    impatient = config.model_copy(
        update={"health": config.health.model_copy(update={"start_timeout": 8.0})}
    )
    with Load(url, threads=2) as load:
        with pytest.raises(RolloutError) as raised:
            _deploy(env, "bad", BAD, impatient)
        load.wait_for(len(load.answers) + 50)

    assert raised.value.exit_code == 11
    # The failed rollout took at least its 8 s start timeout; the load ran all along.
    assert len(load.answers) >= 100
    assert load.failures == [], load.failures[:5]
    assert {s.name: s.weight for s in environment.router.servers()} == before_weights
    after = _app_containers(docker_client, env, "bad")
    assert {c.id for c in after} == before_ids  # type: ignore[attr-defined]
    bad_digest = env.releases[BAD].digest
    assert not [c for c in after if c.labels.get(labels.DIGEST) == bad_digest]  # type: ignore[attr-defined]
    with env.ledger() as ledger:
        latest = ledger.deployments(env.service, "bad", limit=1)[0]
        assert latest.status is DeploymentStatus.ROLLED_BACK
        assert latest.version == BAD
    assert versions(url, 40) == {OLD: 40}


def test_a_failing_migration_stops_before_any_new_replica(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    assert _deploy(env, "migrate", OLD) == "succeeded"
    config = env.config()
    failing = config.environments["migrate"].model_copy(
        update={"migrate": MigrationConfig(command=["sh", "-c", "exit 3"])}
    )
    config = config.model_copy(update={"environments": {**config.environments, "migrate": failing}})
    said: list[str] = []

    def progress(event: Progress) -> None:
        said.append(event.message)

    with env.ledger() as ledger, pytest.raises(RolloutError) as raised:
        deploy_release(config, "migrate", env.releases[NEW], ledger, progress=progress)

    assert "exited 3" in raised.value.message
    assert not [m for m in said if m.startswith("started ")], said
    with env.ledger() as ledger:
        latest = ledger.deployment(ledger.deployments(env.service, "migrate", limit=1)[0].id)
    steps = sorted(latest.steps, key=lambda s: s.index)
    assert steps[1].kind == "run-job"
    assert steps[1].status is StepStatus.FAILED
    assert all(s.status is StepStatus.PENDING for s in steps[2:])
    new_digest = env.releases[NEW].digest
    every = docker_client.containers.list(
        all=True,
        filters={"label": [f"{labels.SERVICE}={env.service}", f"{labels.ENVIRONMENT}=migrate"]},
    )
    assert every
    assert not [c for c in every if c.labels.get(labels.DIGEST) == new_digest]
    assert versions(env.url("migrate"), 20) == {OLD: 20}


def test_a_removed_router_comes_back_with_the_running_replicas(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    url = env.url("router")
    assert _deploy(env, "router", OLD) == "succeeded"
    wait_serving(url, OLD)
    docker_client.containers.get(f"dockroll-router-{env.service}-router").remove(force=True)

    with env.ledger() as ledger:
        environment = open_environment(env.config(), "router", ledger)
        replicas = observe(environment.engine, environment.router, env.service, "router")

    assert len(replicas.replicas) == 2
    assert all(r.weight == 100 for r in replicas.replicas)
    wait_serving(url, OLD, timeout=10)
    assert versions(url, 20) == {OLD: 20}
    # And the next deploy goes through the recreated router.
    assert _deploy(env, "router", NEW) == "succeeded"
    assert versions(url, 20) == {NEW: 20}


def test_a_restarted_router_serves_again_by_itself_and_commands_restore_under_the_lock(
    env: Seeded, docker_client: docker.DockerClient
) -> None:
    """A restarted router adds its replicas back itself; one that cannot (no file of them,
    as a router an older dockroll started) gets them from a command, only under the lock:
    a rollout holding it may be adding servers."""
    url = env.url("restarted")
    assert _deploy(env, "restarted", OLD) == "succeeded"
    router = docker_client.containers.get(f"dockroll-router-{env.service}-restarted")
    router.restart(timeout=1)
    wait_serving(url, OLD, timeout=10)  # no command ran
    assert versions(url, 20) == {OLD: 20}
    said: list[str] = []
    with env.ledger() as ledger:
        unchanged = deploy_release(
            env.config(), "restarted", env.releases[OLD], ledger, progress=said.append
        )
    assert unchanged is None
    assert said  # the deploy reported its progress
    assert not [p for p in said if isinstance(p, Progress) and "restored" in p.message]

    with env.ledger() as ledger:
        environment = open_environment(env.config(), "restarted", ledger, said.append)
    (environment.router.directory / "conf" / "replicas.state").unlink()
    router.restart(timeout=1)

    with env.ledger() as ledger:
        environment = open_environment(env.config(), "restarted", ledger, said.append)
        assert environment.router.servers() == ()
        lock = environment.lock
        other = EnvironmentLock(lock.engine, lock.service, lock.environment, image=lock.image)
        with other.held("someone else", operation="deploy"):
            with pytest.raises(LockHeld):
                deploy_release(
                    env.config(), "restarted", env.releases[OLD], ledger, env=environment
                )
            assert environment.router.servers() == ()
        # Under the lock, the next command puts them back before it looks at what runs.
        again = deploy_release(
            env.config(), "restarted", env.releases[OLD], ledger, progress=said.append
        )

    assert again is None
    restored = [p.message for p in said if isinstance(p, Progress) and "restored" in p.message]
    assert len(restored) == 1, said
    wait_serving(url, OLD, timeout=10)
    assert versions(url, 20) == {OLD: 20}


def _tag_digest(env: Seeded, tag: str) -> str | None:
    ref = parse_reference(env.config().image)
    with RegistryClient(ref.registry) as client:
        return client.manifest_digest(ref.repository, tag)


def test_environment_tags_follow_what_runs(env: Seeded) -> None:
    old, new, bad = env.releases[OLD], env.releases[NEW], env.releases[BAD]
    assert _deploy(env, "tagged", OLD) == "succeeded"
    assert _tag_digest(env, "tagged") == old.digest
    assert _deploy(env, "tagged", NEW) == "succeeded"
    assert _tag_digest(env, "tagged") == new.digest
    with env.ledger() as ledger:
        rollback_release(env.config(), "tagged", ledger)
    assert _tag_digest(env, "tagged") == old.digest
    assert versions(env.url("tagged"), 10) == {OLD: 10}

    # A promotion moves the tag before the rollout; a rollout that fails moves it back.
    ref = parse_reference(env.config().image)
    with RegistryClient(ref.registry) as client:
        retag(client, ImageRef(ref.registry, ref.repository, digest=bad.digest), "tagged")
    config = env.config()
    impatient = config.model_copy(
        update={"health": config.health.model_copy(update={"start_timeout": 6.0})}
    )
    with pytest.raises(RolloutError):
        _deploy(env, "tagged", BAD, impatient)
    assert _tag_digest(env, "tagged") == old.digest

    # Rolling back "to" a release is for releases the environment ran: not for one it refused.
    with env.ledger() as ledger, pytest.raises(PolicyRefusal, match="never ran in tagged"):
        rollback_release(env.config(), "tagged", ledger, to=BAD)


def test_status_shows_the_routers_view_of_a_replica_its_checks_cannot_reach(env: Seeded) -> None:
    assert _deploy(env, "checked", OLD) == "succeeded"
    config = env.config()
    with env.ledger() as ledger:
        environment = open_environment(config, "checked", ledger)
        [server] = environment.router.servers()
        # Point the router's check at a port nothing listens on: the engine still
        # finds the container healthy, the router's checks are refused (L4CON).
        answer = environment.router.api.execute(
            f"set server {BACKEND}/{server.name} addr {server.address} port 1"
        )
        assert "port changed" in answer, answer
        # The engine's HEALTHCHECK may still say "starting" right after the rollout,
        # which the router's checks (not the HEALTHCHECK) gate.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [replica] = environment_status(config, "checked", ledger).replicas
            if replica.router_health == "down" and replica.health == "healthy":
                break
            time.sleep(0.2)
    assert replica.health == "healthy"
    assert replica.router_check == "L4CON"
    assert replica.health_summary == "healthy (router: DOWN L4CON)"


def test_status_of_an_environment_whose_router_is_stopped_exits_10(
    env: Seeded, docker_client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _deploy(env, "stopped", OLD) == "succeeded"
    assert main(["status", "--env", "stopped"]) == 0
    capsys.readouterr()
    docker_client.containers.get(f"dockroll-router-{env.service}-stopped").stop(timeout=1)

    assert main(["--json", "status", "--env", "stopped"]) == 10
    captured = capsys.readouterr()
    [shown] = json.loads(captured.out)["environments"]
    assert shown["engine_reachable"] is True
    assert shown["router_reachable"] is False
    assert shown["router"].startswith("not answering: ")
    assert "status is incomplete: the router of stopped could not be read" in captured.err
