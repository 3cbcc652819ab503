"""``dockroll init``: a dockroll.yml from an existing compose file and Dockerfile.

The services of the compose file that build the same image become the
processes of one release (the one publishing a port takes the router); the
port comes from ``ports``/``expose`` or the Dockerfile's EXPOSE, health from a
compose ``healthcheck``, the Dockerfile's HEALTHCHECK or an HTTP probe of ``/``;
environment, env files, volumes, resources, restart policies, extra hosts and
labels carry over. Everything that has no place in dockroll.yml is listed with
the reason and what to do instead. The result is validated before it is
written, and an existing file is never overwritten.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dockroll.config import DEFAULT_CONFIG_NAME, load_config
from dockroll.errors import ConfigError, UsageError

__all__ = [
    "COMPOSE_NAMES",
    "InitResult",
    "Unmapped",
    "dockroll_yml_from_compose",
    "find_compose_file",
    "init_config",
]

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
DEFAULT_REGISTRY = "${DOCKROLL_REGISTRY:-127.0.0.1:5000}"
DEFAULT_ROUTER_PORT = 8081
"""dev's router port; staging and prod get the next two."""
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "PRIVATE_KEY", "CREDENTIAL")
_URL_PATH = re.compile(r"https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0)(?::\d+)?(/[^\s'\")]*)?")
_SERVICE_NAME = re.compile(r"[^a-z0-9_.-]+")
_ACCESSORY_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")

# Service keys carried over, and those that have no place in dockroll.yml, with why
# and what to do instead.
_NOT_SUPPORTED = {
    "container_name": "dockroll names replicas itself (<service>-<environment>-<slot>-<n>)",
    "network_mode": "replicas join the environment's own network; leave it out",
    "networks": "replicas join the environment's own network (dockroll-<service>-<env>)",
    "links": "replicas of one environment reach each other by name on its network",
    "privileged": "not supported; grant only what the process needs in the image",
    "cap_add": "not supported; grant only what the process needs in the image",
    "cap_drop": "not supported",
    "devices": "not supported",
    "configs": "use `volumes` (a host directory, read-only) or secrets as files",
    "logging": "replicas log to the engine's default driver; `dockroll logs` reads them",
    "profiles": "every process runs in every environment; use `replicas: 0` to leave one out",
    "ulimits": "not supported",
    "scale": "replicas are set per environment (`environments.<env>.replicas`)",
    "tty": "not supported",
    "stdin_open": "not supported",
    "user": "set USER in the Dockerfile",
    "working_dir": "set WORKDIR in the Dockerfile",
    "hostname": "not supported: replicas are reached by their names on the network",
    "dns": "not supported",
    "sysctls": "not supported",
    "pid": "not supported",
    "ipc": "not supported",
    "security_opt": "not supported",
    "init": "add tini (or similar) as the entrypoint in the Dockerfile",
    "stop_signal": "set STOPSIGNAL in the Dockerfile",
}


@dataclass(frozen=True)
class Unmapped:
    """A part of the compose file dockroll.yml does not take, and why."""

    where: str
    """``services.web.privileged`` …"""
    why: str

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "why": self.why}


@dataclass
class InitResult:
    """What ``dockroll init`` wrote (or would write)."""

    path: Path
    text: str
    service: str
    processes: list[str] = field(default_factory=list)
    routed: str = "web"
    port: int = 0
    health: str = ""
    unmapped: list[Unmapped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "source": str(self.source) if self.source else None,
            "service": self.service,
            "processes": self.processes,
            "routed": self.routed,
            "port": self.port,
            "health": self.health,
            "unmapped": [item.to_json() for item in self.unmapped],
            "notes": self.notes,
        }


def find_compose_file(directory: Path) -> Path | None:
    """The compose file of ``directory`` by compose's own names, or None."""
    for name in COMPOSE_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


@dataclass
class _Dockerfile:
    exposed: list[int] = field(default_factory=list)
    healthcheck: list[str] | None = None
    """The HEALTHCHECK command as words; None without one (or with NONE)."""


def _read_dockerfile(path: Path) -> _Dockerfile | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _Dockerfile()
    # Continuation lines joined, comments dropped: one instruction per line.
    joined = re.sub(r"\\\s*\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    ))  # fmt: skip
    for line in joined.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2:
            continue
        instruction, rest = words[0].upper(), words[1]
        if instruction == "EXPOSE":
            for item in rest.split():
                number = item.split("/", 1)[0]
                if number.isdigit():
                    found.exposed.append(int(number))
        elif instruction == "HEALTHCHECK":
            found.healthcheck = _healthcheck_command(rest)
    return found


def _healthcheck_command(rest: str) -> list[str] | None:
    words = rest.split()
    while words and words[0].startswith("--"):
        words.pop(0)
    if not words or words[0].upper() == "NONE":
        return None
    if words[0].upper() == "CMD":
        command = rest[rest.upper().index("CMD") + 3 :].strip()
        if command.startswith("["):
            try:
                parsed = yaml.safe_load(command)
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, list):
                return [str(word) for word in parsed]
        return ["/bin/sh", "-c", command]
    return None


def _http_path(words: list[str] | str | None) -> str | None:
    """The path an HTTP health check asks for on the container itself, if it is one."""
    if not words:
        return None
    text = words if isinstance(words, str) else " ".join(words)
    match = _URL_PATH.search(text)
    if match is None:
        return None
    return match.group(1) or "/"


def _container_port(entry: object) -> int | None:
    """The container side of a compose ``ports`` entry (short or long syntax)."""
    if isinstance(entry, dict):
        target = str(entry.get("target"))
        return int(target) if target.isdigit() else None
    text = str(entry).split("/", 1)[0]
    last = text.rsplit(":", 1)[-1]
    first = last.split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _as_env(value: object) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    env: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        key, _, val = str(item).partition("=")
        env[key] = val
    return env


def _build_of(service: dict[str, Any]) -> tuple[str, str, dict[str, str], str | None] | None:
    """(context, dockerfile, args, target) of a service that builds, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return (build, "Dockerfile", {}, None)
    args = build.get("args") or {}
    return (
        str(build.get("context", ".")),
        str(build.get("dockerfile", "Dockerfile")),
        _as_env(args),
        build.get("target"),
    )


def _healthcheck(check: dict[str, Any]) -> dict[str, Any] | None:
    if check.get("disable"):
        return {"disable": True}
    test = check.get("test")
    if test is None:
        return None
    if isinstance(test, list) and test and test[0] == "NONE":
        return {"disable": True}
    mapped: dict[str, Any] = {"test": test}
    for key in ("interval", "timeout", "retries", "start_period"):
        if key in check:
            mapped[key] = check[key]
    return mapped


def _resources(service: dict[str, Any], where: str, unmapped: list[Unmapped]) -> dict[str, Any]:
    mapped: dict[str, Any] = {}
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    memory = service.get("mem_limit", limits.get("memory"))
    cpus = service.get("cpus", limits.get("cpus"))
    if memory is not None:
        mapped["memory"] = str(memory).lower()
    if cpus is not None:
        try:
            mapped["cpus"] = float(cpus)
        except ValueError:
            unmapped.append(Unmapped(f"{where}.cpus", f"{cpus!r} is not a number of cores"))
    deploy = service.get("deploy") or {}
    for key in deploy:
        if key not in ("resources", "replicas", "restart_policy"):
            unmapped.append(
                Unmapped(f"{where}.deploy.{key}", "Swarm deploy settings are not taken")
            )
    return mapped


def _settings(
    name: str,
    service: dict[str, Any],
    unmapped: list[Unmapped],
    notes: list[str],
) -> dict[str, Any]:
    """The container settings of one compose service, as dockroll.yml writes them."""
    where = f"services.{name}"
    settings: dict[str, Any] = {}
    for key in ("command", "entrypoint"):
        if key in service:
            value = service[key]
            settings[key] = value if isinstance(value, list) else shlex.split(str(value))
    env = _as_env(service.get("environment"))
    secrets: list[dict[str, str]] = []
    plain: dict[str, str] = {}
    for key, value in env.items():
        if any(word in key.upper() for word in _SECRET_WORDS):
            # Never copied into dockroll.yml: read from dockroll's environment at deploy.
            secrets.append({"name": key, "env": key})
            note = (
                f"environment {key} looks like a secret: it becomes a secret read from "
                f"${key} at deploy time (export it, or point `file:` at a file instead)"
            )
            if note not in notes:
                notes.append(note)
        else:
            plain[key] = value
    if plain:
        settings["env"] = plain
    if "env_file" in service:
        files = service["env_file"]
        files = [files] if isinstance(files, str) else files
        settings["env_file"] = [
            str(item["path"]) if isinstance(item, dict) else str(item) for item in files
        ]
    if secrets:
        settings["secrets"] = secrets
    volumes = []
    for index, volume in enumerate(service.get("volumes") or []):
        text = _volume_text(volume)
        if text is None:
            unmapped.append(
                Unmapped(
                    f"{where}.volumes.{index}",
                    "an anonymous volume or unsupported type; name it (NAME:/path)",
                )
            )
        else:
            volumes.append(text)
    if volumes:
        settings["volumes"] = volumes
    settings.update(_resources(service, where, unmapped))
    policy = (service.get("deploy") or {}).get("restart_policy") or {}
    restart = service.get("restart") or policy.get("condition")
    if restart:
        restart = {"any": "always", "none": "no"}.get(str(restart), str(restart))
        settings["restart"] = restart
    if service.get("extra_hosts"):
        hosts = service["extra_hosts"]
        settings["extra_hosts"] = (
            [f"{k}:{v}" for k, v in hosts.items()] if isinstance(hosts, dict) else list(hosts)
        )
    if service.get("labels"):
        labels = _as_env(service["labels"])
        settings["labels"] = {k: v for k, v in labels.items() if not k.startswith("dev.dockroll.")}
    if service.get("healthcheck"):
        check = _healthcheck(service["healthcheck"])
        if check is not None:
            settings["healthcheck"] = check
    for key in service:
        if key in _NOT_SUPPORTED:
            unmapped.append(Unmapped(f"{where}.{key}", _NOT_SUPPORTED[key]))
    return settings


def _volume_text(volume: object) -> str | None:
    if isinstance(volume, dict):
        source, target = volume.get("source"), volume.get("target")
        if not source or not target or volume.get("type", "volume") not in ("volume", "bind"):
            return None
        mode = ":ro" if volume.get("read_only") else ""
        return f"{source}:{target}{mode}"
    text = str(volume)
    return text if ":" in text else None


_HANDLED = {
    "build",
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "volumes",
    "ports",
    "expose",
    "mem_limit",
    "cpus",
    "deploy",
    "restart",
    "extra_hosts",
    "labels",
    "healthcheck",
    "depends_on",
    "stop_grace_period",
}


def _repository(service: str, image: object) -> str:
    """The repository to push to: the compose ``image`` without its tag, under the registry
    when it names none."""
    if isinstance(image, str) and image.strip() and "${" not in image:
        name = image.split("@", 1)[0]
        last = name.rsplit("/", 1)
        if ":" in last[-1]:
            name = name.rsplit(":", 1)[0]
        first = name.split("/", 1)[0]
        if "/" in name and ("." in first or ":" in first or first == "localhost"):
            return name.lower()
        return f"{DEFAULT_REGISTRY}/{name.lower()}"
    return f"{DEFAULT_REGISTRY}/{service}"


def _load_services(
    compose_path: Path | None, unmapped: list[Unmapped]
) -> dict[str, dict[str, Any]]:
    if compose_path is None:
        return {}
    try:
        raw = yaml.safe_load(compose_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{compose_path} does not exist", hint="pass --from PATH to a compose file"
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {compose_path} as a compose file: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        raise UsageError(
            f"{compose_path} has no `services:` mapping", hint="is it a docker-compose file?"
        )
    for key in raw:
        if key in ("secrets", "configs"):
            unmapped.append(
                Unmapped(key, "use container `secrets:` (from a file or the environment)")
            )
        elif key == "networks":
            unmapped.append(Unmapped(key, "each environment has its own network; leave them out"))
    return {str(k): (v or {}) for k, v in raw["services"].items()}


def _processes(
    compose_path: Path | None, services: dict[str, dict[str, Any]], unmapped: list[Unmapped]
) -> tuple[str, list[str], tuple[str, str, dict[str, str], str | None]]:
    """The routed process, every process of the image built here, and that build."""
    built = {name: svc for name, svc in services.items() if _build_of(svc) is not None}
    # The image built here: the one the service publishing a port builds, else the first.
    routed = next((n for n, s in built.items() if s.get("ports") or s.get("expose")), None)
    routed = routed or next(iter(built), None)
    if compose_path is not None and routed is None:
        raise UsageError(
            f"no service of {compose_path} builds an image (none has `build:`)",
            hint="dockroll builds, pushes and deploys your own image: add `build: .` to the "
            "service that runs your code",
        )
    if routed is None:
        return "web", [], (".", "Dockerfile", {}, None)
    build = _build_of(built[routed])
    assert build is not None
    processes = [n for n in built if _build_of(built[n]) == build]
    for name, svc in services.items():
        if name in processes:
            continue
        if name in built:
            why = "builds another image: give it a dockroll.yml of its own"
            unmapped.append(Unmapped(f"services.{name}", why))
        elif not svc.get("image"):
            unmapped.append(Unmapped(f"services.{name}", "has neither `build` nor `image`"))
        elif not _ACCESSORY_NAME.match(name):
            why = "would be an accessory, but its name is not one (lowercase letters, digits, -)"
            unmapped.append(Unmapped(f"services.{name}", why))
    return routed, processes, build


def _port(web: dict[str, Any], dockerfile: _Dockerfile, notes: list[str]) -> int:
    port = next((p for p in map(_container_port, web.get("ports") or []) if p), None)
    port = port or next((p for p in map(_container_port, web.get("expose") or []) if p), None)
    port = port or (dockerfile.exposed[0] if dockerfile.exposed else None)
    if port is None:
        notes.append("no port in the compose file or the Dockerfile: assumed 8000")
        return 8000
    return port


def _health(
    check: dict[str, Any] | None, dockerfile: _Dockerfile, notes: list[str]
) -> tuple[dict[str, Any], str]:
    """The `health:` section, and how it was found: an HTTP path the router can probe,
    else the container's own check, else a probe of /."""
    path = _http_path(check.get("test")) if check and "test" in check else None
    path = path or (_http_path(dockerfile.healthcheck) if check is None else None)
    if path:
        origin = "compose" if check else "Dockerfile"
        return {"path": path}, f"HTTP GET {path} (from the {origin} health check)"
    if check is not None and "test" in check:
        return {"path": None}, "the compose healthcheck (no HTTP path in it)"
    if dockerfile.healthcheck is not None:
        return {"path": None}, "the Dockerfile's HEALTHCHECK (no HTTP path in it)"
    notes.append("no health check found: the router probes GET /; set health.path")
    return {"path": "/"}, "HTTP GET / (a probe: set health.path to your readiness endpoint)"


def _other_keys(
    name: str, service: dict[str, Any], unmapped: list[Unmapped], notes: list[str]
) -> None:
    for key in service:
        if key == "depends_on":
            note = (
                "depends_on: start what the processes depend on (database, cache …) before "
                "deploying; dockroll starts the processes of a release together"
            )
            if note not in notes:
                notes.append(note)
        elif key not in _HANDLED and key not in _NOT_SUPPORTED:
            unmapped.append(Unmapped(f"services.{name}.{key}", "not known to dockroll init"))


def _environments(port: int) -> dict[str, Any]:
    return {
        "dev": {"port": port, "strategy": "rolling", "allow_mutable_tags": True},
        "staging": {"port": port + 1, "strategy": "blue-green", "promote_from": "dev"},
        "prod": {
            "port": port + 2,
            "strategy": "rolling",
            "replicas": 2,
            "promote_from": "staging",
            "requires_approval": True,
        },
    }


def _accessories(
    services: dict[str, dict[str, Any]],
    processes: list[str],
    unmapped: list[Unmapped],
    notes: list[str],
) -> dict[str, Any]:
    """Services that run an image built elsewhere (a database, a cache) as accessories."""
    accessories: dict[str, Any] = {}
    for name, service in services.items():
        if name in processes or _build_of(service) is not None or not service.get("image"):
            continue
        if not _ACCESSORY_NAME.match(name):
            continue
        settings = _settings(name, service, unmapped, notes)
        accessories[name] = {"image": str(service["image"]), **settings}
        if service.get("ports"):
            unmapped.append(
                Unmapped(
                    f"services.{name}.ports",
                    f"accessories are reached on the environment's network as {name}:PORT; "
                    "`dockroll accessory` does not publish them",
                )
            )
    if accessories:
        notes.append(
            f"accessories ({', '.join(accessories)}) start with `dockroll accessory up --env ENV`"
            "; their images must be on the engine or pullable"
        )
    return accessories


def dockroll_yml_from_compose(
    compose_path: Path | None,
    directory: Path,
    *,
    service: str | None = None,
    router_port: int = DEFAULT_ROUTER_PORT,
) -> tuple[dict[str, Any], InitResult]:
    """The dockroll.yml data for ``compose_path`` (or the Dockerfile of ``directory`` alone)."""
    unmapped: list[Unmapped] = []
    notes: list[str] = []
    services = _load_services(compose_path, unmapped)
    routed, processes, (context, dockerfile_name, args, target) = _processes(
        compose_path, services, unmapped
    )
    dockerfile = _read_dockerfile(directory / context / dockerfile_name)
    if dockerfile is None:
        notes.append(f"no readable Dockerfile at {Path(context) / dockerfile_name}")
        dockerfile = _Dockerfile()
    service_name = service or _SERVICE_NAME.sub("-", directory.resolve().name.lower()).strip("-._")
    service_name = service_name or "app"
    web = services.get(routed, {})
    port = _port(web, dockerfile, notes)
    data: dict[str, Any] = {
        "service": service_name,
        "image": _repository(service_name, web.get("image")),
        "build": {"context": context, "dockerfile": dockerfile_name},
    }
    if args:
        data["build"]["args"] = args
    if target:
        data["build"]["target"] = target
    settings = {name: _settings(name, services[name], unmapped, notes) for name in processes}
    for name in processes:
        _other_keys(name, services[name], unmapped, notes)
    # What every process shares goes to `container:`, the rest stays with the process.
    web_settings = settings.get(routed, {})
    container: dict[str, Any] = {"port": port}
    if web.get("stop_grace_period") is not None:
        container["stop_grace"] = str(web["stop_grace_period"])
    shared_keys = [
        key
        for key in ("env", "env_file", "secrets", "volumes", "restart", "extra_hosts")
        if all(settings[n].get(key) == web_settings.get(key) for n in processes)
    ]
    container.update({key: web_settings[key] for key in shared_keys if key in web_settings})
    data["container"] = container
    data["health"], health = _health(web_settings.get("healthcheck"), dockerfile, notes)
    if len(processes) > 1:
        data["processes"] = {}
        for name in processes:
            own = {k: v for k, v in settings[name].items() if k not in shared_keys}
            replicas = (services[name].get("deploy") or {}).get("replicas")
            if name == routed and routed != "web":
                own["router"] = True
            elif name != routed and isinstance(replicas, int) and replicas != 1:
                own["replicas"] = replicas
            data["processes"][name] = own
    else:
        container.update({k: v for k, v in web_settings.items() if k not in shared_keys})
    accessories = _accessories(services, processes, unmapped, notes)
    if accessories:
        data["accessories"] = accessories
    data["smoke"] = {"version_path": None}
    data["environments"] = _environments(router_port)
    result = InitResult(
        path=directory / DEFAULT_CONFIG_NAME,
        text="",
        service=service_name,
        processes=processes or [routed],
        routed=routed,
        port=port,
        health=health,
        unmapped=unmapped,
        notes=notes,
        source=compose_path,
    )
    return data, result


def _render(data: dict[str, Any], result: InitResult) -> str:
    header = [
        f"# dockroll.yml for {result.service}, written by `dockroll init`"
        + (f" from {result.source.name}." if result.source else "."),
        "# docs/configuration.md explains every field; `dockroll config check` validates it.",
    ]
    if result.unmapped:
        header.append("# Not taken from the compose file:")
        header += [f"#   {item.where}: {item.why}" for item in result.unmapped]
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
    return "\n".join(header) + "\n" + body


def init_config(
    directory: Path,
    *,
    compose: Path | None = None,
    output: Path | None = None,
    service: str | None = None,
    router_port: int = DEFAULT_ROUTER_PORT,
    write: bool = True,
) -> InitResult:
    """Write a validated dockroll.yml for the app in ``directory``; never overwrite one.

    ``compose`` is the compose file (default: compose.yaml, docker-compose.yml …
    of ``directory`` when there is one). With ``write`` false nothing is written.
    """
    target = output or directory / DEFAULT_CONFIG_NAME
    if target.exists():
        raise UsageError(
            f"{target} exists already; dockroll init never overwrites it",
            hint="move it away, or pass --output PATH for the new file",
        )
    source = compose if compose is not None else find_compose_file(directory)
    data, result = dockroll_yml_from_compose(
        source, directory, service=service, router_port=router_port
    )
    result.path = target
    result.text = _render(data, result)
    # Validated as dockroll would load it, from the directory it will live in.
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yml", dir=target.parent, delete=True, encoding="utf-8"
    ) as probe:
        probe.write(result.text)
        probe.flush()
        try:
            load_config(Path(probe.name))
        except ConfigError as exc:
            raise ConfigError(
                f"the dockroll.yml made from {source or 'the Dockerfile'} does not validate:\n"
                + exc.message.split("\n", 1)[-1],
                hint="fix the compose value named there, or write dockroll.yml by hand",
            ) from None
    if write:
        try:
            with target.open("x", encoding="utf-8") as handle:
                handle.write(result.text)
        except FileExistsError:
            raise UsageError(f"{target} appeared meanwhile; it was left alone") from None
    return result
