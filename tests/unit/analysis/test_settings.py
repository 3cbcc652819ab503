"""The analysis section of dockroll.yml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dockroll.analysis.settings import (
    AnalysisSettings,
    CheckProvider,
    NoDataPolicy,
    TrafficProvider,
)
from dockroll.config import load_config
from dockroll.errors import ConfigError

EXAMPLE = """
interval: 1s
provider: router
prometheus: {url: http://127.0.0.1:9090}
no_data: inconclusive
confidence: 0.99
success_rate: {min: 0.99}
latency: {max: 500ms}
baseline: {max_error_ratio: 2.0, min_error_delta: 0.01, max_latency_ratio: 1.5}
min_requests: 20
watch: 60s
checks:
  - name: queue-depth
    provider: prometheus
    query: sum(rate(http_requests_total{status=~"5.."}[30s]))
    success: "< 0.5"
    failure: ">= 2"
    interval: 5s
    failure_limit: 2
    inconclusive_limit: 5
  - name: health
    provider: http
    url: http://127.0.0.1:8083/health.json
    select: $.checks.db.ok
    success: "== true"
"""


def test_the_documented_example_parses() -> None:
    settings = AnalysisSettings.model_validate(yaml.safe_load(EXAMPLE))
    assert settings.interval == 1.0
    assert settings.provider is TrafficProvider.ROUTER
    assert settings.no_data is NoDataPolicy.INCONCLUSIVE
    assert settings.latency is not None
    assert settings.latency.max == 0.5
    assert settings.watch == 60.0
    queue, health = settings.checks
    assert queue.provider is CheckProvider.PROMETHEUS
    assert queue.interval == 5.0
    assert queue.failure_limit == 2
    assert queue.consecutive_error_limit == 4
    assert health.selector().path == ("checks", "db", "ok")
    assert health.success_condition() is not None
    assert health.success_condition().holds(True)  # type: ignore[union-attr]


def test_defaults_are_safe() -> None:
    settings = AnalysisSettings()
    assert settings.success_rate is not None
    assert settings.success_rate.min == 0.99
    assert settings.baseline is not None
    assert settings.sequential.enabled
    assert settings.prometheus_settings().url == "http://127.0.0.1:9090"
    assert settings.min_sample == 100
    assert settings.max_extension == 300.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"checks": [{"name": "x", "query": "up", "success": "__import__('os')"}]}, "unknown"),
        ({"checks": [{"name": "x", "query": "up"}]}, "needs a 'success' or 'failure'"),
        ({"checks": [{"name": "x", "success": "> 1"}]}, "needs a 'query'"),
        ({"checks": [{"name": "x", "provider": "http", "success": "> 1"}]}, "needs a 'url'"),
        (
            {
                "checks": [
                    {"name": "x", "provider": "http", "url": "u", "select": "a.b", "success": "> 1"}
                ]
            },
            "starts with",
        ),
        ({"checks": [{"name": "x", "query": "up", "success": "> 1"}] * 2}, "unique"),
        ({"checks": [{"name": "success-rate", "query": "up", "success": "> 1"}]}, "taken"),
        ({"confidence": 1.0}, "less than 1"),
        ({"interval": "0s"}, "positive"),
        ({"no_data": "ignore"}, "fail"),
        ({"provider": "http"}, "router"),
        ({"latency": {"max": "fast"}}, "not a duration"),
        ({"surprise": 1}, "Extra inputs"),
        ({"min_sample": -1}, "greater than or equal to 0"),
        ({"max_extension": -5}, "cannot be negative"),
        ({"max_extension": "soon"}, "not a duration"),
    ],
)
def test_invalid_settings_say_why(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AnalysisSettings.model_validate(data)


def test_environments_carry_analysis(tmp_path: Path) -> None:
    config = tmp_path / "dockroll.yml"
    config.write_text(
        "service: web\nimage: 127.0.0.1:5000/acme/web\n"
        "environments:\n"
        "  prod:\n    port: 8082\n    strategy: canary\n"
        "    analysis:\n      latency: {max: 300ms}\n"
        "  dev:\n    port: 8080\n",
        encoding="utf-8",
    )
    loaded = load_config(config)
    analysis = loaded.environment("prod").analysis
    assert analysis is not None
    assert analysis.latency is not None
    assert analysis.latency.max == pytest.approx(0.3)
    assert loaded.environment("dev").analysis is None


def test_invalid_analysis_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "dockroll.yml"
    config.write_text(
        "service: web\nimage: 127.0.0.1:5000/acme/web\nenvironments:\n  prod:\n    port: 8082\n"
        "    analysis:\n      checks:\n        - {name: q, query: up, success: 'os.system(1)'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"environments\.prod\.analysis\.checks\.0\.success"):
        load_config(config)
