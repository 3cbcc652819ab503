"""How a replica runs: command, env files, secrets, config files, volumes, resources, health.

The models here are the settings of dockroll.yml's ``container:`` section and of
an environment's ``container:`` overrides; :func:`resolve_container` merges the
two for one environment, reads env files and secrets, and gives the
:class:`ContainerSpec` the executor starts replicas from. Nothing here talks to
an engine.

Secrets never leave :class:`ContainerSpec` except into the engine's create call:
they are left out of its repr, of labels (only a keyed digest of all of them
enters the config hash, so a rotated secret is a new rollout), of the ledger and
of every error message, which names the field and the source, never the value.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dockroll import labels
from dockroll.durations import Duration
from dockroll.errors import ConfigError

if TYPE_CHECKING:
    from dockroll.config import Config
    from dockroll.engine.port import RunRequest

__all__ = [
    "MAX_FILE_SIZE",
    "SECRETS_DIR",
    "ContainerFile",
    "ContainerSecret",
    "ContainerSettings",
    "ContainerSpec",
    "Healthcheck",
    "VolumeMount",
    "parse_env_file",
    "parse_memory",
    "parse_volume",
    "resolve_container",
    "resolve_settings",
    "run_request",
]

SECRETS_DIR = "/run/secrets"
"""Where secrets delivered as files appear inside the container (as compose puts them)."""

MAX_FILE_SIZE = 1000 * 1024
"""The largest config file (``container.files``): Swarm's limit for a config."""

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_MIN_MEMORY = 6 * 1024**2  # the engine refuses less than 6 MiB
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
_VOLUME_MODES = {"ro", "rw"}
_FILE_MODE = re.compile(r"^0?[0-7]{3}$")


def parse_memory(value: object) -> int:
    """Bytes from ``536870912``, ``"512m"``, ``"1.5g"``, ``"256MiB"`` (1k = 1024, as Docker)."""
    if isinstance(value, bool):
        raise ValueError("a memory size is a number of bytes or a string like '512m' or '1g'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _MEMORY.match(value)):
        size = int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])
    else:
        raise ValueError(
            f"{value!r} is not a memory size; write bytes or a number with b, k, m, g "
            "(e.g. '512m', '1g')"
        )
    if size < _MIN_MEMORY:
        raise ValueError(f"{value!r} is below the engine's minimum of 6m")
    return size


def _words(value: object) -> object:
    """A command written as one string is split the way a shell would (as compose does)."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r} into words: {exc}") from None
    return value


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str | Path) else value


@dataclass(frozen=True)
class VolumeMount:
    """One mount: a named volume of the environment, or a host path."""

    source: str
    """For ``volume``: the name in dockroll.yml; for ``bind``: the absolute host path."""
    target: str
    read_only: bool = False
    kind: Literal["volume", "bind"] = "volume"


def parse_volume(text: str, root: Path | None = None) -> VolumeMount:
    """``name:/path[:ro]`` (a named volume) or ``./dir:/path[:ro]`` / ``/dir:/path`` (a bind).

    A relative host path is taken from ``root`` (dockroll.yml's directory).
    """
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise ValueError(
            f"{text!r} is not a volume; write NAME:/path, ./host/dir:/path or /host/dir:/path, "
            "optionally with :ro"
        )
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in _VOLUME_MODES:
        raise ValueError(f"{text!r}: the mode is ro or rw, not {mode!r}")
    if not target.startswith("/"):
        raise ValueError(f"{text!r}: the path in the container must be absolute")
    if source.startswith(("/", ".", "~")):
        host = Path(source).expanduser()
        if not host.is_absolute():
            host = (root or Path(".")) / host
        return VolumeMount(str(host.resolve()), target, mode == "ro", "bind")
    if not _VOLUME_NAME.match(source):
        raise ValueError(
            f"{text!r}: a volume name is letters, digits, '.', '_' and '-' "
            "(a host path starts with /, ./ or ../)"
        )
    return VolumeMount(source, target, mode == "ro", "volume")


def parse_env_file(text: str, where: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose's ``env_file`` reads them.

    Blank lines and ``#`` comments are skipped, ``export`` in front is allowed,
    a value in matching single or double quotes loses them, and a bare ``KEY``
    takes the variable from dockroll's own environment (left out when unset).
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not _ENV_NAME.match(key):
            raise ConfigError(
                f"{where}, line {number}: {key!r} is not a variable name",
                hint="each line is KEY=VALUE (letters, digits and _ in the name)",
            )
        if not sep:
            if key in os.environ:
                values[key] = os.environ[key]
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContainerSecret(_Model):
    """A secret handed to the replicas, read when a deploy starts."""

    name: str
    """The environment variable it becomes (``as: env``) or the file name under
    /run/secrets (``as: file``)."""
    file: Path | None = None
    """A file holding the secret, relative to dockroll.yml; a trailing newline is dropped."""
    env: str | None = None
    """A variable of dockroll's own environment holding the secret (e.g. set by CI)."""
    as_: Literal["env", "file"] = Field("env", alias="as")
    """``env``: an environment variable of the container; ``file``: /run/secrets/NAME,
    readable inside the container only (not shown by `docker inspect`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_source(self) -> ContainerSecret:
        if (self.file is None) == (self.env is None):
            raise ValueError("a secret takes exactly one of 'file' or 'env'")
        pattern = _ENV_NAME if self.as_ == "env" else _SECRET_NAME
        if not pattern.match(self.name):
            kind = "an environment variable" if self.as_ == "env" else "a file"
            raise ValueError(f"secret name {self.name!r} cannot name {kind}")
        return self


class ContainerFile(_Model):
    """A config file put into every replica before it starts (not a secret)."""

    source: Path
    """The file to copy, relative to dockroll.yml; read at every deploy, its content
    enters the config hash."""
    target: str
    """Its absolute path in the container."""
    mode: str = "0444"
    """Its permissions as a quoted octal string, e.g. ``"0440"``; owned by root."""

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "/../" in f"{value}/":
            raise ValueError(f"{value!r}: the path in the container is an absolute file path")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        # YAML reads 0444 as an octal number and 444 as a decimal one: only a string is clear.
        if not isinstance(value, str) or not _FILE_MODE.match(value.strip()):
            raise ValueError(
                f'{value!r} is not a file mode; write it as a quoted octal string, e.g. "0440"'
            )
        return value.strip()

    @property
    def permissions(self) -> int:
        return int(self.mode, 8)


class Healthcheck(_Model):
    """A Docker health check as compose's ``healthcheck:`` writes it; replaces the image's."""

    test: list[str] | None = None
    """``["CMD", "prog", "arg"]``, ``["CMD-SHELL", "cmd"]`` or one string (run by a shell)."""
    interval: Duration | None = None
    """Time between two checks; the engine's default (30s) when absent."""
    timeout: Duration | None = None
    """How long one check may take."""
    retries: int | None = Field(None, ge=1)
    """Failures in a row before the container is unhealthy."""
    start_period: Duration | None = None
    """Time after start during which failures do not count."""
    disable: bool = False
    """Turn the image's HEALTHCHECK off (as ``test: ["NONE"]``)."""

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, value: object) -> object:
        if isinstance(value, str):
            return ["CMD-SHELL", value]
        if isinstance(value, list) and value and value[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError('a test list starts with "CMD", "CMD-SHELL" or "NONE"')
        return value

    @model_validator(mode="after")
    def _something(self) -> Healthcheck:
        if not self.disable and not self.test:
            raise ValueError("give a 'test' (or 'disable: true')")
        return self

    def engine_form(self) -> dict[str, Any]:
        """The engine API's ``Healthcheck`` object (durations in nanoseconds)."""
        if self.disable or (self.test and self.test[0] == "NONE"):
            return {"test": ["NONE"]}
        check: dict[str, Any] = {"test": list(self.test or ())}
        for key, seconds in (
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("start_period", self.start_period),
        ):
            if seconds is not None:
                # The engine refuses intervals under 1 ms; 0 means its default.
                check[key] = max(int(seconds * 1e9), 1_000_000)
        if self.retries is not None:
            check["retries"] = self.retries
        return check


class ContainerSettings(_Model):
    """Settings of every replica; an environment's ``container:`` overrides them."""

    command: list[str] | None = None
    """Replaces the image's CMD; a string is split as a shell would."""
    entrypoint: list[str] | None = None
    """Replaces the image's ENTRYPOINT; a string is split as a shell would."""
    env_file: list[Path] = Field(default_factory=list)
    """Files of ``KEY=VALUE`` lines (relative to dockroll.yml), read at every deploy;
    ``env`` wins over them."""
    secrets: list[ContainerSecret] = Field(default_factory=list)
    """Secrets from files or dockroll's environment; never printed or stored by dockroll."""
    files: list[ContainerFile] = Field(default_factory=list)
    """Config files copied into every replica before it starts (a Swarm config each on a
    Swarm); a changed file is a new rollout."""
    volumes: list[str] = Field(default_factory=list)
    """``NAME:/path[:ro]`` for a volume of this environment (shared by its replicas and
    kept across releases) or ``./host/dir:/path[:ro]`` for a host directory."""
    memory: int | None = None
    """Memory limit: bytes, or a size such as ``512m`` or ``1g``."""
    cpus: float | None = Field(None, gt=0, le=1024)
    """CPU limit in cores, e.g. ``0.5``."""
    restart: str | None = None
    """``unless-stopped`` (the default), ``always``, ``on-failure[:N]`` or ``no``."""
    extra_hosts: dict[str, str] = Field(default_factory=dict)
    """Names added to the container's /etc/hosts: ``{name: address}`` or ``["name:address"]``."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels of your own; ``dev.dockroll.*`` is reserved."""
    healthcheck: Healthcheck | None = None
    """A compose-style health check that replaces the image's HEALTHCHECK."""

    @field_validator("command", "entrypoint", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _words(value)

    @field_validator("env_file", mode="before")
    @classmethod
    def _files(cls, value: object) -> object:
        return _as_list(value)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: object) -> object:
        return None if value is None else parse_memory(value)

    @field_validator("restart")
    @classmethod
    def _restart(cls, value: str | None) -> str | None:
        if value is not None and not _RESTART.match(value.strip()):
            raise ValueError(
                f"{value!r} is not a restart policy: use unless-stopped, always, "
                "on-failure, on-failure:N or no"
            )
        return None if value is None else value.strip()

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_volume(text)
        targets = [parse_volume(text).target for text in value]
        doubled = sorted({t for t in targets if targets.count(t) > 1})
        if doubled:
            raise ValueError(f"{', '.join(doubled)} is mounted twice")
        return value

    @field_validator("extra_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        if isinstance(value, list):
            hosts: dict[str, str] = {}
            for item in value:
                name, sep, address = str(item).replace("=", ":", 1).partition(":")
                if not sep or not name or not address:
                    raise ValueError(f"{item!r} is not NAME:ADDRESS")
                hosts[name.strip()] = address.strip()
            return hosts
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(key for key in value if key.startswith(labels.PREFIX))
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)}: labels starting with {labels.PREFIX} are dockroll's own"
            )
        return value

    @model_validator(mode="after")
    def _unique_secrets(self) -> ContainerSettings:
        names = [secret.name for secret in self.secrets]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"secret {', '.join(doubled)} is listed twice")
        targets = [item.target for item in self.files]
        doubled = sorted({t for t in targets if targets.count(t) > 1})
        if doubled:
            raise ValueError(f"file {', '.join(doubled)} is listed twice")
        clash = sorted(set(targets) & _secret_paths(self.secrets))
        if clash:
            raise ValueError(f"file {', '.join(clash)} is also where a secret goes")
        for target in targets:
            hidden = _under_volume(target, self.volumes)
            if hidden:
                raise ValueError(f"file {target} is in the volume at {hidden}, which would hide it")
        return self


def _secret_paths(secrets: list[ContainerSecret]) -> set[str]:
    return {f"{SECRETS_DIR}/{s.name}" for s in secrets if s.as_ == "file"}


def _under_volume(target: str, volumes: list[str]) -> str | None:
    """The container path of the volume ``target`` is in (or is), if any."""
    for text in volumes:
        mounted = parse_volume(text).target.rstrip("/") or "/"
        if target == mounted or target.startswith(f"{mounted.rstrip('/')}/"):
            return mounted
    return None


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a replica of one environment is started with, resolved."""

    env: Mapping[str, str]
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    volumes: tuple[VolumeMount, ...] = ()
    memory: int | None = None
    nano_cpus: int | None = None
    restart: str = "unless-stopped"
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Mapping[str, Any] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    """What the config hash is computed from (secrets only as one keyed digest)."""
    secret_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    secret_files: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    """Path in the container → content."""
    config_files: Mapping[str, tuple[bytes, int]] = field(default_factory=dict, repr=False)
    """Path in the container → (content, mode) of ``files:`` (not secrets)."""

    @property
    def config_hash(self) -> str:
        return labels.config_hash(self.settings)

    def volume_name(self, service: str, environment: str, name: str) -> str:
        """The engine's name of a named volume: one per service and environment."""
        return f"dockroll-{service}-{environment}-{name}"


def _overlay(base: ContainerSettings, override: ContainerSettings) -> ContainerSettings:
    """``base`` with what ``override`` sets: lists add up (a secret of the same name or a
    file or volume at the same path is replaced), mappings merge, anything else is replaced."""
    secrets = {s.name: s for s in base.secrets} | {s.name: s for s in override.secrets}
    files = {f.target: f for f in base.files} | {f.target: f for f in override.files}
    volumes = {parse_volume(v).target: v for v in base.volumes} | {
        parse_volume(v).target: v for v in override.volumes
    }
    return ContainerSettings(
        command=override.command if override.command is not None else base.command,
        entrypoint=override.entrypoint if override.entrypoint is not None else base.entrypoint,
        env_file=[*base.env_file, *[p for p in override.env_file if p not in base.env_file]],
        secrets=list(secrets.values()),
        files=list(files.values()),
        volumes=list(volumes.values()),
        memory=override.memory if override.memory is not None else base.memory,
        cpus=override.cpus if override.cpus is not None else base.cpus,
        restart=override.restart or base.restart,
        extra_hosts={**base.extra_hosts, **override.extra_hosts},
        labels={**base.labels, **override.labels},
        healthcheck=override.healthcheck or base.healthcheck,
    )


def _merged(
    config: Config, environment: str, process: str | None
) -> tuple[ContainerSettings, dict[str, str]]:
    """The container settings of ``environment`` (and ``process``): top level, then the
    environment's overrides, then the process's.

    Returns the merged settings and, for each env file and secret, the dockroll.yml
    field it came from (for error messages).
    """
    env_config = config.environments.get(environment)
    layers: list[tuple[str, ContainerSettings | None]] = [
        ("container", config.container),
        (
            f"environments.{environment}.container",
            env_config.container if env_config is not None else None,
        ),
        (f"processes.{process}", config.processes.get(process) if process else None),
    ]
    where: dict[str, str] = {}
    merged: ContainerSettings | None = None
    for prefix, layer in layers:
        if layer is None:
            continue
        for index, path in enumerate(layer.env_file):
            where[f"env_file:{path}"] = f"{prefix}.env_file.{index}"
        for index, secret in enumerate(layer.secrets):
            where[f"secret:{secret.name}"] = f"{prefix}.secrets.{index}"
        for index, item in enumerate(layer.files):
            where[f"file:{item.target}"] = f"{prefix}.files.{index}"
        if merged is not None:
            _check_file_paths(merged, layer, where)
        merged = layer if merged is None else _overlay(merged, layer)
    assert merged is not None  # the top level always exists
    return merged, where


def _read_secret(secret: ContainerSecret, root: Path, where: str) -> str:
    if secret.env is not None:
        value = os.environ.get(secret.env)
        if value is None:
            raise ConfigError(
                f"{where}: secret {secret.name} comes from ${secret.env}, which is not set",
                hint=f"export {secret.env} before deploying (its value is never printed)",
            )
        return value
    assert secret.file is not None  # one source, checked by the model
    path = secret.file if secret.file.is_absolute() else root / secret.file
    try:
        return path.read_text(encoding="utf-8").removesuffix("\n")
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: the file of secret {secret.name}, {path}, does not exist",
            hint="create it (keep it out of git) or point `file:` at it",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ConfigError(
            f"{where}: cannot read the file of secret {secret.name}, {path}: {reason}"
        ) from None


def _check_file_paths(
    base: ContainerSettings, override: ContainerSettings, where: Mapping[str, str]
) -> None:
    """A file of one layer where a secret of another goes, or inside a volume of another,
    is an error once merged."""
    secrets = {s.name: s for s in base.secrets} | {s.name: s for s in override.secrets}
    paths = _secret_paths(list(secrets.values()))
    volumes = {parse_volume(v).target: v for v in base.volumes} | {
        parse_volume(v).target: v for v in override.volumes
    }
    for target in sorted({f.target for f in [*base.files, *override.files]}):
        field_name = where.get(f"file:{target}", "container.files")
        if target in paths:
            raise ConfigError(
                f"{field_name}: file {target} is also where a secret goes",
                hint="give the file another `target:` or rename the secret",
            )
        hidden = _under_volume(target, list(volumes.values()))
        if hidden:
            raise ConfigError(
                f"{field_name}: file {target} is in the volume at {hidden}, which would hide it",
                hint="give the file a `target:` outside the volumes, or put it into the volume",
            )


def _read_file(item: ContainerFile, root: Path, where: str) -> bytes:
    path = item.source if item.source.is_absolute() else root / item.source
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: the file for {item.target}, {path}, does not exist",
            hint="create it or point `source:` at it (relative to dockroll.yml)",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read the file for {item.target}, {path}: {exc.strerror}"
        ) from None
    if len(content) > MAX_FILE_SIZE:
        raise ConfigError(
            f"{where}: {path} has {len(content)} bytes, more than a config file may "
            f"({MAX_FILE_SIZE}, Swarm's limit)",
            hint="put large files into the image or a volume",
        )
    return content


def resolve_container(
    config: Config, environment: str, process: str | None = None
) -> ContainerSpec:
    """The spec replicas of ``environment`` start from; env files and secrets read now.

    ``process`` names a process type of ``processes:``; None is the one that
    takes traffic. A missing env file, secret file or secret variable is a
    ConfigError naming its dockroll.yml field; secret values appear in no message.
    """
    if process is None:
        # The routed process, when processes: names it; the top level alone otherwise.
        process = next((n for n, p in config.processes.items() if p.router), None)
        if process is None and "web" in config.processes:
            process = "web"
    process_config = config.processes.get(process) if process else None
    settings, where = _merged(config, environment, process)
    env_config = config.environments.get(environment)
    env_layers: list[Mapping[str, str]] = [config.container.env]
    if env_config is not None:
        env_layers.append(env_config.env)
    env_layers.append(getattr(process_config, "env", None) or {})
    hashed: dict[str, Any] = {"port": config.container.port, "health": config.health.model_dump()}
    return resolve_settings(
        settings,
        where,
        root=config.root,
        environment=environment,
        env_layers=env_layers,
        salt=config.service,
        hashed=hashed,
    )


def resolve_settings(
    settings: ContainerSettings,
    where: Mapping[str, str],
    *,
    root: Path,
    environment: str,
    env_layers: list[Mapping[str, str]],
    salt: str,
    hashed: dict[str, Any],
) -> ContainerSpec:
    """A :class:`ContainerSpec` from merged ``settings``: env files read, ``env_layers``
    over them in order, secrets read; ``hashed`` holds what else the hash covers."""
    env: dict[str, str] = {}
    for path in settings.env_file:
        full = path if path.is_absolute() else root / path
        field_name = where.get(f"env_file:{path}", "container.env_file")
        try:
            text = full.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"{field_name}: env file {full} does not exist",
                hint="create it or remove it from dockroll.yml",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise ConfigError(f"{field_name}: cannot read env file {full}: {reason}") from None
        env.update(parse_env_file(text, f"{field_name} ({full})"))
    for layer in env_layers:
        env.update(layer)
    env["ENVIRONMENT"] = environment
    secret_env: dict[str, str] = {}
    secret_files: dict[str, bytes] = {}
    secret_digest = hashlib.sha256(f"dockroll-secrets:{salt}".encode())
    for secret in settings.secrets:
        field_name = where.get(f"secret:{secret.name}", "container.secrets")
        value = _read_secret(secret, root, field_name)
        if secret.as_ == "env":
            if secret.name in env:
                raise ConfigError(
                    f"{field_name}: secret {secret.name} has the name of a plain environment "
                    "variable as well",
                    hint=f"remove {secret.name} from `env` or the env file, or rename the secret",
                )
            secret_env[secret.name] = value
        else:
            secret_files[f"{SECRETS_DIR}/{secret.name}"] = value.encode("utf-8")
        secret_digest.update(f"\0{secret.as_}:{secret.name}\0{value}".encode())
    config_files: dict[str, tuple[bytes, int]] = {}
    for item in settings.files:
        field_name = where.get(f"file:{item.target}", "container.files")
        config_files[item.target] = (_read_file(item, root, field_name), item.permissions)
    health = settings.healthcheck.engine_form() if settings.healthcheck else None
    plain_env = {key: value for key, value in env.items() if key != "ENVIRONMENT"}
    hashed = {"env": plain_env, **hashed}
    extra = {
        "command": settings.command,
        "entrypoint": settings.entrypoint,
        "volumes": sorted(settings.volumes),
        "memory": settings.memory,
        "cpus": settings.cpus,
        "restart": settings.restart,
        "extra_hosts": settings.extra_hosts,
        "labels": settings.labels,
        "healthcheck": health,
        "secrets": secret_digest.hexdigest() if settings.secrets else None,
        "files": {
            target: f"{mode:04o}:{hashlib.sha256(content).hexdigest()}"
            for target, (content, mode) in sorted(config_files.items())
        },
    }
    extra = {key: value for key, value in extra.items() if value}
    if extra:
        # Only settings in use enter the hash: replicas started before these settings
        # existed keep their hash, so upgrading dockroll rolls nothing by itself.
        hashed["container"] = extra
    return ContainerSpec(
        env=env,
        command=tuple(settings.command) if settings.command is not None else None,
        entrypoint=tuple(settings.entrypoint) if settings.entrypoint is not None else None,
        volumes=tuple(parse_volume(text, root) for text in settings.volumes),
        memory=settings.memory,
        nano_cpus=int(settings.cpus * 1e9) if settings.cpus else None,
        restart=settings.restart or "unless-stopped",
        extra_hosts=dict(settings.extra_hosts),
        labels=dict(settings.labels),
        healthcheck=health,
        settings=hashed,
        secret_env=secret_env,
        secret_files=secret_files,
        config_files=config_files,
    )


def run_request(
    spec: ContainerSpec,
    image: str,
    *,
    name: str | None,
    labels: Mapping[str, str],
    network: str | None,
    service: str,
    environment: str,
    job: bool = False,
) -> RunRequest:
    """The engine request that starts one container of ``spec``.

    dockroll's own ``labels`` win over the user's; a job (a migration) runs once,
    so it gets no restart policy and no health check.
    """
    # The engine package loads only where containers start, not with dockroll.yml.
    from dockroll.engine.port import Mount, RunRequest  # noqa: PLC0415

    mounts = tuple(
        Mount(
            source=(
                spec.volume_name(service, environment, volume.source)
                if volume.kind == "volume"
                else volume.source
            ),
            target=volume.target,
            read_only=volume.read_only,
            kind=volume.kind,
        )
        for volume in spec.volumes
    )
    return RunRequest(
        image=image,
        name=name,
        env=dict(spec.env),
        labels={**spec.labels, **labels},
        network=network,
        command=spec.command,
        entrypoint=spec.entrypoint,
        restart_policy="no" if job else spec.restart,
        mounts=mounts,
        memory=spec.memory,
        nano_cpus=spec.nano_cpus,
        extra_hosts=dict(spec.extra_hosts),
        healthcheck=None if job else spec.healthcheck,
        secret_env=dict(spec.secret_env),
        files=dict(spec.secret_files),
        config_files=dict(spec.config_files),
    )
