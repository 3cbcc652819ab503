from __future__ import annotations

import httpx
import pytest

from dockroll.errors import RegistryAuthError
from dockroll.registry import (
    Challenge,
    Credentials,
    RegistryAuth,
    RegistryClient,
    parse_challenge,
    sha256_digest,
)
from dockroll.registry._auth import scopes_for
from tests.unit.registry.conftest import ClientFactory
from tests.unit.registry.fake_registry import FakeRegistry

GOOD = Credentials("alice", "s3cret-pw", "argument")
BAD = Credentials("alice", "wrong-pw-123", "argument")


def test_parse_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:team/web:pull,push repository:team/base:pull"'
    )
    assert parse_challenge(header) == Challenge(
        scheme="bearer",
        realm="https://auth.example/token",
        service="registry.example",
        scopes=("repository:team/web:pull,push", "repository:team/base:pull"),
    )


def test_parse_basic_and_unknown_challenges() -> None:
    assert parse_challenge('Basic realm="Registry Realm"') == Challenge("basic", "Registry Realm")
    assert parse_challenge("Negotiate abc") is None
    assert parse_challenge("") is None


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/team/web/manifests/v1", ("repository:team/web:pull",)),
        ("HEAD", "/v2/web/blobs/sha256:ab", ("repository:web:pull",)),
        ("PUT", "/v2/team/web/manifests/v1", ("repository:team/web:pull,push",)),
        ("DELETE", "/v2/team/web/manifests/sha256:ab", ("repository:team/web:delete",)),
        ("GET", "/v2/team/web/tags/list", ("repository:team/web:pull",)),
        ("GET", "/v2/_catalog", ("registry:catalog:*",)),
        ("GET", "/v2/", ()),
        (
            "POST",
            "/v2/team/web/blobs/uploads/?mount=sha256:ab&from=team/base",
            ("repository:team/web:pull,push", "repository:team/base:pull"),
        ),
    ],
)
def test_scopes_follow_method_and_path(method: str, path: str, expected: tuple[str, ...]) -> None:
    assert scopes_for(httpx.Request(method, f"https://r.test{path}")) == expected


def test_bearer_flow_fetches_token_with_basic_credentials_and_retries_once(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    fake.auth = "bearer"
    fake.add_image("team/web", "v1")
    with make_client(fake, credentials=GOOD) as client:
        digest = client.resolve("team/web", "v1")
    assert digest.startswith("sha256:")
    assert len(fake.token_requests) == 1
    token_request = fake.token_requests[0]
    assert token_request.url.params.get_list("scope") == ["repository:team/web:pull"]
    assert token_request.url.params["service"] == fake.host
    assert token_request.headers["Authorization"].startswith("Basic ")
    # one 401, then the retry with the token
    assert [scheme for _, _, scheme in fake.log] == ["", "Bearer"]


def test_bearer_tokens_are_cached_per_scope(fake: FakeRegistry, make_client: ClientFactory) -> None:
    fake.auth = "bearer"
    fake.add_image("team/web", "v1")
    fake.add_image("team/api", "v1")
    client = make_client(fake)
    for _ in range(3):
        client.resolve("team/web", "v1")
    assert len(fake.token_requests) == 1
    client.resolve("team/api", "v1")
    assert len(fake.token_requests) == 2
    client.resolve("team/web", "v1")
    assert client.token_requests == 2
    # anonymous token requests carry no credentials
    assert "Authorization" not in fake.token_requests[0].headers


def test_expired_token_is_fetched_again(fake: FakeRegistry) -> None:
    fake.auth = "bearer"
    fake.token_lifetime = 60
    fake.add_image("team/web", "v1")
    now = [1000.0]
    auth = RegistryAuth(fake.host, None, clock=lambda: now[0])
    with httpx.Client(
        auth=auth, transport=fake.transport(), base_url="https://registry.test"
    ) as http:
        assert http.head("/v2/team/web/manifests/v1").status_code == 200
        assert http.head("/v2/team/web/manifests/v1").status_code == 200
        assert auth.token_requests == 1
        now[0] += 120
        assert http.head("/v2/team/web/manifests/v1").status_code == 200
        assert auth.token_requests == 2


def test_a_stale_token_gets_one_retry(fake: FakeRegistry, make_client: ClientFactory) -> None:
    fake.auth = "bearer"
    fake.add_image("team/web", "v1")
    client = make_client(fake)
    client.resolve("team/web", "v1")
    fake.issued.clear()  # the registry forgot every token (rotated keys)
    client.resolve("team/web", "v1")
    assert client.token_requests == 2


def test_token_service_refusing_bad_password_is_an_auth_error(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    fake.auth = "bearer"
    fake.add_image("team/web", "v1")
    client = make_client(fake, credentials=BAD)
    with pytest.raises(RegistryAuthError) as caught:
        client.resolve("team/web", "v1")
    text = str(caught.value)
    assert fake.host in text
    assert "docker login registry.test" in text
    assert "DOCKROLL_REGISTRY_USERNAME" in text
    assert BAD.password not in text
    assert BAD.password not in repr(caught.value)


def test_basic_auth_is_sent_only_after_the_registry_asks(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    fake.auth = "basic"
    fake.add_image("team/web", "v1")
    client = make_client(fake, credentials=GOOD)
    client.resolve("team/web", "v1")
    client.resolve("team/web", "v1")
    assert [scheme for _, _, scheme in fake.log] == ["", "Basic", "Basic"]


def test_basic_auth_with_a_bad_password(fake: FakeRegistry, make_client: ClientFactory) -> None:
    fake.auth = "basic"
    client = make_client(fake, credentials=BAD)
    with pytest.raises(RegistryAuthError) as caught:
        client.ping()
    text = str(caught.value)
    assert "refused the credentials of 'alice'" in text
    assert BAD.password not in text
    assert BAD.password not in repr(client)
    # tried once without, once with credentials, then gave up
    assert len(fake.requests) == 2


def test_no_credentials_says_how_to_supply_them(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    fake.auth = "basic"
    with pytest.raises(RegistryAuthError, match="requires credentials") as caught:
        make_client(fake).ping()
    assert caught.value.hint is not None
    assert "docker login registry.test" in caught.value.hint


def test_credentials_come_from_the_environment(
    fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.auth = "basic"
    monkeypatch.setenv("DOCKROLL_REGISTRY_USERNAME", "alice")
    monkeypatch.setenv("DOCKROLL_REGISTRY_PASSWORD", "s3cret-pw")
    client = RegistryClient(fake.host, transport=fake.transport())
    client.ping()
    assert client.credentials is not None
    assert client.credentials.source == "environment"
    assert "s3cret-pw" not in repr(client)


def test_a_declined_mount_streams_its_upload_with_the_cached_token(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    fake.auth = "bearer"
    data = b"streamed layer" * 100
    digest = sha256_digest(data)
    client = make_client(fake)
    # the source lacks the blob, so the mount is declined and the bytes stream
    how = client.push_blob(
        "team/web", digest, iter([data[:7], data[7:]]), size=len(data), mount_from="team/base"
    )
    assert how == "uploaded"
    assert fake.blobs["team/web"][digest] == data
    assert client.token_requests == 1
    scopes = fake.token_requests[0].url.params.get_list("scope")
    assert scopes == ["repository:team/web:pull,push", "repository:team/base:pull"]
    assert [scheme for method, _, scheme in fake.log if method == "PUT"] == ["Bearer"]
