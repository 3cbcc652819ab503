"""``dockroll drill``: rehearse a deploy and rollback under synthetic load."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state

__all__ = ["drill_command"]


@app.command("drill")
def drill_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", "-e", help="The environment to drill.")],
    rate: Annotated[
        float, typer.Option("--rate", help="Synthetic requests a second to the environment.")
    ] = 50.0,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Release to deploy (default: the one the environment ran before).",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Drill a production environment on purpose.")
    ] = False,
    kill_replica: Annotated[
        bool,
        typer.Option(
            "--kill-replica", help="Remove a replica of the new release mid-drill, as a crash."
        ),
    ] = False,
) -> None:
    """Deploy another release and roll back under load; report failed requests, time to
    restore and p99, and record the drill in the ledger."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.drill import run_drill

    cli = state(ctx)
    config = cli.config
    with open_ledger() as ledger, cli.output.progress(f"drilling {env}") as progress:
        result = run_drill(
            config, env, ledger, to=to, rate=rate, kill_replica=kill_replica, yes=yes,
            progress=progress,
        )  # fmt: skip
    restore = result.time_to_restore_seconds
    lines = [
        f"drill of {escape(env)}: {escape(result.to_version)} and back to "
        f"{escape(result.from_version)} under {result.rate:g} req/s",
        f"  requests        {result.requests}, failed {result.failed_requests}",
        f"  latency         p50 {result.p50_ms} ms, p99 {result.p99_ms} ms",
        f"  deploy          {result.deploy_status} in {result.deploy_seconds:.1f}s",
        "  time to restore "
        + (f"{restore:.1f}s" if restore is not None else "(dockroll undid it)"),
    ]
    if result.killed_replica:
        lines.append(f"  killed          {escape(result.killed_replica)}")
    for name, phase in result.phases.items():
        lines.append(
            f"  {name:<15} {phase['requests']} requests, {phase['failed']} failed, "
            f"p99 {phase['p99_ms']} ms"
        )
    cli.output.result(result.as_dict(), "\n".join(lines))
