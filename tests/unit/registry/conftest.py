from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dockroll.registry import Credentials, RegistryClient
from tests.unit.registry.fake_registry import FakeRegistry

ClientFactory = Callable[..., RegistryClient]


@pytest.fixture(autouse=True)
def _isolated_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's own docker config or environment."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("DOCKROLL_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("DOCKROLL_REGISTRY_PASSWORD", raising=False)


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def make_client() -> ClientFactory:
    def make(
        registry: FakeRegistry, *, credentials: Credentials | None = None, **kwargs: object
    ) -> RegistryClient:
        return RegistryClient(
            registry.host,
            credentials=credentials,
            transport=registry.transport(),
            **kwargs,  # type: ignore[arg-type]
        )

    return make
