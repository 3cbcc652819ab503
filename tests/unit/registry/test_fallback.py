from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from dockroll.errors import ManifestNotFound, RegistryUnavailable
from dockroll.registry import FallbackResolver, RegistryClient
from tests.unit.registry.conftest import ClientFactory
from tests.unit.registry.fake_registry import FakeRegistry


def _down(host: str, exc: type[httpx.TransportError] = httpx.ConnectError) -> RegistryClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("[Errno 111] Connection refused", request=request)

    return RegistryClient(host, lookup_credentials=False, transport=httpx.MockTransport(handler))


def _failing(host: str, status: int) -> RegistryClient:
    return RegistryClient(
        host,
        lookup_credentials=False,
        transport=httpx.MockTransport(lambda request: httpx.Response(status)),
    )


def test_the_primary_answers(make_client: ClientFactory) -> None:
    primary = FakeRegistry(host="primary.test")
    _, digest = primary.add_image("team/web", "v1")
    resolver = FallbackResolver([make_client(primary), _down("mirror.test")])
    resolution = resolver.resolve("team/web", "v1")
    assert resolution.registry == "primary.test"
    assert resolution.digest == digest
    assert not resolution.fell_back
    assert str(resolution.ref) == f"primary.test/team/web@{digest}"


@pytest.mark.parametrize(
    "primary",
    [
        lambda: _down("primary.test"),
        lambda: _down("primary.test", httpx.ConnectTimeout),
        lambda: _failing("primary.test", 503),
        lambda: _failing("primary.test", 500),
    ],
    ids=["refused", "timeout", "503", "500"],
)
def test_an_unavailable_primary_falls_back(
    primary: Callable[[], RegistryClient], make_client: ClientFactory
) -> None:
    mirror = FakeRegistry(host="mirror.test")
    content, _ = mirror.add_image("team/web", "v1")
    resolution = FallbackResolver([primary(), make_client(mirror)]).get_manifest("team/web", "v1")
    assert resolution.registry == "mirror.test"
    assert resolution.fell_back
    assert [a.outcome for a in resolution.attempts] == ["unavailable", "answered"]
    assert resolution.manifest is not None
    assert resolution.manifest.content == content


def test_not_found_is_reported_and_the_next_is_tried(make_client: ClientFactory) -> None:
    primary, mirror = FakeRegistry(host="primary.test"), FakeRegistry(host="mirror.test")
    _, digest = mirror.add_image("team/web", "v1")
    resolution = FallbackResolver([make_client(primary), make_client(mirror)]).resolve(
        "team/web", "v1"
    )
    assert resolution.digest == digest
    first = resolution.attempts[0]
    assert (first.registry, first.outcome) == ("primary.test", "not_found")
    assert "team/web:v1" in first.message


def test_all_missing_is_not_found(make_client: ClientFactory) -> None:
    resolver = FallbackResolver(
        [make_client(FakeRegistry(host="a.test")), make_client(FakeRegistry(host="b.test"))]
    )
    with pytest.raises(ManifestNotFound, match=r"a\.test.*b\.test"):
        resolver.resolve("team/web", "v1")


def test_all_down_is_unavailable(make_client: ClientFactory) -> None:
    resolver = FallbackResolver([_down("a.test"), make_client(FakeRegistry(host="b.test"))])
    with pytest.raises(RegistryUnavailable, match="no registry could resolve team/web:v1"):
        resolver.resolve("team/web", "v1")


def test_resolver_builds_and_closes_its_own_clients() -> None:
    with FallbackResolver(["127.0.0.1:1", "localhost:2"], timeout=1) as resolver:
        assert resolver.registries == ["127.0.0.1:1", "localhost:2"]
    with pytest.raises(ValueError, match="at least one"):
        FallbackResolver([])
