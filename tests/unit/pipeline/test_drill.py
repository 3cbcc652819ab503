"""`dockroll drill` refuses what it must before anything changes; its arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockroll.config import Strategy
from dockroll.errors import UsageError
from dockroll.ledger import DeploymentStatus, Ledger, open_ledger
from dockroll.pipeline.drill import is_production, percentile, run_drill
from tests.unit.ledger.conftest import TickingClock, add_release
from tests.unit.rollout.test_executor import make_config


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'l.db'}", actor="ada", clock=TickingClock()) as opened:
        yield opened


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.99) is None


def test_production_is_named_so_or_guarded_by_approvals() -> None:
    config = make_config(Strategy.ROLLING)  # its one environment is "prod"
    assert is_production(config, "prod")
    staging = (
        make_config(Strategy.ROLLING)
        .environments["prod"]
        .model_copy(update={"requires_approval": True})
    )
    guarded = config.model_copy(update={"environments": {"staging": staging}})
    assert is_production(guarded, "staging")
    plain = config.model_copy(update={"environments": {"qa": config.environments["prod"]}})
    assert not is_production(plain, "qa")


def test_refusals_change_nothing(ledger: Ledger) -> None:
    config = make_config(Strategy.ROLLING)
    with pytest.raises(UsageError, match="production environment") as raised:
        run_drill(config, "prod", ledger, to="1.0")
    assert raised.value.hint == "add --yes to drill prod on purpose"
    with pytest.raises(UsageError, match="--rate must be above 0"):
        run_drill(config, "prod", ledger, yes=True, rate=0)
    with pytest.raises(UsageError, match="nothing runs in prod yet"):
        run_drill(config, "prod", ledger, yes=True)
    one = add_release(ledger, "1.0")
    ledger.finish_deployment(
        ledger.start_deployment(one, "prod", strategy="rolling"), DeploymentStatus.SUCCEEDED
    )
    with pytest.raises(UsageError, match="no other release to drill with"):
        run_drill(config, "prod", ledger, yes=True)
    with pytest.raises(UsageError, match=r"already runs 1\.0"):
        run_drill(config, "prod", ledger, yes=True, to="1.0")
    assert ledger.audit_events() == []
    assert len(ledger.deployments("web")) == 1
