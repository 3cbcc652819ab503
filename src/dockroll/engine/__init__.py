"""The container engine port and its Docker adapter.

The port's types are plain imports; the Docker adapter (and with it the Docker
SDK, requests and urllib3) loads only when ``DockerEngine`` is first asked for,
so a module that needs the port or ``engine.base_images`` does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockroll.engine.port import (
    BuildRequest,
    BuiltImage,
    ContainerInfo,
    Engine,
    ExecSession,
    Health,
    ImageInfo,
    JobResult,
    PushAuth,
    RunRequest,
)

if TYPE_CHECKING:
    from dockroll.engine.docker import DockerEngine

__all__ = [
    "BuildRequest",
    "BuiltImage",
    "ContainerInfo",
    "DockerEngine",
    "Engine",
    "ExecSession",
    "Health",
    "ImageInfo",
    "JobResult",
    "PushAuth",
    "RunRequest",
]


def __getattr__(name: str) -> Any:
    """``DockerEngine`` on first use (PEP 562); anything else is not here."""
    if name == "DockerEngine":
        from dockroll.engine.docker import DockerEngine  # noqa: PLC0415 - the lazy export

        return DockerEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
