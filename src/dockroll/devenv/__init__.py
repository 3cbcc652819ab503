"""Local infrastructure for development and tests: ``dockroll dev up|status|down``.

Brings a machine from nothing to a Docker engine, a registry on
127.0.0.1:5000, the base images builds need (pulled, or built from Debian
packages where nothing can be pulled) and optionally PostgreSQL, reusing
whatever already runs. Every machine interaction goes through
:class:`System`, so tests can script it.
"""

from __future__ import annotations

from dockroll.devenv.base_images import (
    DEBIAN,
    HAPROXY,
    KNOWN_BASE_IMAGES,
    PYTHON,
    BaseImage,
    base_image_status,
    ensure_base_image,
)
from dockroll.devenv.commands import ensure_commands
from dockroll.devenv.engine import engine_status, ensure_engine, stop_engine
from dockroll.devenv.postgres import POSTGRES_URL, ensure_postgres, postgres_status, stop_postgres
from dockroll.devenv.registry import (
    DEFAULT_PORT,
    RegistryInstance,
    find_registry,
    registry_config,
    registry_status,
    start_registry,
    stop_registry,
    write_htpasswd,
)
from dockroll.devenv.report import ComponentReport, ComponentState, DevEnvReport
from dockroll.devenv.stack import down, status, up
from dockroll.devenv.system import CommandResult, EngineProbe, LocalSystem, System

__all__ = [
    "DEBIAN",
    "DEFAULT_PORT",
    "HAPROXY",
    "KNOWN_BASE_IMAGES",
    "POSTGRES_URL",
    "PYTHON",
    "BaseImage",
    "CommandResult",
    "ComponentReport",
    "ComponentState",
    "DevEnvReport",
    "EngineProbe",
    "LocalSystem",
    "RegistryInstance",
    "System",
    "base_image_status",
    "down",
    "engine_status",
    "ensure_base_image",
    "ensure_commands",
    "ensure_engine",
    "ensure_postgres",
    "find_registry",
    "postgres_status",
    "registry_config",
    "registry_status",
    "start_registry",
    "status",
    "stop_engine",
    "stop_postgres",
    "stop_registry",
    "up",
    "write_htpasswd",
]
