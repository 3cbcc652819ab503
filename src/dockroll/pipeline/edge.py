"""An environment with ``hosts`` joins its engine host's shared edge; the edge by hand.

:func:`join_edge` is called by commands that change the environment, after its
router is up to date: the edge is started when missing (or reloaded, hitless,
when this dockroll renders its config differently), the router joins the edge
network (live), the hostnames are claimed for it, and their certificates are
loaded (from files, or from an ACME CA when due). Nothing here restarts the
edge, so joining never fails a request of another environment.

``dockroll edge status`` reads only; ``reload`` is hitless; ``upgrade`` is the
one way the edge's container is replaced: new before old, dropping nothing (an
edge an older dockroll started with published ports is restarted once, and the
command says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from dockroll.config import Config
from dockroll.engine.port import Engine
from dockroll.errors import CertificateError, RouterError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import Ledger
from dockroll.listeners import route_hostname
from dockroll.pipeline.engines import environment_engine, host_engine
from dockroll.router import acme, tls
from dockroll.router.edge import Edge, EdgeDescription, EdgeReload, EdgeUpgrade
from dockroll.router.haproxy import HaproxyRouter

__all__ = [
    "HostRenewal",
    "edge_status",
    "join_edge",
    "reload_edge",
    "renew_edge_certificates",
    "upgrade_edge",
]


@dataclass(frozen=True)
class HostRenewal:
    hostname: str
    renewal: acme.Renewal


def _edge(config: Config, name: str, engine: Engine) -> Edge:
    env = config.environment(name)
    if env.edge is None:
        raise UsageError(
            f"environment {name} names no hosts, so the edge does not serve it",
            hint="set hosts and edge.listen in dockroll.yml",
        )

    def image() -> str:
        return HaproxyRouter.for_environment(engine, config, name).image()

    # On a Swarm the edge is a plain container on the manager, on a bridge network there
    # (the host routes to it; an overlay network it would not).
    host = host_engine(config, name) if env.swarm is not None else engine
    return Edge(
        host,
        env.edge.addresses(),
        tls_listeners=[listener.listen_address for listener in env.edge.listen if listener.tls],
        image=image,
    )


def _environment(config: Config, name: str | None) -> str:
    """The environment named, or the first one with hosts."""
    if name is not None:
        config.environment(name)
        return name
    for candidate, env in config.environments.items():
        if env.hosts:
            return candidate
    raise UsageError(
        f"no environment of {config.service} names hosts: the shared edge serves none of them",
        hint="add hosts and edge.listen to an environment in dockroll.yml",
    )


def _open(config: Config, name: str | None) -> tuple[str, Edge]:
    env = _environment(config, name)
    engine = environment_engine(config, env)
    engine.ping()
    return env, _edge(config, env, engine)


def join_edge(
    config: Config, name: str, router: HaproxyRouter, progress: ProgressCallback = discard
) -> Edge | None:
    """Route the environment's hostnames to its router through the edge; None without hosts."""
    env = config.environment(name)
    if not env.hosts or env.edge is None:
        return None
    if router.running_config() != router.config_fingerprint():
        progress(Progress("edge", "the router runs an older config: its hostnames wait"))
        return None
    edge = _edge(config, name, router.engine)
    edge.ensure(progress=lambda message: progress(Progress("edge", message)))
    engine = router.engine
    # The container holding the router's network namespace, when it has one.
    owner = router.network_owner()
    info = engine.container(owner)
    if info is not None and edge.network not in info.networks:
        engine.connect_network(owner, edge.network)  # joined concurrently: fine
        info = engine.container(owner)
    address = info.networks.get(edge.network, "") if info is not None else ""
    if not address:
        raise RouterError(f"router of {config.service}/{name} did not join {edge.network}")
    edge.claim(env.hosts, f"{config.service}/{name}", address)
    progress(Progress("edge", f"{', '.join(env.hosts)} -> {router.container_name}"))
    serve_certificates(config, name, edge, progress)
    return edge


def leave_edge(config: Config, name: str, engine: Engine) -> list[str]:
    """Release the hostnames the environment claimed on its engine's edge; those released."""
    env = config.environment(name)
    if not env.hosts or env.edge is None:
        return []
    edge = _edge(config, name, engine)
    try:
        if edge.engine.container(edge.name) is None:
            return []
        return edge.release(f"{config.service}/{name}")
    finally:
        edge.close()


def serve_certificates(
    config: Config,
    name: str,
    edge: Edge,
    progress: ProgressCallback = discard,
    *,
    force: bool = False,
    failures: list[str] | None = None,
) -> list[HostRenewal]:
    """Load the environment's certificates into the edge, renewing ACME ones when due.

    A renewal that fails keeps the certificate serving: it is a warning, and each is
    appended to ``failures`` (hostname and why) when given.
    """
    settings = config.environment(name).edge
    if settings is None or settings.tls is None:
        return []
    options = settings.tls
    # A certificate is a hostname's, whichever path prefixes of it are routed where.
    hosts = list(dict.fromkeys(route_hostname(route) for route in config.environment(name).hosts))
    hsts = round(options.hsts) if options.hsts else None
    if options.acme is None:
        assert options.cert is not None
        assert options.key is not None
        cert, key = config.root / options.cert, config.root / options.key
        pem = tls.bundle(cert, key, f"{config.service}/{name}")
        for host in hosts:
            if edge.install_certificate(
                host, pem, source=str(cert), redirect_http=options.redirect_http, hsts_seconds=hsts
            ):
                progress(Progress("edge", f"serving {cert} for {host}"))
        return []
    renewals: list[HostRenewal] = []
    for host in hosts:
        ca = options.acme
        wanted = acme.AcmeSettings(
            directory=ca.directory,
            domains=(host,),
            email=ca.email,
            ca_bundle=(config.root / ca.ca_bundle) if ca.ca_bundle else None,
            renew_before=ca.renew_before,
        )
        try:
            renewal = edge.renew_certificate(
                host, wanted, force=force, redirect_http=options.redirect_http, hsts_seconds=hsts
            )
        except CertificateError as exc:
            if failures is not None:
                failures.append(f"{host}: {exc.message}")
            progress(Progress("edge", f"warning: {host}: {exc.message}"))
            continue
        renewals.append(HostRenewal(host, renewal))
        if renewal.renewed:
            progress(
                Progress(
                    "edge",
                    f"renewed {host}'s certificate ({renewal.reason}); valid until "
                    f"{renewal.not_after:%Y-%m-%d}",
                )
            )
    return renewals


def edge_status(config: Config, name: str | None = None) -> EdgeDescription:
    """The edge of the environment's engine as it runs; reads and changes nothing."""
    return _open(config, name)[1].describe()


def _running(edge: Edge) -> EdgeDescription:
    described = edge.describe()
    if not described.running:
        raise UsageError(
            f"the edge {described.container} does not run: {described.verdict}",
            hint="`dockroll deploy --env ENV` of an environment with hosts starts it",
        )
    return described


def reload_edge(
    config: Config, name: str | None, ledger: Ledger, *, progress: ProgressCallback = discard
) -> EdgeReload:
    """Load the config this dockroll renders into the running edge, dropping nothing."""
    env, edge = _open(config, name)
    described = _running(edge)
    if described.needs_upgrade:  # only a new container can apply it
        raise UsageError(described.verdict)
    progress(Progress("edge", f"reloading {edge.name} (hitless)"))
    done = edge.reload()
    ledger.audit("edge-reload", service=config.service, env=env, detail={"worker": done.worker})
    return done


def upgrade_edge(
    config: Config, name: str | None, ledger: Ledger, *, progress: ProgressCallback = discard
) -> tuple[EdgeUpgrade, EdgeDescription]:
    """Move the edge to a new container (listeners, image), new before old: nothing is
    refused (but for the one-time restart of an edge an older dockroll started)."""
    env, edge = _open(config, name)
    done = edge.upgrade(progress=lambda message: progress(Progress("edge", message)))
    described = edge.describe()
    ledger.audit(
        "edge-upgrade",
        service=config.service,
        env=env,
        detail={"container": described.container_id, "image": described.image, "how": done.how},
    )
    return done, described


def renew_edge_certificates(
    config: Config,
    name: str | None,
    ledger: Ledger,
    *,
    force: bool = False,
    progress: ProgressCallback = discard,
) -> list[HostRenewal]:
    """Renew the ACME certificates of the environments' hostnames when due (or ``force``).

    Every environment of dockroll.yml with ``edge.tls.acme`` (or the one named).
    Raises CertificateError when the CA could not issue one: it keeps serving.
    """
    names = [name] if name is not None else [n for n, e in config.environments.items() if e.hosts]
    chosen = [n for n in names if (e := config.environment(n).edge) and e.tls and e.tls.acme]
    if not chosen:
        raise UsageError(
            "no environment here has certificates from an ACME CA on the edge",
            hint="set edge.tls.acme for an environment with hosts",
        )
    renewals: list[HostRenewal] = []
    failures: list[str] = []
    for env in chosen:
        _, edge = _open(config, env)
        _running(edge)
        done = serve_certificates(config, env, edge, progress, force=force, failures=failures)
        renewals.extend(done)
        for item in done:
            if item.renewal.renewed:
                ledger.audit(
                    "certificate-renewal",
                    service=config.service,
                    env=env,
                    detail={
                        "hostname": item.hostname,
                        "not_after": item.renewal.not_after.isoformat(),
                        "reason": item.renewal.reason,
                    },
                )
    if failures:
        raise CertificateError(
            "; ".join(failures),
            hint="check the CA's directory URL is reachable, and that each hostname resolves "
            "to the edge's plain-HTTP listener on port 80",
        )
    return renewals
