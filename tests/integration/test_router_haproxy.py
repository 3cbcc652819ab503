"""The HAProxy router adapter against a real HAProxy container and real backends.

Two small HTTP servers run on the environment's network and answer with their
own name (``/slow?ms=N`` answers after N milliseconds, ``/ready`` is their
readiness check). Every change goes through the runtime API of a running
HAProxy; requests go to it on 127.0.0.1.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from dockroll.engine import DockerEngine
from dockroll.engine.base_images import load_substitutes
from dockroll.errors import RouterError
from dockroll.router import (
    BackendServer,
    HaproxyRouter,
    HaproxySettings,
    ServerHealth,
    ServerSpec,
    ServerState,
    traffic_shares,
)
from dockroll.router.haproxy import OFFICIAL_IMAGE
from tests.conftest import free_port
from tests.support import IN_CI

pytestmark = pytest.mark.integration

PYTHON_IMAGE = "dockroll.local/python:3.11-slim"
NAMES = ("web-a", "web-b")

# A threaded HTTP server that names itself; one connection per request, like the router's side.
_BACKEND = """
import http.server, sys, time, urllib.parse
NAME = sys.argv[1].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/slow":
            time.sleep(int(urllib.parse.parse_qs(url.query)["ms"][0]) / 1000)
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


@dataclass
class Env:
    router: HaproxyRouter
    url: str
    backends: dict[str, str]
    """Backend name → IP on the environment's network."""

    def spec(self, name: str, weight: int = 0) -> ServerSpec:
        return ServerSpec(name=name, address=self.backends[name], port=8000, weight=weight)


@pytest.fixture(scope="module")
def env(docker_client: docker.DockerClient) -> Iterator[Env]:
    haproxy_images = [OFFICIAL_IMAGE, load_substitutes().get(OFFICIAL_IMAGE, "")]
    if not any(_image_present(docker_client, ref) for ref in haproxy_images if ref):
        _unavailable(f"neither {OFFICIAL_IMAGE} nor its local substitute is on the engine")
    if not _image_present(docker_client, PYTHON_IMAGE):
        _unavailable(f"{PYTHON_IMAGE} is not on the engine")

    # unix socket paths are short; pytest's tmp_path may not be
    state = Path(tempfile.mkdtemp(prefix="dr-"))
    engine = DockerEngine()
    router = HaproxyRouter(
        engine,
        service="routertest",
        environment=f"it{uuid.uuid4().hex[:6]}",
        port=free_port(),
        settings=HaproxySettings(metrics_port=free_port()),
        state_root=state,
    )
    containers = []
    try:
        info = router.ensure()
        for name in NAMES:
            containers.append(
                docker_client.containers.run(
                    PYTHON_IMAGE,
                    ["python3", "-c", _BACKEND, name],
                    name=f"{router.container_name}-{name}",
                    network=router.network,
                    labels={"dockroll.test": "router"},
                    detach=True,
                )
            )
        backends = {}
        for name, container in zip(NAMES, containers, strict=True):
            container.reload()
            backends[name] = container.attrs["NetworkSettings"]["Networks"][router.network][
                "IPAddress"
            ]
        yield Env(router=router, url=info.url, backends=backends)
    finally:
        for container in containers:
            container.remove(force=True)
        router.remove()
        for network in docker_client.networks.list(names=[router.network]):
            network.remove()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def both(env: Env) -> Env:
    """Both backends in the backend, healthy, weight 0."""
    _reset(env)
    for name in NAMES:
        env.router.add_server(name, env.backends[name], 8000, weight=0)
    for name in NAMES:
        env.router.wait_healthy(name, timeout=10)
    return env


def _image_present(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    return True


def _reset(env: Env) -> None:
    for server in env.router.servers():
        env.router.remove_server(server.name, timeout=10)


def _client() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10)


def _get(url: str) -> httpx.Response:
    with _client() as client:
        return client.get(url)


def _server(router: HaproxyRouter, name: str) -> BackendServer:
    (server,) = [s for s in router.servers() if s.name == name]
    return server


def _spread(url: str, count: int) -> collections.Counter[str]:
    with _client() as client:
        answers = [client.get(url) for _ in range(count)]
    assert {a.status_code for a in answers} == {200}
    return collections.Counter(a.text for a in answers)


def test_an_empty_backend_answers_503_at_once(env: Env) -> None:
    _reset(env)
    started = time.monotonic()
    with _client() as client:
        response = client.get(env.url)

    assert response.status_code == 503
    assert time.monotonic() - started < 0.5
    assert env.router.servers() == ()


def test_added_servers_stay_out_until_checked_and_weighted(env: Env) -> None:
    _reset(env)
    env.router.add_server("web-a", env.backends["web-a"], 8000, weight=0)
    (added,) = env.router.servers()
    assert (added.state, added.weight) == (ServerState.READY, 0)
    assert added.health is ServerHealth.DOWN  # no check has passed yet

    healthy = env.router.wait_healthy("web-a", timeout=10)

    assert healthy.health is ServerHealth.UP
    assert healthy.check_status == "L7OK"
    assert traffic_shares(env.router.servers()) == {"web-a": 0.0}
    with _client() as client:
        assert client.get(env.url).status_code == 503


def test_weights_100_0_send_everything_to_one_server(both: Env) -> None:
    both.router.set_weights({"web-a": 100, "web-b": 0})

    assert _spread(both.url, 200) == {"web-a": 200}


def test_weights_50_50_balance(both: Env) -> None:
    both.router.set_weights({"web-a": 50, "web-b": 50})

    spread = _spread(both.url, 200)

    assert 80 <= spread["web-a"] <= 120
    assert spread["web-a"] + spread["web-b"] == 200


def test_drain_stops_new_requests_and_lets_in_flight_ones_finish(both: Env) -> None:
    router = both.router
    router.set_weights({"web-a": 0, "web-b": 100})
    with ThreadPoolExecutor(4) as pool, _client() as client:
        slow = [pool.submit(_get, f"{both.url}/slow?ms=1500") for _ in range(3)]
        deadline = time.monotonic() + 5
        while _server(router, "web-b").current_sessions < 3:
            assert time.monotonic() < deadline, "slow requests never reached web-b"
            time.sleep(0.05)
        before = _server(router, "web-b").total_requests

        router.set_weight("web-a", 100)
        router.drain("web-b")
        fast = collections.Counter(client.get(both.url).text for _ in range(50))
        drained = router.wait_drained("web-b", timeout=10)
        finished = [f.result() for f in slow]

    assert fast == {"web-a": 50}
    assert [(r.status_code, r.text) for r in finished] == [(200, "web-b")] * 3
    assert drained.state is ServerState.DRAIN
    assert drained.total_requests == before
    assert drained.current_sessions == 0


def test_remove_server_then_503_with_none_left(both: Env) -> None:
    router = both.router
    router.set_weights({"web-a": 100, "web-b": 100})
    router.drain("web-b")
    router.wait_drained("web-b", timeout=10)

    router.remove_server("web-b")

    assert [s.name for s in router.servers()] == ["web-a"]
    assert _spread(both.url, 20) == {"web-a": 20}
    router.remove_server("web-a")
    with _client() as client:
        assert client.get(both.url).status_code == 503


def test_unknown_servers_are_router_errors(both: Env) -> None:
    with pytest.raises(RouterError, match="No such server"):
        both.router.drain("web-z")
    with pytest.raises(RouterError, match="has no server web-z"):
        both.router.set_weights({"web-z": 1})


@pytest.mark.slow
def test_flipping_weights_under_load_drops_nothing(both: Env) -> None:
    router = both.router
    router.set_weights({"web-a": 100, "web-b": 0})
    done = threading.Event()
    flips = 0

    def flip() -> None:
        nonlocal flips
        while not done.is_set():
            a_serves = flips % 2 == 1
            router.set_weights({"web-a": 100 if a_serves else 0, "web-b": 0 if a_serves else 100})
            flips += 1
            time.sleep(0.01)

    def worker(count: int) -> list[tuple[int, str]]:
        with _client() as client:
            return [(r.status_code, r.text) for r in (client.get(both.url) for _ in range(count))]

    flipper = threading.Thread(target=flip)
    flipper.start()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(10) as pool:
            results = [item for batch in pool.map(worker, [50] * 10) for item in batch]
    finally:
        done.set()
        flipper.join()
    elapsed = time.monotonic() - started

    statuses = collections.Counter(status for status, _ in results)
    served = collections.Counter(text for _, text in results)
    print(  # shown with -s: the measurement this test exists for
        f"\nweight flips under load: {len(results)} requests in {elapsed:.2f}s, "
        f"{flips} flips, statuses {dict(statuses)}, served {dict(served)}"
    )
    assert len(results) == 500
    assert statuses == {200: 500}
    assert flips >= 10
    assert set(served) == {"web-a", "web-b"}


def test_router_recreated_after_removal_restores_servers(
    both: Env, docker_client: docker.DockerClient
) -> None:
    router = both.router
    router.set_weights({"web-a": 50, "web-b": 50})
    docker_client.containers.get(router.container_name).remove(force=True)
    with _client() as client, pytest.raises(httpx.TransportError):
        client.get(both.url)

    info = router.ensure([both.spec("web-a", 50), both.spec("web-b", 50)])

    assert info.created
    assert info.restored == ("web-a", "web-b")
    for name in NAMES:
        router.wait_healthy(name, timeout=10)
    spread = _spread(both.url, 40)
    assert spread == {"web-a": 20, "web-b": 20}
    with _client() as client:
        metrics = client.get(info.metrics_url)
    assert metrics.status_code == 200
    assert 'haproxy_backend_http_responses_total{proxy="app",code="2xx"}' in metrics.text


def test_a_router_with_an_outdated_config_is_reloaded_in_place_with_its_servers(
    both: Env,
) -> None:
    """What an upgrade of dockroll does to a running router whose config it renders otherwise."""
    old = HaproxyRouter(
        both.router._engine,
        service=both.router.service,
        environment=both.router.environment,
        port=both.router.port,
        settings=HaproxySettings(metrics_port=both.router.metrics_port, retries=1),
        state_root=both.router.directory.parents[1],
    )
    before = old.ensure([both.spec("web-a", 50), both.spec("web-b", 50)])
    old.set_weights({"web-a": 50, "web-b": 50})
    assert "retries 1" in (old.directory / "conf" / "haproxy.cfg").read_text()

    info = both.router.ensure([both.spec("web-a", 50), both.spec("web-b", 50)])

    assert not info.created
    assert info.reloaded
    assert info.container_id == before.container_id
    assert info.restored == ()
    config = (both.router.directory / "conf" / "haproxy.cfg").read_text()
    assert "retries 3" in config
    assert "log-format" in config
    assert {s.name: s.health for s in both.router.servers()} == {
        "web-a": ServerHealth.UP,
        "web-b": ServerHealth.UP,
    }
    assert _spread(both.url, 20) == {"web-a": 10, "web-b": 10}


def test_ensure_leaves_a_running_router_and_its_servers_alone(both: Env) -> None:
    router = both.router
    router.set_weights({"web-a": 7, "web-b": 0})
    before = router.ensure()

    again = router.ensure([both.spec("web-a", 100), both.spec("web-b", 100)])

    assert not again.created
    assert again.restored == ()
    assert again.container_id == before.container_id
    assert {s.name: s.weight for s in router.servers()} == {"web-a": 7, "web-b": 0}
