"""``dockroll env down``: remove an environment from its engine; the ledger keeps its history."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state

env_app = typer.Typer(help="Whole environments: take one down.")
app.add_typer(env_app, name="env")


@env_app.command("down")
def down_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", "-e", help="The environment.")],
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Delete its named volumes too: their data.")
    ] = False,
) -> None:
    """Remove the environment's replicas, jobs, accessories, router and network."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.lifecycle import environment_down

    cli = state(ctx)
    with open_ledger() as ledger, cli.output.progress(f"taking {env} down") as progress:
        done = environment_down(cli.config, env, ledger, volumes=volumes, progress=progress)
    if cli.output.json_mode:
        cli.output.result(done.to_json())
        return
    removed = len(done.containers)
    parts = [f"{removed} container{'s' if removed != 1 else ''}"]
    if done.router:
        parts.append("the router")
    if done.network:
        parts.append("the network")
    if done.volumes:
        parts.append(f"{len(done.volumes)} volume(s)")
    if done.hosts:
        parts.append(f"its hostnames on the edge ({', '.join(done.hosts)})")
    cli.output.out.print(
        f"{escape(env)} is down: removed {escape(', '.join(parts))}; the ledger keeps its history"
    )
