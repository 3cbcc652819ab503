"""Sample service that dockroll builds, promotes and deploys.

A small Flask application shaped like a production service:

- ``/``         JSON greeting with the running version (an application endpoint)
- ``/health``   liveness: the process answers
- ``/ready``    readiness: the process wants traffic
- ``/version``  build metadata baked into the image
- ``/metrics``  Prometheus exposition (request counter and latency histogram)

Fault knobs, read from the environment at start, let demos and benchmarks make a
release misbehave on purpose (see :class:`Faults`). Nonsense values stop the
process at start with a message naming the variable, rather than being guessed at.

Gunicorn serves the module-level ``app``; tests build their own instances with
:func:`create_app`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Flask, Response, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "STARTUP_FAILURE_EXIT_CODE",
    "BuildInfo",
    "Faults",
    "InvalidKnobError",
    "create_app",
]

SERVICE_NAME = "flask-app"

# Gunicorn halts (instead of respawning the worker forever) when a worker exits
# with 3 while booting; the same code is used when the app is preloaded.
STARTUP_FAILURE_EXIT_CODE = 3

# Operational endpoints never see injected faults: probes and scrapes must keep
# telling the truth about a misbehaving release.
OPERATIONAL_ENDPOINTS = frozenset({"health", "ready", "metrics", "version"})

# Label values for anything outside the known sets, so a scanner sending random
# paths or methods cannot create unbounded metric series.
UNMATCHED_PATH_LABEL = "<unmatched>"
OTHER_METHOD_LABEL = "OTHER"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

MAX_LATENCY_MS = 60_000.0
MAX_READY_DELAY_SECONDS = 3_600.0

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})

log = logging.getLogger(SERVICE_NAME)


class InvalidKnobError(ValueError):
    """One or more fault knobs in the environment hold values that make no sense."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


@dataclass(frozen=True)
class BuildInfo:
    """What ``/version`` reports; empty or missing variables read as ``unknown``."""

    version: str
    git_sha: str
    build_date: str
    build_number: str
    environment: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BuildInfo:
        """Read ``APP_VERSION``, ``GIT_SHA``, ``BUILD_DATE``, ``BUILD_NUMBER``, ``ENVIRONMENT``."""

        def read(name: str, default: str = "unknown") -> str:
            return env.get(name, "").strip() or default

        return cls(
            version=read("APP_VERSION", "dev"),
            git_sha=read("GIT_SHA"),
            build_date=read("BUILD_DATE"),
            build_number=read("BUILD_NUMBER"),
            environment=read("ENVIRONMENT", "local"),
        )

    def as_dict(self) -> dict[str, str]:
        """The exact JSON body of ``/version``."""
        return {
            "version": self.version,
            "git_sha": self.git_sha,
            "build_date": self.build_date,
            "build_number": self.build_number,
            "environment": self.environment,
        }


@dataclass(frozen=True)
class Faults:
    """Misbehaviour injected on purpose, for demos and benchmarks.

    Attributes:
        error_rate: ``FAULT_ERROR_RATE``, share (0..1) of application requests
            answered with HTTP 500.
        latency_ms: ``FAULT_LATENCY_MS``, delay added to application requests.
        ready_fail: ``FAULT_READY_FAIL``, readiness always answers 503.
        crash_on_start: ``FAULT_CRASH_ON_START``, the process exits at start.
        ready_delay_seconds: ``READY_DELAY_SECONDS``, readiness answers 503
            until this long after start.
    """

    error_rate: float = 0.0
    latency_ms: float = 0.0
    ready_fail: bool = False
    crash_on_start: bool = False
    ready_delay_seconds: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Faults:
        """Parse and validate the knobs; unset or empty means "no fault".

        Raises:
            InvalidKnobError: listing every knob with a nonsense value.
        """
        problems: list[str] = []

        def number(name: str, low: float, high: float, meaning: str) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return 0.0
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and low <= value <= high):
                problems.append(
                    f"{name}={raw!r} must be a number from {low:g} to {high:g} ({meaning})"
                )
                return 0.0
            return value

        def flag(name: str, meaning: str) -> bool:
            raw = env.get(name, "").strip()
            word = raw.lower()
            if word in _TRUE_WORDS:
                return True
            if word not in _FALSE_WORDS:
                problems.append(
                    f"{name}={raw!r} must be one of 1/0, true/false, yes/no, on/off ({meaning})"
                )
            return False

        faults = cls(
            error_rate=number("FAULT_ERROR_RATE", 0, 1, "share of requests answered with HTTP 500"),
            latency_ms=number(
                "FAULT_LATENCY_MS", 0, MAX_LATENCY_MS, "milliseconds added per request"
            ),
            ready_fail=flag("FAULT_READY_FAIL", "readiness answers 503"),
            crash_on_start=flag("FAULT_CRASH_ON_START", "exit at start"),
            ready_delay_seconds=number(
                "READY_DELAY_SECONDS", 0, MAX_READY_DELAY_SECONDS, "seconds before ready"
            ),
        )
        if problems:
            raise InvalidKnobError(problems)
        return faults

    def active(self) -> dict[str, float | bool]:
        """The knobs that differ from "no fault", for the start-up log line."""
        return {name: value for name, value in vars(self).items() if value}


def _startup_failure(message: str) -> SystemExit:
    log.critical("%s: %s; exiting with code %d", SERVICE_NAME, message, STARTUP_FAILURE_EXIT_CODE)
    return SystemExit(STARTUP_FAILURE_EXIT_CODE)


def _use_gunicorn_logging() -> None:
    """Log through gunicorn's handlers when it serves us, so lines share one format."""
    gunicorn_log = logging.getLogger("gunicorn.error")
    if gunicorn_log.handlers and not log.handlers:
        log.handlers = list(gunicorn_log.handlers)
        log.setLevel(logging.INFO)
        log.propagate = False


def create_app(
    env: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    registry: CollectorRegistry | None = None,
) -> Flask:
    """Build the application.

    Args:
        env: where to read build metadata and fault knobs (``os.environ`` by default).
        clock: monotonic seconds, for the readiness delay.
        sleep: how injected latency waits.
        rng: source of randomness for the injected error rate.
        registry: Prometheus registry for this app's metrics; a fresh one by
            default, so several apps in one process do not collide.

    Raises:
        SystemExit: with :data:`STARTUP_FAILURE_EXIT_CODE` when a knob is invalid
            or ``FAULT_CRASH_ON_START`` is set, after logging why.
    """
    env = os.environ if env is None else env
    _use_gunicorn_logging()
    try:
        faults = Faults.from_env(env)
    except InvalidKnobError as error:
        raise _startup_failure(str(error)) from None
    if faults.crash_on_start:
        raise _startup_failure("FAULT_CRASH_ON_START is set, refusing to start")

    build = BuildInfo.from_env(env)
    rng = rng or random.Random()
    started = clock()
    hostname = socket.gethostname()

    if registry is None:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    requests_total = Counter(
        "http_requests",
        "HTTP requests answered, by method, route and status code.",
        ("method", "path", "status"),
        registry=registry,
    )
    request_seconds = Histogram(
        "http_request_duration_seconds",
        "Time to answer an HTTP request, injected latency included.",
        ("method", "path"),
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    Info("app", "Build metadata of the running release.", registry=registry).info(build.as_dict())

    app = Flask(SERVICE_NAME)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it

    @app.before_request
    def inject_faults() -> tuple[Response, int] | None:
        g.started = time.perf_counter()
        if request.url_rule is None or request.endpoint in OPERATIONAL_ENDPOINTS:
            return None
        if faults.latency_ms:
            sleep(faults.latency_ms / 1000)
        if faults.error_rate and rng.random() < faults.error_rate:
            return jsonify(error="injected fault", knob="FAULT_ERROR_RATE"), 500
        return None

    def _route_label() -> str:
        if request.url_rule is not None:
            return request.url_rule.rule
        # A 405 carries no rule, yet its path is a known static route worth naming.
        static_routes = {rule.rule for rule in app.url_map.iter_rules() if not rule.arguments}
        return request.path if request.path in static_routes else UNMATCHED_PATH_LABEL

    @app.after_request
    def observe(response: Response) -> Response:
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD_LABEL
        path = _route_label()
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        requests_total.labels(method, path, str(response.status_code)).inc()
        request_seconds.labels(method, path).observe(elapsed)
        return response

    @app.get("/")
    def index() -> Response:
        return jsonify(
            service=SERVICE_NAME,
            message="Hello from the dockroll sample service",
            version=build.version,
            environment=build.environment,
            hostname=hostname,
        )

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.get("/ready")
    def ready() -> tuple[Response, int]:
        if faults.ready_fail:
            return jsonify(status="not ready", reason="FAULT_READY_FAIL is set"), 503
        remaining = faults.ready_delay_seconds - (clock() - started)
        if remaining > 0:
            reason = f"READY_DELAY_SECONDS: ready in {remaining:.1f}s"
            return jsonify(status="not ready", reason=reason), 503
        return jsonify(status="ready"), 200

    @app.get("/version")
    def version() -> Response:
        return jsonify(build.as_dict())

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    log.info(
        "%s %s starting (environment=%s, git_sha=%s, faults=%s)",
        SERVICE_NAME,
        build.version,
        build.environment,
        build.git_sha,
        faults.active() or "none",
    )
    return app


app = create_app()
