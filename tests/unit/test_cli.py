"""The CLI frame through ``main(argv)``: version, help, JSON output, error mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockroll import __version__
from dockroll.cli import app as cli_app
from dockroll.cli.app import main
from dockroll.errors import BuildError, RegistryUnavailable
from dockroll.pipeline.records import BuildRecord, save_build
from tests.unit.fakes import FakeEngine, fake_digest

REPO = "127.0.0.1:5000/team/web"
IMAGE_ID = "sha256:" + "1" * 64
TAGS = (f"{REPO}:v1.2.3", f"{REPO}:latest")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with its own state dir and no config around."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    for name in (
        "DOCKROLL_CONFIG",
        "DOCKROLL_DEBUG",
        "DOCKROLL_LEDGER_URL",
        "DOCKROLL_REGISTRY_USERNAME",
        "DOCKROLL_REGISTRY_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    return work


@pytest.fixture
def configured(isolated: Path) -> Path:
    path = isolated / "dockroll.yml"
    path.write_text(f"service: web\nimage: {REPO}\n", encoding="utf-8")
    return path


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    engine = FakeEngine()
    engine.add_image(IMAGE_ID, *TAGS)
    monkeypatch.setattr("dockroll.engine.docker.DockerEngine", lambda: engine)
    return engine


def _save_record() -> BuildRecord:
    record = BuildRecord(
        service="web",
        image_id=IMAGE_ID,
        tags=TAGS,
        version="v1.2.3",
        git_sha="abc1234",
        created="2024-05-01T12:00:00Z",
        size=1,
    )
    save_build(record)
    return record


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dockroll {__version__}"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert main([flag]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out
    for command in ("build", "test", "push", "tags"):
        assert command in out


def test_no_arguments_shows_help_and_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "Usage" in captured.out + captured.err


@pytest.mark.parametrize("command", [["build"], ["test"], ["push"]])
def test_no_config_is_exit_2_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], isolated: Path, command: list[str]
) -> None:
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"error: no dockroll.yml in {isolated}" in err
    assert "hint:" in err
    assert "--config" in err
    assert "Traceback" not in err


def test_a_config_path_that_does_not_exist(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "missing.yml", "push"]) == 2
    assert "config file missing.yml does not exist" in capsys.readouterr().err


def test_an_invalid_config_names_the_field(
    capsys: pytest.CaptureFixture[str], isolated: Path
) -> None:
    (isolated / "dockroll.yml").write_text("service: web\nimage: x\nreplica: 2\n", "utf-8")
    assert main(["push"]) == 2
    assert "replica: unknown field" in capsys.readouterr().err


def test_an_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--no-such-option"]) == 2
    assert "--no-such-option" in capsys.readouterr().err


@pytest.mark.usefixtures("configured")
def test_a_malformed_build_arg_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--build-arg", "NOEQUALS"]) == 2
    assert "--build-arg 'NOEQUALS': expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.usefixtures("configured")
def test_push_json_is_one_json_document(
    capsys: pytest.CaptureFixture[str], fake_engine: FakeEngine
) -> None:
    _save_record()

    assert main(["--json", "push"]) == 0

    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["digest"] == fake_digest(IMAGE_ID)
    assert document["references"] == list(TAGS)
    assert document["pinned"] == f"{REPO}@{fake_digest(IMAGE_ID)}"
    assert document["version"] == "v1.2.3"
    assert [ref for ref, _ in fake_engine.pushes] == list(TAGS)
    assert "[push]" in captured.err, "progress goes to stderr, never into the JSON"


@pytest.mark.usefixtures("configured", "fake_engine")
def test_push_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    _save_record()
    assert main(["push"]) == 0
    out = capsys.readouterr().out
    assert "pushed 2 tags" in out
    assert fake_digest(IMAGE_ID) in out


@pytest.mark.usefixtures("configured", "fake_engine")
def test_push_without_a_build_says_to_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push"]) == 2
    err = capsys.readouterr().err
    assert "no build of web recorded" in err
    assert "dockroll build" in err


@pytest.mark.usefixtures("configured")
def test_a_dockroll_error_maps_to_its_exit_code(
    capsys: pytest.CaptureFixture[str], fake_engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save_record()

    def down(*args: object) -> None:
        raise RegistryUnavailable("registry 127.0.0.1:5000 is not answering", hint="start it")

    monkeypatch.setattr(fake_engine, "push", down)
    assert main(["push"]) == 6
    err = capsys.readouterr().err
    assert "error: registry 127.0.0.1:5000 is not answering" in err
    assert "hint: start it" in err
    assert "Traceback" not in err


def _explode(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(service: str) -> BuildRecord:
        raise RuntimeError("boom")

    monkeypatch.setattr("dockroll.pipeline.records.load_last_build", boom)


@pytest.mark.usefixtures("configured")
def test_an_unexpected_exception_is_exit_1_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _explode(monkeypatch)
    assert main(["push"]) == 1
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: boom" in err
    assert "--debug" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    _explode(monkeypatch)
    if how == "env":
        monkeypatch.setenv("DOCKROLL_DEBUG", "1")
        argv = ["push"]
    else:
        argv = ["--debug", "push"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "RuntimeError: boom" in err


def test_keyboard_interrupt_is_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_app, "app", interrupted)
    assert main(["push"]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.usefixtures("configured")
def test_an_error_message_is_printed_verbatim(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "the build failed (exit 1); last lines:\n#5 [runtime 2/4] RUN [/bin/sh -c false] [bold]x"

    def failing(service: str) -> BuildRecord:
        raise BuildError(text)

    monkeypatch.setattr("dockroll.pipeline.records.load_last_build", failing)
    assert main(["push"]) == 4
    assert text in capsys.readouterr().err
