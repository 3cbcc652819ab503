"""The release pipeline's stages, composed from the engine, registry and tag services."""

from __future__ import annotations

from dockroll.pipeline.build import BuildResult, build_release
from dockroll.pipeline.push import PushResult, push_release, registry_auth_from_env
from dockroll.pipeline.records import BuildRecord, load_last_build, save_build
from dockroll.pipeline.smoke import SmokeResult, smoke_test

__all__ = [
    "BuildRecord",
    "BuildResult",
    "PushResult",
    "SmokeResult",
    "build_release",
    "load_last_build",
    "push_release",
    "registry_auth_from_env",
    "save_build",
    "smoke_test",
]
