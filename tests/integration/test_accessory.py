"""`dockroll accessory up|down|status|logs` on the real engine, with a Redis built locally."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from dockroll import labels
from dockroll.engine.base_images import substitutes_file
from tests.conftest import free_port
from tests.integration.accessory_support import redis_image
from tests.integration.rollout_support import DOCKROLL

pytestmark = [pytest.mark.integration]

PASSWORD_FILE_SCRIPT = (
    "exec redis-server --protected-mode no --appendonly yes --dir /data "
    '--requirepass "$(cat /run/secrets/redis_password)"'
)
PING = 'redis-cli -a "$(cat /run/secrets/redis_password)" --no-auth-warning ping | grep -q PONG'


@pytest.fixture
def app(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[dict[str, Any]]:
    service = f"acc-{uuid.uuid4().hex[:8]}"
    image = redis_image(docker_client)
    password = f"pw-{uuid.uuid4().hex}"
    (tmp_path / "redis_password").write_text(password + "\n", encoding="utf-8")
    data = {
        "service": service,
        "image": f"127.0.0.1:5000/dockroll-test/{service}",
        "environments": {"dev": {"port": free_port()}, "prod": {"port": free_port()}},
        "accessories": {
            "cache": {
                "image": image,
                "command": ["sh", "-c", PASSWORD_FILE_SCRIPT],
                "volumes": ["cache-data:/data"],
                "secrets": [{"name": "redis_password", "file": "redis_password", "as": "file"}],
                "healthcheck": {"test": PING, "interval": "500ms", "retries": 20},
                "environments": ["dev"],
            }
        },
    }
    config = tmp_path / "dockroll.yml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    if substitutes_file().exists():  # the router's stand-in image, for `dockroll lock`
        shutil.copy(substitutes_file(), tmp_path / "base-images.json")
    env = {**os.environ, "DOCKROLL_CONFIG": str(config), "DOCKROLL_STATE_DIR": str(tmp_path)}
    try:
        yield {
            "service": service,
            "config": config,
            "data": data,
            "env": env,
            "image": image,
            "password": password,
        }
    finally:
        for container in docker_client.containers.list(
            all=True, filters={"label": f"{labels.SERVICE}={service}"}
        ):
            container.remove(force=True)
        for volume in docker_client.volumes.list(filters={"name": f"dockroll-{service}-"}):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
        for network in docker_client.networks.list(names=[f"dockroll-{service}-"]):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()


def _dockroll(app: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKROLL, *args], env=app["env"], capture_output=True, text=True, timeout=180, check=False
    )


def _redis(client: docker.DockerClient, app: dict[str, Any], *command: str) -> str:
    """redis-cli from another container on the environment's network, by the short name."""
    output = client.containers.run(
        app["image"],
        ["redis-cli", "-h", "cache", "-a", app["password"], "--no-auth-warning", *command],
        network=f"dockroll-{app['service']}-dev",
        remove=True,
    )
    return str(output.decode("utf-8")).strip()


def test_accessory_lifecycle(app: dict[str, Any], docker_client: docker.DockerClient) -> None:
    done = _dockroll(app, "accessory", "up", "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    (started,) = json.loads(done.stdout)["accessories"]
    assert (started["name"], started["action"], started["health"]) == (
        "cache",
        "started",
        "healthy",
    )
    assert _redis(docker_client, app, "set", "k", "kept") == "OK"
    container = docker_client.containers.get(f"{app['service']}-dev-cache")
    assert container.labels[labels.ROLE] == "accessory"
    assert app["password"] not in json.dumps(container.attrs)

    # Up again: nothing to do. Other settings: recreated, and the data is still there.
    done = _dockroll(app, "accessory", "up", "--env", "dev", "--json")
    assert json.loads(done.stdout)["accessories"][0]["action"] == "unchanged"
    app["data"]["accessories"]["cache"]["env"] = {"TZ": "UTC"}
    app["config"].write_text(yaml.safe_dump(app["data"]), encoding="utf-8")
    done = _dockroll(app, "accessory", "status", "--env", "dev")
    assert "settings changed" in done.stdout
    done = _dockroll(app, "accessory", "up", "--env", "dev", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accessories"][0]["action"] == "recreated"
    assert _redis(docker_client, app, "get", "k") == "kept"

    done = _dockroll(app, "accessory", "logs", "cache", "--env", "dev")
    assert "Ready to accept connections" in done.stdout
    # Only where it is configured.
    done = _dockroll(app, "accessory", "up", "cache", "--env", "prod")
    assert done.returncode == 2
    assert "no accessory 'cache' in prod" in done.stderr

    # Down keeps the data unless asked; --volumes deletes it.
    volume = f"dockroll-{app['service']}-dev-cache-data"
    done = _dockroll(app, "accessory", "down", "--env", "dev")
    assert done.returncode == 0, done.stderr
    assert not docker_client.containers.list(all=True, filters={"name": container.name})
    docker_client.volumes.get(volume)
    done = _dockroll(app, "accessory", "down", "--env", "dev", "--volumes")
    assert done.returncode == 0, done.stderr
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume)
    done = _dockroll(app, "accessory", "status", "--env", "dev", "--json")
    assert json.loads(done.stdout)["accessories"][0]["state"] == "absent"


def test_a_missing_secret_starts_nothing(
    app: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    Path(app["config"]).with_name("redis_password").unlink()
    done = _dockroll(app, "accessory", "up", "--env", "dev")
    assert done.returncode == 2
    assert "accessories.cache.secrets.0" in done.stderr
    assert not docker_client.containers.list(
        all=True, filters={"label": f"{labels.SERVICE}={app['service']}"}
    )


def test_up_and_down_wait_for_the_environment_lock(
    app: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    held = _dockroll(app, "lock", "acquire", "--env", "dev", "--reason", "maintenance")
    assert held.returncode == 0, held.stderr
    accessories = {"label": [f"{labels.SERVICE}={app['service']}", f"{labels.ROLE}=accessory"]}

    done = _dockroll(app, "accessory", "up", "--env", "dev")
    assert done.returncode == 12, done.stderr
    assert "is locked" in done.stderr
    assert not docker_client.containers.list(all=True, filters=accessories)

    assert _dockroll(app, "lock", "release", "--env", "dev").returncode == 0
    assert _dockroll(app, "accessory", "up", "--env", "dev").returncode == 0
    assert _dockroll(app, "lock", "acquire", "--env", "dev").returncode == 0

    done = _dockroll(app, "accessory", "down", "--env", "dev")
    assert done.returncode == 12, done.stderr
    (cache,) = docker_client.containers.list(filters=accessories)
    assert cache.status == "running"
    # The manual lock is its holder's to give back; each accessory command gave back its own.
    assert _dockroll(app, "lock", "release", "--env", "dev").returncode == 0
    assert _dockroll(app, "accessory", "down", "--env", "dev").returncode == 0
    assert not docker_client.containers.list(all=True, filters=accessories)
    done = _dockroll(app, "lock", "status", "--env", "dev", "--json")
    assert json.loads(done.stdout)["locked"] is False, done.stdout
