"""An analysis run: every check of an environment's settings, ticked by the executor."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import httpx

from dockroll.analysis.judges import (
    ErrorSPRT,
    GroupSample,
    LatencyRankTest,
    Outcome,
    Tally,
    Verdict,
    judge_baseline_errors,
    judge_baseline_latency,
    judge_latency,
    judge_success_rate,
    measure_condition,
    spent_alpha,
)
from dockroll.analysis.providers import (
    BASELINE,
    CANARY,
    Groups,
    HttpProvider,
    PrometheusProvider,
    PrometheusTraffic,
    Reading,
    RouterProvider,
    TrafficSource,
)
from dockroll.checks.settings import (
    AnalysisSettings,
    CheckProvider,
    CheckSettings,
    NoDataPolicy,
    TrafficProvider,
)
from dockroll.errors import AnalysisError, ConfigError

if TYPE_CHECKING:
    from dockroll.router.port import Router  # annotations only: avoids an import cycle

__all__ = [
    "Action",
    "Analysis",
    "AnalysisSummary",
    "Decision",
    "Ending",
    "Providers",
    "StepEnd",
    "providers_for",
]

_EPSILON = 1e-6


class Action(StrEnum):
    """What the executor should do after a tick."""

    PASS = "pass"
    """Every check accepts the release now; the executor may promote early."""
    FAIL = "fail"
    """A check failed by its rules: roll back. Final."""
    PAUSE = "pause"
    """Hold the rollout (no-data policy ``pause`` or an inconclusive limit): wait for a person."""
    CONTINUE = "continue"
    """Not decided yet: keep the traffic split and tick again after the interval."""


@dataclass(frozen=True)
class Decision:
    """The aggregate of all checks after one tick."""

    action: Action
    reason: str
    verdicts: tuple[Verdict, ...]
    """The latest verdict of every check, dry-run ones included."""


class Ending(StrEnum):
    """How a canary step whose time is up ends (:meth:`Analysis.step_end`)."""

    PASS = "pass"
    """Every check passes: the rollout goes on to the next step."""
    EXTEND = "extend"
    """Fewer canary requests than ``min_sample``: the step goes on, up to ``max_extension``."""
    PROCEED = "proceed"
    """Undecided, and ``no_data: inconclusive``: the rollout goes on without a pass, on record."""
    PAUSE = "pause"
    """Undecided, and ``no_data: pause`` (or a check asks to hold): wait for a person."""
    FAIL = "fail"
    """Undecided, and ``no_data: fail`` (or a check failed): roll back."""


@dataclass(frozen=True)
class StepEnd:
    """What the evidence of a canary step allows once its time is up."""

    ending: Ending
    reason: str
    canary_requests: float
    """Canary requests the analysis counted during the step."""
    min_sample: int
    extended: float
    """Seconds the step ran past its planned end so far."""

    def as_dict(self) -> dict[str, object]:
        return {
            "ending": self.ending.value,
            "reason": self.reason,
            "canary_requests": self.canary_requests,
            "min_sample": self.min_sample,
            "extended_seconds": round(self.extended, 3),
        }


@dataclass(frozen=True)
class AnalysisSummary:
    """What the ledger records about a run, e.g. on rollback."""

    action: Action
    reason: str
    ticks: int
    seconds: float
    verdicts: tuple[Verdict, ...]
    numbers: Mapping[str, float]
    """``"<check>.<number>"`` → value, NaN and infinities left out (JSON-safe)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "reason": self.reason,
            "ticks": self.ticks,
            "seconds": self.seconds,
            "checks": {
                v.check: {"outcome": v.outcome.value, "reason": v.reason} for v in self.verdicts
            },
            "numbers": dict(self.numbers),
        }


@dataclass(frozen=True)
class Providers:
    """The providers an :class:`Analysis` reads; any may be absent if no check needs it."""

    traffic: TrafficSource | None = None
    """Requests, errors and latency per group for the built-in checks."""
    prometheus: PrometheusProvider | None = None
    http: HttpProvider | None = None
    closers: tuple[Callable[[], None], ...] = field(default=())

    def close(self) -> None:
        for close in self.closers:
            close()


def providers_for(
    settings: AnalysisSettings, router: Router | None, *, http: httpx.Client | None = None
) -> Providers:
    """The providers ``settings`` need: the router's counters or Prometheus, plus HTTP.

    ``http`` is the client every network provider uses (tests pass one over
    ``httpx.MockTransport``); a fresh one is made otherwise, closed by
    :meth:`Providers.close`.
    """
    kinds = {check.provider for check in settings.checks}
    prom_settings = settings.prometheus_settings()
    prometheus = None
    closers: list[Callable[[], None]] = []
    if settings.provider is TrafficProvider.PROMETHEUS or CheckProvider.PROMETHEUS in kinds:
        prometheus = PrometheusProvider(prom_settings.url, http=http, timeout=prom_settings.timeout)
        closers.append(prometheus.close)
    traffic: TrafficSource | None = None
    if settings.provider is TrafficProvider.PROMETHEUS:
        assert prometheus is not None
        traffic = PrometheusTraffic(prometheus, prom_settings, settings.interval)
    elif router is not None:
        traffic = RouterProvider(router)
    http_provider = None
    if CheckProvider.HTTP in kinds:
        http_provider = HttpProvider(http=http)
        closers.append(http_provider.close)
    return Providers(traffic, prometheus, http_provider, tuple(closers))


def _rank_samples(sample: GroupSample, min_requests: int) -> tuple[float, ...]:
    """Per-request latencies when the provider has them, else the interval's aggregate
    (only from an interval with ``min_requests``: an average of a few is noise)."""
    if sample.latencies_ms:
        return sample.latencies_ms
    if sample.requests >= min_requests and sample.latency_ms is not None:
        return (sample.latency_ms,)
    return ()


class _CustomCheck:
    def __init__(self, settings: CheckSettings, analysis: AnalysisSettings) -> None:
        self.settings = settings
        self.interval = settings.interval or analysis.interval
        self.success = settings.success_condition()
        self.failure = settings.failure_condition()
        self.selector = settings.selector()
        self.tally = Tally(
            failure_limit=settings.failure_limit,
            inconclusive_limit=settings.inconclusive_limit,
            consecutive_error_limit=settings.consecutive_error_limit,
            no_data=settings.no_data or analysis.no_data,
        )
        self.last_measured: float | None = None

    def due(self, now: float) -> bool:
        return self.last_measured is None or now - self.last_measured >= self.interval - _EPSILON


class Analysis:
    """Every check of ``settings`` over ``groups``, decided one tick at a time.

    ``groups`` maps :data:`~dockroll.analysis.providers.CANARY` (required) and
    :data:`~dockroll.analysis.providers.BASELINE` (optional, may be empty) to
    router server names. Call :meth:`tick` every ``settings.interval`` seconds
    with a monotonic clock; the first tick of a router-backed run only takes the
    starting snapshot. A FAIL is final; later ticks repeat it without reading.
    """

    def __init__(self, settings: AnalysisSettings, providers: Providers, groups: Groups) -> None:
        if CANARY not in groups:
            raise ValueError(f"groups need a {CANARY!r} entry, got {sorted(groups)}")
        self.settings = settings
        self.providers = providers
        self.groups = {name: tuple(servers) for name, servers in groups.items()}
        self.has_baseline = bool(self.groups.get(BASELINE))
        self.checks = [_CustomCheck(check, settings) for check in settings.checks]
        for check in self.checks:
            kind = check.settings.provider
            if (kind is CheckProvider.PROMETHEUS and providers.prometheus is None) or (
                kind is CheckProvider.HTTP and providers.http is None
            ):
                raise ConfigError(
                    f"check {check.settings.name!r} reads {kind.value}, "
                    "but no such provider was given"
                )
        self._tallies: dict[str, Tally] = {}
        sequential = settings.sequential
        reference = 1 - settings.success_rate.min if settings.success_rate else 0.01
        self.errors_test = ErrorSPRT(
            confidence=settings.confidence,
            tolerance=sequential.tolerance,
            bad_error_rate=sequential.bad_error_rate,
            reference_rate=reference,
        )
        baseline = settings.baseline
        self.latency_test = LatencyRankTest(
            confidence=settings.confidence,
            min_samples=sequential.latency_min_samples,
            window=sequential.latency_window,
            max_ratio=baseline.max_latency_ratio if baseline else 1.5,
            min_delta_ms=(baseline.min_latency_delta if baseline else 0.05) * 1e3,
        )
        self._latest: dict[str, Verdict] = {}
        self._latency_streak = 0
        self._looks: dict[str, int] = {}
        """Intervals with data each per-interval judge has tested so far."""
        self._dry_run = {check.settings.name for check in self.checks if check.settings.dry_run}
        self._final: Decision | None = None
        self._started: float | None = None
        self._now = 0.0
        self.ticks = 0
        self.canary_requests = 0.0
        """Canary requests the traffic source reported over the run."""
        self.last_samples: Mapping[str, GroupSample] | None = None
        """What the traffic source answered at the latest tick (None: nothing measured)."""
        self.last_error: str | None = None
        """The traffic source's failure at the latest tick, if it failed."""
        self.on_tick: Callable[[Decision, float], None] | None = None
        """Called after every tick with its decision and time (the executor records it)."""

    # -- the executor's side ---------------------------------------------------------

    def tick(self, now: float) -> Decision:
        """Read what is due, judge it, and say what to do."""
        if self._final is not None:
            return self._final
        if self._started is None:
            self._started = now
        self._now = now
        self.ticks += 1
        if self.providers.traffic is not None:
            self._tick_builtin()
        for check in self.checks:
            if check.due(now):
                check.last_measured = now
                self._latest[check.settings.name] = self._measure(check)
        decision = self._decide()
        if decision.action is Action.FAIL:
            self._final = decision
        if self.on_tick is not None:
            self.on_tick(decision, now)
        return decision

    def summary(self) -> AnalysisSummary:
        """The decision so far with every check's numbers, for the ledger."""
        decision = self._final or self._decide()
        numbers = {
            f"{verdict.check}.{name}": value
            for verdict in decision.verdicts
            for name, value in verdict.numbers.items()
            if math.isfinite(value)
        }
        seconds = 0.0 if self._started is None else self._now - self._started
        return AnalysisSummary(
            decision.action, decision.reason, self.ticks, seconds, decision.verdicts, numbers
        )

    def step_end(self, extended: float) -> StepEnd:
        """How a canary step ends now that its time is up, ``extended`` seconds ago.

        A pass ends it; so does a failure or a hold. Undecided with fewer than
        ``min_sample`` canary requests, it is extended while less than
        ``max_extension`` has gone by. Otherwise the ``no_data`` policy decides:
        an undecided step is no evidence, so it never ends as a silent pass.
        Without a traffic source there are no request counts: no extension.
        """
        settings = self.settings
        decision = self._final or self._decide()
        seen, needed = self.canary_requests, settings.min_sample

        def end(ending: Ending, reason: str) -> StepEnd:
            return StepEnd(ending, reason, seen, needed, extended)

        if decision.action is Action.PASS:
            return end(Ending.PASS, decision.reason)
        if decision.action is Action.FAIL:
            return end(Ending.FAIL, decision.reason)
        if decision.action is Action.PAUSE:
            return end(Ending.PAUSE, decision.reason)
        short = self.providers.traffic is not None and seen < needed
        if short and extended < settings.max_extension - _EPSILON:
            return end(
                Ending.EXTEND,
                f"insufficient data, extending: {seen:g} of the {needed} canary requests needed",
            )
        if short:
            why = (
                f"insufficient data: {seen:g} of the {needed} canary requests needed "
                f"after extending the step {extended:g}s"
            )
        else:
            why = f"undecided after {seen:g} canary requests ({decision.reason})"
        match settings.no_data:
            case NoDataPolicy.FAIL:
                return end(Ending.FAIL, f"{why}; no_data: fail")
            case NoDataPolicy.PAUSE:
                return end(Ending.PAUSE, f"{why}; holding for a person (no_data: pause)")
        return end(Ending.PROCEED, f"{why}; going on without a pass (no_data: inconclusive)")

    # -- built-in checks -------------------------------------------------------------

    def _tally(self, check: str, *, failure_limit: int) -> Tally:
        if check not in self._tallies:
            self._tallies[check] = Tally(
                failure_limit=failure_limit,
                consecutive_error_limit=self.settings.consecutive_error_limit,
                no_data=self.settings.no_data,
            )
        return self._tallies[check]

    def _builtin_names(self) -> list[tuple[str, int]]:
        settings, limit = self.settings, self.settings.failure_limit
        names: list[tuple[str, int]] = []
        if settings.success_rate is not None:
            names.append(("success-rate", limit))
        if settings.latency is not None:
            names.append(("latency", limit))
        if settings.baseline is not None and self.has_baseline:
            names += [("baseline-errors", limit), ("baseline-latency", limit)]
        if settings.sequential.enabled:
            names.append((ErrorSPRT.check, 0))
            if self.has_baseline:
                names.append((LatencyRankTest.check, 0))
        return names

    def _tick_builtin(self) -> None:
        assert self.providers.traffic is not None
        names = self._builtin_names()
        self.last_samples, self.last_error = None, None
        try:
            samples = self.providers.traffic.sample(self.groups)
        except AnalysisError as error:
            self.last_error = error.message
            for name, limit in names:
                measured = Verdict(Outcome.NO_DATA, name, f"provider error: {error.message}")
                self._latest[name] = self._tally(name, failure_limit=limit).record(
                    measured, error=True
                )
            return
        if samples is None:
            return  # the starting snapshot
        self.last_samples = samples
        canary = samples.get(CANARY, GroupSample(0, 0))
        self.canary_requests += canary.requests
        baseline = samples.get(BASELINE, GroupSample(0, 0)) if self.has_baseline else None
        for name, limit in names:
            measured = self._persistent(self._judge(name, canary, baseline))
            self._latest[name] = self._tally(name, failure_limit=limit).record(measured)

    def _persistent(self, measured: Verdict) -> Verdict:
        """A latency comparison fails only when it fails in several intervals in a row."""
        if measured.check != "baseline-latency" or self.settings.baseline is None:
            return measured
        needed = self.settings.baseline.latency_intervals
        if measured.outcome is Outcome.FAIL:
            self._latency_streak += 1
        elif measured.outcome is not Outcome.NO_DATA:
            self._latency_streak = 0
        if measured.outcome is Outcome.FAIL and self._latency_streak < needed:
            return Verdict(
                Outcome.INCONCLUSIVE,
                measured.check,
                f"{measured.reason} ({self._latency_streak} of {needed} intervals in a row)",
                measured.numbers,
            )
        return measured

    def _judge(self, name: str, canary: GroupSample, baseline: GroupSample | None) -> Verdict:
        settings = self.settings
        # The per-interval judges test again every interval with data: the j-th test
        # spends alpha / (j (j + 1)), so all of them together stay within 1 - confidence.
        look = self._looks.get(name, 0) + 1
        interval_confidence = 1 - spent_alpha(1 - settings.confidence, look)
        if canary.requests >= settings.min_requests and name in (
            "success-rate",
            "baseline-errors",
        ):
            self._looks[name] = look
        if name == "success-rate":
            assert settings.success_rate is not None
            return judge_success_rate(
                canary,
                settings.success_rate.min,
                confidence=interval_confidence,
                min_requests=settings.min_requests,
            )
        if name == "latency":
            assert settings.latency is not None
            return judge_latency(
                canary, settings.latency.max * 1e3, min_requests=settings.min_requests
            )
        if name == ErrorSPRT.check:
            return self.errors_test.update(canary, baseline)
        assert baseline is not None
        if name == LatencyRankTest.check:
            return self.latency_test.update(
                _rank_samples(canary, settings.min_requests), _rank_samples(baseline, 1)
            )
        assert settings.baseline is not None
        if name == "baseline-errors":
            return judge_baseline_errors(
                canary,
                baseline,
                max_ratio=settings.baseline.max_error_ratio,
                min_delta=settings.baseline.min_error_delta,
                confidence=interval_confidence,
                min_requests=settings.min_requests,
            )
        return judge_baseline_latency(
            canary,
            baseline,
            max_ratio=settings.baseline.max_latency_ratio,
            min_delta_ms=settings.baseline.min_latency_delta * 1e3,
            min_requests=settings.min_requests,
        )

    # -- custom checks ---------------------------------------------------------------

    def _read(self, check: _CustomCheck) -> Reading:
        settings = check.settings
        if settings.provider is CheckProvider.PROMETHEUS:
            assert self.providers.prometheus is not None
            assert settings.query is not None
            return self.providers.prometheus.query(settings.query)
        assert self.providers.http is not None
        assert settings.url is not None
        return self.providers.http.read(settings.url, check.selector)

    def _measure(self, check: _CustomCheck) -> Verdict:
        name = check.settings.name
        try:
            reading = self._read(check)
        except AnalysisError as error:
            measured = Verdict(Outcome.NO_DATA, name, f"provider error: {error.message}")
            return check.tally.record(measured, error=True)
        measured = measure_condition(name, reading.value, check.success, check.failure)
        if reading.note and measured.outcome is Outcome.NO_DATA:
            measured = Verdict(Outcome.NO_DATA, name, reading.note, measured.numbers)
        return check.tally.record(measured)

    # -- aggregate -------------------------------------------------------------------

    def _decide(self) -> Decision:
        verdicts = tuple(self._latest.values())
        active = [v for v in verdicts if v.check not in self._dry_run]
        expected = len(self._builtin_names()) if self.providers.traffic is not None else 0
        expected += len([c for c in self.checks if not c.settings.dry_run])
        failed = [v for v in active if v.outcome is Outcome.FAIL]
        if failed:
            return Decision(
                Action.FAIL, "; ".join(f"{v.check}: {v.reason}" for v in failed), verdicts
            )
        paused = [v for v in active if v.pause]
        if paused:
            return Decision(
                Action.PAUSE, "; ".join(f"{v.check}: {v.reason}" for v in paused), verdicts
            )
        if active and len(active) >= expected and all(v.outcome is Outcome.PASS for v in active):
            return Decision(Action.PASS, "every check passes", verdicts)
        waiting = [v for v in active if v.outcome is not Outcome.PASS]
        reason = "; ".join(f"{v.check}: {v.reason}" for v in waiting) or "collecting data"
        return Decision(Action.CONTINUE, reason, verdicts)
