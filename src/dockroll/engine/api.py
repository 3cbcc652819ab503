"""What every client of the engine API shares (the SDK's and the unix socket's): its JSON
(``GET /containers/{id}/json``, ``/images/{id}/json``) as the port's records, and how an
engine that does not answer is reported."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dockroll.engine.port import ContainerInfo, Health, ImageInfo
from dockroll.errors import EngineUnavailable

__all__ = ["container_info", "engine_time", "engine_unavailable", "first_line", "image_info"]


def engine_unavailable(endpoint: str, detail: str) -> EngineUnavailable:
    """No engine answers at ``endpoint``; ``detail`` is the first line of what failed."""
    return EngineUnavailable(
        f"no Docker engine answers at {endpoint}: {detail}",
        hint="start it (`dockroll dev up` does on Debian as root), "
        "or set DOCKER_HOST / the environment's engine in dockroll.yml",
    )


def image_info(attrs: Mapping[str, Any]) -> ImageInfo:
    config = attrs.get("Config") or {}
    env = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    healthcheck = config.get("Healthcheck") or {}
    test = healthcheck.get("Test") or []
    return ImageInfo(
        image_id=str(attrs["Id"]),
        tags=tuple(attrs.get("RepoTags") or ()),
        repo_digests=tuple(attrs.get("RepoDigests") or ()),
        size=int(attrs.get("Size") or 0),
        labels=dict(config.get("Labels") or {}),
        env=env,
        has_healthcheck=bool(test) and test[0] != "NONE",
        exposed_ports=tuple(sorted((config.get("ExposedPorts") or {}).keys())),
    )


def container_info(attrs: Mapping[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    health_state = (state.get("Health") or {}).get("Status")
    health = Health(health_state) if health_state in {h.value for h in Health} else Health.NONE
    ports: dict[int, int] = {}
    for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        if not bindings:
            continue
        port = int(str(key).split("/", 1)[0])
        for binding in bindings:
            host_port = binding.get("HostPort")
            if host_port:
                ports[port] = int(host_port)
                break
    exit_code = state.get("ExitCode")
    status = str(state.get("Status", "unknown"))
    networks = {
        str(name): str(network.get("IPAddress") or "")
        for name, network in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items()
    }
    return ContainerInfo(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str((attrs.get("Config") or {}).get("Image", "")),
        status=status,
        health=health,
        exit_code=int(exit_code) if exit_code is not None and status == "exited" else None,
        ports=ports,
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        networks=networks,
        image_id=str(attrs.get("Image", "")),
        created=engine_time(str(attrs.get("Created", ""))),
        restart_count=int(attrs.get("RestartCount") or 0),
        started=_started(state),
    )


def _started(state: Mapping[str, Any]) -> datetime | None:
    started = engine_time(str(state.get("StartedAt", "")))
    # A container that never ran reports the zero time, 0001-01-01.
    return started if started is not None and started.year > 1970 else None


def engine_time(text: str) -> datetime | None:
    """An engine timestamp (RFC 3339 with up to nanoseconds) as an aware datetime."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    offset = "+00:00" if zone == "Z" else zone
    try:
        return datetime.fromisoformat(f"{whole}.{micros}{offset}").astimezone(UTC)
    except ValueError:
        return None


def first_line(exc: Exception) -> str:
    """The first line of what an engine call failed with: the engine's own explanation when
    the SDK carries one, else the exception's text, else its type."""
    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
