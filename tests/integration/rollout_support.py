"""Shared pieces of the deploy, lock and crash-safety integration tests.

:func:`seed_releases` copies the sample service into a git repo with a unique
service name and builds and pushes one release per version, each with its fault
knobs baked into the image, against the real engine and registry, and records
them in a ledger of its own; :func:`seed_service` seeds the usual three (v1.0.0,
v1.1.0 and v1.2.0, which never turns ready). :class:`Load` sends constant traffic to a router
from a thread pool. :func:`cleanup` removes every container, router, lock and
network of the service afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
import yaml

from dockroll.config import Config, load_config
from dockroll.engine.docker import DockerEngine
from dockroll.ledger import Ledger, Release, open_ledger
from dockroll.pipeline.build import build_release
from dockroll.pipeline.metadata import release_metadata
from dockroll.pipeline.push import push_release, record_push
from tests.support import free_port_pair, real_substitutes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask-app"
GOOD = ("v1.0.0", "v1.1.0")
BAD = "v1.2.0"


_CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "DOCKER_METADATA_")


def plain_git_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without CI variables, so tags come from the git checkout."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith(_CI_PREFIXES)}


def remove_images(client: docker.DockerClient, repository_prefix: str) -> None:
    """Remove every local image with a tag under ``repository_prefix``."""
    for attempt in range(5):
        try:  # listing inspects each image: one removed meanwhile by someone else fails it
            images = client.images.list()
            break
        except docker.errors.NotFound:
            if attempt == 4:
                raise
    for image in images:
        if any(tag.startswith(repository_prefix) for tag in image.tags):
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image.id, force=True)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=dockroll tests", "-c", "user.email=tests@dockroll.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        env=plain_git_env(),
    )


def free_router_port(taken: set[int]) -> int:
    """A port free on 127.0.0.1 whose metrics twin (port + 1000) is free too."""
    return free_port_pair(taken)


@dataclass
class Seeded:
    """A sample service with three pushed releases and a ledger of its own."""

    service: str
    repo: Path
    config_path: Path
    state: Path
    ledger_url: str
    releases: dict[str, Release]
    environ: dict[str, str]
    """Environment variables a `dockroll` subprocess needs to see the same state."""
    ports: dict[str, int] = field(default_factory=dict)

    def config(self) -> Config:
        return load_config(self.config_path)

    def ledger(self) -> Ledger:
        return open_ledger(self.ledger_url, actor="tests <tests@dockroll.invalid>")

    def url(self, environment: str) -> str:
        return f"http://127.0.0.1:{self.ports[environment]}"


def seed_service(
    tmp_path_factory: pytest.TempPathFactory,
    registry: str,
    environments: Mapping[str, Mapping[str, Any]],
    *,
    prefix: str = "roll",
) -> Iterator[Seeded]:
    """Build and push v1.0.0, v1.1.0 and the bad v1.2.0 of a fresh service; clean up after."""
    releases = {GOOD[0]: {}, GOOD[1]: {}, BAD: {"FAULT_READY_FAIL": "1"}}
    yield from seed_releases(
        tmp_path_factory, registry, environments, releases, prefix=prefix, stop_grace="10s"
    )


def seed_releases(
    tmp_path_factory: pytest.TempPathFactory,
    registry: str,
    environments: Mapping[str, Mapping[str, Any]],
    releases: Mapping[str, Mapping[str, str]],
    *,
    prefix: str,
    stop_grace: str = "5s",
) -> Iterator[Seeded]:
    """Build and push ``version → fault knobs`` in order; clean everything up afterwards."""
    substitutes = real_substitutes()
    state = tmp_path_factory.mktemp("state")
    shutil.copy(substitutes, state / "base-images.json")
    service = f"{prefix}-{uuid.uuid4().hex[:8]}"
    repository = f"{registry}/dockroll-test/{service}"
    repo = tmp_path_factory.mktemp("svc") / "service"
    shutil.copytree(
        EXAMPLE, repo, ignore=shutil.ignore_patterns("tests", "__pycache__", ".pytest_cache")
    )
    taken: set[int] = set()
    ports = {name: free_router_port(taken) for name in environments}
    data = yaml.safe_load((EXAMPLE / "dockroll.yml").read_text(encoding="utf-8"))
    data.update(service=service, image=repository)
    # The router's /ready check gates traffic (the image's HEALTHCHECK flaps on a busy machine).
    data["health"] = {
        "path": "/ready",
        "use_docker_healthcheck": False,
        "interval": "500ms",
        "timeout": "2s",
        "start_timeout": "60s",
    }
    data["container"] = {"port": 5000, "stop_grace": stop_grace}
    data["environments"] = {
        name: {"port": ports[name], **dict(settings)} for name, settings in environments.items()
    }
    config_path = repo / "dockroll.yml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    ledger_url = f"sqlite:///{state / 'ledger.db'}"
    environ = {
        "DOCKROLL_STATE_DIR": str(state),
        "DOCKROLL_LEDGER_URL": ledger_url,
        "DOCKROLL_CONFIG": str(config_path),
    }
    dockerfile = repo / "Dockerfile"
    pristine = dockerfile.read_text(encoding="utf-8")
    engine = DockerEngine()
    recorded: dict[str, Release] = {}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environ.items():
            patch.setenv(key, value)
        patch.delenv("DOCKROLL_DOCKER_CLI", raising=False)
        _git(repo, "init", "-q")
        try:
            for version, knobs in releases.items():
                baked = "".join(f"ENV {key}={value}\n" for key, value in knobs.items())
                dockerfile.write_text(
                    pristine.replace("USER app:app", f"{baked}\nUSER app:app"), encoding="utf-8"
                )
                (repo / "CHANGES").write_text(f"{version}\n", encoding="utf-8")
                _git(repo, "add", "-A")
                _git(repo, "commit", "-q", "-m", f"release {version}")
                _git(repo, "tag", version)
                config = load_config(config_path)
                metadata = release_metadata(config, env=plain_git_env())
                built = build_release(config, metadata, engine)
                pushed = push_release(built.record, engine)
                with open_ledger(ledger_url) as ledger:
                    recorded[version] = record_push(ledger, built.record, pushed)
            assert len({r.digest for r in recorded.values()}) == len(releases)
            yield Seeded(
                service=service,
                repo=repo,
                config_path=config_path,
                state=state,
                ledger_url=ledger_url,
                releases=recorded,
                environ=environ,
                ports=ports,
            )
        finally:
            cleanup(engine.client, service)
            remove_images(engine.client, repository)
            engine.close()


def cleanup(client: docker.DockerClient, service: str) -> None:
    """Remove the service's app, job and lock containers, its routers and networks."""
    for container in client.containers.list(
        all=True, filters={"label": f"dev.dockroll.service={service}"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    for container in client.containers.list(
        all=True, filters={"name": f"dockroll-router-{service}-"}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    for network in client.networks.list(names=[f"dockroll-{service}-"]):
        if network.name.startswith(f"dockroll-{service}-"):
            with contextlib.suppress(docker.errors.APIError):
                network.remove()


@contextlib.contextmanager
def state_of(seeded: Seeded) -> Iterator[None]:
    """The process environment that makes library calls use the seeded state and ledger."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in seeded.environ.items():
            patch.setenv(key, value)
        yield


def versions(url: str, count: int) -> Counter[str]:
    """The versions answering ``count`` sequential requests (or ``error:<status>``)."""
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            response = client.get(f"{url}/version")
            seen[response.json()["version"] if response.status_code == 200 else "error"] += 1
    return seen


def wait_serving(url: str, version: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = httpx.get(f"{url}/version", timeout=2)
            if response.status_code == 200 and response.json()["version"] == version:
                return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{url} does not serve {version} after {timeout:g}s")
        time.sleep(0.1)


@dataclass
class Answer:
    at: float
    """When the request was sent (time.monotonic)."""
    version: str | None
    """The version that answered, None for a failure."""
    error: str = ""


class Load:
    """Constant GET /version traffic from ``threads`` threads until stopped."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.threads = threads
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _work(self) -> None:
        with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.get(f"{self.url}/version")
                    if response.status_code == 200:
                        answer = Answer(sent, str(response.json()["version"]))
                    else:
                        answer = Answer(sent, None, f"HTTP {response.status_code}")
                except (httpx.HTTPError, ValueError) as exc:
                    answer = Answer(sent, None, f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self.answers.append(answer)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Block until at least ``count`` answers arrived; fail the test after ``timeout``.

        A load that stalls must not pass as one that saw no failure.
        """
        deadline = time.monotonic() + timeout
        while len(self.answers) < count:
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"the load on {self.url} stalled: {len(self.answers)} of {count} answers "
                    f"after {timeout:g}s"
                )
            time.sleep(0.05)

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.answers if a.version is None]

    def versions(self, since: float = 0.0) -> Counter[str]:
        """Who answered the requests sent at or after ``since``."""
        return Counter(a.version or "failed" for a in self.answers if a.at >= since)


def cli_env(seeded: Seeded) -> dict[str, str]:
    return {**plain_git_env(os.environ), **seeded.environ}


DOCKROLL = str(Path(sys.executable).with_name("dockroll"))
"""The `dockroll` entry point of the interpreter running the tests."""


def run_dockroll(
    seeded: Seeded, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the `dockroll` CLI against the seeded state, as a user would; output captured."""
    return subprocess.run(
        [DOCKROLL, *args],
        env=cli_env(seeded),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
