"""dockroll.yml: the service and its environments, as typed models.

A config file is YAML; string values may use ``${VAR}``, ``${VAR:-default}``,
``${VAR-default}``, ``${VAR:?message}`` and ``${VAR?message}`` the way compose
files do. Paths are relative to the file's directory. Every
problem is reported as a :class:`~dockroll.errors.ConfigError` that names the
file and the field.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dockroll.accessories import AccessoryConfig, accessory_problems
from dockroll.checks.settings import AnalysisSettings
from dockroll.container_settings import ContainerSettings
from dockroll.durations import Duration, parse_duration
from dockroll.errors import ConfigError, UsageError
from dockroll.hooks import Hooks
from dockroll.listeners import ListenAddress, parse_listen_address, parse_route
from dockroll.processes import ProcessConfig, ProcessOverride, process_problems
from dockroll.refs import parse_reference
from dockroll.strategy import Strategy

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "MAX_ENVIRONMENT_NAME",
    "AccessoryConfig",
    "BlueGreenConfig",
    "BuildConfig",
    "BuildSecret",
    "CanaryConfig",
    "Config",
    "ContainerConfig",
    "ContainerSettings",
    "DeployWindow",
    "EnvironmentConfig",
    "HealthConfig",
    "MigrationConfig",
    "MirrorConfig",
    "ProcessConfig",
    "ProcessOverride",
    "RetentionConfig",
    "RollingConfig",
    "ScanConfig",
    "SmokeConfig",
    "Strategy",
    "SwarmConfig",
    "TagsConfig",
    "environment_name_problem",
    "find_config",
    "load_config",
    "parse_duration",
]

DEFAULT_CONFIG_NAME = "dockroll.yml"
_REGISTRY_ADDRESS = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")

_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:-|-|:\?|\?)(?P<argument>[^}]*))?\}"
)
_SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# Replicas are named <service>-<environment>-<slot>-<n> and the router (HAProxy)
# takes server names of up to 64 characters; "canary" is the longest slot.
_MAX_SERVER_NAME = 64
_LONGEST_REPLICA_SUFFIX = "canary-999"
_ENVIRONMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
MAX_ENVIRONMENT_NAME = 32
"""Environment names go into container, router and lock names, tags and paths."""


def environment_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an environment's name, or None when it can.

    One rule for dockroll.yml and the command line (``--env``, ``--to``), so a name
    is refused the same way wherever it is written.
    """
    shown = repr(name if len(name) <= 40 else name[:40] + "…")
    if len(name) > MAX_ENVIRONMENT_NAME:
        return (
            f"environment name {shown} is {len(name)} characters long; "
            f"use at most {MAX_ENVIRONMENT_NAME}"
        )
    if not _ENVIRONMENT_NAME.match(name):
        return (
            f"environment name {shown} is not allowed: use lowercase letters, digits, "
            "'.', '_' and '-', starting with a letter or digit (e.g. dev, staging, prod-eu)"
        )
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuildSecret(_Model):
    """A BuildKit secret handed to ``RUN --mount=type=secret,id=…``."""

    id: str
    src: Path | None = None
    env: str | None = None
    required: bool = True
    """When false, a missing ``src`` file or unset ``env`` skips the secret instead of failing."""

    @model_validator(mode="after")
    def _one_source(self) -> BuildSecret:
        if (self.src is None) == (self.env is None):
            raise ValueError("a build secret takes exactly one of 'src' (a file) or 'env'")
        return self


class BuildConfig(_Model):
    context: Path = Path(".")
    dockerfile: Path = Path("Dockerfile")
    target: str | None = None
    args: dict[str, str] = Field(default_factory=dict)
    secrets: list[BuildSecret] = Field(default_factory=list)
    base_image_arg: str | None = "BASE_IMAGE"
    """The build arg that names the base image; a local substitute from `dockroll dev up`
    is used for it when the named image is not present and cannot be pulled."""
    platforms: list[str] = Field(default_factory=list)


class TagsConfig(_Model):
    """Tag rules in docker/metadata-action's grammar. Empty rules mean dockroll's defaults,
    not the action's; docs/configuration.md compares the two."""

    rules: list[str] = Field(default_factory=list)
    flavor: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)


class ContainerConfig(ContainerSettings):
    """How every replica runs; an environment's ``container:`` overrides the settings
    other than ``port``, ``env`` (an environment has its own) and ``stop_grace``."""

    port: int = Field(5000, ge=1, le=65535)
    """The port the service listens on inside the container."""
    env: dict[str, str] = Field(default_factory=dict)
    stop_grace: Duration = 10.0


class HealthConfig(_Model):
    """How dockroll decides a container may take traffic."""

    path: str | None = "/ready"
    """HTTP readiness path; null to rely on the image's Docker HEALTHCHECK alone."""
    use_docker_healthcheck: bool = True
    """Use the image's Docker HEALTHCHECK too: `dockroll test` waits for it to pass; in
    deploys an "unhealthy" verdict fails a replica at once, while the HTTP readiness check
    (the router's) gates traffic, and with no `path` the HEALTHCHECK is the gate."""
    interval: Duration = 0.5
    timeout: Duration = 2.0
    start_timeout: Duration = 60.0

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("the readiness path must start with '/'")
        return value


class SmokeConfig(_Model):
    """The post-build check that the image runs and reports what was built into it."""

    version_path: str | None = "/version"
    version_field: str = "version"
    git_sha_field: str = "git_sha"


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class DeployWindow(_Model):
    """When an environment takes changes, e.g. prod Monday to Thursday, 09:00 to 16:00."""

    days: list[str] = Field(default_factory=lambda: list(_WEEKDAYS[:5]))
    start: str = "00:00"
    end: str = "23:59"
    timezone: str = "UTC"

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [day.strip().lower()[:3] for day in value]
        unknown = [day for day in days if day not in _WEEKDAYS]
        if unknown or not days:
            raise ValueError(f"days are {', '.join(_WEEKDAYS)}; got {value!r}")
        return days

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day like '09:00'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # noqa: PLC0415 - only for windows

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a known time zone (e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DeployWindow:
        if self.start >= self.end:
            raise ValueError(f"the window must start before it ends ({self.start} >= {self.end})")
        return self


class RollingConfig(_Model):
    """Replace replicas in batches, each new one healthy before it gets traffic."""

    batch_size: int = Field(1, ge=1)
    max_surge: int = Field(1, ge=0)
    """Extra replicas allowed above ``replicas`` during the rollout."""
    max_unavailable: int = Field(0, ge=0)
    """Replicas that may be out of rotation at once (only used when max_surge is 0)."""
    max_failures: int = Field(1, ge=1)
    """Failed replicas (never healthy) before the rollout is rolled back."""


class BlueGreenConfig(_Model):
    """Start the new slot beside the old, verify it, switch all traffic at once."""

    verify: list[str] | None = None
    """A command run on the host before the switch; ``$TARGET_URL`` is one new replica."""
    keep_previous: Duration = 300.0
    """How long the old slot is kept (at weight 0) for an instant switch back.

    Past the window `status` says it ended, the next deploy or rollback retires
    the slot, and a rollback redeploys instead of switching; `0` stops it at once.
    """


class CanaryConfig(_Model):
    """Shift traffic to the new release in steps."""

    steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    """Percentages of traffic on the new release; the last must be 100."""
    pause: Duration | None = 30.0
    """Time between steps; null waits for `dockroll promote-canary` at every step."""

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        if not value or value[-1] != 100:
            raise ValueError("canary steps must end at 100")
        if any(not 0 < step <= 100 for step in value) or value != sorted(set(value)):
            raise ValueError("canary steps are increasing percentages between 1 and 100")
        return value


class MigrationConfig(_Model):
    """A one-off job run from the new image before it gets traffic."""

    command: list[str]
    timeout: Duration = 300.0
    env: dict[str, str] = Field(default_factory=dict)
    hold: bool = False
    """Hold new requests at the router while the migration runs (they wait, then flow)."""
    hold_max: Duration = 30.0
    """How long requests may be held; past it they get 503 with Retry-After until the
    migration ends."""


class _Listener(_Model):
    """An ``address`` to listen on, written as a plain string or with more settings."""

    address: str

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return {"address": value} if isinstance(value, str) else value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return str(parse_listen_address(value))

    @property
    def listen_address(self) -> ListenAddress:
        return parse_listen_address(self.address)


class ListenerConfig(_Listener):
    """An address the router's public frontend listens on; a plain string is the address."""

    address: str
    """``IPv4:PORT`` or ``[IPv6]:PORT`` on the engine's host: ``127.0.0.1:8080`` (this
    machine only), ``0.0.0.0:80`` (every IPv4 address), ``[::]:80`` (every IPv6 address)."""

    tls: bool = False
    """Serve HTTPS here with the certificate of ``router.tls``."""
    proxy_protocol: bool = False
    """Expect the PROXY protocol (v1 or v2) from a load balancer in front: the client's
    address comes from it, and its X-Forwarded-Proto/Host and X-Request-ID are kept.
    Connections without it are refused, so enable it only behind such a balancer."""


class AcmeConfig(_Model):
    """A certificate issued and renewed automatically by an ACME CA (HTTP-01)."""

    directory: str
    """The CA's directory URL, e.g. ``https://acme-v02.api.letsencrypt.org/directory``."""
    domains: list[str] = Field(min_length=1, max_length=100)
    """The hostnames the certificate covers; each must reach a plain-HTTP listener on port
    80 of this router, where the CA checks the HTTP-01 challenge."""
    email: str | None = None
    """Contact address of the ACME account (expiry notices)."""
    ca_bundle: str | None = None
    """PEM file trusted for the CA's own HTTPS (relative to dockroll.yml); the system's
    trust store when absent."""
    renew_before: Duration = 30 * 86400.0
    """Renew when the certificate expires within this long (720h: 30 days)."""

    @field_validator("directory")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("the ACME directory must be an https:// URL")
        return value

    @field_validator("domains")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower().rstrip(".") for name in value]
        for name in names:
            if not _ACME_DOMAIN.fullmatch(name):
                raise ValueError(
                    f"{name!r} is not a hostname a CA can check over HTTP-01 "
                    "(letters, digits, '-' and '.'; no wildcards, no IP addresses)"
                )
        if len(set(names)) != len(names):
            raise ValueError("a domain is listed twice")
        return names


_ACME_DOMAIN = re.compile(
    r"(?=.{1,253}$)(?!\d+(\.\d+){3}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]"
)


class TlsConfig(_Model):
    """The certificate of the environment's TLS listeners: from files, or from an ACME CA."""

    cert: str | None = None
    """PEM file with the certificate and its chain (relative to dockroll.yml), e.g. the
    ``fullchain.pem`` of certbot."""
    key: str | None = None
    """PEM file with its private key. Keep it readable by you only."""
    acme: AcmeConfig | None = None
    """Issue and renew the certificate automatically instead (exclusive with cert/key)."""
    redirect_http: bool = True
    """Plain-HTTP listeners answer 301 to the same URL over HTTPS."""
    hsts: Duration | None = None
    """Send ``Strict-Transport-Security: max-age=…`` over HTTPS (e.g. 4320h); off when absent."""

    @model_validator(mode="after")
    def _one_source(self) -> TlsConfig:
        files = self.cert is not None or self.key is not None
        if self.acme is not None and files:
            raise ValueError(
                "router.tls names both certificate files and acme: choose one "
                "(remove cert/key to let the CA issue the certificate)"
            )
        if self.acme is None and (self.cert is None or self.key is None):
            raise ValueError(
                "router.tls needs cert and key (PEM files), or acme: {directory, domains}"
            )
        return self


class RouterConfig(_Model):
    """Where the environment's router listens."""

    listen: list[ListenerConfig] = Field(default_factory=list, max_length=16)
    """Addresses of the public frontend; ``127.0.0.1:<port>`` when empty."""
    tls: TlsConfig | None = None
    """The certificate for listeners with ``tls: true``."""
    metrics: str | None = None
    """Address of the Prometheus exporter (``/metrics``) and stats page (``/stats``);
    ``127.0.0.1:<port + 1000>`` when absent. Keep it private: it shows every server."""

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: str | None) -> str | None:
        return None if value is None else str(parse_listen_address(value))


class EdgeListenerConfig(_Listener):
    """An address the shared edge listens on; a plain string is a plain-HTTP address."""

    address: str
    """``IPv4:PORT`` or ``[IPv6]:PORT`` on the engine's host, e.g. ``0.0.0.0:443``."""
    tls: bool = False
    """Serve HTTPS here, choosing each hostname's certificate by SNI."""


class EdgeAcmeConfig(_Model):
    """Certificates for the environment's ``hosts`` from an ACME CA, one per hostname."""

    directory: str
    """The CA's directory URL, e.g. ``https://acme-v02.api.letsencrypt.org/directory``."""
    email: str | None = None
    """Contact address of the ACME account (expiry notices)."""
    ca_bundle: str | None = None
    """PEM file trusted for the CA's own HTTPS (relative to dockroll.yml); the system's
    trust store when absent."""
    renew_before: Duration = 30 * 86400.0
    """Renew when a certificate expires within this long (720h: 30 days)."""

    @field_validator("directory")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("the ACME directory must be an https:// URL")
        return value


class EdgeTlsConfig(_Model):
    """The certificates of the environment's hostnames on the edge's TLS listeners."""

    cert: str | None = None
    """PEM file with a certificate covering every hostname of ``hosts`` and its chain
    (relative to dockroll.yml)."""
    key: str | None = None
    """PEM file with its private key."""
    acme: EdgeAcmeConfig | None = None
    """Issue and renew a certificate per hostname automatically instead (HTTP-01 answered by
    the edge on its plain listener); exclusive with cert/key."""
    redirect_http: bool = True
    """Plain-HTTP requests for these hostnames get 301 to HTTPS."""
    hsts: Duration | None = None
    """Send ``Strict-Transport-Security: max-age=…`` over HTTPS (e.g. 4320h); off when absent."""

    @model_validator(mode="after")
    def _one_source(self) -> EdgeTlsConfig:
        files = self.cert is not None or self.key is not None
        if self.acme is not None and files:
            raise ValueError("edge.tls names both certificate files and acme: choose one")
        if self.acme is None and (self.cert is None or self.key is None):
            raise ValueError("edge.tls needs cert and key (PEM files), or acme: {directory}")
        return self


class EdgeConfig(_Model):
    """Where the shared edge of the engine host listens (the same for every environment)."""

    listen: list[EdgeListenerConfig] = Field(min_length=1, max_length=16)
    """Addresses of the edge, e.g. ``0.0.0.0:80`` and ``{address: '0.0.0.0:443', tls: true}``;
    every environment with ``hosts`` on one engine names the same ones."""
    tls: EdgeTlsConfig | None = None
    """Certificates for this environment's hostnames on the TLS listeners."""

    @model_validator(mode="after")
    def _tls_listener(self) -> EdgeConfig:
        if self.tls is not None and not any(listener.tls for listener in self.listen):
            raise ValueError(
                "edge.tls names certificates but no edge listener serves TLS: add one "
                "with `tls: true` to edge.listen (e.g. {address: '0.0.0.0:443', tls: true})"
            )
        return self

    def addresses(self) -> list[ListenAddress]:
        return [listener.listen_address for listener in self.listen]


class SwarmConfig(_Model):
    """Run the environment's replicas as Swarm services; ``engine`` names a manager."""

    constraints: list[str] = Field(default_factory=list)
    """Placement constraints, e.g. ``node.role==worker`` or ``node.labels.zone==a``."""
    cpus: float | None = Field(None, gt=0)
    """CPU limit per replica."""
    memory_mb: int | None = Field(None, ge=4)
    """Memory limit per replica, MiB."""
    restart_attempts: int = Field(0, ge=0)
    """Restarts of a failing replica's task; 0 restarts it as often as it takes."""
    router: str = Field("container", pattern="^(container|service)$")
    """``container``: the router is one HAProxy container on the manager, in a holder
    (hitless image upgrades). ``service``: a global Swarm service on the ingress nodes,
    host-mode ports (no ACME or edge hostnames yet)."""
    ingress: list[str] = Field(default_factory=lambda: ["node.labels.dockroll.ingress==true"])
    """Placement constraints of the router's tasks with ``router: service``."""
    router_image: str | None = None
    """The HAProxy image of the router's tasks with ``router: service``, pulled by every
    ingress node (``haproxy:2.6`` when unset)."""


class EnvironmentConfig(_Model):
    """One deployment target: dev, staging, prod …"""

    port: int = Field(ge=1, le=65535)
    """The router's port on 127.0.0.1 for this environment; with ``router.listen`` it is
    the first listener's port unless given."""
    engine: str | None = None
    """Docker endpoint (``unix://``, ``tcp://``, ``ssh://``); the local engine when absent."""
    engine_certs: Path | None = None
    """Directory with ``ca.pem``, ``cert.pem`` and ``key.pem``: a ``tcp://`` engine is then
    reached over TLS, verified against that CA, with this client certificate."""
    registry: str | None = None
    """The registry (``host[:port]``) as this environment's engine reaches it, when that
    differs from the address in ``image``: a remote host pulls releases from here."""
    swarm: SwarmConfig | None = None
    """Run on a Docker Swarm: replicas become services placed on its nodes."""
    router_bind: str = "127.0.0.1"
    """The address on the engine's host the router's ports are published on; ``0.0.0.0``
    serves clients of a remote host over its network. ``router.listen`` and
    ``router.metrics`` name their own addresses."""
    strategy: Strategy = Strategy.ROLLING
    replicas: int = Field(1, ge=1, le=64)
    env: dict[str, str] = Field(default_factory=dict)
    promote_from: str | None = None
    requires_approval: bool = False
    allow_self_approval: bool = False
    """Whether the person promoting a release may also be the one who approved it."""
    min_soak: Duration = 0.0
    """How long a release must have run in ``promote_from`` before it may come here."""
    window: DeployWindow | None = None
    allow_mutable_tags: bool = False
    tags: list[str] = Field(default_factory=list)
    """Environment tags written on promotion, e.g. ``staging`` and ``staging-{{version}}``."""
    rolling: RollingConfig = Field(default_factory=RollingConfig)
    blue_green: BlueGreenConfig = Field(default_factory=BlueGreenConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    migrate: MigrationConfig | None = None
    drain_timeout: Duration = 30.0
    """How long draining waits for in-flight requests before stopping a replica."""
    keep_releases: int = Field(3, ge=1)
    """Releases whose images stay on the engine for fast rollback."""
    analysis: AnalysisSettings | None = None
    """Automatic canary analysis; none means rollouts are judged by health checks alone."""
    hooks: Hooks = Field(default_factory=Hooks)
    """Commands or HTTP endpoints run at pre-rollout, pre-traffic, post-rollout and rollback."""
    router: RouterConfig = Field(default_factory=RouterConfig)
    """Where the router listens (public addresses, metrics)."""
    processes: dict[str, ProcessOverride] = Field(default_factory=dict)
    """Per process without router: what this environment changes (its replicas)."""
    container: ContainerSettings | None = None
    """This environment's container settings: lists (env files, secrets, volumes) add to the
    top-level ones (a secret or volume of the same name or path replaces it), the rest
    replace them."""
    hosts: list[str] = Field(default_factory=list)
    """Hostnames the engine host's shared edge routes to this environment (by Host header),
    each optionally with a path prefix (``shop.example.com/api``: the longest prefix wins);
    another environment (of any project) cannot claim them."""
    edge: EdgeConfig | None = None
    """Where the shared edge listens; required with ``hosts``."""

    @field_validator("hosts")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        hosts = [parse_route(host) for host in value]
        if len(set(hosts)) != len(hosts):
            raise ValueError("names a hostname twice")
        return hosts

    @model_validator(mode="before")
    @classmethod
    def _port_from_listeners(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "port" in value:
            return value
        router = value.get("router")
        listen = router.get("listen") if isinstance(router, dict) else None
        if isinstance(listen, list) and listen:
            first = listen[0]
            address = first.get("address") if isinstance(first, dict) else first
            if isinstance(address, str):
                try:
                    return {**value, "port": parse_listen_address(address).port}
                except ValueError:
                    # The listener's own check says what is wrong; "port required" would not.
                    return {**value, "port": 1}
        return value

    @model_validator(mode="after")
    def _listeners_apart(self) -> EnvironmentConfig:
        listeners = self.listeners()
        if self.router.listen and self.port not in {a.port for a in listeners}:
            raise ValueError(
                f"port {self.port} is none of router.listen's ports "
                f"({', '.join(str(a) for a in listeners)}): drop `port`, which then "
                "defaults to the first listener's"
            )
        if self.router.metrics is None and self.port + 1000 > 65535:
            raise ValueError(
                f"the metrics listener defaults to port {self.port} + 1000, past 65535: "
                "set router.metrics (e.g. 127.0.0.1:9100)"
            )
        if self.hosts and self.edge is None:
            raise ValueError(
                f"hosts ({', '.join(self.hosts)}) need an edge listener: "
                "set edge.listen (e.g. ['0.0.0.0:80'])"
            )
        if self.edge is not None and not self.hosts:
            raise ValueError("edge.listen is set but no hosts: name the hostnames to serve")
        tls = [listener.address for listener in self.router.listen if listener.tls]
        if tls and self.router.tls is None:
            raise ValueError(
                f"router.listen has TLS listeners ({', '.join(tls)}) but no certificate: "
                "set router.tls.cert and router.tls.key, or router.tls.acme"
            )
        if self.router.tls is not None and not tls:
            raise ValueError(
                "router.tls names a certificate but no listener serves TLS: "
                "add one with `tls: true` to router.listen "
                "(e.g. {address: '0.0.0.0:443', tls: true})"
            )
        named = self.named_listeners()
        for i, (where, address) in enumerate(named):
            for other_where, other in named[i + 1 :]:
                if address.clashes_with(other):
                    raise ValueError(
                        f"{where} {address} and {other_where} {other} cannot both listen: "
                        "give each its own port"
                    )
        return self

    def listeners(self) -> list[ListenAddress]:
        """The public frontend's addresses (``<router_bind>:<port>`` by default)."""
        if self.router.listen:
            return [listener.listen_address for listener in self.router.listen]
        return [ListenAddress(self.router_bind, self.port)]

    def metrics_address(self) -> ListenAddress:
        if self.router.metrics is not None:
            return parse_listen_address(self.router.metrics)
        return ListenAddress(self.router_bind, self.port + 1000)

    def named_listeners(self) -> list[tuple[str, ListenAddress]]:
        """Every address the router binds, each with the field that sets it."""
        public = self.listeners()
        names = (
            [f"router.listen[{i}]" for i in range(len(public))] if self.router.listen else ["port"]
        )
        metrics = "router.metrics" if self.router.metrics else "port + 1000 (metrics)"
        return [*zip(names, public, strict=True), (metrics, self.metrics_address())]

    @field_validator("registry")
    @classmethod
    def _registry_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _REGISTRY_ADDRESS.match(value):
            raise ValueError(
                "name a registry as host[:port], without a scheme or path (e.g. 10.0.0.5:5000)"
            )
        return value

    @field_validator("router_bind")
    @classmethod
    def _bind_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("an IP address of the engine's host, e.g. 0.0.0.0") from None
        return value


class MirrorConfig(_Model):
    """A backup registry that receives a copy of every release."""

    registry: str
    """``host[:port]`` of the mirror."""
    repository: str | None = None
    """Repository path there; the primary's path when absent."""
    insecure: bool = False
    """Talk plain HTTP (loopback registries always do)."""


class RetentionConfig(_Model):
    """What ``dockroll prune`` keeps."""

    keep: int = Field(10, ge=1)
    """The newest releases kept, by push time."""
    protected_tags: list[str] = Field(default_factory=list)
    """Tags (shell patterns such as ``v*``) whose digests are never deleted."""


_SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown", "none")


class ScanConfig(_Model):
    """What ``dockroll scan`` does besides writing the SBOM."""

    fail_on: str = "critical"
    """The lowest severity that fails the scan (exit 14); ``none`` never fails it."""
    scanner: str = "auto"
    """``auto`` (Trivy, else Grype, when installed), ``trivy``, ``grype`` or ``none``."""

    @field_validator("fail_on")
    @classmethod
    def _severity(cls, value: str) -> str:
        if value.strip().lower() not in _SEVERITIES:
            raise ValueError(f"use one of {', '.join(_SEVERITIES)}")
        return value.strip().lower()

    @field_validator("scanner")
    @classmethod
    def _scanner(cls, value: str) -> str:
        if value.strip().lower() not in ("auto", "trivy", "grype", "none"):
            raise ValueError("use auto, trivy, grype or none")
        return value.strip().lower()


class Config(_Model):
    """A parsed dockroll.yml."""

    service: str
    image: str
    """The repository images are pushed to, e.g. ``127.0.0.1:5000/acme/web``."""
    build: BuildConfig = Field(default_factory=BuildConfig)
    tags: TagsConfig = Field(default_factory=TagsConfig)
    container: ContainerConfig = Field(default_factory=ContainerConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    smoke: SmokeConfig = Field(default_factory=SmokeConfig)
    environments: dict[str, EnvironmentConfig] = Field(
        default_factory=dict,
        json_schema_extra={
            "propertyNames": {
                "pattern": _ENVIRONMENT_NAME.pattern,
                "maxLength": MAX_ENVIRONMENT_NAME,
            }
        },
    )
    mirrors: list[MirrorConfig] = Field(default_factory=list)
    mirror_on_push: bool = True
    """Copy each pushed or promoted release to every mirror right away."""
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    accessories: dict[str, AccessoryConfig] = Field(default_factory=dict)
    """Long-lived dependencies (databases, caches …) each environment runs beside the
    service, started by `dockroll accessory up` and never rolled with releases."""
    processes: dict[str, ProcessConfig] = Field(default_factory=dict)
    """Process types run from the same release, e.g. `web` (behind the router), `worker` and
    `scheduler` with their own command; none means one process, the routed one."""

    root: Path = Field(default=Path("."), exclude=True)
    """Directory of the config file; relative paths resolve against it."""

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str) -> str:
        if not _SERVICE_NAME.match(value):
            raise ValueError(
                "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image_name(cls, value: str) -> str:
        value = value.strip().lower()
        if not value:
            raise ValueError(
                "is empty: name the repository images are pushed to (e.g. 127.0.0.1:5000/team/web)"
            )
        if "@" in value or _has_tag(value):
            raise ValueError(
                "name the repository only (e.g. 127.0.0.1:5000/team/web); tags are computed"
            )
        try:
            parse_reference(value)
        except UsageError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("environments")
    @classmethod
    def _environment_names(
        cls, value: dict[str, EnvironmentConfig]
    ) -> dict[str, EnvironmentConfig]:
        for name in value:
            problem = environment_name_problem(name)
            if problem is not None:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _environment_order(self) -> Config:
        for name, env in self.environments.items():
            if env.promote_from is not None and env.promote_from not in self.environments:
                raise ValueError(
                    f"environments.{name}.promote_from names {env.promote_from!r}, "
                    f"which is not an environment here ({', '.join(self.environments)})"
                )
        cycle = _promotion_cycle(self.environments)
        if cycle is not None:
            raise ValueError(_cycle_message(cycle))
        for name in self.environments:
            longest = f"{self.service}-{name}-{_LONGEST_REPLICA_SUFFIX}"
            if len(longest) > _MAX_SERVER_NAME:
                raise ValueError(
                    f"service {self.service!r} and environment {name!r} together make replica "
                    f"names such as {longest} ({len(longest)} characters), longer than the "
                    f"{_MAX_SERVER_NAME} the router accepts: shorten one of them"
                )
        by_port: dict[int, list[str]] = {}
        for name, env in self.environments.items():
            by_port.setdefault(env.port, []).append(name)
        for port, names in by_port.items():
            if len(names) > 1:
                fields = " and ".join(f"environments.{name}.port" for name in names)
                raise ValueError(
                    f"{fields} share {port}; each environment needs its own router port"
                )
        return self

    @model_validator(mode="after")
    def _listeners_apart(self) -> Config:
        """No two environments on one engine may listen where the other does."""
        seen: list[tuple[str | None, str, ListenAddress]] = []
        for name, env in self.environments.items():
            for where, address in env.named_listeners():
                field = f"environments.{name}.{where}"
                for engine, other_field, other in seen:
                    if engine == env.engine and address.clashes_with(other):
                        raise ValueError(
                            f"{field} {address} clashes with {other_field} {other} on the same "
                            "engine: give each environment its own ports"
                        )
            seen.extend(
                (env.engine, f"environments.{name}.{w}", a) for w, a in env.named_listeners()
            )
        edges: dict[str | None, tuple[str, list[EdgeListenerConfig]]] = {}
        claimed: dict[str, str] = {}
        for name, env in self.environments.items():
            if env.edge is None:
                continue
            first = edges.setdefault(env.engine, (name, env.edge.listen))
            if first[1] != env.edge.listen:
                raise ValueError(
                    f"environments.{name}.edge.listen differs from environments.{first[0]}'s "
                    "on the same engine: one edge serves them both"
                )
            for host in env.hosts:
                if host in claimed:
                    raise ValueError(
                        f"environments.{name}.hosts and environments.{claimed[host]}.hosts "
                        f"both claim {host}"
                    )
                claimed[host] = name
            for address in env.edge.addresses():
                for engine, field, other in seen:
                    if engine == env.engine and address.clashes_with(other):
                        raise ValueError(
                            f"environments.{name}.edge.listen {address} clashes with {field} "
                            f"{other}: the edge and the routers need ports of their own"
                        )
        return self

    @model_validator(mode="after")
    def _processes(self) -> Config:
        problems = process_problems(self) + accessory_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def promotion_order(self) -> list[str]:
        """Environment names from first to last along their ``promote_from`` links."""
        cycle = _promotion_cycle(self.environments)
        if cycle is not None:  # only a config built without validation gets here
            raise ConfigError(_cycle_message(cycle))
        ordered: list[str] = []
        remaining = dict(self.environments)
        while remaining:
            ready = [
                name
                for name, env in remaining.items()
                if env.promote_from is None or env.promote_from not in remaining
            ]
            for name in ready:
                ordered.append(name)
                del remaining[name]
        return ordered

    def environment(self, name: str) -> EnvironmentConfig:
        """The named environment, or a ConfigError listing the ones that exist."""
        known = ", ".join(self.environments) or "none are configured"
        problem = environment_name_problem(name)
        if problem is not None:
            raise UsageError(problem, hint=f"environments in dockroll.yml: {known}")
        try:
            return self.environments[name]
        except KeyError:
            raise ConfigError(
                f"no environment {name!r} in dockroll.yml ({known})",
                hint="add it under `environments:` or pick one of those",
            ) from None

    @property
    def context_dir(self) -> Path:
        return (self.root / self.build.context).resolve()

    @property
    def dockerfile_path(self) -> Path:
        return (self.context_dir / self.build.dockerfile).resolve()


def _promotion_cycle(environments: dict[str, EnvironmentConfig]) -> list[str] | None:
    """The first ``promote_from`` loop found, as names in link order, or None."""
    settled: set[str] = set()
    for start in environments:
        path: list[str] = []
        name: str | None = start
        while name is not None and name in environments and name not in settled:
            if name in path:
                return path[path.index(name) :]
            path.append(name)
            name = environments[name].promote_from
        settled.update(path)
    return None


def _cycle_message(cycle: list[str]) -> str:
    if len(cycle) == 1:
        return (
            f"environments.{cycle[0]}.promote_from names {cycle[0]!r} itself; "
            "remove it or name the environment releases come from"
        )
    sources = cycle[1:] + cycle[:1]
    links = ", ".join(f"{name} from {source}" for name, source in zip(cycle, sources, strict=True))
    names = ", ".join(cycle)
    return (
        f"environments {names} promote from each other in a cycle ({links}); "
        "one environment must have no promote_from: it takes releases from the registry"
    )


def _has_tag(reference: str) -> bool:
    last = reference.rsplit("/", 1)[-1]
    return ":" in last


def _interpolate(value: Any, where: str, missing: list[tuple[str, str, str]]) -> Any:
    """``value`` with every ``${…}`` replaced; each required variable that is not set
    is added to ``missing`` as (field, variable, what is wrong) instead."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda match: _substitute(match, where, missing), value)
    if isinstance(value, list):
        return [_interpolate(item, f"{where}.{i}", missing) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            key: _interpolate(item, f"{where}.{key}" if where else str(key), missing)
            for key, item in value.items()
        }
    return value


def _substitute(match: re.Match[str], where: str, missing: list[tuple[str, str, str]]) -> str:
    """One ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``, ``${NAME:?message}``
    or ``${NAME?message}``, as a POSIX shell (and docker compose) expands it."""
    name, operator, argument = match.group("name", "operator", "argument")
    value = os.environ.get(name)
    if operator is None:
        return value or ""
    unset = value is None or (operator.startswith(":") and value == "")
    if not unset:
        return value or ""
    if operator.endswith("-"):
        return argument or ""
    state = "unset or empty" if operator.startswith(":") else "unset"
    message = argument.strip() or "a value is required"
    missing.append((where or "(top level)", name, f"{name} is {state}: {message}"))
    return ""


# Far beyond any real dockroll.yml, far below what nested YAML aliases (shared
# nodes that every later walk copies) can make of a few hundred bytes.
MAX_EXPANDED_NODES = 100_000


def _expanded_size(value: Any, sizes: dict[int, int]) -> int:
    """How many values ``value`` holds once every alias is copied out.

    Aliases load as the same Python object, so counting each object once (by id)
    keeps this linear in the file's size however large the expansion is.
    """
    if not isinstance(value, dict | list):
        return 1
    known = sizes.get(id(value))
    if known is not None:
        return known
    sizes[id(value)] = MAX_EXPANDED_NODES + 1  # a cycle counts as too large
    children = value.values() if isinstance(value, dict) else value
    total = 1
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_EXPANDED_NODES:
            break
    sizes[id(value)] = total
    return total


def find_config(start: Path | None = None) -> Path:
    """The nearest dockroll.yml from ``start`` (default: cwd) upwards."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / DEFAULT_CONFIG_NAME
        if candidate.is_file():
            return candidate
        if candidate.exists():
            raise ConfigError(
                f"{candidate} is not a file",
                hint=f"{DEFAULT_CONFIG_NAME} must be a YAML file; rename the directory "
                "or pass --config PATH",
            )
    raise ConfigError(
        f"no {DEFAULT_CONFIG_NAME} in {here} or any parent directory",
        hint="run dockroll from the service's directory or pass --config PATH",
    )


def load_config(path: Path | None = None) -> Config:
    """Read and validate a config file (``path``, ``$DOCKROLL_CONFIG`` or the nearest one)."""
    if path is None:
        explicit = os.environ.get("DOCKROLL_CONFIG")
        path = Path(explicit) if explicit else find_config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="pass --config PATH to an existing file"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path} is a directory, not a config file",
            hint="pass --config PATH to a dockroll.yml file",
        ) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{exc.object[exc.start]:02x} on line {line}",
            hint="save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a dockroll.yml") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping with at least 'service' and 'image'")
    try:
        too_large = _expanded_size(raw, {}) > MAX_EXPANDED_NODES
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a dockroll.yml") from None
    if too_large:
        raise ConfigError(
            f"{path} expands to more than {MAX_EXPANDED_NODES:,} values through YAML aliases",
            hint="write the repeated parts out, or use fewer aliases",
        )
    missing: list[tuple[str, str, str]] = []
    data = _interpolate(raw, "", missing)
    if missing:
        names = sorted({name for _, name, _ in missing})
        raise ConfigError(
            f"{path} needs environment variables that are not set:\n"
            + "\n".join(f"  {where}: {problem}" for where, _, problem in missing),
            hint=f"set {', '.join(names)} (e.g. `export {names[0]}=…`) and run it again",
        )
    data["root"] = path.resolve().parent
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path} is invalid:\n{_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see docs/configuration.md)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
