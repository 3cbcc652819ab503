"""The sample service, driven through Flask's test client."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from app import (
    STARTUP_FAILURE_EXIT_CODE,
    Faults,
    InvalidKnobError,
    create_app,
)
from flask.testing import FlaskClient

from conftest import APP_DIR

APP_ENDPOINTS = ("/",)
OPERATIONAL_PATHS = ("/health", "/ready", "/metrics", "/version")

MakeClient = Callable[..., FlaskClient]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def make_client() -> MakeClient:
    def make(
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        **env: str,
    ) -> FlaskClient:
        return create_app(env, clock=clock, rng=rng).test_client()

    return make


# --- endpoints ---------------------------------------------------------------


def test_index_greets_with_version(make_client: MakeClient) -> None:
    client = make_client(APP_VERSION="v1.2.3", ENVIRONMENT="staging")

    response = client.get("/")

    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == "v1.2.3"
    assert body["environment"] == "staging"
    assert body["service"] == "flask-app"
    assert body["hostname"]


def test_health_answers_ok(make_client: MakeClient) -> None:
    response = make_client().get("/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_answers_ready_without_faults(make_client: MakeClient) -> None:
    response = make_client().get("/ready")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_version_reports_build_metadata_from_env(make_client: MakeClient) -> None:
    client = make_client(
        APP_VERSION="v0.0.1",
        GIT_SHA="abc1234",
        BUILD_DATE="2024-05-01T12:00:00Z",
        BUILD_NUMBER="42",
        ENVIRONMENT="prod",
    )

    response = client.get("/version")

    assert response.status_code == 200
    assert response.get_json() == {
        "version": "v0.0.1",
        "git_sha": "abc1234",
        "build_date": "2024-05-01T12:00:00Z",
        "build_number": "42",
        "environment": "prod",
    }
    assert list(response.get_json()) == [
        "version",
        "git_sha",
        "build_date",
        "build_number",
        "environment",
    ]


def test_version_defaults_when_metadata_missing_or_empty(make_client: MakeClient) -> None:
    response = make_client(GIT_SHA="", BUILD_DATE="  ").get("/version")

    assert response.get_json() == {
        "version": "dev",
        "git_sha": "unknown",
        "build_date": "unknown",
        "build_number": "unknown",
        "environment": "local",
    }


def test_unknown_path_is_404(make_client: MakeClient) -> None:
    assert make_client().get("/no/such/page").status_code == 404


# --- metrics -----------------------------------------------------------------


def test_metrics_count_requests_by_method_route_and_status(make_client: MakeClient) -> None:
    client = make_client(APP_VERSION="v9.9.9", GIT_SHA="feedbee")
    client.get("/")
    client.get("/")
    client.get("/health")
    client.post("/")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'http_requests_total{method="GET",path="/",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",path="/health",status="200"} 1.0' in text
    assert 'http_requests_total{method="POST",path="/",status="405"} 1.0' in text
    assert 'http_request_duration_seconds_count{method="GET",path="/"} 2.0' in text
    assert 'http_request_duration_seconds_bucket{le="+Inf",method="GET",path="/"} 2.0' in text
    assert 'app_info{build_date="unknown",build_number="unknown",environment="local"' in text
    assert 'version="v9.9.9"' in text
    assert "process_cpu_seconds_total" in text


def test_metrics_count_their_own_scrapes(make_client: MakeClient) -> None:
    client = make_client()
    client.get("/metrics")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'http_requests_total{method="GET",path="/metrics",status="200"} 1.0' in text


def test_metrics_collapse_unknown_paths_and_methods(make_client: MakeClient) -> None:
    client = make_client()
    for n in range(25):
        client.get(f"/scan/{n}")
    client.open("/", method="BREW")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'http_requests_total{method="GET",path="<unmatched>",status="404"} 25.0' in text
    assert "/scan/" not in text
    assert 'method="OTHER",path="/"' in text
    assert "BREW" not in text


def test_metrics_use_route_templates_not_raw_paths(make_client: MakeClient) -> None:
    client = make_client()
    client.get("/version?x=1")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'path="/version",status="200"' in text
    assert "x=1" not in text


# --- fault knobs ---------------------------------------------------------------


def test_error_rate_one_fails_every_app_request(make_client: MakeClient) -> None:
    client = make_client(FAULT_ERROR_RATE="1.0")

    statuses = {client.get(path).status_code for path in APP_ENDPOINTS for _ in range(20)}

    assert statuses == {500}
    assert client.get("/").get_json() == {"error": "injected fault", "knob": "FAULT_ERROR_RATE"}


def test_error_rate_zero_fails_nothing(make_client: MakeClient) -> None:
    client = make_client(FAULT_ERROR_RATE="0")

    statuses = {client.get(path).status_code for path in APP_ENDPOINTS for _ in range(50)}

    assert statuses == {200}


def test_error_rate_spares_operational_endpoints(make_client: MakeClient) -> None:
    client = make_client(FAULT_ERROR_RATE="1")

    for path in OPERATIONAL_PATHS:
        assert client.get(path).status_code == 200, path


def test_error_rate_fails_about_that_share(make_client: MakeClient) -> None:
    client = make_client(FAULT_ERROR_RATE="0.25", rng=random.Random(7))

    failures = sum(client.get("/").status_code == 500 for _ in range(400))

    assert 60 < failures < 140


def test_injected_errors_are_counted(make_client: MakeClient) -> None:
    client = make_client(FAULT_ERROR_RATE="1")
    client.get("/")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'http_requests_total{method="GET",path="/",status="500"} 1.0' in text


def test_latency_delays_app_endpoints(make_client: MakeClient) -> None:
    client = make_client(FAULT_LATENCY_MS="50")

    began = time.perf_counter()
    response = client.get("/")
    elapsed = time.perf_counter() - began

    assert response.status_code == 200
    assert elapsed >= 0.05
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_request_duration_seconds_bucket{le="0.05",method="GET",path="/"} 0.0' in text


def test_latency_spares_operational_endpoints(make_client: MakeClient) -> None:
    client = make_client(FAULT_LATENCY_MS="400")

    for path in OPERATIONAL_PATHS:
        began = time.perf_counter()
        client.get(path)
        assert time.perf_counter() - began < 0.4, path


def test_ready_fail_answers_503_while_alive(make_client: MakeClient) -> None:
    client = make_client(FAULT_READY_FAIL="true")

    response = client.get("/ready")

    assert response.status_code == 503
    assert response.get_json()["reason"] == "FAULT_READY_FAIL is set"
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200


def test_ready_delay_holds_readiness_until_elapsed(make_client: MakeClient) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, READY_DELAY_SECONDS="5")

    first = client.get("/ready")
    clock.now += 4.9
    second = client.get("/ready")
    clock.now += 0.1
    third = client.get("/ready")

    assert first.status_code == 503
    assert "READY_DELAY_SECONDS" in first.get_json()["reason"]
    assert second.status_code == 503
    assert third.status_code == 200
    assert client.get("/health").status_code == 200


def test_ready_delay_with_real_clock(make_client: MakeClient) -> None:
    client = make_client(READY_DELAY_SECONDS="0.05")

    assert client.get("/ready").status_code == 503
    time.sleep(0.06)
    assert client.get("/ready").status_code == 200


def test_crash_on_start_exits_non_zero_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL), pytest.raises(SystemExit) as exit_info:
        create_app({"FAULT_CRASH_ON_START": "1"})

    assert exit_info.value.code == STARTUP_FAILURE_EXIT_CODE != 0
    assert "FAULT_CRASH_ON_START is set, refusing to start" in caplog.text


def test_crash_on_start_stops_the_process_importing_the_module() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULT_", "READY_"))}
    env["FAULT_CRASH_ON_START"] = "yes"

    result = subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=APP_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == STARTUP_FAILURE_EXIT_CODE
    assert "FAULT_CRASH_ON_START is set, refusing to start" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FAULT_ERROR_RATE", "1.5"),
        ("FAULT_ERROR_RATE", "-0.1"),
        ("FAULT_ERROR_RATE", "half"),
        ("FAULT_ERROR_RATE", "nan"),
        ("FAULT_ERROR_RATE", "50%"),
        ("FAULT_LATENCY_MS", "-1"),
        ("FAULT_LATENCY_MS", "inf"),
        ("FAULT_LATENCY_MS", "100ms"),
        ("FAULT_LATENCY_MS", "600001"),
        ("FAULT_READY_FAIL", "maybe"),
        ("FAULT_CRASH_ON_START", "2"),
        ("READY_DELAY_SECONDS", "-3"),
        ("READY_DELAY_SECONDS", "soon"),
    ],
)
def test_invalid_knob_values_stop_the_start(
    name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL), pytest.raises(SystemExit) as exit_info:
        create_app({name: value})

    assert exit_info.value.code == STARTUP_FAILURE_EXIT_CODE
    assert f"{name}={value!r}" in caplog.text


def test_invalid_knobs_are_all_reported_at_once() -> None:
    with pytest.raises(InvalidKnobError) as error:
        Faults.from_env({"FAULT_ERROR_RATE": "2", "READY_DELAY_SECONDS": "x"})

    assert len(error.value.problems) == 2
    assert "FAULT_ERROR_RATE='2' must be a number from 0 to 1" in str(error.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[("1", True), ("TRUE", True), (" yes ", True), ("on", True)],
        *[("0", False), ("false", False), ("No", False), ("off", False), ("", False)],
    ],
)
def test_flag_spellings(value: str, expected: bool) -> None:
    assert Faults.from_env({"FAULT_READY_FAIL": value}).ready_fail is expected


def test_no_knobs_means_no_faults() -> None:
    faults = Faults.from_env({})

    assert faults == Faults()
    assert faults.active() == {}


def test_module_level_app_is_a_flask_app() -> None:
    import app as module  # noqa: PLC0415  # the import itself is what is under test

    assert module.app.name == "flask-app"
