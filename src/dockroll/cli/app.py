"""The ``dockroll`` Typer application: global options, error mapping, command registry."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dockroll import __version__
from dockroll.cli.lazy import LazyCommandGroup
from dockroll.cli.render import Output
from dockroll.errors import ConfigError, DockrollError

if TYPE_CHECKING:
    from dockroll.config import Config

__all__ = ["CliState", "app", "main"]

app = typer.Typer(
    name="dockroll",
    cls=LazyCommandGroup,
    help="Build once, promote the digest, deploy with zero downtime, roll back in seconds.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class CliState:
    """What every command receives through ``ctx.obj``."""

    output: Output
    config_path: Path | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """dockroll.yml, loaded on first use so commands that need none work anywhere."""
        if self._config is None:
            from dockroll.config import load_config  # noqa: PLC0415 - pydantic loads on first use

            self._config = load_config(self.config_path)
        return self._config

    def optional_config(self) -> Config | None:
        """dockroll.yml, or None when none is named and none is found.

        For commands that also work from flags alone; a file that exists is
        validated as every command validates it, never silently ignored.
        """
        named = self.config_path is not None or bool(os.environ.get("DOCKROLL_CONFIG"))
        if self._config is None and not named:
            from dockroll.config import find_config  # noqa: PLC0415 - as in `config`

            try:
                find_config()
            except ConfigError:
                return None
        return self.config


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dockroll {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Path to dockroll.yml (default: $DOCKROLL_CONFIG or the nearest dockroll.yml).",
            dir_okay=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON document.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show detailed progress (build output).")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """dockroll: traceable tags, build once, promote the digest, safe deploys, fast rollback."""
    from dockroll.cli.logs import configure_logging  # noqa: PLC0415 - not needed for --help

    configure_logging(verbose=verbose, debug=debug or bool(os.environ.get("DOCKROLL_DEBUG")))
    ctx.obj = CliState(
        output=Output(json_mode=json_output, verbose=verbose),
        config_path=config,
        debug=debug or bool(os.environ.get("DOCKROLL_DEBUG")),
    )


# Which module defines each command: only the module of the command being run is
# imported, which keeps start-up (and so a rollback) quick.
COMMAND_MODULES = {
    "abort": "deploy",
    "accessory": "accessory",
    "analysis": "analysis",
    "approve": "promote",
    "audit": "status",
    "build": "build",
    "config": "config",
    "deploy": "deploy",
    "dev": "dev",
    "drill": "drill",
    "edge": "edge",
    "env": "env",
    "exec": "execute",
    "history": "ledger",
    "hold": "hold",
    "init": "init",
    "lock": "lock",
    "logs": "logs",
    "maintenance": "hold",
    "mirror": "mirror",
    "pause": "deploy",
    "pipeline": "pipeline",
    "promote": "promote",
    "promote-canary": "deploy",
    "prune": "prune",
    "push": "push",
    "rebalance": "rebalance",
    "release": "hold",
    "releases": "ledger",
    "report": "report",
    "resume": "deploy",
    "router": "router",
    "rollback": "deploy",
    "scan": "scan",
    "status": "status",
    "tags": "tags",
    "test": "smoke",
    "ui": "ui",
}


_VALUE_OPTIONS = ("--config", "-c")
"""Root options that take a value, so the word after them names no command."""


def _command_word(args: list[str]) -> str | None:
    """The first word of ``args`` that is neither a root option nor an option's value."""
    words = iter(args)
    for arg in words:
        if arg == "--":
            return next(words, None)
        if arg in _VALUE_OPTIONS:
            next(words, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _register_commands(args: list[str] | None = None) -> None:
    """Import the command modules; each adds its commands to ``app`` when imported.

    With ``args``, only the module of the command they name, when it is known,
    and none for help or an unknown command: the root group lists every command
    from its summaries (cli/lazy.py) and builds one only when it runs. Without
    ``args``, all of them.
    """
    if args is None:
        names = sorted(set(COMMAND_MODULES.values()))
    else:
        word = _command_word(args)
        names = [COMMAND_MODULES[word]] if word in COMMAND_MODULES else []
    for name in names:
        importlib.import_module(f"dockroll.cli.commands.{name}")


_ANYWHERE_FLAGS = ("--json", "--debug", "--verbose")


def _hoist_global_flags(args: list[str]) -> list[str]:
    """Accept ``--json``, ``--debug`` and ``--verbose`` after the command too.

    ``dockroll tags --json`` reads naturally; the flags belong to the root
    command, so they are moved in front of the first command word. Anything
    after ``--`` is left alone.
    """
    end = args.index("--") if "--" in args else len(args)
    hoisted = [arg for arg in args[:end] if arg in _ANYWHERE_FLAGS]
    rest = [arg for arg in args[:end] if arg not in _ANYWHERE_FLAGS]
    return list(dict.fromkeys(hoisted)) + rest + args[end:]


def _usage_errors() -> tuple[type[Exception], ...]:
    """The exceptions click and Typer raise for bad command lines.

    Typer raises them from its own copy of click, older Typers from click itself;
    click is only looked at when something loaded it, so start-up never imports it.
    """
    errors: list[type[Exception]] = []
    typer_error = getattr(typer, "TyperException", None)
    if isinstance(typer_error, type) and issubclass(typer_error, Exception):
        errors.append(typer_error)
    click_exceptions = sys.modules.get("click.exceptions")
    click_error = getattr(click_exceptions, "ClickException", None)
    if isinstance(click_error, type) and issubclass(click_error, Exception):
        errors.append(click_error)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit code."""
    args = _hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    _register_commands(args)
    debug = "--debug" in args or bool(os.environ.get("DOCKROLL_DEBUG"))
    try:
        # Outside standalone mode click returns the code of a `typer.Exit` instead of exiting.
        returned = app(args=args, standalone_mode=False)
    except DockrollError as exc:
        if debug:
            traceback.print_exc()
        Output().error(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        Output().error("aborted")
        return 130
    except KeyboardInterrupt:
        Output().error("interrupted")
        return 130
    except _usage_errors() as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            Output().error(str(exc))
        code = getattr(exc, "exit_code", 2)
        return code if isinstance(code, int) else 2
    except Exception as exc:  # a bug: say so plainly, full detail only on request
        if debug:
            traceback.print_exc()
        Output().error(
            f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        )
        return 1
    return returned if isinstance(returned, int) else 0


def state(ctx: typer.Context) -> CliState:
    """The :class:`CliState` of the running command."""
    obj = ctx.obj
    if not isinstance(obj, CliState):  # pragma: no cover - only when called outside the app
        raise RuntimeError("dockroll command invoked outside the dockroll app")
    return obj


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
