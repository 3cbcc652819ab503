"""`dockroll pipeline` end to end, and failing at the right stage.

The console script runs the course's stages on a copy of the sample service:
build → test → scan → tag → push → deploy to dev. A release whose readiness
never passes must stop at `test`, with nothing pushed or deployed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
import yaml

from tests.integration.rollout_support import (
    EXAMPLE,
    _git,
    cleanup,
    free_router_port,
    plain_git_env,
    real_substitutes,
    remove_images,
)

pytestmark = pytest.mark.integration

DOCKROLL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dockroll"


@dataclass
class Service:
    name: str
    repo: Path
    repository: str
    env: dict[str, str]
    port: int

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(DOCKROLL), *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def release(self, version: str, *, ready: bool = True) -> None:
        if not ready:
            dockerfile = self.repo / "Dockerfile"
            text = dockerfile.read_text(encoding="utf-8")
            dockerfile.write_text(
                text.replace("USER app:app", "ENV FAULT_READY_FAIL=1\n\nUSER app:app"),
                encoding="utf-8",
            )
        (self.repo / "CHANGES").write_text(f"{version}\n", encoding="utf-8")
        _git(self.repo, "add", "-A")
        _git(self.repo, "commit", "-q", "-m", f"release {version}")
        _git(self.repo, "tag", version)


@pytest.fixture
def service(tmp_path: Path, registry: str, docker_client: docker.DockerClient) -> Iterator[Service]:
    # A short path: the router's admin socket lives under the state directory (107 bytes).
    state = Path(tempfile.mkdtemp(prefix="drp-"))
    shutil.copy(real_substitutes(), state / "base-images.json")
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    repository = f"{registry}/dockroll-test/{name}"
    repo = tmp_path / "service"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    port = free_router_port(set())
    data = yaml.safe_load((EXAMPLE / "dockroll.yml").read_text(encoding="utf-8"))
    data.update(service=name, image=repository)
    data["health"] = {"path": "/ready", "use_docker_healthcheck": False, "start_timeout": "20s"}
    data["environments"] = {"dev": {"port": port, "strategy": "rolling", "replicas": 1}}
    (repo / "dockroll.yml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    _git(repo, "init", "-q")
    env = {
        **plain_git_env(os.environ),
        "DOCKROLL_STATE_DIR": str(state),
        "DOCKROLL_LEDGER_URL": f"sqlite:///{state / 'ledger.db'}",
    }
    env.pop("DOCKROLL_CONFIG", None)
    try:
        yield Service(name, repo, repository, env, port)
    finally:
        cleanup(docker_client, name)
        remove_images(docker_client, repository)
        shutil.rmtree(state, ignore_errors=True)


def _tags(registry: str, repository: str) -> list[str]:
    path = repository.removeprefix(f"{registry}/")
    response = httpx.get(f"http://{registry}/v2/{path}/tags/list", timeout=10)
    if response.status_code == 404:
        return []
    return list(response.json().get("tags") or [])


def test_the_pipeline_runs_every_stage_up_to_dev(service: Service, registry: str) -> None:
    service.release("v2.0.0")
    done = service.run("--json", "pipeline")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert [s["stage"] for s in result["stages"]] == [
        "build", "test", "scan", "tag", "push", "deploy",
    ]  # fmt: skip
    assert all(s["status"] == "passed" for s in result["stages"])
    scan = next(s for s in result["stages"] if s["stage"] == "scan")
    names = {p["name"] for p in scan["data"]["sbom"]["python_packages"]}
    assert {"flask", "gunicorn"} <= names
    assert {"v2.0.0", "2.0"} <= set(_tags(registry, service.repository))
    answer = httpx.get(f"http://127.0.0.1:{service.port}/version", timeout=10).json()
    assert answer["version"] == "v2.0.0"
    assert answer["environment"] == "dev"
    releases = json.loads(service.run("--json", "releases").stdout)["releases"]
    assert releases[0]["version"] == "v2.0.0"
    assert releases[0]["sbom_digest"], "the scan's SBOM digest is recorded on the release"


def test_a_release_that_never_gets_ready_stops_at_the_test_stage(
    service: Service, registry: str
) -> None:
    service.release("v3.0.0", ready=False)
    done = service.run("pipeline")
    assert done.returncode == 5, done.stderr[-3000:]
    assert "stage `test` failed" in done.stderr
    assert "Traceback" not in done.stderr
    assert "FAILED" in done.stdout + done.stderr
    assert "v3.0.0" not in _tags(registry, service.repository), "nothing was pushed"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{service.port}/version", timeout=2).raise_for_status()
    leftovers = docker.from_env().containers.list(
        all=True, filters={"label": f"dev.dockroll.service={service.name}"}
    )
    assert leftovers == [], "the smoke-test container is gone"


def test_an_unknown_stage_is_a_usage_error(service: Service) -> None:
    done = service.run("pipeline", "--skip", "lint")
    assert done.returncode == 2
    assert "unknown stage 'lint'" in done.stderr
