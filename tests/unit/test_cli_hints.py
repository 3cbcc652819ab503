"""Every command and flag a message tells the user to type exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from dockroll.cli import app as cli_app

SRC = Path(__file__).resolve().parents[2] / "src" / "dockroll"
COMMAND = re.compile(r"`dockroll ([^`]*)`")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _text(node: ast.expr) -> str | None:
    """A string literal, an f-string with its fields as ``X``, or literals joined by ``+``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else "X" for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return (left or "") + (right or "") if left is not None or right is not None else None
    return None


def _messages() -> list[tuple[str, str]]:
    """What errors and hints say: the arguments of each ``raise X(...)`` and every ``hint=``."""
    messages = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                values += node.exc.args
                values += [keyword.value for keyword in node.exc.keywords]
            elif isinstance(node, ast.Call):
                values += [keyword.value for keyword in node.keywords if keyword.arg == "hint"]
            for value in values:
                parts = list(ast.walk(value))
                # The pieces of an f-string are read as part of the whole one.
                inner = {
                    id(piece)
                    for part in parts
                    if isinstance(part, ast.JoinedStr)
                    for piece in part.values
                }
                for part in parts:
                    text = _text(part) if isinstance(part, ast.expr) else None
                    if text and id(part) not in inner:
                        messages.append((f"{path.relative_to(SRC)}:{node.lineno}", text))
    return messages


def _dockroll_flags(text: str) -> list[str]:
    """Flags the text tells the user to pass to dockroll, not to another program in backticks."""
    outside = re.sub(r"`(?!dockroll )[^`]*`|\$\([^)]*\)", "", text)
    return FLAG.findall(outside)


def _root() -> Any:
    """The click command tree (Typer's own copy of click, so duck-typed)."""
    cli_app._register_commands()
    return typer.main.get_command(cli_app.app)


def _subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", {}))


def _options(command: Any) -> set[str]:
    return {name for param in command.params for name in getattr(param, "opts", [])}


def _resolve(root: Any, words: list[str]) -> tuple[Any, list[str]] | None:
    command = root
    rest = [word for word in words if word not in _options(root)]  # `dockroll --json dev …`
    while rest and rest[0] in _subcommands(command):
        command = _subcommands(command)[rest.pop(0)]
    return (command, rest) if command is not root else None


def test_commands_named_in_messages_take_the_flags_they_are_shown_with() -> None:
    root = _root()
    global_options = _options(root)
    problems = []
    for where, text in _messages():
        for fragment in COMMAND.findall(text):
            resolved = _resolve(root, fragment.split())
            if resolved is None:
                problems.append(f"{where}: `dockroll {fragment}` names no command")
                continue
            command, rest = resolved
            known = _options(command) | global_options
            for flag in FLAG.findall(" ".join(rest)):
                if flag not in known:
                    problems.append(f"{where}: `dockroll {fragment}`: {flag} does not exist")
    assert problems == []


def test_every_flag_a_message_names_exists_somewhere() -> None:
    root = _root()
    every: set[str] = set()

    def collect(command: Any) -> None:
        every.update(_options(command))
        for sub in _subcommands(command).values():
            collect(sub)

    collect(root)
    every.update(("--help", "-h"))
    unknown = [
        f"{where}: {flag}"
        for where, text in _messages()
        for flag in _dockroll_flags(text)
        if flag not in every
    ]
    assert unknown == []


def test_push_without_a_build_suggests_no_flag_push_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKROLL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DOCKROLL_CONFIG", raising=False)
    (tmp_path / "dockroll.yml").write_text(
        "service: web\nimage: 127.0.0.1:5000/team/web\n", encoding="utf-8"
    )
    assert cli_app.main(["push"]) == 2
    err = capsys.readouterr().err
    assert "no build of web recorded" in err
    assert "--image" not in err
