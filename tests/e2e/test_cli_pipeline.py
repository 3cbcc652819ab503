"""The installed ``dockroll`` console script, run the way a user runs it in a service repo.

tags → build → test → push on a fresh git checkout of the sample service at
v1.2.3, then the mistakes users make, each with its documented exit code
(README "Exit codes") and a short message instead of a traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.conftest import free_port
from tests.integration.test_pipeline import (
    MANIFEST_TYPES,
    VERSION,
    make_service_repo,
    plain_git_env,
    real_substitutes,
    remove_images,
    write_config,
)

pytestmark = pytest.mark.e2e

DOCKROLL = Path(sys.executable).parent / "dockroll"
_KEEP_OUT = ("DOCKROLL_CONFIG", "DOCKROLL_DEBUG", "DOCKROLL_LEDGER_URL", "DOCKROLL_DOCKER_CLI")


@dataclass
class Checkout:
    repo: Path
    env: dict[str, str]
    service: str
    repository: str
    sha: str


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def checkout(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Checkout]:
    if not DOCKROLL.is_file():
        pytest.fail(f"the console script {DOCKROLL} is not installed: pip install -e '.[dev]'")
    substitutes = real_substitutes()
    state = tmp_path_factory.mktemp("state")
    shutil.copy(substitutes, state / "base-images.json")
    suffix = uuid.uuid4().hex[:10]
    service = f"e2e-{suffix}"
    repository = f"{registry}/dockroll-test/e2e-{suffix}"
    repo = tmp_path_factory.mktemp("e2e") / "service"
    make_service_repo(repo, image=repository, service=service)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {k: v for k, v in plain_git_env().items() if k not in _KEEP_OUT}
    env.update(DOCKROLL_STATE_DIR=str(state), NO_COLOR="1", COLUMNS="200")
    yield Checkout(repo=repo, env=env, service=service, repository=repository, sha=sha)
    remove_images(docker_client, sha)


def dockroll(checkout: Checkout, *args: str, cwd: Path | None = None) -> Run:
    done = subprocess.run(
        [str(DOCKROLL), *args],
        cwd=cwd or checkout.repo,
        env=checkout.env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_clean_error(run: Run, code: int, *words: str, max_lines: int = 3) -> str:
    """Exit ``code``, an ``error:`` message with ``words`` last on stderr, no traceback.

    Progress lines may come first; the error (message and hint) ends stderr and
    is at most ``max_lines`` long. Returns the error.
    """
    assert run.code == code, (run.code, run.out, run.err)
    assert "Traceback" not in run.err
    lines = run.err.rstrip("\n").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, run.err
    error = "\n".join(lines[starts[0] :])
    assert len(lines) - starts[0] <= max_lines, error
    for word in words:
        assert word in error, error
    return error


@pytest.fixture(scope="module")
def built(checkout: Checkout) -> dict[str, Any]:
    run = dockroll(checkout, "--json", "build")
    assert run.code == 0, run.err
    document: dict[str, Any] = run.json()
    return document


def test_tags_build_test_push(checkout: Checkout, built: dict[str, Any], registry: str) -> None:
    tags = dockroll(checkout, "--json", "tags")
    assert tags.code == 0, tags.err
    computed = tags.json()
    assert computed["version"] == VERSION
    assert f"{checkout.repository}:{VERSION}" in computed["tags"]
    assert f"{checkout.repository}:latest" in computed["tags"]

    assert built["tags"] == computed["tags"]
    assert built["version"] == VERSION
    assert built["image_id"].startswith("sha256:")

    tested = dockroll(checkout, "test")
    assert tested.code == 0, tested.err
    assert "passed" in tested.out
    assert VERSION in tested.out

    pushed = dockroll(checkout, "--json", "push")
    assert pushed.code == 0, pushed.err
    result = pushed.json()
    digest = result["digest"]
    assert digest.startswith("sha256:")
    assert result["references"] == computed["tags"]
    assert result["pinned"] == f"{checkout.repository}@{digest}"
    path = checkout.repository.removeprefix(f"{registry}/")
    head = httpx.head(
        f"http://{registry}/v2/{path}/manifests/{VERSION}",
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    assert head.headers.get("Docker-Content-Digest") == digest


def test_no_config_is_exit_2(checkout: Checkout, tmp_path: Path) -> None:
    run = dockroll(checkout, "build", cwd=tmp_path)
    assert_clean_error(run, 2, "no dockroll.yml", "hint:")
    assert run.out == ""


def test_an_invalid_config_is_exit_2(checkout: Checkout) -> None:
    bad = checkout.repo / "bad.yml"
    bad.write_text("service: web\nimage: 127.0.0.1:5000/web:v1\n", encoding="utf-8")
    run = dockroll(checkout, "--config", str(bad), "--json", "build")
    assert_clean_error(run, 2, "image:", "repository only")
    assert run.out == ""


def test_a_missing_dockerfile_is_exit_4(checkout: Checkout) -> None:
    config = write_config(
        checkout.repo / "nodockerfile.yml",
        image=checkout.repository,
        service=checkout.service,
        build={"dockerfile": "Nope.Dockerfile"},
    )
    run = dockroll(checkout, "--config", str(config), "build")
    assert_clean_error(run, 4, "no Dockerfile at", "Nope.Dockerfile")


def test_a_failing_build_is_exit_4(checkout: Checkout) -> None:
    (checkout.repo / "Failing.Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\nRUN echo e2e-fails-here && false\n",
        encoding="utf-8",
    )
    config = write_config(
        checkout.repo / "failing.yml",
        image=checkout.repository,
        service=checkout.service,
        build={"dockerfile": "Failing.Dockerfile", "secrets": []},
    )
    run = dockroll(checkout, "--config", str(config), "build")
    # The message carries the build's last lines (at most 25) and a hint.
    assert_clean_error(run, 4, "the build failed", "e2e-fails-here", max_lines=30)


def test_a_crashing_image_is_exit_5(checkout: Checkout, built: dict[str, Any]) -> None:
    config = write_config(
        checkout.repo / "crash.yml",
        image=checkout.repository,
        service=checkout.service,
        container={"env": {"FAULT_CRASH_ON_START": "1"}},
        health={"start_timeout": "60s"},
    )
    run = dockroll(checkout, "--config", str(config), "test", "--image", built["image_id"])
    # The message carries the container's last log lines (at most 30).
    assert_clean_error(run, 5, "stopped during start", "FAULT_CRASH_ON_START", max_lines=40)


def test_a_version_mismatch_is_exit_5(checkout: Checkout, built: dict[str, Any]) -> None:
    run = dockroll(checkout, "test", "--expect-version", "v9.9.9")
    assert_clean_error(run, 5, "'v1.2.3'", "'v9.9.9'", max_lines=40)


def test_a_registry_that_is_down_is_exit_6(checkout: Checkout, built: dict[str, Any]) -> None:
    config = write_config(
        checkout.repo / "down.yml",
        image=f"127.0.0.1:{free_port()}/dockroll-test/{checkout.service}",
        service=f"{checkout.service}-down",
    )
    assert dockroll(checkout, "--config", str(config), "build").code == 0
    run = dockroll(checkout, "--config", str(config), "push")
    assert_clean_error(run, 6, "is not answering", "dockroll dev up")
