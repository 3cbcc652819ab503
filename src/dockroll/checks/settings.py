"""The ``analysis:`` section of an environment in dockroll.yml, as typed models.

This module must not import :mod:`dockroll.config` (which imports it); it shares
only :mod:`dockroll.durations`. docs/analysis.md describes every field.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dockroll.checks.conditions import Condition, parse_condition
from dockroll.checks.selectors import Selector, parse_selector
from dockroll.durations import Duration

__all__ = [
    "AnalysisSettings",
    "BaselineSettings",
    "CheckProvider",
    "CheckSettings",
    "LatencySettings",
    "NoDataPolicy",
    "PrometheusSettings",
    "SequentialSettings",
    "SuccessRateSettings",
    "TrafficProvider",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoDataPolicy(StrEnum):
    """What an interval without usable data means."""

    FAIL = "fail"
    """It counts as a failed measurement (towards the check's failure limit)."""
    PAUSE = "pause"
    """The rollout holds: neither advances nor rolls back, and waits for a person."""
    INCONCLUSIVE = "inconclusive"
    """It is ignored: the analysis goes on and decides on the data that does come."""


class TrafficProvider(StrEnum):
    """Where the built-in checks read requests, errors and latency per group of servers."""

    ROUTER = "router"
    PROMETHEUS = "prometheus"


class CheckProvider(StrEnum):
    """Where a custom check reads its value."""

    PROMETHEUS = "prometheus"
    HTTP = "http"


_REQUESTS = (
    'sum(increase(haproxy_server_http_responses_total{proxy="app",server=~"$servers"}[$window]))'
)
_ERRORS = (
    "sum(increase(haproxy_server_http_responses_total"
    '{proxy="app",server=~"$servers",code="5xx"}[$window]))'
)
_LATENCY = (
    "histogram_quantile(0.99, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{server=~"$servers"}[$window])))'
)


class PrometheusSettings(_Model):
    """A Prometheus server, and the queries of the built-in checks when it provides traffic.

    In the three queries ``$servers`` becomes a regex of the group's router server
    names and ``$window`` the analysis interval (at least 2 s), e.g. ``5s``.
    """

    url: str = "http://127.0.0.1:9090"
    timeout: Duration = 5.0
    requests: str = _REQUESTS
    """Requests of a group in the window (default: HAProxy's exporter, scraped by Prometheus)."""
    errors: str = _ERRORS
    """Failed requests (5xx) of a group in the window."""
    latency: str = _LATENCY
    """Latency of a group in seconds: p99 of the app's histogram, whose series must carry
    a ``server`` label with the router's server name (a relabel rule in the scrape config)."""


class SuccessRateSettings(_Model):
    """Built-in: the canary's share of requests that did not fail (like Flagger's)."""

    min: float = Field(0.99, ge=0.0, le=1.0)
    """A fraction (0.99 is 99 %)."""


class LatencySettings(_Model):
    """Built-in: the canary's latency (router: mean time to first byte of the interval's
    requests; Prometheus: p99)."""

    max: Duration


class BaselineSettings(_Model):
    """Built-in: the canary against the stable release's servers in the same interval."""

    max_error_ratio: float = Field(2.0, ge=1.0)
    min_error_delta: float = Field(0.01, ge=0.0, le=1.0)
    """Both must be exceeded (and the difference be significant) to fail."""
    max_latency_ratio: float = Field(1.5, ge=1.0)
    min_latency_delta: Duration = 0.05
    """Both must be exceeded to fail on latency ..."""
    latency_intervals: int = Field(3, ge=1)
    """... in this many intervals with data in a row (one noisy interval proves nothing)."""


class SequentialSettings(_Model):
    """The sequential judges: Wald's SPRT on errors and a rank test on latency."""

    enabled: bool = True
    tolerance: float = Field(0.01, ge=0.0, lt=0.5)
    """H0: the canary's error rate is at most the reference rate plus this."""
    bad_error_rate: float = Field(0.03, gt=0.0, lt=1.0)
    """H1: the canary's error rate is at least this (and at least three times H0's rate)."""
    latency_min_samples: int = Field(5, ge=3)
    """Intervals with latency of both groups before the latency rank test may decide."""
    latency_window: int = Field(60, ge=3)
    """The latest intervals the rank test compares (each request of each, canary against
    baseline within the interval)."""


class CheckSettings(_Model):
    """A custom check in the manner of Argo Rollouts' analysis metrics."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    provider: CheckProvider = CheckProvider.PROMETHEUS
    query: str | None = None
    """PromQL for ``provider: prometheus``; it must yield one number."""
    url: str | None = None
    """A JSON document for ``provider: http``."""
    select: str = "$"
    """Where the value is in the JSON document."""
    success: str | None = None
    failure: str | None = None
    interval: Duration | None = None
    """How often to measure; the analysis interval when absent."""
    failure_limit: int = Field(0, ge=0)
    """Failed measurements tolerated; one more fails the rollout."""
    inconclusive_limit: int = Field(0, ge=0)
    """Inconclusive measurements tolerated; one more pauses the rollout."""
    consecutive_error_limit: int = Field(4, ge=0)
    """Provider errors in a row tolerated; one more fails the rollout."""
    no_data: NoDataPolicy | None = None
    """This check's own no-data policy; the analysis's when absent."""
    dry_run: bool = False
    """Measure and report, but never fail, pause or hold up a decision."""

    @field_validator("success", "failure")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value)
        return value

    @field_validator("select")
    @classmethod
    def _selector(cls, value: str) -> str:
        parse_selector(value)
        return value

    @model_validator(mode="after")
    def _complete(self) -> CheckSettings:
        if self.success is None and self.failure is None:
            raise ValueError(f"check {self.name!r} needs a 'success' or 'failure' condition")
        if self.provider is CheckProvider.PROMETHEUS and not self.query:
            raise ValueError(f"check {self.name!r} reads Prometheus and needs a 'query'")
        if self.provider is CheckProvider.HTTP and not self.url:
            raise ValueError(f"check {self.name!r} reads an HTTP endpoint and needs a 'url'")
        if self.interval is not None and self.interval <= 0:
            raise ValueError(f"check {self.name!r}: interval must be positive")
        return self

    def success_condition(self) -> Condition | None:
        return None if self.success is None else parse_condition(self.success)

    def failure_condition(self) -> Condition | None:
        return None if self.failure is None else parse_condition(self.failure)

    def selector(self) -> Selector:
        return parse_selector(self.select)


class AnalysisSettings(_Model):
    """How dockroll judges a release while it takes traffic (docs/analysis.md)."""

    interval: Duration = 1.0
    """How often the executor asks for a decision."""
    provider: TrafficProvider = TrafficProvider.ROUTER
    prometheus: PrometheusSettings | None = None
    no_data: NoDataPolicy = NoDataPolicy.INCONCLUSIVE
    confidence: float = Field(0.99, gt=0.5, lt=1.0)
    """1 - the accepted probability of a false decision for each statistical judge."""
    success_rate: SuccessRateSettings | None = Field(default_factory=SuccessRateSettings)
    latency: LatencySettings | None = None
    baseline: BaselineSettings | None = Field(default_factory=BaselineSettings)
    sequential: SequentialSettings = Field(default_factory=SequentialSettings)
    min_requests: int = Field(20, ge=1)
    """Canary requests an interval needs before the per-interval judges read it."""
    min_sample: int = Field(100, ge=0)
    """Canary requests a canary step needs before it may end without a pass; a step with
    fewer is extended (no errors in 100 requests bounds the error rate below 3 % at 95 %)."""
    max_extension: Duration = 300.0
    """How long a canary step may be extended for its minimum sample; then `no_data` decides."""
    failure_limit: int = Field(0, ge=0)
    """Failed intervals the built-in per-interval judges tolerate."""
    consecutive_error_limit: int = Field(4, ge=0)
    """Provider errors in a row the built-in checks tolerate; one more fails the rollout."""
    watch: Duration = 60.0
    """How long analysis continues after a rollout reached 100 %."""
    checks: list[CheckSettings] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("the analysis interval must be positive")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisSettings:
        names = [check.name for check in self.checks]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"check names must be unique: {', '.join(repeated)}")
        builtin = {"success-rate", "latency", "baseline-errors", "baseline-latency"}
        taken = sorted(n for n in names if n in builtin or n.startswith("sequential-"))
        if taken:
            raise ValueError(f"check names {', '.join(taken)} are taken by built-in checks")
        return self

    def prometheus_settings(self) -> PrometheusSettings:
        """The Prometheus to use (defaults when the section is absent)."""
        return self.prometheus or PrometheusSettings()
