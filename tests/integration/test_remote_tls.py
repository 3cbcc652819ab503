"""Deploys to an engine at tcp:// that requires TLS client certificates.

A Docker-in-Docker node runs dockerd with ``--tlsverify`` on 127.0.0.1 (its
port published by the node); the certificates are made here with openssl.
Blue-green's verify command reaches the new slot through a forward dockroll
opens through the router container, since nothing publishes the replicas.
The router's image is upgraded there under load, new before old, through the
same TLS connection.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from dockroll import labels
from dockroll.devenv import ensure_commands
from dockroll.devenv.cluster import NodeSpec, ensure_node_image, start_node
from dockroll.engine.docker import DockerEngine
from dockroll.errors import EngineUnavailable, RouterError
from dockroll.events import Progress
from dockroll.pipeline.deploy import deploy_release, rollback_release
from dockroll.pipeline.engines import environment_engine
from dockroll.router.haproxy import HaproxyRouter
from dockroll.router.port import ServerSpec
from dockroll.router.transport import ADMIN_PORT_LABEL, ExecForward
from tests.conftest import free_port
from tests.integration.remote_support import NEW, OLD, VERIFY, remote_cluster, remote_environment
from tests.integration.rollout_support import (
    Load,
    Seeded,
    seed_service,
    state_of,
    versions,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(directory: Path, name: str) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as dockerd wants."""
    directory.mkdir(parents=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        cwd=directory,
    )
    for role, extensions in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (directory / f"{role}.ext").write_text(extensions)
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={role}",
            "-keyout",
            f"{role}-key.pem",
            "-out",
            f"{role}.csr",
            cwd=directory,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{role}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            f"{role}.ext",
            "-out",
            f"{role}.pem",
            cwd=directory,
        )
    for path in directory.glob("*.pem"):
        path.chmod(0o644)


@pytest.fixture(scope="module")
def tls_host(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[tuple[Seeded, Path, str]]:
    ensure_commands({"openssl": "openssl"})
    tmp = tmp_path_factory.mktemp("tls")
    make_certs(tmp / "server", "engine")
    client = tmp / "client"
    client.mkdir()
    for name, source in (("ca", "ca"), ("cert", "client"), ("key", "client-key")):
        (client / f"{name}.pem").write_bytes((tmp / "server" / f"{source}.pem").read_bytes())
    verify_log = tmp / "verified.jsonl"
    with remote_cluster("tls") as cluster:
        engine_port = free_port()
        endpoint = f"tcp://127.0.0.1:{engine_port}"
        environments = {
            "bluegreen": remote_environment(
                endpoint,
                cluster.registry,
                engine_certs=str(client),
                strategy="blue-green",
                blue_green={
                    "keep_previous": "5m",
                    "verify": [sys.executable, "-c", VERIFY, str(verify_log)],
                },
            ),
        }
        for seeded in seed_service(tmp_path_factory, registry, environments, prefix="tls"):
            ensure_node_image()
            start_node(
                NodeSpec(
                    name=f"dockroll-{cluster.name}-host",
                    cluster=cluster.name,
                    network=cluster.network,
                    publish={engine_port: 2376, **{p: p for p in seeded.ports.values()}},
                    insecure_registries=(cluster.registry,),
                    dockerd_hosts=("tcp://0.0.0.0:2376",),
                    dockerd_args=(
                        "--tlsverify",
                        "--tlscacert=/certs/ca.pem",
                        "--tlscert=/certs/server.pem",
                        "--tlskey=/certs/server-key.pem",
                    ),
                    volumes={str(tmp / "server"): "/certs"},
                )
            )
            with state_of(seeded):
                yield seeded, client, endpoint


def test_blue_green_over_tls_verifies_through_the_router_and_rolls_back(
    tls_host: tuple[Seeded, Path, str],
) -> None:
    seeded, _, _ = tls_host
    url = seeded.url("bluegreen")
    with seeded.ledger() as ledger:
        first = deploy_release(seeded.config(), "bluegreen", seeded.releases[OLD], ledger)
    assert first is not None
    assert first.status == "succeeded"
    wait_serving(url, OLD, timeout=30)

    with Load(url, threads=4) as load:
        load.wait_for(100, timeout=60)
        with seeded.ledger() as ledger:
            second = deploy_release(seeded.config(), "bluegreen", seeded.releases[NEW], ledger)
        load.wait_for(len(load.answers) + 200, timeout=60)
        with seeded.ledger() as ledger:
            back = rollback_release(seeded.config(), "bluegreen", ledger)
        load.wait_for(len(load.answers) + 200, timeout=60)

    print(f"blue-green over tls: {len(load.answers)} requests, {load.versions()}")
    assert second is not None
    assert second.status == "succeeded"
    assert back is not None
    assert back.status == "succeeded"
    assert load.failures == [], load.failures[:5]
    assert versions(url, 20) == {OLD: 20}
    log = Path(seeded.config().environment("bluegreen").blue_green.verify[-1])  # type: ignore[index]
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen[-1]["version"] == NEW
    assert seen[-1]["url"].startswith("http://127.0.0.1:")


def test_a_client_certificate_from_another_ca_is_refused_with_a_hint(
    tls_host: tuple[Seeded, Path, str], tmp_path: Path
) -> None:
    _, _, endpoint = tls_host
    make_certs(tmp_path / "other", "other")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    for name, source in (("ca", "ca"), ("cert", "client"), ("key", "client-key")):
        (stranger / f"{name}.pem").write_bytes((tmp_path / "other" / f"{source}.pem").read_bytes())

    engine = DockerEngine(endpoint, certs=stranger)
    try:
        with pytest.raises(EngineUnavailable) as caught:
            engine.ping()
    finally:
        engine.close()
    print(caught.value.message, "|", caught.value.hint)
    assert "certificate" in caught.value.message
    assert caught.value.hint is not None
    assert "ca.pem" in caught.value.hint


def _serving_router(seeded: Seeded, engine: DockerEngine) -> HaproxyRouter:
    """The environment's router, serving a release (deployed here when a test runs alone)."""
    config = seeded.config()
    router = HaproxyRouter.for_environment(engine, config, "bluegreen")
    if engine.container(router.container_name) is None:  # alone: the blue-green test's
        with seeded.ledger() as ledger:
            deploy_release(config, "bluegreen", seeded.releases[OLD], ledger)
    wait_serving(seeded.url("bluegreen"), OLD, timeout=30)
    return router


def test_a_forward_through_the_router_over_tls_carries_every_request(
    tls_host: tuple[Seeded, Path, str],
) -> None:
    # Each connection's bytes go both ways over one TLS connection to the engine at
    # once; when reads and writes overlapped there, about one answer in ten was lost.
    seeded, _, _ = tls_host
    engine = environment_engine(seeded.config(), "bluegreen")
    try:
        router = _serving_router(seeded, engine)
        replica = next(s for s in router.servers() if s.weight)
        failures: list[str] = []
        with ExecForward(engine, router.container_name, replica.address, replica.port) as forward:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(forward.url + "/version", timeout=10) as answer:
                        assert json.load(answer)["version"] == OLD
                except OSError as exc:
                    failures.append(repr(exc))
        assert failures == [], f"{len(failures)} of 300 failed: {failures[:3]}"
    finally:
        engine.close()


def _changed(router: HaproxyRouter, **settings: object) -> HaproxyRouter:
    """The same environment's router as a dockroll that renders other settings sees it."""
    return HaproxyRouter(
        router.engine,
        service=router.service,
        environment=router.environment,
        port=router.port,
        settings=dataclasses.replace(router.settings, **settings),  # type: ignore[arg-type]
    )


def test_a_router_image_upgrade_over_tls_drops_nothing_and_a_broken_one_changes_nothing(
    tls_host: tuple[Seeded, Path, str],
) -> None:
    seeded, _, _ = tls_host
    url = seeded.url("bluegreen")
    config = seeded.config()
    engine = environment_engine(config, "bluegreen")
    try:
        router = _serving_router(seeded, engine)
        before = engine.container(router.container_name)
        holder = engine.container(router.holder_name)
        assert before is not None
        assert holder is not None
        servers = {s.name: s.weight for s in router.servers()}
        assert any(servers.values())  # the weighted replicas of the release serving
        # A second tag of the router's image: to the router, another image to upgrade to.
        engine.tag(before.image, "dockroll.local/haproxy-upgrade", config.service)
        upgraded = _changed(router, image=f"dockroll.local/haproxy-upgrade:{config.service}")
        assert "(hitless)" in upgraded.describe().verdict
        messages: list[str] = []

        def record(event: Progress) -> None:
            messages.append(event.message)

        upgraded._progress = record
        with Load(url, threads=4) as load:
            load.wait_for(200, timeout=60)
            info = upgraded.upgrade()
            load.wait_for(len(load.answers) + 200, timeout=60)

        print(f"router upgrade over tls: {len(load.answers)} requests, {load.versions()}")
        assert load.failures == [], load.failures[:5]
        assert info.replaced == "hitless"
        assert any("(hitless)" in m for m in messages), messages
        after = engine.container(router.container_name)
        assert after is not None
        assert after.id != before.id
        assert after.image == f"dockroll.local/haproxy-upgrade:{config.service}"
        # Old and new shared the holder's loopback: each had an API port of its own.
        assert after.labels[ADMIN_PORT_LABEL] != before.labels[ADMIN_PORT_LABEL]
        kept = engine.container(router.holder_name)
        assert kept is not None
        assert (kept.id, kept.started) == (holder.id, holder.started)
        assert engine.container(f"{router.container_name}-next") is None
        assert {s.name: s.weight for s in upgraded.servers()} == servers
        assert upgraded.describe().verdict == "up to date"
        # A hitless reload of the new one: its master passes the listeners on as before.
        reload = upgraded.reload()
        assert reload.worker != reload.previous_worker
        assert set(reload.carried) == set(servers)

        # A new container that cannot run HAProxy: removed, the running one serves on.
        (replica, *_) = engine.containers(labels.selector(config.service, "bluegreen"))
        broken = _changed(router, image=replica.image)
        with pytest.raises(RouterError, match="keeps serving as it was"):
            broken.upgrade()
        still = engine.container(router.container_name)
        assert still is not None
        assert still.id == after.id
        assert engine.container(f"{router.container_name}-next") is None
        assert {s.name: s.weight for s in upgraded.servers()} == servers
        assert versions(url, 20) == {OLD: 20}

        # Back to the first image: as hitless.
        assert router.upgrade().replaced == "hitless"
        assert versions(url, 20) == {OLD: 20}

        # HAProxy ends without dockroll (as a crash does) and the engine's restart policy
        # starts it again: it adds its servers back by itself, from the file dockroll
        # copied into its container. No command runs.
        ended = engine.container(router.container_name)
        assert ended is not None
        # From inside, as a crash would end it: a `docker kill` counts as a stop by hand,
        # after which the engine's restart policy does not start the container again.
        engine.execute(router.container_name, ["sh", "-c", "kill -TERM 1"])
        deadline = time.monotonic() + 30
        while True:
            again = engine.container(router.container_name)
            if again is not None and again.running and again.started != ended.started:
                break
            assert time.monotonic() < deadline, "the engine did not start the router again"
            time.sleep(0.2)
        wait_serving(url, OLD, timeout=20)
        fresh = HaproxyRouter.for_environment(engine, config, "bluegreen")
        assert {s.name: s.weight for s in fresh.servers()} == servers
        assert versions(url, 20) == {OLD: 20}
    finally:
        engine.close()


def test_a_remote_router_an_older_dockroll_started_moves_into_a_holder_once(
    tls_host: tuple[Seeded, Path, str],
) -> None:
    seeded, _, _ = tls_host
    url = seeded.url("bluegreen")
    config = seeded.config()
    engine = environment_engine(config, "bluegreen")
    try:
        router = _serving_router(seeded, engine)
        servers = [ServerSpec(s.name, s.address, s.port, weight=s.weight) for s in router.servers()]
        volume = engine.client.api.inspect_volume(router.run_volume)
        assert volume["Labels"]["dockroll.environment"] == "bluegreen"
        router.remove()  # its holder and the volume of its sockets go with it
        assert engine.container(router.holder_name) is None
        names = [v.name for v in engine.client.volumes.list(filters={"name": router.run_volume})]
        assert router.run_volume not in names
        # What a dockroll before holders on remote engines started: one container.
        older = HaproxyRouter.for_environment(engine, config, "bluegreen")
        older.network_holder = False
        older.ensure(servers)
        wait_serving(url, OLD, timeout=30)
        assert engine.container(router.holder_name) is None

        router = HaproxyRouter.for_environment(engine, config, "bluegreen")
        assert "this once" in router.describe().verdict
        assert router.upgrade(servers).replaced == "migrate"
        wait_serving(url, OLD, timeout=30)
        assert engine.container(router.holder_name) is not None
        with Load(url, threads=4) as load:
            load.wait_for(100, timeout=60)
            assert router.upgrade().replaced == "hitless"
            load.wait_for(len(load.answers) + 100, timeout=60)
        print(f"second upgrade after the move: {len(load.answers)} requests, {load.versions()}")
        assert load.failures == [], load.failures[:5]
    finally:
        engine.close()
