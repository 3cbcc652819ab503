"""One module per command group; each registers itself on the Typer app.

A command module imports at its top only what Typer needs to build the
command (typer, rich, :mod:`dockroll.errors`, small enums): the library (config
models, ledger, engine, registry, pipeline) is imported inside the command's
function. ``dockroll --help`` imports every command module, and a command run
imports its own, so either costs only what it uses (tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from dockroll.errors import UsageError

__all__ = ["parse_pairs"]


def parse_pairs(items: Iterable[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` options into a dict, with an error naming the malformed one."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE")
        pairs[key.strip()] = value
    return pairs
