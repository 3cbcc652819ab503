"""Every analysis tick of a rollout, written to the ledger as it happens.

The executor ticks an :class:`~dockroll.analysis.Analysis` in each observed step;
:class:`SampleRecorder` stores what that tick measured (both groups' requests,
errors and latency), the traffic weights, and what the analysis decided. A
rollout's timeline can then be drawn after the fact, and its judges replayed
with other settings (:mod:`dockroll.analysis.replay`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockroll.errors import RouterError
from dockroll.ledger import DeploymentId

if TYPE_CHECKING:
    from dockroll.analysis import Analysis, Decision, GroupSample
    from dockroll.ledger import Ledger
    from dockroll.router.port import Router

__all__ = ["MAX_LATENCIES", "SampleRecorder", "verdicts_json"]

MAX_LATENCIES = 2000
"""Per-request latencies kept per group and tick; a busier interval keeps an even spread."""


def _finite(numbers: Mapping[str, float]) -> dict[str, float]:
    return {name: value for name, value in numbers.items() if math.isfinite(value)}


def verdicts_json(decision: Decision) -> list[dict[str, Any]]:
    """Each check's latest verdict as JSON-ready data."""
    return [
        {
            "check": verdict.check,
            "outcome": verdict.outcome.value,
            "reason": verdict.reason,
            "numbers": _finite(verdict.numbers),
            "pause": verdict.pause,
        }
        for verdict in decision.verdicts
    ]


def _spread(values: Sequence[float]) -> list[float]:
    if len(values) > MAX_LATENCIES:
        step = len(values) / MAX_LATENCIES
        values = [values[int(i * step)] for i in range(MAX_LATENCIES)]
    return [round(value, 3) for value in values]


def _numbers(sample: GroupSample | None) -> tuple[float, float, float | None] | None:
    if sample is None:
        return None
    latency = sample.latency_ms
    if latency is not None and not math.isfinite(latency):
        latency = None
    return (float(sample.requests), float(sample.errors), latency)


@dataclass
class SampleRecorder:
    """Records the ticks of one observed step of one deployment."""

    ledger: Ledger
    deployment: DeploymentId
    step_index: int
    percent: int | None
    router: Router
    _ticks: int = field(default=0, init=False)
    _started: float | None = field(default=None, init=False)

    def record(self, analysis: Analysis, decision: Decision, now: float) -> None:
        """Store the tick ``analysis`` just made and its ``decision``."""
        from dockroll.analysis import BASELINE, CANARY  # noqa: PLC0415 - loaded with the analysis

        if self._started is None:
            self._started = now
        self._ticks += 1
        detail: dict[str, Any] = {"verdicts": verdicts_json(decision)}
        samples = analysis.last_samples
        if analysis.providers.traffic is None:
            detail["sampled"] = "none"
        elif analysis.last_error is not None:
            detail["sampled"] = "error"
            detail["error"] = analysis.last_error
        elif samples is None:
            detail["sampled"] = "snapshot"
        else:
            detail["sampled"] = "measured"
            latencies = {
                group: _spread(sample.latencies_ms)
                for group, sample in samples.items()
                if sample.latencies_ms
            }
            if latencies:
                detail["latencies_ms"] = latencies
        if self._ticks == 1:
            detail["settings"] = analysis.settings.model_dump(mode="json")
            detail["groups"] = {group: list(names) for group, names in analysis.groups.items()}
        weights = self._weights(analysis, detail)
        canary = samples.get(CANARY) if samples is not None else None
        baseline = samples.get(BASELINE) if samples is not None else None
        self.ledger.record_sample(
            self.deployment,
            step_index=self.step_index,
            tick=self._ticks,
            elapsed=round(now - self._started, 3),
            action=decision.action.value,
            reason=decision.reason,
            percent=self.percent,
            canary_weight=weights.get(CANARY, 0),
            baseline_weight=weights.get(BASELINE, 0),
            canary=_numbers(canary),
            baseline=_numbers(baseline) if analysis.has_baseline else None,
            detail=detail,
        )

    def _weights(self, analysis: Analysis, detail: dict[str, Any]) -> dict[str, int]:
        try:
            servers = {server.name: server.weight for server in self.router.servers()}
        except RouterError as error:
            detail["weights_error"] = error.message
            return {}
        return {
            group: sum(servers.get(name, 0) for name in names)
            for group, names in analysis.groups.items()
        }
