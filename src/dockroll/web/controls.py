"""The dashboard's controls: the library calls behind the CLI's pause, resume,
promote-canary, abort, rollback and approve, run as the token's actor.

Rollouts outlast an HTTP request, so the long actions run in a thread and are
followed as jobs; whatever they do is recorded (and audited) by the library, as
from the CLI. A failure is audited too, with its message.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockroll.config import Config
from dockroll.errors import DockrollError, UsageError
from dockroll.ledger import DeploymentStatus, Ledger, Outcome, open_ledger

__all__ = ["ACTIONS", "Controls", "Job"]

ACTIONS = ("pause", "resume", "promote-canary", "abort", "rollback", "approve")

ABORT_LOCK_WAIT = 120.0
"""Seconds an abort waits for a running rollout to hold at its pause request."""


@dataclass
class Job:
    id: int
    action: str
    env: str
    actor: str
    state: str = "running"
    """running, succeeded or failed."""
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Controls:
    config: Config
    ledger_url: str | None = None
    _jobs: dict[int, Job] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def job(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _open(self, actor: str) -> Ledger:
        return open_ledger(self.ledger_url, actor=actor)

    def run(
        self,
        action: str,
        env: str,
        actor: str,
        *,
        reference: str | None = None,
        reason: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Check the request, then act: ``(200, result)`` for what is done at once,
        ``(202, job)`` for what runs on. Bad requests raise :class:`UsageError`."""
        if action not in ACTIONS:
            raise UsageError(f"unknown control {action!r}", hint=f"one of {', '.join(ACTIONS)}")
        self.config.environment(env)
        service = self.config.service
        with self._open(actor) as ledger:
            if action == "approve":
                return 200, _approve(ledger, service, env, reference, reason)
            unfinished = ledger.unfinished_deployment(service, env)
            if action != "rollback" and unfinished is None:
                raise UsageError(
                    f"no rollout in {env} is running, paused or unfinished",
                    hint="the overview shows what runs there",
                )
            if action == "pause":
                assert unfinished is not None
                ledger.audit(
                    "pause", service=service, env=env, target=str(unfinished.id),
                    detail={"version": unfinished.version, "reason": reason, "via": "ui"},
                )  # fmt: skip
                return 200, {
                    "environment": env,
                    "deployment": unfinished.id,
                    "pause_requested": True,
                }
            if (
                action == "abort"
                and unfinished is not None
                and unfinished.status is DeploymentStatus.RUNNING
            ):
                # A rollout another process runs holds the lock: ask it to hold first.
                ledger.audit(
                    "pause",
                    service=service,
                    env=env,
                    target=str(unfinished.id),
                    detail={"version": unfinished.version, "reason": "abort", "via": "ui"},
                )
        job = self._start(
            action, env, actor, lambda ledger: self._act(ledger, action, env, reference, reason)
        )
        return 202, job.as_dict()

    def _act(
        self, ledger: Ledger, action: str, env: str, reference: str | None, reason: str | None
    ) -> dict[str, Any]:
        from dockroll.pipeline.deploy import continue_rollout, rollback_release  # noqa: PLC0415

        why = reason or f"{action} from the dashboard"
        if action == "rollback":
            outcome = rollback_release(
                self.config, env, ledger, to=reference, reason=why, lock_wait=30
            )
        else:
            outcome = continue_rollout(
                self.config, env, ledger,
                abort=action == "abort",
                skip_pauses=False,
                reason=why,
                lock_wait=ABORT_LOCK_WAIT if action == "abort" else 10,
            )  # fmt: skip
        if outcome is None:
            return {"status": "unchanged"}
        return {
            "status": outcome.status,
            "deployment": outcome.deployment.id,
            "version": outcome.deployment.version,
        }

    def _start(
        self, action: str, env: str, actor: str, work: Callable[[Ledger], dict[str, Any]]
    ) -> Job:
        with self._lock:
            job = Job(next(self._ids), action, env, actor)
            self._jobs[job.id] = job

        def run() -> None:
            with self._open(actor) as ledger:
                try:
                    job.result = work(ledger)
                    job.state = "succeeded"
                except DockrollError as exc:
                    job.state, job.message = "failed", exc.message
                    ledger.audit(
                        action, service=self.config.service, env=env, outcome=Outcome.FAILED,
                        detail={"error": exc.message, "via": "ui"},
                    )  # fmt: skip
                except Exception as exc:  # a bug must not vanish with the thread
                    job.state, job.message = "failed", f"{type(exc).__name__}: {exc}"

        threading.Thread(target=run, name=f"dockroll-ui-{action}-{job.id}", daemon=True).start()
        return job


def _approve(
    ledger: Ledger, service: str, env: str, reference: str | None, note: str | None
) -> dict[str, Any]:
    if not reference:
        raise UsageError("approve needs the release (version or digest)", hint="fill in `release`")
    release = ledger.get_release(service, reference)
    approval = ledger.record_approval(release, env, note=note)
    ledger.audit(
        "approve", service=service, env=env, target=release.version,
        who=approval.approved_by, detail={"digest": release.digest, "note": note, "via": "ui"},
    )  # fmt: skip
    return approval.as_dict()
