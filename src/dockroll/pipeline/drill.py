"""A drill: rehearse a deploy and its rollback under synthetic load, and measure it.

The environment's router (``http://127.0.0.1:<port>/``; for an engine on another
host, through a tunnel to it) gets steady ``GET /`` traffic at ``rate`` requests a
second while dockroll deploys another release (``to``, else the one the
environment ran before) and then rolls back to what ran at the start; with
``kill_replica`` one replica of the new release is removed without grace in
between, as a crash would. The result (failed requests per phase, p50/p99
latency, how long the deploy took and the time to restore) is audited in the
ledger as ``drill``; the deploy and rollback are recorded as every deployment is.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from dockroll import labels
from dockroll.config import Config
from dockroll.errors import DockrollError, UsageError
from dockroll.events import Progress, ProgressCallback, discard
from dockroll.ledger import DeploymentStatus, Ledger, Outcome, Release
from dockroll.pipeline.deploy import (
    continue_rollout,
    deploy_release,
    find_release,
    rollback_release,
)
from dockroll.pipeline.engines import environment_engine
from dockroll.rollout.executor import RolloutOutcome

__all__ = [
    "PRODUCTION_NAMES",
    "DrillResult",
    "SyntheticLoad",
    "is_production",
    "percentile",
    "run_drill",
]

PRODUCTION_NAMES = frozenset({"prod", "production", "live"})
MAX_RATE = 1000.0
SETTLE_SECONDS = 2.0
"""Load before the deploy, after a killed replica, and after the rollback."""


def is_production(config: Config, env: str) -> bool:
    """Production: named so, or guarded by approvals."""
    return env.lower() in PRODUCTION_NAMES or config.environment(env).requires_approval


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` quantile of ``values`` (nearest rank); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return round(ordered[rank - 1], 3)


@dataclass(frozen=True)
class Answer:
    sent: float
    phase: str
    ok: bool
    latency_ms: float


@dataclass
class SyntheticLoad:
    """``GET url`` at about ``rate`` requests a second from a few threads; every answer
    is kept with the phase it was sent in. A 5xx or no answer is a failed request."""

    url: str
    rate: float
    threads: int = 4
    timeout: float = 5.0
    phase: str = "before"
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SyntheticLoad:
        count = max(1, min(self.threads, math.ceil(self.rate)))
        period = count / self.rate
        for number in range(count):
            worker = threading.Thread(
                target=self._work, args=(period, number * period / count), daemon=True,
                name=f"dockroll-drill-load-{number}",
            )  # fmt: skip
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 1)

    def _work(self, period: float, offset: float) -> None:
        due = time.monotonic() + offset
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set():
                wait = due - time.monotonic()
                if wait > 0:
                    self._stop.wait(wait)
                    continue
                due = max(due + period, time.monotonic() - period)
                sent, phase = time.monotonic(), self.phase
                try:
                    ok = client.get(self.url).status_code < 500
                except httpx.HTTPError:
                    ok = False
                answer = Answer(sent, phase, ok, (time.monotonic() - sent) * 1e3)
                with self._lock:
                    self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)


@dataclass(frozen=True)
class DrillResult:
    environment: str
    url: str
    rate: float
    from_version: str
    to_version: str
    requests: int
    failed_requests: int
    p50_ms: float | None
    p99_ms: float | None
    deploy_seconds: float
    time_to_restore_seconds: float | None
    """From the start of the rollback until it finished: the previous release serves again."""
    deploy_status: str
    """How the deploy ended: succeeded, or rolled_back when dockroll undid it itself."""
    killed_replica: str | None
    phases: dict[str, dict[str, Any]]
    """Per phase (before, deploy, killed, rollback, after): requests, failed, p99_ms."""
    deployments: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["deployments"] = list(self.deployments)
        return data


def _target(config: Config, ledger: Ledger, env: str, current: Release, to: str | None) -> Release:
    release: Release | None = None
    if to is not None:
        release = find_release(config, ledger, to)
    else:
        for deployment in ledger.deployments(config.service, env, limit=50):
            if (
                deployment.status is DeploymentStatus.SUCCEEDED
                and deployment.digest != current.digest
            ):
                release = ledger.find_release(config.service, deployment.digest)
                break
        if release is None:
            raise UsageError(
                f"{env} has run no other release to drill with",
                hint=f"name one: `dockroll drill --env {env} --to VERSION`",
            )
    assert release is not None
    if release.digest == current.digest:
        raise UsageError(
            f"{env} already runs {release.version}: a drill deploys another release",
            hint="name a different one with --to",
        )
    return release


def _phases(answers: list[Answer]) -> dict[str, dict[str, Any]]:
    phases: dict[str, dict[str, Any]] = {}
    for name in ("before", "deploy", "killed", "rollback", "after"):
        chosen = [a for a in answers if a.phase == name]
        if not chosen:
            continue
        phases[name] = {
            "requests": len(chosen),
            "failed": sum(not a.ok for a in chosen),
            "p99_ms": percentile([a.latency_ms for a in chosen if a.ok], 0.99),
        }
    return phases


@dataclass
class _Drill:
    config: Config
    env: str
    ledger: Ledger
    progress: ProgressCallback
    reason: str = ""
    deployments: list[int] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.progress(Progress("drill", text))

    def finish(self, outcome: RolloutOutcome | None) -> None:
        # A canary that holds for a person is moved on: a drill rehearses the whole way.
        while outcome is not None and outcome.status == "paused":
            outcome = continue_rollout(
                self.config, self.env, self.ledger,
                skip_pauses=True, progress=self.progress, reason=self.reason,
            )  # fmt: skip
        if outcome is not None:
            self.deployments.append(outcome.deployment.id)

    def deploy(self, target: Release) -> str:
        """Deploy ``target``; how it ended (rolled back when dockroll undid it itself)."""
        try:
            self.finish(
                deploy_release(
                    self.config, self.env, target, self.ledger,
                    progress=self.progress, reason=self.reason,
                )
            )  # fmt: skip
        except DockrollError as exc:
            latest = self.ledger.deployments(self.config.service, self.env, limit=1)
            undone = (DeploymentStatus.ROLLED_BACK, DeploymentStatus.ABORTED)
            if not latest or latest[0].digest != target.digest or latest[0].status not in undone:
                raise  # refused before anything changed
            self.deployments.append(latest[0].id)
            self.say(f"the deploy was rolled back by dockroll: {exc.message}")
            return latest[0].status.value
        return "succeeded"

    def roll_back(self, to: Release) -> None:
        self.finish(
            rollback_release(
                self.config, self.env, self.ledger,
                to=to.version, progress=self.progress, reason=self.reason,
            )
        )  # fmt: skip


def run_drill(
    config: Config,
    env: str,
    ledger: Ledger,
    *,
    to: str | None = None,
    rate: float = 50.0,
    kill_replica: bool = False,
    yes: bool = False,
    progress: ProgressCallback = discard,
    settle: float = SETTLE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> DrillResult:
    """Rehearse a deploy and rollback of ``env`` under load; audited as ``drill``."""
    env_config = config.environment(env)
    if is_production(config, env) and not yes:
        raise UsageError(
            f"{env} is a production environment: a drill deploys and rolls back there",
            hint=f"add --yes to drill {env} on purpose",
        )
    if not 0 < rate <= MAX_RATE:
        raise UsageError(f"--rate must be above 0 and at most {MAX_RATE:g}, not {rate:g}")
    current = ledger.current_release(config.service, env)
    if current is None:
        raise UsageError(
            f"nothing runs in {env} yet: a drill needs a release to come back to",
            hint=f"deploy one first: `dockroll deploy VERSION --env {env}`",
        )
    target = _target(config, ledger, env, current, to)
    url = f"http://127.0.0.1:{env_config.port}/"
    drill = _Drill(config, env, ledger, progress, f"drill: {target.version}, then back")
    drill.say(f"{rate:g} requests a second to {url}; deploying {target.version}, then back")
    killed: str | None = None
    restore: float | None = None
    try:
        with SyntheticLoad(url, rate) as load:
            sleep(settle)
            load.phase = "deploy"
            started = time.monotonic()
            deploy_status = drill.deploy(target)
            deploy_seconds = time.monotonic() - started
            if deploy_status == "succeeded":
                if kill_replica:
                    killed = _kill_one(config, env, target)
                    drill.say(f"removed {killed} without grace, as a crash would")
                    load.phase = "killed"
                    sleep(settle)
                load.phase = "rollback"
                started = time.monotonic()
                drill.roll_back(current)
                restore = time.monotonic() - started
            load.phase = "after"
            sleep(settle)
        answers = load.snapshot()
    except DockrollError as exc:
        ledger.audit(
            "drill", service=config.service, env=env, target=target.version,
            outcome=Outcome.FAILED, detail={"error": exc.message, "deployments": drill.deployments},
        )  # fmt: skip
        raise
    ok = [a.latency_ms for a in answers if a.ok]
    result = DrillResult(
        environment=env,
        url=url,
        rate=rate,
        from_version=current.version,
        to_version=target.version,
        requests=len(answers),
        failed_requests=len(answers) - len(ok),
        p50_ms=percentile(ok, 0.5),
        p99_ms=percentile(ok, 0.99),
        deploy_seconds=round(deploy_seconds, 3),
        time_to_restore_seconds=round(restore, 3) if restore is not None else None,
        deploy_status=deploy_status,
        killed_replica=killed,
        phases=_phases(answers),
        deployments=tuple(drill.deployments),
    )
    ledger.audit(
        "drill", service=config.service, env=env, target=target.version, detail=result.as_dict()
    )
    return result


def _kill_one(config: Config, env: str, release: Release) -> str:
    engine = environment_engine(config, env)
    try:
        running = [
            c
            for c in engine.containers(labels.selector(config.service, env))
            if c.labels.get(labels.DIGEST) == release.digest and c.status == "running"
        ]
        if not running:
            raise UsageError(f"no replica of {release.version} runs in {env} to remove")
        victim = sorted(running, key=lambda c: c.name)[0]
        engine.remove(victim.id, grace=0)
        return victim.name
    finally:
        engine.close()
