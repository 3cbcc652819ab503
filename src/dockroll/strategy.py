"""The rollout strategies a dockroll.yml environment (or ``deploy --strategy``) names.

Its own module so the CLI can offer the choices without loading the config models.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Strategy"]


class Strategy(StrEnum):
    """How a new release replaces the running one."""

    RECREATE = "recreate"
    ROLLING = "rolling"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"
