"""Releases with faults baked in, and paced load that records who answered each request.

:func:`seed_releases` copies the sample service into a git repo of its own with
a unique service name, and builds and pushes one release per tagged version,
each with the fault knobs given for it set as ``ENV`` in its Dockerfile (so the
fault is part of the image, like a real bad release). :class:`PacedLoad` sends
``GET /`` (the application endpoint, where the knobs act) at a bounded rate.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from dockroll.config import load_config
from dockroll.engine.docker import DockerEngine
from dockroll.ledger import Release, open_ledger
from dockroll.pipeline.build import build_release
from dockroll.pipeline.metadata import release_metadata
from dockroll.pipeline.push import push_release, record_push
from tests.integration.rollout_support import (
    EXAMPLE,
    Seeded,
    _git,
    cleanup,
    free_router_port,
    plain_git_env,
    real_substitutes,
    remove_images,
)

__all__ = ["PacedLoad", "Reply", "seed_releases"]


def seed_releases(
    tmp_path_factory: pytest.TempPathFactory,
    registry: str,
    environments: Mapping[str, Mapping[str, Any]],
    releases: Mapping[str, Mapping[str, str]],
    *,
    prefix: str,
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
    data["container"] = {"port": 5000, "stop_grace": "5s"}
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


@dataclass(frozen=True)
class Reply:
    sent: float
    """time.monotonic() when the request left."""
    seconds: float
    status: int
    """HTTP status; 0 when no answer came."""
    version: str | None
    """The version named by a 200 answer (the sample's 5xx bodies name none)."""


class PacedLoad:
    """``GET /`` at about ``rate`` requests a second from ``threads`` threads.

    Bounded twice: it stops at :meth:`__exit__` and on its own after ``max_seconds``.
    """

    def __init__(
        self, url: str, *, rate: float = 80.0, threads: int = 8, max_seconds: float = 180.0
    ) -> None:
        self.url = url
        self.rate = rate
        self.threads = threads
        self.max_seconds = max_seconds
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _work(self, offset: float) -> None:
        period = self.threads / self.rate
        started = time.monotonic()
        due = started + offset
        with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
            while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                    continue
                due = max(due + period, time.monotonic() - period)
                sent = time.monotonic()
                status, version = 0, None
                try:
                    response = client.get(f"{self.url}/")
                    status = response.status_code
                    if status == 200:
                        version = str(response.json()["version"])
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                with self._lock:
                    self.replies.append(Reply(sent, time.monotonic() - sent, status, version))

    def __enter__(self) -> PacedLoad:
        for index in range(self.threads):
            offset = index / self.rate
            worker = threading.Thread(target=self._work, args=(offset,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.replies) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def since(self, moment: float) -> list[Reply]:
        with self._lock:
            return [r for r in self.replies if r.sent >= moment]

    def failed(self, since: float = 0.0) -> list[Reply]:
        return [r for r in self.since(since) if r.status != 200]

    def versions(self, since: float = 0.0) -> Counter[str]:
        return Counter(r.version or f"HTTP {r.status}" for r in self.since(since))
