"""What ``dev up``, ``dev status`` and ``dev down`` found and did, per component."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ComponentReport", "ComponentState", "DevEnvReport"]


class ComponentState(StrEnum):
    """Whether a component is usable after the call."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class ComponentReport:
    """One component: its state, a human detail and the facts scripts need."""

    component: str
    """``engine``, ``registry``, ``image python:3.11-slim``, ``postgres`` …"""
    state: ComponentState
    detail: str
    """``already running``, ``started``, ``built in 41 s``, ``not running`` …"""
    changed: bool = False
    """True when this call started, built, pulled or stopped something."""
    required: bool = True
    """False for components only some workflows need (router image, PostgreSQL)."""
    seconds: float = 0.0
    facts: Mapping[str, str] = field(default_factory=dict)
    """Addresses, image references, URLs: what a caller connects to."""

    @property
    def up(self) -> bool:
        """True when the component is usable."""
        return self.state is ComponentState.UP

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``--json`` prints."""
        return {
            "component": self.component,
            "state": self.state.value,
            "detail": self.detail,
            "changed": self.changed,
            "required": self.required,
            "seconds": round(self.seconds, 2),
            **({"facts": dict(self.facts)} if self.facts else {}),
        }


@dataclass(frozen=True)
class DevEnvReport:
    """The components of the local infrastructure after one command."""

    action: str
    """``up``, ``status`` or ``down``."""
    components: tuple[ComponentReport, ...]
    seconds: float = 0.0

    @property
    def ready(self) -> bool:
        """True when every required component is up."""
        return all(c.up for c in self.components if c.required)

    def get(self, component: str) -> ComponentReport | None:
        """The report of one component by name."""
        return next((c for c in self.components if c.component == component), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``dockroll --json dev …`` prints."""
        return {
            "action": self.action,
            "ready": self.ready,
            "seconds": round(self.seconds, 2),
            "components": [c.to_dict() for c in self.components],
        }
