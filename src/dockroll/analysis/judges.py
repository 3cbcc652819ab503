"""Judges: pure decisions over plain numbers, one :class:`Verdict` per check and interval.

- :func:`judge_success_rate`, :func:`judge_latency`: absolute thresholds on one interval.
  The success rate fails only when even the upper confidence bound (Wilson) of
  the canary's success rate is below the minimum, so a single unlucky error among
  twenty requests does not roll a release back.
- :func:`judge_baseline_errors`, :func:`judge_baseline_latency`: the canary against
  the stable servers in the same interval; errors must be worse by a ratio *and*
  an absolute delta *and* significantly (one-sided Fisher exact test).
- :class:`ErrorSPRT`: Wald's sequential probability ratio test on error counts,
  accumulated over intervals. Stops a broken canary after a handful of requests
  and accepts a healthy one as soon as the evidence allows.
- :class:`LatencyRankTest`: is the canary slower than the baseline by more than the
  tolerated ratio and delta? One Mann-Whitney statistic per interval against the
  baseline's requests moved to that limit, and a t-test over intervals (the
  requests of one interval are not independent; intervals nearly are).
- :func:`spent_alpha`: the share of the error rate a judge that looks again every
  interval may spend on one look, so that all its looks together stay within it.
- :class:`Tally`: turns measurements into a check's state under failure,
  inconclusive and consecutive-error limits and a no-data policy (Argo Rollouts'
  rules); :func:`measure_condition` evaluates a custom check's conditions.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from dockroll.analysis.settings import NoDataPolicy
from dockroll.checks.conditions import Condition, Value

__all__ = [
    "ErrorSPRT",
    "GroupSample",
    "LatencyRankTest",
    "Outcome",
    "RankStratum",
    "Tally",
    "Verdict",
    "binomial_tail",
    "fisher_greater",
    "interval_t_test",
    "judge_baseline_errors",
    "judge_baseline_latency",
    "judge_latency",
    "judge_success_rate",
    "mann_whitney_greater",
    "measure_condition",
    "spent_alpha",
    "student_t_greater",
]

_NORMAL = statistics.NormalDist()


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NO_DATA = "no data"


@dataclass(frozen=True)
class Verdict:
    """What one check concluded; ``numbers`` are what it concluded it from."""

    outcome: Outcome
    check: str
    reason: str
    numbers: Mapping[str, float] = field(default_factory=dict)
    pause: bool = False
    """The check asks the rollout to hold (no-data policy ``pause``, inconclusive limit)."""


@dataclass(frozen=True)
class GroupSample:
    """Traffic of one group of servers (canary or baseline) during one interval."""

    requests: float
    errors: float
    """5xx answers plus connection and response errors."""
    latency_ms: float | None = None
    """Average of the interval's requests (router) or p99 (Prometheus); None without any."""
    latencies_ms: tuple[float, ...] = ()
    """Each request's latency in the interval (router request log); empty when the
    provider only has an aggregate."""

    @property
    def error_rate(self) -> float:
        return min(1.0, self.errors / self.requests) if self.requests > 0 else math.nan


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), exactly (log space)."""
    if successes <= 0:
        return 1.0
    if successes > trials or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for k in range(successes, trials + 1):
        term = math.exp(_log_comb(trials, k) + k * log_p + (trials - k) * log_q)
        total += term
        if k > trials * p and term < total * 1e-12:
            break  # past the mode the terms only shrink
    return min(1.0, total)


def spent_alpha(alpha: float, look: int) -> float:
    """The error rate the ``look``-th test (from 1) of a repeated judge may use.

    ``alpha / (look * (look + 1))``: the shares add up to ``alpha`` over any number
    of looks, so a judge that tests again every interval wrongly fails a release
    within its hypothesis with probability at most ``alpha`` in all (union bound),
    however long the analysis runs. Early looks get the most: a blatant failure is
    still decided in the first interval.
    """
    if look < 1:
        raise ValueError(f"looks count from 1, not {look}")
    return alpha / (look * (look + 1))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return min(1.0, math.exp(log_front) * fraction / a)


def student_t_greater(t: float, df: float) -> float:
    """P(T >= t) for Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if math.isnan(t):
        return 1.0
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def judge_success_rate(
    canary: GroupSample, minimum: float, *, confidence: float, min_requests: int
) -> Verdict:
    """Absolute success rate of one interval: FAIL only when significantly below ``minimum``."""
    check = "success-rate"
    if canary.requests < min_requests:
        return Verdict(
            Outcome.NO_DATA,
            check,
            f"{canary.requests:g} requests, fewer than the {min_requests} needed",
            {"requests": canary.requests},
        )
    errors = round(min(canary.errors, canary.requests))
    requests = round(canary.requests)
    rate = 1 - errors / requests
    # How likely this many errors (or more) would be if the success rate were just the minimum.
    p_value = binomial_tail(errors, requests, 1 - minimum)
    numbers = {"success_rate": rate, "min": minimum, "p_value": p_value, **_counts(canary)}
    if rate < minimum and p_value < 1 - confidence:
        return Verdict(
            Outcome.FAIL,
            check,
            f"success rate {rate:.2%} < {minimum:.2%} over {requests} requests "
            f"(p={p_value:.2g} at {minimum:.2%})",
            numbers,
        )
    if rate >= minimum:
        return Verdict(Outcome.PASS, check, f"success rate {rate:.2%} >= {minimum:.2%}", numbers)
    return Verdict(
        Outcome.INCONCLUSIVE,
        check,
        f"success rate {rate:.2%} < {minimum:.2%}, not significantly over "
        f"{canary.requests:g} requests",
        numbers,
    )


def judge_latency(canary: GroupSample, maximum_ms: float, *, min_requests: int) -> Verdict:
    """Absolute latency of one interval against ``maximum_ms``."""
    check = "latency"
    if canary.requests < min_requests or canary.latency_ms is None:
        return Verdict(
            Outcome.NO_DATA,
            check,
            f"{canary.requests:g} requests, fewer than the {min_requests} needed"
            if canary.requests < min_requests
            else "no latency reported",
            {"requests": canary.requests},
        )
    if math.isnan(canary.latency_ms):
        return Verdict(Outcome.NO_DATA, check, "latency is NaN", {"requests": canary.requests})
    numbers = {"latency_ms": canary.latency_ms, "max_ms": maximum_ms, **_counts(canary)}
    if canary.latency_ms > maximum_ms:
        return Verdict(
            Outcome.FAIL,
            check,
            f"latency {canary.latency_ms:.0f} ms > {maximum_ms:.0f} ms",
            numbers,
        )
    return Verdict(
        Outcome.PASS, check, f"latency {canary.latency_ms:.0f} ms <= {maximum_ms:.0f} ms", numbers
    )


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(errors_a: int, requests_a: int, errors_b: int, requests_b: int) -> float:
    """One-sided Fisher exact p-value that group A's error rate exceeds group B's.

    Given all errors of both groups, the probability that A got at least as many
    of them as it did if both had the same rate (hypergeometric upper tail).
    """
    total, errors = requests_a + requests_b, errors_a + errors_b
    if total == 0 or errors in (0, total):
        return 1.0
    denominator = _log_comb(total, errors)
    high = min(errors, requests_a)
    tail = 0.0
    for k in range(errors_a, high + 1):
        if errors - k > requests_b:
            continue
        tail += math.exp(_log_comb(requests_a, k) + _log_comb(requests_b, errors - k) - denominator)
    return min(1.0, tail)


def _counts(sample: GroupSample, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}requests": sample.requests, f"{prefix}errors": sample.errors}


def judge_baseline_errors(
    canary: GroupSample,
    baseline: GroupSample,
    *,
    max_ratio: float,
    min_delta: float,
    confidence: float,
    min_requests: int,
) -> Verdict:
    """The canary's error rate against the baseline's in the same interval."""
    check = "baseline-errors"
    counts = {"requests": canary.requests, "baseline_requests": baseline.requests}
    if canary.requests < min_requests:
        return Verdict(
            Outcome.NO_DATA,
            check,
            f"{canary.requests:g} canary requests, fewer than the {min_requests} needed",
            counts,
        )
    if baseline.requests <= 0:
        # Nothing to compare with (e.g. the canary takes all traffic): not a lack of data.
        return Verdict(Outcome.INCONCLUSIVE, check, "the baseline took no requests", counts)
    c_err, c_n = round(min(canary.errors, canary.requests)), round(canary.requests)
    b_err, b_n = round(min(baseline.errors, baseline.requests)), round(baseline.requests)
    c_rate, b_rate = c_err / c_n, b_err / b_n
    ratio = c_rate / b_rate if b_rate > 0 else (math.inf if c_rate > 0 else 1.0)
    p_value = fisher_greater(c_err, c_n, b_err, b_n)
    numbers = {
        "error_rate": c_rate,
        "baseline_error_rate": b_rate,
        "p_value": p_value,
        **_counts(canary),
        **_counts(baseline, "baseline_"),
    }
    if math.isfinite(ratio):
        numbers["error_ratio"] = ratio
    worse = ratio >= max_ratio and c_rate - b_rate >= min_delta
    if worse and p_value < 1 - confidence:
        return Verdict(
            Outcome.FAIL,
            check,
            f"canary errors {c_rate:.2%} vs baseline {b_rate:.2%} "
            f"(>= {max_ratio:g}x and +{min_delta:.2%}, p={p_value:.2g})",
            numbers,
        )
    if worse:
        return Verdict(
            Outcome.INCONCLUSIVE,
            check,
            f"canary errors {c_rate:.2%} vs baseline {b_rate:.2%}, not significant "
            f"(p={p_value:.2g})",
            numbers,
        )
    return Verdict(
        Outcome.PASS, check, f"canary errors {c_rate:.2%} vs baseline {b_rate:.2%}", numbers
    )


def judge_baseline_latency(
    canary: GroupSample,
    baseline: GroupSample,
    *,
    max_ratio: float,
    min_delta_ms: float,
    min_requests: int,
) -> Verdict:
    """The canary's latency against the baseline's in the same interval."""
    check = "baseline-latency"
    counts = {"requests": canary.requests, "baseline_requests": baseline.requests}
    if canary.requests < min_requests or canary.latency_ms is None or math.isnan(canary.latency_ms):
        return Verdict(Outcome.NO_DATA, check, "no canary latency in this interval", counts)
    if baseline.latency_ms is None or math.isnan(baseline.latency_ms):
        return Verdict(Outcome.INCONCLUSIVE, check, "no baseline latency to compare with", counts)
    numbers = {"latency_ms": canary.latency_ms, "baseline_latency_ms": baseline.latency_ms}
    limit = max(baseline.latency_ms * max_ratio, baseline.latency_ms + min_delta_ms)
    if canary.latency_ms > limit:
        return Verdict(
            Outcome.FAIL,
            check,
            f"canary latency {canary.latency_ms:.0f} ms vs baseline "
            f"{baseline.latency_ms:.0f} ms (limit {limit:.0f} ms)",
            numbers,
        )
    return Verdict(
        Outcome.PASS,
        check,
        f"canary latency {canary.latency_ms:.0f} ms vs baseline {baseline.latency_ms:.0f} ms",
        numbers,
    )


class ErrorSPRT:
    """Wald's SPRT on the canary's error count, over all intervals so far.

    H0: the canary's error rate is ``p0 = r + tolerance``; H1: it is
    ``p1 = max(bad_error_rate, 3 * p0)``, where ``r`` is the reference rate: the
    baseline's rate so far, shrunk towards ``reference_rate`` with the weight of
    ``prior_requests`` requests (so a thin baseline cannot swing it). With
    ``alpha = beta = 1 - confidence`` the log-likelihood ratio fails the canary at
    ``log((1 - beta) / alpha)`` and accepts it at ``log(beta / (1 - alpha))``.

    Once accepted, the ratio never drops below the acceptance bound: evidence
    keeps counting, so a release that turns bad later (during the watch window)
    is still caught, while old good behaviour cannot bank unlimited credit.
    A failure is final.
    """

    check = "sequential-errors"

    def __init__(
        self,
        *,
        confidence: float,
        tolerance: float,
        bad_error_rate: float,
        reference_rate: float,
        prior_requests: float = 50.0,
    ) -> None:
        alpha = beta = 1 - confidence
        self.fail_bound = math.log((1 - beta) / alpha)
        self.pass_bound = math.log(beta / (1 - alpha))
        self.tolerance = tolerance
        self.bad_error_rate = bad_error_rate
        self.reference_rate = reference_rate
        self.prior_requests = prior_requests
        self.llr = 0.0
        self.failed = False
        self.canary_requests = 0.0
        self.canary_errors = 0.0
        self.baseline_requests = 0.0
        self.baseline_errors = 0.0

    def hypotheses(self) -> tuple[float, float]:
        """(p0, p1) from what the baseline showed so far."""
        reference = (self.baseline_errors + self.reference_rate * self.prior_requests) / (
            self.baseline_requests + self.prior_requests
        )
        p0 = min(reference + self.tolerance, 0.5)
        p1 = min(max(self.bad_error_rate, 3 * p0), 0.999)
        return max(p0, 1e-6), p1

    def update(self, canary: GroupSample, baseline: GroupSample | None = None) -> Verdict:
        """Add one interval and say where the evidence stands."""
        if baseline is not None and baseline.requests > 0:
            self.baseline_requests += baseline.requests
            self.baseline_errors += min(baseline.errors, baseline.requests)
        if canary.requests <= 0:
            if self.failed:
                return self._verdict()
            return Verdict(Outcome.NO_DATA, self.check, "no canary requests", self._numbers())
        errors = min(canary.errors, canary.requests)
        self.canary_requests += canary.requests
        self.canary_errors += errors
        if not self.failed:
            p0, p1 = self.hypotheses()
            self.llr += errors * math.log(p1 / p0) + (canary.requests - errors) * math.log(
                (1 - p1) / (1 - p0)
            )
            if self.llr >= self.fail_bound:
                self.failed = True
            self.llr = max(self.llr, self.pass_bound)
        return self._verdict()

    def _numbers(self) -> dict[str, float]:
        p0, p1 = self.hypotheses()
        return {
            "llr": self.llr,
            "fail_bound": self.fail_bound,
            "pass_bound": self.pass_bound,
            "p0": p0,
            "p1": p1,
            "canary_requests": self.canary_requests,
            "canary_errors": self.canary_errors,
            "baseline_requests": self.baseline_requests,
            "baseline_errors": self.baseline_errors,
        }

    def _verdict(self) -> Verdict:
        numbers = self._numbers()
        seen = f"{self.canary_errors:g} errors in {self.canary_requests:g} canary requests"
        if self.failed:
            return Verdict(
                Outcome.FAIL,
                self.check,
                f"{seen}: error rate above {numbers['p1']:.2%} is more likely than "
                f"at most {numbers['p0']:.2%} (SPRT)",
                numbers,
            )
        if self.llr <= self.pass_bound:
            return Verdict(
                Outcome.PASS,
                self.check,
                f"{seen}: error rate at most {numbers['p0']:.2%} (SPRT)",
                numbers,
            )
        return Verdict(Outcome.INCONCLUSIVE, self.check, f"{seen}: undecided (SPRT)", numbers)


def _ranks(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(rank sum of ``x`` in the pooled sample, sum of t³ - t over tie groups)."""
    pooled = sorted([(value, 0) for value in x] + [(value, 1) for value in y])
    rank_sum = ties = 0.0
    start = 0
    while start < len(pooled):
        end = start
        while end + 1 < len(pooled) and pooled[end + 1][0] == pooled[start][0]:
            end += 1
        rank = (start + end) / 2 + 1
        rank_sum += rank * sum(1 for index in range(start, end + 1) if pooled[index][1] == 0)
        count = end - start + 1
        ties += count**3 - count
        start = end + 1
    return rank_sum, ties


@dataclass(frozen=True)
class RankStratum:
    """One interval's Mann-Whitney statistic of canary against baseline latencies."""

    u: float
    mean: float
    variance: float
    size: int
    """Canary and baseline requests together."""

    @classmethod
    def of(cls, x: Sequence[float], y: Sequence[float]) -> RankStratum:
        n_x, n_y = len(x), len(y)
        if n_x == 0 or n_y == 0:
            return cls(0.0, 0.0, 0.0, n_x + n_y)
        rank_sum, ties = _ranks(x, y)
        n = n_x + n_y
        variance = n_x * n_y / 12 * ((n + 1) - (ties / (n * (n - 1)) if n > 1 else 0.0))
        return cls(rank_sum - n_x * (n_x + 1) / 2, n_x * n_y / 2, max(0.0, variance), n)


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """One-sided Mann-Whitney U test that ``x`` tends to be larger than ``y``.

    Normal approximation with tie correction and continuity correction; returns
    ``(U of x, p-value)``. A p-value of 1 when every value is tied.
    """
    stratum = RankStratum.of(x, y)
    if stratum.variance <= 0:
        return stratum.u, 1.0
    z = (stratum.u - stratum.mean - 0.5) / math.sqrt(stratum.variance)
    return stratum.u, 1 - _NORMAL.cdf(z)


def _stratum_z(stratum: RankStratum) -> float:
    return (stratum.u - stratum.mean) / math.sqrt(stratum.variance)


def interval_t_test(strata: Sequence[RankStratum]) -> tuple[float, float, float]:
    """One-sided t-test over intervals that the canary's standardized U is above zero.

    Each interval (a stratum with both groups and untied values) gives one
    observation, its U standardized as if its requests were independent. They are
    not: a stalled process or a slow moment slows many requests of one interval
    together, and then those z-values spread far wider than 1. So the test takes
    the intervals, not the requests, as the units: ``t = mean(z) * sqrt(k) / s``
    over ``k`` intervals, ``s`` their standard deviation but at least 1 (what
    independent requests would give), against Student's t with ``k - 1`` degrees
    of freedom. Returns ``(t, s, one-sided p-value)``; a p-value of 1 with fewer
    than two such intervals.
    """
    values = [_stratum_z(stratum) for stratum in strata if stratum.variance > 0]
    if len(values) < 2:
        return 0.0, 1.0, 1.0
    spread = max(1.0, statistics.stdev(values))
    t = statistics.fmean(values) * math.sqrt(len(values)) / spread
    return t, spread, student_t_greater(t, len(values) - 1)


class LatencyRankTest:
    """Is the canary slower than the baseline by more than the tolerated difference?

    Fed one interval at a time with each group's per-request latencies of that
    interval (or one aggregate value per group when the provider has no more),
    it keeps the latest ``window`` intervals in which both groups had requests.
    In each it moves every baseline request to the most the canary may take,
    ``max(max_ratio * b, b + min_delta_ms)``, and computes the canary's
    Mann-Whitney U against those limits; the intervals' standardized U-values
    then go through a t-test over intervals (:func:`interval_t_test`).

    - The hypothesis tested is the practical one: "the canary is no slower than
      the tolerated limit". A canary a few milliseconds slower than its baseline
      (a freshly started process, a replica with a different share of the load)
      is within it however many requests show the difference, instead of being
      "significant" and then held back only by a point estimate.
    - Comparing within intervals cancels a slowdown both groups share; taking
      intervals as the units keeps a slow moment of one group (its requests are
      not independent) from counting as dozens of independent observations.
    - It looks again every interval with new data: the ``j``-th look is tested at
      :func:`spent_alpha` ``(1 - confidence, j)``, so all looks of one analysis
      together fail a canary within the limit with probability at most
      ``1 - confidence``.

    PASS once ``min_samples`` intervals compared and the same t-test shows the
    canary below the limit at the same level (as the SPRT accepts at its lower
    bound): a canary near the limit, or intervals too uneven to tell, stay
    inconclusive. A failure is final.
    """

    check = "sequential-latency"

    def __init__(
        self,
        *,
        confidence: float,
        min_samples: int,
        window: int,
        max_ratio: float,
        min_delta_ms: float,
    ) -> None:
        self.alpha = 1 - confidence
        self.looks = 0
        """Tests made so far, each spending its share of ``alpha``."""
        self.min_samples = min_samples
        self.max_ratio = max_ratio
        self.min_delta_ms = min_delta_ms
        self.intervals: deque[tuple[RankStratum, tuple[float, ...], tuple[float, ...]]] = deque(
            maxlen=window
        )
        self.failed: Verdict | None = None

    @staticmethod
    def _finite(values: Sequence[float] | float | None) -> tuple[float, ...]:
        if values is None:
            return ()
        if isinstance(values, int | float):
            values = (values,)
        return tuple(float(v) for v in values if math.isfinite(v))

    def limit(self, baseline_ms: float) -> float:
        """The most a canary request may take where the baseline's took ``baseline_ms``."""
        return max(baseline_ms * self.max_ratio, baseline_ms + self.min_delta_ms)

    def update(
        self, canary_ms: Sequence[float] | float | None, baseline_ms: Sequence[float] | float | None
    ) -> Verdict:
        """Add one interval: each group's request latencies (or one value, or None)."""
        if self.failed is not None:
            return self.failed
        canary, baseline = self._finite(canary_ms), self._finite(baseline_ms)
        added = bool(canary and baseline)
        if added:
            limits = tuple(self.limit(value) for value in baseline)
            self.intervals.append((RankStratum.of(canary, limits), canary, baseline))
        canary_requests = sum(len(c) for _, c, _ in self.intervals)
        baseline_requests = sum(len(b) for _, _, b in self.intervals)
        counts = {
            "intervals": float(len(self.intervals)),
            "canary_samples": float(canary_requests),
            "baseline_samples": float(baseline_requests),
        }
        if not canary and not baseline:
            return Verdict(Outcome.NO_DATA, self.check, "no latency this interval", counts)
        if len(self.intervals) < self.min_samples:
            return Verdict(
                Outcome.INCONCLUSIVE,
                self.check,
                f"{len(self.intervals)} intervals with latency of both groups, "
                f"need {self.min_samples}",
                counts,
            )
        if added:
            self.looks += 1
        alpha = spent_alpha(self.alpha, max(1, self.looks))
        strata = [stratum for stratum, _, _ in self.intervals]
        t, spread, p_value = interval_t_test(strata)
        canary_median = statistics.median(v for _, c, _ in self.intervals for v in c)
        baseline_median = statistics.median(v for _, _, b in self.intervals for v in b)
        numbers = {
            **counts,
            "t": t,
            "spread": spread,
            "p_value": p_value,
            "alpha": alpha,
            "looks": float(self.looks),
            "median_ms": canary_median,
            "baseline_median_ms": baseline_median,
        }
        limit = self.limit(baseline_median)
        if added and p_value < alpha:
            self.failed = Verdict(
                Outcome.FAIL,
                self.check,
                f"canary latency median {canary_median:.0f} ms vs baseline "
                f"{baseline_median:.0f} ms over {len(self.intervals)} intervals: slower than "
                f"the limit (here {limit:.0f} ms) in the rank test, t={t:.1f}, "
                f"p={p_value:.2g} < {alpha:.2g}",
                numbers,
            )
            return self.failed
        if 1 - p_value >= alpha:
            # Not yet shown to be within the limit either: a canary right at it, or
            # intervals too few or too uneven to tell. Accepting now could accept one
            # above the limit.
            return Verdict(
                Outcome.INCONCLUSIVE,
                self.check,
                f"{canary_requests} canary and {baseline_requests} baseline latencies "
                f"in {len(self.intervals)} intervals cannot show where the canary is "
                f"against the limit yet (t={t:.1f})",
                numbers,
            )
        return Verdict(
            Outcome.PASS,
            self.check,
            f"canary latency median {canary_median:.0f} ms vs baseline {baseline_median:.0f} ms "
            f"over {len(self.intervals)} intervals: within the limit (here {limit:.0f} ms), "
            f"t={t:.1f}",
            numbers,
        )


def measure_condition(
    check: str, value: Value, success: Condition | None, failure: Condition | None
) -> Verdict:
    """One custom-check measurement, the way Argo Rollouts reads its conditions.

    The failure condition wins when it holds. Otherwise a success condition
    decides PASS, and when it does not hold the measurement FAILs, unless a
    failure condition was given too: then it is INCONCLUSIVE. With only a
    failure condition, not holding is PASS. NaN and null are no data.
    """
    numbers = {"result": float(value)} if isinstance(value, int | float) else {}
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Verdict(Outcome.NO_DATA, check, f"the value is {value!r}", numbers)
    shown = repr(value) if not isinstance(value, float) else f"{value:g}"
    if failure is not None and failure.holds(value):
        return Verdict(Outcome.FAIL, check, f"result {shown} meets failure {failure}", numbers)
    if success is not None:
        if success.holds(value):
            return Verdict(Outcome.PASS, check, f"result {shown} meets success {success}", numbers)
        if failure is not None:
            return Verdict(
                Outcome.INCONCLUSIVE,
                check,
                f"result {shown} meets neither success {success} nor failure {failure}",
                numbers,
            )
        return Verdict(Outcome.FAIL, check, f"result {shown} misses success {success}", numbers)
    return Verdict(Outcome.PASS, check, f"result {shown} avoids failure {failure}", numbers)


class Tally:
    """A check's state across measurements: limits and the no-data policy.

    - a FAIL measurement counts; more than ``failure_limit`` of them fail the check;
    - an INCONCLUSIVE one counts; more than ``inconclusive_limit`` pause the rollout
      (None: unlimited);
    - NO_DATA follows ``no_data``: ``fail`` counts it as a failed measurement,
      ``pause`` holds the rollout while it lasts, ``inconclusive`` ignores it;
    - a provider error is NO_DATA too, and more than ``consecutive_error_limit``
      of them in a row fail the check whatever the policy (None: unlimited).

    A failed check stays failed; so does one paused by its inconclusive limit.
    """

    def __init__(
        self,
        *,
        failure_limit: int = 0,
        inconclusive_limit: int | None = None,
        consecutive_error_limit: int | None = 4,
        no_data: NoDataPolicy = NoDataPolicy.INCONCLUSIVE,
    ) -> None:
        self.failure_limit = failure_limit
        self.inconclusive_limit = inconclusive_limit
        self.consecutive_error_limit = consecutive_error_limit
        self.no_data = no_data
        self.failures = 0
        self.inconclusives = 0
        self.consecutive_errors = 0
        self.measurements = 0
        self.final: Verdict | None = None

    def record(self, measured: Verdict, *, error: bool = False) -> Verdict:
        """Fold one measurement in; the result is the check's verdict now."""
        if self.final is not None:
            return self.final
        self.measurements += 1
        self.consecutive_errors = self.consecutive_errors + 1 if error else 0
        numbers = {**measured.numbers}
        if (
            error
            and self.consecutive_error_limit is not None
            and self.consecutive_errors > self.consecutive_error_limit
        ):
            return self._finish(
                Outcome.FAIL,
                measured,
                f"{self.consecutive_errors} provider errors in a row "
                f"(limit {self.consecutive_error_limit}): {measured.reason}",
            )
        outcome = measured.outcome
        if outcome is Outcome.NO_DATA:
            if self.no_data is NoDataPolicy.PAUSE:
                return Verdict(
                    Outcome.NO_DATA,
                    measured.check,
                    f"no data, holding (no_data: pause): {measured.reason}",
                    numbers,
                    pause=True,
                )
            if self.no_data is NoDataPolicy.INCONCLUSIVE:
                return measured
            outcome = Outcome.FAIL  # no_data: fail counts it as a failed measurement
        if outcome is Outcome.FAIL:
            self.failures += 1
            if self.failures > self.failure_limit:
                return self._finish(
                    Outcome.FAIL,
                    measured,
                    f"{measured.reason} ({self.failures} failed, limit {self.failure_limit})",
                )
            return Verdict(
                Outcome.INCONCLUSIVE,
                measured.check,
                f"{measured.reason} ({self.failures} failed of {self.failure_limit} tolerated)",
                numbers,
            )
        if outcome is Outcome.INCONCLUSIVE:
            self.inconclusives += 1
            if self.inconclusive_limit is not None and self.inconclusives > self.inconclusive_limit:
                return self._finish(
                    Outcome.INCONCLUSIVE,
                    measured,
                    f"{measured.reason} ({self.inconclusives} inconclusive, "
                    f"limit {self.inconclusive_limit}): holding for a person",
                    pause=True,
                )
        return measured

    def _finish(
        self, outcome: Outcome, measured: Verdict, reason: str, *, pause: bool = False
    ) -> Verdict:
        numbers = {
            **measured.numbers,
            "failures": float(self.failures),
            "inconclusives": float(self.inconclusives),
            "consecutive_errors": float(self.consecutive_errors),
        }
        self.final = Verdict(outcome, measured.check, reason, numbers, pause=pause)
        return self.final
