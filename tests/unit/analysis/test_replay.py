"""Replaying a rollout's recorded analysis samples with other settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockroll.analysis import AnalysisSettings
from dockroll.analysis.replay import apply_overrides, parse_overrides, replay
from dockroll.cli.app import main
from dockroll.errors import UsageError
from dockroll.ledger import LEDGER_URL_ENV, Deployment, Ledger, open_ledger
from tests.unit.ledger.conftest import TickingClock, add_release

SETTINGS = {
    "interval": "1s",
    "baseline": None,
    "sequential": {"enabled": False},
    "success_rate": {"min": 0.9},
    "checks": [{"name": "p99", "query": "x", "success": "result < 1"}],
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}", actor="ada", clock=TickingClock()) as opened:
        yield opened


def _recorded(ledger: Ledger, canary_errors: tuple[float, ...]) -> Deployment:
    """A 10 % canary step: a snapshot tick, then 100 canary requests a tick with the given
    errors; recorded as dockroll's analysis decided it (success rate at least 90 %)."""
    deployment = ledger.start_deployment(add_release(ledger, "2.0"), "prod", strategy="canary")
    settings = AnalysisSettings.model_validate(SETTINGS).model_dump(mode="json")
    ledger.record_sample(
        deployment, step_index=3, tick=1, elapsed=0.0, percent=10, action="continue",
        reason="collecting data", canary_weight=10, baseline_weight=90,
        detail={"sampled": "snapshot", "settings": settings,
                "groups": {"canary": ["web-2"], "baseline": ["web-1"]}},
    )  # fmt: skip
    for tick, errors in enumerate(canary_errors, start=2):
        ledger.record_sample(
            deployment, step_index=3, tick=tick, elapsed=float(tick - 1), percent=10,
            action="pass" if errors <= 10 else "fail",
            reason="every check passes" if errors <= 10 else "success-rate: too low",
            canary_weight=10, baseline_weight=90,
            canary=(100.0, errors, 12.0), baseline=(900.0, 0.0, 10.0),
            detail={"sampled": "measured", "latencies_ms": {"canary": [12.0] * 3}},
        )  # fmt: skip
    return deployment


def test_replaying_with_the_recorded_settings_decides_as_recorded(ledger: Ledger) -> None:
    result = replay(ledger.samples(_recorded(ledger, (10.0, 10.0))), {})
    assert not result.differs
    assert [t.action for t in result.ticks] == ["continue", "pass", "pass"]
    assert result.skipped_checks == ("p99",)
    assert result.summary() == (
        "the replay decides as recorded: pass at step 3 (10%) after 1s, tick 2 (every check passes)"
    )


def test_a_stricter_minimum_would_have_failed_the_canary_at_its_first_interval(
    ledger: Ledger,
) -> None:
    samples = ledger.samples(_recorded(ledger, (10.0, 10.0)))
    result = replay(samples, parse_overrides(["success_rate.min=0.99"]))
    assert result.differs
    first = result.first_difference
    assert first is not None
    assert (first.step_index, first.tick, first.elapsed) == (3, 2, 1.0)
    assert (first.recorded_action, first.action) == ("pass", "fail")
    assert first.reason.startswith("success-rate: success rate 90.00% < 99.00% over 100 requests")
    assert result.summary().startswith(
        "would have decided differently: fail at step 3 (10%) after 1s, tick 2 (success-rate: "
    )
    assert result.summary().endswith(
        "where the recording decided pass at step 3 (10%) after 1s, tick 2 (every check passes)"
    )
    data = result.as_dict()
    assert data["differs"] is True
    assert data["overrides"] == {"success_rate.min": 0.99}
    assert data["first_difference"]["replayed"]["action"] == "fail"


def test_a_looser_minimum_would_not_have_failed(ledger: Ledger) -> None:
    samples = ledger.samples(_recorded(ledger, (30.0,)))
    assert replay(samples, {})
    result = replay(samples, {"success_rate": {"min": 0.5}})
    assert [(t.recorded_action, t.action) for t in result.ticks[1:]] == [("fail", "pass")]
    assert result.summary().startswith("would have decided differently: pass at step 3")


def test_settings_are_overridden_by_dotted_keys_and_validated() -> None:
    base: dict[str, Any] = {"interval": 1.0, "sequential": {"enabled": True}}
    changed = apply_overrides(base, {"sequential.enabled": False, "baseline": None})
    assert changed.sequential.enabled is False
    assert changed.baseline is None
    assert base == {"interval": 1.0, "sequential": {"enabled": True}}
    assert parse_overrides(["a=0.5", "b=false", "c=30s", "d=null", "e="]) == {
        "a": 0.5, "b": False, "c": "30s", "d": None, "e": "",
    }  # fmt: skip
    with pytest.raises(UsageError, match="confidence: Input should be less than 1"):
        apply_overrides(base, {"confidence": 2})
    with pytest.raises(UsageError, match="nonsense: Extra inputs are not permitted"):
        apply_overrides(base, {"nonsense": 1})
    with pytest.raises(UsageError, match="is not KEY=VALUE"):
        parse_overrides(["confidence"])


def test_the_command_prints_json_and_refuses_bad_input(
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = _recorded(ledger, (10.0,))
    bare = ledger.start_deployment(add_release(ledger, "3.0"), "prod", strategy="rolling")
    monkeypatch.setenv(LEDGER_URL_ENV, f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.chdir(tmp_path)

    code = main(
        ["analysis", "replay", str(deployment.id), "--set", "success_rate.min=0.99", "--json"]
    )
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["deployment"] == deployment.id
    assert data["differs"] is True
    assert data["replayed_decision"]["replayed"]["action"] == "fail"

    assert main(["analysis", "replay", str(deployment.id)]) == 0
    assert "the replay decides as recorded" in capsys.readouterr().out

    assert main(["analysis", "replay", str(deployment.id), "--set", "confidence=7"]) == 2
    assert "confidence: Input should be less than 1" in capsys.readouterr().err
    assert main(["analysis", "replay", str(bare.id)]) == 2
    assert "has no recorded analysis samples" in capsys.readouterr().err
    assert main(["analysis", "replay", "999"]) != 0
    assert "no deployment 999" in capsys.readouterr().err
