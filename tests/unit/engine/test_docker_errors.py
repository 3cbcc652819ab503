"""How the Docker adapter words what the engine says about registries."""

from __future__ import annotations

import pytest

from dockroll.engine.docker import _registry_error
from dockroll.errors import RegistryAuthError, RegistryUnavailable


@pytest.mark.parametrize(
    "registry", ["registry.example.com", "10.1.2.3:5000", "registry.example.com:443"]
)
def test_an_unreachable_registry_elsewhere_is_named_not_the_local_one(registry: str) -> None:
    error = _registry_error(
        registry,
        f"pushing {registry}/team/web:v1",
        f'Get "https://{registry}/v2/": dial tcp: connection refused',
    )
    assert isinstance(error, RegistryUnavailable)
    assert error.exit_code == 6
    assert error.hint is not None
    assert registry in error.hint
    assert "127.0.0.1:5000" not in error.hint
    assert "dev up" not in error.hint


def test_the_local_registry_hint_says_how_to_start_it() -> None:
    error = _registry_error("127.0.0.1:5000", "pushing 127.0.0.1:5000/web:v1", "connection refused")
    assert isinstance(error, RegistryUnavailable)
    assert error.hint == (
        "is it running? `dockroll dev up` starts a local registry on 127.0.0.1:5000"
    )


def test_a_local_registry_on_another_port_is_started_on_that_port() -> None:
    error = _registry_error("127.0.0.1:5002", "pushing 127.0.0.1:5002/web:v1", "connection refused")
    assert error.hint is not None
    assert "`dockroll dev up --registry-port 5002`" in error.hint


def test_refused_credentials_name_the_registry() -> None:
    error = _registry_error("registry.example.com", "pushing x", "unauthorized: authentication")
    assert isinstance(error, RegistryAuthError)
    assert error.hint is not None
    assert "docker login registry.example.com" in error.hint
