"""Lazy command loading: every command is found in the module the registry names."""

from __future__ import annotations

import pytest
import typer.main

from dockroll.cli.app import COMMAND_MODULES, _register_commands, app


def _commands() -> dict[str, str]:
    _register_commands()
    group = typer.main.get_command(app)
    found: dict[str, str] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]  # a Group here
        callback = command.callback
        module = callback.__module__ if callback else ""
        found[name] = module.rsplit(".", 1)[-1]
    for info in app.registered_groups:
        # sub-apps (dev, lock, config): their module is where the Typer was added
        assert info.name is not None
        found[info.name] = found.get(info.name, "")
    return found


def test_every_command_is_in_the_registry_with_its_module() -> None:
    commands = _commands()
    assert set(commands) == set(COMMAND_MODULES)
    for name, module in commands.items():
        if module:  # plain commands know their module; groups are checked below
            assert COMMAND_MODULES[name] == module, name


def test_running_a_command_imports_its_module_only(monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []
    monkeypatch.setattr("importlib.import_module", imported.append)
    _register_commands(["--json", "status", "--env", "dev"])
    assert imported == ["dockroll.cli.commands.status"]
    imported.clear()
    _register_commands(["--config", "status", "rollback"])
    assert imported == ["dockroll.cli.commands.deploy"]
    imported.clear()
    # Help and unknown commands are listed from the summaries (cli/lazy.py): nothing loads.
    _register_commands(["--help"])
    _register_commands(["no-such-command"])
    assert imported == []
    _register_commands()
    assert len(imported) == len(set(COMMAND_MODULES.values()))
