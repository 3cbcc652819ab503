from __future__ import annotations

import pytest

from dockroll import devenv
from dockroll.devenv.system import CommandResult
from dockroll.errors import DevEnvError
from dockroll.events import Progress
from tests.unit.devenv.fakes import FakeSystem, fail

BENCH_PEERS = {"docker-compose": "docker-compose", "skopeo": "skopeo"}


def installs(system: FakeSystem, provides: dict[str, set[str]]) -> None:
    """``apt-get install`` of a package puts its commands on the fake PATH."""

    def handler(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("apt-get", "install"):
            for package in argv[2:]:
                system.binaries |= provides.get(package, set())
        return None

    system.handlers.append(handler)


def test_present_commands_install_nothing(system: FakeSystem) -> None:
    system.binaries |= {"docker-compose", "skopeo"}

    installed = devenv.ensure_commands(BENCH_PEERS, system=system)

    assert installed == ()
    assert system.ran("apt-get") == []


def test_missing_commands_are_installed_in_one_apt_get_after_an_update(
    system: FakeSystem,
) -> None:
    installs(system, {"docker-compose": {"docker-compose"}, "skopeo": {"skopeo"}})
    said: list[Progress] = []

    installed = devenv.ensure_commands(BENCH_PEERS, system=system, progress=said.append)

    assert installed == ("docker-compose", "skopeo")
    assert system.ran("apt-get", "update") == [("apt-get", "update")]
    assert system.ran("apt-get", "install") == [
        ("apt-get", "install", "-y", "--no-install-recommends", "docker-compose", "skopeo")
    ]
    assert system.calls.index(("apt-get", "update")) < system.calls.index(
        system.ran("apt-get", "install")[0]
    )
    headlines = [event.message for event in said if not event.detail]
    assert headlines[0] == "installing docker-compose, skopeo"
    assert "apt-get install docker-compose skopeo" in headlines


def test_a_second_call_installs_nothing_more(system: FakeSystem) -> None:
    installs(system, {"skopeo": {"skopeo"}})
    devenv.ensure_commands({"skopeo": "skopeo"}, system=system)
    calls = len(system.calls)

    again = devenv.ensure_commands({"skopeo": "skopeo"}, system=system)

    assert again == ()
    assert system.calls[calls:] == []


def test_only_the_missing_command_s_package_is_installed(system: FakeSystem) -> None:
    system.binaries.add("skopeo")
    installs(system, {"docker-compose": {"docker-compose"}})

    installed = devenv.ensure_commands(BENCH_PEERS, system=system)

    assert installed == ("docker-compose",)
    assert [call[4:] for call in system.ran("apt-get", "install")] == [("docker-compose",)]


def test_two_commands_of_one_package_install_it_once(system: FakeSystem) -> None:
    installs(system, {"apache2-utils": {"htpasswd", "ab"}})
    said: list[Progress] = []

    installed = devenv.ensure_commands(
        {"htpasswd": "apache2-utils", "ab": "apache2-utils"}, system=system, progress=said.append
    )

    assert installed == ("apache2-utils",)
    assert said[0].message == "installing apache2-utils (for htpasswd, ab)"
    assert [call[4:] for call in system.ran("apt-get", "install")] == [("apache2-utils",)]


def test_without_root_it_says_what_to_install_and_installs_nothing(system: FakeSystem) -> None:
    system.root = False

    with pytest.raises(DevEnvError) as caught:
        devenv.ensure_commands({"docker-compose": "docker-compose"}, system=system)

    assert caught.value.exit_code == 7
    assert caught.value.message == (
        "`docker-compose` (package docker-compose) is not installed, "
        "and dockroll cannot install it here (not root)"
    )
    assert caught.value.hint == (
        "install it (Debian/Ubuntu: `apt-get install docker-compose`), "
        "or rerun as root to let dockroll install it"
    )
    assert system.ran("apt-get") == []


def test_without_apt_get_it_names_every_missing_command(system: FakeSystem) -> None:
    system.binaries.discard("apt-get")

    with pytest.raises(DevEnvError) as caught:
        devenv.ensure_commands(BENCH_PEERS, system=system)

    message = str(caught.value)
    assert "`docker-compose` (package docker-compose), `skopeo` (package skopeo) are" in message
    assert "cannot install them here (apt-get is not available)" in message
    assert (
        caught.value.hint == "install them (Debian/Ubuntu: `apt-get install docker-compose skopeo`)"
    )
    assert system.calls == []


def test_a_failed_install_is_a_dev_env_error(system: FakeSystem) -> None:
    system.handlers.append(
        lambda argv: (
            fail(argv, "E: Unable to locate package skopeo")
            if argv[:2] == ("apt-get", "install")
            else None
        )
    )

    with pytest.raises(DevEnvError) as caught:
        devenv.ensure_commands({"skopeo": "skopeo"}, system=system)

    assert "could not install skopeo" in caught.value.message
    assert "Unable to locate package skopeo" in caught.value.message


def test_a_package_that_does_not_bring_the_command_is_reported(system: FakeSystem) -> None:
    with pytest.raises(DevEnvError) as caught:
        devenv.ensure_commands({"skopeo": "skopeo"}, system=system)

    assert caught.value.message == (
        "`skopeo` (package skopeo) is still not on the PATH after `apt-get install skopeo`"
    )
