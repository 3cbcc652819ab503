"""Global Swarm services with host-mode ports: what an environment's router needs of a Swarm.

A router run as a Swarm service has one task on every node matching its
placement constraints (``global`` mode), publishes its listeners on each such
node's own ports (``host`` mode: this kernel has no IPVS, so Swarm's routing
mesh is not used), joins the environment's overlay network with
``endpoint_mode: dnsrr`` and reads its files from Swarm configs and secrets.
Configs and secrets are named by a hash of their content, so a changed file is
a new object and the service is updated to it; objects of a service carry the
service's name in a label, so removing the service removes them too.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker.errors
from docker.types import (
    ConfigReference,
    ContainerSpec,
    EndpointSpec,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
    UpdateConfig,
)

from dockroll.engine.swarm import _LOG_DRIVER, SwarmEngine, _node_matches
from dockroll.errors import EngineError

__all__ = [
    "GlobalService",
    "GlobalTask",
    "IngressNode",
    "deploy_global",
    "global_tasks",
    "matching_nodes",
    "object_name",
    "remove_global",
]

_OWNER = "dev.dockroll.object-of"
_SPEC_LABEL = "dev.dockroll.spec"


@dataclass(frozen=True)
class IngressNode:
    id: str
    hostname: str
    ready: bool
    active: bool


@dataclass(frozen=True)
class GlobalService:
    """One task per matching node; ``ports`` maps each host port to the task's port."""

    name: str
    image: str
    network: str
    constraints: Sequence[str]
    ports: Mapping[int, int]
    command: Sequence[str] = ()
    configs: Mapping[str, bytes] = field(default_factory=dict)
    """Path in the task → content (a Swarm config, world-readable)."""
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    """Path in the task → content (a Swarm secret, readable by the task's user only)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    volumes: Mapping[str, str] = field(default_factory=dict)
    """Named volume → path in the task: each node has its own, kept across its tasks."""
    stop_grace: float = 5.0

    def fingerprint(self) -> str:
        """What the running service must match, or be updated."""
        parts = [
            self.image,
            self.network,
            *sorted(self.constraints),
            *(f"{h}:{t}" for h, t in sorted(self.ports.items())),
            *self.command,
            *(f"{p}={object_name(self.name, p, d)}" for p, d in sorted(self.configs.items())),
            *(f"{p}={object_name(self.name, p, d)}" for p, d in sorted(self.secrets.items())),
            *(f"volume {v}:{t}" for v, t in sorted(self.volumes.items())),
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GlobalTask:
    """A task of a global service as the manager lists it."""

    id: str
    node_id: str
    node: str
    state: str
    desired: str
    error: str
    address: str
    """Its address on the service's network; empty until it has one."""
    created: str
    current: bool = True
    """Whether it runs the service's current spec (False: a service update has not
    replaced it yet)."""

    @property
    def running(self) -> bool:
        return self.state == "running" and self.desired == "running"


def object_name(service: str, path: str, data: bytes) -> str:
    """A config's or secret's name: the service, the file and a hash of the content."""
    base = path.rstrip("/").rsplit("/", 1)[-1].replace(".", "-")[:16]
    # The service's name is in the hash too: a name cut to Swarm's 64 characters stays
    # the service's own, never shared with another environment's identical file.
    digest = hashlib.sha256(service.encode() + b"\0" + path.encode() + b"\0" + data).hexdigest()
    return f"{service[: 64 - len(base) - 14]}-{base}-{digest[:12]}"


def matching_nodes(engine: SwarmEngine, constraints: Sequence[str]) -> list[IngressNode]:
    """The Swarm's nodes that satisfy every constraint (a constraint not understood: none)."""
    with engine._calls("listing the Swarm's nodes"):
        nodes: list[dict[str, Any]] = engine.client.api.nodes()
    found = []
    for node in nodes:
        fits = [_node_matches(node, constraint) for constraint in constraints]
        if not all(fit is True for fit in fits):
            continue
        spec = node.get("Spec") or {}
        found.append(
            IngressNode(
                id=str(node.get("ID", "")),
                hostname=str((node.get("Description") or {}).get("Hostname", "")),
                ready=str((node.get("Status") or {}).get("State", "")).lower() == "ready",
                active=str(spec.get("Availability", "")).lower() == "active",
            )
        )
    return sorted(found, key=lambda n: n.hostname)


def _ensure_objects(engine: SwarmEngine, spec: GlobalService, *, secret: bool) -> list[Any]:
    files = spec.secrets if secret else spec.configs
    kind = "secret" if secret else "config"
    api = engine.client.api
    references: list[Any] = []
    for path, data in sorted(files.items()):
        name = object_name(spec.name, path, data)
        with engine._calls(f"creating Swarm {kind} {name}"):
            listed = (api.secrets if secret else api.configs)(filters={"name": name})
            found = next((o for o in listed if (o.get("Spec") or {}).get("Name") == name), None)
            if found is None:
                try:
                    created = (api.create_secret if secret else api.create_config)(
                        name, data, labels={_OWNER: spec.name}
                    )
                except docker.errors.APIError as exc:
                    if exc.status_code != 409:
                        raise
                    listed = (api.secrets if secret else api.configs)(filters={"name": name})
                    created = next(o for o in listed if (o.get("Spec") or {}).get("Name") == name)
                object_id = str(created["ID"])
            else:
                object_id = str(found["ID"])
        reference = SecretReference if secret else ConfigReference
        references.append(reference(object_id, name, filename=path, mode=0o444))
    return references


def deploy_global(engine: SwarmEngine, spec: GlobalService) -> str:
    """Create the service, or update it when it differs; ``created``/``updated``/``unchanged``."""
    wanted = spec.fingerprint()
    with engine._calls(f"inspecting service {spec.name}"):
        try:
            current: dict[str, Any] | None = engine.client.api.inspect_service(spec.name)
        except docker.errors.NotFound:
            current = None
    if current is not None:
        labels = (current.get("Spec") or {}).get("Labels") or {}
        if labels.get(_SPEC_LABEL) == wanted:
            return "unchanged"
    template = TaskTemplate(
        container_spec=ContainerSpec(
            spec.image,
            command=list(spec.command) or None,
            configs=_ensure_objects(engine, spec, secret=False) or None,
            secrets=_ensure_objects(engine, spec, secret=True) or None,
            mounts=[Mount(target, volume, type="volume") for volume, target in spec.volumes.items()]
            or None,
            stop_grace_period=int(spec.stop_grace * 1e9),
        ),
        placement=Placement(constraints=list(spec.constraints)),
        networks=[NetworkAttachmentConfig(spec.network)],
        restart_policy=RestartPolicy(condition="any", delay=int(1e9)),
        log_driver=_LOG_DRIVER,
    )
    endpoint = EndpointSpec(
        mode="dnsrr",
        ports={host: (target, "tcp", "host") for host, target in spec.ports.items()},
    )
    labels = {**spec.labels, _SPEC_LABEL: wanted}
    # One node at a time: the other ingress nodes serve while one task is replaced.
    update = UpdateConfig(parallelism=1, delay=int(2e9), failure_action="pause", order="stop-first")
    with engine._calls(f"{'updating' if current else 'creating'} service {spec.name}"):
        if current is None:
            engine.client.api.create_service(
                template,
                name=spec.name,
                labels=labels,
                mode=ServiceMode("global"),
                update_config=update,
                endpoint_spec=endpoint,
            )
            return "created"
        engine.client.api.update_service(
            str(current["ID"]),
            version=int((current.get("Version") or {}).get("Index", 0)),
            task_template=template,
            name=spec.name,
            labels=labels,
            mode=ServiceMode("global"),
            update_config=update,
            endpoint_spec=endpoint,
            fetch_current_spec=False,
        )
    return "updated"


def global_tasks(engine: SwarmEngine, name: str, network: str) -> list[GlobalTask]:
    """The service's tasks that should run or did last, newest first; none when it is gone."""
    with engine._calls(f"listing the tasks of {name}"):
        try:
            tasks: list[dict[str, Any]] = engine.client.api.tasks(filters={"service": name})
            service: dict[str, Any] = engine.client.api.inspect_service(name)
        except docker.errors.NotFound:
            return []
    wanted = _essentials((service.get("Spec") or {}).get("TaskTemplate") or {})
    nodes = engine.node_names()
    found = []
    for task in sorted(tasks, key=lambda t: str(t.get("CreatedAt", "")), reverse=True):
        status = task.get("Status") or {}
        address = ""
        for attachment in task.get("NetworksAttachments") or []:
            spec = (attachment.get("Network") or {}).get("Spec") or {}
            if spec.get("Name") == network and attachment.get("Addresses"):
                address = str(attachment["Addresses"][0]).split("/", 1)[0]
        node_id = str(task.get("NodeID", ""))
        found.append(
            GlobalTask(
                id=str(task.get("ID", "")),
                node_id=node_id,
                node=nodes.get(node_id, node_id[:12]),
                state=str(status.get("State", "")),
                desired=str(task.get("DesiredState", "")),
                error=str(status.get("Err", "")),
                address=address,
                created=str(task.get("CreatedAt", "")),
                current=_essentials(task.get("Spec") or {}) == wanted,
            )
        )
    return found


def _essentials(task_spec: Mapping[str, Any]) -> tuple[object, ...]:
    """What a router service update changes in a task's spec: image, configs, secrets
    (named by content), volumes."""
    container = task_spec.get("ContainerSpec") or {}
    return (
        str(container.get("Image", "")),
        sorted(str(c.get("ConfigName", "")) for c in container.get("Configs") or []),
        sorted(str(c.get("SecretName", "")) for c in container.get("Secrets") or []),
        sorted(str(m.get("Source", "")) for m in container.get("Mounts") or []),
    )


def prune_objects(engine: SwarmEngine, name: str) -> int:
    """Remove the configs and secrets of service ``name`` that no task uses any more."""
    api = engine.client.api
    removed = 0
    for listing, remove in ((api.configs, api.remove_config), (api.secrets, api.remove_secret)):
        with engine._calls(f"listing the Swarm objects of {name}"):
            objects = listing(filters={"label": f"{_OWNER}={name}"})
        for item in objects:
            try:
                remove(str(item["ID"]))
                removed += 1
            except docker.errors.APIError:
                continue  # still in use by a task: kept
    return removed


def remove_global(engine: SwarmEngine, name: str, *, timeout: float = 60.0) -> bool:
    """Remove the service, wait for its tasks to stop, then its configs and secrets."""
    with engine._calls(f"removing service {name}"):
        try:
            engine.client.api.remove_service(name)
            existed = True
        except docker.errors.NotFound:
            existed = False
    deadline = time.monotonic() + timeout
    while existed and time.monotonic() < deadline:
        try:
            with engine._calls(f"listing the tasks of {name}"):
                left = engine.client.api.tasks(
                    filters={"service": name, "desired-state": "running"}
                )
        except EngineError:
            break
        if not left:
            break
        time.sleep(0.25)
    # Swarm drops a removed service's tasks a moment later; objects in use are refused.
    while time.monotonic() < deadline:
        prune_objects(engine, name)
        with engine._calls(f"listing the Swarm objects of {name}"):
            if not engine.client.api.configs(filters={"label": f"{_OWNER}={name}"}):
                break
        time.sleep(0.5)
    return existed
