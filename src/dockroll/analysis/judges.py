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
- :class:`LatencyRankTest`: one-sided rank test on per-request latency, canary against
  baseline within each interval (van Elteren's stratified Mann-Whitney).
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
    "judge_baseline_errors",
    "judge_baseline_latency",
    "judge_latency",
    "judge_success_rate",
    "mann_whitney_greater",
    "measure_condition",
    "stratified_rank_greater",
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


def stratified_rank_greater(strata: Sequence[RankStratum]) -> tuple[float, float]:
    """Van Elteren's stratified rank test that the canary is slower, over ``strata``.

    Each stratum (an interval) compares the canary's requests with the baseline's
    of the same interval only, so a slowdown both share (a busy host, a restarted
    router) does not count against the canary. Each U is weighted by
    ``1 / (size + 1)``; returns ``(z, one-sided p-value)``, a p-value of 1 when
    no stratum has both groups or every value is tied.
    """
    total = expected = variance = 0.0
    for stratum in strata:
        if stratum.variance <= 0:
            continue
        weight = 1 / (stratum.size + 1)
        total += weight * stratum.u
        expected += weight * stratum.mean
        variance += weight * weight * stratum.variance
    if variance <= 0:
        return 0.0, 1.0
    z = (total - expected) / math.sqrt(variance)
    return z, 1 - _NORMAL.cdf(z)


def _largest_z(strata: Sequence[RankStratum]) -> float:
    """The z :func:`stratified_rank_greater` would give if the canary lost every comparison."""
    return stratified_rank_greater(
        [RankStratum(2 * s.mean, s.mean, 2 * s.mean * (s.size + 1) / 12, s.size) for s in strata]
    )[0]


class LatencyRankTest:
    """Is the canary's latency shifted up against the baseline's? (stratified rank test)

    Fed one interval at a time with each group's per-request latencies of that
    interval (or one aggregate value per group when the provider has no more),
    it keeps the latest ``window`` intervals in which both groups had requests
    and compares canary with baseline within each interval (van Elteren's test,
    :func:`stratified_rank_greater`): requests are close to independent, unlike
    moving averages, and a slowdown of the whole host cancels out. FAIL needs
    significance at ``(1 - confidence)²`` (it looks again every interval) *and*
    a practical difference: the canary's
    median over the window above ``max_ratio`` times and ``min_delta_ms`` more
    than the baseline's. PASS once ``min_samples`` intervals compared and no
    such shift shows. A failure is final.
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
        # It looks again every interval at an overlapping window: each look is tested at
        # the square of the error rate, as the per-interval judges are.
        self.alpha = (1 - confidence) ** 2
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

    def update(
        self, canary_ms: Sequence[float] | float | None, baseline_ms: Sequence[float] | float | None
    ) -> Verdict:
        """Add one interval: each group's request latencies (or one value, or None)."""
        if self.failed is not None:
            return self.failed
        canary, baseline = self._finite(canary_ms), self._finite(baseline_ms)
        if canary and baseline:
            self.intervals.append((RankStratum.of(canary, baseline), canary, baseline))
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
        strata = [stratum for stratum, _, _ in self.intervals]
        z, p_value = stratified_rank_greater(strata)
        if _NORMAL.cdf(_largest_z(strata)) < 1 - self.alpha:
            # Too few requests for any ordering to be significant: accepting now would
            # accept even a canary slower in every single comparison.
            return Verdict(
                Outcome.INCONCLUSIVE,
                self.check,
                f"{canary_requests} canary and {baseline_requests} baseline latencies "
                f"in {len(self.intervals)} intervals cannot show a shift yet",
                counts,
            )
        canary_median = statistics.median(v for _, c, _ in self.intervals for v in c)
        baseline_median = statistics.median(v for _, _, b in self.intervals for v in b)
        numbers = {
            **counts,
            "z": z,
            "p_value": p_value,
            "median_ms": canary_median,
            "baseline_median_ms": baseline_median,
        }
        limit = max(baseline_median * self.max_ratio, baseline_median + self.min_delta_ms)
        if p_value < self.alpha and canary_median > limit:
            self.failed = Verdict(
                Outcome.FAIL,
                self.check,
                f"canary latency median {canary_median:.0f} ms vs baseline "
                f"{baseline_median:.0f} ms over {len(self.intervals)} intervals "
                f"(limit {limit:.0f} ms, stratified rank test p={p_value:.2g})",
                numbers,
            )
            return self.failed
        return Verdict(
            Outcome.PASS,
            self.check,
            f"canary latency median {canary_median:.0f} ms vs baseline {baseline_median:.0f} ms "
            f"over {len(self.intervals)} intervals",
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
