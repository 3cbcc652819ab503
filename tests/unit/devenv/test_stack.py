from __future__ import annotations

import json
from pathlib import Path

import pytest

import dockroll.cli.app as cli
import dockroll.cli.commands.dev  # noqa: F401  # registers `dev` on the app
from dockroll import devenv
from dockroll.devenv.system import CommandResult
from tests.unit.devenv.fakes import FakeSystem, fail

V2 = "http://127.0.0.1:5000/v2/"


def everything_up(system: FakeSystem, root: Path) -> None:
    data = root / "registry"
    data.mkdir(parents=True)
    (data / "registry.pid").write_text("900\n")
    system.processes[900] = "/usr/bin/docker-registry serve config.yml"
    system.http[V2] = 200

    def docker(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:3] == ("docker", "image", "inspect") and argv[3].startswith("dockroll.local/"):
            return None
        if argv[0] in {"docker", "psql"}:
            return fail(argv, "no")
        return None

    system.handlers.append(docker)


def test_up_when_everything_runs_only_checks(system: FakeSystem, root: Path) -> None:
    everything_up(system, root)

    report = devenv.up(system=system, root=root)

    assert report.ready
    assert [c.component for c in report.components] == [
        "engine",
        "registry",
        "image python:3.11-slim",
    ]
    assert not any(c.changed for c in report.components)
    assert report.get("registry") is not None
    assert report.get("registry").detail == "already running"  # type: ignore[union-attr]
    assert system.spawned == []
    assert not system.ran("docker", "pull")


def test_status_changes_nothing_and_marks_optional_parts(system: FakeSystem, root: Path) -> None:
    everything_up(system, root)

    report = devenv.status(system=system, root=root)

    postgres = report.get("postgres")
    assert postgres is not None
    assert not postgres.up
    assert not postgres.required
    assert report.ready, "an optional component that is down does not make the stack unready"
    assert system.spawned == []
    assert system.signals == []


def test_down_stops_our_registry_and_leaves_the_engine(system: FakeSystem, root: Path) -> None:
    everything_up(system, root)

    report = devenv.down(system=system, root=root)

    assert report.get("registry").detail == "stopped"  # type: ignore[union-attr]
    assert report.get("engine").detail == "left running"  # type: ignore[union-attr]
    assert [pid for pid, _ in system.signals] == [900]


def test_report_json_shape(system: FakeSystem, root: Path) -> None:
    everything_up(system, root)

    document = json.loads(json.dumps(devenv.up(system=system, root=root).to_dict()))

    assert document["action"] == "up"
    assert document["ready"] is True
    registry = document["components"][1]
    assert registry["component"] == "registry"
    assert registry["state"] == "up"
    assert registry["facts"]["address"] == "127.0.0.1:5000"


@pytest.fixture
def only_dev_commands(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    # the other command modules are not under test here
    monkeypatch.setattr(cli, "_register_commands", lambda *_: None)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(root))


@pytest.mark.usefixtures("only_dev_commands")
def test_cli_without_an_engine_prints_the_reason_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # a real probe of a socket that does not exist: fast, safe, and no fake involved
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")

    code = cli.main(["dev", "up"])

    err = capsys.readouterr().err
    assert code == 3
    assert "no Docker engine answers at DOCKER_HOST=" in err
    assert "unset DOCKER_HOST" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("only_dev_commands")
def test_cli_status_json_and_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    system = FakeSystem(engine_version=None)
    system.handlers.append(lambda argv: fail(argv, "no"))
    monkeypatch.setattr(devenv.stack, "LocalSystem", lambda: system)

    code = cli.main(["--json", "dev", "status"])
    document = json.loads(capsys.readouterr().out)
    check = cli.main(["dev", "status", "--check"])
    err = capsys.readouterr().err

    assert code == 0
    assert document["action"] == "status"
    assert document["ready"] is False
    assert {c["component"]: c["state"] for c in document["components"]}["engine"] == "down"
    assert check == 7
    assert "not ready: engine, registry down" in err
