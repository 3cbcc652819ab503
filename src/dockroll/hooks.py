"""Hooks at rollout points: an HTTP endpoint or a local command, bounded in time.

Points: ``pre-rollout`` (before anything changes), ``pre-traffic`` (new replicas
are healthy, none has weight yet), ``post-rollout`` (the new release serves all
traffic) and ``rollback`` (after a rollout was undone). A failing pre-hook stops
the rollout, which then changes nothing more; post-rollout and rollback hooks
only report, since what they would guard is already done.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dockroll.durations import Duration

if TYPE_CHECKING:
    import httpx

__all__ = ["Hook", "HookPoint", "HookResult", "Hooks", "run_hook"]

_OUTPUT_LIMIT = 2000


class HookPoint(StrEnum):
    PRE_ROLLOUT = "pre-rollout"
    PRE_TRAFFIC = "pre-traffic"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"

    @property
    def blocking(self) -> bool:
        """Whether a failure stops the rollout."""
        return self in (HookPoint.PRE_ROLLOUT, HookPoint.PRE_TRAFFIC)


class Hook(BaseModel):
    """One hook: ``command`` (argv, run on this machine) or ``http`` (a URL that gets a POST)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    command: list[str] | None = None
    http: str | None = None
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _one_kind(self) -> Hook:
        if (self.command is None) == (self.http is None):
            raise ValueError("a hook takes exactly one of 'command' (a list) or 'http' (a URL)")
        if self.command is not None and not self.command:
            raise ValueError("a hook's command cannot be empty")
        if self.http is not None and not self.http.startswith(("http://", "https://")):
            raise ValueError(f"{self.http!r} is not an http(s) URL")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return " ".join(self.command) if self.command else f"{self.method} {self.http}"


class Hooks(BaseModel):
    """Hooks by rollout point, in dockroll.yml under an environment's ``hooks:``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    pre_rollout: list[Hook] = Field(default_factory=list, alias="pre-rollout")
    pre_traffic: list[Hook] = Field(default_factory=list, alias="pre-traffic")
    post_rollout: list[Hook] = Field(default_factory=list, alias="post-rollout")
    rollback: list[Hook] = Field(default_factory=list)

    def at(self, point: HookPoint) -> Sequence[Hook]:
        return {
            HookPoint.PRE_ROLLOUT: self.pre_rollout,
            HookPoint.PRE_TRAFFIC: self.pre_traffic,
            HookPoint.POST_ROLLOUT: self.post_rollout,
            HookPoint.ROLLBACK: self.rollback,
        }[point]


@dataclass(frozen=True)
class HookResult:
    hook: str
    point: HookPoint
    ok: bool
    detail: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "point": self.point.value,
            "ok": self.ok,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


def run_hook(
    hook: Hook,
    point: HookPoint,
    context: Mapping[str, str],
    *,
    http: httpx.Client | None = None,
) -> HookResult:
    """Run one hook with the rollout's facts; never raises for the hook's own failure.

    Commands get the facts as ``DOCKROLL_*`` environment variables; HTTP hooks
    get them as a JSON body. Either way the hook's verdict is its exit code or
    HTTP status (2xx passes).
    """
    started = time.monotonic()
    facts = {**context, "hook": point.value}
    if hook.command is not None:
        env = {
            **os.environ,
            **{f"DOCKROLL_{k.upper().replace('-', '_')}": v for k, v in facts.items()},
        }
        try:
            done = subprocess.run(
                hook.command,
                env=env,
                capture_output=True,
                text=True,
                timeout=hook.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return HookResult(
                hook.label, point, False, f"timed out after {hook.timeout:g}s",
                time.monotonic() - started,
            )  # fmt: skip
        except OSError as exc:
            return HookResult(
                hook.label, point, False, f"could not run: {exc}", time.monotonic() - started
            )
        output = (done.stdout + done.stderr).strip()[-_OUTPUT_LIMIT:]
        detail = f"exit {done.returncode}" + (f": {output}" if output else "")
        return HookResult(
            hook.label, point, done.returncode == 0, detail, time.monotonic() - started
        )
    assert hook.http is not None  # guaranteed by the model
    import httpx  # noqa: PLC0415 - only HTTP hooks need it; dockroll.yml loads without it

    client = http or httpx.Client()
    try:
        response = client.request(
            hook.method,
            hook.http,
            headers={"Content-Type": "application/json", **hook.headers},
            content=json.dumps(facts),
            timeout=hook.timeout,
        )
        ok = response.is_success
        detail = f"HTTP {response.status_code}"
        if not ok and response.text:
            detail += f": {response.text.strip()[:_OUTPUT_LIMIT]}"
    except httpx.HTTPError as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    finally:
        if http is None:
            client.close()
    return HookResult(hook.label, point, ok, detail, time.monotonic() - started)
