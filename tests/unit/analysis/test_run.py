"""An Analysis as the executor drives it: aggregation, custom checks, every no-data case."""

from __future__ import annotations

import math
from collections.abc import Mapping

import httpx
import pytest

from dockroll.analysis import (
    BASELINE,
    CANARY,
    Action,
    Analysis,
    AnalysisSettings,
    Ending,
    Groups,
    GroupSample,
    Providers,
    providers_for,
)
from dockroll.analysis.providers import HttpProvider, PrometheusProvider
from dockroll.analysis.settings import NoDataPolicy
from dockroll.errors import AnalysisError, ConfigError

GROUPS = {CANARY: ["c1"], BASELINE: ["b1"]}


class _Traffic:
    """Returns the scripted samples in turn; an exception is raised instead."""

    def __init__(self, *script: Mapping[str, GroupSample] | Exception) -> None:
        self.script = list(script)

    def sample(self, groups: Groups) -> Mapping[str, GroupSample] | None:
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


def _latencies(count: int) -> tuple[float, ...]:
    return tuple(38.0 + index % 5 for index in range(count))


HEALTHY = {
    CANARY: GroupSample(100, 0, 40.0, _latencies(100)),
    BASELINE: GroupSample(900, 1, 40.0, _latencies(900)),
}
NOTHING = {CANARY: GroupSample(0, 0), BASELINE: GroupSample(900, 1, 40.0)}
DOWN = AnalysisError("Prometheus at http://127.0.0.1:9090 did not answer")


def _builtin(no_data: NoDataPolicy, *script: Mapping[str, GroupSample] | Exception) -> Analysis:
    settings = AnalysisSettings(no_data=no_data)
    return Analysis(settings, Providers(traffic=_Traffic(*script)), GROUPS)


def _ticks(analysis: Analysis, count: int) -> list[Action]:
    return [analysis.tick(float(n)).action for n in range(1, count + 1)]


def test_a_healthy_canary_passes() -> None:
    actions = _ticks(_builtin(NoDataPolicy.INCONCLUSIVE, HEALTHY), 10)
    assert actions[0] is Action.CONTINUE
    assert actions[-1] is Action.PASS
    assert Action.FAIL not in actions


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (NoDataPolicy.FAIL, Action.FAIL),
        (NoDataPolicy.PAUSE, Action.PAUSE),
        (NoDataPolicy.INCONCLUSIVE, Action.CONTINUE),
    ],
)
@pytest.mark.parametrize("case", ["no requests", "provider error"])
def test_builtin_no_data(policy: NoDataPolicy, expected: Action, case: str) -> None:
    analysis = _builtin(policy, NOTHING if case == "no requests" else DOWN)
    decision = analysis.tick(1.0)
    assert decision.action is expected, decision.reason
    assert any(v.outcome.value in {"no data", "fail"} for v in decision.verdicts)


def test_provider_errors_in_a_row_fail_even_when_no_data_is_inconclusive() -> None:
    analysis = _builtin(NoDataPolicy.INCONCLUSIVE, DOWN)
    actions = _ticks(analysis, 5)
    assert actions == [Action.CONTINUE] * 4 + [Action.FAIL]
    assert "5 provider errors in a row" in analysis.summary().reason


def test_no_data_pause_lifts_when_data_returns() -> None:
    analysis = _builtin(NoDataPolicy.PAUSE, NOTHING, HEALTHY)
    assert analysis.tick(1.0).action is Action.PAUSE
    assert analysis.tick(2.0).action is not Action.PAUSE


def test_failure_is_final_and_summarised() -> None:
    broken = {CANARY: GroupSample(20, 20, 40.0), BASELINE: GroupSample(180, 0, 40.0)}
    analysis = _builtin(NoDataPolicy.INCONCLUSIVE, broken, HEALTHY)
    first = analysis.tick(1.0)
    assert first.action is Action.FAIL
    assert analysis.tick(2.0) is first
    summary = analysis.summary()
    assert summary.action is Action.FAIL
    assert "success-rate" in summary.reason
    assert summary.numbers["success-rate.errors"] == 20
    assert summary.numbers["sequential-errors.llr"] > 0
    assert summary.as_dict()["checks"]["sequential-errors"]["outcome"] == "fail"  # type: ignore[index]


def test_priming_tick_decides_nothing() -> None:
    analysis = _builtin(NoDataPolicy.FAIL, None)  # type: ignore[arg-type]  # a router's first snapshot
    assert analysis.tick(1.0).action is Action.CONTINUE


# -- the end of a canary step ------------------------------------------------------------

# A trickle at 5 % errors: the SPRT (the one judge left on) stays undecided for a while.
TRICKLE = {CANARY: GroupSample(5, 0.25, 40.0), BASELINE: GroupSample(45, 0, 40.0)}


def _step(policy: NoDataPolicy, sample: Mapping[str, GroupSample], ticks: int) -> Analysis:
    settings = AnalysisSettings(
        no_data=policy, success_rate=None, baseline=None, min_sample=100, max_extension=60.0
    )
    analysis = Analysis(settings, Providers(traffic=_Traffic(sample)), GROUPS)
    _ticks(analysis, ticks)
    return analysis


@pytest.mark.parametrize("ticks", [0, 4])
@pytest.mark.parametrize("policy", list(NoDataPolicy))
def test_an_undecided_step_with_too_few_requests_is_extended_whatever_the_policy(
    policy: NoDataPolicy, ticks: int
) -> None:
    analysis = _step(policy, TRICKLE, ticks)
    end = analysis.step_end(extended=10.0)
    assert end.ending is Ending.EXTEND, end.reason
    assert end.reason.startswith("insufficient data, extending")
    assert end.as_dict()["canary_requests"] == analysis.canary_requests == 5 * ticks


@pytest.mark.parametrize(
    ("policy", "ending", "said"),
    [
        (NoDataPolicy.FAIL, Ending.FAIL, "no_data: fail"),
        (NoDataPolicy.PAUSE, Ending.PAUSE, "holding for a person (no_data: pause)"),
        (NoDataPolicy.INCONCLUSIVE, Ending.PROCEED, "going on without a pass"),
    ],
)
def test_the_policy_ends_a_step_without_its_sample_once_the_extension_is_spent(
    policy: NoDataPolicy, ending: Ending, said: str
) -> None:
    end = _step(policy, TRICKLE, 4).step_end(extended=60.0)
    assert end.ending is ending
    assert end.reason.startswith("insufficient data: 20 of the 100 canary requests needed")
    assert said in end.reason


def test_an_undecided_step_with_its_sample_follows_the_policy_at_once() -> None:
    for policy, ending in [
        (NoDataPolicy.FAIL, Ending.FAIL),
        (NoDataPolicy.PAUSE, Ending.PAUSE),
        (NoDataPolicy.INCONCLUSIVE, Ending.PROCEED),
    ]:
        end = _step(policy, TRICKLE, 25).step_end(extended=0.0)  # 125 requests, undecided
        assert end.ending is ending
        assert end.reason.startswith("undecided after 125 canary requests (sequential-errors")


def test_a_decided_step_ends_as_decided() -> None:
    assert _step(NoDataPolicy.FAIL, HEALTHY, 10).step_end(0.0).ending is Ending.PASS
    broken = {CANARY: GroupSample(20, 20, 40.0), BASELINE: GroupSample(180, 0, 40.0)}
    assert _step(NoDataPolicy.INCONCLUSIVE, broken, 1).step_end(0.0).ending is Ending.FAIL


def test_without_request_counts_there_is_nothing_to_extend_for() -> None:
    client = _answers(prometheus=_vector("0.7"))  # neither success nor failure
    analysis = _custom(client, failure="> 0.9", inconclusive_limit=5)
    analysis.tick(1.0)
    assert analysis.step_end(extended=0.0).ending is Ending.PROCEED


# -- custom checks ---------------------------------------------------------------------


def _answers(**bodies: object) -> httpx.Client:
    """Prometheus and an HTTP endpoint, answering what ``bodies`` say (callables per call)."""

    def answer(request: httpx.Request) -> httpx.Response:
        key = "prometheus" if request.url.path == "/api/v1/query" else "http"
        body = bodies[key]
        if callable(body):
            body = body()
        if isinstance(body, Exception):
            raise body
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(answer))


def _vector(*values: str) -> dict[str, object]:
    result = [{"metric": {}, "value": [1.7e9, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _custom(client: httpx.Client, **check: object) -> Analysis:
    base: dict[str, object] = {"name": "q", "query": "sum(x)", "success": "< 0.5"}
    settings = AnalysisSettings.model_validate({"checks": [{**base, **check}]})
    return Analysis(settings, providers_for(settings, None, http=client), {CANARY: ["c1"]})


def test_custom_check_passes_and_fails() -> None:
    assert _custom(_answers(prometheus=_vector("0.1"))).tick(0).action is Action.PASS
    failing = _custom(_answers(prometheus=_vector("3")), failure=">= 2")
    assert failing.tick(0).action is Action.FAIL


def test_custom_check_failure_limit_and_interval() -> None:
    analysis = _custom(_answers(prometheus=_vector("3")), interval="5s", failure_limit=1)
    assert analysis.tick(0.0).action is Action.CONTINUE  # 1 failure tolerated
    assert analysis.tick(1.0).action is Action.CONTINUE  # not due: no new measurement
    assert analysis.tick(5.0).action is Action.FAIL


def test_custom_check_inconclusive_limit_pauses() -> None:
    analysis = _custom(_answers(prometheus=_vector("1")), failure=">= 2", inconclusive_limit=1)
    assert _ticks(analysis, 2) == [Action.CONTINUE, Action.PAUSE]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (NoDataPolicy.FAIL, Action.FAIL),
        (NoDataPolicy.PAUSE, Action.PAUSE),
        (NoDataPolicy.INCONCLUSIVE, Action.CONTINUE),
    ],
)
@pytest.mark.parametrize(
    "answer",
    [
        _vector(),
        _vector("NaN"),
        httpx.ConnectError("refused"),
        {"status": "error", "errorType": "execution", "error": "timeout"},
    ],
    ids=["empty vector", "NaN", "unreachable", "query error"],
)
def test_custom_check_no_data(policy: NoDataPolicy, expected: Action, answer: object) -> None:
    analysis = _custom(_answers(prometheus=answer), no_data=policy.value)
    decision = analysis.tick(0.0)
    assert decision.action is expected, decision.reason


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (NoDataPolicy.FAIL, Action.FAIL),
        (NoDataPolicy.PAUSE, Action.PAUSE),
        (NoDataPolicy.INCONCLUSIVE, Action.CONTINUE),
    ],
)
def test_http_check_missing_value_follows_policy(policy: NoDataPolicy, expected: Action) -> None:
    client = _answers(http={"checks": {}})
    analysis = _custom(
        client,
        provider="http",
        query=None,
        url="http://127.0.0.1:8083/health.json",
        select="$.checks.db.ok",
        success="== true",
        no_data=policy.value,
    )
    decision = analysis.tick(0.0)
    assert decision.action is expected
    assert "matched nothing" in decision.reason or expected is Action.FAIL


def test_http_check_passes_on_the_selected_value() -> None:
    client = _answers(http={"checks": {"db": {"ok": True}}})
    analysis = _custom(
        client,
        provider="http",
        query=None,
        url="http://127.0.0.1:8083/health.json",
        select="$.checks.db.ok",
        success="== true",
    )
    assert analysis.tick(0.0).action is Action.PASS


def test_dry_run_checks_never_decide() -> None:
    analysis = _custom(_answers(prometheus=_vector("3")), failure=">= 2", dry_run=True)
    decision = analysis.tick(0.0)
    assert decision.action is Action.CONTINUE
    assert decision.verdicts[0].outcome.value == "fail"


def test_a_check_without_its_provider_is_a_config_error() -> None:
    settings = AnalysisSettings.model_validate(
        {"checks": [{"name": "q", "query": "x", "success": "< 1"}]}
    )
    with pytest.raises(ConfigError, match="reads prometheus"):
        Analysis(settings, Providers(), {CANARY: []})
    with pytest.raises(ValueError, match="canary"):
        Analysis(AnalysisSettings(), Providers(), {BASELINE: []})


def test_providers_for_builds_what_settings_need() -> None:
    settings = AnalysisSettings.model_validate(
        {
            "provider": "prometheus",
            "checks": [{"name": "h", "provider": "http", "url": "http://x/", "success": "== 1"}],
        }
    )
    providers = providers_for(settings, None, http=_answers())
    assert isinstance(providers.prometheus, PrometheusProvider)
    assert isinstance(providers.http, HttpProvider)
    assert providers.traffic is not None
    providers.close()
    assert providers_for(AnalysisSettings(), None).traffic is None


def test_summary_drops_non_finite_numbers() -> None:
    analysis = _builtin(NoDataPolicy.INCONCLUSIVE, HEALTHY)
    analysis.tick(1.0)
    assert all(math.isfinite(v) for v in analysis.summary().numbers.values())
