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
from dockroll.engine.swarm import SwarmEngine, SwarmPlacement, spread_exclusions
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
    """The secret and config calls of the engine API, in memory."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.data: dict[str, bytes] = {}
        self.stored_configs: dict[str, dict[str, Any]] = {}

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

    def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> dict[str, str]:
        config_id = f"cfg-{len(self.data) + 1}"
        self.stored_configs[config_id] = {"ID": config_id, "Spec": {"Name": name, "Labels": labels}}
        self.data[config_id] = data
        return {"ID": config_id}

    def configs(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        key, _, value = filters["label"].partition("=")
        return [c for c in self.stored_configs.values() if c["Spec"]["Labels"].get(key) == value]

    def remove_config(self, config_id: str) -> None:
        del self.stored_configs[config_id]


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


def test_config_files_become_swarm_configs_of_their_replica_with_their_mode() -> None:
    engine = _engine()
    client = FakeClient()
    api = client.api
    engine._client = client  # type: ignore[assignment]
    labels = {
        "dev.dockroll.role": "app",
        "dev.dockroll.service": "web",
        "dev.dockroll.environment": "prod",
    }
    request = RunRequest(
        image="web:1",
        name="web-prod-r-1",
        labels=labels,
        files={"/run/secrets/token": b"s3cret"},
        config_files={"/etc/app/app.ini": (b"[app]", 0o640), "/etc/b.conf": (b"b", 0o444)},
    )

    secrets = engine._create_secrets(request.name, request.files, request.labels)
    configs = engine._create_configs(request.name, request.config_files, request.labels)
    spec = engine._service_spec(request, secrets, configs=configs)

    container = spec["task_template"]["ContainerSpec"]
    assert [
        (c["ConfigName"], c["File"]["Name"], c["File"]["Mode"], c["File"]["UID"])
        for c in container["Configs"]
    ] == [
        ("web-prod-r-1-1", "/etc/app/app.ini", 0o640, "0"),
        ("web-prod-r-1-2", "/etc/b.conf", 0o444, "0"),
    ]
    assert [s["File"]["Name"] for s in container["Secrets"]] == ["/run/secrets/token"]
    assert sorted(api.data[i] for i in api.stored_configs) == [b"[app]", b"b"]
    assert {c["Spec"]["Labels"]["dev.dockroll.config-of"] for c in api.stored_configs.values()} == {
        "web-prod-r-1"
    }
    assert all(
        c["Spec"]["Labels"]["dev.dockroll.environment"] == "prod"
        for c in api.stored_configs.values()
    )

    # A replica of the same name replaces its leftover configs; removal takes them.
    engine._create_configs(request.name, {"/etc/b.conf": (b"new", 0o444)}, labels)
    assert [api.data[i] for i in api.stored_configs] == [b"new"]
    engine._remove_configs("web-prod-r-1")
    assert api.stored_configs == {}
    with pytest.raises(EngineError, match="config files"):
        engine._service_spec(request, secrets)


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


def _node(
    node_id: str,
    *,
    role: str = "worker",
    state: str = "ready",
    availability: str = "active",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "ID": node_id,
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Description": {"Hostname": f"host-{node_id}", "Platform": {"OS": "linux"}},
        "Status": {"State": state},
    }


PROD_WEB = {
    "dev.dockroll.service": "web",
    "dev.dockroll.environment": "prod",
    "dev.dockroll.role": "app",
}
"""The labels every replica of web's prod environment carries."""
OLD_REPLICA = {"dev.dockroll.release": "1", "dev.dockroll.slot": "r"}
NEW_REPLICA = {"dev.dockroll.release": "2", "dev.dockroll.slot": "r"}
CLUSTER = [_node("m", role="manager"), _node("w1"), _node("w2"), _node("w3")]


@pytest.mark.parametrize(
    ("siblings", "nodes", "constraints", "excluded"),
    [
        # the first replica: nothing to keep away from
        ([], CLUSTER, ["node.role==worker"], []),
        # siblings on w1 and w2: the new replica goes to w3
        ([("w1", OLD_REPLICA), ("w2", OLD_REPLICA)], CLUSTER, ["node.role==worker"], ["w1", "w2"]),
        # every worker runs one: its own release's siblings count first (rolling keeps them)
        (
            [("w1", NEW_REPLICA), ("w2", OLD_REPLICA), ("w3", OLD_REPLICA)],
            CLUSTER,
            ["node.role==worker"],
            ["w1"],
        ),
        # then all siblings: w3 runs none
        (
            [("w1", OLD_REPLICA), ("w2", OLD_REPLICA), ("w2", OLD_REPLICA)],
            CLUSTER,
            ["node.role==worker"],
            ["w1", "w2"],
        ),
        # no eligible node would be left: no extra constraint
        ([("w1", OLD_REPLICA), ("w2", OLD_REPLICA)], CLUSTER[:3], ["node.role==worker"], []),
        # the only node left runs a sibling too: nothing gained by keeping off the others
        ([("w1", OLD_REPLICA)], CLUSTER[:2], ["node.role==worker"], []),
        # without constraints the manager is a place to go too
        ([("w1", OLD_REPLICA)], CLUSTER[:2], [], ["w1"]),
        # a drained, a down node, and one outside the environment's constraints are not
        # places to go: only w1 is eligible, so nothing is left out
        (
            [("w1", OLD_REPLICA)],
            [
                _node("m", role="manager"),
                _node("w1"),
                _node("w2", availability="drain"),
                _node("w3", state="down"),
            ],
            ["node.role==worker"],
            [],
        ),
        # the environment's own constraints decide which nodes count
        (
            [("w1", OLD_REPLICA)],
            [
                _node("w1", labels={"zone": "a"}),
                _node("w2", labels={"zone": "b"}),
                _node("w3", labels={"zone": "A"}),
            ],
            ["node.labels.zone==a"],
            ["w1"],
        ),
        (
            [("w1", OLD_REPLICA)],
            [_node("w1", labels={"zone": "a"}), _node("w2", labels={"zone": "b"}), _node("w3")],
            ["node.labels.zone!=b", "node.hostname!=host-w3"],
            [],
        ),
        # a constraint this cannot read: leave the placement to Swarm
        ([("w1", OLD_REPLICA)], CLUSTER, ["node.role==worker", "node.weird==1"], []),
    ],
)
def test_a_new_replica_is_kept_off_the_nodes_its_siblings_run_on(
    siblings: list[tuple[str, dict[str, str]]],
    nodes: list[dict[str, Any]],
    constraints: list[str],
    excluded: list[str],
) -> None:
    assert spread_exclusions(NEW_REPLICA, siblings, nodes, constraints) == excluded


class _SwarmApi:
    """The service, task and node calls of a manager's API, in memory."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.node_list = nodes
        self.stored: dict[str, dict[str, Any]] = {}
        self.task_list: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    def add(self, name: str, labels: dict[str, str], node: str) -> None:
        service_id = f"s{len(self.stored) + 1}"
        spec = {"Name": name, "Labels": labels, "TaskTemplate": {"Placement": {}}}
        self.stored[service_id] = {"ID": service_id, "Version": {"Index": 3}, "Spec": spec}
        self.task_list.append(
            {
                "ID": f"t-{service_id}",
                "ServiceID": service_id,
                "NodeID": node,
                "DesiredState": "running",
                "CreatedAt": "1",
                "Status": {"State": "running"},
                "NetworksAttachments": [
                    {"Network": {"Spec": {"Name": "net"}}, "Addresses": ["10.0.1.9/24"]}
                ],
            }
        )

    def nodes(self) -> list[dict[str, Any]]:
        return self.node_list

    def services(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        wanted = dict(item.split("=", 1) for item in filters["label"])
        return [
            s
            for s in self.stored.values()
            if all(s["Spec"]["Labels"].get(k) == v for k, v in wanted.items())
        ]

    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        ids = filters["service"]
        ids = ids if isinstance(ids, list) else [ids]
        return [t for t in self.task_list if t["ServiceID"] in ids]

    def create_service(self, **spec: Any) -> dict[str, str]:
        template = spec["task_template"]
        self.add(spec["name"], spec["labels"], node="w3")
        # read back as Swarm shows it: with empty sections
        self.stored[f"s{len(self.stored)}"]["Spec"]["TaskTemplate"] = {
            **template,
            "ContainerSpec": {**template["ContainerSpec"], "DNSConfig": {}},
            "Resources": {"Limits": {}},
        }
        return {"ID": f"s{len(self.stored)}"}

    def inspect_service(self, name_or_id: str) -> dict[str, Any]:
        for service in self.stored.values():
            if name_or_id in (service["ID"], service["Spec"]["Name"]):
                return service
        raise docker.errors.NotFound("no such service")

    def update_service(self, service_id: str, **update: Any) -> None:
        assert update["version"] == 3
        # the whole spec as read: nothing merged in by the SDK
        assert update["fetch_current_spec"] is False
        assert update["name"] == self.stored[service_id]["Spec"]["Name"]
        assert update["labels"] == self.stored[service_id]["Spec"]["Labels"]
        self.updates.append(update)
        self.stored[service_id]["Spec"]["TaskTemplate"] = update["task_template"]


def test_the_spreading_constraints_go_once_the_replica_has_its_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _engine(constraints=("node.role==worker",))
    api = _SwarmApi(CLUSTER)
    api.add("web-prod-r-1", {**PROD_WEB, **OLD_REPLICA}, node="w1")
    api.add("web-prod-r-2", {**PROD_WEB, **OLD_REPLICA}, node="w2")
    # another environment's replica on w3 is no sibling
    api.add("web-dev-r-1", {**PROD_WEB, "dev.dockroll.environment": "dev"}, node="w3")
    client = FakeClient()
    client.api = api  # type: ignore[assignment]
    monkeypatch.setattr(engine, "_client", client)

    info = engine.run(
        RunRequest(
            image="web:2",
            name="web-prod-r-3",
            labels={**PROD_WEB, **NEW_REPLICA},
            network="net",
        )
    )

    created = api.inspect_service("web-prod-r-3")
    assert info.node == "w3"
    # placed away from w1 and w2, then left free to move anywhere a worker is
    (update,) = api.updates
    assert update["task_template"]["Placement"]["Constraints"] == ["node.role==worker"]
    assert created["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == ["node.role==worker"]
    assert created["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == "web:2"
    # An empty section sent back would be stored as set and make Swarm replace the task.
    assert "DNSConfig" not in created["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "Resources" not in created["Spec"]["TaskTemplate"]


def test_a_replica_with_nowhere_else_to_go_gets_no_extra_constraint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = _engine(constraints=("node.role==worker",))
    api = _SwarmApi(CLUSTER[:3])
    api.add("web-prod-r-1", {**PROD_WEB, **OLD_REPLICA}, node="w1")
    api.add("web-prod-r-2", {**PROD_WEB, **OLD_REPLICA}, node="w2")
    client = FakeClient()
    client.api = api  # type: ignore[assignment]
    monkeypatch.setattr(engine, "_client", client)
    seen: list[list[str]] = []
    create = api.create_service

    def recording(**spec: Any) -> dict[str, str]:
        seen.append(list(spec["task_template"]["Placement"]["Constraints"]))
        return create(**spec)

    monkeypatch.setattr(api, "create_service", recording)

    engine.run(RunRequest(image="web:2", name="web-prod-r-3", labels={**PROD_WEB, **NEW_REPLICA}))

    assert seen == [["node.role==worker"]]
    assert api.updates == []


def test_the_constraints_stay_until_the_task_has_its_image_and_a_stale_update_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("dockroll.engine.swarm._POLL", 0)
    engine = _engine(constraints=("node.role==worker",))
    api = _SwarmApi(CLUSTER)
    api.add("web-prod-r-1", {**PROD_WEB, **OLD_REPLICA}, node="w1")
    client = FakeClient()
    client.api = api  # type: ignore[assignment]
    monkeypatch.setattr(engine, "_client", client)
    create = api.create_service
    states = iter(["assigned", "preparing", "preparing", "ready"])
    seen: list[str] = []

    def pulling(**spec: Any) -> dict[str, str]:
        created = create(**spec)
        api.task_list[-1]["Status"]["State"] = "assigned"
        return created

    tasks = api.tasks

    def advancing(filters: dict[str, Any]) -> list[dict[str, Any]]:
        found = tasks(filters)
        if filters["service"] == "s2" and not api.updates:  # the new replica's service
            api.task_list[-1]["Status"]["State"] = next(states, "ready")
            seen.append(api.task_list[-1]["Status"]["State"])
        return found

    update = api.update_service
    refused = [docker.errors.APIError("rpc error: update out of sequence")]

    def stale_once(service_id: str, **spec: Any) -> None:
        # the update comes only once the task has its image
        assert api.task_list[-1]["Status"]["State"] == "ready"
        if refused:
            raise refused.pop()
        update(service_id, **spec)

    monkeypatch.setattr(api, "create_service", pulling)
    monkeypatch.setattr(api, "tasks", advancing)
    monkeypatch.setattr(api, "update_service", stale_once)

    engine.run(RunRequest(image="web:2", name="web-prod-r-2", labels={**PROD_WEB, **NEW_REPLICA}))

    assert seen[:4] == ["assigned", "preparing", "preparing", "ready"]
    (sent,) = api.updates
    assert sent["task_template"]["Placement"]["Constraints"] == ["node.role==worker"]
