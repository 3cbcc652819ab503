from __future__ import annotations

import json

import pytest

from dockroll.errors import ManifestNotFound, UsageError
from dockroll.events import Progress
from dockroll.registry import copy, retag
from tests.unit.registry.conftest import ClientFactory
from tests.unit.registry.fake_registry import OCI_INDEX, OCI_MANIFEST, FakeRegistry


def _index(fake: FakeRegistry, repository: str, tag: str) -> tuple[bytes, str, list[str]]:
    children = []
    for arch in ("amd64", "arm64"):
        content, digest = fake.add_image(repository, None, seed=arch)
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(content),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    content = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    ).encode()
    digest = fake.add_manifest(repository, content, OCI_INDEX, tag)
    return content, digest, [child["digest"] for child in children]


def test_retag_moves_only_the_manifest(fake: FakeRegistry, make_client: ClientFactory) -> None:
    content, digest = fake.add_image("team/web", "git-abc")
    client = make_client(fake)
    events: list[Progress] = []
    result = retag(client, "registry.test/team/web:git-abc", "staging", progress=events.append)
    assert result.written
    assert result.digest == digest
    assert str(result.destination) == "registry.test/team/web:staging"
    assert result.bytes_sent == len(content)
    assert not any(r.url.path.startswith("/v2/team/web/blobs") for r in fake.requests)
    assert fake.tags["team/web"]["staging"] == digest
    assert fake.manifests["team/web"][digest][0] == content
    assert events


def test_retag_again_writes_nothing(fake: FakeRegistry, make_client: ClientFactory) -> None:
    _, digest = fake.add_image("team/web", "git-abc")
    client = make_client(fake)
    retag(client, "registry.test/team/web:git-abc", "staging")
    fake.requests.clear()
    again = retag(client, f"registry.test/team/web@{digest}", "staging")
    assert not again.written
    assert again.bytes_sent == 0
    assert [r.method for r in fake.requests] == ["HEAD", "HEAD"]


def test_retag_checks_the_registry_and_the_source(
    fake: FakeRegistry, make_client: ClientFactory
) -> None:
    client = make_client(fake)
    with pytest.raises(UsageError, match=r"other\.test"):
        retag(client, "other.test/team/web:v1", "staging")
    with pytest.raises(ManifestNotFound, match="team/web:v1"):
        retag(client, "registry.test/team/web:v1", "staging")


def test_copy_between_registries_streams_every_blob(make_client: ClientFactory) -> None:
    source, target = FakeRegistry(host="src.test"), FakeRegistry(host="dst.test")
    content, digest = source.add_image("team/web", "v1")
    src, dst = make_client(source), make_client(target)
    result = copy("src.test/team/web:v1", "dst.test/prod/web:v1", src, dst)
    assert result.written
    assert result.blobs_copied == 3
    assert result.blobs_mounted == 0
    assert target.manifests["prod/web"][digest][0] == content
    assert target.blobs["prod/web"] == source.blobs["team/web"]
    blob_bytes = sum(len(b) for b in source.blobs["team/web"].values())
    assert result.bytes_sent == blob_bytes + len(content)
    # no mount is tried across registries
    assert not any("mount" in str(r.url) for r in target.requests)


def test_copy_skips_blobs_the_destination_has(make_client: ClientFactory) -> None:
    source, target = FakeRegistry(host="src.test"), FakeRegistry(host="dst.test")
    _, _ = source.add_image("team/web", "v1")
    first_layer = next(d for d, b in source.blobs["team/web"].items() if b.startswith(b"layer"))
    target.blobs["prod/web"] = {first_layer: source.blobs["team/web"][first_layer]}
    result = copy(
        "src.test/team/web:v1", "dst.test/prod/web:v1", make_client(source), make_client(target)
    )
    assert (result.blobs_skipped, result.blobs_copied) == (1, 2)


def test_copy_within_a_registry_mounts(fake: FakeRegistry, make_client: ClientFactory) -> None:
    _, digest = fake.add_image("dev/web", "v1")
    client = make_client(fake)
    result = copy("registry.test/dev/web:v1", "registry.test/prod/web:v1", client)
    assert (result.blobs_mounted, result.blobs_copied) == (3, 0)
    assert not any(
        r.url.path.startswith("/v2/dev/web/blobs/sha256") and r.method == "GET"
        for r in fake.requests
    )
    assert fake.tags["prod/web"]["v1"] == digest


def test_copy_an_index_puts_children_first_and_keeps_the_digest(make_client: ClientFactory) -> None:
    source, target = FakeRegistry(host="src.test"), FakeRegistry(host="dst.test")
    content, digest, children = _index(source, "team/web", "v1")
    result = copy(
        "src.test/team/web:v1", "dst.test/team/web:v1", make_client(source), make_client(target)
    )
    assert result.digest == digest
    assert result.manifests_written == 3
    puts = [
        r.url.path.rsplit("/", 1)[-1]
        for r in target.requests
        if r.method == "PUT" and "/manifests/" in r.url.path
    ]
    assert puts == [children[0], children[1], "v1"]
    assert target.manifests["team/web"][digest] == (content, OCI_INDEX)


def test_copy_is_idempotent(make_client: ClientFactory) -> None:
    source, target = FakeRegistry(host="src.test"), FakeRegistry(host="dst.test")
    _index(source, "team/web", "v1")
    src, dst = make_client(source), make_client(target)
    copy("src.test/team/web:v1", "dst.test/team/web:v1", src, dst)
    again = copy("src.test/team/web:v1", "dst.test/team/web:v1", src, dst)
    assert not again.written
    assert again.bytes_sent == 0
    assert (again.manifests_written, again.blobs_copied) == (0, 0)
    # a new tag for the same index re-uses the children already there
    third = copy("src.test/team/web:v1", "dst.test/team/web:prod", src, dst)
    assert (third.manifests_written, third.manifests_skipped, third.blobs_copied) == (1, 2, 0)


def test_copy_to_a_digest_reference(make_client: ClientFactory) -> None:
    source, target = FakeRegistry(host="src.test"), FakeRegistry(host="dst.test")
    _, digest = source.add_image("team/web", "v1")
    result = copy(
        f"src.test/team/web@{digest}", "dst.test/team/web", make_client(source), make_client(target)
    )
    assert result.destination.tag == digest
    assert digest in target.manifests["team/web"]
