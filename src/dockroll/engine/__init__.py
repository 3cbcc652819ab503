"""The container engine port and its Docker adapter."""

from __future__ import annotations

from dockroll.engine.docker import DockerEngine
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
