"""``dockroll rebalance``: move a Swarm environment's replicas off nodes they share."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state


@app.command("rebalance")
def rebalance_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", "-e", help="The Swarm environment.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would move; change nothing.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, recorded in the ledger and audit trail.")
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Wait up to this many seconds for the environment's lock."),
    ] = 0.0,
) -> None:
    """Move replicas that share a Swarm node to a less loaded one, new before old.

    After a drain or a lost node Swarm may run two of an environment's replicas
    on one node while another node that may run them runs none. Under the
    environment's lock each such replica gets a replacement of the same release
    and settings, placed on a less loaded node; it serves once its checks pass,
    then the doubled-up one is drained and stopped. Recorded as a deployment.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.rebalance import rebalance_environment

    cli = state(ctx)
    config = cli.config
    config.environment(env)
    with open_ledger() as ledger, cli.output.progress(f"rebalancing {env}") as progress:
        result = rebalance_environment(
            config, env, ledger, dry_run=dry_run, progress=progress, reason=reason, lock_wait=wait
        )
    spread = ", ".join(f"{escape(node)}: {count}" for node, count in result.nodes.items())
    if result.status == "balanced":
        text = f"{escape(env)} is balanced ({spread}): nothing to move"
    elif result.status == "dry-run":
        moves = "; ".join(f"{escape(m.replica)} off {escape(m.node)}" for m in result.moves)
        text = f"would move {moves} (now {spread}); nothing changed"
    else:
        moves = "; ".join(
            f"{escape(m.replica)} ({escape(m.node)}) -> {escape(m.replacement)} "
            f"({escape(m.replacement_node)})"
            for m in result.moves
        )
        text = (
            f"rebalanced {escape(env)} in {result.seconds:.1f}s: {moves}; now {spread} "
            f"(deployment {result.deployment})"
        )
    cli.output.result(result.to_json(), text)
