"""What the router asks of the engine port, against the real engine: a container started
from a request (files, published addresses, log rotation), commands run inside it, files
copied in, signals, and each failure as the engine's own error."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import docker
import pytest

from dockroll.engine import DockerEngine
from dockroll.engine.port import RunRequest
from dockroll.errors import ContainerNotFound, PortInUse
from tests.conftest import free_port
from tests.support import haproxy_image

pytestmark = pytest.mark.integration


@pytest.fixture
def engine() -> Iterator[DockerEngine]:
    engine = DockerEngine()
    yield engine
    engine.close()


@pytest.fixture
def name(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"dockroll-engine-ops-{uuid.uuid4().hex[:8]}"
    yield name
    for container in docker_client.containers.list(all=True, filters={"name": name}):
        container.remove(force=True)


def _request(image: str, name: str, port: int) -> RunRequest:
    return RunRequest(
        image,
        name=name,
        entrypoint=["sleep", "600"],
        publish_on={8080: ("127.0.0.1", port)},
        log_options={"max-size": "1m", "max-file": "2"},
        files={"/usr/local/etc/dockroll-test/start.txt": b"from the start\n"},
        labels={"dockroll.test": "engine-ops"},
    )


def test_a_container_runs_execs_takes_files_and_signals(
    engine: DockerEngine, docker_client: docker.DockerClient, name: str
) -> None:
    port = free_port()
    info = engine.run(_request(haproxy_image(docker_client), name, port))

    assert info.running
    assert info.started is not None
    host = docker_client.api.inspect_container(name)["HostConfig"]
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    started = engine.execute(name, ["cat", "/usr/local/etc/dockroll-test/start.txt"])
    assert (started.exit_code, started.output) == (0, "from the start\n")
    failed = engine.execute(name, ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
    assert failed.exit_code == 3
    assert "to-stdout" in failed.output
    assert "to-stderr" in failed.output

    engine.copy_files(name, "/usr/local/etc/dockroll-test", {"start.txt": b"replaced\n"})
    engine.copy_files(name, "/usr/local/etc/dockroll-test", {"new.txt": b"new\n"})
    listed = engine.execute(
        name,
        [
            "sh",
            "-c",
            "cd /usr/local/etc/dockroll-test && cat start.txt new.txt && stat -c '%a %n' *.txt",
        ],
    )
    assert listed.output.splitlines() == ["replaced", "new", "644 new.txt", "644 start.txt"]

    engine.signal(name, "SIGKILL")
    deadline = time.monotonic() + 10
    while (current := engine.container(name)) is not None and current.running:
        assert time.monotonic() < deadline, "SIGKILL did not end the container"
        time.sleep(0.1)
    assert current is not None
    assert current.started is not None  # a container that ran keeps its start time

    with pytest.raises(ContainerNotFound, match="is not running"):
        engine.execute(name, ["true"])
    with pytest.raises(ContainerNotFound, match="is not running"):
        engine.signal(name, "SIGUSR2")


def test_a_missing_container_is_not_found(engine: DockerEngine, name: str) -> None:
    with pytest.raises(ContainerNotFound, match=f"container {name} does not exist"):
        engine.execute(name, ["true"])
    with pytest.raises(ContainerNotFound, match=f"container {name} does not exist"):
        engine.signal(name, "SIGUSR2")
    with pytest.raises(ContainerNotFound, match=f"container {name}"):
        engine.copy_files(name, "/tmp", {"a.txt": b"a"})


def test_a_taken_port_is_port_in_use_and_leaves_no_container(
    engine: DockerEngine, docker_client: docker.DockerClient, name: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"refused to start {name}") as refused:
            engine.run(_request(haproxy_image(docker_client), name, port))

    assert "listens on a port" in (refused.value.hint or "")
    assert docker_client.containers.list(all=True, filters={"name": name}) == []
