from __future__ import annotations

import json
import logging

import httpx
import pytest

from dockroll.errors import (
    DigestMismatch,
    ManifestNotFound,
    RegistryError,
    RegistryUnavailable,
    UsageError,
)
from dockroll.refs import Digest
from dockroll.registry import (
    DOCKER_MANIFEST,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    Manifest,
    RegistryClient,
    registry_scheme,
    sha256_digest,
)
from tests.unit.registry.conftest import ClientFactory
from tests.unit.registry.fake_registry import OCI_MANIFEST, FakeRegistry, digest_of


@pytest.mark.parametrize(
    ("host", "insecure", "scheme"),
    [
        ("127.0.0.1:5000", (), "http"),
        ("localhost:5000", (), "http"),
        ("localhost", (), "http"),
        ("[::1]:5000", (), "http"),
        ("127.0.0.2", (), "http"),
        ("ghcr.io", (), "https"),
        ("registry.lan:5000", (), "https"),
        ("registry.lan:5000", ("registry.lan:5000",), "http"),
        ("registry.lan:5000", ("registry.lan",), "http"),
        ("registry.lan:5000", ("*:5000",), "http"),
        ("registry.lan:443", ("*:5000",), "https"),
    ],
)
def test_scheme(host: str, insecure: tuple[str, ...], scheme: str) -> None:
    assert registry_scheme(host, insecure) == scheme


def test_client_uses_http_for_loopback() -> None:
    with RegistryClient("127.0.0.1:5000", lookup_credentials=False) as client:
        assert client.base_url == "http://127.0.0.1:5000"
    with RegistryClient("ghcr.io", lookup_credentials=False) as client:
        assert client.base_url == "https://ghcr.io"


def test_a_host_with_a_path_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        RegistryClient("127.0.0.1:5000/team", lookup_credentials=False)


def test_resolve_sends_every_manifest_media_type(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    _, digest = fake.add_image("team/web", "v1")
    client = make_client(fake)
    assert client.resolve("team/web", "v1") == digest
    request = fake.requests[-1]
    assert request.method == "HEAD"
    accepted = [part.strip() for part in request.headers["Accept"].split(",")]
    assert accepted == list(MANIFEST_MEDIA_TYPES)
    assert client.traffic.bytes_received == 0


def test_resolve_hashes_the_body_when_the_digest_header_is_missing(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    fake.send_digest_header = False
    _, digest = fake.add_image("team/web", "v1")
    assert make_client(fake).resolve("team/web", "v1") == digest
    assert [r.method for r in fake.requests] == ["HEAD", "GET"]


def test_resolve_a_missing_tag_names_repository_and_tag(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    with pytest.raises(ManifestNotFound, match=r"registry\.test/team/web:v9 not found"):
        make_client(fake).resolve("team/web", "v9")
    assert make_client(fake).manifest_digest("team/web", "v9") is None


def test_get_manifest_keeps_the_bytes_exactly(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    content, digest = fake.add_image("team/web", "v1")
    manifest = make_client(fake).get_manifest("team/web", "v1")
    assert manifest.content == content
    assert manifest.digest == digest
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.blobs()[0].media_type == "application/vnd.oci.image.config.v1+json"
    assert len(manifest.blobs()) == 3


def test_get_manifest_detects_a_registry_serving_other_bytes(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    content, digest = fake.add_image("team/web", "v1")
    fake.manifests["team/web"][digest] = (content + b" ", OCI_MANIFEST)
    with pytest.raises(DigestMismatch):
        make_client(fake).get_manifest("team/web", digest)


def test_put_manifest_sends_bytes_and_media_type(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    content = b'{"schemaVersion":2, "mediaType":"' + DOCKER_MANIFEST.encode() + b'" ,"layers":[]}'
    manifest = Manifest.from_bytes(content)
    assert manifest.media_type == DOCKER_MANIFEST
    client = make_client(fake)
    assert client.put_manifest("team/web", "v1", manifest) == digest_of(content)
    request = fake.requests[-1]
    assert request.headers["Content-Type"] == DOCKER_MANIFEST
    assert request.content == content
    assert client.traffic.bytes_sent == len(content)


def test_put_manifest_rejects_a_registry_that_rewrote_it(make_client: ClientFactory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"Docker-Content-Digest": "sha256:" + "0" * 64})

    client = RegistryClient(
        "r.test", lookup_credentials=False, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(DigestMismatch, match="stored"):
        client.put_manifest("a", "v1", Manifest.from_bytes(b"{}", OCI_MANIFEST))


def test_delete_manifest(fake: FakeRegistry, make_client: ClientFactory) -> None:
    _, digest = fake.add_image("team/web", "v1")
    client = make_client(fake)
    client.delete_manifest("team/web", digest)
    assert client.manifest_digest("team/web", "v1") is None
    with pytest.raises(UsageError):
        client.delete_manifest("team/web", Digest("v1"))
    with pytest.raises(ManifestNotFound):
        client.delete_manifest("team/web", digest)


def test_delete_refused_by_the_registry_explains_the_setting() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "UNSUPPORTED", "message": "The operation is unsupported."}]}
        return httpx.Response(405, json=body)

    client = RegistryClient(
        "r.test", lookup_credentials=False, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(RegistryError, match="UNSUPPORTED: The operation is unsupported") as caught:
        client.delete_manifest("a", digest_of(b"x"))
    assert caught.value.hint is not None
    assert "storage.delete" in caught.value.hint


def test_tags_follow_link_pagination(fake: FakeRegistry, make_client: ClientFactory) -> None:
    for tag in ["a", "b", "c", "d", "e"]:
        fake.add_image("team/web", tag, seed=tag)
    client = make_client(fake)
    assert client.list_tags("team/web", page_size=2) == ["a", "b", "c", "d", "e"]
    tag_requests = [r for r in fake.requests if r.url.path.endswith("/tags/list")]
    assert len(tag_requests) == 3
    assert tag_requests[1].url.params["last"] == "b"
    assert client.list_tags("team/web") == ["a", "b", "c", "d", "e"]
    assert client.list_tags("nothing/here") == []


def test_catalog(fake: FakeRegistry, make_client: ClientFactory) -> None:
    fake.add_image("team/web", "v1")
    fake.add_image("team/api", "v1")
    assert make_client(fake).catalog(page_size=1) == ["team/api", "team/web"]


def test_monolithic_upload_is_post_then_put(fake: FakeRegistry, make_client: ClientFactory) -> None:
    data = b"layer bytes" * 100
    digest = sha256_digest(data)
    client = make_client(fake)
    assert client.push_blob("team/web", digest, data) == "uploaded"
    assert [r.method for r in fake.requests] == ["POST", "PUT"]
    put = fake.requests[-1]
    assert put.url.params["digest"] == digest
    assert put.url.params["_state"] == "x"  # the session URL's own query survives
    assert fake.blobs["team/web"][digest] == data
    assert client.blob_exists("team/web", digest)
    assert not client.blob_exists("team/web", sha256_digest(b"other"))
    assert client.traffic.bytes_sent == len(data)


def test_chunked_upload_sends_content_ranges(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    data = bytes(range(256)) * 10
    digest = sha256_digest(data)
    client = make_client(fake)
    client.push_blob("team/web", digest, iter([data[:1000], data[1000:]]), chunk_size=1024)
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert [r.headers["Content-Range"] for r in patches] == ["0-1023", "1024-2047", "2048-2559"]
    assert fake.blobs["team/web"][digest] == data
    assert fake.requests[-1].method == "PUT"
    assert fake.requests[-1].content == b""


def test_streamed_upload_with_size(fake: FakeRegistry, make_client: ClientFactory) -> None:
    data = b"x" * 5000
    digest = sha256_digest(data)
    client = make_client(fake)
    client.push_blob("team/web", digest, iter([data[:10], data[10:]]), size=len(data))
    assert fake.requests[-1].headers["Content-Length"] == "5000"
    assert fake.blobs["team/web"][digest] == data


def test_upload_with_a_wrong_digest_is_a_mismatch(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    with pytest.raises(DigestMismatch, match="DIGEST_INVALID"):
        make_client(fake).push_blob("team/web", sha256_digest(b"a"), b"b")


def test_mount_from_another_repository(fake: FakeRegistry, make_client: ClientFactory) -> None:
    descriptor = fake.add_blob("team/base", b"shared layer")
    digest = descriptor["digest"]
    client = make_client(fake)
    assert client.mount_blob("team/web", digest, "team/base") is True
    assert client.push_blob("team/api", digest, b"unused", mount_from="team/base") == "mounted"
    assert client.traffic.bytes_sent == 0
    # a declined mount does not leave its upload session open
    assert client.mount_blob("team/web", sha256_digest(b"nope"), "team/base") is False
    assert fake.uploads == {}


def test_blob_download_streams_and_checks_the_digest(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    data = b"0123456789" * 1000
    digest = fake.add_blob("team/web", data)["digest"]
    client = make_client(fake)
    chunks = list(client.iter_blob("team/web", digest, chunk_size=4096))
    assert b"".join(chunks) == data
    assert len(chunks) == 3
    assert client.traffic.bytes_received == len(data)
    fake.blobs["team/web"][digest] = b"tampered"
    with pytest.raises(DigestMismatch):
        client.get_blob("team/web", digest)
    with pytest.raises(RegistryError, match="BLOB_UNKNOWN"):
        client.get_blob("team/web", sha256_digest(b"missing"))


@pytest.mark.parametrize(
    ("host", "hint"),
    [
        ("127.0.0.1:5000", "`dockroll dev up` starts a local registry on 127.0.0.1:5000"),
        (
            "localhost:5001",
            "`dockroll dev up --registry-port 5001` starts a local registry on localhost:5001",
        ),
        ("registry.example.internal", "check the address registry.example.internal and"),
    ],
)
def test_connection_refused_is_unavailable_with_a_hint_for_that_registry(
    host: str, hint: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = RegistryClient(host, lookup_credentials=False, transport=httpx.MockTransport(handler))
    with pytest.raises(RegistryUnavailable) as caught:
        client.ping()
    assert caught.value.message == (
        f"registry {host} is not answering: connection refused — is it running?"
    )
    assert caught.value.hint is not None
    assert caught.value.hint.startswith(hint)


def test_timeout_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = RegistryClient(
        "r.test", lookup_credentials=False, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(RegistryUnavailable, match=r"r\.test is not answering: timed out"):
        client.resolve("a", "v1")


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(500, RegistryUnavailable), (503, RegistryUnavailable), (400, RegistryError)],
)
def test_other_statuses_carry_the_registry_error_code(
    status: int, error_type: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down", "detail": {}}]}
        return httpx.Response(status, json=body)

    client = RegistryClient(
        "r.test", lookup_credentials=False, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(error_type, match=f"HTTP {status} TOOMANYREQUESTS: slow down"):
        client.list_tags("a")


def test_manifest_model_reads_an_index() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest_of(b"1"),
                "size": 1,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            }
        ],
    }
    manifest = Manifest.from_bytes(json.dumps(index).encode())
    assert manifest.is_index
    assert manifest.blobs() == []
    [child] = manifest.children()
    assert child.platform == "linux/arm64/v8"
    assert child.size == 1


def test_registry_requests_are_logged_for_a_library_user(
    fake: FakeRegistry, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_image("team/web", "v1")
    with caplog.at_level(logging.DEBUG, logger="dockroll"), make_client(fake) as client:
        client.resolve("team/web", "v1")
    records = [r for r in caplog.records if r.name == "dockroll.registry._client"]
    assert records, caplog.records
    assert "HEAD" in records[-1].getMessage()
    assert "200" in records[-1].getMessage()
