"""`env down`, `logs`, `exec`, one label scheme, and a release deployed under a second service
of the same repository, on the real engine, registry and HAProxy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import yaml

from dockroll import labels
from tests.integration.rollout_support import (
    DOCKROLL,
    Seeded,
    cleanup,
    cli_env,
    free_router_port,
    run_dockroll,
    seed_releases,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = "v1.0.0"
LOOP = (
    "import time\nwhile True:\n    print('tick from the worker', flush=True)\n    time.sleep(0.5)"
)


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    environments = {"life": {"strategy": "rolling", "replicas": 1, "drain_timeout": "2s"}}
    for seeded in seed_releases(
        tmp_path_factory, registry, environments, {VERSION: {}}, prefix="life"
    ):
        data = yaml.safe_load(seeded.config_path.read_text(encoding="utf-8"))
        data["processes"] = {"web": {}, "worker": {"command": ["python3", "-c", LOOP]}}
        seeded.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        yield seeded


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _mine(client: docker.DockerClient, service: str) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": f"{labels.SERVICE}={service}"}))


def test_logs_exec_labels_and_env_down(seeded: Seeded, docker_client: docker.DockerClient) -> None:
    _ok(run_dockroll(seeded, "deploy", VERSION, "--env", "life"))
    wait_serving(seeded.url("life"), VERSION)
    web, worker = f"{seeded.service}-life-r-1", f"{seeded.service}-life-worker-1"

    # One label scheme: the router carries the labels every replica carries.
    router = docker_client.containers.get(f"dockroll-router-{seeded.service}-life")
    assert router.labels[labels.SERVICE] == seeded.service
    assert router.labels[labels.ROLE] == "router"
    assert {c.name for c in _mine(docker_client, seeded.service)} >= {web, worker, router.name}

    time.sleep(1.5)  # a few worker ticks
    out = _ok(run_dockroll(seeded, "logs", "--env", "life"))
    assert f"{VERSION} {worker} | tick from the worker" in out
    assert f"{VERSION} {web} | " in out
    out = _ok(run_dockroll(seeded, "logs", "--env", "life", "--process", "worker", "--tail", "3"))
    assert set(out.splitlines()) == {f"{VERSION} {worker} | tick from the worker"}
    shown = json.loads(_ok(run_dockroll(seeded, "logs", "--env", "life", "-p", "web", "--json")))
    assert {line["container"] for line in shown["lines"]} == {web}
    done = run_dockroll(seeded, "logs", "--env", "life", "--process", "mailer")
    assert done.returncode == 2
    assert "no process 'mailer'" in done.stderr

    following = subprocess.Popen(
        [DOCKROLL, "logs", "--env", "life", "-p", "worker", "-n", "1", "--follow"],
        env=cli_env(seeded),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert following.stdout is not None
    first = following.stdout.readline()  # the tail: the command is up and following
    time.sleep(3)
    following.send_signal(signal.SIGINT)
    followed, _ = following.communicate(timeout=30)
    assert first == f"{VERSION} {worker} | tick from the worker\n"
    # The ticks that came while it followed (one each 0.5 s).
    assert followed.count("tick from the worker") >= 3

    assert (
        _ok(run_dockroll(seeded, "exec", "--env", "life", "--", "sh", "-c", "echo $ENVIRONMENT"))
        == "life\n"
    )
    out = _ok(
        run_dockroll(
            seeded, "exec", "--env", "life", "-p", "worker", "--", "cat", "/proc/1/cmdline"
        )
    )
    assert "tick from the worker" in out

    # Down: nothing of the environment is left on the engine; the ledger remembers.
    out = _ok(run_dockroll(seeded, "env", "down", "--env", "life"))
    assert "life is down" in out
    assert _mine(docker_client, seeded.service) == []
    assert not docker_client.containers.list(all=True, filters={"name": router.name})
    assert not docker_client.networks.list(names=[f"dockroll-{seeded.service}-life"])
    history = _ok(run_dockroll(seeded, "history", "--env", "life"))
    assert VERSION in history
    audit = _ok(run_dockroll(seeded, "audit", "--action", "env-down"))
    assert "env-down" in audit


def test_a_release_deploys_under_a_second_service_of_the_repository(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    second = f"{seeded.service}-b"
    data = yaml.safe_load(seeded.config_path.read_text(encoding="utf-8"))
    data["service"] = second
    data.pop("processes", None)
    data["environments"] = {"other": {"port": free_router_port(set()), "replicas": 1}}
    path = seeded.config_path.with_name("second.yml")
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    try:
        done = run_dockroll(seeded, "--config", str(path), "deploy", VERSION, "--env", "other")
        _ok(done)
        port = data["environments"]["other"]["port"]
        wait_serving(f"http://127.0.0.1:{port}", VERSION)
        releases = _ok(run_dockroll(seeded, "--config", str(path), "releases"))
        assert VERSION in releases
    finally:
        cleanup(docker_client, second)
