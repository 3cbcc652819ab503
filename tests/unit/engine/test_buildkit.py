"""Builder discovery and the build command line, with fake ``docker`` clients.

Each fake client is a small shell script in tmp_path that answers ``buildx
version`` and ``version`` the way a real client of some age does, records its
arguments and environment, and writes the ``--iidfile`` a real build writes.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from dockroll.engine import buildkit
from dockroll.engine.buildkit import BuilderCli, find_builder, run_build
from dockroll.engine.port import BuildRequest
from dockroll.errors import BuildError
from dockroll.events import Progress

IMAGE_ID = "sha256:" + "ab" * 32

_SCRIPT = """#!/bin/sh
log={log}
if [ "$1" = buildx ] && [ "$2" = version ]; then
    {buildx_version}
fi
if [ "$1" = version ]; then
    echo {version}
    exit 0
fi
printf '%s\\n' "$@" > "$log"
echo "DOCKER_BUILDKIT=${{DOCKER_BUILDKIT:-}}" > "$log.env"
echo "DOCKER_HOST=${{DOCKER_HOST:-}}" >> "$log.env"
i=1
while [ $i -le {lines} ]; do echo "#$i step $i"; i=$((i + 1)); done
[ {status} -eq 0 ] || exit {status}
while [ $# -gt 0 ]; do
    if [ "$1" = --iidfile ]; then {write_iid}; fi
    shift
done
exit 0
"""


def fake_client(
    directory: Path,
    *,
    version: str = "28.2.2",
    buildx: bool = False,
    lines: int = 3,
    status: int = 0,
    writes_iid: bool = True,
) -> Path:
    """A fake ``docker`` executable in ``directory``; its argv goes to ``argv.log``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "docker"
    log = directory / "argv.log"
    path.write_text(
        _SCRIPT.format(
            log=shlex.quote(str(log)),
            buildx_version=(
                'echo "github.com/docker/buildx v0.14.0"; exit 0'
                if buildx
                else "echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1"
            ),
            version=shlex.quote(version),
            lines=lines,
            status=status,
            write_iid=f'printf %s {IMAGE_ID} > "$2"' if writes_iid else ":",
        ),
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the machine's own /usr/bin/docker so only the fakes are candidates."""
    monkeypatch.setattr(buildkit, "_FALLBACK_CLIENTS", ())
    monkeypatch.delenv("DOCKROLL_DOCKER_CLI", raising=False)


def _on_path(monkeypatch: pytest.MonkeyPatch, *directories: Path) -> None:
    # Only the fakes: the real /bin and /usr/bin hold the machine's docker clients.
    monkeypatch.setenv("PATH", os.pathsep.join(str(d) for d in directories))


@pytest.mark.usefixtures("no_fallback")
def test_buildx_is_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = fake_client(tmp_path / "bin", buildx=True, version="20.10.24")
    _on_path(monkeypatch, tmp_path / "bin")

    builder = find_builder()

    assert builder == BuilderCli(str(client), "buildx")
    assert builder.command() == [str(client), "buildx", "build", "--load"]
    assert builder.env().get("DOCKER_BUILDKIT") == os.environ.get("DOCKER_BUILDKIT")


def test_buildx_on_a_later_candidate_beats_an_old_client_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKROLL_DOCKER_CLI", raising=False)
    fake_client(tmp_path / "old", version="20.10.24")
    with_buildx = fake_client(tmp_path / "new", version="28.2.2", buildx=True)
    monkeypatch.setattr(buildkit, "_FALLBACK_CLIENTS", (str(with_buildx),))
    _on_path(monkeypatch, tmp_path / "old")

    assert find_builder() == BuilderCli(str(with_buildx), "buildx")


@pytest.mark.usefixtures("no_fallback")
def test_an_old_client_builds_with_docker_buildkit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = fake_client(tmp_path / "bin", version="20.10.24+dfsg1")
    _on_path(monkeypatch, tmp_path / "bin")

    builder = find_builder()

    assert builder == BuilderCli(str(client), "buildkit")
    assert builder.command() == [str(client), "build"]
    assert builder.env()["DOCKER_BUILDKIT"] == "1"


def test_the_machines_old_client_is_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKROLL_DOCKER_CLI", raising=False)
    fake_client(tmp_path / "new", version="28.2.2")
    old = fake_client(tmp_path / "debian", version="20.10.24")
    monkeypatch.setattr(buildkit, "_FALLBACK_CLIENTS", (str(old),))
    _on_path(monkeypatch, tmp_path / "new")

    assert find_builder() == BuilderCli(str(old), "buildkit")


@pytest.mark.usefixtures("no_fallback")
def test_a_new_client_without_buildx_is_refused_with_an_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = fake_client(tmp_path / "bin", version="28.2.2")
    _on_path(monkeypatch, tmp_path / "bin")

    with pytest.raises(BuildError, match="no docker client here can build with BuildKit") as caught:
        find_builder()

    assert str(client) in caught.value.message
    assert caught.value.hint is not None
    assert "docker-buildx" in caught.value.hint
    assert "DOCKROLL_DOCKER_CLI" in caught.value.hint


@pytest.mark.usefixtures("no_fallback")
def test_no_client_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _on_path(monkeypatch, tmp_path)
    with pytest.raises(BuildError, match="no docker client on PATH"):
        find_builder()


def test_dockroll_docker_cli_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = fake_client(tmp_path / "bin", buildx=True)
    chosen = fake_client(tmp_path / "chosen", version="19.03.1")
    _on_path(monkeypatch, on_path.parent)
    monkeypatch.setenv("DOCKROLL_DOCKER_CLI", str(chosen))

    assert find_builder() == BuilderCli(str(chosen), "buildkit")


def test_dockroll_docker_cli_naming_nothing_is_a_build_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKROLL_DOCKER_CLI", str(tmp_path / "missing-docker"))
    with pytest.raises(BuildError, match="missing-docker"):
        find_builder()


# --- run_build -------------------------------------------------------------------------


def _request(tmp_path: Path, **overrides: object) -> BuildRequest:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    dockerfile = context / "Dockerfile"
    dockerfile.write_text("FROM scratch\n", encoding="utf-8")
    values: dict[str, object] = {
        "context": context,
        "dockerfile": dockerfile,
        "tags": ["127.0.0.1:5000/web:v1", "127.0.0.1:5000/web:latest"],
    }
    values.update(overrides)
    return BuildRequest(**values)  # type: ignore[arg-type]


def _argv(client: Path) -> list[str]:
    return (client.parent / "argv.log").read_text(encoding="utf-8").splitlines()


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_run_build_assembles_the_command_line(tmp_path: Path) -> None:
    client = fake_client(tmp_path / "bin", version="20.10.24")
    secret = tmp_path / "ca.pem"
    secret.write_text("cert", encoding="utf-8")
    request = _request(
        tmp_path,
        build_args={"APP_VERSION": "v1", "BASE_IMAGE": "dockroll.local/python:3.11-slim"},
        labels={"org.opencontainers.image.version": "v1"},
        secrets={"pip_cert": secret},
        target="runtime",
        no_cache=True,
        pull=True,
        platforms=["linux/amd64", "linux/arm64"],
    )
    events: list[Progress] = []

    image_id = run_build(request, events.append, builder=BuilderCli(str(client), "buildkit"))

    assert image_id == IMAGE_ID
    argv = _argv(client)
    assert argv[0] == "build"
    assert "--progress=plain" in argv
    assert argv[-1] == str(request.context)
    assert _after(argv, "--file") == [str(request.dockerfile)]
    assert _after(argv, "--tag") == list(request.tags)
    assert _after(argv, "--build-arg") == [
        "APP_VERSION=v1",
        "BASE_IMAGE=dockroll.local/python:3.11-slim",
    ]
    assert _after(argv, "--label") == ["org.opencontainers.image.version=v1"]
    assert _after(argv, "--secret") == [f"id=pip_cert,src={secret}"]
    assert _after(argv, "--target") == ["runtime"]
    assert _after(argv, "--platform") == ["linux/amd64,linux/arm64"]
    assert "--no-cache" in argv
    assert "--pull" in argv
    [iidfile] = _after(argv, "--iidfile")
    assert not Path(iidfile).exists(), "the scratch directory is removed after the build"
    env = (client.parent / "argv.log.env").read_text(encoding="utf-8")
    assert "DOCKER_BUILDKIT=1" in env
    assert events[0] == Progress("build", f"building with buildkit ({client})")
    assert [e.message for e in events if e.detail] == ["#1 step 1", "#2 step 2", "#3 step 3"]


def test_run_build_with_buildx_and_a_remote_engine(tmp_path: Path) -> None:
    client = fake_client(tmp_path / "bin", buildx=True)
    run_build(
        _request(tmp_path),
        lambda _: None,
        builder=BuilderCli(str(client), "buildx"),
        docker_host="tcp://127.0.0.1:2375",
    )
    argv = _argv(client)
    assert argv[:3] == ["buildx", "build", "--load"]
    for flag in ("--no-cache", "--pull", "--target", "--platform", "--secret", "--label"):
        assert flag not in argv
    env = (client.parent / "argv.log.env").read_text(encoding="utf-8")
    assert "DOCKER_HOST=tcp://127.0.0.1:2375" in env


def test_a_failing_build_raises_with_the_last_lines(tmp_path: Path) -> None:
    client = fake_client(tmp_path / "bin", lines=40, status=17)
    with pytest.raises(BuildError, match=r"the build failed \(exit 17\)") as caught:
        run_build(_request(tmp_path), lambda _: None, builder=BuilderCli(str(client), "buildkit"))
    message = caught.value.message
    assert "#40 step 40" in message
    assert "#16 step 16" in message
    assert "#15 step 15" not in message
    assert caught.value.hint is not None
    assert "--verbose" in caught.value.hint


def test_a_build_that_writes_no_image_id(tmp_path: Path) -> None:
    client = fake_client(tmp_path / "bin", writes_iid=False)
    with pytest.raises(BuildError, match="wrote no image id"):
        run_build(_request(tmp_path), lambda _: None, builder=BuilderCli(str(client), "buildkit"))


def test_no_dockerfile(tmp_path: Path) -> None:
    client = fake_client(tmp_path / "bin")
    request = _request(tmp_path, dockerfile=tmp_path / "ctx" / "Nope")
    with pytest.raises(BuildError, match="no Dockerfile at") as caught:
        run_build(request, lambda _: None, builder=BuilderCli(str(client), "buildkit"))
    assert caught.value.hint is not None
    assert "build.dockerfile" in caught.value.hint
    assert not (client.parent / "argv.log").exists()


def test_context_that_is_not_a_directory(tmp_path: Path) -> None:
    client = fake_client(tmp_path / "bin")
    request = _request(tmp_path)
    request = BuildRequest(
        context=tmp_path / "missing", dockerfile=request.dockerfile, tags=request.tags
    )
    with pytest.raises(BuildError, match="is not a directory"):
        run_build(request, lambda _: None, builder=BuilderCli(str(client), "buildkit"))
