"""Deploys to an engine on another host, over ssh://, measured from this machine.

The "remote host" is a Docker-in-Docker node with its own dockerd and sshd
(:mod:`tests.integration.remote_support`). dockroll reaches its engine
through the system ssh client, pulls releases from the registry at the
address the node sees it (the environment's ``registry:``), carries the
local HAProxy stand-in image over, drives the router's runtime API through
the engine connection, and gives blue-green's verify command a TARGET_URL
tunnelled to this machine. Traffic goes to the router port the node
publishes on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockroll import labels
from dockroll.engine.docker import DockerEngine
from dockroll.errors import EngineError
from dockroll.pipeline.deploy import rollback_release
from tests.conftest import free_port
from tests.integration.remote_support import (
    NEW,
    OLD,
    VERIFY,
    SshHost,
    deploy_version,
    remote_cluster,
    remote_environment,
    ssh_host,
)
from tests.integration.rollout_support import (
    Load,
    Seeded,
    run_dockroll,
    seed_service,
    state_of,
    versions,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def remote(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[tuple[Seeded, SshHost, Path]]:
    tmp = tmp_path_factory.mktemp("remote")
    verify_log = tmp / "verified.jsonl"
    with remote_cluster("rh") as cluster:
        ssh_port = free_port()
        engine = f"ssh://root@127.0.0.1:{ssh_port}"
        environments = {
            "rolling": remote_environment(
                engine, cluster.registry, strategy="rolling", drain_timeout="5s"
            ),
            "bluegreen": remote_environment(
                engine,
                cluster.registry,
                strategy="blue-green",
                blue_green={
                    "keep_previous": "5m",
                    "verify": [sys.executable, "-c", VERIFY, str(verify_log)],
                },
            ),
        }
        for seeded in seed_service(tmp_path_factory, registry, environments, prefix="remote"):
            with (
                ssh_host(
                    tmp,
                    cluster=cluster.name,
                    network=cluster.network,
                    registry=cluster.registry,
                    ssh_port=ssh_port,
                    router_ports=list(seeded.ports.values()),
                ) as host,
                state_of(seeded),
            ):
                yield seeded, host, verify_log


def test_an_unknown_host_key_is_an_engine_error_naming_ssh_keyscan(
    remote: tuple[Seeded, SshHost, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, host, _ = remote
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    monkeypatch.setenv("DOCKROLL_TEST_KNOWN_HOSTS", str(empty))

    with pytest.raises(EngineError) as caught:
        DockerEngine(host.endpoint).ping()

    assert "not in known_hosts" in caught.value.message
    assert caught.value.hint is not None
    assert f"ssh-keyscan -p {host.ssh_port} 127.0.0.1" in caught.value.hint
    assert empty.read_text() == ""  # nothing was recorded behind the user's back


def test_rolling_update_over_ssh_under_load_drops_nothing(
    remote: tuple[Seeded, SshHost, Path], docker_client: docker.DockerClient
) -> None:
    seeded, host, _ = remote
    url = seeded.url("rolling")
    assert deploy_version(seeded, "rolling", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    with Load(url, threads=4) as load:
        load.wait_for(100, timeout=60)
        assert deploy_version(seeded, "rolling", NEW) == "succeeded"
        load.wait_for(len(load.answers) + 200, timeout=60)

    print(f"rolling over ssh: {len(load.answers)} requests, {load.versions()}")
    assert load.failures == [], load.failures[:5]
    assert set(load.versions()) <= {OLD, NEW}
    assert versions(url, 20) == {NEW: 20}

    # The replicas and the router run on the remote engine, pulled through its registry address.
    remote_engine = DockerEngine(host.endpoint)
    try:
        replicas = remote_engine.containers(
            {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "rolling", labels.ROLE: "app"}
        )
        assert len(replicas) == 2
        assert all(r.image.startswith(f"{host.registry}/") for r in replicas)
        router = remote_engine.container(f"dockroll-router-{seeded.service}-rolling")
        assert router is not None
        assert router.running
        # Nothing publishes the runtime API: only the public and metrics ports, which the
        # holder of the router's network namespace publishes (HAProxy runs in it).
        holder = remote_engine.container(f"dockroll-router-{seeded.service}-rolling-net")
        assert holder is not None
        assert sorted(holder.ports) == [8080, 8404]
        assert router.ports == {}
    finally:
        remote_engine.close()
    assert not docker_client.containers.list(
        all=True, filters={"label": f"{labels.SERVICE}={seeded.service}"}
    )

    shown = run_dockroll(seeded, "--json", "status", "--env", "rolling")
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    print(json.dumps(status)[:600])
    assert NEW in shown.stdout

    locked = run_dockroll(seeded, "--json", "lock", "acquire", "--env", "rolling")
    assert locked.returncode == 0, locked.stderr
    held = run_dockroll(seeded, "--json", "lock", "status", "--env", "rolling")
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout)["locked"] is True
    refused = run_dockroll(seeded, "deploy", OLD, "--env", "rolling")
    assert refused.returncode != 0
    assert "lock" in (refused.stdout + refused.stderr).lower()
    released = run_dockroll(seeded, "--json", "lock", "release", "--env", "rolling")
    assert released.returncode == 0, released.stderr


def test_blue_green_over_ssh_verifies_through_a_tunnel_and_rolls_back(
    remote: tuple[Seeded, SshHost, Path],
) -> None:
    seeded, _, verify_log = remote
    url = seeded.url("bluegreen")
    assert deploy_version(seeded, "bluegreen", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    with Load(url, threads=4) as load:
        load.wait_for(100, timeout=60)
        assert deploy_version(seeded, "bluegreen", NEW) == "succeeded"
        load.wait_for(len(load.answers) + 200, timeout=60)
        with seeded.ledger() as ledger:
            outcome = rollback_release(seeded.config(), "bluegreen", ledger)
        load.wait_for(len(load.answers) + 200, timeout=60)

    print(f"blue-green over ssh: {len(load.answers)} requests, {load.versions()}")
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert load.failures == [], load.failures[:5]
    assert versions(url, 20) == {OLD: 20}

    # verify ran on this machine against the new slot, through a tunnel now closed.
    seen = [json.loads(line) for line in verify_log.read_text().splitlines()]
    assert [entry["version"] for entry in seen][-1] == NEW
    assert seen[-1]["url"].startswith("http://127.0.0.1:")
