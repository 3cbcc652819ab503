"""DORA metrics from a seeded ledger, with exact expected numbers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dockroll.cli.app import main
from dockroll.errors import UsageError
from dockroll.ledger import (
    LEDGER_URL_ENV,
    DeploymentKind,
    DeploymentStatus,
    Ledger,
    Release,
    open_ledger,
)
from dockroll.pipeline.push import commit_time
from dockroll.pipeline.report import dora_report, duration_text
from tests.unit.ledger.conftest import add_release

# Recent enough for the command, which reports up to now; library calls pass until=T.
T = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)


def _deploy(
    ledger: Ledger,
    release: Release,
    env: str,
    start: datetime,
    took: timedelta | None,
    *,
    status: DeploymentStatus = DeploymentStatus.SUCCEEDED,
    kind: DeploymentKind = DeploymentKind.DEPLOY,
) -> None:
    deployment = ledger.start_deployment(release, env, strategy="canary", kind=kind, at=start)
    if took is not None:
        ledger.finish_deployment(deployment, status, at=start + took)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", actor="ada") as opened:
        ages = {"1.0": 6 * DAY + 2 * HOUR, "1.1": 5 * DAY + HOUR, "1.2": 4 * DAY + 30 * MINUTE}
        web = {v: add_release(opened, v, committed_at=T - ago) for v, ago in ages.items()}
        api = add_release(opened, "2.0", service="api")
        old = add_release(opened, "0.9")
        new = add_release(opened, "1.3")
        _deploy(opened, old, "prod", T - 8 * DAY, 5 * MINUTE)  # outside a 7-day window
        _deploy(opened, web["1.0"], "dev", T - 6 * DAY - HOUR, MINUTE)
        _deploy(opened, web["1.0"], "prod", T - 6 * DAY, 10 * MINUTE)
        _deploy(
            opened, web["1.1"], "prod", T - 5 * DAY, 5 * MINUTE, status=DeploymentStatus.ROLLED_BACK
        )
        _deploy(opened, web["1.2"], "prod", T - 4 * DAY, 10 * MINUTE)
        _deploy(opened, web["1.0"], "prod", T - 4 * DAY + HOUR, 2 * MINUTE,
                kind=DeploymentKind.ROLLBACK)  # fmt: skip
        _deploy(opened, api, "prod", T - 3 * DAY, MINUTE)
        _deploy(opened, api, "prod", T - 2 * DAY, MINUTE)
        _deploy(opened, new, "prod", T - HOUR, None)  # still running
        yield opened


def test_seven_days_of_prod_and_dev(ledger: Ledger) -> None:
    report = dora_report(ledger, days=7, until=T)
    assert report.since == T - 7 * DAY
    prod, dev = (next(e for e in report.environments if e.env == n) for n in ("prod", "dev"))
    assert [e.env for e in report.environments] == ["dev", "prod"]
    # 1.0, 1.2 and api 2.0 twice succeeded; 1.1 was rolled back; 1.3 still runs.
    assert prod.deployments == 4
    assert prod.per_day == 0.571
    assert (prod.changes, prod.failed_changes, prod.change_failure_rate) == (5, 2, 0.4)
    # 1.0: committed 2 h before its deploy began, running 10 min later; 1.2: 30 + 10 min.
    assert (prod.lead_time_seconds, prod.lead_times) == ((7800 + 2400) / 2, 2)
    # 1.1 rolled back 5 min after it began; 1.2 undone 52 min after it went live.
    assert (prod.time_to_restore_seconds, prod.restores) == ((300 + 3120) / 2, 2)
    assert dev.as_dict() == {
        "env": "dev",
        "deployments": 1,
        "per_day": 0.143,
        "changes": 1,
        "failed_changes": 0,
        "change_failure_rate": 0.0,
        "lead_time_seconds": 3660.0,
        "lead_times": 1,
        "time_to_restore_seconds": None,
        "restores": 0,
    }


def test_thirty_days_take_in_the_older_deploy_and_filters_narrow(ledger: Ledger) -> None:
    (prod,) = dora_report(ledger, days=30, until=T, environments=["prod"]).environments
    assert (prod.deployments, prod.per_day, prod.changes) == (5, 0.167, 6)
    assert prod.change_failure_rate == round(2 / 6, 4)
    (api,) = dora_report(ledger, days=7, until=T, environments=["prod"], service="api").environments
    assert (api.deployments, api.failed_changes, api.lead_time_seconds) == (2, 0, None)
    (quiet,) = dora_report(ledger, days=7, until=T, environments=["staging"]).environments
    assert (quiet.deployments, quiet.change_failure_rate) == (0, None)
    with pytest.raises(UsageError, match="7, 30 or 90 days, not 5"):
        dora_report(ledger, days=5, until=T)


def test_the_command_prints_json_and_a_table(
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    del ledger
    monkeypatch.setenv(LEDGER_URL_ENV, f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--days", "90", "--env", "dev", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["days"] == 90
    assert [e["env"] for e in data["environments"]] == ["dev"]
    assert data["environments"][0]["lead_time_seconds"] == 3660.0
    assert main(["report", "--days", "90", "--env", "dev"]) == 0
    assert "1h 1m (1)" in capsys.readouterr().out
    assert main(["report", "--days", "3"]) == 2
    assert "7, 30 or 90 days" in capsys.readouterr().err


def test_durations_read_as_people_say_them() -> None:
    assert [duration_text(s) for s in (None, 0, 42, 95, 3660, 90061)] == [
        "-", "0s", "42s", "1m 35s", "1h 1m", "1d 1h",
    ]  # fmt: skip


def test_the_commit_time_comes_from_gitlab_ci_or_the_git_checkout(tmp_path: Path) -> None:
    def git(*args: str, **env: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        )  # fmt: skip
        return done.stdout.strip()

    git("init", "-q")
    stamp = "2026-03-01T10:20:30+01:00"
    identity = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
                "GIT_COMMITTER_EMAIL": "a@b", "GIT_COMMITTER_DATE": stamp}  # fmt: skip
    git("commit", "-q", "--allow-empty", "-m", "x", **identity)
    sha = git("rev-parse", "HEAD")
    assert commit_time(sha, cwd=tmp_path, env={}) == datetime.fromisoformat(stamp)
    assert commit_time("0" * 40, cwd=tmp_path, env={}) is None
    assert commit_time("", cwd=tmp_path, env={}) is None
    gitlab = {"CI_COMMIT_SHA": sha, "CI_COMMIT_TIMESTAMP": "2026-02-01T00:00:00+00:00"}
    assert commit_time(sha[:7], cwd=tmp_path, env=gitlab) == datetime(2026, 2, 1, tzinfo=UTC)
