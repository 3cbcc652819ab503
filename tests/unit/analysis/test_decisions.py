"""Whole analyses over seeded traffic: 200 req/s, 10 % on the canary, 1 s intervals.

The healthy-canary run is how docs/analysis.md measures the false-rollback rate::

    .venv/bin/pytest tests/unit/analysis/test_decisions.py -k healthy -q -rP
"""

from __future__ import annotations

import random

import pytest

from dockroll.analysis import Action, AnalysisSettings

from .simulation import Behaviour, SimulatedTraffic, run_for, run_until_decided

SETTINGS = AnalysisSettings(latency=None)
SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_gross_failure_stops_within_five_intervals(seed: int) -> None:
    traffic = SimulatedTraffic(random.Random(seed), canary=Behaviour(error_rate=1.0))
    action, tick, analysis = run_until_decided(SETTINGS, traffic, max_intervals=5)
    assert action is Action.FAIL, analysis.summary().reason
    assert tick <= 5


def test_five_percent_errors_against_a_tenth_of_a_percent_decided_within_a_minute() -> None:
    ticks = []
    for seed in SEEDS:
        canary = Behaviour(error_rate=0.05)
        traffic = SimulatedTraffic(random.Random(seed), canary=canary)
        action, tick, analysis = run_until_decided(SETTINGS, traffic, max_intervals=60)
        assert action is Action.FAIL, (seed, analysis.summary().reason)
        ticks.append(tick)
    assert max(ticks) <= 60
    print(f"5% vs 0.1%: failed after {sorted(ticks)[len(ticks) // 2]} s median, {max(ticks)} s max")


def test_three_hundred_ms_slower_is_decided() -> None:
    ticks = []
    for seed in SEEDS:
        traffic = SimulatedTraffic(random.Random(seed), canary=Behaviour(latency_ms=340))
        action, tick, analysis = run_until_decided(SETTINGS, traffic, max_intervals=30)
        assert action is Action.FAIL, (seed, analysis.summary().reason)
        ticks.append(tick)
    print(f"+300 ms: failed after {max(ticks)} s at most")


def test_three_hundred_ms_slower_is_decided_by_the_rank_test_alone() -> None:
    settings = AnalysisSettings(latency=None, baseline=None, success_rate=None)
    traffic = SimulatedTraffic(random.Random(7), canary=Behaviour(latency_ms=340))
    action, tick, analysis = run_until_decided(settings, traffic, max_intervals=30)
    assert action is Action.FAIL
    assert "sequential-latency" in analysis.summary().reason
    assert tick <= 15


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(),
        Behaviour(error_rate=0.01, latency_noise_ms=120),  # noisy, and as noisy as the baseline
    ],
    ids=["quiet", "noisy"],
)
def test_healthy_canary_never_fails(behaviour: Behaviour) -> None:
    runs, failed, first_passes = 200, 0, []
    # The SLO sits below what the service normally does (99 % of a service that fails 1 %
    # of its requests is a coin flip, not a threshold).
    settings = AnalysisSettings(latency=None, success_rate={"min": 0.98})
    for seed in range(runs):
        traffic = SimulatedTraffic(
            random.Random(10_000 + seed), canary=behaviour, baseline=behaviour
        )
        rolled_back, first_pass = run_for(settings, traffic, intervals=60)
        failed += rolled_back
        first_passes.append(first_pass if first_pass is not None else 10**6)
    first_passes.sort()
    print(
        f"healthy ({behaviour.error_rate:.1%} errors): {failed}/{runs} false rollbacks over 60 s; "
        f"accepted after {first_passes[runs // 2]} s median, {first_passes[runs * 9 // 10]} s p90"
    )
    assert failed == 0
    assert first_passes[runs // 2] <= 30


def test_a_cold_canary_is_not_rolled_back() -> None:
    """A fresh replica answers its first 20 requests a second slower, then like the baseline.

    HAProxy's moving average (what the router provider used to read) keeps that
    second in the canary's latency for ~50 s and fails it every time; the
    interval's own requests show it only while it lasts.
    """
    cold = Behaviour(cold_requests=20, cold_latency_ms=1000)
    per_request = averaged = 0
    for seed in SEEDS:
        rolled_back, _ = run_for(
            SETTINGS, SimulatedTraffic(random.Random(seed), canary=cold), intervals=60
        )
        per_request += rolled_back
        traffic = SimulatedTraffic(random.Random(seed), canary=cold, moving_average=True)
        averaged += run_for(SETTINGS, traffic, intervals=60)[0]
    print(f"cold canary: {per_request}/{len(SEEDS)} rolled back, {averaged} on moving averages")
    assert per_request == 0
    assert averaged == len(SEEDS)


def test_a_thin_canary_is_still_stopped() -> None:
    traffic = SimulatedTraffic(
        random.Random(3), rate=20, canary_share=0.1, canary=Behaviour(error_rate=1.0)
    )
    action, tick, _ = run_until_decided(SETTINGS, traffic, max_intervals=20)
    assert action is Action.FAIL
    assert tick <= 10


# A loaded host (what the canary benchmark met at a load average of 9 to 18 on 2 cores):
# requests take 200 +- 80 ms, and in a third of the intervals one group's process stalls,
# every request of that group and interval waiting the same extra 0-600 ms. Half the
# traffic on the canary, as in a 50 % step.
STALLING = Behaviour(latency_ms=200, latency_noise_ms=80, stall_probability=0.3, stall_ms=600)


def test_a_healthy_canary_on_a_stalling_host_is_not_rolled_back() -> None:
    """Stalls make an interval's requests move together; they must not count as independent.

    Taken request by request, a stall of the canary's process in two or three
    intervals is "significant" at any level, and its median over a few intervals
    crosses the +50 % limit: the rank test used to fail about one run in six here.
    The per-interval mean comparison (``baseline-latency``) has no such bound and
    is held off for the minute (docs/analysis.md, "Limits").
    """
    settings = AnalysisSettings(latency=None, baseline={"latency_intervals": 60})
    runs, failed, first_passes = 200, 0, []
    for seed in range(runs):
        traffic = SimulatedTraffic(
            random.Random(20_000 + seed), canary_share=0.5, canary=STALLING, baseline=STALLING
        )
        rolled_back, first_pass = run_for(settings, traffic, intervals=60)
        failed += rolled_back
        first_passes.append(first_pass if first_pass is not None else 10**6)
    first_passes.sort()
    print(
        f"healthy on a stalling host: {failed}/{runs} false rollbacks over 60 s; "
        f"accepted after {first_passes[runs // 2]} s median"
    )
    assert failed == 0
    # Stalls this uneven are slow to tell from a canary at the limit: it is accepted
    # late or the step ends undecided (then `no_data` decides), never rolled back.
    assert first_passes[runs // 2] <= 60


def test_three_hundred_ms_slower_on_a_stalling_host_is_still_decided() -> None:
    slow = Behaviour(latency_ms=500, latency_noise_ms=80, stall_probability=0.3, stall_ms=600)
    ticks = []
    for seed in SEEDS:
        traffic = SimulatedTraffic(
            random.Random(seed), canary_share=0.5, canary=slow, baseline=STALLING
        )
        action, tick, analysis = run_until_decided(SETTINGS, traffic, max_intervals=60)
        assert action is Action.FAIL, (seed, analysis.summary().reason)
        ticks.append(tick)
    print(f"+300 ms on a stalling host: failed after {max(ticks)} s at most")
    assert max(ticks) <= 30
