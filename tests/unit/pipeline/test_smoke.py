"""The smoke test over a fake engine whose container "publishes" a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dockroll.config import Config, load_config
from dockroll.engine.port import Health
from dockroll.errors import SmokeTestError
from dockroll.events import Progress
from dockroll.pipeline.smoke import smoke_test
from tests.unit.fakes import ContainerState, FakeEngine

IMAGE = "127.0.0.1:5000/team/web:v1.2.3"
FULL_SHA = "abc1234def5678abc1234def5678abc1234def56"


@dataclass
class Service:
    """What the pretend service answers."""

    ready_status: int = 200
    version: object = field(default_factory=lambda: {"version": "v1.2.3", "git_sha": FULL_SHA[:7]})
    raw_version: bytes | None = None
    requests: list[str] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def service() -> Iterator[Service]:
    state = Service()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path == "/ready":
                self._send(state.ready_status, b"ready" if state.ready_status == 200 else b"no")
            elif self.path == "/version":
                body = state.raw_version or json.dumps(state.version).encode()
                self._send(200, body, "application/json")
            else:
                self._send(404, b"not found")

        def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    # A short poll interval keeps shutdown() from waiting half a second per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def make_config(tmp_path: Path, extra: str = "", start_timeout: str = "5s") -> Config:
    """A config whose ``extra`` lines continue the ``health:`` block or add sections."""
    path = tmp_path / "dockroll.yml"
    path.write_text(
        "service: web\nimage: 127.0.0.1:5000/team/web\n"
        "container:\n  port: 5000\n  env: {GREETING: hi}\n  stop_grace: 3s\n"
        f"health:\n  interval: 10ms\n  timeout: 1s\n  start_timeout: {start_timeout}\n" + extra,
        encoding="utf-8",
    )
    return load_config(path)


def make_engine(service: Service, *states: ContainerState, healthcheck: bool = True) -> FakeEngine:
    engine = FakeEngine(published_port=service.port)
    if states:
        engine.container_states = list(states)
    engine.add_image("sha256:" + "1" * 64, IMAGE, has_healthcheck=healthcheck)
    return engine


STARTING = ContainerState(health=Health.STARTING)


def test_a_healthy_image_passes(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, STARTING, STARTING, ContainerState())
    events: list[Progress] = []

    result = smoke_test(
        make_config(tmp_path),
        engine,
        IMAGE,
        expect_version="v1.2.3",
        expect_sha=FULL_SHA[:7],
        progress=events.append,
    )

    assert result.image == IMAGE
    assert result.health_source == "docker+http"
    assert result.version == {"version": "v1.2.3", "git_sha": FULL_SHA[:7]}
    assert result.seconds_to_healthy >= 0
    [run] = engine.runs
    assert run.image == IMAGE
    assert dict(run.env) == {"GREETING": "hi", "ENVIRONMENT": "smoke-test"}
    assert run.labels["dev.dockroll.role"] == "smoke-test"
    assert run.labels["dev.dockroll.service"] == "web"
    assert dict(run.publish) == {5000: None}
    assert run.health_interval == pytest.approx(0.01)
    assert engine.running == []
    assert engine.removed[0][1] == 3.0
    assert "/ready" in service.requests
    assert "/version" in service.requests
    assert any("healthy after" in e.message for e in events)


def test_an_image_without_healthcheck_relies_on_the_readiness_path(
    tmp_path: Path, service: Service
) -> None:
    engine = make_engine(service, ContainerState(health=Health.NONE), healthcheck=False)
    result = smoke_test(make_config(tmp_path), engine, IMAGE)
    assert result.health_source == "http"
    assert engine.runs[0].health_interval is None


def test_docker_health_alone(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, STARTING, ContainerState())
    result = smoke_test(make_config(tmp_path, "  path: null\n"), engine, IMAGE)
    assert result.health_source == "docker"
    assert "/ready" not in service.requests


def test_no_version_endpoint(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service)
    config = make_config(tmp_path, "smoke:\n  version_path: null\n")
    result = smoke_test(config, engine, IMAGE, expect_version="anything")
    assert result.version == {}
    assert "/version" not in service.requests


def test_a_crash_at_start_shows_the_log_lines(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, STARTING, ContainerState(status="exited", exit_code=3))
    engine.container_logs = (
        "[INFO] Starting gunicorn 22.0.0\n"
        "Traceback (most recent call last):\n"
        "RuntimeError: FAULT_CRASH_ON_START is set; refusing to start\n"
    )
    service.ready_status = 503

    with pytest.raises(SmokeTestError, match=r"stopped during start \(exit code 3\)") as caught:
        smoke_test(make_config(tmp_path), engine, IMAGE)

    message = caught.value.message
    assert "last log lines of the container" in message
    assert "    RuntimeError: FAULT_CRASH_ON_START is set; refusing to start" in message
    assert caught.value.hint is not None
    assert engine.running == []


def test_a_crash_before_the_first_look_is_still_a_crash(tmp_path: Path, service: Service) -> None:
    # The container exits before the engine first inspects it, so it publishes no port.
    engine = make_engine(service, ContainerState(status="exited", exit_code=3))
    engine.container_logs = "RuntimeError: FAULT_CRASH_ON_START is set"
    with pytest.raises(SmokeTestError, match=r"stopped during start \(exit code 3\)") as caught:
        smoke_test(make_config(tmp_path), engine, IMAGE)
    assert "FAULT_CRASH_ON_START" in caught.value.message
    assert engine.running == []


def test_a_crash_without_output(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, ContainerState(status="exited", exit_code=1))
    with pytest.raises(SmokeTestError, match=r"\(no output\)"):
        smoke_test(make_config(tmp_path), engine, IMAGE)
    assert engine.running == []


def test_unhealthy_docker_health(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, STARTING, ContainerState(health=Health.UNHEALTHY))
    engine.container_logs = "GET /health 500"
    with pytest.raises(SmokeTestError, match="HEALTHCHECK reports unhealthy") as caught:
        smoke_test(make_config(tmp_path), engine, IMAGE)
    assert "GET /health 500" in caught.value.message
    assert engine.running == []


def test_unhealthy_docker_health_is_ignored_when_switched_off(
    tmp_path: Path, service: Service
) -> None:
    engine = make_engine(service, ContainerState(health=Health.UNHEALTHY))
    config = make_config(tmp_path, "  use_docker_healthcheck: false\n")
    assert smoke_test(config, engine, IMAGE).health_source == "http"


def test_not_ready_before_the_start_timeout(tmp_path: Path, service: Service) -> None:
    service.ready_status = 503
    engine = make_engine(service, ContainerState(health=Health.STARTING))
    config = make_config(tmp_path, start_timeout="300ms")

    with pytest.raises(SmokeTestError, match=r"not healthy after 0.3s") as caught:
        smoke_test(config, engine, IMAGE)

    message = caught.value.message
    assert "Docker health is starting" in message
    assert "GET /ready gave HTTP 503" in message
    assert caught.value.hint is not None
    assert "start_timeout" in caught.value.hint
    assert engine.running == []


def test_a_readiness_probe_that_gets_no_answer(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, ContainerState(health=Health.NONE), healthcheck=False)
    engine.published_port = 9  # discard: nothing listens on 127.0.0.1:9
    config = make_config(tmp_path, start_timeout="200ms")
    with pytest.raises(SmokeTestError, match="GET /ready gave ConnectError"):
        smoke_test(config, engine, IMAGE)
    assert engine.running == []


def test_a_version_mismatch(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service)
    with pytest.raises(
        SmokeTestError, match=r"reports version 'v1\.2\.3', but 'v1\.2\.4' was built"
    ) as caught:
        smoke_test(make_config(tmp_path), engine, IMAGE, expect_version="v1.2.4")
    assert caught.value.hint is not None
    assert "APP_VERSION" in caught.value.hint
    assert engine.running == []


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (FULL_SHA, FULL_SHA),
        (FULL_SHA, FULL_SHA[:7]),
        (FULL_SHA[:7], FULL_SHA),
        (FULL_SHA[:7], FULL_SHA[:12]),
    ],
)
def test_sha_prefixes_match(tmp_path: Path, service: Service, reported: str, expected: str) -> None:
    service.version = {"version": "v1.2.3", "git_sha": reported}
    result = smoke_test(make_config(tmp_path), make_engine(service), IMAGE, expect_sha=expected)
    assert result.version["git_sha"] == reported


@pytest.mark.parametrize("reported", ["", "def5678", FULL_SHA[:6] + "0"])
def test_sha_mismatch(tmp_path: Path, service: Service, reported: str) -> None:
    service.version = {"version": "v1.2.3", "git_sha": reported}
    engine = make_engine(service)
    with pytest.raises(SmokeTestError, match="reports git sha"):
        smoke_test(make_config(tmp_path), engine, IMAGE, expect_sha=FULL_SHA[:7])
    assert engine.running == []


def test_custom_version_fields(tmp_path: Path, service: Service) -> None:
    service.version = {"release": "v2", "commit": FULL_SHA}
    config = make_config(tmp_path, "smoke:\n  version_field: release\n  git_sha_field: commit\n")
    result = smoke_test(
        config, make_engine(service), IMAGE, expect_version="v2", expect_sha=FULL_SHA[:7]
    )
    assert result.version["release"] == "v2"


@pytest.mark.parametrize(("raw", "words"), [(b"not json", "failed"), (b"[1, 2]", "answered")])
def test_a_version_endpoint_that_is_not_a_json_object(
    tmp_path: Path, service: Service, raw: bytes, words: str
) -> None:
    service.raw_version = raw
    engine = make_engine(service)
    with pytest.raises(SmokeTestError, match=words):
        smoke_test(make_config(tmp_path), engine, IMAGE)
    assert engine.running == []


def test_an_image_that_is_not_there(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service)
    with pytest.raises(SmokeTestError, match="is not on the engine"):
        smoke_test(make_config(tmp_path), engine, "127.0.0.1:5000/team/web:nope")
    assert engine.runs == []


def test_nothing_to_decide_health_by(tmp_path: Path, service: Service) -> None:
    engine = make_engine(service, healthcheck=False)
    with pytest.raises(SmokeTestError, match=r"no HEALTHCHECK and dockroll\.yml sets no"):
        smoke_test(make_config(tmp_path, "  path: null\n"), engine, IMAGE)
    assert engine.runs == []
