"""The labels every container dockroll starts carries: the truth about what runs.

``dockroll status`` is computed from these labels and the router's state; the
ledger holds history and intent, and can be rebuilt from them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CONFIG_HASH",
    "DEPLOYMENT",
    "DIGEST",
    "ENVIRONMENT",
    "GIT_SHA",
    "PREFIX",
    "PROCESS",
    "RELEASE",
    "ROLE",
    "SERVICE",
    "SLOT",
    "STARTED",
    "VERSION",
    "config_hash",
    "selector",
]

PREFIX = "dev.dockroll."
SERVICE = PREFIX + "service"
ENVIRONMENT = PREFIX + "environment"
ROLE = PREFIX + "role"
"""``app``, ``router``, ``job``, ``lock`` or ``smoke-test``."""
RELEASE = PREFIX + "release"
"""The ledger's release id."""
VERSION = PREFIX + "version"
DIGEST = PREFIX + "digest"
GIT_SHA = PREFIX + "git-sha"
SLOT = PREFIX + "slot"
"""Which group a replica belongs to: ``blue``/``green``, ``stable``/``canary``, or a number."""
DEPLOYMENT = PREFIX + "deployment"
CONFIG_HASH = PREFIX + "config-hash"
STARTED = PREFIX + "started"
PROCESS = PREFIX + "process"
"""The process type a replica runs (``web``, ``worker`` …); those without router carry the
role ``process``, so rollouts of the routed process never see them."""


def selector(service: str, environment: str, role: str = "app") -> dict[str, str]:
    """Labels that select one environment's containers of a role."""
    return {SERVICE: service, ENVIRONMENT: environment, ROLE: role}


def config_hash(settings: Mapping[str, Any]) -> str:
    """A short, stable hash of the settings a container was started with (drift detection)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
