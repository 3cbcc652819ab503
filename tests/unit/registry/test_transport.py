"""The default transport sets TLS up only for https:// requests (start-up cost)."""

from __future__ import annotations

import httpx
import pytest

from dockroll.registry import RegistryClient
from dockroll.registry._transport import SchemeTransport


class _Pool:
    """Stands in for httpx.HTTPTransport: records how each pool was made."""

    made: list[bool]

    def __init__(self, verify: bool = True) -> None:
        self.verify = verify
        self.seen: list[str] = []
        self.closed = False
        _Pool.made.append(verify)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(str(request.url))
        return httpx.Response(200, request=request)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    _Pool.made = []
    monkeypatch.setattr(httpx, "HTTPTransport", _Pool)
    return _Pool.made


def test_plain_http_never_sets_up_a_verifying_pool(pools: list[bool]) -> None:
    transport = SchemeTransport()
    for _ in range(2):
        transport.handle_request(httpx.Request("GET", "http://127.0.0.1:5000/v2/"))

    assert pools == [False]  # one pool, reused, without the CA bundle
    assert not transport.tls_ready


def test_https_gets_a_verifying_pool_at_its_first_request(pools: list[bool]) -> None:
    transport = SchemeTransport()
    transport.handle_request(httpx.Request("GET", "http://127.0.0.1:5000/v2/"))
    transport.handle_request(httpx.Request("GET", "https://storage.example/blob"))
    transport.handle_request(httpx.Request("GET", "https://storage.example/other"))

    assert pools == [False, True]
    assert transport.tls_ready
    transport.close()


def test_a_registry_client_makes_no_pool_until_it_sends(pools: list[bool]) -> None:
    with RegistryClient("127.0.0.1:5000", lookup_credentials=False) as client:
        assert client.scheme == "http"
        assert pools == []
