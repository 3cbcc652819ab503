"""The Docker Swarm adapter: app replicas as Swarm services, through a manager's engine.

An environment with a ``swarm:`` section runs on the Swarm whose manager its
``engine`` names. Each app replica the rollout starts (``<service>-<env>-<slot>-<n>``)
becomes a Swarm service of one task, so the strategies, the executor and the
router keep working per replica while Swarm places the tasks over the nodes
(placement constraints, resource limits, restart on failure; which of the
matching nodes runs a replica is the Swarm scheduler's choice) and
reschedules them when a node goes. Swarm spreads the tasks of one service, not
separate services, so a replica is kept off the nodes its environment's other
replicas run on while it is placed (see :func:`spread_exclusions`), and free
to go anywhere once placed. The services join the environment's
attachable overlay network with ``endpoint_mode: dnsrr`` (no virtual IP, so
no IPVS), and the router, a container on the manager attached to the same
overlay network, reaches each task at its own address there.

Everything that is not an app replica (locks, migration jobs, exports, the
router) stays a plain container on the manager, so locks keep their atomic
name reservation on one engine. Reads merge both: a service is reported as a
:class:`~dockroll.engine.port.ContainerInfo` whose status follows its task
(``running`` once the task runs) and whose network address is the task's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import (
    ConfigReference,
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Healthcheck,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)

from dockroll.engine.docker import DockerEngine, engine_time
from dockroll.engine.port import ContainerInfo, Health, RunRequest
from dockroll.errors import EngineError
from dockroll.labels import CONFIG_HASH, ENVIRONMENT, RELEASE, ROLE, SERVICE, SLOT

__all__ = ["SwarmEngine", "SwarmPlacement", "eligible_nodes", "spread_exclusions"]

_APP_ROLE = "app"
_POLL = 0.25
# Task states that end a task for good (Swarm may start another in its place).
_ENDED = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})
_LOG_DRIVER = DriverConfig("json-file", {"max-size": "20m", "max-file": "3"})
# Swarm secrets and configs of a replica carry the replica's name in these labels.
_SECRET_OWNER = "dev.dockroll.secret-of"
_CONFIG_OWNER = "dev.dockroll.config-of"
# Replicas that serve together once a rollout is done share these labels.
_GENERATION = (RELEASE, SLOT, CONFIG_HASH)
_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(.*?)\s*$")
# Task states once the task's node has its image.
_PULLED = frozenset({"ready", "starting", "running"})
_UPDATE_ATTEMPTS = 5


@dataclass(frozen=True)
class SwarmPlacement:
    """Where and how Swarm runs an environment's replicas."""

    constraints: Sequence[str] = ()
    """Placement constraints, e.g. ``node.role==worker`` or ``node.labels.zone==a``."""
    cpus: float | None = None
    """CPU limit per replica."""
    memory: int | None = None
    """Memory limit per replica, bytes."""
    restart_attempts: int = 0
    """Restarts of a failing task; 0: as many as it takes."""
    stop_grace: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)


class SwarmEngine(DockerEngine):
    """A Swarm manager's engine; app replicas become one-task services."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        placement: SwarmPlacement | None = None,
        timeout: float = 120,
        start_timeout: float = 120,
        certs: Path | None = None,
    ) -> None:
        super().__init__(endpoint, timeout=timeout, certs=certs)
        self.placement = placement or SwarmPlacement()
        self.start_timeout = start_timeout

    # -- what changes ----------------------------------------------------------

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        with self._calls(f"creating overlay network {name}"):
            found = self.client.api.networks(names=[name])
            if any(n.get("Name") == name for n in found):
                existing = next(n for n in found if n.get("Name") == name)
                if existing.get("Driver") != "overlay" or not existing.get("Attachable"):
                    raise EngineError(
                        f"network {name} exists on {self.endpoint} but is not an attachable "
                        "overlay network, which the Swarm's services and router need",
                        hint=f"remove it (`docker network rm {name}`) once nothing uses it",
                    )
                return
            self._check_manager()
            try:
                self.client.api.create_network(
                    name,
                    driver="overlay",
                    attachable=True,
                    labels=dict(labels),
                    check_duplicate=True,
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise

    def run(self, request: RunRequest) -> ContainerInfo:
        if request.labels.get(ROLE) != _APP_ROLE or not request.name:
            return super().run(request)
        away = self._spread_away(request)
        secrets = self._create_secrets(request.name, request.files, request.labels)
        try:
            configs = self._create_configs(request.name, request.config_files, request.labels)
        except EngineError:
            self._remove_secrets(request.name)
            raise
        spec = self._service_spec(request, secrets, away=away, configs=configs)
        with self._calls(f"creating service {request.name}"):
            try:
                self.client.api.create_service(**spec)
            except docker.errors.APIError as exc:
                self._remove_secrets(request.name)
                self._remove_configs(request.name)
                raise EngineError(
                    f"the Swarm refused service {request.name}: {exc.explanation or exc}",
                    hint="is the engine a Swarm manager? `docker node ls` there tells",
                ) from None
        if away:
            self._release_placement(request.name, away)
        return self._wait_scheduled(request.name)

    def container(self, container_id: str) -> ContainerInfo | None:
        service = self._service(container_id)
        if service is None:
            return super().container(container_id)
        return self._service_info(service)

    def containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with self._calls("listing services"):
            services = self.client.api.services(filters=filters)
        found = [self._service_info(service) for service in services]
        return found + super().containers(labels)

    def remove(self, container_id: str, *, grace: float = 10.0) -> None:
        service = self._service(container_id)
        if service is None:
            super().remove(container_id, grace=grace)
            return
        service_id = str(service["ID"])
        name = str((service.get("Spec") or {}).get("Name", ""))
        with self._calls(f"removing service {container_id[:40]}"):
            try:
                self.client.api.remove_service(service_id)
            except docker.errors.NotFound:
                return
        # Swarm stops the task with the spec's grace period; wait until it did.
        deadline = time.monotonic() + grace + 30
        while time.monotonic() < deadline:
            if not self._tasks(service_id, running_only=True):
                break
            time.sleep(_POLL)
        self._remove_secrets(name)
        self._remove_configs(name)

    def logs(
        self,
        container_id: str,
        tail: int | None = 50,
        *,
        since: datetime | None = None,
        timestamps: bool = False,
    ) -> str:
        service = self._service(container_id)
        if service is None:
            return super().logs(container_id, tail, since=since, timestamps=timestamps)
        with self._calls(f"reading logs of service {container_id[:40]}"):
            chunks = self.client.api.service_logs(
                str(service["ID"]),
                stdout=True,
                stderr=True,
                timestamps=timestamps,
                tail="all" if tail is None else tail,
                since=int(since.timestamp()) if since else 0,
            )
            return b"".join(chunks).decode("utf-8", errors="replace")

    def node_names(self) -> dict[str, str]:
        with self._calls("listing the Swarm's nodes"):
            try:
                nodes: list[dict[str, Any]] = self.client.api.nodes()
            except docker.errors.APIError as exc:
                if exc.status_code == 503:  # not (or no longer) a manager
                    return {}
                raise
        return {
            str(node["ID"]): str((node.get("Description") or {}).get("Hostname", ""))
            for node in nodes
            if node.get("ID")
        }

    def placement_nodes(self) -> list[str] | None:
        """The ids of the nodes the environment's replicas may run on (ready, ``active``,
        matching its constraints); None when a constraint cannot be read here."""
        with self._calls("listing the Swarm's nodes"):
            nodes: list[dict[str, Any]] = self.client.api.nodes()
        return eligible_nodes(nodes, self.placement.constraints)

    # -- services ----------------------------------------------------------------

    def _check_manager(self) -> None:
        info: dict[str, Any] = self.client.info()
        swarm = info.get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            state = swarm.get("LocalNodeState") or "inactive"
            raise EngineError(
                f"the engine {self.endpoint} is not a Swarm manager (swarm: {state})",
                hint="name a manager's engine in the environment's `engine:`, or drop its "
                "`swarm:` section to run plain containers",
            )

    def _create_secrets(
        self, owner: str, files: Mapping[str, bytes], labels: Mapping[str, str]
    ) -> list[SecretReference]:
        """A Swarm secret per file of replica ``owner``, mounted where the file goes.

        Names are ``<replica>-<n>`` (never derived from the content); one left over by
        a replica of the same name that went away is replaced.
        """
        if not files:
            return []
        self._remove_secrets(owner)
        keep = {key: labels[key] for key in (SERVICE, ENVIRONMENT) if key in labels}
        references = []
        for index, (path, content) in enumerate(sorted(files.items()), start=1):
            name = f"{owner}-{index}"
            with self._calls(f"creating Swarm secret {name}"):
                try:
                    created = self.client.api.create_secret(
                        name, content, labels={**keep, _SECRET_OWNER: owner}
                    )
                except docker.errors.APIError as exc:
                    # The message names the secret, never its content.
                    raise EngineError(
                        f"the Swarm refused secret {name} for {path}: "
                        f"{exc.explanation or exc.status_code}",
                        hint="is the engine a Swarm manager? `docker secret ls` there tells",
                    ) from None
            references.append(
                SecretReference(str(created["ID"]), name, filename=path, uid="0", gid="0")
            )
        return references

    def _remove_secrets(self, owner: str) -> None:
        if not owner:
            return
        with self._calls(f"removing the Swarm secrets of {owner[:40]}"):
            for secret in self.client.api.secrets(filters={"label": f"{_SECRET_OWNER}={owner}"}):
                try:
                    self.client.api.remove_secret(str(secret["ID"]))
                except docker.errors.NotFound:
                    continue

    def _create_configs(
        self, owner: str, files: Mapping[str, tuple[bytes, int]], labels: Mapping[str, str]
    ) -> list[ConfigReference]:
        """A Swarm config per config file of replica ``owner``, at its path with its mode.

        Named and labelled as the secrets are (``<replica>-<n>``, a label naming the
        replica); a leftover of a replica of the same name is replaced.
        """
        if not files:
            return []
        self._remove_configs(owner)
        keep = {key: labels[key] for key in (SERVICE, ENVIRONMENT) if key in labels}
        references = []
        for index, (path, (content, mode)) in enumerate(sorted(files.items()), start=1):
            name = f"{owner}-{index}"
            with self._calls(f"creating Swarm config {name}"):
                try:
                    created = self.client.api.create_config(
                        name, content, labels={**keep, _CONFIG_OWNER: owner}
                    )
                except docker.errors.APIError as exc:
                    self._remove_configs(owner)
                    raise EngineError(
                        f"the Swarm refused config {name} for {path}: "
                        f"{exc.explanation or exc.status_code}",
                        hint="is the engine a Swarm manager? `docker config ls` there tells",
                    ) from None
            references.append(
                ConfigReference(
                    str(created["ID"]), name, filename=path, uid="0", gid="0", mode=mode
                )
            )
        return references

    def _remove_configs(self, owner: str) -> None:
        if not owner:
            return
        with self._calls(f"removing the Swarm configs of {owner[:40]}"):
            for config in self.client.api.configs(filters={"label": f"{_CONFIG_OWNER}={owner}"}):
                try:
                    self.client.api.remove_config(str(config["ID"]))
                except docker.errors.NotFound:
                    continue

    def _service_spec(
        self,
        request: RunRequest,
        secrets: Sequence[SecretReference] = (),
        *,
        away: Sequence[str] = (),
        configs: Sequence[ConfigReference] = (),
    ) -> dict[str, Any]:
        if request.files and len(secrets) != len(request.files):
            raise EngineError(
                f"replica {request.name} needs {len(request.files)} secret files as Swarm secrets"
            )
        if request.config_files and len(configs) != len(request.config_files):
            raise EngineError(
                f"replica {request.name} needs {len(request.config_files)} config files as "
                "Swarm configs"
            )
        healthcheck = None
        if request.healthcheck is not None:
            healthcheck = Healthcheck(**request.healthcheck)
        elif request.health_interval:
            # Swarm keeps the image's test and takes the interval from here, as an engine does.
            healthcheck = Healthcheck(interval=int(request.health_interval * 1e9))
        placement = self.placement
        labels = {**placement.labels, **request.labels}
        container = ContainerSpec(
            request.image,
            command=list(request.command) if request.command else None,
            env={**request.env, **request.secret_env},
            labels=dict(request.labels),
            stop_grace_period=int(placement.stop_grace * 1e9),
            mounts=[
                Mount(m.target, m.source, type=m.kind, read_only=m.read_only)
                for m in request.mounts
            ]
            or None,
            hosts=dict(request.extra_hosts) or None,
            secrets=list(secrets) or None,
            configs=list(configs) or None,
            healthcheck=healthcheck,
        )
        # dockroll.yml's swarm: limits win over the container's own.
        resources = Resources(
            cpu_limit=int(placement.cpus * 1e9) if placement.cpus else request.nano_cpus,
            mem_limit=placement.memory or request.memory,
        )
        template = TaskTemplate(
            container_spec=container,
            resources=resources,
            restart_policy=RestartPolicy(
                condition="any", delay=1_000_000_000, max_attempts=placement.restart_attempts
            ),
            placement=Placement(constraints=[*placement.constraints, *away]),
            log_driver=_LOG_DRIVER,
            networks=[NetworkAttachmentConfig(request.network)] if request.network else None,
        )
        return {
            "task_template": template,
            "name": request.name,
            "labels": labels,
            "mode": ServiceMode("replicated", replicas=1),
            # dnsrr: no virtual IP (and no IPVS); the router addresses the task itself.
            "endpoint_spec": EndpointSpec(mode="dnsrr"),
        }

    # -- spreading an environment's replicas ---------------------------------------

    def _spread_away(self, request: RunRequest) -> list[str]:
        """The ``node.id!=…`` constraints that keep a new replica off its siblings' nodes."""
        selector = {
            key: request.labels[key] for key in (SERVICE, ENVIRONMENT) if key in request.labels
        }
        if len(selector) < 2:
            return []
        selector[ROLE] = _APP_ROLE
        filters = {"label": [f"{key}={value}" for key, value in selector.items()]}
        with self._calls("listing the environment's services and the Swarm's nodes"):
            services: list[dict[str, Any]] = self.client.api.services(filters=filters)
            services = [s for s in services if (s.get("Spec") or {}).get("Name") != request.name]
            if not services:
                return []
            tasks: list[dict[str, Any]] = self.client.api.tasks(
                filters={"service": [str(s["ID"]) for s in services], "desired-state": "running"}
            )
            nodes: list[dict[str, Any]] = self.client.api.nodes()
        labels_of = {
            str(s["ID"]): dict((s.get("Spec") or {}).get("Labels") or {}) for s in services
        }
        siblings = [
            (str(task["NodeID"]), labels_of.get(str(task.get("ServiceID", "")), {}))
            for task in tasks
            if task.get("NodeID")
        ]
        excluded = spread_exclusions(request.labels, siblings, nodes, self.placement.constraints)
        return [f"node.id!={node}" for node in excluded]

    def _release_placement(self, name: str, away: Sequence[str]) -> None:
        """Drop the spreading constraints once the replica's task has its image on its node.

        Swarm keeps a task when only its service's constraints change and its node
        still satisfies them, but compares the rest of the spec exactly: the update
        sends the spec as read, without the empty sections a read adds, and waits
        until the task has its image (``ready``), before which Swarm also compares the
        pull options. The task then keeps running where it is; later, a drain or a
        lost node may move it anywhere the environment's own constraints allow.
        """
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            service = self._service(name)
            if service is None:
                return
            states = {
                str((task.get("Status") or {}).get("State", ""))
                for task in self._tasks(str(service["ID"]))
            }
            if states & (_PULLED | _ENDED):
                break
            time.sleep(_POLL)
        for attempt in range(_UPDATE_ATTEMPTS):
            service = self._service(name)
            if service is None:
                return
            template = dict((service.get("Spec") or {}).get("TaskTemplate") or {})
            placement = dict(template.get("Placement") or {})
            constraints = list(placement.get("Constraints") or [])
            kept = [c for c in constraints if c not in away]
            if kept == constraints:
                return
            placement["Constraints"] = kept
            template["Placement"] = placement
            # An empty section read back (`Resources: {}`) would be stored as set, which
            # makes the task's spec differ from the service's and Swarm replace the task.
            template = _without_empty(template)
            try:
                with self._calls(f"updating the placement of service {name[:40]}"):
                    # The whole spec as read, not merged into the current one by the
                    # SDK, which would bring the empty sections back.
                    spec = service.get("Spec") or {}
                    self.client.api.update_service(
                        str(service["ID"]),
                        version=int((service.get("Version") or {}).get("Index", 0)),
                        task_template=template,
                        name=spec.get("Name"),
                        labels=spec.get("Labels"),
                        mode=spec.get("Mode"),
                        update_config=spec.get("UpdateConfig"),
                        rollback_config=spec.get("RollbackConfig"),
                        endpoint_spec=spec.get("EndpointSpec"),
                        fetch_current_spec=False,
                    )
                return
            except EngineError as exc:
                # another change of the service came first: read it again and retry
                if "out of sequence" not in str(exc) or attempt == _UPDATE_ATTEMPTS - 1:
                    raise EngineError(
                        f"could not drop the spreading constraints of service {name}: {exc}",
                        hint="the replica runs, but stays off the nodes named by "
                        f"`docker service inspect {name}` until it is replaced",
                    ) from None

    def _service(self, name_or_id: str) -> dict[str, Any] | None:
        with self._calls(f"inspecting service {name_or_id[:40]}"):
            try:
                service: dict[str, Any] = self.client.api.inspect_service(name_or_id)
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                # a plain engine (not in a Swarm) answers 503 for service calls
                if exc.status_code == 503:
                    return None
                raise
        return service

    def _tasks(self, service_id: str, *, running_only: bool = False) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"service": service_id}
        if running_only:
            filters["desired-state"] = "running"
        with self._calls(f"listing tasks of {service_id[:12]}"):
            try:
                tasks: list[dict[str, Any]] = self.client.api.tasks(filters=filters)
            except docker.errors.NotFound:  # removed meanwhile: it has no task left
                return []
        return tasks

    def _service_info(self, service: Mapping[str, Any]) -> ContainerInfo:
        spec = service.get("Spec") or {}
        tasks = sorted(
            self._tasks(str(service["ID"])),
            key=lambda task: str(task.get("CreatedAt", "")),
            reverse=True,
        )
        current = next(
            (t for t in tasks if t.get("DesiredState") == "running"), tasks[0] if tasks else None
        )
        state = str(((current or {}).get("Status") or {}).get("State", "pending"))
        status = "running" if state == "running" else ("exited" if state in _ENDED else "created")
        networks: dict[str, str] = {}
        for attachment in (current or {}).get("NetworksAttachments") or []:
            name = str(((attachment.get("Network") or {}).get("Spec") or {}).get("Name", ""))
            addresses = attachment.get("Addresses") or []
            if name and addresses:
                networks[name] = str(addresses[0]).split("/", 1)[0]
        container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        exit_code = (((current or {}).get("Status") or {}).get("ContainerStatus") or {}).get(
            "ExitCode"
        )
        return ContainerInfo(
            id=str(service["ID"]),
            name=str(spec.get("Name", "")),
            image=str(container_spec.get("Image", "")),
            status=status,
            health=Health.NONE,
            exit_code=int(exit_code) if status == "exited" and exit_code is not None else None,
            ports={},
            labels=dict(spec.get("Labels") or {}),
            networks=networks,
            created=engine_time(str(service.get("CreatedAt", ""))),
            node=str((current or {}).get("NodeID", "")),
        )

    def _wait_scheduled(self, name: str) -> ContainerInfo:
        """The new service once its task got a network address (or ended)."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            info = self.container(name)
            if info is None:
                raise EngineError(f"service {name} vanished right after it was created")
            if info.networks or info.status == "exited":
                return info
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"the Swarm did not schedule service {name} within {self.start_timeout:g}s",
                    hint="`docker service ps --no-trunc "
                    f"{name}` on the manager says why (no node matching the constraints, "
                    "an image the nodes cannot pull, …)",
                )
            time.sleep(_POLL)


def spread_exclusions(
    labels: Mapping[str, str],
    siblings: Sequence[tuple[str, Mapping[str, str]]],
    nodes: Sequence[Mapping[str, Any]],
    constraints: Sequence[str],
) -> list[str]:
    """The nodes a new replica with ``labels`` is kept off, so replicas spread.

    ``siblings`` are the node and labels of each running task of the same
    environment's other replicas. Of the nodes the replica may run on (ready,
    active, matching ``constraints``), those that run more of its siblings than
    the least loaded one are left out: first counting the siblings of its own
    generation (release, slot and settings: the replicas that serve together once
    the rollout is done), then all of them. At least one node is always left; when
    a constraint cannot be read here, or no node is eligible, nothing is left out.
    """
    eligible = eligible_nodes(nodes, constraints)
    if eligible is None or len(eligible) < 2:
        return []
    generation = tuple(labels.get(key, "") for key in _GENERATION)

    def load(node_id: str) -> tuple[int, int]:
        here = [sibling for node, sibling in siblings if node == node_id]
        same = sum(tuple(s.get(key, "") for key in _GENERATION) == generation for s in here)
        return same, len(here)

    least = min(load(node_id) for node_id in eligible)
    return sorted(node_id for node_id in eligible if load(node_id) > least)


def eligible_nodes(
    nodes: Sequence[Mapping[str, Any]], constraints: Sequence[str]
) -> list[str] | None:
    """The ids of the ``nodes`` a replica may run on: ready, ``active`` and matching
    ``constraints``; None when a constraint cannot be read here."""
    eligible: list[str] = []
    for node in nodes:
        spec = node.get("Spec") or {}
        ready = str((node.get("Status") or {}).get("State", "")).lower() == "ready"
        active = str(spec.get("Availability", "")).lower() == "active"
        if not (node.get("ID") and ready and active):
            continue
        fits = [_node_matches(node, constraint) for constraint in constraints]
        if any(fit is None for fit in fits):
            return None
        if all(fits):
            eligible.append(str(node["ID"]))
    return eligible


def _without_empty(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` without its empty mappings, at any depth."""
    kept: dict[str, Any] = {}
    for key, item in value.items():
        inner = _without_empty(item) if isinstance(item, dict) else item
        if isinstance(inner, dict) and not inner:
            continue
        kept[key] = inner
    return kept


def _node_matches(node: Mapping[str, Any], constraint: str) -> bool | None:
    """Whether ``node`` satisfies a Swarm placement constraint; None when it cannot tell.

    As Swarm reads them: values compare without regard to case, and a node label the
    node lacks satisfies ``!=`` only.
    """
    parsed = _CONSTRAINT.match(constraint)
    if parsed is None:
        return None
    key, operator, expected = parsed.group(1), parsed.group(2), parsed.group(3)
    spec = node.get("Spec") or {}
    description = node.get("Description") or {}
    platform = description.get("Platform") or {}
    lowered = key.lower()
    value: Any
    if lowered == "node.id":
        value = node.get("ID")
    elif lowered == "node.hostname":
        value = description.get("Hostname")
    elif lowered == "node.role":
        value = spec.get("Role")
    elif lowered == "node.platform.os":
        value = platform.get("OS")
    elif lowered == "node.platform.arch":
        value = platform.get("Architecture")
    elif lowered.startswith("node.labels."):
        value = (spec.get("Labels") or {}).get(key[len("node.labels.") :])
    elif lowered.startswith("engine.labels."):
        engine = description.get("Engine") or {}
        value = (engine.get("Labels") or {}).get(key[len("engine.labels.") :])
    else:
        return None
    equal = value is not None and str(value).casefold() == expected.casefold()
    return equal if operator == "==" else not equal
