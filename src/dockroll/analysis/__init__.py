"""Analysis: is the release taking traffic healthy? Providers read numbers, judges decide.

The executor builds one :class:`Analysis` per canary step, blue-green verification
or post-rollout watch window and ticks it every ``settings.interval`` seconds::

    providers = providers_for(env.analysis, router)          # router counters, Prometheus, HTTP
    analysis = Analysis(env.analysis, providers, {CANARY: new_servers, BASELINE: old_servers})
    while within_the_pause:
        decision = analysis.tick(time.monotonic())
        if decision.action is Action.FAIL:                   # final: roll back
            ledger_note(analysis.summary().as_dict()); roll_back(); break
        if decision.action is Action.PAUSE:                  # hold for a person
            ...
        if decision.action is Action.PASS:                   # may promote early
            ...
        sleep(env.analysis.interval)                         # CONTINUE: keep going
    end = analysis.step_end(extended=0.0)  # a canary step undecided when its time is up:
    ...                                    # EXTEND for min_sample, or what no_data says
    providers.close()

Checks (each yields a :class:`Verdict` per tick; docs/analysis.md explains them):

- built-in, from the router's counters and request log (or Prometheus):
  ``success-rate`` and ``latency`` (absolute thresholds), ``baseline-errors``
  and ``baseline-latency`` (canary vs the stable servers in the same interval),
  ``sequential-errors`` (Wald's SPRT) and ``sequential-latency`` (a rank test
  of each request, canary vs baseline within each interval);
- custom ``checks``: a Prometheus query or a JSON value with success/failure
  conditions, failure/inconclusive/consecutive-error limits (Argo Rollouts' rules).

Judges are pure functions and small classes over plain numbers
(:mod:`dockroll.analysis.judges`); I/O lives in providers
(:mod:`dockroll.analysis.providers`) whose HTTP client is injectable. Provider
failures raise :class:`~dockroll.errors.AnalysisError` inside providers and count
as no data (with a consecutive-error limit) inside an :class:`Analysis`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockroll.analysis.conditions import (
        Condition,
        ConditionSyntaxError,
        Value,
        parse_condition,
    )
    from dockroll.analysis.judges import GroupSample, Outcome, Verdict
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
    from dockroll.analysis.run import (
        Action,
        Analysis,
        AnalysisSummary,
        Decision,
        Ending,
        Providers,
        StepEnd,
        providers_for,
    )
    from dockroll.analysis.selectors import Selector, SelectorSyntaxError, parse_selector
    from dockroll.analysis.settings import (
        AnalysisSettings,
        CheckSettings,
        NoDataPolicy,
    )

# Each public name and the submodule that defines it. They load on first use:
# dockroll.yml's models need only ``settings``, and the providers bring httpx,
# which a CLI command that runs no analysis should not pay for at start-up.
_SOURCES = {
    "conditions": ("Condition", "ConditionSyntaxError", "Value", "parse_condition"),
    "judges": ("GroupSample", "Outcome", "Verdict"),
    "providers": (
        "BASELINE",
        "CANARY",
        "Groups",
        "HttpProvider",
        "PrometheusProvider",
        "PrometheusTraffic",
        "Reading",
        "RouterProvider",
        "TrafficSource",
    ),
    "run": (
        "Action",
        "Analysis",
        "AnalysisSummary",
        "Decision",
        "Ending",
        "Providers",
        "StepEnd",
        "providers_for",
    ),
    "selectors": ("Selector", "SelectorSyntaxError", "parse_selector"),
    "settings": ("AnalysisSettings", "CheckSettings", "NoDataPolicy"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BASELINE",
    "CANARY",
    "Action",
    "Analysis",
    "AnalysisSettings",
    "AnalysisSummary",
    "CheckSettings",
    "Condition",
    "ConditionSyntaxError",
    "Decision",
    "Ending",
    "GroupSample",
    "Groups",
    "HttpProvider",
    "NoDataPolicy",
    "Outcome",
    "PrometheusProvider",
    "PrometheusTraffic",
    "Providers",
    "Reading",
    "RouterProvider",
    "Selector",
    "SelectorSyntaxError",
    "StepEnd",
    "TrafficSource",
    "Value",
    "Verdict",
    "parse_condition",
    "parse_selector",
    "providers_for",
]
