"""Smoke test: run the built image, wait for health, check what it says it is."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dockroll.config import Config
from dockroll.engine.port import ContainerInfo, Engine, Health, RunRequest
from dockroll.errors import SmokeTestError
from dockroll.events import Progress, ProgressCallback, discard

__all__ = ["SmokeResult", "smoke_test"]

_LOG_LINES = 30


@dataclass(frozen=True)
class SmokeResult:
    image: str
    seconds_to_healthy: float
    health_source: str
    """What decided health: ``docker`` (HEALTHCHECK), ``http`` (readiness probe) or both."""
    version: Mapping[str, Any]
    """The JSON the service's version endpoint answered."""


def _probe(url: str, timeout: float) -> tuple[bool, str]:
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}"
    return response.is_success, f"HTTP {response.status_code}"


def _fail(engine: Engine, container: ContainerInfo, message: str, hint: str) -> SmokeTestError:
    logs = engine.logs(container.id, tail=_LOG_LINES).rstrip()
    shown = "\n".join(f"    {line}" for line in logs.splitlines()) or "    (no output)"
    return SmokeTestError(f"{message}\n  last log lines of the container:\n{shown}", hint=hint)


def _wait_healthy(
    engine: Engine,
    config: Config,
    container: ContainerInfo,
    use_docker: bool,
    progress: ProgressCallback,
) -> float:
    health = config.health
    started = time.monotonic()
    deadline = started + health.start_timeout
    last_http = "no answer yet"
    while True:
        current = engine.container(container.id)
        if current is None or not current.running:
            code = current.exit_code if current else None
            raise _fail(
                engine,
                container,
                f"the container stopped during start (exit code {code})",
                "the service crashed at start; its log lines above say why",
            )
        # Checked only once it runs: a container that already exited publishes no ports.
        port = current.ports.get(config.container.port)
        if port is None:
            raise _fail(
                engine,
                container,
                f"the container does not publish port {config.container.port}",
                "set container.port in dockroll.yml to the port the service listens on",
            )
        if use_docker and current.health is Health.UNHEALTHY:
            raise _fail(
                engine,
                container,
                "the image's HEALTHCHECK reports unhealthy",
                "fix the health endpoint or the HEALTHCHECK command in the Dockerfile",
            )
        docker_ok = not use_docker or current.health is Health.HEALTHY
        http_ok = True
        if health.path:
            http_ok, last_http = _probe(f"http://127.0.0.1:{port}{health.path}", health.timeout)
        if docker_ok and http_ok:
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            waiting = []
            if not docker_ok:
                waiting.append(f"Docker health is {current.health.value}")
            if not http_ok:
                waiting.append(f"GET {health.path} gave {last_http}")
            raise _fail(
                engine,
                container,
                f"not healthy after {health.start_timeout:g}s ({'; '.join(waiting)})",
                "raise health.start_timeout in dockroll.yml if the service is slow to start",
            )
        progress(Progress("smoke", "waiting for health", detail=True))
        time.sleep(health.interval)


def _check_version(
    engine: Engine,
    config: Config,
    container: ContainerInfo,
    expect_version: str | None,
    expect_sha: str | None,
) -> Mapping[str, Any]:
    smoke = config.smoke
    if not smoke.version_path:
        return {}
    port = container.ports[config.container.port]
    url = f"http://127.0.0.1:{port}{smoke.version_path}"
    try:
        response = httpx.get(url, timeout=config.health.timeout)
        response.raise_for_status()
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _fail(
            engine,
            container,
            f"GET {smoke.version_path} failed: {exc}",
            "the version endpoint must answer JSON; set smoke.version_path: null to skip",
        ) from None
    if not isinstance(payload, dict):
        raise _fail(engine, container, f"{smoke.version_path} answered {payload!r}", "")
    reported_version = str(payload.get(smoke.version_field, ""))
    reported_sha = str(payload.get(smoke.git_sha_field, ""))
    if expect_version and reported_version != expect_version:
        raise _fail(
            engine,
            container,
            f"the image reports version {reported_version!r}, but {expect_version!r} was built",
            "pass APP_VERSION into the image (ARG + ENV in the Dockerfile)",
        )
    if expect_sha and not (
        reported_sha
        and (reported_sha.startswith(expect_sha) or expect_sha.startswith(reported_sha))
    ):
        raise _fail(
            engine,
            container,
            f"the image reports git sha {reported_sha!r}, but {expect_sha!r} was built",
            "pass GIT_SHA into the image (ARG + ENV in the Dockerfile)",
        )
    return payload


def smoke_test(
    config: Config,
    engine: Engine,
    image: str,
    *,
    expect_version: str | None = None,
    expect_sha: str | None = None,
    progress: ProgressCallback = discard,
) -> SmokeResult:
    """Run ``image`` on a random 127.0.0.1 port and check it; the container is always removed."""
    info = engine.image(image)
    if info is None:
        raise SmokeTestError(
            f"image {image} is not on the engine", hint="run `dockroll build` first"
        )
    use_docker = config.health.use_docker_healthcheck and info.has_healthcheck
    if not use_docker and not config.health.path:
        raise SmokeTestError(
            f"{image} has no HEALTHCHECK and dockroll.yml sets no health.path",
            hint="add a HEALTHCHECK to the Dockerfile or a readiness path under health.path",
        )
    progress(Progress("smoke", f"starting {image} on a random 127.0.0.1 port"))
    container = engine.run(
        RunRequest(
            image=image,
            env={**config.container.env, "ENVIRONMENT": "smoke-test"},
            labels={"dev.dockroll.service": config.service, "dev.dockroll.role": "smoke-test"},
            publish={config.container.port: None},
            health_interval=config.health.interval if use_docker else None,
        )
    )
    try:
        seconds = _wait_healthy(engine, config, container, use_docker, progress)
        source = "+".join(
            s for s, on in (("docker", use_docker), ("http", bool(config.health.path))) if on
        )
        progress(Progress("smoke", f"healthy after {seconds:.1f}s ({source})"))
        payload = _check_version(engine, config, container, expect_version, expect_sha)
        return SmokeResult(
            image=image, seconds_to_healthy=seconds, health_source=source, version=payload
        )
    finally:
        engine.remove(container.id, grace=config.container.stop_grace)
