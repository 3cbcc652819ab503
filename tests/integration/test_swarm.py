"""Rollouts on a three-node Docker Swarm (DinD nodes), measured from this machine.

One manager and two workers on one bridge network (:func:`dockroll.devenv.cluster.ensure_swarm`);
the environments' replicas become one-task Swarm services on an attachable
overlay network, the router a container on the manager attached to it, its
port published by the manager node on 127.0.0.1. One cluster serves the module.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from dockroll import labels
from dockroll.devenv.cluster import SwarmCluster, ensure_swarm
from dockroll.engine.swarm import SwarmEngine
from dockroll.errors import EngineError
from dockroll.pipeline.deploy import rollback_release
from dockroll.pipeline.engines import environment_engine
from tests.conftest import free_port
from tests.integration.remote_support import NEW, OLD, remote_cluster, remote_environment
from tests.integration.remote_support import deploy_version as _deploy
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
def swarm(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[tuple[Seeded, SwarmCluster]]:
    with remote_cluster("sw") as remote:
        engine_port = free_port()
        common = remote_environment(
            f"tcp://127.0.0.1:{engine_port}",
            remote.registry,
            swarm={"constraints": ["node.role==worker"]},
        )
        environments = {
            "rolling": {**common, "strategy": "rolling", "drain_timeout": "5s"},
            "bluegreen": {**common, "strategy": "blue-green"},
            "canary": {
                **common,
                "strategy": "canary",
                "canary": {"steps": [50, 100], "pause": "3s"},
            },
        }
        for seeded in seed_service(tmp_path_factory, registry, environments, prefix="swarm"):
            nodes = ensure_swarm(
                cluster=remote.name,
                workers=2,
                engine_port=engine_port,
                publish={port: port for port in seeded.ports.values()},
            )
            with state_of(seeded):
                yield seeded, nodes


def test_rolling_update_on_the_swarm_under_load_drops_nothing(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, _ = swarm
    url = seeded.url("rolling")
    assert _deploy(seeded, "rolling", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    with Load(url, threads=4) as load:
        load.wait_for(100, timeout=60)
        assert _deploy(seeded, "rolling", NEW) == "succeeded"
        load.wait_for(len(load.answers) + 200, timeout=60)

    print(f"rolling on the swarm: {len(load.answers)} requests, {load.versions()}")
    assert load.failures == [], load.failures[:5]
    assert versions(url, 20) == {NEW: 20}

    engine = environment_engine(seeded.config(), "rolling")
    assert isinstance(engine, SwarmEngine)
    try:
        replicas = engine.containers(
            {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "rolling", labels.ROLE: "app"}
        )
        services = engine.client.api.services(filters={"label": f"{labels.ENVIRONMENT}=rolling"})
        workers = {
            node["ID"] for node in engine.client.api.nodes() if node["Spec"]["Role"] == "worker"
        }
    finally:
        engine.close()
    assert len(replicas) == 2
    assert all(r.running and r.labels[labels.VERSION] == NEW for r in replicas)
    assert len(services) == 2
    # the placement constraint holds: the replicas run on workers only
    print(f"replicas on nodes: {sorted(r.node for r in replicas)} of workers {sorted(workers)}")
    assert {r.node for r in replicas} <= workers
    for service in services:
        assert service["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"
        assert service["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == ["node.role==worker"]

    shown = run_dockroll(seeded, "--json", "status", "--env", "rolling")
    assert shown.returncode == 0, shown.stderr
    (environment,) = json.loads(shown.stdout)["environments"]
    assert {r["version"] for r in environment["replicas"]} == {NEW}
    assert {r["node"] for r in environment["replicas"]} == {r.node for r in replicas}


def test_blue_green_on_the_swarm_switches_and_rolls_back(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, _ = swarm
    url = seeded.url("bluegreen")
    assert _deploy(seeded, "bluegreen", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    with Load(url, threads=4) as load:
        load.wait_for(100, timeout=60)
        assert _deploy(seeded, "bluegreen", NEW) == "succeeded"
        load.wait_for(len(load.answers) + 200, timeout=60)
        with seeded.ledger() as ledger:
            outcome = rollback_release(seeded.config(), "bluegreen", ledger)
        load.wait_for(len(load.answers) + 200, timeout=60)

    print(f"blue-green on the swarm: {len(load.answers)} requests, {load.versions()}")
    assert outcome is not None
    assert outcome.status == "succeeded"
    assert load.failures == [], load.failures[:5]
    assert versions(url, 20) == {OLD: 20}


def test_canary_on_the_swarm_steps_through_to_the_new_release(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, _ = swarm
    url = seeded.url("canary")
    assert _deploy(seeded, "canary", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    with Load(url, threads=4) as load:
        load.wait_for(100, timeout=60)
        assert _deploy(seeded, "canary", NEW) == "succeeded"
        load.wait_for(len(load.answers) + 100, timeout=60)

    print(f"canary on the swarm: {len(load.answers)} requests, {load.versions()}")
    assert load.failures == [], load.failures[:5]
    assert load.versions()[NEW] > 0
    assert versions(url, 20) == {NEW: 20}


def test_bringing_the_swarm_up_again_reuses_it(swarm: tuple[Seeded, SwarmCluster]) -> None:
    seeded, cluster = swarm
    started = time.monotonic()
    again = ensure_swarm(
        cluster=cluster.cluster,
        workers=2,
        engine_port=int(cluster.engine.rsplit(":", 1)[1]),
        publish={port: port for port in seeded.ports.values()},
    )
    seconds = time.monotonic() - started

    print(f"ensure_swarm again: {seconds:.1f} s")
    assert again == cluster
    engine = SwarmEngine(cluster.engine)
    try:
        nodes = engine.client.api.nodes()
    finally:
        engine.close()
    assert sorted(node["Spec"]["Role"] for node in nodes) == ["manager", "worker", "worker"]
    assert all(node["Status"]["State"] == "ready" for node in nodes)
    (manager,) = [node for node in nodes if node["Spec"]["Role"] == "manager"]
    assert manager["Spec"]["Labels"] == {"dockroll.ingress": "true"}


def test_a_swarm_environment_on_an_engine_outside_any_swarm_is_refused(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    # The host's own engine is in no Swarm: the environment fails before anything changes.
    engine = SwarmEngine("unix:///var/run/docker.sock")
    try:
        with pytest.raises(EngineError, match="is not a Swarm manager") as caught:
            engine.ensure_network(f"dockroll-never-{uuid.uuid4().hex[:8]}", {})
    finally:
        engine.close()
    assert caught.value.hint is not None
