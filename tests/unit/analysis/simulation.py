"""Seeded traffic simulations for the judges: Poisson arrivals, binomial errors.

Latency is reported the way the router does: HAProxy's average over the last
1024 requests of each group. A :class:`SimulatedTraffic` stands in for the
router as an analysis traffic source: each call is one interval of ``rate``
requests per second split between canary and baseline by ``canary_share``.
"""

from __future__ import annotations

import math
import random
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
    """Standard deviation of one request's latency; an interval's mean varies by
    this over the square root of its requests."""


_WINDOW = 1024  # HAProxy averages response times over a server's last 1024 requests


@dataclass
class _Average:
    """HAProxy's sliding average: the mean of everything until 1024 requests, then it decays."""

    value: float = 0.0
    count: int = 0

    def add(self, requests: int, mean: float) -> float:
        if self.count + requests <= _WINDOW:
            self.value = (self.value * self.count + mean * requests) / (self.count + requests)
        else:
            kept = (1 - 1 / _WINDOW) ** requests
            self.value = self.value * kept + mean * (1 - kept)
        self.count += requests
        return self.value


@dataclass
class SimulatedTraffic:
    rng: random.Random
    rate: float = 200.0
    canary_share: float = 0.1
    interval: float = 1.0
    canary: Behaviour = field(default_factory=Behaviour)
    baseline: Behaviour = field(default_factory=Behaviour)
    averages: dict[str, _Average] = field(default_factory=dict)

    def _group(self, group: str, mean: float, behaviour: Behaviour) -> GroupSample:
        requests = poisson(self.rng, mean)
        errors = binomial(self.rng, requests, behaviour.error_rate)
        latency = None
        if requests:
            spread = behaviour.latency_noise_ms / math.sqrt(requests)
            interval_mean = max(1.0, self.rng.gauss(behaviour.latency_ms, spread))
            latency = self.averages.setdefault(group, _Average()).add(requests, interval_mean)
        return GroupSample(requests, errors, latency)

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
