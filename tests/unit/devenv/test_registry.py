from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from dockroll.devenv.registry import (
    default_data_dir,
    ensure_registry,
    registry_config,
    registry_status,
    start_registry,
    stop_registry,
    write_htpasswd,
)
from dockroll.devenv.system import CommandResult
from dockroll.errors import DevEnvError
from tests.unit.devenv.fakes import FakeSystem, fail, ok

V2 = "http://127.0.0.1:{port}/v2/"


def answer_when_spawned(system: FakeSystem, port: int, status: int = 200) -> None:
    def spawned(argv: tuple[str, ...], pid: int) -> None:
        system.http[V2.format(port=port)] = status

    system.on_spawn = spawned


def test_config_enables_deletes_and_listens_where_asked() -> None:
    config = yaml.safe_load(
        registry_config(listen="127.0.0.1:5001", storage_dir="/data", secret="s3cret")
    )

    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["filesystem"]["rootdirectory"] == "/data"
    assert config["http"]["addr"] == "127.0.0.1:5001"
    assert config["http"]["secret"] == "s3cret"
    assert "auth" not in config


def test_config_with_htpasswd_turns_on_basic_auth() -> None:
    config = yaml.safe_load(
        registry_config(listen=":5000", storage_dir="/d", secret="x", htpasswd="/auth/htpasswd")
    )

    assert config["auth"]["htpasswd"]["path"] == "/auth/htpasswd"
    assert config["auth"]["htpasswd"]["realm"]


def test_default_data_dir_per_port(root: Path) -> None:
    assert default_data_dir(5000, root) == root / "registry"
    assert default_data_dir(5001, root) == root / "registry-5001"


def test_a_registry_that_answers_is_reused(system: FakeSystem, root: Path) -> None:
    system.http[V2.format(port=5000)] = 200
    system.handlers.append(lambda argv: fail(argv, "No such object") if "inspect" in argv else None)

    report = ensure_registry(system=system, root=root)

    assert report.up
    assert report.detail == "already running (not started by dockroll)"
    assert report.facts["address"] == "127.0.0.1:5000"
    assert system.spawned == []


def test_something_else_on_the_port_is_an_error(system: FakeSystem, root: Path) -> None:
    system.http[V2.format(port=5000)] = 404

    with pytest.raises(DevEnvError, match="not a registry"):
        start_registry(system=system, root=root)


def test_starts_debian_docker_registry_detached(system: FakeSystem, root: Path) -> None:
    system.binaries.add("docker-registry")
    answer_when_spawned(system, 5000)

    report = ensure_registry(system=system, root=root)

    (argv, log), *_ = system.spawned
    data = root / "registry"
    assert argv == ("/usr/bin/docker-registry", "serve", str(data / "config.yml"))
    assert log == data / "registry.log"
    assert (data / "registry.pid").read_text().strip() == "4242"
    config = yaml.safe_load((data / "config.yml").read_text())
    assert config["http"]["addr"] == "127.0.0.1:5000"
    assert config["storage"]["filesystem"]["rootdirectory"] == str(data / "storage")
    assert config["storage"]["delete"]["enabled"] is True
    assert report.changed
    assert report.detail == "started (docker-registry, pid 4242)"


def test_installs_docker_registry_when_root_and_missing(system: FakeSystem, root: Path) -> None:
    def install(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("apt-get", "install"):
            system.binaries.add("docker-registry")
        return None

    system.handlers.append(install)
    answer_when_spawned(system, 5000)

    ensure_registry(system=system, root=root)

    assert any("docker-registry" in call for call in system.ran("apt-get", "install"))
    assert system.spawned


def test_our_running_registry_is_recognised_and_stoppable(system: FakeSystem, root: Path) -> None:
    data = root / "registry"
    data.mkdir()
    (data / "registry.pid").write_text("900\n")
    system.processes[900] = "/usr/bin/docker-registry serve config.yml"
    system.http[V2.format(port=5000)] = 200

    status = registry_status(system=system, root=root)
    stopped = stop_registry(system=system, root=root)

    assert status.detail == "running (docker-registry, pid 900)"
    assert system.signals == [(900, signal.SIGTERM)]
    assert stopped.detail == "stopped"
    assert not (data / "registry.pid").exists()


def test_a_stale_pid_file_is_not_trusted(system: FakeSystem, root: Path) -> None:
    data = root / "registry"
    data.mkdir()
    (data / "registry.pid").write_text("900\n")
    system.processes[900] = "/usr/bin/vim notes.txt"  # the pid was reused
    system.http[V2.format(port=5000)] = 200
    system.handlers.append(lambda argv: fail(argv) if "inspect" in argv else None)

    report = stop_registry(system=system, root=root)

    assert report.up
    assert "not started by dockroll" in report.detail
    assert system.signals == []


def test_second_instance_with_htpasswd_on_another_port(
    system: FakeSystem, root: Path, tmp_path: Path
) -> None:
    system.binaries.add("docker-registry")
    answer_when_spawned(system, 5001, status=401)
    users = tmp_path / "users.htpasswd"
    users.write_text("ci:$2y$05$abc\n")

    instance = start_registry(
        port=5001, data_dir=tmp_path / "auth-registry", htpasswd=users, system=system
    )

    assert instance.address == "127.0.0.1:5001"
    assert instance.started
    assert instance.kind == "process"
    config = yaml.safe_load((tmp_path / "auth-registry" / "config.yml").read_text())
    assert config["http"]["addr"] == "127.0.0.1:5001"
    assert config["auth"]["htpasswd"]["path"] == str(tmp_path / "auth-registry" / "htpasswd")
    assert (tmp_path / "auth-registry" / "htpasswd").read_text() == users.read_text()
    assert instance.stop()
    assert system.signals == [(4242, signal.SIGTERM)]


def test_falls_back_to_the_registry_image(system: FakeSystem, root: Path) -> None:
    system.root = False  # cannot install docker-registry

    def docker(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("docker", "run"):
            system.http[V2.format(port=5000)] = 200
        return None

    system.handlers.append(docker)

    report = ensure_registry(system=system, root=root)

    (run,) = system.ran("docker", "run")
    assert "127.0.0.1:5000:5000" in run
    assert f"{root / 'registry' / 'storage'}:/var/lib/registry" in run
    assert run[-1] == "registry:2"
    assert report.facts["kind"] == "container"
    config = yaml.safe_load((root / "registry" / "config.yml").read_text())
    assert config["http"]["addr"] == ":5000"


def test_nothing_works_gives_what_to_install(system: FakeSystem, root: Path) -> None:
    system.root = False
    system.handlers.append(lambda argv: fail(argv, "no such host") if argv[0] == "docker" else None)

    with pytest.raises(DevEnvError) as caught:
        start_registry(system=system, root=root)

    message = str(caught.value)
    assert "apt-get install docker-registry" in message
    assert "registry:2" in message
    assert system.spawned == []


def test_a_registry_that_exits_reports_its_log(system: FakeSystem, root: Path) -> None:
    system.binaries.add("docker-registry")

    def crash(argv: tuple[str, ...], pid: int) -> None:
        del system.processes[pid]
        (root / "registry" / "registry.log").write_text("listen tcp: address already in use\n")

    system.on_spawn = crash

    with pytest.raises(DevEnvError, match="address already in use"):
        start_registry(system=system, root=root)

    assert not (root / "registry" / "registry.pid").exists()


def test_write_htpasswd_uses_bcrypt(system: FakeSystem, tmp_path: Path) -> None:
    system.binaries.add("htpasswd")
    system.handlers.append(
        lambda argv: ok(argv, f"{argv[2]}:$2y$05$hash\n") if argv[0] == "htpasswd" else None
    )

    path = write_htpasswd(tmp_path / "h", {"ci": "pw"}, system=system)

    assert system.ran("htpasswd", "-Bbn", "ci", "pw")
    assert path.read_text() == "ci:$2y$05$hash\n"
