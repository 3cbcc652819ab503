"""The light engine client against the real engine: on the same containers it gives what
the Docker SDK adapter gives (running with a published port and a HEALTHCHECK, exited,
only created), and the same errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from dockroll.engine import DockerEngine
from dockroll.engine.api import engine_unavailable
from dockroll.engine.port import RunRequest
from dockroll.engine.unix_api import UnixSocketEngine, light_engine
from dockroll.errors import EngineError, EngineUnavailable
from tests.support import haproxy_image

pytestmark = pytest.mark.integration

SOCKET = "unix:///var/run/docker.sock"


@pytest.fixture
def service(docker_client: docker.DockerClient) -> Iterator[str]:
    service = f"dockroll-unixapi-{uuid.uuid4().hex[:8]}"
    yield service
    for container in docker_client.containers.list(all=True, filters={"name": service}):
        container.remove(force=True)


def test_same_containers_as_the_sdk_adapter(
    docker_client: docker.DockerClient, service: str
) -> None:
    image = haproxy_image(docker_client)
    sdk = DockerEngine(SOCKET)
    light = UnixSocketEngine(SOCKET)
    labels = {"dockroll.test": service}
    try:
        sdk.run(
            RunRequest(
                image,
                name=f"{service}-running",
                labels={**labels, "role": "running"},
                entrypoint=["sleep", "600"],
                publish={8080: None},
                healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000},
            )
        )
        sdk.run(
            RunRequest(
                image,
                name=f"{service}-exited",
                labels={**labels, "role": "exited"},
                entrypoint=["sh", "-c", "exit 3"],
            )
        )
        sdk.reserve(f"{service}-created", image, {**labels, "role": "created"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {c.name: (c.status, c.health.value) for c in sdk.containers(labels)}
            if states.get(f"{service}-exited", ("",))[0] == "exited" and states.get(
                f"{service}-running", ("", "")
            )[1] in ("healthy", "unhealthy"):
                break
            time.sleep(0.3)

        by_sdk = sorted(sdk.containers(labels), key=lambda c: c.name)
        by_light = sorted(light.containers(labels), key=lambda c: c.name)
        assert [c.name for c in by_light] == [
            f"{service}-created",
            f"{service}-exited",
            f"{service}-running",
        ]
        assert by_light == by_sdk
        running = next(c for c in by_light if c.name.endswith("-running"))
        assert running.ports
        assert running.health.value == "healthy"
        assert running.started
        assert next(c for c in by_light if c.name.endswith("-exited")).exit_code == 3
        # One label narrows the listing like the SDK's filter does.
        narrowed = light.containers({**labels, "role": "exited"})
        assert [c.name for c in narrowed] == [f"{service}-exited"]
        assert narrowed == sdk.containers({**labels, "role": "exited"})

        assert light.container(running.id) == sdk.container(running.id)
        assert light.container(f"{service}-running") == sdk.container(f"{service}-running")
        assert light.container(f"{service}-missing") is None
        assert sdk.container(f"{service}-missing") is None
        assert light.ping() == sdk.ping()
        assert abs((light.now() - sdk.now()).total_seconds()) < 5
        assert light.containers({"dockroll.test": f"{service}-none"}) == []
        # The calls not made over the socket go to the adapter: the same engine.
        light.remove(f"{service}-created", grace=0)
        assert sdk.container(f"{service}-created") is None
    finally:
        light.close()
        sdk.close()


def test_no_engine_is_engine_unavailable() -> None:
    """What the SDK adapter says for an engine that is not there (the same words,
    ``engine_unavailable``), not a raw OSError."""
    missing = f"unix:///tmp/dockroll-no-engine-{uuid.uuid4().hex[:8]}.sock"
    light = UnixSocketEngine(missing)
    try:
        with pytest.raises(EngineUnavailable) as error:
            light.ping()
        with pytest.raises(EngineUnavailable):
            light.containers({"dockroll.test": "x"})
    finally:
        light.close()
    expected = engine_unavailable(missing, "x")
    assert error.value.hint == expected.hint
    assert error.value.message.startswith(f"no Docker engine answers at {missing}: ")


def test_light_engine_only_for_plain_unix_sockets() -> None:
    assert isinstance(light_engine(SOCKET), UnixSocketEngine)
    assert isinstance(light_engine("tcp://127.0.0.1:2375"), DockerEngine)
    assert isinstance(light_engine("ssh://user@host"), DockerEngine)


def test_the_lock_and_network_calls_made_over_the_socket(
    docker_client: docker.DockerClient, service: str
) -> None:
    """What the rollback's lock and network need, made without the SDK: a reservation is a
    created container (the name taken once), a removal stops and deletes, a network is made
    once; the SDK adapter sees the same results."""
    image = haproxy_image(docker_client)
    sdk = DockerEngine(SOCKET)
    light = UnixSocketEngine(SOCKET)
    network = f"{service}-net"
    try:
        reserved = light.reserve(f"{service}-lock", image, {"dockroll.test": service})
        assert reserved is not None
        assert reserved == sdk.container(f"{service}-lock")
        assert reserved.status == "created"
        assert reserved.labels["dockroll.test"] == service
        assert light.reserve(f"{service}-lock", image, {"dockroll.test": service}) is None
        with pytest.raises(EngineError, match=f"creating {service}-other failed: "):
            light.reserve(f"{service}-other", f"{image}-no-such-tag-{service}", {})

        sdk.run(RunRequest(image, name=f"{service}-running", entrypoint=["sleep", "600"]))
        light.remove(f"{service}-running", grace=0)
        light.remove(reserved.id, grace=0)
        assert sdk.container(f"{service}-running") is None
        assert sdk.container(f"{service}-lock") is None
        light.remove(f"{service}-missing", grace=0)  # nothing there: nothing to do

        light.ensure_network(network, {"dockroll.test": service})
        light.ensure_network(network, {"dockroll.test": service})
        [made] = docker_client.networks.list(names=[network])
        assert made.attrs["Driver"] == "bridge"
        assert made.attrs["Labels"] == {"dockroll.test": service}
    finally:
        light.close()
        sdk.close()
        for found in docker_client.networks.list(names=[network]):
            found.remove()
