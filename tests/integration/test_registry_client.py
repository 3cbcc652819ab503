"""The registry client against a real registry (Debian's docker-registry, distribution 2.8).

Images are pushed by the real Docker engine; a multi-platform OCI index is
built by uploading blobs and manifests through the client itself. Tests that
need special settings (htpasswd auth, deletes, a registry that gets stopped)
start a private registry on a free loopback port and stop it afterwards.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from dockroll.devenv.registry import write_htpasswd
from dockroll.errors import DevEnvError, RegistryAuthError, RegistryUnavailable
from dockroll.refs import Digest, ImageRef, parse_reference
from dockroll.registry import (
    OCI_INDEX,
    OCI_MANIFEST,
    Credentials,
    FallbackResolver,
    Manifest,
    RegistryClient,
    copy,
    retag,
    sha256_digest,
)
from tests.conftest import free_port
from tests.support import IN_CI, tar_archive

pytestmark = pytest.mark.integration

USER, PASSWORD = "deployer", "correct-horse-battery"


def _unavailable(reason: str) -> None:
    # Same rule as tests/conftest.py: skip locally, fail in CI.
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(reason)


@dataclass
class PrivateRegistry:
    """A ``docker-registry serve`` process of this test's own."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://{self.host}/v2/", timeout=1)
                return
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"docker-registry did not start on {self.host}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[Callable[..., PrivateRegistry]]:
    """Start registries with storage under tmp_path; every one is stopped at the end."""
    if shutil.which("docker-registry") is None:
        _unavailable("docker-registry is not installed (apt-get install docker-registry)")
    started: list[PrivateRegistry] = []

    def start(*, htpasswd: bool = False) -> PrivateRegistry:
        port = free_port()
        root = tmp_path / f"registry-{port}"
        (root / "data").mkdir(parents=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
        }
        if htpasswd:
            # Installs htpasswd (apache2-utils) where it can, as `dockroll dev up` would.
            try:
                write_htpasswd(root / "htpasswd", {USER: PASSWORD})
            except DevEnvError as exc:
                _unavailable(f"cannot write the registry password file: {exc}")
            config["auth"] = {
                "htpasswd": {"realm": "dockroll-test", "path": str(root / "htpasswd")}
            }
        # JSON is YAML, and needs no YAML writer here.
        (root / "config.yml").write_text(json.dumps(config))
        instance = PrivateRegistry(root / "config.yml", port, root / "registry.log")
        instance.start()
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.stop()


def _anonymous(host: str) -> RegistryClient:
    return RegistryClient(host, lookup_credentials=False)


@pytest.fixture(scope="session")
def pushed_image(docker_client: docker.DockerClient, registry: str) -> ImageRef:
    """A two-layer image built and pushed by the real engine to the shared registry."""
    run = uuid.uuid4().hex[:10]
    base = f"dockroll-test/tiny-base:{run}"
    docker_client.api.import_image_from_data(
        tar_archive({"etc/os-release": b"ID=tiny\n"}), repository="dockroll-test/tiny-base", tag=run
    )
    context = tar_archive(
        {
            "Dockerfile": f"FROM {base}\nCOPY hello.txt /hello.txt\nLABEL run={run}\n".encode(),
            "hello.txt": f"hello from {run}\n".encode(),
        }
    )
    image, _ = docker_client.images.build(
        fileobj=io.BytesIO(context), custom_context=True, tag=f"dockroll-test/tiny:{run}", rm=True
    )
    repository = f"{registry}/dockroll-test/dev-{run}"
    image.tag(repository, tag="git-abc1234")
    try:
        for line in docker_client.images.push(
            repository, tag="git-abc1234", stream=True, decode=True
        ):
            if "error" in line:
                pytest.fail(f"docker push failed: {line['error']}")
    finally:
        docker_client.images.remove(f"{repository}:git-abc1234", force=True)
        docker_client.images.remove(f"dockroll-test/tiny:{run}", force=True)
        docker_client.images.remove(base, force=True)
    return parse_reference(f"{repository}:git-abc1234")


def _push_index(client: RegistryClient, repository: str, tag: str) -> Manifest:
    """Upload a two-platform OCI index (fake platforms, real blobs) through the client."""
    children = []
    for number, arch in enumerate(("amd64", "arm64")):
        config = json.dumps(
            {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
            sort_keys=True,
        ).encode()
        layer = tar_archive({f"platform-{arch}.txt": os.urandom(3000)})
        config_digest, layer_digest = sha256_digest(config), sha256_digest(layer)
        client.push_blob(repository, config_digest, config)
        # One platform goes up monolithically, the other in chunks, as real clients do.
        client.push_blob(repository, layer_digest, layer, chunk_size=4096 if number else None)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
        manifest = Manifest.from_bytes(json.dumps(document, indent=2).encode(), OCI_MANIFEST)
        client.put_manifest(repository, manifest.digest, manifest)
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest.digest,
                "size": manifest.size,
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    # Unusual spacing on purpose: only a byte-for-byte copy keeps this digest.
    content = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children},
        separators=(", ", " : "),
    ).encode()
    index = Manifest.from_bytes(content, OCI_INDEX)
    client.put_manifest(repository, tag, index)
    return index


def test_resolve_matches_the_digest_the_engine_pushed(
    pushed_image: ImageRef, docker_client: docker.DockerClient
) -> None:
    with _anonymous(pushed_image.registry) as client:
        client.ping()
        digest = client.resolve(pushed_image.repository, "git-abc1234")
        manifest = client.get_manifest(pushed_image.repository, digest)
    assert manifest.digest == digest
    assert manifest.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(manifest.blobs()) == 3  # config + two layers


def test_promotion_within_a_registry_keeps_the_digest_and_mounts(pushed_image: ImageRef) -> None:
    with _anonymous(pushed_image.registry) as client:
        source = client.get_manifest(pushed_image.repository, "git-abc1234")
        prod = pushed_image.repository.replace("/dev-", "/prod-")
        destination = ImageRef(pushed_image.registry, prod, tag="v1.0.0")
        result = copy(pushed_image, destination, client)
        assert result.written
        assert result.digest == source.digest
        assert (result.blobs_mounted, result.blobs_copied) == (3, 0)
        # no blob bytes moved: only the manifest went up
        assert result.bytes_sent == source.size
        copied = client.get_manifest(prod, "v1.0.0")
        assert copied.content == source.content
        assert copied.digest == source.digest
        again = copy(pushed_image, destination, client)
        assert not again.written
        assert again.bytes_sent == 0


def test_promotion_to_another_registry_streams_blobs_and_the_engine_can_pull_it(
    pushed_image: ImageRef,
    private_registry: Callable[..., PrivateRegistry],
    docker_client: docker.DockerClient,
) -> None:
    other = private_registry()
    with _anonymous(pushed_image.registry) as src, _anonymous(other.host) as dst:
        source = src.get_manifest(pushed_image.repository, "git-abc1234")
        result = copy(pushed_image, f"{other.host}/team/web:v1.0.0", src, dst)
        assert result.written
        assert (result.blobs_copied, result.blobs_mounted) == (3, 0)
        blob_bytes = sum(blob.size for blob in source.blobs())
        assert result.bytes_sent == blob_bytes + source.size
        assert dst.get_manifest("team/web", "v1.0.0").content == source.content
        again = copy(pushed_image, f"{other.host}/team/web:v1.0.0", src, dst)
        assert not again.written
    pulled = docker_client.images.pull(f"{other.host}/team/web@{source.digest}")
    try:
        assert f"{other.host}/team/web@{source.digest}" in pulled.attrs["RepoDigests"]
    finally:
        docker_client.images.remove(pulled.id, force=True)


def test_an_oci_index_is_copied_byte_for_byte(
    registry: str, private_registry: Callable[..., PrivateRegistry]
) -> None:
    run = uuid.uuid4().hex[:10]
    other = private_registry()
    with _anonymous(registry) as client, _anonymous(other.host) as remote:
        index = _push_index(client, f"dockroll-test/multi-{run}", "v2")
        assert client.get_manifest(f"dockroll-test/multi-{run}", "v2").content == index.content
        src = f"{registry}/dockroll-test/multi-{run}:v2"

        within = copy(src, f"{registry}/dockroll-test/multi-prod-{run}:v2", client)
        assert within.digest == index.digest
        assert within.manifests_written == 3
        assert within.blobs_mounted == 4
        assert client.get_manifest(f"dockroll-test/multi-prod-{run}", "v2").content == index.content

        across = copy(src, f"{other.host}/team/multi:v2", client, remote)
        assert across.digest == index.digest
        assert (across.manifests_written, across.blobs_copied) == (3, 4)
        stored = remote.get_manifest("team/multi", "v2")
        assert stored.content == index.content
        assert stored.media_type == OCI_INDEX
        for child in index.children():
            assert remote.manifest_digest("team/multi", child.digest) == child.digest
        assert not copy(src, f"{other.host}/team/multi:v2", client, remote).written


def test_retag_sends_only_the_manifest_and_a_repeat_sends_nothing(pushed_image: ImageRef) -> None:
    with _anonymous(pushed_image.registry) as client:
        manifest = client.get_manifest(pushed_image.repository, "git-abc1234")
        first = retag(client, pushed_image, "staging")
        assert first.written
        assert first.digest == manifest.digest
        assert first.bytes_sent == manifest.size
        assert first.blobs_copied == first.blobs_mounted == 0
        second = retag(client, pushed_image, "staging")
        assert not second.written
        assert second.bytes_sent == 0
        assert second.requests == 2  # two HEADs
        assert "staging" in client.list_tags(pushed_image.repository)
        assert client.get_manifest(pushed_image.repository, "staging").content == manifest.content


def test_basic_auth_with_htpasswd(
    private_registry: Callable[..., PrivateRegistry],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secured = private_registry(htpasswd=True)
    monkeypatch.delenv("DOCKROLL_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("DOCKROLL_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty-docker-config"))

    with RegistryClient(secured.host) as anonymous, pytest.raises(RegistryAuthError) as refused:
        anonymous.ping()
    assert "requires credentials" in str(refused.value)
    assert f"docker login {secured.host}" in str(refused.value)

    wrong = Credentials(USER, "not-the-password-42")
    with RegistryClient(secured.host, credentials=wrong) as client:
        with pytest.raises(RegistryAuthError) as bad:
            client.ping()
        assert wrong.password not in str(bad.value)
        assert wrong.password not in repr(client)

    with RegistryClient(secured.host, credentials=Credentials(USER, PASSWORD)) as client:
        index = _push_index(client, "team/secure", "v1")
        assert client.resolve("team/secure", "v1") == index.digest

    # the same credentials found in a docker config written by `docker login`
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {secured.host: {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    with RegistryClient(secured.host) as client:
        assert client.credentials is not None
        assert client.credentials.source == "docker config"
        assert client.resolve("team/secure", "v1") == index.digest


def test_fallback_resolver_answers_from_the_mirror_when_the_primary_is_stopped(
    private_registry: Callable[..., PrivateRegistry],
) -> None:
    primary, mirror = private_registry(), private_registry()
    with _anonymous(primary.host) as client, _anonymous(mirror.host) as mirror_client:
        index = _push_index(client, "team/web", "v3")
        copy(f"{primary.host}/team/web:v3", f"{mirror.host}/team/web:v3", client, mirror_client)
        only_on_mirror = retag(mirror_client, f"{mirror.host}/team/web:v3", "mirror-only")
    with FallbackResolver([primary.host, mirror.host], timeout=2) as resolver:
        assert resolver.resolve("team/web", "v3").registry == primary.host
        missing = resolver.resolve("team/web", "mirror-only")
        assert missing.registry == mirror.host
        assert missing.attempts[0].outcome == "not_found"
        assert missing.digest == only_on_mirror.digest

        primary.stop()
        resolution = resolver.get_manifest("team/web", "v3")
    assert resolution.registry == mirror.host
    assert resolution.digest == index.digest
    assert resolution.ref == ImageRef(mirror.host, "team/web", digest=Digest(index.digest))
    first = resolution.attempts[0]
    assert (first.registry, first.outcome) == (primary.host, "unavailable")
    assert "connection refused" in first.message
    assert resolution.manifest is not None
    assert resolution.manifest.content == index.content

    with (
        _anonymous(primary.host) as gone,
        pytest.raises(RegistryUnavailable, match="is it running"),
    ):
        gone.ping()


def test_delete_manifest(private_registry: Callable[..., PrivateRegistry]) -> None:
    instance = private_registry()
    with _anonymous(instance.host) as client:
        index = _push_index(client, "team/web", "v1")
        client.delete_manifest("team/web", index.digest)
        assert client.manifest_digest("team/web", "v1") is None
        assert client.manifest_digest("team/web", index.digest) is None
        # the children are separate manifests and stay until deleted themselves
        child = index.children()[0].digest
        assert client.manifest_digest("team/web", child) == child
