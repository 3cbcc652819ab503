"""`dockroll deploy` killed with SIGKILL mid-rollout, then brought back, under constant load.

The killed process can neither compensate nor release its lock. What must hold:
the ledger shows the deployment unfinished; the next `deploy`, `resume` or
`rollback` takes over the dead holder's lock and leaves the environment
consistent (one release serving, every app container in the router, nothing
orphaned); and the router never points at nothing, so the load sees no failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import docker
import pytest

from dockroll import labels
from dockroll.engine.docker import DockerEngine
from dockroll.ledger import Deployment, DeploymentStatus, Ledger, StepStatus
from dockroll.lock import EnvironmentLock
from dockroll.pipeline.deploy import deploy_release, unfinished_deployment
from dockroll.router.haproxy import HaproxyRouter
from tests.integration.rollout_support import (
    DOCKROLL,
    Load,
    Seeded,
    cli_env,
    run_dockroll,
    seed_service,
    state_of,
    versions,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENV = "crash"
OLD, NEW = "v1.0.0", "v1.1.0"


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_service(
        tmp_path_factory,
        registry,
        {ENV: {"strategy": "rolling", "replicas": 2, "drain_timeout": "5s"}},
        prefix="crash",
    )


def _kill_when_running(seeded: Seeded, version: str, step: int, last_id: int) -> Deployment:
    """Start `dockroll deploy`, SIGKILL it once step ``step`` (or a later one) runs."""
    process = subprocess.Popen(
        [DOCKROLL, "deploy", version, "--env", ENV],
        env=cli_env(seeded),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        with seeded.ledger() as ledger:
            while time.monotonic() < deadline:
                assert process.poll() is None, "the deploy finished before it could be killed"
                latest = ledger.deployments(seeded.service, ENV, limit=1)
                if latest and latest[0].id > last_id and _step_runs(ledger, latest[0].id, step):
                    # Freeze the deploy, then look again: between the first look and a
                    # kill it may have finished the step and not yet begun the next one.
                    os.kill(process.pid, signal.SIGSTOP)
                    if _step_runs(ledger, latest[0].id, step):
                        os.kill(process.pid, signal.SIGKILL)
                        process.wait()
                        return ledger.deployment(latest[0].id)
                    os.kill(process.pid, signal.SIGCONT)
                time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    raise AssertionError(f"step {step} never ran")


def _step_runs(ledger: Ledger, deployment_id: int, step: int) -> bool:
    steps = ledger.deployment(deployment_id).steps
    return any(s.index >= step and s.status is StepStatus.RUNNING for s in steps)


def _assert_consistent(seeded: Seeded, docker_client: docker.DockerClient, version: str) -> None:
    """One release serves on every replica; each app container is in the router; no lock."""
    config = seeded.config()
    engine = DockerEngine()
    try:
        servers = HaproxyRouter.for_environment(engine, config, ENV).servers()
    finally:
        engine.close()
    containers = docker_client.containers.list(
        all=True, filters={"label": [f"{labels.SERVICE}={seeded.service}", f"{labels.ROLE}=app"]}
    )
    assert all(c.status == "running" for c in containers), [(c.name, c.status) for c in containers]
    assert {c.name for c in containers} == {s.name for s in servers}, "orphans or dangling servers"
    digest = {c.name: c.labels[labels.DIGEST] for c in containers}
    serving = [s for s in servers if s.takes_traffic]
    assert len(serving) == config.environment(ENV).replicas, [
        (s.name, s.state.value, s.health.value, s.weight, s.check_status) for s in servers
    ]
    assert {digest[s.name] for s in serving} == {seeded.releases[version].digest}
    lock = docker_client.containers.list(
        all=True, filters={"label": [f"{labels.SERVICE}={seeded.service}", f"{labels.ROLE}=lock"]}
    )
    assert lock == [], "the recovering command must release the lock it took over"
    assert versions(seeded.url(ENV), 20) == {version: 20}


def _unfinished(seeded: Seeded) -> Deployment | None:
    with seeded.ledger() as ledger:
        return unfinished_deployment(ledger, seeded.service, ENV)


RECOVERIES = [
    # (version deployed and killed, kill once this step runs, recovery command, then serving)
    (NEW, 2, ("resume", "--env", ENV), NEW),  # await-healthy of the first new replica
    (OLD, 6, ("deploy", OLD, "--env", ENV), OLD),  # stopping the first old replica
    (NEW, 9, ("rollback", "--to", OLD, "--env", ENV), OLD),  # first old one already gone
    (NEW, 11, ("deploy", NEW, "--env", ENV), NEW),  # draining the last old replica
]


def test_a_killed_deploy_is_recovered_without_dropping_a_request(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    with state_of(seeded), seeded.ledger() as ledger:
        deploy_release(seeded.config(), ENV, seeded.releases[OLD], ledger)
    wait_serving(seeded.url(ENV), OLD)
    serving = OLD
    report = []

    with Load(seeded.url(ENV), threads=4) as load:
        for version, step, command, expected in RECOVERIES:
            with seeded.ledger() as ledger:
                last_id = ledger.deployments(seeded.service, ENV, limit=1)[0].id
            killed_at = time.monotonic()
            killed = _kill_when_running(seeded, version, step, last_id)
            where = f"deploy {version} killed at step {step}, recovered by {' '.join(command)}"

            # What `dockroll status` reads: the deployment is unfinished, its step running.
            unfinished = _unfinished(seeded)
            assert unfinished is not None, where
            assert unfinished.id == killed.id, where
            assert unfinished.status is DeploymentStatus.RUNNING, where
            running = [s.index for s in unfinished.steps if s.status is StepStatus.RUNNING]
            assert running, where
            assert running[0] >= step, where
            # Its lock stays behind, held by a process that no longer exists.
            held = EnvironmentLock(DockerEngine(), seeded.service, ENV, image="unused").status()
            assert held is not None, where
            assert held.holder_gone(), where
            assert not held.expired(), where

            recovered = run_dockroll(seeded, *command)
            assert recovered.returncode == 0, f"{where}:\n{recovered.stdout}{recovered.stderr}"
            assert _unfinished(seeded) is None, where
            _assert_consistent(seeded, docker_client, expected)
            failures = [a for a in load.failures if a.at >= killed_at]
            report.append((where, running[0], len(failures)))
            serving = expected
        load.wait_for(len(load.answers) + 100)

    print(f"\n{len(load.answers)} requests, {len(load.failures)} failed; {report}")
    assert len(load.answers) >= 1000
    assert load.failures == [], load.failures[:5]
    assert set(load.versions()) <= {OLD, NEW}
    assert serving == NEW
