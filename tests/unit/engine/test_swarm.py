"""The Swarm adapter's service specs and how a service reads back as a replica.

The integration tests (tests/integration/test_swarm.py) run them on a real
three-node Swarm; these pin down the spec sent and the mapping of task states.
"""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from dockroll.config import Config
from dockroll.engine.docker import DockerEngine
from dockroll.engine.port import Health, Mount, RunRequest
from dockroll.engine.swarm import SwarmEngine, SwarmPlacement
from dockroll.errors import EngineError
from dockroll.pipeline.engines import environment_engine


def _engine(**placement: Any) -> SwarmEngine:
    return SwarmEngine("tcp://127.0.0.1:1", placement=SwarmPlacement(**placement))


def test_an_app_replica_is_a_one_task_service_without_a_virtual_ip() -> None:
    engine = _engine(
        constraints=("node.role==worker",),
        cpus=0.5,
        memory=64 * 1024 * 1024,
        stop_grace=7,
    )
    spec = engine._service_spec(
        RunRequest(
            image="10.0.0.1:5000/team/web@sha256:" + "a" * 64,
            name="web-prod-r-1",
            env={"ENVIRONMENT": "prod"},
            labels={"dev.dockroll.role": "app", "dev.dockroll.service": "web"},
            network="dockroll-web-prod",
        )
    )

    assert spec["name"] == "web-prod-r-1"
    assert spec["mode"] == {"replicated": {"Replicas": 1}}
    assert spec["endpoint_spec"] == {"Mode": "dnsrr"}
    assert spec["labels"]["dev.dockroll.service"] == "web"
    template = spec["task_template"]
    assert template["ContainerSpec"]["Image"].endswith("@sha256:" + "a" * 64)
    assert template["ContainerSpec"]["Env"] == ["ENVIRONMENT=prod"]
    assert template["ContainerSpec"]["StopGracePeriod"] == 7_000_000_000
    assert template["Placement"]["Constraints"] == ["node.role==worker"]
    assert template["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 64 * 1024 * 1024,
    }
    assert template["RestartPolicy"]["Condition"] == "any"
    assert [network["Target"] for network in template["Networks"]] == ["dockroll-web-prod"]


SERVICE = {
    "ID": "svc1",
    "CreatedAt": "2026-12-04T18:00:00.123456789Z",
    "Spec": {
        "Name": "web-prod-r-1",
        "Labels": {"dev.dockroll.version": "1.2.0"},
        "TaskTemplate": {"ContainerSpec": {"Image": "reg/web@sha256:" + "b" * 64}},
    },
}


def _task(state: str, desired: str, created: str, address: str | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {
        "NodeID": f"node-{created}",
        "CreatedAt": created,
        "DesiredState": desired,
        "Status": {"State": state, "ContainerStatus": {"ExitCode": 3}},
    }
    if address:
        task["NetworksAttachments"] = [
            {"Network": {"Spec": {"Name": "dockroll-web-prod"}}, "Addresses": [address]}
        ]
    return task


@pytest.mark.parametrize(
    ("tasks", "status", "node", "networks"),
    [
        # the current task runs: its node and overlay address
        (
            [_task("failed", "shutdown", "1"), _task("running", "running", "2", "10.0.1.7/24")],
            "running",
            "node-2",
            {"dockroll-web-prod": "10.0.1.7"},
        ),
        # rescheduled, the new task still starting: not running yet
        (
            [_task("failed", "shutdown", "1"), _task("preparing", "running", "2")],
            "created",
            "node-2",
            {},
        ),
        # nothing wants to run any more: the last task's end
        ([_task("failed", "shutdown", "1")], "exited", "node-1", {}),
    ],
)
def test_a_service_reads_back_as_its_current_task(
    monkeypatch: pytest.MonkeyPatch,
    tasks: list[dict[str, Any]],
    status: str,
    node: str,
    networks: dict[str, str],
) -> None:
    engine = _engine()
    monkeypatch.setattr(engine, "_tasks", lambda service_id, running_only=False: tasks)

    info = engine._service_info(SERVICE)

    assert (info.id, info.name, info.status, info.node) == ("svc1", "web-prod-r-1", status, node)
    assert info.networks == networks
    assert info.health is Health.NONE
    assert info.labels == {"dev.dockroll.version": "1.2.0"}
    assert info.exit_code == (3 if status == "exited" else None)


def test_an_environment_with_a_swarm_section_gets_the_swarm_engine() -> None:
    config = Config.model_validate(
        {
            "service": "web",
            "image": "127.0.0.1:5000/team/web",
            "container": {"stop_grace": "4s"},
            "environments": {
                "prod": {
                    "port": 8080,
                    "engine": "tcp://10.0.0.2:2376",
                    "swarm": {"constraints": ["node.role==worker"], "memory_mb": 128},
                },
                "dev": {"port": 8081},
            },
        }
    )

    prod = environment_engine(config, "prod")
    assert isinstance(prod, SwarmEngine)
    assert prod.endpoint == "tcp://10.0.0.2:2376"
    assert prod.placement.constraints == ("node.role==worker",)
    assert prod.placement.memory == 128 * 1024 * 1024
    assert prod.placement.stop_grace == 4
    assert not isinstance(environment_engine(config, "dev"), SwarmEngine)


def test_a_replica_service_carries_the_containers_settings() -> None:
    spec = _engine(memory=64 * 1024 * 1024)._service_spec(
        RunRequest(
            image="web:1",
            name="web-prod-r-1",
            env={"MODE": "prod"},
            secret_env={"API_TOKEN": "s3cret"},
            labels={"dev.dockroll.role": "app"},
            mounts=(Mount(source="web-data", target="/data"),),
            memory=32 * 1024 * 1024,
            nano_cpus=250_000_000,
            extra_hosts={"db.internal": "10.0.0.9"},
        )
    )

    container = spec["task_template"]["ContainerSpec"]
    assert sorted(container["Env"]) == ["API_TOKEN=s3cret", "MODE=prod"]
    assert [(m["Source"], m["Target"], m["Type"]) for m in container["Mounts"]] == [
        ("web-data", "/data", "volume")
    ]
    assert container["Hosts"] == ["10.0.0.9 db.internal"]
    # The swarm: section's limit wins; the container's own fills in what it leaves.
    assert spec["task_template"]["Resources"]["Limits"] == {
        "NanoCPUs": 250_000_000,
        "MemoryBytes": 64 * 1024 * 1024,
    }


class FakeSecretsApi:
    """The secret calls of the engine API, in memory."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.data: dict[str, bytes] = {}

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> dict[str, str]:
        secret_id = f"id-{len(self.data) + 1}"
        self.stored[secret_id] = {"ID": secret_id, "Spec": {"Name": name, "Labels": labels}}
        self.data[secret_id] = data
        return {"ID": secret_id}

    def secrets(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        key, _, value = filters["label"].partition("=")
        return [s for s in self.stored.values() if s["Spec"]["Labels"].get(key) == value]

    def remove_secret(self, secret_id: str) -> None:
        del self.stored[secret_id]


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeSecretsApi()


def test_secret_files_become_swarm_secrets_mounted_where_the_files_go() -> None:
    engine = _engine()
    client = FakeClient()
    api = client.api
    engine._client = client  # type: ignore[assignment]
    labels = {
        "dev.dockroll.role": "app",
        "dev.dockroll.service": "web",
        "dev.dockroll.environment": "prod",
        "dev.dockroll.config-hash": "abc",
    }
    request = RunRequest(
        image="web:1",
        name="web-prod-r-1",
        labels=labels,
        files={"/run/secrets/token": b"s3cret", "/etc/app/key.pem": b"-----KEY-----"},
        healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000, "retries": 2},
    )

    references = engine._create_secrets(request.name, request.files, request.labels)
    spec = engine._service_spec(request, references)

    container = spec["task_template"]["ContainerSpec"]
    assert [(s["SecretName"], s["File"]["Name"]) for s in container["Secrets"]] == [
        ("web-prod-r-1-1", "/etc/app/key.pem"),
        ("web-prod-r-1-2", "/run/secrets/token"),
    ]
    assert sorted(api.data.values()) == [b"-----KEY-----", b"s3cret"]
    # The content is in the secret only: not in the spec, its names or its labels.
    assert b"s3cret" not in repr(spec).encode()
    assert {s["Spec"]["Labels"]["dev.dockroll.secret-of"] for s in api.stored.values()} == {
        "web-prod-r-1"
    }
    assert container["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 1_000_000_000,
        "Timeout": None,
        "Retries": 2,
        "StartPeriod": None,
    }

    # A replica of the same name later replaces its leftover secrets; removal takes them.
    engine._create_secrets(request.name, {"/run/secrets/token": b"rotated"}, labels)
    assert [api.data[i] for i in api.stored] == [b"rotated"]
    engine._remove_secrets("web-prod-r-1")
    assert api.stored == {}


def test_a_replica_without_its_secrets_is_refused_before_anything_starts() -> None:
    with pytest.raises(EngineError, match="secret files"):
        _engine()._service_spec(
            RunRequest(
                image="web:1",
                name="web-prod-r-1",
                labels={"dev.dockroll.role": "app"},
                files={"/run/secrets/token": b"s3cret"},
            )
        )


class _Nodes:
    """The part of the SDK client that lists nodes, counting the calls."""

    def __init__(self, answer: list[dict[str, Any]] | Exception) -> None:
        self.answer = answer
        self.calls = 0
        self.api = self

    def nodes(self) -> list[dict[str, Any]]:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_node_names_are_one_listing_of_the_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine()
    client = _Nodes(
        [
            {"ID": "n1", "Description": {"Hostname": "manager-1"}},
            {"ID": "n2", "Description": {"Hostname": "worker-1"}},
            {"ID": "n3"},  # a node still joining describes nothing yet
        ]
    )
    monkeypatch.setattr(engine, "_client", client)

    assert engine.node_names() == {"n1": "manager-1", "n2": "worker-1", "n3": ""}
    assert client.calls == 1


def test_node_names_off_a_manager_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine()
    refused = docker.errors.APIError("not a manager", response=_Response(503))
    monkeypatch.setattr(engine, "_client", _Nodes(refused))

    assert engine.node_names() == {}
    assert DockerEngine("tcp://127.0.0.1:1").node_names() == {}


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.reason = "Service Unavailable"
