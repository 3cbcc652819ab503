"""Deployment locks on the real engine: two clients stand for two machines sharing it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from dockroll import devenv
from dockroll.engine.docker import DockerEngine
from dockroll.errors import DevEnvError, LockHeld, LockLost
from dockroll.ledger import DeploymentStatus
from dockroll.lock import EnvironmentLock
from dockroll.pipeline.deploy import deploy_release
from tests.conftest import _unavailable
from tests.integration.rollout_support import (
    Seeded,
    cleanup,
    cli_env,
    seed_service,
    state_of,
    versions,
    wait_serving,
)

pytestmark = pytest.mark.integration

LOCK_IMAGE = "dockroll.local/haproxy:2.6"


@pytest.fixture
def service(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"lock-{uuid.uuid4().hex[:8]}"
    try:
        docker_client.images.get(LOCK_IMAGE)
    except docker.errors.ImageNotFound:
        # What `dockroll dev up --with router` does: pull haproxy:2.6 or build its stand-in.
        try:
            provided = str(devenv.ensure_base_image(devenv.HAPROXY)[-1].facts["image"])
        except DevEnvError as exc:
            _unavailable(f"{LOCK_IMAGE} is missing and could not be provided: {exc}")
        if provided != LOCK_IMAGE:  # the official image was pulled: give it the name used here
            docker_client.images.get(provided).tag(LOCK_IMAGE)
    yield name
    cleanup(docker_client, name)


@pytest.fixture
def machines(service: str) -> Iterator[tuple[EnvironmentLock, EnvironmentLock]]:
    """The same environment's lock through two separate engine clients."""
    first, second = DockerEngine(), DockerEngine()
    yield (
        EnvironmentLock(first, service, "prod", image=LOCK_IMAGE),
        EnvironmentLock(second, service, "prod", image=LOCK_IMAGE),
    )
    first.close()
    second.close()


def test_the_second_machine_fails_fast_naming_the_holder(
    machines: tuple[EnvironmentLock, EnvironmentLock],
) -> None:
    a, b = machines
    a.acquire("ada@laptop", reason="release 1.4", operation="deploy")

    started = time.monotonic()
    with pytest.raises(LockHeld) as raised:
        b.acquire("bob@ci", operation="deploy")

    assert time.monotonic() - started < 2.0
    assert raised.value.exit_code == 12
    assert "ada@laptop" in raised.value.message
    assert "release 1.4" in raised.value.message
    held = b.status()
    assert held is not None
    assert held.holder == "ada@laptop"


def test_waiting_succeeds_once_the_holder_releases(
    machines: tuple[EnvironmentLock, EnvironmentLock],
) -> None:
    a, b = machines
    a.acquire("ada", operation="deploy")
    releaser = threading.Timer(1.0, a.release, kwargs={"holder": "ada"})
    releaser.start()
    started = time.monotonic()
    info = b.acquire("bob", operation="deploy", wait=15)
    waited = time.monotonic() - started
    releaser.join()

    assert info.holder == "bob"
    assert 0.8 <= waited < 10
    status = a.status()
    assert status is not None
    assert status.holder == "bob"


def test_an_expired_lock_is_taken_over_and_its_old_holder_cannot_release_the_new_one(
    machines: tuple[EnvironmentLock, EnvironmentLock],
) -> None:
    a, b = machines
    with a.held("ada", operation="deploy", ttl=1):
        time.sleep(1.5)
        taken = b.acquire("bob", operation="deploy")
        assert taken.holder == "bob"
    # Leaving ada's block must not free bob's lock.
    status = b.status()
    assert status is not None
    assert status.holder == "bob"


def test_a_renewed_lock_outlives_its_ttl_and_a_lapsed_one_is_lost(
    machines: tuple[EnvironmentLock, EnvironmentLock],
) -> None:
    a, b = machines
    a.acquire("ada", operation="deploy", ttl=2)
    renewed_until = time.monotonic() + 5
    while time.monotonic() < renewed_until:  # more than twice the TTL, renewed as it goes
        a.renew()
        with pytest.raises(LockHeld, match="renewed"):
            b.acquire("bob", operation="deploy")
        time.sleep(0.5)

    time.sleep(2.5)  # the holder stalls for longer than the TTL
    assert b.acquire("bob", operation="deploy").holder == "bob"
    with pytest.raises(LockLost, match="taken over"):
        a.renew()
    status = b.status()
    assert status is not None
    assert status.holder == "bob"
    assert status.renewed is None  # ada's leases went with her lock


def test_only_the_holder_releases_unless_forced(
    machines: tuple[EnvironmentLock, EnvironmentLock],
) -> None:
    a, b = machines
    a.acquire("ada", operation="deploy")

    with pytest.raises(LockHeld, match="belongs to ada"):
        b.release("bob")
    assert b.status() is not None

    released = b.release("bob", force=True)
    assert released is not None
    assert released.holder == "ada"
    assert a.status() is None


_HOLD = """
import sys, time
from dockroll.engine.docker import DockerEngine
from dockroll.lock import EnvironmentLock
lock = EnvironmentLock(DockerEngine(), sys.argv[1], "prod", image=sys.argv[2])
lock.acquire("killed-deploy", operation="deploy")
print("held", flush=True)
time.sleep(120)
"""


def test_a_lock_whose_holder_died_on_this_host_is_taken_over(
    service: str, machines: tuple[EnvironmentLock, EnvironmentLock]
) -> None:
    _, b = machines
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, service, LOCK_IMAGE],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        # Alive: the lock holds, although its TTL is far away either way.
        with pytest.raises(LockHeld, match="killed-deploy"):
            b.acquire("bob", operation="deploy")
        status = b.status()
        assert status is not None
        assert status.host.endswith(f":{holder.pid}")
        assert not status.holder_gone()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()

    status = b.status()
    assert status is not None
    assert status.holder_gone()
    assert not status.expired()
    assert b.acquire("bob", operation="deploy").holder == "bob"


def test_a_holder_on_another_host_is_never_judged_dead_from_here(
    machines: tuple[EnvironmentLock, EnvironmentLock], docker_client: docker.DockerClient
) -> None:
    a, b = machines
    info = a.acquire("ada", operation="deploy")
    # Rewrite the host label as another machine would have written it.
    container = docker_client.containers.get(info.container_id)
    container.remove(force=True)
    labels = {**container.labels, "dev.dockroll.lock.host": "elsewhere:1"}
    docker_client.api.create_container(LOCK_IMAGE, name=a.name, labels=labels, command=["true"])

    status = b.status()
    assert status is not None
    assert not status.holder_gone()
    with pytest.raises(LockHeld):
        b.acquire("bob", operation="deploy")


# -- a deploy while the lock is held -------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_service(
        tmp_path_factory, registry, {"locked": {"strategy": "rolling"}}, prefix="lockdep"
    )


def test_a_deploy_while_the_lock_is_held_fails_fast_and_changes_nothing(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    with state_of(seeded), seeded.ledger() as ledger:
        deploy_release(seeded.config(), "locked", seeded.releases["v1.0.0"], ledger)
        wait_serving(seeded.url("locked"), "v1.0.0")
        before = ledger.deployments(seeded.service, "locked")
        other = EnvironmentLock(DockerEngine(), seeded.service, "locked", image=LOCK_IMAGE)
        other.acquire("carol@other-machine", reason="hotfix", operation="deploy")
        try:
            started = time.monotonic()
            with pytest.raises(LockHeld, match="carol@other-machine"):
                deploy_release(seeded.config(), "locked", seeded.releases["v1.1.0"], ledger)
            assert time.monotonic() - started < 10

            # The CLI says the same and exits 12.
            done = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), "dockroll"),
                 "deploy", "v1.1.0", "--env", "locked"],
                env=cli_env(seeded),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )  # fmt: skip
            assert done.returncode == 12, done.stdout + done.stderr
            assert "carol@other-machine" in done.stdout + done.stderr
        finally:
            other.release(force=True)
        after = ledger.deployments(seeded.service, "locked")
    assert [d.id for d in after] == [d.id for d in before]
    assert after[0].status is DeploymentStatus.SUCCEEDED
    assert versions(seeded.url("locked"), 20) == {"v1.0.0": 20}
