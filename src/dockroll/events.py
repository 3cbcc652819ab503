"""Progress events: how long-running library calls report what they are doing.

The library never prints. A call that takes a while accepts a ``progress``
callback and emits :class:`Progress` events; the CLI renders them (Rich or
JSON lines), tests collect them, scripts ignore them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback", "discard"]


@dataclass(frozen=True)
class Progress:
    """One step of a long operation."""

    stage: str
    """Which operation speaks: ``build``, ``push``, ``smoke``, ``dev`` …"""
    message: str
    """One human line."""
    detail: bool = False
    """True for chatty lines (build output) a renderer may fold away."""


ProgressCallback = Callable[[Progress], None]


def discard(event: Progress) -> None:
    """A callback that ignores every event."""
