"""Judges over plain numbers: statistics, thresholds, baseline, SPRT, rank test, limits."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from dockroll.analysis import Action, Analysis, AnalysisSettings
from dockroll.analysis.conditions import parse_condition
from dockroll.analysis.judges import (
    ErrorSPRT,
    GroupSample,
    LatencyRankTest,
    Outcome,
    RankStratum,
    Tally,
    Verdict,
    binomial_tail,
    fisher_greater,
    judge_baseline_errors,
    judge_baseline_latency,
    judge_latency,
    judge_success_rate,
    mann_whitney_greater,
    measure_condition,
    spent_alpha,
    student_t_greater,
)
from dockroll.analysis.run import Providers
from dockroll.analysis.settings import NoDataPolicy


def test_binomial_tail_matches_the_exact_sum() -> None:
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(11, 10, 0.3) == 0.0
    expected = 1 - 0.99**29 - 29 * 0.01 * 0.99**28
    assert binomial_tail(2, 29, 0.01) == pytest.approx(expected, rel=1e-9)
    assert binomial_tail(10, 10, 0.5) == pytest.approx(0.5**10)


def test_fisher_one_sided() -> None:
    # [[3, 1], [1, 3]]: P(X >= 3) = (C(4,3)C(4,1) + C(4,4)C(4,0)) / C(8,4) = 17/70
    assert fisher_greater(3, 4, 1, 4) == pytest.approx(17 / 70)
    assert fisher_greater(0, 10, 0, 100) == 1.0
    assert fisher_greater(20, 20, 0, 180) < 1e-20
    # One error among 200 requests, landing on the canary's 20: a 10 % chance, not evidence.
    assert fisher_greater(1, 20, 0, 180) == pytest.approx(0.1)


def test_mann_whitney() -> None:
    u, p = mann_whitney_greater([4, 5, 6], [1, 2, 3])
    assert u == 9
    z = (9 - 4.5 - 0.5) / math.sqrt(3 * 3 * 7 / 12)
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    assert mann_whitney_greater([1, 1], [1, 1]) == (2.0, 1.0)
    _, reversed_p = mann_whitney_greater([1, 2, 3], [4, 5, 6])
    assert reversed_p > 0.9
    # Ties shrink the variance: the p-value moves, the statistic does not.
    u_tied, p_tied = mann_whitney_greater([2, 3, 3, 4], [1, 2, 2, 3])
    assert u_tied == 13.0
    assert 0 < p_tied < 0.2
    assert mann_whitney_greater([], [1.0]) == (0.0, 1.0)


def test_success_rate_fails_only_when_significant() -> None:
    ok = judge_success_rate(GroupSample(200, 1), 0.99, confidence=0.99, min_requests=20)
    assert ok.outcome is Outcome.PASS
    unlucky = judge_success_rate(GroupSample(29, 2), 0.99, confidence=0.99, min_requests=20)
    assert unlucky.outcome is Outcome.INCONCLUSIVE
    broken = judge_success_rate(GroupSample(20, 20), 0.99, confidence=0.99, min_requests=20)
    assert broken.outcome is Outcome.FAIL
    assert broken.numbers["success_rate"] == 0.0
    thin = judge_success_rate(GroupSample(19, 19), 0.99, confidence=0.99, min_requests=20)
    assert thin.outcome is Outcome.NO_DATA


def test_latency_threshold() -> None:
    assert judge_latency(GroupSample(50, 0, 120), 500, min_requests=20).outcome is Outcome.PASS
    slow = judge_latency(GroupSample(50, 0, 640), 500, min_requests=20)
    assert slow.outcome is Outcome.FAIL
    assert "640 ms > 500 ms" in slow.reason
    assert judge_latency(GroupSample(5, 0, 640), 500, min_requests=20).outcome is Outcome.NO_DATA
    nan = judge_latency(GroupSample(50, 0, math.nan), 500, min_requests=20)
    assert nan.outcome is Outcome.NO_DATA


def _baseline_errors(canary: GroupSample, baseline: GroupSample) -> Verdict:
    return judge_baseline_errors(
        canary, baseline, max_ratio=2.0, min_delta=0.01, confidence=0.99, min_requests=20
    )


def test_baseline_errors() -> None:
    assert _baseline_errors(GroupSample(20, 0), GroupSample(180, 0)).outcome is Outcome.PASS
    noise = _baseline_errors(GroupSample(20, 1), GroupSample(180, 0))
    assert noise.outcome is Outcome.INCONCLUSIVE  # 5 % vs 0 %, but one error proves little
    bad = _baseline_errors(GroupSample(200, 20), GroupSample(1800, 2))
    assert bad.outcome is Outcome.FAIL
    assert bad.numbers["error_ratio"] == pytest.approx(0.1 / (2 / 1800))
    both_bad = _baseline_errors(GroupSample(200, 20), GroupSample(1800, 180))
    assert both_bad.outcome is Outcome.PASS  # the stable release fails as much: not the canary
    no_baseline = _baseline_errors(GroupSample(20, 0), GroupSample(0, 0))
    assert no_baseline.outcome is Outcome.INCONCLUSIVE
    assert _baseline_errors(GroupSample(3, 3), GroupSample(180, 0)).outcome is Outcome.NO_DATA


def test_baseline_latency_needs_ratio_and_delta() -> None:
    def judge(canary_ms: float, baseline_ms: float | None) -> Outcome:
        return judge_baseline_latency(
            GroupSample(50, 0, canary_ms),
            GroupSample(450, 0, baseline_ms),
            max_ratio=1.5,
            min_delta_ms=50,
            min_requests=20,
        ).outcome

    assert judge(40, 40) is Outcome.PASS
    assert judge(10, 4) is Outcome.PASS  # 2.5x but only 6 ms: noise on a fast service
    assert judge(340, 40) is Outcome.FAIL
    assert judge(40, None) is Outcome.INCONCLUSIVE


def test_sprt_bounds_come_from_confidence() -> None:
    sprt = ErrorSPRT(confidence=0.99, tolerance=0.005, bad_error_rate=0.03, reference_rate=0.01)
    assert sprt.fail_bound == pytest.approx(math.log(99))
    assert sprt.pass_bound == pytest.approx(-math.log(99))


def test_sprt_stops_a_broken_canary_within_one_interval() -> None:
    sprt = ErrorSPRT(confidence=0.99, tolerance=0.005, bad_error_rate=0.03, reference_rate=0.01)
    verdict = sprt.update(GroupSample(20, 20), GroupSample(180, 0))
    assert verdict.outcome is Outcome.FAIL
    assert verdict.numbers["llr"] >= verdict.numbers["fail_bound"]
    # Final: good intervals afterwards do not undo it.
    assert sprt.update(GroupSample(1000, 0), GroupSample(1000, 0)).outcome is Outcome.FAIL


def test_sprt_accepts_a_clean_canary_and_keeps_watching() -> None:
    sprt = ErrorSPRT(confidence=0.99, tolerance=0.005, bad_error_rate=0.03, reference_rate=0.01)
    outcomes = [sprt.update(GroupSample(20, 0), GroupSample(180, 0)).outcome for _ in range(15)]
    assert outcomes[-1] is Outcome.PASS
    assert Outcome.FAIL not in outcomes
    assert sprt.llr == pytest.approx(sprt.pass_bound)  # floored, no banked credit
    # It turns bad later: still caught quickly, from the acceptance bound.
    late = [sprt.update(GroupSample(20, 20), GroupSample(180, 0)).outcome for _ in range(2)]
    assert late[-1] is Outcome.FAIL


def test_sprt_is_relative_to_the_baseline() -> None:
    sprt = ErrorSPRT(confidence=0.99, tolerance=0.005, bad_error_rate=0.03, reference_rate=0.01)
    for _ in range(30):  # both at 5 %: a shared dependency, not the canary
        verdict = sprt.update(GroupSample(100, 5), GroupSample(900, 45))
    assert verdict.outcome is not Outcome.FAIL
    p0, _ = sprt.hypotheses()
    assert p0 == pytest.approx(0.055, abs=0.002)


def test_sprt_without_canary_requests_is_no_data() -> None:
    sprt = ErrorSPRT(confidence=0.99, tolerance=0.005, bad_error_rate=0.03, reference_rate=0.01)
    assert sprt.update(GroupSample(0, 0), None).outcome is Outcome.NO_DATA


def _rank_test() -> LatencyRankTest:
    return LatencyRankTest(
        confidence=0.99, min_samples=5, window=60, max_ratio=1.5, min_delta_ms=50
    )


def _requests(rng: random.Random, count: int, mean: float, spread: float = 20.0) -> list[float]:
    return [max(1.0, rng.gauss(mean, spread)) for _ in range(count)]


def test_rank_test_waits_for_samples_then_decides() -> None:
    rng = random.Random(1)
    test = _rank_test()
    outcomes = [
        test.update(_requests(rng, 25, 340), _requests(rng, 225, 40)).outcome for _ in range(5)
    ]
    assert outcomes[:4] == [Outcome.INCONCLUSIVE] * 4
    assert outcomes[4] is Outcome.FAIL
    assert test.update([40.0], [40.0]).outcome is Outcome.FAIL  # final


def test_rank_test_passes_equal_latency_and_ignores_small_shifts() -> None:
    rng = random.Random(2)
    test = _rank_test()
    for _ in range(10):
        verdict = test.update(_requests(rng, 25, 40), _requests(rng, 225, 40))
    assert verdict.outcome is Outcome.PASS
    small = _rank_test()
    for _ in range(10):  # a clear shift, but only +10 ms: well within the tolerated +50 ms
        verdict = small.update(_requests(rng, 25, 50, 5), _requests(rng, 225, 40, 5))
    assert verdict.outcome is Outcome.PASS
    assert verdict.numbers["p_value"] > 0.99
    assert _rank_test().update(None, None).outcome is Outcome.NO_DATA
    assert _rank_test().update([], []).outcome is Outcome.NO_DATA


def test_rank_test_compares_within_intervals() -> None:
    """A slowdown both groups share (a busy host) is no evidence against the canary."""
    rng = random.Random(3)
    test = _rank_test()
    for index in range(20):
        # The canary takes a larger share of the slow intervals than of the quick ones.
        host = 400 if index % 2 else 40
        canary = _requests(rng, 60 if host > 100 else 10, host)
        verdict = test.update(canary, _requests(rng, 200, host))
    assert verdict.outcome is Outcome.PASS
    assert verdict.numbers["median_ms"] > 300  # pooled, the canary looks 8x slower


def test_rank_test_passes_a_cold_start_per_request_and_on_moving_averages() -> None:
    """A cold start: the canary's first 20 requests take a second, then it is like the baseline.

    Per-request samples show the slow second only in its interval. HAProxy's moving
    average holds it for a minute, one value an interval, which once looked
    significant; a canary within the tolerated limit most of the time does not fail
    either way now.
    """
    rng = random.Random(4)
    on_averages, on_requests = _rank_test(), _rank_test()
    canary_history: list[float] = []
    baseline_history: list[float] = []
    verdicts, on_average = [], []
    for index in range(30):
        canary = ([1040.0] * 20 if index == 0 else []) + _requests(rng, 20, 40)
        baseline = _requests(rng, 200, 40)
        canary_history += canary
        baseline_history = (baseline_history + baseline)[-1024:]
        average = on_averages.update(
            statistics.fmean(canary_history[-1024:]), statistics.fmean(baseline_history)
        )
        on_average.append(average.outcome)
        verdicts.append(on_requests.update(canary, baseline))
    assert Outcome.FAIL not in on_average
    assert Outcome.FAIL not in {v.outcome for v in verdicts}
    assert verdicts[-1].outcome is Outcome.PASS


def test_rank_test_needs_enough_requests_to_pass() -> None:
    """One value per group and interval: five intervals cannot be significant yet.

    Each interval is one sign (+1 or -1 standardized), so the t-test over intervals
    needs about 25 of them at the default confidence, with every look spending its share.
    """
    test = _rank_test()
    outcomes = [test.update(340.0 + i, 40.0 + i).outcome for i in range(25)]
    assert outcomes[4] is Outcome.INCONCLUSIVE
    assert Outcome.PASS not in outcomes
    assert outcomes[-1] is Outcome.FAIL


def test_an_intervals_rank_statistic_is_mann_whitneys() -> None:
    x, y = [5.0, 6.0, 7.0, 9.0], [1.0, 2.0, 5.0, 3.0, 4.0]
    u, _ = mann_whitney_greater(x, y)
    stratum = RankStratum.of(x, y)
    assert stratum.u == u == 19.5
    assert stratum.mean == 10
    assert RankStratum.of([1.0], [1.0]).variance == 0


@pytest.mark.parametrize(
    ("success", "failure", "value", "expected"),
    [
        ("< 0.5", ">= 2", 0.1, Outcome.PASS),
        ("< 0.5", ">= 2", 3.0, Outcome.FAIL),
        ("< 0.5", ">= 2", 1.0, Outcome.INCONCLUSIVE),
        ("< 0.5", None, 1.0, Outcome.FAIL),
        (None, ">= 2", 1.0, Outcome.PASS),
        (None, ">= 2", 2.0, Outcome.FAIL),
        ("== true", None, True, Outcome.PASS),
        ("== true", None, False, Outcome.FAIL),
        ("< 0.5", ">= 2", math.nan, Outcome.NO_DATA),
        ("== true", None, None, Outcome.NO_DATA),
    ],
)
def test_measure_condition_follows_argo(
    success: str | None, failure: str | None, value: float | bool | None, expected: Outcome
) -> None:
    verdict = measure_condition(
        "q",
        value,
        parse_condition(success) if success else None,
        parse_condition(failure) if failure else None,
    )
    assert verdict.outcome is expected


def _measured(outcome: Outcome) -> Verdict:
    return Verdict(outcome, "q", outcome.value)


def test_tally_failure_limit() -> None:
    tally = Tally(failure_limit=2)
    assert tally.record(_measured(Outcome.FAIL)).outcome is Outcome.INCONCLUSIVE
    assert tally.record(_measured(Outcome.PASS)).outcome is Outcome.PASS
    assert tally.record(_measured(Outcome.FAIL)).outcome is Outcome.INCONCLUSIVE
    final = tally.record(_measured(Outcome.FAIL))
    assert final.outcome is Outcome.FAIL
    assert final.numbers["failures"] == 3
    assert tally.record(_measured(Outcome.PASS)) is final


def test_tally_inconclusive_limit_pauses_for_good() -> None:
    tally = Tally(inconclusive_limit=1)
    assert not tally.record(_measured(Outcome.INCONCLUSIVE)).pause
    paused = tally.record(_measured(Outcome.INCONCLUSIVE))
    assert paused.pause
    assert paused.outcome is Outcome.INCONCLUSIVE
    assert tally.record(_measured(Outcome.PASS)).pause


def test_tally_consecutive_errors_fail_whatever_the_policy() -> None:
    tally = Tally(consecutive_error_limit=2, no_data=NoDataPolicy.INCONCLUSIVE)
    for _ in range(2):
        assert tally.record(_measured(Outcome.NO_DATA), error=True).outcome is Outcome.NO_DATA
    assert tally.record(_measured(Outcome.PASS)).outcome is Outcome.PASS  # resets the run
    for _ in range(2):
        tally.record(_measured(Outcome.NO_DATA), error=True)
    assert tally.record(_measured(Outcome.NO_DATA), error=True).outcome is Outcome.FAIL


@pytest.mark.parametrize(
    ("policy", "outcome", "pause"),
    [
        (NoDataPolicy.FAIL, Outcome.FAIL, False),
        (NoDataPolicy.PAUSE, Outcome.NO_DATA, True),
        (NoDataPolicy.INCONCLUSIVE, Outcome.NO_DATA, False),
    ],
)
def test_tally_no_data_policy(policy: NoDataPolicy, outcome: Outcome, pause: bool) -> None:
    verdict = Tally(no_data=policy).record(_measured(Outcome.NO_DATA))
    assert verdict.outcome is outcome
    assert verdict.pause is pause


def test_spent_alpha_adds_up_to_alpha_over_any_number_of_looks() -> None:
    assert spent_alpha(0.01, 1) == pytest.approx(0.005)
    assert sum(spent_alpha(0.01, look) for look in range(1, 10_001)) < 0.01
    assert sum(spent_alpha(0.01, look) for look in range(1, 10_001)) > 0.0099
    with pytest.raises(ValueError, match="from 1"):
        spent_alpha(0.01, 0)


@pytest.mark.parametrize(
    ("t", "df", "expected"),
    [(2.0, 4, 0.0581), (3.0, 10, 0.00667), (-1.0, 3, 0.8045), (0.0, 7, 0.5), (12.706, 1, 0.025)],
)
def test_student_t_tail_matches_tables(t: float, df: int, expected: float) -> None:
    assert student_t_greater(t, df) == pytest.approx(expected, rel=2e-3)


def test_a_per_interval_fluke_late_in_a_long_step_does_not_fail() -> None:
    """Fifty intervals are fifty tests: the fiftieth may spend only its share of alpha.

    7 errors in 100 requests when the minimum is 99 % has p = 7e-5: below the
    square of 1 - confidence every interval used to be tested at, far above what
    the fiftieth look may spend (0.01 / 2550). In the first interval it still fails.
    """
    settings = AnalysisSettings(latency=None, baseline=None, sequential={"enabled": False})

    class Steady:
        def __init__(self, bad_at: int) -> None:
            self.calls, self.bad_at = 0, bad_at

        def sample(self, groups: object) -> dict[str, GroupSample]:
            self.calls += 1
            return {"canary": GroupSample(100, 7 if self.calls == self.bad_at else 0)}

    late = Analysis(settings, Providers(traffic=Steady(50)), {"canary": ["c"]})
    actions = [late.tick(float(t)).action for t in range(1, 51)]
    assert Action.FAIL not in actions
    assert actions[-1] is Action.CONTINUE  # below the minimum, not significantly
    first = Analysis(settings, Providers(traffic=Steady(1)), {"canary": ["c"]})
    assert first.tick(1.0).action is Action.FAIL
