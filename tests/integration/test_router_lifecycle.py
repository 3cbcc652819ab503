"""An environment's router over its life: who may change it, where it listens, how it reloads.

Each test declares a service of its own in a dockroll.yml, runs its router in a
real HAProxy container, and one small HTTP server on the environment's network
answering its own name (``/ready`` is its readiness check).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
from dockroll.router import (
    BackendServer,
    HaproxyRouter,
    HaproxySettings,
    ServerHealth,
    ServerSpec,
    ServerState,
)
from dockroll.router.haproxy import OFFICIAL_IMAGE
from dockroll.router.tls import certificate_fingerprint
from tests.conftest import IN_CI, free_port
from tests.integration.rollout_support import Load

pytestmark = pytest.mark.integration

PYTHON_IMAGE = "dockroll.local/python:3.11-slim"
DOCKROLL = str(Path(sys.executable).with_name("dockroll"))

# Answers its name, as JSON {"version": name} on /version (what the Load helper reads).
_BACKEND = """
import http.server, json, sys
NAME = sys.argv[1].encode()
VERSION = json.dumps({"version": sys.argv[1]}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = VERSION if self.path == "/version" else NAME
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
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
        # Known on the network by its server's name too, as dockroll's replicas are (their
        # container names): a router that restarts finds its servers again by name.
        endpoint = self.client.api.create_endpoint_config(aliases=[name])
        container = self.client.containers.run(
            PYTHON_IMAGE,
            ["python3", "-c", _BACKEND, name],
            name=f"{router.container_name}-{name}",
            network=router.network,
            networking_config={router.network: endpoint},
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
    assert "runs an older config: `dockroll router reload --env prod`" in status.router
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

    # A command that changes the environment brings the router up to date, hitless.
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    assert "retries 3" in (current.directory / "conf" / "haproxy.cfg").read_text()
    assert current.running_config() == current.config_fingerprint()
    assert project.container().id == before.id
    assert _get(f"http://127.0.0.1:{current.port}/").text == "web"


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
    # The holder of the router's network namespace publishes them; HAProxy runs in it.
    holder = project.client.containers.get(f"{router.container_name}-net")
    assert project.container().attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}"
    published = holder.attrs["HostConfig"]["PortBindings"]
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


def _changed(router: HaproxyRouter, **settings: Any) -> HaproxyRouter:
    """The same environment's router as a dockroll that renders other settings sees it."""
    return HaproxyRouter(
        router.engine,
        service=router.service,
        environment=router.environment,
        port=router.port,
        settings=dataclasses.replace(router.settings, **settings),
    )


def _two_backends(project: Project) -> tuple[HaproxyRouter, ServerSpec, ServerSpec]:
    router = project.router()
    router.ensure()
    a, b = project.backend("web-a"), project.backend("web-b")
    router.ensure([a, dataclasses.replace(b, weight=30)])
    for name in ("web-a", "web-b"):
        router.wait_healthy(name, timeout=10)
    router.set_weight("web-a", 70)  # a weight changed at runtime, not the one it was added with
    return router, a, b


@pytest.mark.slow
def test_config_changes_reload_hitless_under_load(project: Project) -> None:
    router, _, _ = _two_backends(project)
    before = project.container().id
    reloads = []
    with Load(f"http://127.0.0.1:{router.port}", threads=4) as load:
        load.wait_for(100)
        for retries in (1, 2, 3):
            info = _changed(router, retries=retries).ensure()
            assert info.reloaded
            reloads.append(router.running_config())
            load.wait_for(len(load.answers) + 150)
    answers = len(load.answers)

    print(f"\nreloads under load: {answers} requests, failures {len(load.failures)}")
    assert load.failures == []
    assert answers >= 450
    assert len(set(reloads)) == 3
    assert project.container().id == before
    assert {s.name: s.weight for s in router.servers()} == {"web-a": 70, "web-b": 30}
    assert set(load.versions()) == {"web-a", "web-b"}


def test_a_reload_carries_drained_and_unchecked_servers_as_they_are(project: Project) -> None:
    router, _, _ = _two_backends(project)
    router.drain("web-b")
    stopped = project.client.containers.get(f"{router.container_name}-web-a")
    router.add_server(
        "late",
        stopped.attrs["NetworkSettings"]["Networks"][router.network]["IPAddress"],
        1,
        weight=5,
    )

    done = _changed(router, retries=1).reload()

    servers = {s.name: s for s in router.servers()}
    assert sorted(done.carried) == ["late", "web-a", "web-b"]
    assert done.worker != done.previous_worker
    assert servers["web-b"].state is ServerState.DRAIN
    assert servers["web-a"].weight == 70
    # Never checked up before the reload (nothing listens on port 1): still down after it.
    assert servers["late"].health is ServerHealth.DOWN
    assert {_get(f"http://127.0.0.1:{router.port}/").text for _ in range(10)} == {"web-a"}
    # A carried server is an ordinary one: it can be removed as before.
    router.remove_server("late")
    assert "late" not in {s.name for s in router.servers()}


def test_a_config_haproxy_refuses_changes_nothing(project: Project) -> None:
    router, _, _ = _two_backends(project)
    running = router.running_config()
    broken = _changed(router, health_path='/ready"')

    with pytest.raises(RouterError, match="refuses the new config") as refused:
        broken.reload()

    assert "keeps serving unchanged" in refused.value.message
    assert router.running_config() == running
    assert {s.name: s.weight for s in router.servers()} == {"web-a": 70, "web-b": 30}
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200


def test_new_listeners_need_an_explicit_upgrade_which_carries_the_servers(
    project: Project,
) -> None:
    router, _, _ = _two_backends(project)
    before = project.container().id
    moved = free_port()
    config = project.write(
        router={"listen": [f"127.0.0.1:{moved}"], "metrics": f"127.0.0.1:{free_port()}"}, port=None
    )
    wanted = project.router(config)

    info = wanted.ensure()
    status = project.dockroll("router", "status", "--env", "prod", "--json")
    refused = project.dockroll("router", "reload", "--env", "prod")

    assert "dockroll router upgrade --env prod" in info.outdated
    assert not info.reloaded
    assert project.container().id == before
    assert status.returncode == 0, status.stderr
    assert '"needs_upgrade": true' in status.stdout
    assert refused.returncode != 0
    assert "router upgrade" in refused.stderr
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200

    upgraded = project.dockroll("router", "upgrade", "--env", "prod")

    assert upgraded.returncode == 0, upgraded.stderr
    assert project.container().id != before
    assert {s.name: s.weight for s in wanted.servers()} == {"web-a": 70, "web-b": 30}
    assert {s.name: s.health for s in wanted.servers()} == {
        "web-a": ServerHealth.UP,
        "web-b": ServerHealth.UP,
    }
    assert _get(f"http://127.0.0.1:{moved}/").status_code == 200
    after = project.dockroll("router", "status", "--env", "prod")
    assert "up to date" in after.stdout


@contextlib.contextmanager
def _retagged(project: Project, image: str) -> Iterator[str]:
    """A second tag of the router's image: to the router, another image to upgrade to."""
    tag = f"dockroll.local/haproxy-upgrade:{project.service}"
    project.client.images.get(image).tag(tag)
    try:
        yield tag
    finally:
        project.client.images.remove(tag, noprune=True)


@pytest.mark.slow
def test_an_image_upgrade_starts_the_new_router_before_the_old_one_stops(
    project: Project,
) -> None:
    router, _, _ = _two_backends(project)
    router.drain("web-b")
    router.set_ready("web-b")  # a state change made at runtime, carried like the weights
    router.set_maintenance(False)
    before = project.container()
    holder = project.client.containers.get(f"{router.container_name}-net")
    with _retagged(project, router.image()) as tag:
        upgraded = _changed(router, image=tag)
        assert "starts a new one beside it (hitless)" in upgraded.ensure().outdated
        messages: list[str] = []
        upgraded._progress = lambda event: messages.append(event.message)
        with Load(f"http://127.0.0.1:{router.port}", threads=4) as load:
            load.wait_for(200)
            info = upgraded.upgrade()
            load.wait_for(len(load.answers) + 200)
        answers = len(load.answers)

        print(f"\nimage upgrade under load: {answers} requests, failures {len(load.failures)}")
        assert load.failures == []
        assert info.replaced == "hitless"
        assert any("(hitless)" in m for m in messages), messages
        after = project.container()
        assert after.id != before.id
        assert after.attrs["Config"]["Image"] == tag
        # The listeners stayed with the holder: same container, same published ports.
        assert (
            project.client.containers.get(holder.id).attrs["State"]["StartedAt"]
            == (holder.attrs["State"]["StartedAt"])
        )
        assert (
            project.client.containers.list(
                all=True, filters={"name": f"{router.container_name}-next"}
            )
            == []
        )
        # The runtime API path in the state dir reaches the new HAProxy.
        assert {s.name: s.weight for s in upgraded.servers()} == {"web-a": 70, "web-b": 30}
        assert {s.state for s in upgraded.servers()} == {ServerState.READY}
        assert upgraded.describe().verdict == "up to date"
        assert set(load.versions()) == {"web-a", "web-b"}
        # A second upgrade, back to the first image, is as hitless.
        assert router.upgrade().replaced == "hitless"
        assert project.container().attrs["Config"]["Image"] == router.image()
        assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200
        project.container().remove(force=True)  # before its image's tag goes


def test_a_new_router_that_does_not_come_up_leaves_the_old_one_serving(
    project: Project,
) -> None:
    router, _, _ = _two_backends(project)
    before = project.container().id
    no_haproxy = _changed(router, image=PYTHON_IMAGE)

    with pytest.raises(RouterError, match="keeps serving as it was"):
        no_haproxy.upgrade()

    assert project.container().id == before
    assert (
        project.client.containers.list(all=True, filters={"name": f"{router.container_name}-next"})
        == []
    )
    assert {s.name: s.weight for s in router.servers()} == {"web-a": 70, "web-b": 30}
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200
    assert "\n    server " not in (router.directory / "conf" / "haproxy.cfg").read_text()


def test_a_router_whose_holder_went_away_comes_back_with_its_servers(project: Project) -> None:
    router, a, b = _two_backends(project)
    project.client.containers.get(f"{router.container_name}-net").remove(force=True)

    info = router.ensure([a, dataclasses.replace(b, weight=30)])

    assert info.created
    assert project.client.containers.get(f"{router.container_name}-net").status == "running"
    assert {s.name for s in router.servers()} == {"web-a", "web-b"}
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200
    upgraded = project.dockroll("router", "upgrade", "--env", "prod")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "replaced the prod router hitless" in upgraded.stdout
    assert {s.name for s in router.servers()} == {"web-a", "web-b"}
    # A holder that restarted has a new namespace, without the router in it.
    project.client.containers.get(f"{router.container_name}-net").restart(timeout=0)
    assert router.ensure([a, b]).created
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200


def test_a_holder_the_engine_started_without_its_haproxy_starts_it(project: Project) -> None:
    """What an engine restart may leave: the holder running, HAProxy not (started first, it
    could not join a namespace that did not exist yet, and the engine gives up on it)."""
    router, a, b = _two_backends(project)
    haproxy = project.client.containers.get(router.container_name)
    holder = project.client.containers.get(f"{router.container_name}-net")
    haproxy.stop(timeout=1)
    holder.stop(timeout=0)

    holder.start()
    deadline = time.monotonic() + 20
    while project.client.containers.get(router.container_name).status != "running":
        assert time.monotonic() < deadline, holder.logs().decode()
        time.sleep(0.2)

    assert "starting " + router.container_name in holder.logs().decode()
    # No dockroll command: HAProxy adds its servers back itself, with their weights.
    deadline = time.monotonic() + 20
    while {s.name for s in _servers(router)} != {"web-a", "web-b"}:
        assert time.monotonic() < deadline, project.container().logs().decode()[-2000:]
        time.sleep(0.2)
    for name in ("web-a", "web-b"):
        router.wait_healthy(name, timeout=10)
    assert {s.name: s.weight for s in router.servers()} == {"web-a": 70, "web-b": 30}
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200
    info = router.ensure([a, dataclasses.replace(b, weight=30)])
    assert not info.created  # in the new namespace already
    assert info.restored == ()  # and nothing left for the command to add


def _servers(router: HaproxyRouter) -> tuple[BackendServer, ...]:
    """The router's servers; none while it is not answering yet."""
    try:
        return router.servers()
    except RouterError:
        return ()


def test_a_router_docker_restarted_serves_its_replicas_again_by_itself(
    project: Project,
) -> None:
    """`docker restart` of the router (as a crash or a host reboot does): no command runs."""
    router, _, _ = _two_backends(project)
    router.drain("web-b")  # drained, it stays drained: no request goes there
    with Load(f"http://127.0.0.1:{router.port}", threads=4) as load:
        load.wait_for(100)
        started = time.monotonic()
        project.container().restart(timeout=1)
        restarted = time.monotonic()
        deadline = restarted + 30
        while not any(a.version and a.at > restarted for a in load.answers):
            assert time.monotonic() < deadline, project.container().logs().decode()[-2000:]
            time.sleep(0.05)
        back = min(a.at for a in load.answers if a.version and a.at > restarted)
        load.wait_for(len(load.answers) + 200)
    failed = [a for a in load.failures if a.at >= started]
    gap = max((a.at for a in failed), default=started) - started

    print(
        f"\ndocker restart of the router: {len(failed)} failed of {len(load.answers)}, "
        f"the last failure {gap:.2f}s and the first 200 {back - started:.2f}s after the "
        f"restart began ({back - restarted:.2f}s after it returned); errors: "
        f"{sorted({a.error.split(':')[0] for a in failed})}"
    )
    assert back - restarted < 10
    assert {s.name: (s.weight, s.state) for s in router.servers()} == {
        "web-a": (70, ServerState.READY),
        "web-b": (30, ServerState.DRAIN),
    }
    assert gap < 10
    assert set(load.versions(since=started + gap + 0.01)) == {"web-a"}
    assert "restore: web-a back at" in project.container().logs().decode()


def test_new_listeners_another_process_holds_stop_nothing(project: Project) -> None:
    router, _, _ = _two_backends(project)
    before = project.container().id
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project.write(router={"listen": [f"127.0.0.1:{port}"]}, port=port)

        refused = project.dockroll("router", "upgrade", "--env", "prod")

    assert refused.returncode == 10, refused.stdout + refused.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr
    assert "nothing changed" in refused.stderr
    assert project.container().id == before
    assert _get(f"http://127.0.0.1:{router.port}/").status_code == 200


class _OlderRouter(HaproxyRouter):
    """A router as a dockroll before network holders started it: it publishes its ports."""

    network_holder = False


@pytest.mark.slow
def test_a_router_an_older_dockroll_started_moves_into_a_holder_once(project: Project) -> None:
    router, _, _ = _two_backends(project)
    router.remove()
    older = _OlderRouter(
        router.engine,
        service=router.service,
        environment=router.environment,
        port=router.port,
        settings=router.settings,
    )
    a, b = project.backend("web-c"), project.backend("web-d")
    older.ensure([a, dataclasses.replace(b, weight=30)])
    for name in ("web-c", "web-d"):
        older.wait_healthy(name, timeout=10)
    assert "moves it, this once" in router.ensure().outdated
    messages: list[str] = []
    router._progress = lambda event: messages.append(event.message)

    with Load(f"http://127.0.0.1:{router.port}", threads=4) as load:
        load.wait_for(200)
        info = router.upgrade()
        load.wait_for(len(load.answers) + 100)

    print(f"\none-time migration under load: failures {len(load.failures)}")
    assert info.replaced == "migrate"
    assert any(m.startswith("one-time restart") for m in messages), messages
    assert {s.name: s.weight for s in router.servers()} == {"web-c": 100, "web-d": 30}
    assert router.describe().verdict == "up to date"
    assert router.upgrade().replaced == "hitless"


def _timed_get(url: str) -> tuple[int, float, httpx.Headers]:
    started = time.monotonic()
    with httpx.Client(trust_env=False, timeout=30) as client:
        response = client.get(url)
    return response.status_code, time.monotonic() - started, response.headers


def test_held_requests_wait_then_flow_and_past_max_get_503(project: Project) -> None:
    router = project.router()
    router.ensure()
    web = project.backend("web")
    router.ensure([web])
    router.wait_healthy("web", timeout=10)
    url = f"http://127.0.0.1:{router.port}/"
    with httpx.Client(trust_env=False, timeout=30) as keep_alive:
        assert keep_alive.get(url).status_code == 200  # a connection open before the hold

        # By the library: a CLI start-up on a busy machine could outlast the keep-alive timeout.
        router.hold(router.engine.now() + datetime.timedelta(seconds=30))
        with ThreadPoolExecutor(6) as pool:
            waiting = [pool.submit(_timed_get, url) for _ in range(5)]
            # A request on the connection opened before the hold waits too.
            waiting.append(pool.submit(keep_alive.get, url))
            time.sleep(2)
            assert not any(f.done() for f in waiting)
            released = project.dockroll("release", "--env", "prod")
            answers = [f.result() for f in waiting]
    assert released.returncode == 0, released.stderr
    timed = [a for a in answers if isinstance(a, tuple)]
    assert [status for status, _, _ in timed] == [200] * 5
    assert all(seconds >= 2 for _, seconds, _ in timed)
    assert answers[-1].status_code == 200  # type: ignore[union-attr]

    # Past --max: 503 with Retry-After, at the deadline and for every request after it.
    # (By the library: a CLI start-up on a busy machine could outlast a short --max.)
    router.hold(router.engine.now() + datetime.timedelta(seconds=1.5))
    status, seconds, headers = _timed_get(url)
    late_status, late_seconds, _ = _timed_get(url)
    assert (status, headers.get("retry-after")) == (503, "5")
    assert 0.5 <= seconds < 5
    assert (late_status, late_seconds < 2) == (503, True)
    assert project.dockroll("release", "--env", "prod").returncode == 0
    assert _get(url).status_code == 200

    # The CLI's hold, as a user runs it.
    held = project.dockroll("hold", "--env", "prod", "--max", "30s", "--json")
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout)["held"] is True
    assert router.flags()["hold"] == "on"
    assert project.dockroll("release", "--env", "prod").returncode == 0
    assert router.flags()["hold"] == "off"

    maintenance = project.dockroll("maintenance", "on", "--env", "prod")
    page = _get(url)
    assert maintenance.returncode == 0, maintenance.stderr
    assert (page.status_code, page.headers.get("retry-after")) == (503, "30")
    assert "maintenance" in page.text
    assert project.dockroll("maintenance", "off", "--env", "prod").returncode == 0
    assert _get(url).text == "web"


def test_a_hold_survives_a_reload(project: Project) -> None:
    router, _, _ = _two_backends(project)
    router.hold(router.engine.now() + datetime.timedelta(seconds=30))
    url = f"http://127.0.0.1:{router.port}/"

    _changed(router, retries=1).reload()

    assert router.flags()["hold"] == "on"
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_timed_get, url)
        time.sleep(1)
        assert not waiting.done()
        router.release()
        status, seconds, _ = waiting.result()
    assert (status, seconds >= 1) == (200, True)


def test_holding_needs_a_router_that_runs(project: Project) -> None:
    refused = project.dockroll("hold", "--env", "prod")

    assert refused.returncode != 0
    assert "does not run" in refused.stderr


_ECHO = """
import http.server, json
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
"""


def test_the_application_learns_its_clients_and_the_access_log_shows_them(
    project: Project,
) -> None:
    direct, proxied = free_port(), free_port()
    config = project.write(
        router={
            "listen": [
                f"127.0.0.1:{direct}",
                {"address": f"127.0.0.1:{proxied}", "proxy_protocol": True},
            ],
            "metrics": f"127.0.0.1:{free_port()}",
        },
        port=None,
    )
    router = project.router(config)
    router.ensure()
    echo = project.client.containers.run(
        PYTHON_IMAGE,
        ["python3", "-c", _ECHO],
        name=f"{router.container_name}-echo",
        network=router.network,
        detach=True,
    )
    echo.reload()
    address = echo.attrs["NetworkSettings"]["Networks"][router.network]["IPAddress"]
    router.ensure([ServerSpec("echo", address, 8000, weight=100)])
    router.wait_healthy("echo", timeout=10)

    with httpx.Client(trust_env=False, timeout=10) as client:
        spoofed = client.get(
            f"http://127.0.0.1:{direct}/hello?x=1",
            headers={"X-Forwarded-For": "6.6.6.6", "X-Request-ID": "mine", "Host": "shop.test"},
        ).json()
        second = client.get(f"http://127.0.0.1:{direct}/").json()
    # A load balancer in front speaks the PROXY protocol (v1) for client 203.0.113.7.
    with socket.create_connection(("127.0.0.1", proxied), timeout=10) as balancer:
        balancer.sendall(
            b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 80\r\n"
            b"GET /via-lb HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-Proto: https\r\n"
            b"X-Request-ID: lb-42\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := balancer.recv(65536):
            answer += chunk
    behind = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    with pytest.raises(httpx.TransportError):  # no PROXY header: refused on that listener
        _get(f"http://127.0.0.1:{proxied}/")

    assert spoofed["x-forwarded-for"] != "6.6.6.6"
    assert spoofed["x-forwarded-for"].count(",") == 0
    assert spoofed["x-forwarded-proto"] == "http"
    assert spoofed["x-forwarded-host"] == "shop.test"
    assert spoofed["x-request-id"] not in ("mine", "")
    assert second["x-request-id"] != spoofed["x-request-id"]
    assert behind["x-forwarded-for"] == "203.0.113.7"
    assert (behind["x-forwarded-proto"], behind["x-request-id"]) == ("https", "lb-42")

    logs = project.dockroll("logs", "--router", "--env", "prod", "--json")
    assert logs.returncode == 0, logs.stderr
    entries = json.loads(logs.stdout)
    hello = next(e for e in entries if e["uri"] == "/hello?x=1")
    assert (hello["method"], hello["status"], hello["server"]) == ("GET", 200, "echo")
    assert hello["request_id"] == spoofed["x-request-id"]
    assert hello["client"] == spoofed["x-forwarded-for"]
    assert any(e["uri"] == "/via-lb" and e["client"] == "203.0.113.7" for e in entries)
    text = project.dockroll("logs", "--router", "--env", "prod", "--tail", "5")
    assert "GET /hello?x=1 200 echo" in text.stdout
    # The access log is the router's: a process or --follow belongs to the replicas' output.
    mixed = project.dockroll("logs", "--router", "--env", "prod", "--process", "web")
    assert mixed.returncode == 2, mixed.stderr
    assert "--router" in mixed.stderr


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory: Path) -> Path:
    """A test CA (ca.pem) and two certificates for 127.0.0.1 it signed: a.pem/a.key, b.pem/b.key."""
    directory.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=dockroll test CA", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    for name in ("a", "b"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", "/CN=127.0.0.1", cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", "san.ext", cwd=directory)  # fmt: skip
    return directory


def _served_fingerprint(port: int) -> str:
    return certificate_fingerprint(ssl.get_server_certificate(("127.0.0.1", port)))


def test_tls_from_files_redirect_hsts_and_a_new_certificate_without_restart(
    project: Project,
) -> None:
    certs = _certificates(project.state / "certs")
    live_cert, live_key = certs / "live.pem", certs / "live.key"
    shutil.copy(certs / "a.pem", live_cert)
    shutil.copy(certs / "a.key", live_key)
    plain, secure = free_port(), free_port()
    config = project.write(
        router={
            "listen": [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{secure}", "tls": True}],
            "metrics": f"127.0.0.1:{free_port()}",
            "tls": {"cert": "certs/live.pem", "key": "certs/live.key", "hsts": "4320h"},
        },
        port=None,
    )
    router = project.router(config)
    router.ensure()
    web = project.backend("web")
    router.ensure([web])
    router.wait_healthy("web", timeout=10)
    started = project.container().id
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    with httpx.Client(trust_env=False, timeout=10, verify=context) as client:
        secure_answer = client.get(f"https://127.0.0.1:{secure}/")
        redirect = client.get(f"http://127.0.0.1:{plain}/cart?x=1")
    assert (secure_answer.status_code, secure_answer.text) == (200, "web")
    assert secure_answer.headers["strict-transport-security"] == "max-age=15552000"
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://127.0.0.1:{plain}/cart?x=1"
    assert "strict-transport-security" not in redirect.headers
    assert _served_fingerprint(secure) == certificate_fingerprint((certs / "a.pem").read_text())

    # A renewed certificate: the next command that changes the environment loads it live.
    shutil.copy(certs / "b.pem", live_cert)
    shutil.copy(certs / "b.key", live_key)
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    assert _served_fingerprint(secure) == certificate_fingerprint((certs / "b.pem").read_text())
    assert project.container().id == started

    # A certificate with a key that is not its own: refused, the one that served keeps serving.
    shutil.copy(certs / "a.pem", live_cert)
    with pytest.raises(RouterError, match="refused the certificate") as refused:
        router.sync_certificate()
    assert "the one serving stays" in refused.value.message
    assert _served_fingerprint(secure) == certificate_fingerprint((certs / "b.pem").read_text())
    with httpx.Client(trust_env=False, timeout=10, verify=context) as client:
        assert client.get(f"https://127.0.0.1:{secure}/").text == "web"


def _other_project(project: Project, tag: str) -> Project:
    """Another dockroll.yml (another service) using the same state dir and engine."""
    service = f"{project.service[:8]}{tag}"
    data: dict[str, Any] = {
        "service": service,
        "image": f"127.0.0.1:5000/tests/{service}",
        "health": {"path": "/ready", "interval": "0.5s"},
        "environments": {"prod": {"port": free_port()}},
    }
    other = Project(service, project.state, project.state / f"{tag}.yml", data, project.client)
    other.write()
    return other


def _serving(project: Project, hosts: list[str], edge: str) -> Config:
    config = project.write(hosts=hosts, edge={"listen": [edge]})
    router = project.router(config)
    router.ensure()
    name = project.service
    backend = project.backend(name)
    router.ensure([backend])
    router.wait_healthy(name, timeout=10)
    with project.ledger() as ledger:
        open_environment(config, "prod", ledger)
    return config


def test_the_shared_edge_routes_by_hostname_and_a_second_project_joins_dropping_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKROLL_EDGE_NAME", f"dockroll-edge-{project.service}")
    second, third = _other_project(project, "b"), _other_project(project, "c")
    edge_port = free_port()
    edge = f"http://127.0.0.1:{edge_port}/"
    try:
        _serving(project, ["a.test"], f"127.0.0.1:{edge_port}")

        def get(host: str) -> httpx.Response:
            with httpx.Client(trust_env=False, timeout=10) as client:
                return client.get(edge, headers={"Host": host})

        assert get("a.test").text == project.service
        assert get("A.TEST:80").text == project.service
        unknown = get("nobody.test")
        assert unknown.status_code == 404

        answers: list[int] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(trust_env=False, timeout=10, headers={"Host": "a.test"}) as client:
                while not stop.is_set():
                    try:
                        answers.append(client.get(edge).status_code)
                    except httpx.HTTPError:
                        answers.append(-1)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            _serving(second, ["b.test"], f"127.0.0.1:{edge_port}")
            time.sleep(0.5)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        assert len(answers) >= 100
        assert set(answers) == {200}
        assert get("b.test").text == second.service
        assert get("a.test").text == project.service

        # A hostname another environment holds: refused, the first keeps serving it.
        with pytest.raises(
            RouterError, match=f"a.test is already claimed by {project.service}/prod"
        ):
            _serving(third, ["a.test", "c.test"], f"127.0.0.1:{edge_port}")
        assert get("a.test").text == project.service
        assert get("c.test").status_code == 404
    finally:
        for other in (second, third):
            for container in project.client.containers.list(
                all=True, filters={"name": f"dockroll-router-{other.service}-"}
            ):
                container.remove(force=True)
            for network in project.client.networks.list(names=[f"dockroll-{other.service}-"]):
                network.remove()
        with contextlib.suppress(docker.errors.NotFound):
            project.client.containers.get(f"dockroll-edge-{project.service}").remove(force=True)
        for container in project.client.containers.list(
            all=True, filters={"name": f"dockroll-router-{project.service}-"}
        ):
            container.remove(force=True)
        for network in project.client.networks.list(names=[f"dockroll-edge-{project.service}"]):
            network.remove()
