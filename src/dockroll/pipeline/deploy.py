"""Deploy and roll back: a recorded release into an environment, by digest, under its lock.

One call does, in order: resolve the release, make sure the router runs (it is
recreated with the running replicas when missing), take the environment's lock,
undo any rollout a crash left unfinished, retire a blue-green standby, pull the
image by digest (falling back to mirrors), then plan and execute the rollout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockroll import labels
from dockroll.config import Config, Strategy
from dockroll.container_settings import ContainerSpec, resolve_container
from dockroll.engine.port import Engine
from dockroll.errors import (
    CertificateError,
    DockrollError,
    LockHeld,
    PolicyRefusal,
    RolloutError,
    UsageError,
)
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import (
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    PromotionStatus,
    Release,
    StepStatus,
)
from dockroll.lock import EnvironmentLock, LockInfo
from dockroll.pipeline.engines import environment_engine, quick_engine
from dockroll.pipeline.processes import (
    ProcessSwitch,
    processes_converged,
    retire_strays,
    start_processes,
)
from dockroll.pipeline.standby import Standby, find_standby
from dockroll.processes import background_processes, processes_starting
from dockroll.refs import ImageRef, is_digest, parse_reference
from dockroll.rollout.executor import (
    FULL_WEIGHT,
    RolloutOutcome,
    RolloutRunner,
    network_name,
    observe,
    pinned_image,
)
from dockroll.rollout.plan import (
    Observed,
    Plan,
    SetWeights,
    Target,
    admits_traffic,
    plan_rollout,
    split_weights,
)
from dockroll.router.haproxy import HaproxyRouter, RouterReload
from dockroll.router.port import ServerHealth, ServerSpec

if TYPE_CHECKING:
    from dockroll.engine.docker import DockerEngine
    from dockroll.engine.unix_api import UnixSocketEngine
    from dockroll.ledger import Ledger

__all__ = [
    "Environment",
    "Standby",
    "adopt_release",
    "continue_rollout",
    "deploy_release",
    "find_release",
    "find_standby",
    "open_environment",
    "open_lock",
    "reload_router",
    "rollback_release",
    "sync_environment_tags",
    "unfinished_deployment",
]


@dataclass
class Environment:
    """The handles of one environment: its engine, router and lock."""

    config: Config
    name: str
    engine: DockerEngine | UnixSocketEngine
    router: HaproxyRouter
    lock: EnvironmentLock

    def runner(self, ledger: Ledger, progress: ProgressCallback) -> RolloutRunner:
        return RolloutRunner(
            config=self.config,
            environment=self.name,
            engine=self.engine,
            router=self.router,
            ledger=ledger,
            progress=progress,
            heartbeat=self.lock.heartbeat,
        )

    @contextmanager
    def held(
        self,
        ledger: Ledger,
        progress: ProgressCallback,
        *,
        reason: str,
        operation: str,
        wait: float,
    ) -> Iterator[LockInfo]:
        """Hold the environment's lock; under it, first give the router the replicas it lacks.

        A router Docker restarted runs again, but empty. Its running replicas
        go back only once the lock is held: before, a rollout holding it may be
        adding a new replica of its own, and would find the name taken.
        """
        with self.lock.held(ledger.who(), reason=reason, operation=operation, wait=wait) as info:
            specs = _router_specs(self.config, self.name, self.engine, ledger)
            restored = self.router.restore(specs)
            if restored:
                progress(Progress("router", f"restored {', '.join(restored)} into the router"))
            yield info


def _router_specs(config: Config, name: str, engine: Engine, ledger: Ledger) -> list[ServerSpec]:
    """Running replicas for a router that may have to be recreated.

    Replicas of the release the ledger says is current get full weight;
    others (a blue-green standby, an unfinished canary) come back at weight 0,
    so a recreated router never sends traffic where it was not meant to go.
    """
    current = ledger.current_release(config.service, name)
    network = network_name(config.service, name)
    specs = []
    containers = engine.containers(labels.selector(config.service, name))
    running = [c for c in containers if c.running and c.networks.get(network)]
    current_digests = {c.labels.get(labels.DIGEST) for c in running}
    for info in running:
        digest = info.labels.get(labels.DIGEST)
        serving = (current is not None and digest == current.digest) or (
            current is None and len(current_digests) == 1
        )
        specs.append(
            ServerSpec(
                info.name,
                info.networks[network],
                config.container.port,
                weight=FULL_WEIGHT if serving else 0,
            )
        )
    return specs


def open_environment(
    config: Config,
    name: str,
    ledger: Ledger,
    progress: ProgressCallback = discard,
    *,
    engine: DockerEngine | UnixSocketEngine | None = None,
) -> Environment:
    """Connect to the environment's engine and make sure its router runs.

    Only commands that change the environment (deploy, rollback, resume, abort,
    promote) open it this way: starting or reloading the router is theirs to do.
    Read-only commands use :func:`open_lock` or the status module, which leave
    the router as they find it.
    """
    env_config = config.environment(name)
    if engine is None:
        engine = environment_engine(config, name)
    engine.ping()
    engine.ensure_network(
        network_name(config.service, name), labels.selector(config.service, name, "network")
    )
    router = HaproxyRouter.for_environment(engine, config, name, progress=progress)
    specs = _router_specs(config, name, engine, ledger)
    # A running router gets its missing replicas back under the lock: see Environment.held.
    info = router.ensure(specs, reload=False, restore_running=False)
    if info.restored:
        progress(Progress("router", f"restored {', '.join(info.restored)} into the router"))
    lock = EnvironmentLock(engine, config.service, name, image=info.image)
    if info.reload_pending:
        reload_router(router, lock, ledger.who(), specs, progress)
    if env_config.router.tls is not None and env_config.router.tls.acme is not None:
        _renew_if_due(router, progress)
    if env_config.hosts:
        # The edge module loads only for environments served under hostnames.
        from dockroll.pipeline.edge import join_edge  # noqa: PLC0415

        join_edge(config, name, router, progress)
    return Environment(config=config, name=name, engine=engine, router=router, lock=lock)


def _renew_if_due(router: HaproxyRouter, progress: ProgressCallback) -> None:
    """Renew the ACME certificate when due; a failure warns and the old one keeps serving."""
    try:
        renewal = router.renew_certificate()
    except CertificateError as exc:
        progress(Progress("router", f"warning: {exc.message}"))
        return
    if renewal.renewed:
        progress(
            Progress(
                "router",
                f"renewed the certificate ({renewal.reason}); valid until "
                f"{renewal.not_after:%Y-%m-%d}",
            )
        )


def reload_router(
    router: HaproxyRouter,
    lock: EnvironmentLock,
    actor: str,
    servers: list[ServerSpec],
    progress: ProgressCallback = discard,
    *,
    wait: float = 0.0,
    required: bool = False,
) -> RouterReload | None:
    """Apply the config this dockroll renders to the running router, hitless, under the lock.

    The reload carries the servers the router has; the lock keeps a rollout
    from changing them in between. When someone holds the lock the reload is
    left for later (None), unless ``required``.
    """
    try:
        with lock.held(actor, reason="router config changed", operation="router-reload", wait=wait):
            done = router.reload(servers)
    except LockHeld:
        if required:
            raise
        progress(Progress("router", "the lock is held: the router's new config waits"))
        return None
    progress(
        Progress(
            "router",
            f"reloaded {router.container_name} hitless in {done.seconds:.1f}s "
            f"(worker {done.previous_worker} -> {done.worker}, carried {len(done.carried)} "
            "servers)",
        )
    )
    return done


def open_lock(config: Config, name: str) -> EnvironmentLock:
    """The environment's deployment lock, without starting, reloading or replacing its router.

    The lock container is only created (never run) from an image: the router's
    when it runs, else the one the router would be started from.
    """
    engine = environment_engine(config, name)
    engine.ping()
    router = HaproxyRouter.for_environment(engine, config, name)
    running = engine.container(router.container_name)
    image = running.image if running is not None else router.image()
    return EnvironmentLock(engine, config.service, name, image=image)


def _remove_stopped(env: Environment, progress: ProgressCallback) -> None:
    """Remove app containers that stopped (a crash mid-stop leaves one): no orphans remain.

    Running replicas are the rollouts' business; a stopped one serves nothing and
    is in no router.
    """
    for info in env.engine.containers(labels.selector(env.config.service, env.name)):
        if not info.running and info.status in ("exited", "dead", "created"):
            progress(Progress("deploy", f"removing {info.name}, which had stopped ({info.status})"))
            env.engine.remove(info.id, grace=0)


def _settings_changed(env: Environment, spec: ContainerSpec) -> bool:
    """Whether a running replica was started with other container settings than ``spec``."""
    wanted = spec.config_hash
    return any(
        info.running and info.labels.get(labels.CONFIG_HASH) != wanted
        for info in env.engine.containers(labels.selector(env.config.service, env.name))
    )


def find_release(config: Config, ledger: Ledger, reference: str) -> Release:
    """The recorded release a version, digest or pinned reference names."""
    text = reference.strip()
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    elif "/" in text:
        text = parse_reference(text).tag or text
    release = ledger.find_release(config.service, text) or adopt_release(config, ledger, text)
    if release is None:
        recent = ", ".join(r.version for r in ledger.releases(config.service, limit=5))
        kind = "digest" if is_digest(text) else "version"
        raise UsageError(
            f"no release of {config.service} with {kind} {text!r} in the ledger",
            hint=f"recent releases: {recent or 'none: `dockroll push` records them'}",
        )
    return release


def adopt_release(config: Config, ledger: Ledger, version_or_digest: str) -> Release | None:
    """A release another service pushed to this service's repository, recorded under this
    service too (same digest, version and metadata), so one image deploys as both."""
    repo = parse_reference(config.image)
    found = ledger.find_release_in_repository(repo.registry, repo.repository, version_or_digest)
    if found is None or found.service == config.service:
        return None
    adopted = ledger.record_release(
        service=config.service,
        version=found.version,
        digest=found.digest,
        registry=found.registry,
        repository=found.repository,
        tags=found.tags,
        git_sha=found.git_sha,
        build_date=found.build_date,
        labels=found.labels,
        sbom_digest=found.sbom_digest,
        pushed_at=found.pushed_at,
    )
    ledger.audit(
        "adopt-release",
        service=config.service,
        target=found.version,
        detail={"digest": found.digest, "from_service": found.service},
    )
    return adopted


def unfinished_deployment(ledger: Ledger, service: str, environment: str) -> Deployment | None:
    """:meth:`Ledger.unfinished_deployment`, kept here where the rollouts use it."""
    return ledger.unfinished_deployment(service, environment)


def _ensure_image(
    config: Config,
    engine: Engine,
    release: Release,
    progress: ProgressCallback,
    registry: str | None = None,
) -> None:
    image = pinned_image(release, registry)
    if engine.image(image) is not None:
        return
    try:
        engine.pull(image, progress)
        return
    except DockrollError as primary_error:
        if not config.mirrors:
            raise
        # The registry client (and httpx) load only when a pull needs the mirrors.
        from dockroll.pipeline.mirror import resolve_with_fallback  # noqa: PLC0415

        resolution = resolve_with_fallback(config, release.digest)
        progress(Progress("pull", f"primary registry failed; pulling from {resolution.registry}"))
        try:
            engine.pull(str(resolution.ref), progress)
        except DockrollError:
            raise primary_error from None


def _retire_standby(env: Environment, observed: Observed, progress: ProgressCallback) -> Observed:
    """Stop replicas that carry no traffic (a previous blue-green slot) before a new rollout."""
    idle = [r for r in observed.replicas if not r.weight]
    serving = [r for r in observed.replicas if r.weight]
    if not idle or not serving:
        return observed
    for replica in idle:
        progress(Progress("deploy", f"retiring standby {replica.name} ({replica.version})"))
        if replica.weight is not None:
            env.router.remove_server(replica.name)
        info = env.engine.container(replica.name)
        if info is not None:
            env.engine.remove(info.id, grace=env.config.container.stop_grace)
    return Observed(tuple(serving))


def _keep_recent_images(
    config: Config,
    engine: Engine,
    ledger: Ledger,
    progress: ProgressCallback,
    registry: str | None = None,
) -> None:
    """Keep the images of each environment's last ``keep_releases`` releases, drop older ones.

    Environments of a service often share an engine, so what one keeps for a
    fast rollback is kept for all.
    """
    keep: set[str] = set()
    for name, env_config in config.environments.items():
        recent: list[str] = []
        for deployment in ledger.deployments(config.service, name):
            if deployment.status is DeploymentStatus.SUCCEEDED and deployment.digest not in recent:
                recent.append(deployment.digest)
        keep.update(recent[: env_config.keep_releases])
    for info in engine.containers({labels.SERVICE: config.service}):
        keep.add(info.labels.get(labels.DIGEST, ""))
    for release in ledger.releases(config.service):
        if release.digest in keep:
            continue
        image = pinned_image(release, registry)
        if engine.image(image) is not None and engine.remove_image(image):
            progress(Progress("deploy", f"removed the image of {release.version} from the engine"))


def sync_environment_tags(
    config: Config, environment: str, release: Release, progress: ProgressCallback = discard
) -> list[str]:
    """Point the environment's moving tags (``prod``, ``staging`` …) at what it runs now.

    Promotion moves them before the rollout; a rollout that is rolled back, and
    every rollback, moves them back, so the registry never claims an
    environment runs what it does not. Versioned tags (``prod-{{version}}``)
    record that a release was promoted and stay. A registry that is down only
    costs a warning: what runs is decided by the engine, not by the tags.
    """
    moving = [tag for tag in config.environment(environment).tags if "{{" not in tag]
    if not moving:
        return []
    # Loaded here: a rollback of an environment without moving tags never needs httpx.
    from dockroll.registry import RegistryClient, retag  # noqa: PLC0415

    source = ImageRef(
        registry=release.registry, repository=release.repository, digest=release.digest
    )
    moved: list[str] = []
    try:
        with RegistryClient(release.registry) as client:
            for tag in moving:
                if retag(client, source, tag).written:
                    moved.append(tag)
    except DockrollError as exc:
        progress(
            Progress(
                "deploy",
                f"could not point {', '.join(moving)} at {release.version}: {exc.message}",
            )
        )
        return moved
    if moved:
        progress(Progress("deploy", f"{', '.join(moved)} now point at {release.version}"))
    return moved


def _settle_unfinished(
    env: Environment, ledger: Ledger, progress: ProgressCallback
) -> RolloutOutcome | None:
    unfinished = unfinished_deployment(ledger, env.config.service, env.name)
    if unfinished is None:
        return None
    progress(
        Progress(
            "deploy",
            f"deployment {unfinished.id} of {unfinished.version} did not finish "
            f"({unfinished.status.value}); undoing it first",
        )
    )
    return env.runner(ledger, progress).abort(
        unfinished, "superseded: a later command found it unfinished and undid it"
    )


def deploy_release(
    config: Config,
    environment: str,
    release: Release,
    ledger: Ledger,
    *,
    progress: ProgressCallback = discard,
    reason: str | None = None,
    kind: DeploymentKind = DeploymentKind.DEPLOY,
    strategy: Strategy | None = None,
    lock_wait: float = 0.0,
    env: Environment | None = None,
    promoting: bool = False,
) -> RolloutOutcome | None:
    """Roll ``release`` out to ``environment``; None when it already runs there as asked.

    An environment fed by promotion (``promote_from``) takes only releases
    promoted into it, so a deploy cannot skip the gates; rollbacks go back to
    what it ran before and are exempt, and so is the deploy of a promotion
    (``promoting``) whose gates just passed, and which moves the tags itself once
    the release serves. ``env`` is an environment the caller opened; when the
    caller holds its lock, the deploy runs under it.
    """
    env_config = config.environment(environment)
    # Env files and secrets are read before anything changes: a missing one stops here.
    spec = resolve_container(config, environment)
    if kind is DeploymentKind.DEPLOY and env_config.promote_from is not None and not promoting:
        promoted = {
            p.digest
            for p in ledger.promotions(config.service, environment)
            if p.status is PromotionStatus.SUCCEEDED
        }
        if release.digest not in promoted:
            raise PolicyRefusal(
                f"{environment} runs only releases promoted into it, and {release.version} "
                f"({release.digest[:19]}) was not",
                hint=f"`dockroll promote {release.version} --to {environment}` checks the gates "
                "and deploys it",
            )
    if env is None:
        env = open_environment(config, environment, ledger, progress)
    with env.held(ledger, progress, reason=reason or "", operation=kind.value, wait=lock_wait):
        _settle_unfinished(env, ledger, progress)
        _remove_stopped(env, progress)
        if config.processes:
            retire_strays(
                config,
                env.engine,
                environment,
                ledger.current_release(config.service, environment),
                progress,
            )
        observed = observe(env.engine, env.router, config.service, environment)
        if (
            len(observed.replicas) == env_config.replicas
            and all(r.digest == release.digest and r.weight for r in observed.replicas)
            and not _settings_changed(env, spec)
            and processes_converged(config, env.engine, environment, release.digest)
        ):
            progress(Progress("deploy", f"{environment} already runs {release.version}"))
            return None
        observed = _retire_standby(env, observed, progress)
        _ensure_image(config, env.engine, release, progress, env_config.registry)
        target = Target(
            service=config.service,
            environment=environment,
            version=release.version,
            digest=release.digest,
            replicas=env_config.replicas,
        )
        plan = plan_rollout(
            strategy or env_config.strategy,
            observed,
            target,
            rolling=env_config.rolling,
            blue_green=env_config.blue_green,
            canary=env_config.canary,
            migration=env_config.migrate.command if env_config.migrate else None,
            watch=env_config.analysis.watch if env_config.analysis else 0.0,
        )
        progress(
            Progress(
                "deploy",
                f"{plan.strategy.value} of {release.version} to {environment}: "
                f"{len(plan.steps)} steps, {len(plan.new)} new, {len(plan.old)} replaced",
            )
        )
        # On a first deploy nothing serves yet, so every process starts before the web.
        late = processes_starting(config, "after-web") if plan.old else []
        early = [name for name in background_processes(config) if name not in late]
        switch = _start_processes(
            env, ledger, release, plan, kind=kind, reason=reason, progress=progress, only=early
        )
        try:
            outcome = env.runner(ledger, progress).start(plan, release, kind=kind, reason=reason)
        except RolloutError:
            switch.undo()
            running = ledger.current_release(config.service, environment)
            if running is not None and running.digest != release.digest:
                sync_environment_tags(config, environment, running, progress)
            raise
        except BaseException:
            switch.undo()
            raise
        if outcome.status == "succeeded" and late:
            _start_late_processes(
                env,
                ledger,
                release,
                outcome=outcome,
                switch=switch,
                late=late,
                progress=progress,
            )
        if outcome.status == "succeeded":
            switch.finish()
        if outcome.status == "succeeded":
            if not promoting:  # a promotion writes every tag of the target itself
                sync_environment_tags(config, environment, release, progress)
            _keep_recent_images(config, env.engine, ledger, progress, env_config.registry)
    ledger.audit(
        kind.value,
        service=config.service,
        env=environment,
        target=release.version,
        detail={
            "digest": release.digest,
            "strategy": plan.strategy.value,
            "status": outcome.status,
        },
    )
    return outcome


def _start_processes(
    env: Environment,
    ledger: Ledger,
    release: Release,
    plan: Plan,
    *,
    kind: DeploymentKind,
    reason: str | None,
    progress: ProgressCallback,
    only: list[str],
) -> ProcessSwitch:
    """New replicas of the processes without router, started and checked before the routed
    process's rollout; one that fails is recorded as a rolled-back deployment and stops here,
    before anything of the previous release changed."""
    config, environment = env.config, env.name
    try:
        return start_processes(
            config,
            env.engine,
            environment,
            release,
            progress=progress,
            heartbeat=env.lock.heartbeat,
            only=only,
        )
    except DockrollError as exc:
        deployment = ledger.start_deployment(
            release, environment, strategy=plan.strategy.value, kind=kind, reason=reason
        )
        ledger.record_step(
            deployment, 1, "start-processes", StepStatus.FAILED, detail={"error": exc.message}
        )
        finished = ledger.finish_deployment(
            deployment, DeploymentStatus.ROLLED_BACK, message=exc.message
        )
        before = "the previous release keeps serving" if plan.old else "nothing ran here before"
        raise RolloutError(
            f"the rollout of {release.version} to {environment} failed and was rolled back "
            f"before any traffic moved; {before}.\n  cause: {exc.message}",
            hint=f"`dockroll history --env {environment}` shows it (deployment {finished.id})",
        ) from exc


def _start_late_processes(
    env: Environment,
    ledger: Ledger,
    release: Release,
    *,
    outcome: RolloutOutcome,
    switch: ProcessSwitch,
    late: list[str],
    progress: ProgressCallback,
) -> None:
    """Start the ``after-web`` processes once the web's new release serves; when one does
    not start, the whole release goes back: its new replicas go, the web rolls back to the
    release before (rolling), and every old process replica, never stopped, runs on."""
    config, environment = env.config, env.name
    try:
        late_switch = start_processes(
            config,
            env.engine,
            environment,
            release,
            progress=progress,
            heartbeat=env.lock.heartbeat,
            only=late,
        )
    except DockrollError as exc:
        switch.undo()
        previous_id = outcome.deployment.previous_release_id
        previous = next((r for r in ledger.releases(config.service) if r.id == previous_id), None)
        if previous is None:
            raise RolloutError(
                f"{release.version} serves in {environment}, but {exc.message}",
                hint=f"`dockroll rollback --env {environment} --to VERSION` goes back",
            ) from exc
        progress(Progress("deploy", f"rolling the web back to {previous.version}"))
        observed = _retire_standby(
            env, observe(env.engine, env.router, config.service, environment), progress
        )
        env_config = config.environment(environment)
        target = Target(
            service=config.service,
            environment=environment,
            version=previous.version,
            digest=previous.digest,
            replicas=env_config.replicas,
        )
        back = plan_rollout(Strategy.ROLLING, observed, target, rolling=env_config.rolling)
        env.runner(ledger, progress).start(
            back, previous, kind=DeploymentKind.ROLLBACK, reason=f"after-web process: {exc}"
        )
        sync_environment_tags(config, environment, previous, progress)
        raise RolloutError(
            f"the rollout of {release.version} to {environment} failed after the web switched "
            f"and was rolled back to {previous.version}, which serves again.\n"
            f"  cause: {exc.message}",
            hint=f"`dockroll history --env {environment}` shows both deployments",
        ) from exc
    late_switch.finish()


def _rollback_target(config: Config, ledger: Ledger, environment: str) -> Release:
    """The release ``environment`` ran before its current one."""
    current = ledger.current_release(config.service, environment)
    if current is not None:
        for deployment in ledger.deployments(config.service, environment):
            if (
                deployment.status is DeploymentStatus.SUCCEEDED
                and deployment.digest != current.digest
            ):
                found = ledger.find_release(config.service, deployment.digest)
                if found is not None:
                    return found
    raise UsageError(
        f"{environment} has no earlier release to roll back to",
        hint="pass --to VERSION to roll back to a specific release",
    )


def rollback_release(
    config: Config,
    environment: str,
    ledger: Ledger,
    *,
    to: str | None = None,
    progress: ProgressCallback = discard,
    reason: str | None = None,
    lock_wait: float = 0.0,
) -> RolloutOutcome | None:
    """Go back to the previous release (or ``to``): instantly within a blue-green window.

    ``to`` must name a release the environment ran before; anything else goes
    through promotion and its gates.
    """
    if to:
        target = find_release(config, ledger, to)
        ran = {
            d.digest
            for d in ledger.deployments(config.service, environment)
            if d.status is DeploymentStatus.SUCCEEDED
        } | {p.digest for p in ledger.promotions(config.service, environment)}
        if target.digest not in ran:
            raise PolicyRefusal(
                f"{target.version} never ran in {environment}: a rollback goes back to a "
                "release the environment ran before",
                hint=f"`dockroll promote {target.version} --to {environment}` takes it there "
                "through the gates",
            )
    else:
        target = _rollback_target(config, ledger, environment)
    # The instant switch asks the engine little: a local one is spoken to over its socket.
    engine = quick_engine(config, environment)
    try:
        env = open_environment(config, environment, ledger, progress, engine=engine)
        return _roll_back(env, ledger, target, progress, reason=reason, lock_wait=lock_wait)
    finally:
        engine.close()


def _roll_back(
    env: Environment,
    ledger: Ledger,
    target: Release,
    progress: ProgressCallback,
    *,
    reason: str | None,
    lock_wait: float,
) -> RolloutOutcome | None:
    """The rollback in the opened environment: the instant switch when the standby can take
    the traffic, else a full rollout back."""
    config, environment = env.config, env.name
    with env.held(ledger, progress, reason=reason or "", operation="rollback", wait=lock_wait):
        settled = _settle_unfinished(env, ledger, progress)
        _remove_stopped(env, progress)
        observed = observe(env.engine, env.router, config.service, environment)
        standby = [
            r for r in observed.replicas if r.digest == target.digest and r.weight is not None
        ]
        live = [r for r in observed.replicas if r.weight and r.digest != target.digest]
        window = find_standby(config, environment, ledger, observed) if standby else None
        if window is not None and window.expired:
            # Past keep_previous the standby is no promise any more: a full rollout back.
            progress(Progress("rollback", window.describe()))
            standby = []
        # The router sends the traffic, so its own check decides whether the standby can take
        # it; the image's HEALTHCHECK judges it as it judges a new replica: a standby whose
        # first HEALTHCHECK has not run yet is as ready as the router says it is.
        up = {s.name for s in env.router.servers() if s.health is not ServerHealth.DOWN}
        if (
            standby
            and live
            and all(r.name in up and admits_traffic(r.health, config.health) for r in standby)
        ):
            # The previous slot still runs: switching traffic back is instant.
            new = tuple(r.name for r in standby)
            old = tuple(r.name for r in live)
            plan = Plan(
                strategy=Strategy.BLUE_GREEN,
                steps=(SetWeights(split_weights(old, new, 100), 100),),
                new=new,
                old=old,
                standby=old,
                note="switched back to the standby slot",
            )
            outcome = env.runner(ledger, progress).start(
                plan, target, kind=DeploymentKind.ROLLBACK, reason=reason
            )
            if (
                outcome.status == "succeeded"
                and config.processes
                and not processes_converged(config, env.engine, environment, target.digest)
            ):
                # The routed process switched back at once; the others start again from
                # the release it went back to.
                start_processes(config, env.engine, environment, target, progress=progress).finish()
        elif settled is not None and all(r.digest == target.digest for r in observed.replicas):
            outcome = settled
        else:
            # A full rollout back, under the lock this rollback already holds.
            return deploy_release(
                config,
                environment,
                target,
                ledger,
                progress=progress,
                reason=reason,
                kind=DeploymentKind.ROLLBACK,
                env=env,
            )
    if outcome.status == "succeeded":
        sync_environment_tags(config, environment, target, progress)
    ledger.audit(
        "rollback",
        service=config.service,
        env=environment,
        target=target.version,
        detail={"digest": target.digest, "instant": True},
    )
    return outcome


def continue_rollout(
    config: Config,
    environment: str,
    ledger: Ledger,
    *,
    abort: bool = False,
    skip_pauses: bool = False,
    progress: ProgressCallback = discard,
    reason: str | None = None,
    lock_wait: float = 0.0,
) -> RolloutOutcome:
    """Resume (or, with ``abort``, undo) the environment's unfinished rollout.

    Resuming a canary paused at a step promotes it to the next step;
    ``skip_pauses`` goes straight to 100%.
    """
    unfinished = unfinished_deployment(ledger, config.service, environment)
    if unfinished is None:
        raise UsageError(
            f"no rollout in {environment} is paused or unfinished",
            hint=f"`dockroll status` shows {environment}; `dockroll deploy` starts a rollout",
        )
    env = open_environment(config, environment, ledger, progress)
    action = "abort" if abort else "resume"
    with env.held(ledger, progress, reason=reason or "", operation=action, wait=lock_wait):
        runner = env.runner(ledger, progress)
        if abort:
            outcome = runner.abort(unfinished, reason or "aborted by hand")
        else:
            release = find_release(config, ledger, unfinished.digest)
            outcome = runner.resume(unfinished, release, skip_pauses=skip_pauses)
        if outcome.status != "paused":
            _remove_stopped(env, progress)
            if config.processes:
                # Over, one way or the other: process replicas follow what serves now.
                serving = ledger.current_release(config.service, environment)
                late = processes_starting(config, "after-web")
                if (
                    outcome.status == "succeeded"
                    and serving is not None
                    and late
                    and not processes_converged(config, env.engine, environment, serving.digest)
                ):
                    start_processes(
                        config, env.engine, environment, serving, progress=progress, only=late
                    ).finish()
                retire_strays(config, env.engine, environment, serving, progress)
        if outcome.status in ("succeeded", "aborted"):
            # A promotion moved the tags when its canary first held; point them at what
            # serves now that the rollout went all the way, or back.
            serving = ledger.current_release(config.service, environment)
            if serving is not None:
                sync_environment_tags(config, environment, serving, progress)
    ledger.audit(
        action,
        service=config.service,
        env=environment,
        target=unfinished.version,
        detail={"deployment": unfinished.id, "status": outcome.status},
    )
    return outcome
