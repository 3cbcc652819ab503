"""Suite-wide fixtures: real infrastructure for integration and end-to-end tests.

Integration tests need a Docker engine and the local registry that ``dockroll
dev up`` starts. Locally they skip with the reason when those are missing; in
CI (``CI=true``) a missing piece is a failure, never a skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import docker
import httpx
import pytest

from tests.support import IN_CI

REGISTRY = os.environ.get("DOCKROLL_TEST_REGISTRY", "127.0.0.1:5000")


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run; `make test` starts it)")
    pytest.skip(f"{reason}; run `make test` or `dockroll dev up` to start it")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the real Docker engine."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"no Docker engine answers: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry() -> str:
    """``host:port`` of the real local OCI registry."""
    try:
        response = httpx.get(f"http://{REGISTRY}/v2/", timeout=3)
    except httpx.HTTPError as exc:
        _unavailable(f"no registry answers at {REGISTRY}: {exc}")
    if response.status_code not in (200, 401):
        _unavailable(f"{REGISTRY} answers /v2/ with {response.status_code}, not a registry")
    return REGISTRY
