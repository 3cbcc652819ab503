"""Deploy and roll back: a recorded release into an environment, by digest, under its lock.

One call does, in order: resolve the release, make sure the router runs (it is
recreated with the running replicas when missing), take the environment's lock,
undo any rollout a crash left unfinished, retire a blue-green standby, pull the
image by digest (falling back to mirrors), then plan and execute the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockroll import labels
from dockroll.config import Config, Strategy
from dockroll.engine.docker import DockerEngine
from dockroll.engine.port import Engine
from dockroll.errors import DockrollError, PolicyRefusal, RolloutError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import (
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    Ledger,
    PromotionStatus,
    Release,
)
from dockroll.lock import EnvironmentLock
from dockroll.pipeline.engines import environment_engine
from dockroll.pipeline.standby import Standby, find_standby
from dockroll.refs import ImageRef, is_digest, parse_reference
from dockroll.rollout.executor import (
    FULL_WEIGHT,
    RolloutOutcome,
    RolloutRunner,
    network_name,
    observe,
    pinned_image,
)
from dockroll.rollout.plan import Observed, Plan, SetWeights, Target, plan_rollout, split_weights
from dockroll.router.haproxy import HaproxyRouter
from dockroll.router.port import ServerHealth, ServerSpec

__all__ = [
    "Environment",
    "Standby",
    "continue_rollout",
    "deploy_release",
    "find_release",
    "find_standby",
    "open_environment",
    "rollback_release",
    "sync_environment_tags",
    "unfinished_deployment",
]


@dataclass
class Environment:
    """The handles of one environment: its engine, router and lock."""

    config: Config
    name: str
    engine: DockerEngine
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
    config: Config, name: str, ledger: Ledger, progress: ProgressCallback = discard
) -> Environment:
    """Connect to the environment's engine and make sure its router runs."""
    engine = environment_engine(config, name)
    engine.ping()
    engine.ensure_network(
        network_name(config.service, name), labels.selector(config.service, name, "network")
    )
    router = HaproxyRouter.for_environment(engine, config, name, progress=progress)
    info = router.ensure(_router_specs(config, name, engine, ledger))
    if info.restored:
        progress(Progress("router", f"restored {', '.join(info.restored)} into the router"))
    return Environment(
        config=config,
        name=name,
        engine=engine,
        router=router,
        lock=EnvironmentLock(engine, config.service, name, image=info.image),
    )


def _remove_stopped(env: Environment, progress: ProgressCallback) -> None:
    """Remove app containers that stopped (a crash mid-stop leaves one): no orphans remain.

    Running replicas are the rollouts' business; a stopped one serves nothing and
    is in no router.
    """
    for info in env.engine.containers(labels.selector(env.config.service, env.name)):
        if not info.running and info.status in ("exited", "dead", "created"):
            progress(Progress("deploy", f"removing {info.name}, which had stopped ({info.status})"))
            env.engine.remove(info.id, grace=0)


def find_release(config: Config, ledger: Ledger, reference: str) -> Release:
    """The recorded release a version, digest or pinned reference names."""
    text = reference.strip()
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    elif "/" in text:
        text = parse_reference(text).tag or text
    release = ledger.find_release(config.service, text)
    if release is None:
        recent = ", ".join(r.version for r in ledger.releases(config.service, limit=5))
        kind = "digest" if is_digest(text) else "version"
        raise UsageError(
            f"no release of {config.service} with {kind} {text!r} in the ledger",
            hint=f"recent releases: {recent or 'none: `dockroll push` records them'}",
        )
    return release


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
    actor = ledger.who()
    with env.lock.held(actor, reason=reason or "", operation=kind.value, wait=lock_wait):
        _settle_unfinished(env, ledger, progress)
        _remove_stopped(env, progress)
        observed = observe(env.engine, env.router, config.service, environment)
        if len(observed.replicas) == env_config.replicas and all(
            r.digest == release.digest and r.weight for r in observed.replicas
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
        try:
            outcome = env.runner(ledger, progress).start(plan, release, kind=kind, reason=reason)
        except RolloutError:
            running = ledger.current_release(config.service, environment)
            if running is not None and running.digest != release.digest:
                sync_environment_tags(config, environment, running, progress)
            raise
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
    env = open_environment(config, environment, ledger, progress)
    actor = ledger.who()
    with env.lock.held(actor, reason=reason or "", operation="rollback", wait=lock_wait):
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
        # it; the image's HEALTHCHECK counts too unless dockroll.yml turned it off.
        up = {s.name for s in env.router.servers() if s.health is not ServerHealth.DOWN}
        docker_check = config.health.use_docker_healthcheck
        if (
            standby
            and live
            and all(r.name in up and (r.healthy or not docker_check) for r in standby)
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
    env = open_environment(config, environment, ledger, progress)
    unfinished = unfinished_deployment(ledger, config.service, environment)
    if unfinished is None:
        raise UsageError(
            f"no rollout in {environment} is paused or unfinished",
            hint=f"`dockroll status` shows {environment}; `dockroll deploy` starts a rollout",
        )
    action = "abort" if abort else "resume"
    with env.lock.held(ledger.who(), reason=reason or "", operation=action, wait=lock_wait):
        runner = env.runner(ledger, progress)
        if abort:
            outcome = runner.abort(unfinished, reason or "aborted by hand")
        else:
            release = find_release(config, ledger, unfinished.digest)
            outcome = runner.resume(unfinished, release, skip_pauses=skip_pauses)
        if outcome.status != "paused":
            _remove_stopped(env, progress)
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
