"""Build stage: one BuildKit build with every computed tag, build arg and label."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dockroll.config import Config
from dockroll.engine.base_images import load_substitutes
from dockroll.engine.port import BuildRequest, Engine
from dockroll.errors import BuildError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.pipeline.records import BuildRecord, save_build
from dockroll.tags import Metadata

__all__ = ["BuildResult", "build_release", "dockerfile_arg_default"]

_ARG_LINE = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class BuildResult:
    record: BuildRecord
    builder: str
    seconds: float
    substituted_base: tuple[str, str] | None
    """(official, local) when a local stand-in replaced the base image."""


def dockerfile_arg_default(dockerfile: Path, name: str) -> str | None:
    """The default of ``ARG name=default`` in a Dockerfile, if it declares one."""
    try:
        lines = dockerfile.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        match = _ARG_LINE.match(line)
        if match and match.group(1) == name:
            return match.group(2).strip("\"'")
    return None


def _base_image(
    config: Config, engine: Engine, args: Mapping[str, str], explicit: Mapping[str, str]
) -> tuple[str | None, tuple[str, str] | None]:
    name = config.build.base_image_arg
    if not name:
        return None, None
    wanted = args.get(name) or dockerfile_arg_default(config.dockerfile_path, name)
    if not wanted or name in explicit or engine.image(wanted) is not None:
        return wanted, None
    local = load_substitutes().get(wanted)
    if local and engine.image(local) is not None:
        return local, (wanted, local)
    return wanted, None


@contextlib.contextmanager
def _secret_files(config: Config) -> Iterator[dict[str, Path]]:
    """Secret id → file; env-sourced secrets go through a private temporary file."""
    files: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="dockroll-secrets-") as scratch:
        for secret in config.build.secrets:
            if secret.src is not None:
                path = secret.src if secret.src.is_absolute() else config.root / secret.src
                if path.is_file():
                    files[secret.id] = path
                elif secret.required:
                    raise BuildError(
                        f"build secret {secret.id!r}: file {path} does not exist",
                        hint="create it, or mark the secret `required: false` in dockroll.yml",
                    )
            elif secret.env is not None:
                value = os.environ.get(secret.env)
                if value is not None:
                    path = Path(scratch) / secret.id
                    path.touch(mode=0o600)
                    path.write_text(value, encoding="utf-8")
                    files[secret.id] = path
                elif secret.required:
                    raise BuildError(
                        f"build secret {secret.id!r}: environment variable {secret.env} is not set",
                        hint=f"export {secret.env}, or mark the secret `required: false`",
                    )
        yield files


def uncommitted_changes(directory: Path) -> list[str]:
    """Tracked files changed but not committed under ``directory`` (empty outside git)."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    return [line[3:] for line in done.stdout.splitlines() if len(line) > 3]


def build_release(
    config: Config,
    metadata: Metadata,
    engine: Engine,
    *,
    build_args: Mapping[str, str] | None = None,
    no_cache: bool = False,
    pull: bool = False,
    progress: ProgressCallback = discard,
    record: bool = True,
) -> BuildResult:
    """Build the service's image with every tag of ``metadata`` in one build.

    Build args are layered: the computed ones (APP_VERSION, GIT_SHA, …), then
    dockroll.yml's ``build.args``, then ``build_args`` from the caller.
    """
    if not metadata.tags:
        raise BuildError(
            "the tag rules produced no tags, so there is nothing to name the image",
            hint="check `dockroll tags` for this commit and the `enable=` conditions of the rules",
        )
    explicit = dict(build_args or {})
    args = {**metadata.build_args, **config.build.args, **explicit}
    base, substituted = _base_image(config, engine, args, explicit)
    if substituted is not None and config.build.base_image_arg:
        args[config.build.base_image_arg] = substituted[1]
        progress(
            Progress(
                "build",
                f"base image {substituted[0]} is not available here; "
                f"using its local stand-in {substituted[1]} (from `dockroll dev up`)",
            )
        )
    changed = uncommitted_changes(config.context_dir)
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        progress(
            Progress(
                "build",
                f"warning: the working tree has uncommitted changes ({shown}); the image will "
                "not be what its git sha names: commit them first",
            )
        )
    started = time.monotonic()
    with _secret_files(config) as secrets:
        request = BuildRequest(
            context=config.context_dir,
            dockerfile=config.dockerfile_path,
            tags=metadata.tags,
            build_args=args,
            labels=dict(metadata.labels),
            secrets=secrets,
            target=config.build.target,
            no_cache=no_cache,
            pull=pull,
            platforms=config.build.platforms,
        )
        built = engine.build(request, progress)
    seconds = time.monotonic() - started
    build_record = BuildRecord(
        service=config.service,
        image_id=built.image_id,
        tags=built.tags,
        version=args.get("APP_VERSION", metadata.version),
        git_sha=args.get("GIT_SHA", ""),
        created=metadata.created,
        size=built.size,
        build_args=args,
        labels=dict(metadata.labels),
        base_image=base,
    )
    if record:
        save_build(build_record)
    return BuildResult(
        record=build_record, builder=built.builder, seconds=seconds, substituted_base=substituted
    )
