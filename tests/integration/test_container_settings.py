"""Container settings on the real engine, registry and HAProxy: what a replica gets, that
secrets go into the container and nowhere else dockroll writes or prints, and that config
files are in the container from its start."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import yaml

from dockroll import labels
from tests.integration.rollout_support import (
    Seeded,
    run_dockroll,
    seed_releases,
    state_of,
    wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = "v1.0.0"
ENVIRONMENTS = {
    "settings": {"strategy": "rolling", "replicas": 1, "drain_timeout": "2s"},
    "checked": {"strategy": "rolling", "replicas": 1, "drain_timeout": "2s"},
    "files": {"strategy": "rolling", "replicas": 1, "drain_timeout": "2s"},
}
# The image's own check, as a compose file would write it (the sample answers /health).
HEALTH_TEST = [
    "CMD",
    "python3",
    "-c",
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)",
]


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, registry: str
) -> Iterator[Seeded]:
    seeding = seed_releases(
        tmp_path_factory, registry, ENVIRONMENTS, {VERSION: {}}, prefix="settings"
    )
    seeded = next(seeding)
    try:
        yield seeded
    finally:
        seeding.close()  # removes the containers first: a volume in use cannot go
        for volume in docker_client.volumes.list(filters={"name": f"dockroll-{seeded.service}-"}):
            volume.remove(force=True)


def _configure(seeded: Seeded, environment: str, settings: dict[str, Any], **top: Any) -> None:
    """Give ``environment`` its own ``container:`` overrides (and top-level changes)."""
    data = yaml.safe_load(seeded.config_path.read_text(encoding="utf-8"))
    data["environments"][environment]["container"] = settings
    data.update(top)
    seeded.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _replicas(client: docker.DockerClient, seeded: Seeded, environment: str) -> list[Any]:
    return list(
        client.containers.list(
            filters={
                "label": [
                    f"{labels.SERVICE}={seeded.service}",
                    f"{labels.ENVIRONMENT}={environment}",
                    f"{labels.ROLE}=app",
                ]
            }
        )
    )


def _exec(container: Any, script: str) -> str:
    code, output = container.exec_run(["sh", "-c", script])
    assert code == 0, output
    return str(output.decode("utf-8"))


def test_settings_reach_the_replica_and_secrets_nothing_else(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    password, token = f"pw-{uuid.uuid4().hex}", f"tok-{uuid.uuid4().hex}"
    (seeded.repo / "app.env").write_text("FROM_ENV_FILE=yes\nLOG_LEVEL=debug\n", encoding="utf-8")
    (seeded.repo / "token").write_text(token + "\n", encoding="utf-8")
    _configure(
        seeded,
        "settings",
        {
            "env_file": ["app.env"],
            "secrets": [
                {"name": "DATABASE_PASSWORD", "env": "TEST_DB_PASSWORD"},
                {"name": "api_token", "file": "token", "as": "file"},
            ],
            "volumes": ["data:/data"],
            "memory": "256m",
            "cpus": 0.5,
            "restart": "on-failure:3",
            "extra_hosts": ["db.internal:10.1.2.3"],
            "labels": {"team": "web"},
            "healthcheck": {"test": HEALTH_TEST, "interval": "1s", "retries": 3},
        },
    )
    env = {"TEST_DB_PASSWORD": password}
    outputs: list[str] = []

    def dockroll(*args: str) -> subprocess.CompletedProcess[str]:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            done = run_dockroll(seeded, *args)
        outputs.append(done.stdout + done.stderr)
        return done

    done = dockroll("deploy", VERSION, "--env", "settings")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_serving(seeded.url("settings"), VERSION)
    (replica,) = _replicas(docker_client, seeded, "settings")
    attrs = replica.attrs
    host = attrs["HostConfig"]
    assert host["Memory"] == 256 * 1024**2
    assert host["NanoCpus"] == 500_000_000
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert "db.internal:10.1.2.3" in host["ExtraHosts"]
    assert attrs["Config"]["Labels"]["team"] == "web"
    assert attrs["Config"]["Healthcheck"]["Test"] == HEALTH_TEST
    (mount,) = attrs["Mounts"]
    assert (mount["Type"], mount["Name"], mount["Destination"]) == (
        "volume",
        f"dockroll-{seeded.service}-settings-data",
        "/data",
    )
    assert _exec(replica, "echo $FROM_ENV_FILE $LOG_LEVEL $ENVIRONMENT") == "yes debug settings\n"
    assert _exec(replica, "printenv DATABASE_PASSWORD") == password + "\n"
    assert _exec(replica, "cat /run/secrets/api_token") == token
    assert token not in json.dumps(attrs)  # a file secret is not in `docker inspect`

    # The same settings again: nothing to do. A rotated secret: a new rollout.
    done = dockroll("deploy", VERSION, "--env", "settings")
    assert done.returncode == 0
    assert "already runs" in done.stdout + done.stderr
    first_id, first_password = replica.id, password
    env["TEST_DB_PASSWORD"] = password = f"pw-{uuid.uuid4().hex}"
    done = dockroll("deploy", VERSION, "--env", "settings")
    assert done.returncode == 0, done.stdout + done.stderr
    (replica,) = _replicas(docker_client, seeded, "settings")
    assert replica.id != first_id
    assert _exec(replica, "printenv DATABASE_PASSWORD") == password + "\n"
    secrets = {first_password, password, token}

    # Bad input: a missing secret file stops before anything changes, naming the field.
    (seeded.repo / "token").rename(seeded.repo / "token.moved")
    try:
        done = dockroll("deploy", VERSION, "--env", "settings")
        assert done.returncode == 2
        assert "environments.settings.container.secrets.1" in done.stderr + done.stdout
        assert [c.id for c in _replicas(docker_client, seeded, "settings")] == [replica.id]
    finally:
        (seeded.repo / "token.moved").rename(seeded.repo / "token")

    # Nothing dockroll shows or stores carries a secret: labels, ledger, audit, --json.
    for args in (
        ("status", "--json"),
        ("status", "--env", "settings"),
        ("history", "--env", "settings", "--json"),
        ("audit", "--json"),
        ("config", "check", "--json"),
    ):
        done = dockroll(*args)
        assert done.returncode == 0, (args, done.stderr)
    everything_labelled = docker_client.containers.list(
        all=True, filters={"label": f"{labels.SERVICE}={seeded.service}"}
    )
    stored = [
        json.dumps([c.labels for c in everything_labelled]),
        (seeded.state / "ledger.db").read_bytes().decode("utf-8", errors="replace"),
        *outputs,
    ]
    for secret in secrets:
        for text in stored:
            assert secret not in text


def test_a_compose_healthcheck_gates_the_rollout(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    # With no HTTP readiness path the container's own health check is the gate.
    health = {"path": None, "use_docker_healthcheck": True, "interval": "500ms"}
    health["start_timeout"] = "30s"
    _configure(
        seeded,
        "checked",
        {"healthcheck": {"test": HEALTH_TEST, "interval": "1s", "retries": 2}},
        health=health,
    )
    done = run_dockroll(seeded, "deploy", VERSION, "--env", "checked")
    assert done.returncode == 0, done.stdout + done.stderr
    (good,) = _replicas(docker_client, seeded, "checked")
    assert good.attrs["State"]["Health"]["Status"] == "healthy"

    # A check that can never pass: the rollout is rolled back, the old replica serves on.
    failing = {"test": ["CMD", "false"], "interval": "500ms", "retries": 1}
    _configure(seeded, "checked", {"healthcheck": failing}, health=health)
    done = run_dockroll(seeded, "deploy", VERSION, "--env", "checked")
    assert done.returncode != 0
    assert "rolled back" in done.stdout + done.stderr
    assert [c.id for c in _replicas(docker_client, seeded, "checked")] == [good.id]
    with state_of(seeded):
        wait_serving(seeded.url("checked"), VERSION)


def test_config_files_are_in_the_replica_and_a_changed_one_rolls(
    seeded: Seeded, docker_client: docker.DockerClient
) -> None:
    (seeded.repo / "config").mkdir(exist_ok=True)
    (seeded.repo / "config" / "app.ini").write_text("[app]\nlevel = info\n", encoding="utf-8")
    (seeded.repo / "other.conf").write_text("other\n", encoding="utf-8")
    _configure(
        seeded,
        "files",
        {
            "files": [
                {"source": "config/app.ini", "target": "/etc/app/app.ini", "mode": "0640"},
                {"source": "other.conf", "target": "/srv/deep/er/other.conf"},
            ]
        },
    )
    done = run_dockroll(seeded, "deploy", VERSION, "--env", "files")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_serving(seeded.url("files"), VERSION)
    (replica,) = _replicas(docker_client, seeded, "files")
    # Copied in before the start, owned by root with the mode given: not a bind mount.
    assert replica.attrs["Mounts"] == []
    shown = _exec(replica, "stat -c '%a %u %g' /etc/app/app.ini /srv/deep/er/other.conf /etc")
    assert shown.splitlines() == ["640 0 0", "444 0 0", "755 0 0"]
    code, content = replica.exec_run(["cat", "/etc/app/app.ini"], user="root")
    assert (code, content) == (0, b"[app]\nlevel = info\n")
    assert _exec(replica, "cat /srv/deep/er/other.conf") == "other\n"

    # The same files: nothing to do. A changed file: drift in `status`, then a new rollout.
    done = run_dockroll(seeded, "deploy", VERSION, "--env", "files")
    assert done.returncode == 0
    assert "already runs" in done.stdout + done.stderr
    (seeded.repo / "config" / "app.ini").write_text("[app]\nlevel = debug\n", encoding="utf-8")
    done = run_dockroll(seeded, "--json", "status", "--env", "files")
    assert done.returncode == 0, done.stderr
    (status,) = json.loads(done.stdout)["environments"]
    assert f"{replica.name} runs with settings that differ from dockroll.yml" in status["drift"]
    done = run_dockroll(seeded, "deploy", VERSION, "--env", "files")
    assert done.returncode == 0, done.stdout + done.stderr
    (rolled,) = _replicas(docker_client, seeded, "files")
    assert rolled.id != replica.id
    code, content = rolled.exec_run(["cat", "/etc/app/app.ini"], user="root")
    assert (code, content) == (0, b"[app]\nlevel = debug\n")

    # Bad input: a missing source stops before anything changes, naming the field.
    (seeded.repo / "other.conf").unlink()
    done = run_dockroll(seeded, "deploy", VERSION, "--env", "files")
    assert done.returncode == 2
    assert "environments.files.container.files.1: the file for /srv/deep/er/other.conf" in (
        done.stdout + done.stderr
    )
    assert [c.id for c in _replicas(docker_client, seeded, "files")] == [rolled.id]
    with state_of(seeded):
        wait_serving(seeded.url("files"), VERSION)
