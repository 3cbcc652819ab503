"""The dashboard over a seeded ledger: pages, JSON, live events, and who may use controls.

The overview's engine and router reads are the status command's (tested against a
real engine in tests/integration/test_ui_browser.py); here they are replaced.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockroll.analysis import AnalysisSettings
from dockroll.config import Strategy
from dockroll.errors import UsageError
from dockroll.ledger import DeploymentStatus, Ledger, open_ledger
from dockroll.web import Tokens, create_app, load_tokens, views
from tests.unit.ledger.conftest import TickingClock, add_release
from tests.unit.rollout.test_executor import make_config
from tests.unit.web.server import serving

TOKEN = "0123456789abcdef0123"
RECENT = datetime.now(UTC) - timedelta(hours=1)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def seeded(url: str) -> Iterator[dict[str, Any]]:
    with open_ledger(url, actor="ada", clock=TickingClock(RECENT)) as ledger:
        one, two = add_release(ledger, "1.0", git_sha="abc"), add_release(ledger, "2.0")
        ledger.record_promotion(one, from_env="staging", to_env="prod")
        done = ledger.start_deployment(one, "prod", strategy="canary")
        ledger.finish_deployment(done, DeploymentStatus.SUCCEEDED)
        bad = ledger.start_deployment(two, "prod", strategy="canary")
        ledger.record_step(bad, 1, "set-weights", "succeeded", detail={"weights": {"a": 10}})
        settings = AnalysisSettings.model_validate({"latency": {"max": "0.5s"}})
        ledger.record_sample(
            bad, step_index=2, tick=1, elapsed=0, percent=10, action="continue",
            reason="collecting data", canary_weight=10, baseline_weight=90,
            detail={"sampled": "snapshot", "settings": settings.model_dump(mode="json")},
        )  # fmt: skip
        ledger.record_sample(
            bad, step_index=2, tick=2, elapsed=1, percent=10, action="fail",
            reason="success-rate: too many errors", canary_weight=10, baseline_weight=90,
            canary=(50.0, 25.0, 30.0), baseline=(450.0, 0.0, 20.0),
        )  # fmt: skip
        ledger.record_cost(bad, served_requests=50, failed_requests=25, traffic_seconds=1.5)
        ledger.finish_deployment(bad, DeploymentStatus.ROLLED_BACK, message="analysis failed")
        running = ledger.start_deployment(two, "prod", strategy="canary")
        yield {"done": done, "bad": bad, "running": running}


@contextmanager
def _client(
    url: str, monkeypatch: pytest.MonkeyPatch, tokens: Tokens | None = None
) -> Iterator[httpx.Client]:
    def status(config: Any, ledger: Ledger) -> dict[str, Any]:
        return {"service": config.service, "environments": [], "drift": ["seen"]}

    monkeypatch.setattr(views, "status_view", status)
    app = create_app(make_config(Strategy.CANARY), tokens, ledger_url=url)
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client


def test_every_page_renders_from_the_ledger(
    url: str, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = seeded["bad"]
    with _client(url, monkeypatch) as client:
        overview = client.get("/")
        assert overview.status_code == 200
        assert "seen" in overview.text
        assert "read-only" in overview.text
        page = client.get(f"/deployments/{bad.id}")
        assert page.status_code == 200
        assert "25 of 50 requests failed" in page.text
        assert "Server-Timing" in page.headers
        initial = page.text.split('id="initial">', 1)[1].split("</script>", 1)[0]
        data = json.loads(initial)
        assert data["thresholds"]["max_latency_ms"] == 500.0
        assert data["thresholds"]["max_error_rate"] == pytest.approx(0.01)
        assert [s["action"] for s in data["samples"]] == ["continue", "fail"]
        assert data["samples"][1]["canary_error_rate"] == 0.5
        assert data["samples"][1]["canary_share"] == 0.1
        history = client.get("/history", params={"status": "rolled_back"})
        assert f"/deployments/{bad.id}" in history.text
        assert "25/50 failed" in history.text
        assert f'/deployments/{seeded["done"].id}"' not in history.text
        release = client.get("/releases/1.0")
        assert "abc" in release.text
        assert "staging → prod" in release.text
        assert client.get("/releases/9.9").status_code == 404
        assert client.get("/deployments/999").status_code == 404
        assert client.get("/audit").status_code == 200
        report = client.get("/report", params={"days": 7})
        assert report.status_code == 200
        row = report.text.split('<tr data-env="prod">', 1)[1].split("</tr>", 1)[0]
        assert "<td>1</td>" in row  # one succeeded deployment
        assert "50.0% (1/2)" in row  # one of two finished changes was rolled back
        api = client.get("/api/report", params={"days": 90}).json()
        assert api["days"] == 90
        assert client.get("/api/status").json()["drift"] == ["seen"]


def test_the_event_stream_sends_samples_after_a_cursor_and_ends_when_finished(
    url: str, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = seeded["bad"]
    with _client(url, monkeypatch) as client:
        first = client.get(f"/api/deployments/{bad.id}").json()
        cursor = first["samples"][0]["id"]
        with client.stream("GET", f"/api/deployments/{bad.id}/events?after={cursor}") as stream:
            text = "".join(stream.iter_text())
    events = [block for block in text.split("\n\n") if block.strip()]
    assert events[0].startswith(f"id: {first['samples'][1]['id']}\nevent: sample\n")
    assert json.loads(events[0].split("data: ", 1)[1])["action"] == "fail"
    assert events[1].startswith("event: deployment\n")
    assert events[-1].startswith("event: end")


def test_controls_need_a_valid_token_and_are_audited_with_its_actor(
    url: str, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = Tokens({TOKEN: "ada"})
    with _client(url, monkeypatch, tokens) as client:
        assert client.post("/api/environments/prod/pause").status_code == 401
        refused = client.post(
            "/api/environments/prod/pause", headers={"Authorization": "Bearer wrong-token"}
        )
        assert refused.status_code == 403
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        paused = client.post("/api/environments/prod/pause", headers=bearer, json={})
        assert paused.status_code == 200, paused.text
        assert paused.json()["deployment"] == seeded["running"].id
        unknown_env = client.post("/api/environments/nowhere/pause", headers=bearer)
        assert unknown_env.status_code == 400
        assert client.post("/api/environments/prod/explode", headers=bearer).status_code == 400
        approve = client.post(
            "/api/environments/prod/approve", headers=bearer, json={"release": "2.0"}
        )
        assert approve.status_code == 200
        assert approve.json()["approved_by"] == "ada (ui)"
        missing = client.post("/api/environments/prod/approve", headers=bearer, json={})
        assert missing.status_code == 400
    with open_ledger(url) as ledger:
        events = {(e.action, e.actor, e.outcome.value) for e in ledger.audit_events()}
    assert ("pause", "ada (ui)", "ok") in events
    assert ("approve", "ada (ui)", "ok") in events
    assert ("pause", "unknown token (ui)", "denied") in events


def test_without_a_token_file_every_control_is_refused(
    url: str, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    del seeded
    with _client(url, monkeypatch) as client:
        for action in ("pause", "resume", "promote-canary", "abort", "rollback", "approve"):
            response = client.post(
                f"/api/environments/prod/{action}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert response.status_code == 403, action
            assert response.json()["error"] == "this dashboard is read-only"


def test_token_files_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# who may act\nada:{TOKEN}\n\n{TOKEN}x\n")
    os.chmod(path, 0o600)
    tokens = load_tokens(path)
    assert tokens.actor(TOKEN) == "ada"
    assert tokens.actor(TOKEN + "x") == "ui"
    assert tokens.actor("nope") is None
    os.chmod(path, 0o644)
    with pytest.raises(UsageError, match="can be read by others"):
        load_tokens(path)
    os.chmod(path, 0o600)
    path.write_text("short\n")
    with pytest.raises(UsageError, match="at least 16 characters"):
        load_tokens(path)
    with pytest.raises(UsageError, match="cannot read the token file"):
        load_tokens(tmp_path / "missing")
