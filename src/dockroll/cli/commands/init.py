"""``dockroll init``: write a dockroll.yml from a compose file and Dockerfile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state


@app.command("init")
def init_command(
    ctx: typer.Context,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="The compose file to adopt (default: compose.yaml, docker-compose.yml … here).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write (default: dockroll.yml beside the compose file)."
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option("--service", "-s", help="The service's name (default: the directory's)."),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=1, max=65533, help="dev's router port; staging and prod get the next two."
        ),
    ] = 8081,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the file instead of writing it.")
    ] = False,
) -> None:
    """Write a dockroll.yml from a compose file and Dockerfile; never overwrites one."""
    from dockroll.pipeline.init_compose import init_config

    cli = state(ctx)
    directory = source.resolve().parent if source is not None else Path.cwd()
    result = init_config(
        directory,
        compose=source.resolve() if source is not None else None,
        output=output,
        service=service,
        router_port=port,
        write=not dry_run,
    )
    out = cli.output
    if out.json_mode:
        out.result({**result.to_json(), "written": not dry_run, "text": result.text})
        return
    if dry_run:
        out.out.print(escape(result.text), end="", highlight=False)
        return
    where = f" from {result.source.name}" if result.source else ""
    out.out.print(f"wrote {escape(str(result.path))}{escape(where)}")
    out.out.print(f"  service    {escape(result.service)} (port {result.port})")
    shown = ", ".join(
        f"{name} (router)" if name == result.routed else name for name in result.processes
    )
    out.out.print(f"  processes  {escape(shown)}")
    out.out.print(f"  health     {escape(result.health)}")
    for note in result.notes:
        out.out.print(f"  [yellow]note[/]       {escape(note)}")
    if result.unmapped:
        out.out.print("not taken over:")
        for item in result.unmapped:
            out.out.print(f"  {escape(item.where)}: {escape(item.why)}")
    out.out.print("next: `dockroll config check`, then `dockroll build` and `dockroll push`")
