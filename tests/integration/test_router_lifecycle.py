"""An environment's router over its life: who may change it, where it listens, how it reloads.

Each test declares a service of its own in a dockroll.yml, runs its router in a
real HAProxy container, and one small HTTP server on the environment's network
answering its own name (``/ready`` is its readiness check).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest
import yaml

from dockroll.config import Config, load_config
from dockroll.engine import DockerEngine
from dockroll.engine.base_images import load_substitutes, substitutes_file
from dockroll.errors import RouterError
from dockroll.ledger import Ledger, open_ledger
from dockroll.pipeline.deploy import open_environment, open_lock
from dockroll.pipeline.status import environment_status
from dockroll.router import HaproxyRouter, HaproxySettings, ServerSpec
from dockroll.router.haproxy import OFFICIAL_IMAGE
from tests.conftest import IN_CI, free_port

pytestmark = pytest.mark.integration

PYTHON_IMAGE = "dockroll.local/python:3.11-slim"
DOCKROLL = str(Path(sys.executable).with_name("dockroll"))

_BACKEND = """
import http.server, sys
NAME = sys.argv[1].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(NAME)))
        self.end_headers()
        self.wfile.write(NAME)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
"""


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(f"{reason}; run `dockroll dev up --with router` to provide it")


def _image_present(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


@dataclass
class Project:
    """A dockroll.yml with one environment (``prod``), its state dir and ledger."""

    service: str
    state: Path
    config_path: Path
    data: dict[str, Any]
    client: docker.DockerClient

    @property
    def environ(self) -> dict[str, str]:
        return {
            "DOCKROLL_STATE_DIR": str(self.state),
            "DOCKROLL_LEDGER_URL": f"sqlite:///{self.state / 'ledger.db'}",
            "DOCKROLL_CONFIG": str(self.config_path),
        }

    def write(self, **prod: Any) -> Config:
        """Change the prod environment's settings in dockroll.yml (None drops one) and load it."""
        settings = self.data["environments"]["prod"]
        settings.update(prod)
        for key in [key for key, value in settings.items() if value is None]:
            del settings[key]
        self.config_path.write_text(yaml.safe_dump(self.data), encoding="utf-8")
        return load_config(self.config_path)

    def config(self) -> Config:
        return load_config(self.config_path)

    def ledger(self) -> Ledger:
        return open_ledger(self.environ["DOCKROLL_LEDGER_URL"], actor="tests")

    def router(self, config: Config | None = None) -> HaproxyRouter:
        return HaproxyRouter.for_environment(DockerEngine(), config or self.config(), "prod")

    def container(self) -> Any:
        return self.client.containers.get(f"dockroll-router-{self.service}-prod")

    def backend(self, name: str) -> ServerSpec:
        """Start a backend answering ``name`` on the environment's network."""
        router = self.router()
        container = self.client.containers.run(
            PYTHON_IMAGE,
            ["python3", "-c", _BACKEND, name],
            name=f"{router.container_name}-{name}",
            network=router.network,
            labels={"dockroll.test": "router-lifecycle"},
            detach=True,
        )
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][router.network]["IPAddress"]
        return ServerSpec(name=name, address=address, port=8000, weight=100)

    def dockroll(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DOCKROLL, *args],
            env={**os.environ, **self.environ},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def project(docker_client: docker.DockerClient) -> Iterator[Project]:
    substitutes = substitutes_file()
    haproxy_images = [OFFICIAL_IMAGE, load_substitutes().get(OFFICIAL_IMAGE, "")]
    if not any(_image_present(docker_client, ref) for ref in haproxy_images if ref):
        _unavailable(f"neither {OFFICIAL_IMAGE} nor its local substitute is on the engine")
    if not _image_present(docker_client, PYTHON_IMAGE):
        _unavailable(f"{PYTHON_IMAGE} is not on the engine")
    # unix socket paths are short; pytest's tmp_path may not be
    state = Path(tempfile.mkdtemp(prefix="dr-"))
    if substitutes.is_file():
        shutil.copy(substitutes, state / "base-images.json")
    service = f"life{uuid.uuid4().hex[:6]}"
    data: dict[str, Any] = {
        "service": service,
        "image": f"127.0.0.1:5000/tests/{service}",
        "health": {"path": "/ready", "interval": "0.5s"},
        "environments": {"prod": {"port": free_port()}},
    }
    project = Project(service, state, state / "dockroll.yml", data, docker_client)
    project.write()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in project.environ.items():
            patch.setenv(key, value)
        try:
            yield project
        finally:
            for container in docker_client.containers.list(
                all=True, filters={"name": f"dockroll-router-{service}-"}
            ):
                container.remove(force=True)
            for network in docker_client.networks.list(names=[f"dockroll-{service}-"]):
                network.remove()
            shutil.rmtree(state, ignore_errors=True)


def _get(url: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(url)


def test_read_only_commands_leave_an_outdated_router_running(project: Project) -> None:
    """status and lock status read the router as it runs, even one an older dockroll started."""
    config = project.config()
    current = project.router(config)
    outdated = HaproxyRouter(
        current._engine,
        service=current.service,
        environment=current.environment,
        port=current.port,
        settings=HaproxySettings(
            health_path=current.settings.health_path,
            check=current.settings.check,
            metrics_port=current.metrics_port,
            retries=1,
        ),
    )
    outdated.ensure()
    web = project.backend("web")
    outdated.ensure([web])
    outdated.wait_healthy("web", timeout=10)
    before = project.container()
    label = before.labels["dockroll.router.config"]

    with project.ledger() as ledger:
        status = environment_status(config, "prod", ledger)
    assert open_lock(config, "prod").status() is None
    cli_status = project.dockroll("status", "--json")
    lock_status = project.dockroll("lock", "status", "--env", "prod")
    acquired = project.dockroll("lock", "acquire", "--env", "prod", "--reason", "freeze")
    released = project.dockroll("lock", "release", "--env", "prod")

    assert status.router.startswith("running")
    assert [r.name for r in status.replicas] == []
    assert cli_status.returncode == 0, cli_status.stderr
    assert lock_status.returncode == 0, lock_status.stderr
    assert "not locked" in lock_status.stdout
    assert acquired.returncode == 0, acquired.stderr
    assert released.returncode == 0, released.stderr
    after = project.container()
    assert after.id == before.id
    assert after.labels["dockroll.router.config"] == label
    assert after.attrs["State"]["StartedAt"] == before.attrs["State"]["StartedAt"]
    assert "retries 1" in (current.directory / "conf" / "haproxy.cfg").read_text()
    assert _get(f"http://127.0.0.1:{current.port}/").text == "web"

    # A command that changes the environment brings the router up to date.
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    assert "retries 3" in (current.directory / "conf" / "haproxy.cfg").read_text()


def test_the_router_listens_where_the_environment_says(project: Project) -> None:
    public, public6, metrics = free_port(), free_port(), free_port()
    config = project.write(
        router={
            "listen": [f"127.0.0.1:{public}", f"[::1]:{public6}"],
            "metrics": f"127.0.0.1:{metrics}",
        },
        port=None,
    )
    router = project.router(config)
    info = router.ensure()
    web = project.backend("web")
    router.ensure([web])
    router.wait_healthy("web", timeout=10)

    assert info.url == f"http://127.0.0.1:{public}"
    assert info.metrics_url == f"http://127.0.0.1:{metrics}/metrics"
    assert _get(f"http://127.0.0.1:{public}/").text == "web"
    assert _get(f"http://[::1]:{public6}/").text == "web"
    assert "haproxy_backend_http_responses_total" in _get(info.metrics_url).text
    # Nothing where the hidden default (port + 1000) used to be.
    with pytest.raises(httpx.TransportError):
        _get(f"http://127.0.0.1:{public + 1000}/metrics")
    published = project.container().attrs["HostConfig"]["PortBindings"]
    hosts = sorted(b["HostIp"] + ":" + b["HostPort"] for v in published.values() for b in v)
    assert hosts == sorted([f"127.0.0.1:{public}", f"::1:{public6}", f"127.0.0.1:{metrics}"])


def test_a_listener_another_process_holds_is_a_clear_error(project: Project) -> None:

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = project.write(router={"listen": [f"127.0.0.1:{port}"]}, port=port)
        router = project.router(config)
        with pytest.raises(RouterError, match="refused to start") as refused:
            router.ensure()
    assert f"127.0.0.1:{port}" in (refused.value.hint or "")
    assert project.client.containers.list(all=True, filters={"name": router.container_name}) == []
