"""``dockroll dev up|status|down``: the local engine, registry, base images and database."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dockroll.cli.app import app, state
from dockroll.errors import DevEnvError

if TYPE_CHECKING:
    from dockroll.cli.render import Output
    from dockroll.devenv import DevEnvReport

__all__ = ["dev_app"]

dev_app = typer.Typer(
    help="Local infrastructure: Docker engine, registry, base images, PostgreSQL.",
    no_args_is_help=True,
)
app.add_typer(dev_app, name="dev")


class Extra(StrEnum):
    """Optional components of ``dev up``."""

    router = "router"
    postgres = "postgres"
    swarm = "swarm"


# dockroll.devenv.DEFAULT_PORT, repeated so `--help` need not load the installers
# (tests/unit/test_cli_imports.py checks they agree).
DEFAULT_REGISTRY_PORT = 5000

RegistryPort = Annotated[
    int,
    typer.Option("--registry-port", min=1, max=65535, help="Port of the registry on 127.0.0.1."),
]


@dev_app.command("up")
def up_command(
    ctx: typer.Context,
    with_: Annotated[
        list[Extra] | None,
        typer.Option(
            "--with",
            help="Also set up: router (the HAProxy base image), postgres (the ledger database), "
            "swarm (three Docker-in-Docker Swarm nodes, manager at tcp://127.0.0.1:23750).",
        ),
    ] = None,
    registry_port: RegistryPort = DEFAULT_REGISTRY_PORT,
) -> None:
    """Start (or reuse) the engine, the registry and the base images; idempotent."""
    from dockroll import devenv

    extras = set(with_ or [])
    output = state(ctx).output
    with output.progress("Setting up local infrastructure") as progress:
        report = devenv.up(
            registry_port=registry_port,
            router=Extra.router in extras,
            postgres=Extra.postgres in extras,
            swarm=Extra.swarm in extras,
            progress=progress,
        )
    _render(output, report)


@dev_app.command("status")
def status_command(
    ctx: typer.Context,
    registry_port: RegistryPort = DEFAULT_REGISTRY_PORT,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 7 when a required component is down."),
    ] = False,
) -> None:
    """Show each component's state without changing anything."""
    from dockroll import devenv

    output = state(ctx).output
    report = devenv.status(registry_port=registry_port)
    _render(output, report)
    if check and not report.ready:
        down = ", ".join(c.component for c in report.components if c.required and not c.up)
        raise DevEnvError(f"not ready: {down} down", hint="run `dockroll dev up`")


@dev_app.command("down")
def down_command(
    ctx: typer.Context,
    registry_port: RegistryPort = DEFAULT_REGISTRY_PORT,
    engine: Annotated[
        bool,
        typer.Option("--engine", help="Also stop dockerd, if dockroll started it."),
    ] = False,
) -> None:
    """Stop the registry and PostgreSQL dockroll started; the engine only with --engine."""
    from dockroll import devenv

    output = state(ctx).output
    report = devenv.down(registry_port=registry_port, engine=engine)
    _render(output, report)


def _render(output: Output, report: DevEnvReport) -> None:
    if output.json_mode:
        output.result(report.to_dict())
        return
    table = Table(title=f"dockroll dev {report.action}", title_justify="left")
    table.add_column("component")
    table.add_column("state")
    table.add_column("detail")
    table.add_column("where", overflow="fold")
    for component in report.components:
        colour = "green" if component.up else ("red" if component.required else "yellow")
        where = (
            component.facts.get("address")
            or component.facts.get("url")
            or component.facts.get("image")
            or component.facts.get("endpoint", "")
        )
        table.add_row(
            component.component,
            f"[{colour}]{component.state.value}[/]",
            component.detail,
            where,
        )
    output.out.print(table)
    output.line(f"[dim]{report.seconds:.1f} s[/]")
