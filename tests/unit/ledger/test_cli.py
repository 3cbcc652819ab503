"""``dockroll releases`` and ``dockroll history`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll.cli.app import main
from dockroll.ledger import LEDGER_URL_ENV, DeploymentKind, DeploymentStatus, open_ledger
from tests.unit.ledger.conftest import TickingClock, add_release


@pytest.fixture
def ledger_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv(LEDGER_URL_ENV, url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # keep table cells on one line for the assertions
    with open_ledger(url, actor="Ada <ada@example.org>", clock=TickingClock()) as ledger:
        one = add_release(ledger, "1.0.0", git_sha="abc1234def")
        two = add_release(ledger, "2.0.0")
        ledger.record_promotion(one, from_env="dev", to_env="prod", notes="first")
        ledger.finish_deployment(
            ledger.start_deployment(two, "prod", strategy="blue-green"),
            DeploymentStatus.ROLLED_BACK,
            message="health checks failed",
        )
        ledger.finish_deployment(
            ledger.start_deployment(
                one, "prod", strategy="blue-green", kind=DeploymentKind.ROLLBACK
            ),
            DeploymentStatus.SUCCEEDED,
        )
        ledger.start_deployment(two, "dev", strategy="recreate")
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("ledger_url")
def test_releases_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "releases", "--service", "web")
    assert code == 0
    assert "releases of web" in out
    assert out.index("2.0.0") < out.index("1.0.0")
    assert "abc1234def" in out
    assert "Ada" in out


@pytest.mark.usefixtures("ledger_url")
def test_releases_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", "releases", "-s", "web", "--limit", "1")
    assert code == 0
    data = json.loads(out)
    assert data["service"] == "web"
    assert [r["version"] for r in data["releases"]] == ["2.0.0"]
    assert data["releases"][0]["digest"].startswith("sha256:")


@pytest.mark.usefixtures("ledger_url")
def test_history_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", "-s", "web", "--env", "prod")
    assert code == 0
    assert "history of web in prod" in out
    assert "rollback" in out
    assert "rolled_back" in out
    assert "health checks" in out
    assert "promote from" in out
    assert "recreate" not in out  # dev stays out


@pytest.mark.usefixtures("ledger_url")
def test_history_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", "history", "-s", "web", "--limit", "3")
    assert code == 0
    data = json.loads(out)
    assert (data["service"], data["env"]) == ("web", None)
    assert [(e["kind"], e["env"]) for e in data["history"]] == [
        ("deployment", "dev"),
        ("rollback", "prod"),
        ("deployment", "prod"),
    ]


@pytest.mark.usefixtures("ledger_url")
def test_the_service_comes_from_dockroll_yml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dockroll.yml").write_text(
        "service: web\nimage: 127.0.0.1:5000/team/web\n", encoding="utf-8"
    )
    code, out, err = run(capsys, "--json", "releases")
    assert code == 0, err
    assert json.loads(out)["service"] == "web"


@pytest.mark.usefixtures("ledger_url")
def test_nothing_recorded_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "history", "-s", "api")
    assert code == 0
    assert "no promotions or deployments of api" in out
    code, out, _ = run(capsys, "releases", "-s", "api")
    assert code == 0
    assert "no releases of api" in out


def test_an_unreachable_ledger_exits_8(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(LEDGER_URL_ENV, "postgresql+psycopg://u:secret@127.0.0.1:9/x")
    code, _, err = run(capsys, "releases", "-s", "web")
    assert code == 8
    assert "secret" not in err
