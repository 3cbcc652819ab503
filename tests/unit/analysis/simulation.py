"""Seeded traffic simulations for the judges: Poisson arrivals, binomial errors.

Latency is reported the way the router does: each request's latency of the
interval (its request log), or, with ``moving_average``, HAProxy's average over
the last 1024 requests of each group (what the router's stats report). A
:class:`SimulatedTraffic` stands in for the router as an analysis traffic
source: each call is one interval of ``rate`` requests per second split between
canary and baseline by ``canary_share``.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockroll.analysis import BASELINE, CANARY, Action, Analysis, AnalysisSettings, Groups
from dockroll.analysis.judges import GroupSample
from dockroll.analysis.run import Providers

GROUPS = {CANARY: ["web-g2-1"], BASELINE: ["web-g1-1", "web-g1-2"]}


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 60:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def binomial(rng: random.Random, n: int, p: float) -> int:
    if p <= 0:
        return 0
    if p >= 1:
        return n
    # Geometric gaps between errors: O(errors) instead of O(requests).
    count, position, log_q = 0, 0, math.log1p(-p)
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


@dataclass(frozen=True)
class Behaviour:
    error_rate: float = 0.001
    latency_ms: float = 40.0
    latency_noise_ms: float = 40.0
    """Standard deviation of one request's latency."""
    cold_requests: int = 0
    """A cold start: this many first requests of the group take ``cold_latency_ms`` more."""
    cold_latency_ms: float = 0.0
    stall_probability: float = 0.0
    """A busy host: in each interval, with this probability, every request of the group
    waits the same extra time, uniform in 0..``stall_ms`` (one stalled process slows
    all its requests of the moment together, so they are not independent)."""
    stall_ms: float = 0.0


_WINDOW = 1024  # HAProxy averages response times over a server's last 1024 requests


@dataclass
class SimulatedTraffic:
    rng: random.Random
    rate: float = 200.0
    canary_share: float = 0.1
    interval: float = 1.0
    canary: Behaviour = field(default_factory=Behaviour)
    baseline: Behaviour = field(default_factory=Behaviour)
    moving_average: bool = False
    """Report latency as HAProxy's stats do (the mean of each group's last 1024 requests,
    one value per interval), as the router provider did before it read the request log."""
    history: dict[str, deque[float]] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)

    def _group(self, group: str, mean: float, behaviour: Behaviour) -> GroupSample:
        requests = poisson(self.rng, mean)
        errors = binomial(self.rng, requests, behaviour.error_rate)
        latencies = []
        stall = (
            self.rng.uniform(0, behaviour.stall_ms)
            if behaviour.stall_probability and self.rng.random() < behaviour.stall_probability
            else 0.0
        )
        for _ in range(requests):
            extra = (
                behaviour.cold_latency_ms
                if self.served.get(group, 0) < behaviour.cold_requests
                else 0
            )
            self.served[group] = self.served.get(group, 0) + 1
            latencies.append(
                max(1.0, self.rng.gauss(behaviour.latency_ms, behaviour.latency_noise_ms))
                + extra
                + stall
            )
        if not latencies:
            return GroupSample(requests, errors)
        if self.moving_average:
            history = self.history.setdefault(group, deque(maxlen=_WINDOW))
            history.extend(latencies)
            return GroupSample(requests, errors, statistics.fmean(history))
        return GroupSample(requests, errors, statistics.fmean(latencies), tuple(latencies))

    def sample(self, groups: Groups) -> Mapping[str, GroupSample]:
        per_interval = self.rate * self.interval
        return {
            CANARY: self._group(CANARY, per_interval * self.canary_share, self.canary),
            BASELINE: self._group(BASELINE, per_interval * (1 - self.canary_share), self.baseline),
        }


def run_until_decided(
    settings: AnalysisSettings, traffic: SimulatedTraffic, *, max_intervals: int
) -> tuple[Action, int, Analysis]:
    """Tick until PASS or FAIL (or ``max_intervals``); the action and the tick it came at."""
    analysis = Analysis(settings, Providers(traffic=traffic), GROUPS)
    action = Action.CONTINUE
    for tick in range(1, max_intervals + 1):
        action = analysis.tick(tick * settings.interval).action
        if action in (Action.PASS, Action.FAIL):
            return action, tick, analysis
    return action, max_intervals, analysis


def run_for(
    settings: AnalysisSettings, traffic: SimulatedTraffic, *, intervals: int
) -> tuple[bool, int | None]:
    """Tick ``intervals`` times; whether it ever failed, and the first PASS tick."""
    analysis = Analysis(settings, Providers(traffic=traffic), GROUPS)
    first_pass = None
    for tick in range(1, intervals + 1):
        action = analysis.tick(tick * settings.interval).action
        if action is Action.FAIL:
            return True, first_pass
        if action is Action.PASS and first_pass is None:
            first_pass = tick
    return False, first_pass
