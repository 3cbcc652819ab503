"""examples/compose-app from `dockroll init` to a zero-downtime deploy of web, worker and
database, with one build per release, as docs/adopting-compose.md walks through it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from dockroll import labels
from tests.integration.accessory_support import redis_image
from tests.integration.rollout_support import (
    DOCKROLL,
    Load,
    cleanup,
    free_router_port,
    plain_git_env,
    real_substitutes,
    remove_images,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "compose-app"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=tests", "-c", "user.email=tests@dockroll.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env=plain_git_env(),
    )


def _jobs_done(url: str, wanted: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = httpx.get(f"{url}/jobs", timeout=5).json()["done"]
        if done >= wanted:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"the worker did {done} of {wanted} jobs in {timeout:g}s")
        time.sleep(0.2)


def test_adopt_the_compose_app(
    tmp_path: Path, docker_client: docker.DockerClient, registry: str
) -> None:
    service = f"adopt-{uuid.uuid4().hex[:8]}"
    repo = tmp_path / "compose-app"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("dockroll.yml", "__pycache__"))
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(real_substitutes(), state / "base-images.json")
    port = free_router_port(set())
    env = {
        **plain_git_env(os.environ),
        "DOCKROLL_STATE_DIR": str(state),
        "DOCKROLL_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
        "DOCKROLL_REGISTRY": registry,
        "REDIS_IMAGE": redis_image(docker_client),
    }
    env.pop("DOCKROLL_CONFIG", None)

    def dockroll(*args: str) -> str:
        done = subprocess.run(
            [DOCKROLL, *args],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, (args, done.stdout + done.stderr)
        return done.stdout

    def release(version: str) -> None:
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"release {version}")
        _git(repo, "tag", version)
        dockroll("build")
        dockroll("push")

    url = f"http://127.0.0.1:{port}"
    try:
        out = dockroll("init", "--service", service, "--port", str(port))
        assert "web (router), worker" in out
        data = yaml.safe_load((repo / "dockroll.yml").read_text(encoding="utf-8"))
        assert data["health"]["path"] == "/ready"
        assert data["processes"]["worker"]["command"] == ["python3", "worker.py"]
        assert data["accessories"]["redis"]["image"] == "${REDIS_IMAGE:-redis:7}"
        dockroll("config", "check")

        _git(repo, "init", "-q")
        release("v1.0.0")
        dockroll("accessory", "up", "--env", "dev")
        dockroll("deploy", "v1.0.0", "--env", "dev")
        wait_serving(url, "v1.0.0")
        for _ in range(5):
            assert httpx.post(f"{url}/jobs", timeout=5).status_code == 202
        _jobs_done(url, 5)

        # The next release: one build, web and worker switch together, no request fails.
        (repo / "CHANGES").write_text("v1.1.0\n", encoding="utf-8")
        release("v1.1.0")
        with Load(url, threads=4) as load:
            load.wait_for(100)
            dockroll("deploy", "v1.1.0", "--env", "dev")
            load.wait_for(len(load.answers) + 100)
        assert load.failures == [], load.failures[:5]
        assert set(load.versions()) == {"v1.0.0", "v1.1.0"}
        assert httpx.post(f"{url}/jobs", timeout=5).status_code == 202
        _jobs_done(url, 6)  # the database kept the count; the new worker did the new job

        status = json.loads(dockroll("status", "--env", "dev", "--json"))["environments"][0]
        assert {r["version"] for r in status["replicas"]} == {"v1.1.0"}
        assert [(p["process"], p["version"]) for p in status["processes"]] == [("worker", "v1.1.0")]
        # One image for both processes: the worker runs the web's digest.
        assert {p["digest"] for p in status["processes"]} == {
            r["digest"] for r in status["replicas"]
        }
        accessory = docker_client.containers.get(f"{service}-dev-redis")
        assert accessory.labels[labels.ROLE] == "accessory"
    finally:
        cleanup(docker_client, service)
        for volume in docker_client.volumes.list(filters={"name": f"dockroll-{service}-"}):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
        remove_images(docker_client, f"{registry}/{service}")
