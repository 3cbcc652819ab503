"""``dockroll accessory up|down|status|logs``: databases, caches … beside an environment."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state

if TYPE_CHECKING:
    from dockroll.cli.render import Output
    from dockroll.config import Config
    from dockroll.engine.docker import DockerEngine
    from dockroll.pipeline.accessory import AccessoryStatus

accessory_app = typer.Typer(
    help="Long-lived dependencies of an environment, never rolled with releases."
)
app.add_typer(accessory_app, name="accessory")

EnvOption = Annotated[str, typer.Option("--env", "-e", help="The environment.")]
WaitOption = Annotated[
    float, typer.Option("--wait", help="Wait up to N seconds for the environment's lock.")
]
NamesArgument = Annotated[
    list[str] | None, typer.Argument(help="Accessories (default: all of the environment).")
]


def _show(output: Output, env: str, statuses: list[AccessoryStatus]) -> None:
    if output.json_mode:
        output.result({"environment": env, "accessories": [s.to_json() for s in statuses]})
        return
    if not statuses:
        output.out.print(f"{escape(env)} has no accessories (see `accessories:` in dockroll.yml)")
    for status in statuses:
        parts = [status.state]
        if status.health and status.health != "none":
            parts.append(status.health)
        if status.config_drift:
            parts.append("[yellow]settings changed: `accessory up` recreates it[/]")
        action = f" ({status.action})" if status.action else ""
        where = f"  {escape(status.container)}" if status.container else ""
        output.out.print(f"{escape(status.name)}{where}: {', '.join(parts)}{action}")


def _engine(ctx: typer.Context, env: str) -> tuple[Config, DockerEngine]:
    from dockroll.pipeline.engines import host_engine

    config = state(ctx).config
    return config, host_engine(config, env)


@accessory_app.command("up")
def up_command(
    ctx: typer.Context, env: EnvOption, names: NamesArgument = None, wait: WaitOption = 0.0
) -> None:
    """Start the environment's accessories (recreating those whose settings changed)."""
    from dockroll.ledger import who
    from dockroll.pipeline.accessory import accessory_up

    config, engine = _engine(ctx, env)
    cli = state(ctx)
    try:
        with cli.output.progress(f"starting accessories of {env}") as progress:
            statuses = accessory_up(
                config, env, engine, names or None, progress=progress, holder=who(), lock_wait=wait
            )
    finally:
        engine.close()
    _show(cli.output, env, statuses)


@accessory_app.command("down")
def down_command(
    ctx: typer.Context,
    env: EnvOption,
    names: NamesArgument = None,
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Delete their named volumes too: their data.")
    ] = False,
    wait: WaitOption = 0.0,
) -> None:
    """Stop and remove the environment's accessories; their volumes stay unless --volumes."""
    from dockroll.ledger import who
    from dockroll.pipeline.accessory import accessory_down

    config, engine = _engine(ctx, env)
    try:
        statuses = accessory_down(
            config,
            env,
            engine,
            names or None,
            volumes=volumes,
            remove_volume=engine.remove_volume,
            holder=who(),
            lock_wait=wait,
        )
    finally:
        engine.close()
    _show(state(ctx).output, env, statuses)


@accessory_app.command("status")
def status_command(ctx: typer.Context, env: EnvOption) -> None:
    """Each accessory of the environment: state, health, and whether its settings changed."""
    from dockroll.pipeline.accessory import accessory_status

    config, engine = _engine(ctx, env)
    try:
        statuses = accessory_status(config, env, engine)
    finally:
        engine.close()
    _show(state(ctx).output, env, statuses)


@accessory_app.command("logs")
def logs_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The accessory.")],
    env: EnvOption,
    tail: Annotated[int, typer.Option("--tail", "-n", help="Last lines.")] = 100,
) -> None:
    """The accessory's output."""
    from dockroll.pipeline.accessory import accessory_logs

    config, engine = _engine(ctx, env)
    try:
        text = accessory_logs(config, env, engine, name, tail=tail)
    finally:
        engine.close()
    if state(ctx).output.json_mode:
        state(ctx).output.result({"environment": env, "accessory": name, "logs": text})
    else:
        sys.stdout.write(text)
