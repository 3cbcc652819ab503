"""Rollouts on a three-node Docker Swarm (DinD nodes), measured from this machine.

One manager and two workers on one bridge network (:func:`dockroll.devenv.cluster.ensure_swarm`);
the environments' replicas become one-task Swarm services on an attachable
overlay network, the router an HAProxy container on the manager in a holder attached
to it, its port published by the manager node on 127.0.0.1 (for the ``ingress`` environment a
global service on the ingress nodes instead). One cluster serves the module.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from dockroll import labels
from dockroll.devenv.cluster import SwarmCluster, ensure_swarm
from dockroll.engine.base_images import load_substitutes
from dockroll.engine.docker import DockerEngine
from dockroll.engine.port import ContainerInfo
from dockroll.engine.swarm import SwarmEngine
from dockroll.errors import DockrollError, EngineError, RouterError
from dockroll.ledger import DeploymentStatus, StepStatus
from dockroll.pipeline.deploy import open_environment, rollback_release
from dockroll.pipeline.engines import environment_engine
from dockroll.pipeline.lifecycle import environment_down
from dockroll.pipeline.status import environment_status
from dockroll.router.haproxy import OFFICIAL_IMAGE, HaproxyRouter, HaproxySettings
from dockroll.router.port import ServerHealth, ServerState
from dockroll.router.swarm import SwarmRouter
from dockroll.router.swarm_service import SwarmServiceRouter
from dockroll.router.tls import certificate_fingerprint, self_signed
from tests.conftest import free_port
from tests.integration.remote_support import NEW, OLD, remote_cluster, remote_environment
from tests.integration.remote_support import deploy_version as _deploy
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

HEALTH_TEST = [
    "CMD",
    "python3",
    "-c",
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)",
]


def _router_image(registry: str, nodes_registry: str) -> str:
    """The local HAProxy stand-in in the registry, as the nodes pull it (router tasks run
    on every ingress node, which can only pull)."""
    local = load_substitutes().get(OFFICIAL_IMAGE, OFFICIAL_IMAGE)
    path = "dockroll-swarm-router/haproxy:2.6"
    subprocess.run(["docker", "tag", local, f"{registry}/{path}"], check=True, timeout=60)
    subprocess.run(
        ["docker", "push", f"{registry}/{path}"], check=True, capture_output=True, timeout=300
    )
    # Only the tag goes: the image keeps its own name, which other suites copy it by.
    subprocess.run(["docker", "image", "rm", f"{registry}/{path}"], check=True, timeout=60)
    return f"{nodes_registry}/{path}"


def _tls_environment(common: dict[str, Any], router_image: str, certs: Path) -> dict[str, Any]:
    """The router as a service with a plain and a TLS listener, its certificate from files."""
    cert, key = self_signed("swarm-tls.test", days=1, dns_names=["swarm-tls.test"])
    (certs / "live.pem").write_bytes(cert)
    (certs / "live.key").write_bytes(key)
    plain, secure = free_port(), free_port()
    return {
        **common,
        "port": plain,
        "replicas": 1,
        "strategy": "rolling",
        "drain_timeout": "2s",
        "swarm": {
            "constraints": ["node.role==worker"],
            "router": "service",
            "router_image": router_image,
        },
        "router": {
            "listen": [f"0.0.0.0:{plain}", {"address": f"0.0.0.0:{secure}", "tls": True}],
            "metrics": f"0.0.0.0:{free_port()}",
            "tls": {"cert": str(certs / "live.pem"), "key": str(certs / "live.key"), "hsts": "1h"},
        },
    }


@pytest.fixture(scope="module")
def swarm(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[tuple[Seeded, SwarmCluster]]:
    with remote_cluster("sw") as remote:
        engine_port, edge_port = free_port(), free_port()
        common = remote_environment(
            f"tcp://127.0.0.1:{engine_port}",
            remote.registry,
            swarm={"constraints": ["node.role==worker"]},
        )
        router_image = _router_image(registry, remote.registry)
        environments = {
            "rolling": {**common, "strategy": "rolling", "drain_timeout": "5s"},
            "bluegreen": {**common, "strategy": "blue-green"},
            "canary": {
                **common,
                "strategy": "canary",
                "canary": {"steps": [50, 100], "pause": "3s"},
            },
            "faults": {**common, "strategy": "rolling", "drain_timeout": "5s"},
            "ingress": {
                **common,
                "swarm": {
                    "constraints": ["node.role==worker"],
                    "router": "service",
                    "router_image": router_image,
                },
                "strategy": "canary",
                "canary": {"steps": [50, 100], "pause": "3s"},
            },
            "spread": {**common, "strategy": "rolling", "drain_timeout": "2s"},
            "midway": {**common, "strategy": "rolling", "drain_timeout": "2s"},
            "edge": {
                **common,
                "strategy": "rolling",
                "replicas": 1,
                "hosts": ["swarm.test"],
                "edge": {"listen": [f"0.0.0.0:{edge_port}"]},
            },
            "rebalance": {**common, "strategy": "rolling", "drain_timeout": "5s"},
            "upgrade": {**common, "strategy": "rolling", "drain_timeout": "2s"},
            "secrets": {
                **common,
                "replicas": 1,
                "container": {
                    "secrets": [
                        {"name": "api_token", "env": "SWARM_TEST_TOKEN", "as": "file"},
                        {"name": "DB_PASSWORD", "env": "SWARM_TEST_PASSWORD"},
                    ],
                    "files": [{"source": "app.ini", "target": "/etc/app/app.ini", "mode": "0440"}],
                    "healthcheck": {"test": HEALTH_TEST, "interval": "1s", "retries": 3},
                },
            },
            "ingresstls": _tls_environment(
                common, router_image, tmp_path_factory.mktemp("swarm-tls")
            ),
        }
        for seeded in seed_service(tmp_path_factory, registry, environments, prefix="swarm"):
            nodes = ensure_swarm(
                cluster=remote.name,
                workers=2,
                engine_port=engine_port,
                publish={port: port for port in [*seeded.ports.values(), edge_port]},
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
        nodes = engine.client.api.nodes()
        workers = {node["ID"] for node in nodes if node["Spec"]["Role"] == "worker"}
        hostnames = {node["ID"]: node["Description"]["Hostname"] for node in nodes}
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
    # Each replica's node by its hostname too, in JSON and in the table.
    assert all(r["node_hostname"] == hostnames[r["node"]] for r in environment["replicas"])
    table = run_dockroll(seeded, "status", "--env", "rolling")
    assert table.returncode == 0, table.stderr
    assert {hostnames[r.node] for r in replicas} <= set(table.stdout.split())


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


def _task_weights(router: SwarmServiceRouter) -> dict[str, dict[str, tuple[str, str]]]:
    """Per router task (node): each server it uses, with its weight and admin state."""
    found = {}
    for node, address in router._running_tasks():
        rows = router._task_servers((node, address))
        found[node] = {
            name: (row["srv_uweight"], row["srv_admin_state"]) for name, row in rows.items()
        }
    return found


def _published(cluster: SwarmCluster) -> dict[int, int]:
    """What the fixture asked the manager to publish (host port → manager port), but its
    engine's port: bringing the Swarm up again with it must change nothing."""
    return {host: port for port, host in cluster.manager.published.items() if port != 2375}


def _label_ingress(cluster: SwarmCluster, node: str, on: bool) -> None:
    flag = ["--label-add", "dockroll.ingress=true"] if on else ["--label-rm", "dockroll.ingress"]
    subprocess.run(
        ["docker", "exec", cluster.manager.name, "docker", "node", "update", *flag, node],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_the_router_as_a_swarm_service_serves_every_ingress_node_with_the_same_weights(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    config = seeded.config()
    engine = environment_engine(config, "ingress")
    assert isinstance(engine, SwarmEngine)
    # Bad input first: constraints no node matches change nothing and say how to label one.
    nowhere = SwarmServiceRouter(
        engine,
        service=seeded.service,
        environment="ingress",
        port=seeded.ports["ingress"],
        replica_names=["x-1"],
        replica_port=5000,
        ingress=["node.labels.dockroll.nowhere==true"],
    )
    with pytest.raises(RouterError) as refused:
        nowhere.ensure()
    assert "docker node update --label-add dockroll.nowhere=true" in (refused.value.hint or "")
    assert engine.container(nowhere.container_name) is None

    # A port its ingress node already uses (the manager's engine listens on 2375 there):
    # the task fails, and the error names the node and the port's refusal at once.
    swarm_config = config.environments["ingress"].swarm
    assert swarm_config is not None
    taken = SwarmServiceRouter(
        engine,
        service=seeded.service,
        environment="taken",
        port=2375,
        replica_names=["x-1"],
        replica_port=5000,
        ingress=["node.role==manager"],
        settings=HaproxySettings(image=swarm_config.router_image),
    )
    try:
        started = time.monotonic()
        with pytest.raises(RouterError, match="a port it publishes is taken") as refused:
            taken.ensure()
        print(f"taken port reported after {time.monotonic() - started:.1f}s: {refused.value}")
        assert cluster.manager.name in refused.value.message
        assert "0.0.0.0:2375" in refused.value.message
    finally:
        taken.remove()
        taken.close()
        engine.remove_network(taken.network)
    assert engine.container(taken.container_name) is None

    worker = cluster.workers[0]
    _label_ingress(cluster, worker.name, True)
    router = HaproxyRouter.for_environment(engine, config, "ingress")
    assert isinstance(router, SwarmServiceRouter)
    port = seeded.ports["ingress"]
    urls = {
        cluster.manager.name: seeded.url("ingress"),
        worker.name: f"http://{worker.address}:{port}",
    }
    try:
        assert _deploy(seeded, "ingress", OLD) == "succeeded"
        for url in urls.values():
            wait_serving(url, OLD, timeout=60)
        assert {t.node for t in router.tasks() if t.state == "running"} == set(urls)

        cursor = router.request_log(None).cursor
        loads = {node: Load(url, threads=2) for node, url in urls.items()}
        samples: list[dict[str, dict[str, tuple[str, str]]]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                with contextlib.suppress(DockrollError):
                    samples.append(_task_weights(router))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        with loads[cluster.manager.name], loads[worker.name]:
            for load in loads.values():
                load.wait_for(50, timeout=60)
            sampler.start()
            assert _deploy(seeded, "ingress", NEW) == "succeeded"
            done.set()
            sampler.join(timeout=30)
            for load in loads.values():
                load.wait_for(len(load.answers) + 50, timeout=60)
        for node, load in loads.items():
            print(
                f"canary through the router service on {node}: {len(load.answers)} requests, "
                f"{len(load.failures)} failed, {load.versions()}"
            )
            assert load.failures == [], (node, load.failures[:5])
            assert load.versions()[NEW] > 0
        # The request log is the service's: every node's requests, merged by the manager.
        logged = router.request_log(cursor).requests
        print(f"request log: {len(logged)} requests")
        assert len(logged) > max(len(load.answers) for load in loads.values())
        # Every task carried the same servers and weights whenever it was looked at, apart
        # from a change caught between its arrival at one task and the next.
        agreeing = [s for s in samples if len({repr(v) for v in s.values()}) == 1]
        print(f"weights sampled {len(samples)} times, {len(agreeing)} agreeing across tasks")
        assert len(samples) >= 4
        assert len(agreeing) >= len(samples) - 2
        weights = _task_weights(router)
        assert set(weights) == set(urls)
        assert weights[cluster.manager.name] == weights[worker.name]
        assert any(weight != "0" for weight, _ in weights[worker.name].values())
        for url in urls.values():
            assert versions(url, 10) == {NEW: 10}
        # status: the router's task on each ingress node, the replicas' weights from the tasks
        with seeded.ledger() as ledger:
            shown = environment_status(config, "ingress", ledger)
        print(f"status router: {shown.router}")
        assert "2 tasks running" in shown.router
        assert all(node in shown.router for node in urls)
        assert sorted(r.weight for r in shown.replicas) == [100, 100]
    finally:
        router.close()


def test_a_restarted_router_task_serves_its_node_s_last_state_and_env_down_removes_it(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    config = seeded.config()
    worker = cluster.workers[0]
    engine = environment_engine(config, "ingress")
    router = HaproxyRouter.for_environment(engine, config, "ingress")
    assert isinstance(router, SwarmServiceRouter)
    port = seeded.ports["ingress"]
    manager_url, worker_url = seeded.url("ingress"), f"http://{worker.address}:{port}"
    try:
        assert _deploy(seeded, "ingress", NEW) in ("succeeded", "unchanged")
        before = _task_weights(router)
        assert before[cluster.manager.name] == before[worker.name]
        task = subprocess.run(
            [
                "docker",
                "exec",
                worker.name,
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=com.docker.swarm.service.name={router.container_name}",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.split()[0]
        ready = f"http://{worker.address}:{router.metrics_port}/ready"
        assert httpx.get(ready, timeout=10).status_code == 200
        # A flag the tasks keep too (a hold deadline means nothing while nothing is held).
        router.api.run(f"set map {router._state_map} hold_until 4102444800")
        time.sleep(1.5)  # the keeper looks twice a second
        with Load(manager_url, threads=2) as load, Load(worker_url, threads=1) as on_worker:
            load.wait_for(50, timeout=60)
            on_worker.wait_for(20, timeout=60)
            killed = time.monotonic()
            subprocess.run(
                ["docker", "exec", worker.name, "docker", "kill", task],
                check=True,
                capture_output=True,
                timeout=60,
            )
            # Swarm starts the task again; it loads the state its predecessor kept in the
            # node's volume: the same servers at the same weights, with no dockroll command.
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(DockrollError, httpx.HTTPError):
                    if httpx.get(ready, timeout=2).status_code == 200 and versions(
                        worker_url, 5
                    ) == {NEW: 5}:
                        break
                assert time.monotonic() < deadline, "the killed router task did not serve again"
                time.sleep(0.2)
            back = time.monotonic() - killed
            assert _task_weights(router) == before
            served_before_restore = len(on_worker.answers) - len(on_worker.failures)
            tasks = dict(router._running_tasks())
            with router._task(tasks[worker.name]):
                kept = router.api.execute(f"show map {router._state_map}")
            assert " hold_until 4102444800" in kept, kept
            router.api.run(f"set map {router._state_map} hold_until 0")

            # A task that missed a change (here: one set behind dockroll's back) differs
            # from the longest-running task; the next command under the lock restores it.
            name = next(iter(before[worker.name]))
            with router._task(tasks[worker.name]):
                router.api.run(f"set weight app/{name} 7")
            events: list[str] = []
            with seeded.ledger() as ledger:
                environment = open_environment(
                    config, "ingress", ledger, lambda e: events.append(e.message)
                )
                with environment.held(
                    ledger,
                    lambda e: events.append(e.message),
                    reason="test",
                    operation="restore",
                    wait=10,
                ):
                    pass
            print("\n".join(events))
            assert any("whose servers differ from those of" in e for e in events), events
            assert _task_weights(router) == before
            assert httpx.get(ready, timeout=10).status_code == 200
            load.wait_for(len(load.answers) + 50, timeout=60)
        failed = sorted({a.error.split(":")[0] for a in on_worker.failures})
        print(
            f"worker node while its router task restarted: serving again after {back:.1f}s; "
            f"{len(on_worker.answers)} requests, {len(on_worker.failures)} failed ({failed}); "
            f"{served_before_restore} served before any dockroll command"
        )
        print(
            f"manager node while the worker's router task restarted: {len(load.answers)} "
            f"requests, {len(load.failures)} failed"
        )
        assert load.failures == [], load.failures[:5]
        assert versions(worker_url, 10) == {NEW: 10}

        # env down takes the service, its configs and secrets and the relay away.
        with seeded.ledger() as ledger:
            environment_down(config, "ingress", ledger)
        assert engine.container(router.container_name) is None
        assert engine.container(router.relay_name) is None
        owned = f"dev.dockroll.object-of={router.container_name}"
        assert engine.client.api.configs(filters={"label": owned}) == []
        assert engine.client.api.secrets(filters={"label": owned}) == []
    finally:
        router.close()
        _label_ingress(cluster, worker.name, False)


def _with_image(router: SwarmRouter, image: str) -> SwarmRouter:
    """The same environment's router as a dockroll that starts it from ``image`` sees it."""
    return SwarmRouter(
        router.engine,
        service=router.service,
        environment=router.environment,
        port=router.port,
        replica_names=router.replica_names,
        replica_port=router.replica_port,
        settings=dataclasses.replace(router.settings, image=image),
    )


def test_the_router_s_image_is_upgraded_on_the_manager_without_a_failed_request(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, _ = swarm
    url = seeded.url("upgrade")
    config = seeded.config()
    assert _deploy(seeded, "upgrade", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)
    engine = environment_engine(config, "upgrade")
    try:
        router = HaproxyRouter.for_environment(engine, config, "upgrade")
        assert isinstance(router, SwarmRouter)
        before = engine.container(router.container_name)
        holder = engine.container(router.holder_name)
        assert before is not None
        assert holder is not None
        servers = {s.name: s.weight for s in router.servers()}
        assert len([w for w in servers.values() if w]) == 2
        # A second tag of the router's image on the manager: another image to upgrade to.
        other = f"dockroll.local/haproxy-upgrade:{config.service}"
        engine.tag(before.image, "dockroll.local/haproxy-upgrade", config.service)
        upgraded = _with_image(router, other)
        assert "(hitless)" in upgraded.describe().verdict

        with Load(url, threads=4) as load:
            load.wait_for(200, timeout=60)
            started = time.monotonic()
            info = upgraded.upgrade()
            took = time.monotonic() - started
            load.wait_for(len(load.answers) + 200, timeout=60)
        print(
            f"swarm router image upgrade: {len(load.answers)} requests, "
            f"{len(load.failures)} failed, {load.versions()}, upgrade took {took:.1f} s"
        )
        assert load.failures == [], load.failures[:5]
        assert info.replaced == "hitless"
        after = engine.container(router.container_name)
        assert after is not None
        assert after.id != before.id
        assert after.image == other
        kept = engine.container(router.holder_name)
        assert kept is not None
        assert (kept.id, kept.started) == (holder.id, holder.started)
        assert engine.container(f"{router.container_name}-next") is None
        assert {s.name: s.weight for s in upgraded.servers()} == servers
        assert upgraded.describe().verdict == "up to date"

        # What dockroll.yml asks for is the first image again: status says how it goes.
        shown = run_dockroll(seeded, "router", "status", "--env", "upgrade")
        assert shown.returncode == 0, shown.stderr
        assert "(hitless)" in " ".join(shown.stdout.split()), shown.stdout

        # A new container that cannot run HAProxy: removed, the running one serves on.
        (replica, *_) = engine.containers(
            {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "upgrade", labels.ROLE: "app"}
        )
        with pytest.raises(RouterError, match="keeps serving as it was"):
            _with_image(router, replica.image).upgrade()
        still = engine.container(router.container_name)
        assert still is not None
        assert still.id == after.id
        assert engine.container(f"{router.container_name}-next") is None
        assert {s.name: s.weight for s in upgraded.servers()} == servers
        assert versions(url, 20) == {OLD: 20}

        # Back to the first image from the command line, under load: as hitless.
        with Load(url, threads=4) as load:
            load.wait_for(100, timeout=60)
            back = run_dockroll(seeded, "router", "upgrade", "--env", "upgrade")
            load.wait_for(len(load.answers) + 100, timeout=60)
        print(back.stdout, back.stderr)
        print(f"swarm router upgrade back: {len(load.answers)} requests, {load.versions()}")
        assert back.returncode == 0, back.stderr
        assert "hitless" in back.stdout
        assert load.failures == [], load.failures[:5]
        final = engine.container(router.container_name)
        assert final is not None
        assert final.image == before.image
        assert router.describe().verdict == "up to date"
    finally:
        with contextlib.suppress(DockrollError):
            engine.remove_image(f"dockroll.local/haproxy-upgrade:{config.service}")
        engine.close()


def _https(address: str, port: int, cert: bytes) -> tuple[str, httpx.Response]:
    """The fingerprint of the certificate served at ``address:port`` and the answer to
    ``/version`` there, which must verify against ``cert`` (self-signed: its own CA)."""
    served = certificate_fingerprint(ssl.get_server_certificate((address, port), timeout=10))
    context = ssl.create_default_context(cadata=cert.decode())
    context.check_hostname = False  # a node's address, not the certificate's name
    with httpx.Client(trust_env=False, timeout=10, verify=context) as client:
        return served, client.get(f"https://{address}:{port}/version")


@contextlib.contextmanager
def _https_load(
    nodes: dict[str, str], port: int, trusted: bytes
) -> Iterator[dict[str, collections.Counter[str]]]:
    """Sequential HTTPS requests to every node meanwhile: per node, the versions that
    answered, or ``failed: <error>``."""
    outcomes: dict[str, collections.Counter[str]] = {n: collections.Counter() for n in nodes}
    context = ssl.create_default_context(cadata=trusted.decode())
    context.check_hostname = False
    stop = threading.Event()

    def load(node: str, address: str) -> None:
        with httpx.Client(trust_env=False, timeout=5, verify=context) as client:
            while not stop.is_set():
                try:
                    answer = client.get(f"https://{address}:{port}/version")
                    key = answer.json()["version"] if answer.status_code == 200 else "failed"
                except (httpx.HTTPError, ValueError) as exc:
                    key = f"failed: {type(exc).__name__}"
                outcomes[node][key] += 1
                time.sleep(0.02)

    threads = [threading.Thread(target=load, args=item, daemon=True) for item in nodes.items()]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def _serving_tls(nodes: dict[str, str], port: int, cert: bytes, version: str | None) -> float:
    """Wait until every node serves ``version`` over TLS with ``cert`` (``None``: only has
    ``cert`` in its TLS handshake); the seconds it took."""
    started = time.monotonic()
    wanted = certificate_fingerprint(cert.decode())
    for node, address in nodes.items():
        while True:
            with contextlib.suppress(OSError, httpx.HTTPError, ValueError):
                if version is None:
                    served = ssl.get_server_certificate((address, port), timeout=10)
                    if certificate_fingerprint(served) == wanted:
                        break
                else:
                    served, answer = _https(address, port, cert)
                    ok = (served, answer.status_code) == (wanted, 200)
                    if ok and answer.json()["version"] == version:
                        break
            assert time.monotonic() - started < 90, f"{node} does not serve {version} with it"
            time.sleep(0.5)
    return time.monotonic() - started


def test_tls_listeners_of_the_router_service_serve_the_files_certificate_on_every_node(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    config = seeded.config()
    env = config.environments["ingresstls"]
    assert env.router.tls is not None
    assert env.router.tls.cert
    assert env.router.tls.key
    live_cert, live_key = config.root / env.router.tls.cert, config.root / env.router.tls.key
    plain, secure = (address.port for address in env.listeners())
    worker = cluster.workers[0]
    nodes = {cluster.manager.name: cluster.manager.address, worker.name: worker.address}
    engine = environment_engine(config, "ingresstls")
    router = HaproxyRouter.for_environment(engine, config, "ingresstls")
    assert isinstance(router, SwarmServiceRouter)
    first = live_cert.read_bytes()
    renewed, renewed_key = self_signed("swarm-tls.test", days=2, dns_names=["swarm-tls.test"])
    live, live_key_pem = self_signed("swarm-tls.test", days=3, dns_names=["swarm-tls.test"])
    _label_ingress(cluster, worker.name, True)
    try:
        assert _deploy(seeded, "ingresstls", OLD) == "succeeded"
        print(f"TLS on every ingress node after {_serving_tls(nodes, secure, first, OLD):.1f}s")
        for address in nodes.values():
            _, answer = _https(address, secure, first)
            assert answer.headers["strict-transport-security"] == "max-age=3600"
            redirect = httpx.get(f"http://{address}:{plain}/version", timeout=10)
            assert redirect.status_code == 301
            assert redirect.headers["location"] == f"https://{address}:{plain}/version"

        # A key that is not the certificate's own: refused before the service changes.
        live_cert.write_bytes(renewed)
        service = engine.client.api.inspect_service(router.container_name)
        with pytest.raises(RouterError, match="does not belong to the certificate"):
            _deploy(seeded, "ingresstls", NEW)
        with pytest.raises(RouterError, match="does not belong to the certificate"):
            router.sync_certificate()
        assert (
            engine.client.api.inspect_service(router.container_name)["Version"]
            == (service["Version"])
        )
        _serving_tls(nodes, secure, first, OLD)

        # A replaced certificate: a new secret, the service updated node by node by the next
        # command that opens the environment; the rollout that follows serves with it.
        live_key.write_bytes(renewed_key)
        with _https_load(nodes, secure, first + renewed) as outcomes:
            with seeded.ledger() as ledger:
                open_environment(config, "ingresstls", ledger)
            took = _serving_tls(nodes, secure, renewed, None)
            time.sleep(1)
        print(f"service updated on every node after {took:.1f}s")
        for node, seen in outcomes.items():
            # Stop-first: a node's listener is closed while its task is replaced.
            print(f"HTTPS on {node} during the update: {dict(sorted(seen.items()))}")
            assert seen[OLD] > 0
        assert _deploy(seeded, "ingresstls", NEW) == "succeeded"
        print(
            f"renewed certificate everywhere after {_serving_tls(nodes, secure, renewed, NEW):.1f}s"
        )
        tasks = {t.node: t.address for t in router.tasks()}

        # Loaded live: every task serves it at once, none restarts.
        live_cert.write_bytes(live)
        live_key.write_bytes(live_key_pem)
        assert router.sync_certificate() is True
        assert _serving_tls(nodes, secure, live, NEW) < 5
        assert router.sync_certificate() is False
        assert {t.node: t.address for t in router.tasks()} == tasks

        with seeded.ledger() as ledger:
            environment_down(config, "ingresstls", ledger)
        owned = f"dev.dockroll.object-of={router.container_name}"
        assert engine.client.api.secrets(filters={"label": owned}) == []
    finally:
        router.close()
        _label_ingress(cluster, worker.name, False)


def test_the_shared_edge_runs_on_the_manager_and_routes_by_hostname(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    edge = seeded.config().environment("edge").edge
    assert edge is not None
    port = edge.addresses()[0].port
    assert _deploy(seeded, "edge", OLD) == "succeeded"

    with httpx.Client(trust_env=False, timeout=10) as client:
        served = client.get(f"http://127.0.0.1:{port}/version", headers={"Host": "swarm.test"})
        unknown = client.get(f"http://127.0.0.1:{port}/version", headers={"Host": "no.test"})
    assert served.status_code == 200, served.text
    assert served.json()["version"] == OLD
    assert unknown.status_code == 404

    # A plain container on the manager, in its host network, on a bridge network there
    # with the environment's router (an overlay network the host could not route to).
    manager = DockerEngine(cluster.engine)
    try:
        found = manager.container("dockroll-edge")
        network = manager.client.api.inspect_network("dockroll-edge")
        router = manager.container(f"dockroll-router-{seeded.service}-edge")
        holder = manager.container(f"dockroll-router-{seeded.service}-edge-net")
    finally:
        manager.close()
    assert found is not None
    assert found.running
    assert network["Driver"] == "bridge"
    # HAProxy runs in its holder's network namespace: the holder joined the edge's network.
    assert router is not None
    assert holder is not None
    assert "dockroll-edge" in holder.networks
    assert router.networks == {}


def _placed(engine: SwarmEngine, service: str, environment: str) -> list[dict[str, object]]:
    """Per replica service: its node, its tasks, its constraints now and before its last update."""
    api = engine.client.api
    found = []
    for svc in api.services(
        filters={"label": [f"{labels.SERVICE}={service}", f"{labels.ENVIRONMENT}={environment}"]}
    ):
        tasks = api.tasks(filters={"service": svc["ID"]})
        previous = (svc.get("PreviousSpec") or {}).get("TaskTemplate") or {}
        found.append(
            {
                "name": svc["Spec"]["Name"],
                "tasks": [(t["ID"], t["NodeID"], t["Status"]["State"]) for t in tasks],
                "constraints": svc["Spec"]["TaskTemplate"]["Placement"].get("Constraints"),
                "before": (previous.get("Placement") or {}).get("Constraints") or [],
            }
        )
    return found


def test_replicas_of_an_environment_land_on_different_workers_and_stay_free_to_move(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, _ = swarm
    url = seeded.url("spread")
    engine = environment_engine(seeded.config(), "spread")
    assert isinstance(engine, SwarmEngine)
    try:
        for step in ("deploy v1", "deploy v2", "rollback"):
            if step == "rollback":
                with seeded.ledger() as ledger:
                    outcome = rollback_release(seeded.config(), "spread", ledger)
                assert outcome is not None
                assert outcome.status == "succeeded"
                expected = OLD
            else:
                expected = OLD if step == "deploy v1" else NEW
                assert _deploy(seeded, "spread", expected) == "succeeded"
            wait_serving(url, expected, timeout=30)
            placed = _placed(engine, seeded.service, "spread")
            print(f"after {step}: {placed}")
            assert len(placed) == 2, placed
            # one task each, still the first (never restarted), on two different nodes
            assert all(len(p["tasks"]) == 1 for p in placed), placed
            assert all(p["tasks"][0][2] == "running" for p in placed), placed  # type: ignore[index]
            assert len({p["tasks"][0][1] for p in placed}) == 2, placed  # type: ignore[index]
            # the spreading constraints are gone again; the one placed second had them
            assert all(p["constraints"] == ["node.role==worker"] for p in placed), placed
            assert any(
                any(str(c).startswith("node.id!=") for c in p["before"])  # type: ignore[attr-defined]
                for p in placed
            ), placed
        first_tasks = {p["name"]: p["tasks"] for p in placed}
        time.sleep(5)
        again = {p["name"]: p["tasks"] for p in _placed(engine, seeded.service, "spread")}
        assert again == first_tasks
    finally:
        engine.close()


def test_bringing_the_swarm_up_again_reuses_it(swarm: tuple[Seeded, SwarmCluster]) -> None:
    _, cluster = swarm
    started = time.monotonic()
    again = ensure_swarm(
        cluster=cluster.cluster,
        workers=2,
        engine_port=int(cluster.engine.rsplit(":", 1)[1]),
        publish=_published(cluster),
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


def _in_task(
    cluster: SwarmCluster, node: str, service: str, *command: str, user: str | None = None
) -> str:
    """``command``'s output in the task of ``service`` on the node named ``node``."""
    selector = f"label=com.docker.swarm.service.name={service}"
    found = subprocess.run(
        ["docker", "exec", node, "docker", "ps", "-q", "--filter", selector],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (container,) = found.stdout.split()
    as_user = ["--user", user] if user else []
    done = subprocess.run(
        ["docker", "exec", node, "docker", "exec", *as_user, container, *command],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout


def test_secrets_and_config_files_become_swarm_objects_that_go_with_their_replica(
    swarm: tuple[Seeded, SwarmCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded, cluster = swarm
    token, password = f"tok-{uuid.uuid4().hex}", f"pw-{uuid.uuid4().hex}"
    monkeypatch.setenv("SWARM_TEST_TOKEN", token)
    monkeypatch.setenv("SWARM_TEST_PASSWORD", password)
    (seeded.repo / "app.ini").write_text("[app]\nlevel = info\n", encoding="utf-8")
    assert _deploy(seeded, "secrets", OLD) == "succeeded"
    wait_serving(seeded.url("secrets"), OLD, timeout=30)
    engine = environment_engine(seeded.config(), "secrets")
    try:
        (replica,) = engine.containers(
            {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "secrets", labels.ROLE: "app"}
        )
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in engine.client.api.nodes()}
        service = engine.client.api.inspect_service(replica.name)
        secrets = engine.client.api.secrets()
        configs = engine.client.api.configs()
        in_file = _in_task(
            cluster, hostnames[replica.node], replica.name, "cat", "/run/secrets/api_token"
        )
        config_file = _in_task(
            cluster, hostnames[replica.node], replica.name, "cat", "/etc/app/app.ini", user="0"
        )
        config_mode = _in_task(
            cluster, hostnames[replica.node], replica.name, "stat", "-c", "%a", "/etc/app/app.ini"
        )
    finally:
        engine.close()
    container = service["Spec"]["TaskTemplate"]["ContainerSpec"]
    (reference,) = container["Secrets"]
    assert reference["File"]["Name"] == "/run/secrets/api_token"
    assert in_file.strip() == token
    # A config file is a Swarm config of the replica, at its path with its mode.
    (config_reference,) = container["Configs"]
    assert (config_reference["File"]["Name"], config_reference["File"]["Mode"]) == (
        "/etc/app/app.ini",
        0o440,
    )
    assert [c["Spec"]["Name"] for c in configs] == [f"{replica.name}-1"]
    assert configs[0]["Spec"]["Labels"]["dev.dockroll.config-of"] == replica.name
    assert (config_file, config_mode.strip()) == ("[app]\nlevel = info\n", "440")
    # A file secret is a Swarm secret of the replica, in no spec, label or name.
    assert [s["Spec"]["Name"] for s in secrets] == [f"{replica.name}-1"]
    assert token not in json.dumps(service)
    assert container["Healthcheck"]["Test"] == HEALTH_TEST

    # A rotated secret is a new rollout; the old replica's secret and config go with it.
    monkeypatch.setenv("SWARM_TEST_TOKEN", f"{token}-2")
    assert _deploy(seeded, "secrets", OLD) == "succeeded"
    engine = environment_engine(seeded.config(), "secrets")
    try:
        (new,) = engine.containers(
            {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "secrets", labels.ROLE: "app"}
        )
        left = [s["Spec"]["Name"] for s in engine.client.api.secrets()]
        configs_left = [c["Spec"]["Name"] for c in engine.client.api.configs()]
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in engine.client.api.nodes()}
        rotated = _in_task(cluster, hostnames[new.node], new.name, "cat", "/run/secrets/api_token")
    finally:
        engine.close()
    assert new.name != replica.name
    assert left == [f"{new.name}-1"]
    assert configs_left == [f"{new.name}-1"]
    assert rotated.strip() == f"{token}-2"
    shown = run_dockroll(seeded, "--json", "status", "--env", "secrets")
    assert shown.returncode == 0, shown.stderr
    for secret in (token, password, f"{token}-2"):
        assert secret not in shown.stdout
        assert secret not in (seeded.state / "ledger.db").read_bytes().decode(errors="replace")


def _spread(
    cluster: SwarmCluster,
    engine: DockerEngine,
    selector: dict[str, str],
    hostnames: dict[str, str],
) -> dict[str, ContainerInfo]:
    """The replicas, on two nodes: one is kept away from the node both share, if they do.

    Swarm places each one-task service on the matching node with the fewest tasks,
    so two replicas may share a node; a fault test needs one to survive the node.
    """
    before = {r.name: r for r in engine.containers(selector)}
    if len({r.node for r in before.values()}) == 1:
        shared = hostnames[next(iter(before.values())).node]
        away = ["--constraint-add", f"node.hostname!={shared}", sorted(before)[0]]
        update = ["docker", "service", "update", "--detach=false", "--quiet", *away]
        subprocess.run(
            ["docker", "exec", cluster.manager.name, *update],
            check=True,
            capture_output=True,
            timeout=120,
        )
        deadline = time.monotonic() + 60
        while len({r.node for r in engine.containers(selector) if r.running}) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        before = {r.name: r for r in engine.containers(selector)}
    return before


def _node_availability(cluster: SwarmCluster, node: str, availability: str) -> None:
    update = ["docker", "node", "update", "--availability", availability, node]
    subprocess.run(
        ["docker", "exec", cluster.manager.name, *update],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_a_drained_node_moves_its_replicas_and_the_router_follows_them(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    url = seeded.url("faults")
    assert _deploy(seeded, "faults", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)
    selector = {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "faults", labels.ROLE: "app"}
    engine = environment_engine(seeded.config(), "faults")
    router = HaproxyRouter.for_environment(engine, seeded.config(), "faults")
    assert isinstance(router, SwarmRouter)
    try:
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in engine.client.api.nodes()}
        before = _spread(cluster, engine, selector, hostnames)
        assert len({r.node for r in before.values()}) == 2, before
        # The node of the replica that may go anywhere.
        drained = before[sorted(before)[-1]].node
        moving = {name for name, r in before.items() if r.node == drained}
        assert {s.name for s in router.servers()} == set(before)

        started = time.monotonic()
        with Load(url, threads=4) as load:
            load.wait_for(100, timeout=60)
            _node_availability(cluster, hostnames[drained], "drain")
            deadline = time.monotonic() + 90
            while True:
                now = {r.name: r for r in engine.containers(selector)}
                servers = {s.name: s for s in router.servers()}
                followed = all(
                    r.running
                    and r.node != drained
                    and servers[name].health is ServerHealth.UP
                    and servers[name].address == r.networks.get(router.network)
                    for name, r in now.items()
                )
                if followed:
                    break
                assert time.monotonic() < deadline, (now, servers)
                time.sleep(0.5)
            moved = time.monotonic() - started
            load.wait_for(len(load.answers) + 200, timeout=60)
    finally:
        try:
            _node_availability(cluster, hostnames[drained], "active")
        finally:
            engine.close()

    print(
        f"drain of {hostnames[drained]} with {sorted(moving)} on it: {len(load.answers)} "
        f"requests, {len(load.failures)} failed, the router followed in {moved:.1f} s"
    )
    assert moving
    assert {name: r.node != drained for name, r in now.items()} == dict.fromkeys(before, True)
    assert all(now[name].networks != before[name].networks for name in moving)
    assert load.failures == [], load.failures[:5]
    assert versions(url, 20) == {OLD: 20}

    # A rollout after the move finds every replica where it now runs.
    assert _deploy(seeded, "faults", NEW) == "succeeded"
    assert versions(url, 20) == {NEW: 20}
    shown = run_dockroll(seeded, "--json", "status", "--env", "faults")
    assert shown.returncode == 0, shown.stderr
    (environment,) = json.loads(shown.stdout)["environments"]
    assert {r["version"] for r in environment["replicas"]} == {NEW}


def test_rebalance_moves_a_doubled_up_replica_to_the_empty_worker_under_load(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    url = seeded.url("rebalance")
    assert _deploy(seeded, "rebalance", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)
    selector = {
        labels.SERVICE: seeded.service,
        labels.ENVIRONMENT: "rebalance",
        labels.ROLE: "app",
    }
    engine = environment_engine(seeded.config(), "rebalance")
    router = HaproxyRouter.for_environment(engine, seeded.config(), "rebalance")
    try:
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in engine.client.api.nodes()}
        before = _spread(cluster, engine, selector, hostnames)
        # Both replicas onto one worker: drain the other until Swarm moved its replica.
        drained = before[sorted(before)[-1]].node
        _node_availability(cluster, hostnames[drained], "drain")
        try:
            deadline = time.monotonic() + 90
            while True:
                now = {r.name: r for r in engine.containers(selector)}
                servers = {s.name: s for s in router.servers()}
                if all(
                    r.running
                    and r.node != drained
                    and servers[name].health is ServerHealth.UP
                    and servers[name].address == r.networks.get(router.network)
                    for name, r in now.items()
                ):
                    break
                assert time.monotonic() < deadline, (now, servers)
                time.sleep(0.5)
        finally:
            _node_availability(cluster, hostnames[drained], "active")
        (shared,) = {r.node for r in now.values()}
        shown = run_dockroll(seeded, "--json", "status", "--env", "rebalance")
        assert shown.returncode == 0, shown.stderr
        (status,) = json.loads(shown.stdout)["environments"]
        assert any("dockroll rebalance --env rebalance" in note for note in status["drift"])

        # A dry run says what would move and changes nothing.
        shown = run_dockroll(seeded, "--json", "rebalance", "--env", "rebalance", "--dry-run")
        assert shown.returncode == 0, shown.stderr
        planned = json.loads(shown.stdout)
        assert planned["status"] == "dry-run"
        assert planned["nodes"] == {hostnames[shared]: 2}
        assert [m["node"] for m in planned["moves"]] == [hostnames[shared]]
        assert {r.name for r in engine.containers(selector)} == set(now)

        started = time.monotonic()
        with Load(url, threads=4) as load:
            load.wait_for(100, timeout=60)
            done = run_dockroll(seeded, "--json", "rebalance", "--env", "rebalance")
            load.wait_for(len(load.answers) + 200, timeout=60)
        seconds = time.monotonic() - started
        after = {r.name: r for r in engine.containers(selector)}
    finally:
        engine.close()

    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    print(
        f"rebalance of {sorted(now)} sharing {hostnames[shared]}: {len(load.answers)} requests, "
        f"{len(load.failures)} failed, {result['seconds']:.1f} s ({seconds:.1f} s with the load)"
    )
    assert load.failures == [], load.failures[:5]
    assert result["status"] == "succeeded"
    (move,) = result["moves"]
    assert move["replica"] in now
    assert move["replacement"] in after
    assert move["replica"] not in after
    # One replica per worker again, both of the release that served.
    assert len(after) == 2
    assert all(r.running for r in after.values()), after
    assert len({r.node for r in after.values()}) == 2, after
    assert {r.labels[labels.VERSION] for r in after.values()} == {OLD}
    assert result["nodes"] == {hostnames[n]: 1 for n in {r.node for r in after.values()}}
    assert versions(url, 20) == {OLD: 20}
    with seeded.ledger() as ledger:
        (deployment, *_) = ledger.deployments(seeded.service, "rebalance")
        (event, *_) = ledger.audit_events(
            service=seeded.service, env="rebalance", action="rebalance"
        )
    assert deployment.id == result["deployment"]
    assert deployment.status is DeploymentStatus.SUCCEEDED
    assert (deployment.reason or "").startswith("rebalance")
    assert (event.action, event.target) == ("rebalance", OLD)

    # Balanced now: nothing to move, nothing changed, nothing for status to say.
    again = run_dockroll(seeded, "--json", "rebalance", "--env", "rebalance")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "balanced"
    shown = run_dockroll(seeded, "--json", "status", "--env", "rebalance")
    (status,) = json.loads(shown.stdout)["environments"]
    assert status["drift"] == [], status["drift"]


def test_a_killed_worker_node_loses_only_its_requests_in_flight_and_the_router_follows(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    # Last in the module: it kills a node and starts it again.
    seeded, cluster = swarm
    url = seeded.url("faults")
    assert _deploy(seeded, "faults", NEW) in ("succeeded", "unchanged")
    wait_serving(url, NEW, timeout=30)
    selector = {labels.SERVICE: seeded.service, labels.ENVIRONMENT: "faults", labels.ROLE: "app"}
    engine = environment_engine(seeded.config(), "faults")
    router = HaproxyRouter.for_environment(engine, seeded.config(), "faults")
    try:
        hostnames = {n["ID"]: n["Description"]["Hostname"] for n in engine.client.api.nodes()}
        before = _spread(cluster, engine, selector, hostnames)
        assert len({r.node for r in before.values()}) == 2, before
        # The node of the replica that may go anywhere.
        killed = before[sorted(before)[-1]].node
        moving = {name for name, r in before.items() if r.node == killed}

        with Load(url, threads=4) as load:
            load.wait_for(100, timeout=60)
            subprocess.run(["docker", "kill", hostnames[killed]], check=True, timeout=60)
            started = time.monotonic()
            stopped = followed = None
            deadline = started + 150
            while followed is None:
                now = {r.name: r for r in engine.containers(selector)}
                servers = {s.name: s for s in router.servers()}
                if stopped is None and all(
                    servers[name].health is ServerHealth.DOWN
                    or servers[name].state is not ServerState.READY
                    for name in moving
                ):
                    stopped = time.monotonic() - started
                if all(
                    r.running
                    and r.node != killed
                    and servers[name].health is ServerHealth.UP
                    and servers[name].address == r.networks.get(router.network)
                    for name, r in now.items()
                ):
                    followed = time.monotonic() - started
                assert time.monotonic() < deadline, (now, servers)
                time.sleep(0.25)
            load.wait_for(len(load.answers) + 200, timeout=60)
    finally:
        try:
            ensure_swarm(
                cluster=cluster.cluster,
                workers=2,
                engine_port=int(cluster.engine.rsplit(":", 1)[1]),
                publish=_published(cluster),
            )
        finally:
            engine.close()

    print(
        f"kill of {hostnames[killed]} with {sorted(moving)} on it: {len(load.answers)} "
        f"requests, {len(load.failures)} failed {[f.error for f in load.failures][:4]}; "
        f"out of rotation after {stopped:.1f} s, served from another node after {followed:.1f} s"
    )
    assert moving
    assert stopped is not None
    assert stopped < 10
    # Only requests in flight on the node when it died may fail (one per client thread).
    assert len(load.failures) <= 4, load.failures
    assert versions(url, 20) == {NEW: 20}
    shown = run_dockroll(seeded, "--json", "status", "--env", "faults")
    assert shown.returncode == 0, shown.stderr
    (environment,) = json.loads(shown.stdout)["environments"]
    assert {r["node"] for r in environment["replicas"]}.isdisjoint({killed})


def test_a_restarted_manager_serves_again_by_itself_and_rollouts_go_on(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    # After the node kill: it restarts the manager, which carries the router.
    seeded, cluster = swarm
    url = seeded.url("faults")
    assert _deploy(seeded, "faults", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    subprocess.run(["docker", "restart", cluster.manager.name], check=True, timeout=180)
    started = time.monotonic()
    # No dockroll command runs meanwhile: the router starts with the servers it had.
    wait_serving(url, OLD, timeout=120)
    back = time.monotonic() - started
    assert versions(url, 20) == {OLD: 20}
    print(f"manager restarted: serving {OLD} again {back:.1f} s after the node restarted")
    # HAProxy runs in its holder's namespace again, started after the holder (by the
    # engine, or by the holder's watch when the engine could not: its log says which).
    engine = environment_engine(seeded.config(), "faults")
    try:
        router = HaproxyRouter.for_environment(engine, seeded.config(), "faults")
        holder = engine.container(router.holder_name)
        haproxy = engine.container(router.container_name)
        assert holder is not None
        assert haproxy is not None
        assert holder.running
        assert haproxy.running
        assert holder.started is not None
        assert haproxy.started is not None
        assert holder.started <= haproxy.started
        print(f"the holder's log after the restart: {engine.logs(holder.id, tail=5)!r}")
    finally:
        engine.close()

    assert _deploy(seeded, "faults", NEW) == "succeeded"
    assert versions(url, 20) == {NEW: 20}
    shown = run_dockroll(seeded, "--json", "status", "--env", "faults")
    assert shown.returncode == 0, shown.stderr
    (environment,) = json.loads(shown.stdout)["environments"]
    assert {r["version"] for r in environment["replicas"]} == {NEW}
    assert len(environment["replicas"]) == 2


def _started_replicas(seeded: Seeded, environment: str) -> int:
    """Start steps of the environment's running deployment that have finished."""
    with seeded.ledger() as ledger:
        running = [
            d
            for d in ledger.deployments(seeded.service, environment, limit=1)
            if d.status is DeploymentStatus.RUNNING
        ]
        if not running:
            return 0
        steps = ledger.deployment(running[0].id).steps
    return sum(1 for s in steps if s.kind == "start" and s.status is StepStatus.SUCCEEDED)


def test_a_manager_restarted_in_the_middle_of_a_rollout_leaves_it_to_the_next_command(
    swarm: tuple[Seeded, SwarmCluster],
) -> None:
    seeded, cluster = swarm
    url = seeded.url("midway")
    assert _deploy(seeded, "midway", OLD) == "succeeded"
    wait_serving(url, OLD, timeout=30)

    deploying = subprocess.Popen(
        [DOCKROLL, "deploy", NEW, "--env", "midway"],
        env=cli_env(seeded),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _started_replicas(seeded, "midway") < 1:
            assert deploying.poll() is None, deploying.communicate()[0]
            assert time.monotonic() < deadline, "the rollout never started a replica"
            time.sleep(0.2)
        # The manager carries the engine the deploy speaks to and the router.
        subprocess.run(["docker", "restart", cluster.manager.name], check=True, timeout=180)
        output, _ = deploying.communicate(timeout=300)
    finally:
        if deploying.poll() is None:
            deploying.kill()
            deploying.wait()
    print(f"deploy while the manager restarted: exit {deploying.returncode}\n{output}")
    assert deploying.returncode != 0

    # The router comes back with the servers it had; the old release serves on.
    started = time.monotonic()
    wait_serving(url, OLD, timeout=180)
    print(f"serving {OLD} again {time.monotonic() - started:.1f} s after the deploy exited")
    again = run_dockroll(seeded, "deploy", NEW, "--env", "midway")
    print(again.stdout, again.stderr)
    assert again.returncode == 0, again.stderr
    assert versions(url, 20) == {NEW: 20}

    with seeded.ledger() as ledger:
        history = ledger.deployments(seeded.service, "midway")
    assert history[0].status is DeploymentStatus.SUCCEEDED
    assert all(d.status is not DeploymentStatus.RUNNING for d in history)
    shown = run_dockroll(seeded, "--json", "status", "--env", "midway")
    assert shown.returncode == 0, shown.stderr
    (environment,) = json.loads(shown.stdout)["environments"]
    assert [r["version"] for r in environment["replicas"]] == [NEW, NEW]
    engine = environment_engine(seeded.config(), "midway")
    try:
        services = engine.client.api.services(filters={"label": f"{labels.ENVIRONMENT}=midway"})
    finally:
        engine.close()
    # Nothing the interrupted rollout started is left behind.
    assert len(services) == 2
