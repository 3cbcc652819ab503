"""The root group lists every command from a table and builds only the one that runs."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

import dockroll
from dockroll.cli import app as cli_app
from dockroll.cli.lazy import COMMAND_SUMMARIES, CommandSummary, LazyCommandGroup

SRC = Path(dockroll.__file__).resolve().parents[1]

# Prints what main(argv) wrote and returned, each argv in a fresh interpreter; with
# "all", every command module is imported first, as the fully built application.
_PROBE = """
import contextlib, io, json, sys
from dockroll.cli import app
if sys.argv[2] == "all":
    app._register_commands()
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = app.main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue()}))
"""


def _run(argv: list[str], modules: str, cwd: Path) -> dict[str, object]:
    environ = {**os.environ, "PYTHONPATH": str(SRC), "COLUMNS": "80", "TERM": "dumb"}
    environ.pop("DOCKROLL_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), modules],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env=environ,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_summaries_are_each_commands_own_help_in_the_order_typer_lists_them() -> None:
    cli_app._register_commands()
    group = typer.main.get_command(cli_app.app)
    assert isinstance(group, LazyCommandGroup)
    real = {
        name: inspect.cleandoc(command.help or "").split("\n\n")[0]
        for name, command in group.commands.items()
    }
    assert not any(isinstance(c, CommandSummary) for c in group.commands.values())
    assert list(real) == list(COMMAND_SUMMARIES)
    assert real == COMMAND_SUMMARIES
    assert set(COMMAND_SUMMARIES) == set(cli_app.COMMAND_MODULES)


@pytest.mark.parametrize(
    "argv",
    [["--help"], [], ["-h"], ["no-such-command"], ["statsu", "--env", "dev"], ["--json"]],
)
def test_help_and_usage_errors_read_as_the_fully_built_application_prints_them(
    tmp_path: Path, argv: list[str]
) -> None:
    lazy = _run(argv, "lazy", tmp_path)
    built = _run(argv, "all", tmp_path)
    assert lazy == built
    assert lazy["out"] or lazy["err"]


def test_help_lists_every_command_without_building_one(tmp_path: Path) -> None:
    shown = str(_run(["--help"], "lazy", tmp_path)["out"])
    for name in COMMAND_SUMMARIES:
        assert f" {name} " in shown, name


def test_a_command_the_arguments_hide_is_still_built_when_it_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing imported before parsing: the group builds `tags` when click resolves it.
    monkeypatch.setattr(cli_app, "_register_commands", lambda *_: None)
    assert cli_app.main(["tags", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--images" in shown  # an option only the real command has


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["--json", "status", "--env", "dev"], "status"),
        (["-c", "status", "rollback"], "rollback"),
        (["--config", "x.yml", "--debug", "deploy"], "deploy"),
        (["--config=x.yml", "tags"], "tags"),
        (["--help"], None),
        (["-c", "x.yml"], None),
        (["--", "tags"], "tags"),
    ],
)
def test_the_command_word_skips_root_options_and_their_values(
    argv: list[str], word: str | None
) -> None:
    assert cli_app._command_word(argv) == word
