"""Per-request latency from a real HAProxy's request log, judged per interval.

Three small HTTP servers on the environment's network: ``web-a`` (the
baseline), ``web-b`` (a healthy canary, started fresh) and ``web-slow`` (a
release that answers 300 ms later). A load of about 120 requests a second goes
to the router on 127.0.0.1 while :class:`RouterProvider` and :class:`Analysis`
read it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest

from dockroll.analysis import BASELINE, CANARY, Action, Analysis, AnalysisSettings, Providers
from dockroll.analysis.providers import RouterProvider
from dockroll.engine import DockerEngine
from dockroll.router import HaproxyRouter, HaproxySettings, ServerSpec
from tests.conftest import free_port
from tests.integration.test_router_haproxy import PYTHON_IMAGE, _image_present, _unavailable

pytestmark = pytest.mark.integration

# Answers every request after its fixed delay (argv[2] ms); /ready is the health check.
_BACKEND = """
import http.server, sys, time
NAME, DELAY = sys.argv[1].encode(), int(sys.argv[2]) / 1000
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/ready":
            time.sleep(DELAY)
        self.send_response(200)
        self.send_header("Content-Length", str(len(NAME)))
        self.end_headers()
        self.wfile.write(NAME)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
"""
DELAYS = {"web-a": 5, "web-b": 5, "web-slow": 305}


@dataclass
class Env:
    router: HaproxyRouter
    url: str
    addresses: dict[str, str]
    client: docker.DockerClient

    def serve(self, weights: dict[str, int]) -> None:
        """Exactly ``weights`` in the backend, each healthy."""
        for server in self.router.servers():
            self.router.remove_server(server.name)
        for name in weights:
            self.router.add_server(name, self.addresses[name], 8000, weight=0)
        for name in weights:
            self.router.wait_healthy(name, timeout=15)
        self.router.set_weights(weights)

    def specs(self, weights: dict[str, int]) -> list[ServerSpec]:
        return [ServerSpec(n, self.addresses[n], 8000, weight=w) for n, w in weights.items()]


@dataclass
class Load:
    """GET / on the router from a few threads, about ``rate`` requests a second."""

    url: str
    rate: float = 120.0
    workers: int = 12
    answered: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _work(self) -> None:
        pause = self.workers / self.rate
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    client.get(self.url, headers={"Connection": "close"})
                    self.answered += 1
                except httpx.HTTPError:
                    pass
                self._stop.wait(max(0.0, pause - (time.monotonic() - started)))

    def __enter__(self) -> Load:
        for _ in range(self.workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


@pytest.fixture(scope="module")
def env(docker_client: docker.DockerClient) -> Iterator[Env]:
    if not _image_present(docker_client, PYTHON_IMAGE):
        _unavailable(f"{PYTHON_IMAGE} is not on the engine")
    state = Path(tempfile.mkdtemp(prefix="dr-"))
    router = HaproxyRouter(
        DockerEngine(),
        service="latencytest",
        environment=f"it{uuid.uuid4().hex[:6]}",
        port=free_port(),
        settings=HaproxySettings(metrics_port=free_port()),
        state_root=state,
    )
    containers = []
    try:
        info = router.ensure()
        addresses = {}
        for name, delay in DELAYS.items():
            container = docker_client.containers.run(
                PYTHON_IMAGE,
                ["python3", "-c", _BACKEND, name, str(delay)],
                name=f"{router.container_name}-{name}",
                network=router.network,
                labels={"dockroll.test": "router-latency"},
                detach=True,
            )
            containers.append(container)
            container.reload()
            addresses[name] = container.attrs["NetworkSettings"]["Networks"][router.network][
                "IPAddress"
            ]
        yield Env(router, info.url, addresses, docker_client)
    finally:
        for container in containers:
            container.remove(force=True)
        router.remove()
        for network in docker_client.networks.list(names=[router.network]):
            network.remove()
        shutil.rmtree(state, ignore_errors=True)


def test_the_provider_sees_each_interval_s_requests_only(env: Env) -> None:
    env.serve({"web-a": 70, "web-slow": 30})
    provider = RouterProvider(env.router)
    groups = {CANARY: ["web-slow"], BASELINE: ["web-a"]}
    assert provider.sample(groups) is None  # the starting point
    with Load(env.url, rate=60) as load:
        time.sleep(3)
    time.sleep(0.5)  # the last lines reach the engine's log
    samples = provider.sample(groups)
    assert samples is not None
    canary, baseline = samples[CANARY], samples[BASELINE]
    logged = len(canary.latencies_ms) + len(baseline.latencies_ms)
    assert logged == pytest.approx(load.answered, abs=2)
    assert canary.latencies_ms
    assert min(canary.latencies_ms) >= 290
    assert baseline.latencies_ms
    assert max(baseline.latencies_ms) < 200
    assert canary.requests == pytest.approx(len(canary.latencies_ms), abs=2)
    # The next interval had no request: no latency, not the old ones again.
    quiet = provider.sample(groups)
    assert quiet is not None
    assert (quiet[CANARY].latencies_ms, quiet[BASELINE].latencies_ms) == ((), ())
    assert quiet[CANARY].latency_ms is None


def test_a_restarted_router_is_read_on_from_where_it_was(env: Env) -> None:
    weights = {"web-a": 100}
    env.serve(weights)
    provider = RouterProvider(env.router)
    groups = {CANARY: ["web-b"], BASELINE: ["web-a"]}
    provider.sample(groups)
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(10):
            client.get(env.url)
    env.client.containers.get(env.router.container_name).restart(timeout=1)
    info = env.router.ensure(env.specs(weights))  # it came back empty: restore the server
    assert info.restored == ("web-a",)
    env.router.wait_healthy("web-a", timeout=15)
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(15):
            assert client.get(env.url).status_code == 200
    time.sleep(0.5)
    samples = provider.sample(groups)
    assert samples is not None
    # Every request of the interval, before and after the restart, once.
    assert len(samples[BASELINE].latencies_ms) == 25
    assert samples[CANARY].latencies_ms == ()


def _judge(env: Env, canary: str, seconds: float) -> tuple[Action, str]:
    env.serve({"web-a": 70, canary: 30})
    settings = AnalysisSettings(interval=1.0)
    analysis = Analysis(
        settings,
        Providers(traffic=RouterProvider(env.router)),
        {CANARY: [canary], BASELINE: ["web-a"]},
    )
    decision = analysis.tick(time.monotonic())
    with Load(env.url):
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            decision = analysis.tick(time.monotonic())
            if decision.action is Action.FAIL:
                break
    return decision.action, decision.reason


def test_a_release_300_ms_slower_is_rolled_back(env: Env) -> None:
    action, reason = _judge(env, "web-slow", seconds=20)
    assert action is Action.FAIL, reason
    assert "latency" in reason


def test_a_healthy_release_is_not_rejected(env: Env) -> None:
    action, reason = _judge(env, "web-b", seconds=15)
    assert action is Action.PASS, reason
