"""``dockroll rebalance``: what it prints for people and for --json, and its exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockroll.cli.app import main
from dockroll.pipeline.rebalance import Move, RebalanceResult


@pytest.fixture(autouse=True)
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    for name in ("DOCKROLL_CONFIG", "DOCKROLL_DEBUG", "DOCKROLL_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    swarm = {"port": 8002, "engine": "tcp://127.0.0.1:1", "swarm": {}}
    data = {
        "service": "web",
        "image": "127.0.0.1:5000/team/web",
        "environments": {"dev": {"port": 8001}, "prod": swarm},
    }
    path = tmp_path / "dockroll.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _answer(monkeypatch: pytest.MonkeyPatch, result: RebalanceResult) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def rebalance(config: object, env: str, ledger: object, **options: Any) -> RebalanceResult:
        calls.append({"env": env, **{k: v for k, v in options.items() if k != "progress"}})
        return result

    monkeypatch.setattr("dockroll.pipeline.rebalance.rebalance_environment", rebalance)
    return calls


def test_a_dry_run_says_what_would_move(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = RebalanceResult(
        "prod", "dry-run", "v1.0.0", (Move("web-prod-r-1", "worker-1"),), {"worker-1": 2}
    )
    calls = _answer(monkeypatch, result)

    assert main(["rebalance", "--env", "prod", "--dry-run"]) == 0

    assert calls == [{"env": "prod", "dry_run": True, "reason": None, "lock_wait": 0.0}]
    shown = " ".join(capsys.readouterr().out.split())
    assert "would move web-prod-r-1 off worker-1 (now worker-1: 2); nothing changed" in shown


def test_a_rebalance_for_people_and_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    move = Move("web-prod-r-1", "worker-1", "web-prod-r-3", "worker-2")
    result = RebalanceResult(
        "prod", "succeeded", "v1.0.0", (move,), {"worker-1": 1, "worker-2": 1}, 7, 12.5
    )
    _answer(monkeypatch, result)

    assert main(["rebalance", "--env", "prod", "--reason", "after maintenance"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "rebalanced prod in 12.5s: web-prod-r-1 (worker-1) -> web-prod-r-3 (worker-2)" in shown
    assert "now worker-1: 1, worker-2: 1 (deployment 7)" in shown

    assert main(["rebalance", "--env", "prod", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "succeeded"
    assert document["moves"] == [move.to_json()]
    assert document["deployment"] == 7


def test_balanced_and_off_a_swarm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rebalance", "--env", "dev"]) == 2
    assert "dev does not run on a Swarm" in capsys.readouterr().err

    _answer(monkeypatch, RebalanceResult("prod", "balanced", "v1.0.0", (), {"w1": 1, "w2": 1}))
    assert main(["rebalance", "--env", "prod"]) == 0
    assert "prod is balanced (w1: 1, w2: 1): nothing to move" in capsys.readouterr().out
