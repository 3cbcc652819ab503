"""Process types of one release on the real engine, registry and HAProxy: web behind the
router, a worker and a scheduler beside it, deployed, rolled back and shown together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import yaml

from dockroll import labels
from tests.integration.rollout_support import (
    Load,
    Seeded,
    run_dockroll,
    seed_releases,
    versions,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OLD, NEW = "v1.0.0", "v1.1.0"
ENVIRONMENTS = {"proc": {"strategy": "rolling", "replicas": 2, "drain_timeout": "2s"}}
LOOP = "import time\nprint('worker up', flush=True)\nwhile True: time.sleep(1)"
PROCESSES: dict[str, Any] = {
    "web": {},
    "worker": {"command": ["python3", "-c", LOOP], "replicas": 2, "liveness": "1s"},
    "scheduler": {"command": ["python3", "-c", LOOP], "env": {"ROLE": "scheduler"}},
}


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    yield from seed_releases(
        tmp_path_factory, registry, ENVIRONMENTS, {OLD: {}, NEW: {}}, prefix="proc"
    )


def _set_processes(seeded: Seeded, processes: dict[str, Any]) -> None:
    data = yaml.safe_load(seeded.config_path.read_text(encoding="utf-8"))
    data["processes"] = processes
    seeded.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _processes(client: docker.DockerClient, seeded: Seeded) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for container in client.containers.list(
        all=True,
        filters={"label": [f"{labels.SERVICE}={seeded.service}", f"{labels.ROLE}=process"]},
    ):
        found.setdefault(container.labels[labels.PROCESS], []).append(container)
    return found


def _versions(found: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {
        name: sorted(c.labels[labels.VERSION] for c in containers)
        for name, containers in sorted(found.items())
    }


def _ok(done: Any) -> None:
    assert done.returncode == 0, done.stdout + done.stderr


def test_processes_deploy_roll_back_and_show_together(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    _set_processes(seeded, PROCESSES)
    _ok(run_dockroll(seeded, "deploy", OLD, "--env", "proc"))
    wait_serving(seeded.url("proc"), OLD)
    found = _processes(docker_client, seeded)
    assert _versions(found) == {"scheduler": [OLD], "worker": [OLD, OLD]}
    worker = found["worker"][0]
    assert worker.attrs["Config"]["Cmd"] == ["python3", "-c", LOOP]
    # A liveness-checked process runs without the image's HEALTHCHECK (it probes the web).
    assert worker.attrs["Config"]["Healthcheck"]["Test"] == ["NONE"]
    assert worker.attrs["NetworkSettings"]["Networks"].keys() == {f"dockroll-{seeded.service}-proc"}
    (scheduler,) = found["scheduler"]
    code, output = scheduler.exec_run(["sh", "-c", "echo $ROLE $ENVIRONMENT"])
    assert (code, output) == (0, b"scheduler proc\n")

    # One release, every process: the web under load without a failed request.
    old_ids = {c.id for containers in found.values() for c in containers}
    with Load(seeded.url("proc"), threads=4) as load:
        load.wait_for(100)
        _ok(run_dockroll(seeded, "deploy", NEW, "--env", "proc"))
        load.wait_for(len(load.answers) + 100)
    assert load.failures == [], load.failures[:5]
    found = _processes(docker_client, seeded)
    assert _versions(found) == {"scheduler": [NEW], "worker": [NEW, NEW]}
    assert not old_ids & {c.id for containers in found.values() for c in containers}

    done = run_dockroll(seeded, "status", "--env", "proc", "--json")
    _ok(done)
    (status,) = json.loads(done.stdout)["environments"]
    assert sorted((p["process"], p["version"], p["state"]) for p in status["processes"]) == [
        ("scheduler", NEW, "running"),
        ("worker", NEW, "running"),
        ("worker", NEW, "running"),
    ]
    assert {r["version"] for r in status["replicas"]} == {NEW}
    done = run_dockroll(seeded, "status", "--env", "proc")
    assert "worker" in done.stdout

    # A worker that cannot start: the whole release goes back, the old one serves on.
    _set_processes(seeded, {**PROCESSES, "worker": {"command": ["false"], "replicas": 2}})
    running_ids = sorted(c.id for containers in found.values() for c in containers)
    done = run_dockroll(seeded, "deploy", OLD, "--env", "proc")
    assert done.returncode == 11, done.stdout + done.stderr
    assert "rolled back" in done.stderr + done.stdout
    assert "worker" in done.stderr + done.stdout
    found = _processes(docker_client, seeded)
    assert sorted(c.id for containers in found.values() for c in containers) == running_ids
    assert versions(seeded.url("proc"), 20) == {NEW: 20}

    # A rollback takes every process back to the release before.
    _set_processes(seeded, PROCESSES)
    _ok(run_dockroll(seeded, "rollback", "--env", "proc"))
    wait_serving(seeded.url("proc"), OLD)
    assert _versions(_processes(docker_client, seeded)) == {
        "scheduler": [OLD],
        "worker": [OLD, OLD],
    }
    # A worker that starts only once the web serves, and fails: the web goes back too.
    before = _processes(docker_client, seeded)
    failing = {"command": ["false"], "replicas": 2, "start": "after-web"}
    _set_processes(seeded, {**PROCESSES, "worker": failing})
    with Load(seeded.url("proc"), threads=2) as load:
        load.wait_for(50)
        done = run_dockroll(seeded, "deploy", NEW, "--env", "proc")
        load.wait_for(len(load.answers) + 50)
    assert done.returncode == 11, done.stdout + done.stderr
    assert f"rolled back to {OLD}" in done.stderr + done.stdout
    assert load.failures == [], load.failures[:5]
    wait_serving(seeded.url("proc"), OLD)
    after = _processes(docker_client, seeded)
    assert {n: sorted(c.id for c in cs) for n, cs in after.items()} == {
        n: sorted(c.id for c in cs) for n, cs in before.items()
    }

    # Nothing changed: nothing to do.
    _set_processes(seeded, PROCESSES)
    done = run_dockroll(seeded, "deploy", OLD, "--env", "proc")
    _ok(done)
    assert "already runs" in done.stdout + done.stderr
