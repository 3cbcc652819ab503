"""``rebalance_environment`` refuses what it cannot rebalance, before anything changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dockroll.config import load_config
from dockroll.errors import UsageError
from dockroll.ledger import Ledger, open_ledger
from dockroll.pipeline.rebalance import rebalance_environment


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        yield opened


def test_an_environment_off_a_swarm_is_refused_with_nothing_changed(
    tmp_path: Path, ledger: Ledger
) -> None:
    path = tmp_path / "dockroll.yml"
    data = {
        "service": "web",
        "image": "127.0.0.1:5000/team/web",
        "environments": {"dev": {"port": 8001}},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        rebalance_environment(load_config(path), "dev", ledger)

    assert "does not run on a Swarm" in caught.value.message
    assert caught.value.hint is not None
    assert ledger.deployments("web", "dev") == []


def test_a_swarm_environment_with_nothing_deployed_is_refused(
    tmp_path: Path, ledger: Ledger
) -> None:
    path = tmp_path / "dockroll.yml"
    environment = {"port": 8001, "engine": "tcp://127.0.0.1:1", "swarm": {}}
    data = {
        "service": "web",
        "image": "127.0.0.1:5000/team/web",
        "environments": {"dev": environment},
    }
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    # Refused from the ledger alone: the engine (nothing listens there) is never asked.
    with pytest.raises(UsageError, match="nothing has been deployed to dev"):
        rebalance_environment(load_config(path), "dev", ledger, dry_run=True)
