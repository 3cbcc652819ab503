"""``dockroll hold``, ``release``, ``maintenance on|off``: requests at the router."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import UsageError

EnvOption = Annotated[str, typer.Option("--env", "-e", help="The environment.")]


class Switch(StrEnum):
    on = "on"
    off = "off"


@app.command("hold")
def hold_command(
    ctx: typer.Context,
    env: EnvOption,
    max_wait: Annotated[
        str,
        typer.Option("--max", help="Longest hold, e.g. 30s, 2m; past it requests get 503."),
    ] = "30s",
) -> None:
    """Hold new requests at the router: they wait (not refused, not 503) until `release`.

    For a blocking change (a migration, a database switch-over). Requests in
    flight finish; past --max new and waiting ones get 503 with Retry-After
    until `dockroll release`.
    """
    from dockroll.durations import parse_duration
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.hold import hold_environment

    cli = state(ctx)
    try:
        seconds = parse_duration(max_wait)
    except ValueError as exc:
        raise UsageError(f"--max: {exc}") from None
    with open_ledger() as ledger:
        held = hold_environment(cli.config, env, ledger, max_seconds=seconds)
    until = held.until.strftime("%H:%M:%S") if held.until else "?"
    cli.output.result(
        held.to_json(),
        f"holding requests to {escape(env)} until `dockroll release --env {escape(env)}` "
        f"(503 after {until})",
    )


@app.command("release")
def release_command(ctx: typer.Context, env: EnvOption) -> None:
    """Let the requests held at the router (and every new one) flow."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.hold import release_environment

    cli = state(ctx)
    with open_ledger() as ledger:
        released = release_environment(cli.config, env, ledger)
    cli.output.result(released.to_json(), f"requests to {escape(env)} flow")


@app.command("maintenance")
def maintenance_command(
    ctx: typer.Context,
    switch: Annotated[Switch, typer.Argument(help="on or off.")],
    env: EnvOption,
) -> None:
    """Serve a maintenance page (503 with Retry-After) for every request, or stop."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.hold import set_maintenance

    cli = state(ctx)
    with open_ledger() as ledger:
        done = set_maintenance(cli.config, env, ledger, on=switch is Switch.on)
    text = "serves the maintenance page" if done.maintenance else "serves requests again"
    cli.output.result(done.to_json(), f"{escape(env)} {text}")
