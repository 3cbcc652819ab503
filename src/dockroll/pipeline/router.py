"""An environment's router by hand: what runs, a hitless reload, an upgrade (new before old).

``status`` reads and changes nothing. ``reload`` and ``upgrade`` hold the
environment's lock, so no rollout changes the router's servers while they are
carried across.
"""

from __future__ import annotations

from datetime import timedelta

from dockroll.config import Config
from dockroll.errors import UsageError
from dockroll.events import ProgressCallback, discard
from dockroll.ledger import Ledger
from dockroll.lock import EnvironmentLock
from dockroll.pipeline.deploy import _router_specs, reload_router
from dockroll.pipeline.engines import environment_engine
from dockroll.router.acme import Renewal
from dockroll.router.haproxy import HaproxyRouter, RouterDescription, RouterReload
from dockroll.router.port import RouterInfo
from dockroll.router.request_log import AccessEntry

__all__ = [
    "reload_environment_router",
    "renew_environment_certificate",
    "router_access_log",
    "router_status",
    "upgrade_environment_router",
]


def _open(config: Config, name: str, progress: ProgressCallback) -> HaproxyRouter:
    engine = environment_engine(config, name)
    engine.ping()
    return HaproxyRouter.for_environment(engine, config, name, progress=progress)


def router_status(config: Config, name: str) -> RouterDescription:
    """The environment's router as it runs, and whether its config or container is current."""
    return _open(config, name, discard).describe()


def reload_environment_router(
    config: Config,
    name: str,
    ledger: Ledger,
    *,
    progress: ProgressCallback = discard,
    lock_wait: float = 0.0,
) -> RouterReload:
    """Load the config this dockroll renders into the running router, dropping nothing."""
    router = _open(config, name, progress)
    described = router.describe()
    if not described.running:
        raise UsageError(
            f"the router of {config.service}/{name} does not run: {described.verdict}",
            hint=f"`dockroll deploy --env {name}` starts it",
        )
    if described.needs_upgrade:  # only a new container can apply it
        raise UsageError(described.verdict)
    engine = router.engine
    lock = EnvironmentLock(engine, config.service, name, image=described.image)
    specs = _router_specs(config, name, engine, ledger)
    done = reload_router(router, lock, ledger.who(), specs, progress, wait=lock_wait, required=True)
    assert done is not None  # required: a held lock raised
    ledger.audit(
        "router-reload",
        service=config.service,
        env=name,
        detail={"worker": done.worker, "carried": list(done.carried)},
    )
    return done


def upgrade_environment_router(
    config: Config,
    name: str,
    ledger: Ledger,
    *,
    progress: ProgressCallback = discard,
    lock_wait: float = 0.0,
) -> RouterInfo:
    """Move the router to a new container (image, listeners), new before old where it can.

    Hitless on local and remote engines and on a Swarm manager once the router runs in a
    holder of its own; a router an older dockroll started and new published listeners
    replace the container instead, which refuses connections for about a second
    (progress says so).
    """
    router = _open(config, name, progress)
    engine = router.engine
    running = engine.container(router.container_name)
    image = running.image if running is not None else router.image()
    lock = EnvironmentLock(engine, config.service, name, image=image)
    with lock.held(
        ledger.who(), reason="router upgrade", operation="router-upgrade", wait=lock_wait
    ):
        specs = _router_specs(config, name, engine, ledger)
        info = router.upgrade(specs)
        if config.environment(name).hosts:
            # A new holder (new listeners, a one-time move) is not on the edge's network yet.
            from dockroll.pipeline.edge import join_edge  # noqa: PLC0415

            join_edge(config, name, router, progress)
    ledger.audit(
        "router-upgrade",
        service=config.service,
        env=name,
        detail={"container": info.container_id, "image": info.image, "how": info.replaced},
    )
    return info


def router_access_log(
    config: Config, name: str, *, since_seconds: float | None = None, tail: int = 100
) -> list[AccessEntry]:
    """The environment's last requests as its router logged them; reads only."""
    if tail < 1:
        raise UsageError(f"--tail must be at least 1, not {tail}")
    router = _open(config, name, discard)
    if router.engine.container(router.container_name) is None:
        raise UsageError(
            f"the router of {config.service}/{name} does not exist yet",
            hint=f"`dockroll deploy --env {name}` starts it",
        )
    since = None
    if since_seconds is not None:
        since = router.engine.now() - timedelta(seconds=since_seconds)
    return router.access_log(since=since, tail=tail)


def renew_environment_certificate(
    config: Config,
    name: str,
    ledger: Ledger,
    *,
    force: bool = False,
    progress: ProgressCallback = discard,
) -> Renewal:
    """Renew the environment's ACME certificate when due (or ``force``) and load it live.

    The running router answers the CA's HTTP-01 challenge; nothing restarts.
    Raises CertificateError when the CA cannot issue it: the old certificate
    keeps serving.
    """
    router = _open(config, name, progress)
    described = router.describe()
    if not described.running:
        raise UsageError(
            f"the router of {config.service}/{name} does not run, so it cannot answer "
            "the CA's HTTP-01 challenge",
            hint=f"`dockroll deploy --env {name}` starts it (and obtains the certificate)",
        )
    renewal = router.renew_certificate(force=force)
    if renewal.renewed:
        ledger.audit(
            "certificate-renewal",
            service=config.service,
            env=name,
            detail={"not_after": renewal.not_after.isoformat(), "reason": renewal.reason},
        )
    return renewal
