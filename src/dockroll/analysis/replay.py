"""Judge a recorded rollout again, with the settings it ran with or with changed ones.

Every analysis tick of a rollout is in the ledger (:class:`~dockroll.ledger.AnalysisSample`):
the interval's request counts, errors and latency of canary and baseline, and, on
each step's first tick, the analysis settings and server groups. :func:`replay`
feeds those samples, tick by tick, to a fresh :class:`~dockroll.analysis.Analysis`
per step built from the recorded settings with ``overrides`` applied, and compares
its decisions with the recorded ones: whether, and at which tick, it would have
decided differently.

Only the built-in checks are replayed: custom checks read Prometheus or an HTTP
endpoint at the time, which a replay cannot ask again; they are left out and named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import yaml
from pydantic import ValidationError

from dockroll.analysis.judges import GroupSample
from dockroll.analysis.providers import BASELINE, CANARY, Groups
from dockroll.analysis.run import Analysis, Providers
from dockroll.analysis.settings import AnalysisSettings
from dockroll.errors import AnalysisError, UsageError
from dockroll.ledger import AnalysisSample

__all__ = ["Replay", "ReplayedTick", "apply_overrides", "parse_overrides", "replay"]

_DECISIVE = ("fail", "pass", "pause")


@dataclass(frozen=True)
class ReplayedTick:
    """One recorded tick and what the replay decided on it."""

    step_index: int
    tick: int
    elapsed: float
    percent: int | None
    recorded_action: str
    recorded_reason: str
    action: str
    reason: str

    @property
    def differs(self) -> bool:
        return self.action != self.recorded_action

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_index,
            "tick": self.tick,
            "elapsed": self.elapsed,
            "percent": self.percent,
            "recorded": {"action": self.recorded_action, "reason": self.recorded_reason},
            "replayed": {"action": self.action, "reason": self.reason},
        }


@dataclass(frozen=True)
class Replay:
    """The outcome of a replay: every tick, and where it first parts from the recording."""

    overrides: Mapping[str, Any]
    ticks: tuple[ReplayedTick, ...]
    skipped_checks: tuple[str, ...] = ()
    """Custom checks of the recorded settings that a replay cannot ask again."""
    unreplayable_steps: tuple[int, ...] = field(default=())
    """Steps whose first tick (with the settings) is missing from the ledger."""

    @property
    def first_difference(self) -> ReplayedTick | None:
        return next((tick for tick in self.ticks if tick.differs), None)

    @property
    def recorded_decision(self) -> ReplayedTick | None:
        """The first tick the recording decided on (fail, pass or pause)."""
        return next((t for t in self.ticks if t.recorded_action in _DECISIVE), None)

    @property
    def replayed_decision(self) -> ReplayedTick | None:
        """The first tick the replay decided on (fail, pass or pause)."""
        return next((t for t in self.ticks if t.action in _DECISIVE), None)

    @property
    def differs(self) -> bool:
        return self.first_difference is not None

    def summary(self) -> str:
        """One sentence: would the replay have decided differently, and when."""
        if not self.ticks:
            return "no analysis samples were recorded for this deployment"
        recorded, replayed = self.recorded_decision, self.replayed_decision
        if not self.differs:
            if recorded is None:
                return "the replay decides as recorded: undecided at every tick"
            return f"the replay decides as recorded: {_decision(recorded, recorded=True)}"
        if replayed is None:
            assert recorded is not None
            decided = _decision(recorded, recorded=True)
            return (
                f"would not have decided: the recording decided {decided}; "
                f"the replay is still undecided there ({recorded.reason})"
            )
        if recorded is None:
            return (
                f"would have decided {_decision(replayed, recorded=False)}, where the recording "
                "stayed undecided"
            )
        if (replayed.step_index, replayed.tick) < (recorded.step_index, recorded.tick):
            when = "earlier"
        elif (replayed.step_index, replayed.tick) > (recorded.step_index, recorded.tick):
            when = "later"
        else:
            when = "at the same tick"
        if replayed.action == recorded.recorded_action:
            return (
                f"would have decided the same, {when}: {_decision(replayed, recorded=False)} "
                f"instead of {_at(recorded)}"
            )
        return (
            f"would have decided differently: {_decision(replayed, recorded=False)}, where the "
            f"recording decided {_decision(recorded, recorded=True)}"
        )

    def as_dict(self) -> dict[str, Any]:
        first = self.first_difference
        recorded, replayed = self.recorded_decision, self.replayed_decision
        return {
            "overrides": dict(self.overrides),
            "differs": self.differs,
            "summary": self.summary(),
            "first_difference": first.as_dict() if first else None,
            "recorded_decision": recorded.as_dict() if recorded else None,
            "replayed_decision": replayed.as_dict() if replayed else None,
            "skipped_checks": list(self.skipped_checks),
            "unreplayable_steps": list(self.unreplayable_steps),
            "ticks": [tick.as_dict() for tick in self.ticks],
        }


def _at(tick: ReplayedTick) -> str:
    where = f"{tick.percent}%" if tick.percent is not None else "full traffic"
    return f"step {tick.step_index} ({where}) after {tick.elapsed:g}s, tick {tick.tick}"


def _decision(tick: ReplayedTick, *, recorded: bool) -> str:
    action = tick.recorded_action if recorded else tick.action
    reason = tick.recorded_reason if recorded else tick.reason
    return f"{action} at {_at(tick)} ({reason})"


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a mapping; values are read as YAML scalars (``0.95``,
    ``false``, ``30s``, ``null``)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f"--set {pair!r} is not KEY=VALUE",
                hint="e.g. --set confidence=0.95 --set success_rate.min=0.98",
            )
        try:
            overrides[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            overrides[key] = raw
    return overrides


def apply_overrides(settings: Mapping[str, Any], overrides: Mapping[str, Any]) -> AnalysisSettings:
    """``settings`` (an ``analysis:`` section as data) with each dotted key of
    ``overrides`` set, validated as dockroll.yml's section is."""
    data: dict[str, Any] = _copy(settings)
    for key, value in overrides.items():
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    try:
        return AnalysisSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'analysis'}: {error['msg']}"
            for error in exc.errors()
        )
        raise UsageError(
            f"the replay settings are not valid: {problems}",
            hint="keys are those of an environment's `analysis:` section in dockroll.yml "
            "(docs/analysis.md), dotted for nested ones: success_rate.min=0.98",
        ) from None


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


class _RecordedTraffic:
    """A traffic source answering with the recorded samples of one step, tick by tick."""

    def __init__(self, samples: Sequence[AnalysisSample]) -> None:
        self._samples = list(samples)
        self._next = 0

    def sample(self, groups: Groups) -> Mapping[str, GroupSample] | None:
        del groups  # the recorded groups are the ones the samples were taken of
        recorded = self._samples[self._next]
        self._next += 1
        sampled = recorded.detail.get("sampled")
        if sampled == "error":
            raise AnalysisError(str(recorded.detail.get("error", "provider error")))
        if sampled != "measured":
            return None
        latencies = recorded.detail.get("latencies_ms", {})
        found = {
            CANARY: _group(
                recorded.canary_requests,
                recorded.canary_errors,
                recorded.canary_latency_ms,
                latencies.get(CANARY),
            )
        }
        if recorded.baseline_requests is not None:
            found[BASELINE] = _group(
                recorded.baseline_requests,
                recorded.baseline_errors,
                recorded.baseline_latency_ms,
                latencies.get(BASELINE),
            )
        return found


def _group(
    requests: float | None, errors: float | None, latency: float | None, each: Any
) -> GroupSample:
    return GroupSample(
        requests=requests or 0.0,
        errors=errors or 0.0,
        latency_ms=latency if latency is not None and math.isfinite(latency) else None,
        latencies_ms=tuple(float(v) for v in each) if isinstance(each, list) else (),
    )


def replay(samples: Sequence[AnalysisSample], overrides: Mapping[str, Any]) -> Replay:
    """Re-judge ``samples`` (one deployment's, in step and tick order) with ``overrides``."""
    ticks: list[ReplayedTick] = []
    skipped: set[str] = set()
    unreplayable: list[int] = []
    ordered = sorted(samples, key=lambda s: (s.step_index, s.tick))
    for step_index, group in groupby(ordered, key=lambda s: s.step_index):
        step = list(group)
        first = step[0]
        recorded_settings = first.detail.get("settings")
        groups = first.detail.get("groups")
        if first.tick != 1 or not isinstance(recorded_settings, Mapping):
            unreplayable.append(step_index)
            continue
        skipped.update(str(check.get("name")) for check in recorded_settings.get("checks", []))
        settings = apply_overrides({**recorded_settings, "checks": []}, overrides)
        traffic = _RecordedTraffic(step) if first.detail.get("sampled") != "none" else None
        names: Groups = (
            {k: tuple(v) for k, v in groups.items()}
            if isinstance(groups, Mapping)
            else {CANARY: ("canary",), BASELINE: ("baseline",)}
        )
        analysis = Analysis(settings, Providers(traffic=traffic), names)
        for recorded in step:
            decision = analysis.tick(recorded.elapsed)
            ticks.append(
                ReplayedTick(
                    step_index=step_index,
                    tick=recorded.tick,
                    elapsed=recorded.elapsed,
                    percent=recorded.percent,
                    recorded_action=recorded.action,
                    recorded_reason=recorded.reason,
                    action=decision.action.value,
                    reason=decision.reason,
                )
            )
    return Replay(dict(overrides), tuple(ticks), tuple(sorted(skipped)), tuple(unreplayable))
