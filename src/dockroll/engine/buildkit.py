"""Image builds through a BuildKit-capable docker CLI.

The Docker SDK only drives the legacy builder, which has no cache mounts and
no build secrets, so builds go through the CLI: ``docker buildx build --load``
where the buildx plugin is installed, else ``DOCKER_BUILDKIT=1 docker build``
on a client older than 23 (newer clients without buildx refuse BuildKit).
``DOCKROLL_DOCKER_CLI`` names a specific client binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from dockroll.engine.port import BuildRequest
from dockroll.errors import BuildError
from dockroll.events import Progress, ProgressCallback

__all__ = ["BuilderCli", "find_builder", "run_build"]

# Debian's docker.io client lives here and still speaks DOCKER_BUILDKIT=1.
_FALLBACK_CLIENTS = ("/usr/bin/docker",)
_LAST_LINES = 25


@dataclass(frozen=True)
class BuilderCli:
    """A docker client binary and the way it builds with BuildKit."""

    path: str
    mode: str
    """``buildx`` or ``buildkit``."""

    def command(self) -> list[str]:
        if self.mode == "buildx":
            return [self.path, "buildx", "build", "--load"]
        return [self.path, "build"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.mode == "buildkit":
            env["DOCKER_BUILDKIT"] = "1"
        return env


def _candidates() -> list[str]:
    found: list[str] = []
    explicit = os.environ.get("DOCKROLL_DOCKER_CLI")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise BuildError(
                f"DOCKROLL_DOCKER_CLI names {explicit}, which is not an executable",
                hint="point it at a docker client binary, or unset it to search PATH",
            )
        return [explicit]
    on_path = shutil.which("docker")
    for candidate in (on_path, *_FALLBACK_CLIENTS):
        if candidate and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


def _quiet(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


def find_builder() -> BuilderCli:
    """The first client that can build with BuildKit, or a BuildError saying what to install."""
    candidates = _candidates()
    for path in candidates:
        if _quiet([path, "buildx", "version"]).returncode == 0:
            return BuilderCli(path, "buildx")
    for path in candidates:
        version = _quiet([path, "version", "--format", "{{.Client.Version}}"]).stdout.strip()
        major = version.split(".", 1)[0]
        if major.isdigit() and int(major) < 23:
            return BuilderCli(path, "buildkit")
    tried = ", ".join(candidates) or "no docker client on PATH"
    raise BuildError(
        f"no docker client here can build with BuildKit (tried: {tried})",
        hint="install the buildx plugin (Debian/Ubuntu: apt-get install docker-buildx; "
        "Docker Desktop ships it) or point DOCKROLL_DOCKER_CLI at a client that has it",
    )


def run_build(
    request: BuildRequest,
    progress: ProgressCallback,
    *,
    builder: BuilderCli | None = None,
    docker_host: str | None = None,
) -> str:
    """Run the build and return the image id; raises BuildError with the last output lines."""
    builder = builder or find_builder()
    if not request.dockerfile.is_file():
        raise BuildError(
            f"no Dockerfile at {request.dockerfile}",
            hint="set build.dockerfile in dockroll.yml (relative to build.context)",
        )
    if not request.context.is_dir():
        raise BuildError(f"build context {request.context} is not a directory")
    with tempfile.TemporaryDirectory(prefix="dockroll-build-") as scratch:
        iidfile = Path(scratch) / "iid"
        args = [
            *builder.command(),
            "--progress=plain",
            "--file",
            str(request.dockerfile),
            "--iidfile",
            str(iidfile),
        ]
        for tag in request.tags:
            args += ["--tag", tag]
        for key, value in request.build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        for key, value in request.labels.items():
            args += ["--label", f"{key}={value}"]
        for secret_id, path in request.secrets.items():
            args += ["--secret", f"id={secret_id},src={path}"]
        if request.target:
            args += ["--target", request.target]
        if request.no_cache:
            args.append("--no-cache")
        if request.pull:
            args.append("--pull")
        if request.platforms:
            args += ["--platform", ",".join(request.platforms)]
        args.append(str(request.context))

        env = builder.env()
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        progress(Progress("build", f"building with {builder.mode} ({builder.path})"))
        tail: deque[str] = deque(maxlen=_LAST_LINES)
        with subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            bufsize=1,
        ) as proc:
            assert proc.stdout is not None  # guaranteed by stdout=PIPE
            for raw in proc.stdout:
                line = raw.rstrip()
                if line:
                    tail.append(line)
                    progress(Progress("build", line, detail=True))
            code = proc.wait()
        if code != 0:
            raise BuildError(
                f"the build failed (exit {code}); last lines:\n" + "\n".join(tail),
                hint="rerun with --verbose to see the whole build output",
            )
        try:
            return iidfile.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise BuildError(
                "the build reported success but wrote no image id; last lines:\n" + "\n".join(tail)
            ) from None
