"""Helpers shared by the test suites and the benchmarks (one copy of each).

Tests import them as ``tests.support``; a benchmark script puts the
repository's root on ``sys.path`` first (see ``bench/*/run.py``).
"""

from __future__ import annotations

import importlib.util
import io
import os
import socket
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from dockroll.engine.base_images import load_substitutes, substitutes_file
from dockroll.events import Progress

if TYPE_CHECKING:
    import docker

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def tar_archive(files: Mapping[str, bytes]) -> bytes:
    """A reproducible tar of ``path → content`` (a fixed mtime, so equal files hash equal)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def real_substitutes() -> Path:
    """base-images.json of this machine, written by `dockroll dev up`.

    Skips when it is missing, and fails instead in CI, where `dev up` must have run.
    """
    import pytest  # noqa: PLC0415 - benchmarks use this module without pytest

    path = substitutes_file()
    if not path.is_file():
        reason = f"no base image stand-ins recorded at {path}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: `dockroll dev up` must have run)")
        pytest.skip(f"{reason}; run `dockroll dev up`")
    return path


def free_port_pair(taken: set[int], offset: int = 1000) -> int:
    """A port free on 127.0.0.1 whose twin (port + ``offset``, a router's metrics) is free too.

    Both are added to ``taken``, and ports already in it are never returned.
    """
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + offset > 65535 or port in taken or port + offset in taken:
            continue
        with socket.socket() as twin:
            try:
                twin.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
        taken.update({port, port + offset})
        return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """A benchmark step's stdout; a missing tool or a failure ends the benchmark with why."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, env=env, cwd=cwd
        )
    except FileNotFoundError:
        raise SystemExit(f"{argv[0]} is not installed (needed for `{' '.join(argv)}`)") from None
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return done.stdout


def quiet(argv: Sequence[str], *, env: dict[str, str] | None = None) -> str:
    """A clean-up command's stdout; "" when it failed or is not installed."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError:
        return ""
    return done.stdout if done.returncode == 0 else ""


def say(event: Progress) -> None:
    """Progress of the library on stderr, without the chatty lines."""
    if not event.detail:
        print(event.message, file=sys.stderr)


def load_bench(name: str) -> ModuleType:
    """Another benchmark's ``bench/<name>/run.py`` as a module, to reuse its load generator,
    rows and set-up (the directories are not packages: their names have hyphens)."""
    path = Path(__file__).resolve().parents[1] / "bench" / name / "run.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name.replace('-', '_')}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def haproxy_image(client: docker.DockerClient) -> str:
    """The router's HAProxy image as this engine has it (the official one or its local
    stand-in), for tests that run a container of their own; fails in CI when missing."""
    import docker.errors  # noqa: PLC0415 - the benchmarks import this module too
    import pytest  # noqa: PLC0415

    from dockroll.router.haproxy import OFFICIAL_IMAGE  # noqa: PLC0415

    for reference in (OFFICIAL_IMAGE, load_substitutes().get(OFFICIAL_IMAGE, "")):
        if reference:
            try:
                client.images.get(reference)
            except docker.errors.ImageNotFound:
                continue
            return reference
    if IN_CI:
        pytest.fail("no HAProxy image (CI=true: integration tests must run)")
    pytest.skip("no HAProxy image; run `dockroll dev up --with router`")
