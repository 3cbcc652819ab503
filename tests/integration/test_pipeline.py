"""build → test → push of the sample service against the real engine and registry.

One image is built per module (the first build installs the pip packages; later
builds of the same sources hit the BuildKit cache) and shared by the tests. Each
service name is unique, so the smoke-test containers a test starts can be told
apart from anyone else's, and every test checks it left none behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from dockroll.config import Config, load_config
from dockroll.engine.docker import DockerEngine
from dockroll.errors import BuildError, RegistryUnavailable, SmokeTestError
from dockroll.pipeline.build import BuildResult, build_release
from dockroll.pipeline.metadata import release_metadata
from dockroll.pipeline.push import push_release
from dockroll.pipeline.smoke import smoke_test
from tests.conftest import free_port
from tests.support import real_substitutes

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask-app"
VERSION = "v1.2.3"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "DOCKER_METADATA_")


def plain_git_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without CI variables, so tags come from the git checkout."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith(_CI_PREFIXES)}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=dockroll tests", "-c", "user.email=tests@dockroll.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env=plain_git_env(),
    ).stdout.strip()


def make_service_repo(root: Path, *, image: str, service: str) -> Path:
    """A fresh git repo with the sample service at tag v1.2.3; returns its dockroll.yml."""
    shutil.copytree(
        EXAMPLE, root, ignore=shutil.ignore_patterns("tests", "__pycache__", ".pytest_cache")
    )
    write_config(root / "dockroll.yml", image=image, service=service)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "sample service")
    _git(root, "tag", VERSION)
    return root / "dockroll.yml"


def write_config(path: Path, *, image: str, service: str, **sections: object) -> Path:
    """The example's dockroll.yml with another image and service, ``sections`` merged in."""
    data = yaml.safe_load((EXAMPLE / "dockroll.yml").read_text(encoding="utf-8"))
    data.update(image=image, service=service)
    for key, value in sections.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Workspace:
    repo: Path
    config: Config
    service: str
    repository: str
    sha: str
    engine: DockerEngine
    pushed: list[str]
    """Manifest URLs (by digest) to delete from the registry afterwards."""


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Workspace]:
    substitutes = real_substitutes()
    state = tmp_path_factory.mktemp("state")
    shutil.copy(substitutes, state / "base-images.json")
    suffix = uuid.uuid4().hex[:10]
    service = f"flask-{suffix}"
    repository = f"{registry}/dockroll-test/flask-{suffix}"
    repo = tmp_path_factory.mktemp("flask-app") / "service"
    config_path = make_service_repo(repo, image=repository, service=service)
    engine = DockerEngine()
    pushed: list[str] = []
    sha = _git(repo, "rev-parse", "HEAD")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKROLL_STATE_DIR", str(state))
        patch.delenv("DOCKROLL_DOCKER_CLI", raising=False)
        yield Workspace(
            repo=repo,
            config=load_config(config_path),
            service=service,
            repository=repository,
            sha=sha,
            engine=engine,
            pushed=pushed,
        )
    engine.close()
    for url in pushed:
        # Best effort: a registry without storage.delete answers 405 and keeps them.
        with contextlib.suppress(httpx.HTTPError):
            httpx.delete(url, timeout=10)
    remove_images(docker_client, sha)


def remove_images(client: docker.DockerClient, revision: str) -> None:
    """Remove every local image built from the commit ``revision``, tagged or dangling.

    Each checkout is a fresh repository, so its commit identifies exactly the
    images these tests built and nothing anyone else has.
    """
    label = f"org.opencontainers.image.revision={revision}"
    for image in client.images.list(filters={"label": label}):
        with contextlib.suppress(docker.errors.NotFound):
            client.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def built(workspace: Workspace) -> BuildResult:
    metadata = release_metadata(workspace.config, env=plain_git_env())
    return build_release(workspace.config, metadata, workspace.engine)


@pytest.fixture(autouse=True)
def nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "workspace" not in request.fixturenames:
        return
    workspace: Workspace = request.getfixturevalue("workspace")
    client: docker.DockerClient = request.getfixturevalue("docker_client")
    left = client.containers.list(
        all=True,
        filters={
            "label": ["dev.dockroll.role=smoke-test", f"dev.dockroll.service={workspace.service}"]
        },
    )
    for container in left:
        container.remove(force=True)
    assert left == [], f"smoke-test containers left behind: {[c.name for c in left]}"


# --- the healthy path ---------------------------------------------------------------


def test_build_tags_labels_and_user(
    workspace: Workspace, built: BuildResult, docker_client: docker.DockerClient
) -> None:
    record = built.record
    repo = workspace.repository
    sha7 = workspace.sha[:7]
    assert record.tags == (
        f"{repo}:{VERSION}",
        f"{repo}:1.2",
        f"{repo}:git-{sha7}",
        f"{repo}:latest",
    )
    assert record.version == VERSION
    assert record.git_sha == sha7
    assert built.builder in {"buildx", "buildkit"}
    assert built.substituted_base == ("python:3.11-slim", "dockroll.local/python:3.11-slim")

    image = docker_client.images.get(record.image_id)
    assert sorted(image.tags) == sorted(record.tags)
    labels = image.labels
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.revision"] == workspace.sha
    assert labels["org.opencontainers.image.base.name"] == "dockroll.local/python:3.11-slim"
    assert image.attrs["Config"]["User"] not in ("", "root", "0")
    uid = docker_client.containers.run(record.image_id, ["id", "-u"], remove=True)
    assert uid.decode().strip() == "10001"


def test_the_pip_certificate_secret_leaves_no_trace(
    built: BuildResult, docker_client: docker.DockerClient
) -> None:
    listing = docker_client.containers.run(
        built.record.image_id, ["sh", "-c", "ls /run/secrets 2>&1; echo done"], remove=True
    )
    assert "pip_cert" not in listing.decode()


def test_smoke_test_passes(workspace: Workspace, built: BuildResult) -> None:
    result = smoke_test(
        workspace.config,
        workspace.engine,
        built.record.image_id,
        expect_version=built.record.version,
        expect_sha=built.record.git_sha,
    )
    assert result.version["version"] == VERSION
    assert str(result.version["git_sha"]).startswith(workspace.sha[:7])
    assert result.health_source == "docker+http"


def test_push_lands_every_tag_on_one_digest(
    workspace: Workspace, built: BuildResult, registry: str
) -> None:
    result = push_release(built.record, workspace.engine)

    assert result.repository == workspace.repository
    assert result.references == built.record.tags
    path = workspace.repository.removeprefix(f"{registry}/")
    for reference in built.record.tags:
        tag = reference.rsplit(":", 1)[1]
        response = httpx.head(
            f"http://{registry}/v2/{path}/manifests/{tag}",
            headers={"Accept": MANIFEST_TYPES},
            timeout=10,
        )
        assert response.status_code == 200, reference
        assert response.headers["Docker-Content-Digest"] == result.digest, reference
    workspace.pushed.append(f"http://{registry}/v2/{path}/manifests/{result.digest}")


# --- bad inputs ------------------------------------------------------------------------


def test_no_dockerfile(workspace: Workspace, tmp_path: Path) -> None:
    config = load_config(
        write_config(
            workspace.repo / "missing-dockerfile.yml",
            image=workspace.repository,
            service=workspace.service,
            build={"dockerfile": "Nope.Dockerfile"},
        )
    )
    metadata = release_metadata(config, env=plain_git_env())
    with pytest.raises(BuildError, match=r"no Dockerfile at .*Nope\.Dockerfile"):
        build_release(config, metadata, workspace.engine)


def test_a_failing_build_shows_its_output(workspace: Workspace) -> None:
    (workspace.repo / "Failing.Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n"
        "RUN echo about-to-fail-on-purpose && false\n",
        encoding="utf-8",
    )
    config = load_config(
        write_config(
            workspace.repo / "failing.yml",
            image=workspace.repository,
            service=workspace.service,
            build={"dockerfile": "Failing.Dockerfile", "secrets": []},
        )
    )
    metadata = release_metadata(config, env=plain_git_env())
    with pytest.raises(BuildError, match=r"the build failed \(exit \d+\); last lines") as caught:
        build_release(config, metadata, workspace.engine)
    assert "about-to-fail-on-purpose" in caught.value.message


def _smoke_config(
    workspace: Workspace, name: str, start_timeout: str, **container_env: str
) -> Config:
    return load_config(
        write_config(
            workspace.repo / f"{name}.yml",
            image=workspace.repository,
            service=workspace.service,
            container={"env": container_env},
            health={"start_timeout": start_timeout, "interval": "200ms"},
        )
    )


def test_a_service_that_never_gets_ready(workspace: Workspace, built: BuildResult) -> None:
    # Long enough for gunicorn to answer (with 503) on a busy machine, short enough to wait out.
    config = _smoke_config(workspace, "ready-fail", "10s", FAULT_READY_FAIL="1")
    with pytest.raises(SmokeTestError, match="not healthy after 10s") as caught:
        smoke_test(config, workspace.engine, built.record.image_id)
    assert "GET /ready gave HTTP 503" in caught.value.message


def test_a_service_that_crashes_at_start(workspace: Workspace, built: BuildResult) -> None:
    # The crash ends the wait as soon as the container exits; the timeout is only a backstop.
    config = _smoke_config(workspace, "crash", "60s", FAULT_CRASH_ON_START="1")
    with pytest.raises(SmokeTestError, match="stopped during start") as caught:
        smoke_test(config, workspace.engine, built.record.image_id)
    assert "FAULT_CRASH_ON_START is set, refusing to start" in caught.value.message


@pytest.mark.usefixtures("built")
def test_push_to_a_registry_that_is_down(workspace: Workspace) -> None:
    down = f"127.0.0.1:{free_port()}/dockroll-test/{workspace.service}"
    config = load_config(
        write_config(workspace.repo / "down.yml", image=down, service=workspace.service)
    )
    metadata = release_metadata(config, env=plain_git_env())
    result = build_release(config, metadata, workspace.engine, record=False)
    with pytest.raises(RegistryUnavailable, match="is not answering") as caught:
        push_release(result.record, workspace.engine)
    assert caught.value.hint is not None
    assert "dockroll dev up" in caught.value.hint
