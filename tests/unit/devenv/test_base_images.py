from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll.devenv.base_images import HAPROXY, PYTHON, base_image_status, ensure_base_image
from dockroll.devenv.system import CommandResult
from dockroll.errors import DevEnvError
from tests.unit.devenv.fakes import FakeSystem, fail


def images(system: FakeSystem, present: set[str], pullable: frozenset[str] = frozenset()) -> None:
    """Script `docker image inspect/pull/import/build` over a set of present images."""

    def docker(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:3] == ("docker", "image", "inspect"):
            return None if argv[3] in present else fail(argv, "No such image")
        if argv[:2] == ("docker", "pull"):
            if argv[2] in pullable:
                present.add(argv[2])
                return None
            return fail(argv, "dial tcp: lookup registry-1.docker.io: no such host")
        if "import" in argv:
            present.add(argv[-1])
        if argv[:2] == ("docker", "build"):
            present.add(argv[argv.index("-t") + 1])
        return None

    system.handlers.append(docker)


def test_official_image_present_is_used(system: FakeSystem, root: Path) -> None:
    images(system, {"python:3.11-slim"})

    (report,) = ensure_base_image(PYTHON, system=system, root=root)

    assert report.detail == "present"
    assert report.facts["image"] == "python:3.11-slim"
    assert not system.ran("docker", "pull")


def test_substitute_present_is_reused_and_recorded(system: FakeSystem, root: Path) -> None:
    images(system, {"dockroll.local/python:3.11-slim"})

    (report,) = ensure_base_image("python:3.11-slim", system=system, root=root)

    assert report.up
    assert not report.changed
    assert report.facts["image"] == "dockroll.local/python:3.11-slim"
    recorded = json.loads((root / "base-images.json").read_text())
    assert recorded == {"python:3.11-slim": "dockroll.local/python:3.11-slim"}
    assert not system.ran("docker", "pull")


def test_pullable_official_image_is_pulled(system: FakeSystem, root: Path) -> None:
    images(system, set(), pullable={"python:3.11-slim"})

    (report,) = ensure_base_image(PYTHON, system=system, root=root)

    assert report.detail == "pulled"
    assert report.changed
    assert not system.ran("debootstrap")


def test_offline_builds_python_with_debootstrap_and_import(system: FakeSystem, root: Path) -> None:
    images(system, set())
    system.binaries.add("debootstrap")

    (report,) = ensure_base_image(PYTHON, system=system, root=root)

    (boot,) = system.ran("debootstrap")
    assert boot[1] == "--variant=minbase"
    assert "python3" in boot[2]
    assert "python3-venv" in boot[2]
    assert "ca-certificates" in boot[2]
    assert boot[3] == "bookworm"
    rootfs = Path(boot[4])
    assert rootfs.is_relative_to(root / "tmp")
    assert not rootfs.exists(), "the root filesystem is removed after the import"
    (pipe,) = system.ran("tar")
    assert pipe[:3] == ("tar", "-C", str(rootfs))
    importing = pipe[pipe.index("|") + 1 :]
    assert importing[:2] == ("docker", "import")
    assert 'CMD ["python3"]' in importing
    assert "ENV LANG=C.UTF-8" in importing
    assert importing[-1] == "dockroll.local/python:3.11-slim"
    assert report.detail.startswith("built in ")
    assert json.loads((root / "base-images.json").read_text()) == {
        "python:3.11-slim": "dockroll.local/python:3.11-slim"
    }


def test_debootstrap_is_installed_when_missing(system: FakeSystem, root: Path) -> None:
    images(system, set())

    def install(argv: tuple[str, ...]) -> CommandResult | None:
        if argv[:2] == ("apt-get", "install"):
            system.binaries.add("debootstrap")
        return None

    system.handlers.insert(0, install)

    ensure_base_image(PYTHON, system=system, root=root)

    assert system.ran("debootstrap")
    assert any("debootstrap" in call for call in system.ran("apt-get", "install"))


def test_without_root_and_without_pull_the_error_says_what_to_do(
    system: FakeSystem, root: Path
) -> None:
    images(system, set())
    system.root = False

    with pytest.raises(DevEnvError) as caught:
        ensure_base_image(PYTHON, system=system, root=root)

    assert "docker pull python:3.11-slim" in str(caught.value)
    assert not system.ran("debootstrap")


def test_haproxy_builds_on_the_debian_substitute(system: FakeSystem, root: Path) -> None:
    images(system, set())
    system.binaries.add("debootstrap")

    reports = ensure_base_image(HAPROXY, system=system, root=root, required=False)

    assert [r.component for r in reports] == ["image debian:bookworm-slim", "image haproxy:2.6"]
    assert all(not r.required for r in reports)
    (build,) = system.ran("docker", "build")
    assert "BASE=dockroll.local/debian:bookworm-slim" in build
    assert build[build.index("-t") + 1] == "dockroll.local/haproxy:2.6"
    recorded = json.loads((root / "base-images.json").read_text())
    assert recorded["haproxy:2.6"] == "dockroll.local/haproxy:2.6"
    assert recorded["debian:bookworm-slim"] == "dockroll.local/debian:bookworm-slim"


def test_haproxy_dockerfile_follows_the_official_conventions() -> None:
    assert HAPROXY.dockerfile is not None
    assert 'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' in HAPROXY.dockerfile
    assert "STOPSIGNAL SIGUSR1" in HAPROXY.dockerfile
    assert "USER haproxy" in HAPROXY.dockerfile
    assert "--uid 99" in HAPROXY.dockerfile


def test_status_never_pulls_or_builds(system: FakeSystem) -> None:
    images(system, set())

    report = base_image_status(PYTHON, system=system)

    assert not report.up
    assert not system.ran("docker", "pull")
    assert not system.ran("debootstrap")


def test_unknown_image_is_a_clear_error(system: FakeSystem, root: Path) -> None:
    with pytest.raises(DevEnvError, match="no recipe"):
        ensure_base_image("node:20", system=system, root=root)
