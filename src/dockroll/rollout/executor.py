"""The one executor: performs a plan's steps, records each, undoes a failed rollout.

Every rollout is a ledger deployment. Step 0 (``plan``) stores the whole plan,
so an interrupted rollout can be resumed or undone by any later process: each
step is recorded *running* before it starts and *succeeded* (or *failed*) after.
Steps are written to be safe to repeat, which is what makes resuming after a
crash at any point correct.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dockroll import labels
from dockroll.config import Config, EnvironmentConfig
from dockroll.container_settings import ContainerSpec, resolve_container, run_request
from dockroll.engine.port import ContainerInfo, Engine, Health, RunRequest
from dockroll.errors import DockrollError, EngineError, LockLost, RolloutError, RouterError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.hooks import HookPoint, run_hook
from dockroll.ledger import (
    AuditEvent,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    Release,
    StepStatus,
)
from dockroll.refs import Digest
from dockroll.rollout.cost import measure_cost
from dockroll.rollout.plan import (
    AddServers,
    AwaitHealthy,
    Drain,
    Observed,
    Pause,
    Plan,
    Replica,
    RunJob,
    SetWeights,
    Start,
    Step,
    Stop,
    Verify,
    Watch,
    admits_traffic,
    split_weights,
)
from dockroll.rollout.samples import SampleRecorder
from dockroll.router.port import (
    MAX_WEIGHT,
    BackendServer,
    Router,
    ServerHealth,
    ServerState,
    weights_for_shares,
)

if TYPE_CHECKING:
    from dockroll.analysis import Analysis, Decision, Providers, StepEnd
    from dockroll.ledger import Ledger

__all__ = [
    "RolloutOutcome",
    "RolloutRunner",
    "network_name",
    "observe",
    "pinned_image",
]

FULL_WEIGHT = 100
_PLAN_STEP = "plan"


class _ManualPause(Exception):
    """The rollout holds for a person: `dockroll resume`/`promote-canary` or `dockroll abort`."""

    def __init__(self, index: int, percent: int | None, why: str = "") -> None:
        super().__init__(f"paused at {percent}%")
        self.index = index
        self.percent = percent
        self.why = why


@dataclass
class _Window:
    """When an observed step ends: its planned end, moved on while a canary step is extended."""

    end: float
    index: int
    kind: str
    percent: int | None
    where: str
    judged: Analysis | None
    """The analysis whose evidence a canary step needs before it ends; None: none needed."""
    planned_end: float = field(init=False)
    extending: bool = False
    evidence: StepEnd | None = None
    """How the step ended (or why it is being extended), for the step record."""
    taken_out: list[str] = field(default_factory=list)
    """Old replicas taken out of rotation during the step."""

    def __post_init__(self) -> None:
        self.planned_end = self.end


class AnalysisFailed(DockrollError):
    """The analysis judged the new release bad; carries the numbers for the ledger."""

    def __init__(self, message: str, summary: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.summary = dict(summary)


@dataclass(frozen=True)
class RolloutOutcome:
    deployment: Deployment
    plan: Plan
    status: str
    """succeeded, paused, rolled_back or aborted."""
    seconds: float
    message: str = ""
    paused_at: int | None = None
    """The traffic share (percent) of a paused canary."""


def network_name(service: str, environment: str) -> str:
    return f"dockroll-{service}-{environment}"


def pinned_image(release: Release, registry: str | None = None) -> str:
    """``registry/repository@digest``: containers run by digest, never by a movable tag.

    ``registry`` replaces the release's registry address (an environment's
    ``registry:``, the address its engine reaches the same registry at).
    """
    ref = release.ref.with_digest(release.digest)
    return str(dataclasses.replace(ref, registry=registry) if registry else ref)


def observe(engine: Engine, router: Router | None, service: str, environment: str) -> Observed:
    """The environment's running app replicas from their labels, with router weights."""
    weights = {server.name: server.weight for server in router.servers()} if router else {}
    replicas = []
    for info in engine.containers(labels.selector(service, environment)):
        if not info.running:
            continue
        replicas.append(
            Replica(
                name=info.name,
                version=info.labels.get(labels.VERSION, ""),
                digest=Digest(info.labels.get(labels.DIGEST, "")),
                slot=info.labels.get(labels.SLOT, ""),
                weight=weights.get(info.name),
                health=info.health,
                image=info.image,
            )
        )
    return Observed(tuple(sorted(replicas, key=lambda r: r.name)))


# -- plan (de)serialisation ---------------------------------------------------------

_STEP_TYPES: dict[str, type[Any]] = {
    "start": Start,
    "await-healthy": AwaitHealthy,
    "add-servers": AddServers,
    "set-weights": SetWeights,
    "drain": Drain,
    "stop": Stop,
    "run-job": RunJob,
    "verify": Verify,
    "pause": Pause,
    "watch": Watch,
}


def _step_json(step: Step) -> dict[str, Any]:
    data = asdict(step)
    for key, value in data.items():
        if isinstance(value, tuple):
            data[key] = list(value)
    return data


def _step_from_json(data: Mapping[str, Any]) -> Step:
    kind = str(data["kind"])
    fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k != "kind"}
    step: Step = _STEP_TYPES[kind](**fields)
    return step


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "strategy": plan.strategy.value,
        "steps": [_step_json(step) for step in plan.steps],
        "new": list(plan.new),
        "old": list(plan.old),
        "standby": list(plan.standby),
        "note": plan.note,
    }


def _plan_from_json(data: Mapping[str, Any]) -> Plan:
    from dockroll.config import Strategy  # noqa: PLC0415 - only when resuming

    return Plan(
        strategy=Strategy(data["strategy"]),
        steps=tuple(_step_from_json(step) for step in data["steps"]),
        new=tuple(data["new"]),
        old=tuple(data["old"]),
        standby=tuple(data.get("standby", ())),
        note=str(data.get("note", "")),
    )


# -- the runner ---------------------------------------------------------------------


@dataclass
class RolloutRunner:
    """Performs rollouts of one service into one environment."""

    config: Config
    environment: str
    engine: Engine
    router: Router
    ledger: Ledger
    progress: ProgressCallback = discard
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    heartbeat: Callable[[], None] = lambda: None
    """Renews the environment's lock; called at every step and every tick of a wait.
    Raises :class:`LockLost` when the lock is no longer this rollout's."""
    _containers: dict[str, ContainerInfo] = field(default_factory=dict, init=False)
    _plan: Plan | None = field(default=None, init=False)
    _deployment: Deployment | None = field(default=None, init=False)
    _traffic_started: bool = field(default=False, init=False)
    _answered_pauses: frozenset[int] = field(default_factory=frozenset, init=False)
    _out_of_rotation: set[str] = field(default_factory=set, init=False)
    """Old replicas taken out of rotation for failing their checks: no step gives them weight."""
    _container_spec: ContainerSpec | None = field(default=None, init=False)

    @property
    def env(self) -> EnvironmentConfig:
        return self.config.environment(self.environment)

    @property
    def network(self) -> str:
        return network_name(self.config.service, self.environment)

    def _say(self, message: str) -> None:
        self.progress(Progress("deploy", message))

    # -- entry points -------------------------------------------------------------

    def start(
        self,
        plan: Plan,
        release: Release,
        *,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
        reason: str | None = None,
    ) -> RolloutOutcome:
        """Record a new deployment of ``release`` with ``plan`` and perform it."""
        deployment = self.ledger.start_deployment(
            release, self.environment, strategy=plan.strategy.value, kind=kind, reason=reason
        )
        self.ledger.record_step(
            deployment,
            0,
            _PLAN_STEP,
            StepStatus.SUCCEEDED,
            detail={"plan": _plan_json(plan), "image": pinned_image(release, self.env.registry)},
        )
        for index, step in enumerate(plan.steps, start=1):
            self.ledger.record_step(deployment, index, step.kind, StepStatus.PENDING)
        return self._run(deployment, plan, release, first=1)

    def resume(
        self, deployment: Deployment, release: Release, *, skip_pauses: bool = False
    ) -> RolloutOutcome:
        """Continue an interrupted or paused rollout from its first unfinished step."""
        plan = self.stored_plan(deployment)
        first = 1
        for recorded in sorted(deployment.steps, key=lambda s: s.index):
            if recorded.index == 0:
                continue
            if recorded.status in (StepStatus.SUCCEEDED, StepStatus.SKIPPED):
                first = recorded.index + 1
                continue
            if recorded.kind == "pause" and recorded.status is StepStatus.RUNNING:
                # Resuming a paused canary is the promotion to its next step.
                self.ledger.record_step(deployment, recorded.index, "pause", StepStatus.SUCCEEDED)
                first = recorded.index + 1
                continue
            break
        return self._run(deployment, plan, release, first=first, skip_pauses=skip_pauses)

    def abort(self, deployment: Deployment, reason: str) -> RolloutOutcome:
        """Undo an unfinished rollout: the previous release serves again."""
        plan = self.stored_plan(deployment)
        started = self.clock()
        measure_cost(self.ledger, self.router, deployment.id, plan.new)
        self._compensate(deployment, plan)
        finished = self.ledger.finish_deployment(
            deployment, DeploymentStatus.ABORTED, message=reason
        )
        return RolloutOutcome(finished, plan, "aborted", self.clock() - started, reason)

    def stored_plan(self, deployment: Deployment) -> Plan:
        step0 = next((s for s in deployment.steps if s.index == 0), None)
        if step0 is None or "plan" not in step0.detail:
            raise DockrollError(
                f"deployment {deployment.id} has no recorded plan; it cannot be resumed",
                hint="abort it with `dockroll abort` and deploy again",
            )
        return _plan_from_json(step0.detail["plan"])

    # -- performing -------------------------------------------------------------

    def _run(
        self,
        deployment: Deployment,
        plan: Plan,
        release: Release,
        *,
        first: int,
        skip_pauses: bool = False,
    ) -> RolloutOutcome:
        started = self.clock()
        image = pinned_image(release, self.env.registry)
        index = 0  # no step yet: a failing pre-rollout hook marks none of them
        self._plan, self._deployment = plan, deployment
        # A pause request made before this run (re)started was answered by the pause it
        # caused; resuming consumes it, or the rollout would stop again at its next step.
        self._answered_pauses = frozenset(event.id for event in self._pause_requests())
        self._out_of_rotation = set()
        # Weight already given to new replicas before an interruption counts as traffic.
        self._traffic_started = any(
            isinstance(step, SetWeights) and any(step.weights.get(n) for n in plan.new)
            for step in plan.steps[: first - 1]
        )
        try:
            if first == 1:
                self._hooks(HookPoint.PRE_ROLLOUT, release)
            for index, step in enumerate(plan.steps, start=1):
                if index < first:
                    continue
                if isinstance(step, Pause | Watch) and skip_pauses:
                    self.ledger.record_step(deployment, index, step.kind, StepStatus.SKIPPED)
                    continue
                self.heartbeat()
                self.ledger.record_step(deployment, index, step.kind, StepStatus.RUNNING)
                if (
                    isinstance(step, SetWeights)
                    and not self._traffic_started
                    and any(step.weights.get(name) for name in plan.new)
                ):
                    target = next(name for name in plan.new if step.weights.get(name))
                    with self._target_url(target) as url:
                        self._hooks(HookPoint.PRE_TRAFFIC, release, {"target_url": url})
                    self._traffic_started = True
                detail = self._perform(step, index, release, image) or {}
                self.ledger.record_step(
                    deployment, index, step.kind, StepStatus.SUCCEEDED, detail=detail
                )
        except _ManualPause as paused:
            where = f"{paused.percent}%" if paused.percent is not None else "full traffic"
            self._say(
                f"paused at {where} on the new release{': ' + paused.why if paused.why else ''}; "
                "`dockroll resume` (or promote-canary) goes on, `dockroll abort` goes back"
            )
            return RolloutOutcome(
                self.ledger.deployment(deployment.id),
                plan,
                "paused",
                self.clock() - started,
                paused_at=paused.percent,
            )
        except LockLost as lost:
            # Whoever holds the lock now owns the environment: touching the router or the
            # replicas would fight them. Their next command settles this deployment.
            self._say(f"stopped at step {index}: {lost}")
            raise
        except (DockrollError, OSError) as exc:
            message = str(exc)
            finished = self._roll_back(deployment, plan, release, index, exc)
            before = (
                "the previous release keeps serving"
                if plan.old
                else "nothing ran here before, so nothing serves now"
            )
            raise RolloutError(
                f"the rollout of {release.version} to {self.environment} failed and was "
                f"rolled back; {before}.\n  cause: {message}",
                hint=f"`dockroll history --env {self.environment}` shows every step "
                f"(deployment {finished.id})",
            ) from exc
        except (Exception, KeyboardInterrupt) as exc:
            # An HTTP client, Docker SDK or database error (or Ctrl-C) must not leave traffic
            # split either. Other BaseExceptions (SystemExit, a killed process) are left to
            # `dockroll resume`/`abort`, as the rollout may no longer be able to act.
            self._roll_back(deployment, plan, release, index, exc)
            raise
        finished = self.ledger.finish_deployment(deployment, DeploymentStatus.SUCCEEDED)
        self._hooks_quietly(HookPoint.POST_ROLLOUT, release)
        return RolloutOutcome(finished, plan, "succeeded", self.clock() - started, plan.note)

    def _roll_back(
        self, deployment: Deployment, plan: Plan, release: Release, index: int, exc: BaseException
    ) -> Deployment:
        """Mark step ``index`` failed, bring the previous release back and close the deployment."""
        message = str(exc) or type(exc).__name__
        failed_detail: dict[str, Any] = {"error": message}
        if isinstance(exc, AnalysisFailed):
            failed_detail["analysis"] = exc.summary
        if index >= 1:
            self.ledger.record_step(
                deployment, index, plan.steps[index - 1].kind, StepStatus.FAILED,
                detail=failed_detail,
            )  # fmt: skip
            self._say(f"step {index} ({plan.steps[index - 1].kind}) failed; rolling back")
        measure_cost(self.ledger, self.router, deployment.id, plan.new)
        self._compensate(deployment, plan)
        self._hooks_quietly(HookPoint.ROLLBACK, release, {"reason": message})
        return self.ledger.finish_deployment(
            deployment, DeploymentStatus.ROLLED_BACK, message=message
        )

    def _perform(
        self, step: Step, index: int, release: Release, image: str
    ) -> dict[str, Any] | None:
        match step:
            case Start(names=names, slot=slot):
                for name in names:
                    self._start(name, slot, release, image)
                self._say(f"started {', '.join(names)}")
            case AwaitHealthy(names=names):
                for name in names:
                    self._await_healthy(name)
                self._say(f"healthy: {', '.join(names)}")
            case AddServers(names=names):
                for name in names:
                    self._add_server(name)
                self._say(f"in the router (weight 0, checked): {', '.join(names)}")
            case SetWeights(weights=weights, percent=percent):
                weights = self._in_rotation(weights)
                self.router.set_weights(weights)
                shown = f"{percent}% to the new release" if percent is not None else "weights set"
                self._say(f"{shown}: {dict(weights)}")
                return {"weights": dict(weights)}
            case Drain(names=names):
                for name in names:
                    self._drain(name)
                self._say(f"drained {', '.join(names)}")
            case Stop(names=names):
                for name in names:
                    self._stop(name)
                self._say(f"stopped {', '.join(names)}")
            case RunJob(command=command):
                return self._run_job(command, image)
            case Verify(command=command, name=name):
                return self._verify(command, name)
            case Pause(seconds=seconds, percent=percent):
                if seconds is None:
                    raise _ManualPause(index, percent)
                return self._observe(index, seconds, percent=percent, early_pass=True)
            case Watch(seconds=seconds):
                return self._observe(index, seconds, percent=None, early_pass=False)
        return None

    # -- steps --------------------------------------------------------------------

    def _app_labels(self, release: Release, slot: str, name: str) -> dict[str, str]:
        return {
            labels.SERVICE: self.config.service,
            labels.ENVIRONMENT: self.environment,
            labels.ROLE: "app",
            labels.RELEASE: str(release.id),
            labels.VERSION: release.version,
            labels.DIGEST: release.digest,
            labels.GIT_SHA: release.git_sha or "",
            labels.SLOT: slot,
            labels.CONFIG_HASH: self._spec().config_hash,
            labels.STARTED: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def _spec(self) -> ContainerSpec:
        """The environment's container settings, env files and secrets read once per run."""
        if self._container_spec is None:
            self._container_spec = resolve_container(self.config, self.environment)
        return self._container_spec

    def _request(
        self, image: str, *, name: str | None, labels_: Mapping[str, str], job: bool = False
    ) -> RunRequest:
        spec = self._spec()
        return run_request(
            spec,
            image,
            name=name,
            labels=labels_,
            network=self.network,
            service=self.config.service,
            environment=self.environment,
            job=job,
        )

    def _find(self, name: str) -> ContainerInfo | None:
        return self.engine.container(name)

    def _start(self, name: str, slot: str, release: Release, image: str) -> None:
        existing = self._find(name)
        if existing is not None:
            if existing.running and existing.labels.get(labels.DIGEST) == release.digest:
                return  # started before an interruption: keep it
            self.engine.remove(existing.id, grace=1)
        # The image's own HEALTHCHECK interval (or the configured one): a replica lives
        # long, and a fast interval would run the check command twice a second all along.
        self.engine.run(
            self._request(image, name=name, labels_=self._app_labels(release, slot, name))
        )

    def _await_healthy(self, name: str) -> None:
        deadline = self.clock() + self.config.health.start_timeout
        # The router's readiness check (AddServers) gates traffic. The image's HEALTHCHECK,
        # when used, vetoes: "unhealthy" fails the replica at once. While it is still
        # "starting" the router's check decides, unless there is no HTTP probe to ask.
        docker_check = self.config.health.use_docker_healthcheck or not self.config.health.path
        while True:
            self.heartbeat()
            info = self._find(name)
            if info is None or info.status in ("exited", "dead"):
                logs = self.engine.logs(name, tail=20) if info else ""
                raise EngineError(
                    f"{name} stopped during start (exit code {info.exit_code if info else '?'})"
                    + (f"; last log lines:\n{logs}" if logs else "")
                )
            health = info.health if docker_check else Health.NONE
            if health is Health.UNHEALTHY:
                raise EngineError(f"{name} reports unhealthy ({self.engine.logs(name, tail=5)})")
            if info.running and admits_traffic(health, self.config.health):
                return
            if self.clock() >= deadline:
                raise EngineError(
                    f"{name} did not become healthy within {self.config.health.start_timeout:g}s",
                    hint="raise health.start_timeout in dockroll.yml if it is just slow",
                )
            self.sleep(self.config.health.interval)

    def _address(self, name: str) -> str:
        info = self._find(name)
        address = info.networks.get(self.network) if info else None
        if not address:
            raise EngineError(f"{name} has no address on network {self.network}")
        return address

    def _add_server(self, name: str) -> None:
        known = next((s for s in self.router.servers() if s.name == name), None)
        if known is not None and not _fully_added(known):
            # An interrupted run added it but never finished enabling it and its check:
            # it would stay in maintenance (or unchecked) behind the weight given later.
            self._say(f"{name} was left half added to the router; adding it again")
            self.router.remove_server(name)
            known = None
        if known is None:
            try:
                self.router.add_server(
                    name, self._address(name), self.config.container.port, weight=0, check=True
                )
            except RouterError:
                # A router recreated meanwhile may have been given the replica back
                # with the others; it is the one this run started, so carry on with it.
                if not any(s.name == name and _fully_added(s) for s in self.router.servers()):
                    raise
                self._say(f"{name} was put back into the recreated router meanwhile")
        self.router.wait_healthy(name, timeout=self.config.health.start_timeout)

    def _drain(self, name: str) -> None:
        if name not in {server.name for server in self.router.servers()}:
            return
        self.router.drain(name)
        try:
            self.router.wait_drained(name, timeout=self.env.drain_timeout)
        except DockrollError:
            self._say(f"{name} still had requests after {self.env.drain_timeout:g}s; stopping it")

    def _stop(self, name: str) -> None:
        if name in {server.name for server in self.router.servers()}:
            self.router.remove_server(name)
        info = self._find(name)
        if info is not None:
            self.engine.remove(info.id, grace=self.config.container.stop_grace)

    def _run_job(self, command: Sequence[str], image: str) -> dict[str, Any]:
        migration = self.env.migrate
        timeout = migration.timeout if migration else 300.0
        extra_env = migration.env if migration else {}
        self._say(f"running {' '.join(command)} from the new image")
        holding = migration is not None and migration.hold
        if holding and migration is not None:
            self._say(f"holding new requests at the router (at most {migration.hold_max:g}s)")
            self.router.hold(self.engine.now() + timedelta(seconds=migration.hold_max))
        request = self._request(
            image,
            name=None,
            labels_=labels.selector(self.config.service, self.environment, "job"),
            job=True,
        )
        try:
            result = self.engine.run_job(
                replace(request, command=list(command), env={**request.env, **extra_env}),
                timeout=timeout,
            )
        finally:
            if holding:
                self.router.release()
                self._say("released the held requests")
        if result.exit_code != 0:
            raise EngineError(
                f"the migration `{' '.join(command)}` exited {result.exit_code}; "
                f"nothing else was changed. Its last lines:\n{result.logs.rstrip()}"
            )
        return {"exit_code": result.exit_code, "seconds": round(result.seconds, 2)}

    @contextlib.contextmanager
    def _target_url(self, name: str) -> Iterator[str]:
        """A URL of replica ``name`` that commands on this machine can reach, while open.

        A replica on a remote host's network is reached through an ssh tunnel
        (``ssh://`` engines) or a forward through the router container over the
        engine connection (any other remote engine), open for the command only.
        """
        address, port = self._address(name), self.config.container.port
        endpoint = self.engine.endpoint
        if not endpoint.startswith(("ssh://", "tcp://", "https://")):
            yield f"http://{address}:{port}"  # a local engine: its networks are reachable here
            return
        if endpoint.startswith("ssh://"):
            from dockroll.engine.ssh import SshTunnel  # noqa: PLC0415

            with SshTunnel(endpoint, address, port) as tunnel:
                yield tunnel.url
            return
        # Any other remote engine: through the router container, over the engine connection.
        from dockroll.router.transport import ExecForward  # noqa: PLC0415

        container = getattr(self.router, "container_name", None)
        if not isinstance(container, str):
            raise EngineError(f"{name} runs on {endpoint}, which this machine cannot reach")
        with ExecForward(self.engine, container, address, port) as forward:
            yield forward.url

    def _verify(self, command: Sequence[str], name: str) -> dict[str, Any]:
        self._say(f"verifying {name} with {' '.join(command)}")
        with self._target_url(name) as url:
            try:
                done = subprocess.run(
                    list(command),
                    env={**os.environ, "TARGET_URL": url},
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise EngineError(f"the verification command could not run: {exc}") from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-2000:]
            raise EngineError(
                f"verification `{' '.join(command)}` failed (exit {done.returncode}) against "
                f"{url}:\n{output}"
            )
        return {"verified": url}

    def _observe(
        self, index: int, seconds: float, *, percent: int | None, early_pass: bool
    ) -> dict[str, Any]:
        """Hold the traffic split for ``seconds`` while health checks and the analysis run.

        A failing check raises (the rollout rolls back); the analysis may also
        end a canary step early when the evidence is strong, or hold the
        rollout for a person (no-data policy ``pause``). `dockroll pause`
        from anywhere holds it too. A canary step that is still undecided when
        its time is up never ends as a pass: see :meth:`_extended`.
        """
        where = f"{percent}% on the new release" if percent is not None else "the full rollout"
        settings = self.env.analysis
        analysis: Analysis | None = None
        providers: Providers | None = None
        in_router = {server.name for server in self.router.servers()}
        if settings is not None and self._plan is not None:
            # The providers bring httpx: a rollout without analysis never loads them.
            from dockroll.analysis import (  # noqa: PLC0415
                BASELINE,
                CANARY,
                Action,
                Analysis,
                Ending,
                providers_for,
            )

            canary = tuple(name for name in self._plan.new if name in in_router)
            baseline = tuple(name for name in self._plan.old if name in in_router)
            providers = providers_for(settings, self.router)
            analysis = Analysis(settings, providers, {CANARY: canary, BASELINE: baseline})
            analysis.on_tick = self._sample_recorder(index, percent, analysis)
        interval = settings.interval if settings is not None else 0.5
        what = "analysing" if analysis else "watching health"
        self._say(f"{what} at {where} for {seconds:g}s")
        judged = analysis if early_pass else None
        kind = Pause.kind if early_pass else Watch.kind
        window = _Window(self.clock() + seconds, index, kind, percent, where, judged)
        decision: Decision | None = None
        try:
            while self.clock() < window.end or self._extended(window):
                self.heartbeat()
                self._health_veto(in_router, window)
                if self._pause_requested():
                    raise _ManualPause(index, percent, "paused by `dockroll pause`")
                if analysis is not None:
                    decision = analysis.tick(self.clock())
                    if decision.action is Action.FAIL:
                        summary = analysis.summary().as_dict()
                        raise AnalysisFailed(
                            f"analysis failed at {where}: {decision.reason}", summary
                        )
                    if decision.action is Action.PAUSE:
                        raise _ManualPause(index, percent, decision.reason)
                    if decision.action is Action.PASS and early_pass:
                        self._say(f"analysis passed at {where}: {decision.reason}")
                        break
                self.sleep(min(interval, max(0.0, window.end - self.clock())))
        finally:
            if providers is not None:
                providers.close()
        detail: dict[str, Any] = {}
        if window.taken_out:
            detail["out_of_rotation"] = sorted(window.taken_out)
        if analysis is not None:
            detail["analysis"] = analysis.summary().as_dict()
            if window.evidence is not None:
                if window.evidence.ending is Ending.EXTEND:  # it passed while extended
                    window.evidence = analysis.step_end(self.clock() - window.planned_end)
                detail["evidence"] = window.evidence.as_dict()
        return detail

    def _sample_recorder(
        self, index: int, percent: int | None, analysis: Analysis
    ) -> Callable[[Decision, float], None] | None:
        """Stores each tick of the step's analysis in the ledger (see rollout/samples.py)."""
        if self._deployment is None:
            return None
        recorder = SampleRecorder(self.ledger, self._deployment.id, index, percent, self.router)
        return lambda decision, now: recorder.record(analysis, decision, now)

    def _health_veto(self, watched: set[str], window: _Window) -> None:
        """Fail the rollout when one of the new release's weighted replicas fails its checks.

        Only the new release can veto itself. An old replica failing the router's
        checks says nothing about the new one: it is taken out of rotation (its share
        goes to the other old replicas, so the canary keeps its planned share) and
        reported; with no other old replica to take its share it keeps its weight (the
        router passes it by while it is down). The step's record lists those taken out.
        """
        where = window.where
        servers = self.router.servers()
        new = set(self._plan.new) if self._plan is not None else set()
        sick = [
            server
            for server in servers
            if server.name in watched and server.weight and server.health is ServerHealth.DOWN
        ]
        for server in sick:
            if server.name in new:
                version = self._deployment.version if self._deployment is not None else "?"
                raise EngineError(
                    f"{server.name} of the new release ({version}) failed its health checks "
                    f"at {where}"
                )
        for server in sick:
            if server.name in self._out_of_rotation:
                continue
            self._out_of_rotation.add(server.name)
            weights = {s.name: s.weight for s in servers}
            kept = self._in_rotation(weights)
            if kept == weights:
                self._out_of_rotation.discard(server.name)  # no one to take its share
                self._say(
                    f"{server.name} of the previous release failed its health checks at "
                    f"{where}; no other replica of it can take its share, so it keeps its "
                    "weight (the router passes it by while it is down); the rollout goes on"
                )
                continue
            self.router.set_weights({n: w for n, w in kept.items() if w != weights[n]})
            servers = self.router.servers()
            window.taken_out.append(server.name)
            self._record_step_detail(window, {"out_of_rotation": sorted(window.taken_out)})
            self._say(
                f"{server.name} of the previous release failed its health checks at {where}; "
                "took it out of rotation (its share goes to the other old replicas) and the "
                "rollout goes on"
            )

    def _in_rotation(self, weights: Mapping[str, int]) -> dict[str, int]:
        """``weights`` with the share of old replicas out of rotation moved to the other old ones.

        Unchanged when no other old replica has weight: the router must never point at
        nothing, and a canary must not take the old release's whole share by accident.
        """
        out = [n for n in self._out_of_rotation if weights.get(n)]
        old = set(self._plan.old) if self._plan is not None else set()
        keep = {n: w for n, w in weights.items() if w and n in old and n not in out}
        if not out or not keep:
            return dict(weights)
        shares = {n: float(w) for n, w in weights.items() if w and n not in out}
        moved, base = sum(weights[n] for n in out), sum(keep.values())
        for name, weight in keep.items():
            shares[name] += moved * weight / base
        total = min(MAX_WEIGHT, sum(weights.values()))
        return {**weights, **weights_for_shares(shares, total=total), **dict.fromkeys(out, 0)}

    def _extended(self, window: _Window) -> bool:
        """A canary step's time is up: extend it for a minimum sample, or end it.

        Undecided at its end, a step is no evidence: it goes on while it has too few
        canary requests (up to ``max_extension``); then the ``no_data`` policy rolls
        back, holds for a person, or goes on without a pass, saying so.
        """
        analysis = window.judged
        if analysis is None:
            return False  # no analysis, or a watch window (its end promotes nothing)
        from dockroll.analysis import Ending  # noqa: PLC0415 - loaded with the analysis

        settings = analysis.settings
        now = self.clock()
        evidence = analysis.step_end(extended=now - window.planned_end)
        window.evidence = evidence
        where = window.where
        if evidence.ending is Ending.EXTEND:
            left = window.planned_end + settings.max_extension - now
            window.end = now + min(settings.interval, left)
            if not window.extending:
                window.extending = True
                self._say(
                    f"insufficient data, extending the step at {where}: "
                    f"{evidence.canary_requests:g} of the {evidence.min_sample} canary requests "
                    f"needed (for up to {settings.max_extension:g}s)"
                )
                self._record_step_detail(window, {"evidence": evidence.as_dict()})
            return True
        if evidence.ending is Ending.FAIL:
            summary = {**analysis.summary().as_dict(), "evidence": evidence.as_dict()}
            raise AnalysisFailed(f"analysis undecided at {where}: {evidence.reason}", summary)
        if evidence.ending is Ending.PAUSE:
            self._record_step_detail(window, {"evidence": evidence.as_dict()})
            raise _ManualPause(window.index, window.percent, evidence.reason)
        if evidence.ending is Ending.PROCEED:
            self._say(f"no pass at {where}: {evidence.reason}")
        return False

    def _record_step_detail(self, window: _Window, detail: Mapping[str, Any]) -> None:
        """Add to the running step's record now (a pause or a crash may end it before)."""
        if self._deployment is not None:
            self.ledger.record_step(
                self._deployment, window.index, window.kind, StepStatus.RUNNING, detail=detail
            )

    def _hooks_quietly(
        self, point: HookPoint, release: Release, extra: Mapping[str, str] | None = None
    ) -> None:
        """Hooks whose failure cannot undo anything: reported, never raised."""
        try:
            self._hooks(point, release, extra)
        except DockrollError as exc:  # pragma: no cover - non-blocking points never raise
            self._say(str(exc))

    def _pause_requests(self) -> list[AuditEvent]:
        """`dockroll pause` requests for the deployment being run."""
        if self._deployment is None:
            return []
        events = self.ledger.audit_events(
            service=self.config.service,
            env=self.environment,
            action="pause",
            since=self._deployment.started_at,
        )
        return [event for event in events if event.target == str(self._deployment.id)]

    def _pause_requested(self) -> bool:
        return any(e.id not in self._answered_pauses for e in self._pause_requests())

    def _hooks(
        self, point: HookPoint, release: Release, extra: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Run the environment's hooks at ``point``; a failing blocking hook raises."""
        results = []
        context = {
            "service": self.config.service,
            "environment": self.environment,
            "version": release.version,
            "digest": release.digest,
            **(extra or {}),
        }
        for hook in self.env.hooks.at(point):
            result = run_hook(hook, point, context)
            results.append(result.to_json())
            self._say(f"hook {point.value} {hook.label}: {'ok' if result.ok else 'FAILED'}")
            if not result.ok and point.blocking:
                raise EngineError(
                    f"the {point.value} hook `{hook.label}` failed ({result.detail}); "
                    "the rollout stops here"
                )
        return results

    # -- undo ---------------------------------------------------------------------

    def _compensate(self, deployment: Deployment, plan: Plan) -> None:
        """Bring the previous release back into full service and remove the new one."""
        previous = self._previous_release(deployment, plan)
        # The old replicas' own image when one still runs, else the previous release by digest
        # (all of them were stopped before the rollout was interrupted).
        image = self._previous_image(plan) or (
            pinned_image(previous, self.env.registry) if previous else ""
        )
        old_running = [name for name in plan.old if self._is_running(name)]
        missing = [name for name in plan.old if name not in old_running]
        if missing and previous is not None and image:
            self._say(f"restarting {', '.join(missing)} from {previous.version}")
            for name in missing:
                self._start(name, self._slot_of(name), previous, image)
            for name in missing:
                self._await_healthy(name)
                self._add_server(name)
            old_running += missing
        known = {server.name for server in self.router.servers()}
        for name in old_running:
            if name not in known:
                # Taken out of the router by a Stop that failed (or was killed) before the
                # container went: it must serve again before the new replicas leave.
                self._add_server(name)
        known = {server.name for server in self.router.servers()}
        serving = [name for name in old_running if name in known]
        if serving:
            for name in serving:
                self.router.set_ready(name)
            new_in_router = [name for name in plan.new if name in known]
            self.router.set_weights(
                {**split_weights(serving, (), 0), **dict.fromkeys(new_in_router, 0)}
            )
        for name in plan.new:
            self._drain(name)
            self._stop(name)
        if plan.old:
            self._say("rolled back: the previous release serves all traffic")
        else:
            self._say("removed the new release; nothing ran here before it")

    def _previous_release(self, deployment: Deployment, plan: Plan) -> Release | None:
        """The release the replaced replicas ran, from their labels (or the ledger)."""
        for name in plan.old:
            info = self._containers.get(name) or self._find(name)
            if info is not None and info.labels.get(labels.RELEASE, "").isdigit():
                wanted = int(info.labels[labels.RELEASE])
                for release in self.ledger.releases(self.config.service):
                    if release.id == wanted:
                        return release
        if deployment.previous_release_id is None:
            return None
        for release in self.ledger.releases(self.config.service):
            if release.id == deployment.previous_release_id:
                return release
        return None

    def _previous_image(self, plan: Plan) -> str:
        for name in plan.old:
            info = self._find(name)
            if info is not None:
                self._containers[name] = info
        found = next((info.image for info in self._containers.values() if info.image), "")
        return found

    def _slot_of(self, name: str) -> str:
        info = self._containers.get(name)
        if info is not None:
            return info.labels.get(labels.SLOT, "r")
        # Gone already: its name is <service>-<environment>-<slot>-<n>.
        prefix = f"{self.config.service}-{self.environment}-"
        return name.removeprefix(prefix).rpartition("-")[0] or "r"

    def _is_running(self, name: str) -> bool:
        info = self._find(name)
        return info is not None and info.running


def _fully_added(server: BackendServer) -> bool:
    """Whether ``server`` is as AddServers leaves it: enabled, with its check running."""
    return server.state is not ServerState.MAINT and server.health is not ServerHealth.NO_CHECK
