from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from dockroll.devenv.engine import engine_status, ensure_engine, stop_engine
from dockroll.devenv.system import CommandResult
from dockroll.errors import EngineUnavailable
from dockroll.events import Progress
from tests.unit.devenv.fakes import FakeSystem


def test_a_running_engine_is_used_as_is(system: FakeSystem, root: Path) -> None:
    report = ensure_engine(system, root=root)

    assert report.up
    assert report.detail == "already running"
    assert not report.changed
    assert report.facts["version"] == "20.10.24"
    assert system.spawned == []
    assert system.calls == []


def test_dead_docker_host_gives_a_clear_error_and_starts_nothing(
    system: FakeSystem, root: Path
) -> None:
    system.engine_version = None
    system.environ["DOCKER_HOST"] = "unix:///tmp/nothing-here.sock"

    with pytest.raises(EngineUnavailable) as caught:
        ensure_engine(system, root=root)

    assert "DOCKER_HOST=unix:///tmp/nothing-here.sock" in str(caught.value)
    assert "unset DOCKER_HOST" in str(caught.value)
    assert caught.value.exit_code == 3
    assert system.spawned == []


def test_without_root_says_what_to_start(system: FakeSystem, root: Path) -> None:
    system.engine_version = None
    system.root = False
    system.binaries.add("dockerd")

    with pytest.raises(EngineUnavailable) as caught:
        ensure_engine(system, root=root)

    assert "Docker Desktop" in str(caught.value)
    assert "docker.io" in str(caught.value)
    assert system.spawned == []


def test_root_without_apt_or_dockerd_says_what_to_install(system: FakeSystem, root: Path) -> None:
    system.engine_version = None
    system.binaries = {"docker"}

    with pytest.raises(EngineUnavailable, match="not installed"):
        ensure_engine(system, root=root)


def test_root_installs_docker_io_starts_dockerd_and_records_it(
    system: FakeSystem, root: Path
) -> None:
    system.engine_version = None

    def installed(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("apt-get", "install"):
            system.binaries.add("dockerd")
        return None

    def answer_after_start(argv: tuple[str, ...], pid: int) -> None:
        system.engine_version = "20.10.24"

    system.handlers.append(installed)
    system.on_spawn = answer_after_start
    events: list[Progress] = []

    report = ensure_engine(system, root=root, progress=events.append)

    assert system.ran("apt-get", "update")
    install = system.ran("apt-get", "install")
    assert install
    assert "docker.io" in install[0]
    (argv, log), *_ = system.spawned
    assert argv == ("dockerd",)
    assert log == root / "logs" / "dockerd.log"
    assert report.detail == "started"
    assert report.changed
    recorded = json.loads((root / "devenv.json").read_text())
    assert recorded["engine"]["pid"] == 4242
    assert any("starting dockerd" in e.message for e in events)


def test_a_slow_dockerd_is_waited_for_never_doubled(system: FakeSystem, root: Path) -> None:
    system.engine_version = None
    system.processes[77] = "/usr/sbin/dockerd"
    probes = iter([None, None, None, "20.10.24"])

    original = system.probe_engine

    def slow_probe(timeout: float):  # type: ignore[no-untyped-def]
        system.engine_version = next(probes, "20.10.24")
        return original(timeout)

    system.probe_engine = slow_probe  # type: ignore[method-assign]

    report = ensure_engine(system, root=root)

    assert report.up
    assert report.detail == "already running"
    assert system.spawned == []


def test_a_dockerd_that_never_answers_is_reported_not_doubled(
    system: FakeSystem, root: Path
) -> None:
    system.engine_version = None
    system.processes[77] = "/usr/sbin/dockerd"

    with pytest.raises(EngineUnavailable, match="does not start a second"):
        ensure_engine(system, root=root, wait=5)

    assert system.spawned == []


def test_a_dockerd_that_dies_reports_its_log(system: FakeSystem, root: Path) -> None:
    system.engine_version = None
    system.binaries.add("dockerd")

    def crash(argv: tuple[str, ...], pid: int) -> None:
        del system.processes[pid]
        (root / "logs" / "dockerd.log").write_text("failed to start daemon: no cgroups\n")

    (root / "logs").mkdir()
    system.on_spawn = crash

    with pytest.raises(EngineUnavailable) as caught:
        ensure_engine(system, root=root, wait=60)

    assert "exited" in str(caught.value)
    assert "no cgroups" in str(caught.value)
    assert system.now < 1010, "gave up at once instead of waiting out the deadline"


def test_status_reports_down_without_side_effects(system: FakeSystem) -> None:
    system.engine_version = None

    report = engine_status(system)

    assert not report.up
    assert "connection refused" in report.detail
    assert system.calls == []
    assert system.spawned == []


def test_stop_leaves_an_engine_dockroll_did_not_start(system: FakeSystem, root: Path) -> None:
    system.processes[77] = "/usr/sbin/dockerd"

    report = stop_engine(system, root=root)

    assert report.up
    assert "not started by dockroll" in report.detail
    assert system.signals == []


def test_stop_terminates_the_dockerd_dockroll_started(system: FakeSystem, root: Path) -> None:
    system.processes[4242] = "dockerd"
    (root / "devenv.json").write_text(json.dumps({"engine": {"pid": 4242}}))

    report = stop_engine(system, root=root)

    assert system.signals == [(4242, signal.SIGTERM)]
    assert report.detail == "stopped"
    assert "engine" not in json.loads((root / "devenv.json").read_text())
