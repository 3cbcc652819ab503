"""What an undone release cost shows in `history` (table and JSON) and in `status` JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll.cli.app import main
from dockroll.ledger import LEDGER_URL_ENV, DeploymentStatus, open_ledger
from dockroll.pipeline.status import last_undone
from tests.unit.ledger.conftest import TickingClock, add_release


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    with open_ledger(url, actor="ada", clock=TickingClock()) as ledger:
        one, two = add_release(ledger, "1.0"), add_release(ledger, "2.0")
        ledger.finish_deployment(
            ledger.start_deployment(one, "prod", strategy="canary"), DeploymentStatus.SUCCEEDED
        )
        bad = ledger.start_deployment(two, "prod", strategy="canary")
        ledger.record_cost(bad, served_requests=120, failed_requests=30, traffic_seconds=4.5)
        ledger.finish_deployment(bad, DeploymentStatus.ROLLED_BACK, message="analysis failed")
        ledger.finish_deployment(
            ledger.start_deployment(one, "dev", strategy="canary"), DeploymentStatus.SUCCEEDED
        )
    return url


def test_history_shows_the_cost(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--service", "web", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["history"]
    rolled_back = next(e for e in entries if e["status"] == "rolled_back")
    assert (rolled_back["served_requests"], rolled_back["failed_requests"]) == (120, 30)
    assert rolled_back["traffic_seconds"] == 4.5
    assert main(["history", "--service", "web"]) == 0
    out = capsys.readouterr().out
    cells = " ".join(
        part.strip() for line in out.splitlines() for part in line.split("│") if part.strip()
    )
    assert "cost: 30 of 120 requests failed," in cells, out


def test_status_names_the_last_undone_deployment_and_its_cost(url: str) -> None:
    with open_ledger(url) as ledger:
        undone = last_undone(ledger, "web", "prod")
        assert last_undone(ledger, "web", "dev") is None
    assert undone is not None
    assert undone["version"] == "2.0"
    assert undone["status"] == "rolled_back"
    assert (undone["served_requests"], undone["failed_requests"]) == (120, 30)
    assert undone["traffic_seconds"] == 4.5
