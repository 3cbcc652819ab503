"""``dockroll deploy``, ``rollback``, ``resume``, ``promote-canary`` and ``abort``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import UsageError
from dockroll.strategy import Strategy

if TYPE_CHECKING:
    from dockroll.cli.render import Output
    from dockroll.rollout.executor import RolloutOutcome

EnvOption = Annotated[str, typer.Option("--env", "-e", help="Target environment.")]
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why, recorded in the ledger and audit trail.")
]
WaitOption = Annotated[
    float,
    typer.Option("--wait", help="Wait up to this many seconds for the environment's lock."),
]


def show_outcome(output: Output, outcome: RolloutOutcome | None, env: str, what: str) -> None:
    if outcome is None:
        output.result(
            {"environment": env, "status": "unchanged"},
            f"{escape(env)} already runs {escape(what)}: nothing to do",
        )
        return
    deployment = outcome.deployment
    data: dict[str, Any] = {
        "environment": env,
        "status": outcome.status,
        "deployment": deployment.id,
        "kind": deployment.kind.value,
        "version": deployment.version,
        "digest": deployment.digest,
        "strategy": outcome.plan.strategy.value,
        "new": list(outcome.plan.new),
        "replaced": list(outcome.plan.old),
        "standby": list(outcome.plan.standby),
        "seconds": round(outcome.seconds, 3),
        "paused_at": outcome.paused_at,
        "message": outcome.message,
    }
    colour = {"succeeded": "green", "paused": "yellow"}.get(outcome.status, "red")
    lines = [
        f"[{colour}]{outcome.status}[/] {deployment.kind.value} of "
        f"{escape(deployment.version)} to {escape(env)} "
        f"({outcome.plan.strategy.value}) in {outcome.seconds:.1f}s",
        f"  digest   {deployment.digest}",
    ]
    if outcome.plan.new:
        lines.append(f"  serving  {escape(', '.join(outcome.plan.new))}")
    if outcome.plan.standby:
        lines.append(
            f"  standby  {escape(', '.join(outcome.plan.standby))} "
            "(`dockroll rollback` switches back instantly)"
        )
    if outcome.status == "paused":
        lines.append(
            f"  paused at {outcome.paused_at}%: `dockroll promote-canary --env {env}` "
            f"goes on, `dockroll abort --env {env}` goes back"
        )
    if outcome.message:
        lines.append(f"  note     {escape(outcome.message)}")
    output.result(data, "\n".join(lines))


@app.command("deploy")
def deploy_command(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Version or sha256 digest of a pushed release.")],
    env: EnvOption,
    strategy: Annotated[
        Strategy | None,
        typer.Option("--strategy", help="Override the environment's strategy for this rollout."),
    ] = None,
    reason: ReasonOption = None,
    wait: WaitOption = 0.0,
) -> None:
    """Roll a pushed release out to an environment, by digest, without dropping requests."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.deploy import deploy_release, find_release

    cli = state(ctx)
    config = cli.config
    config.environment(env)
    with open_ledger() as ledger:
        release = find_release(config, ledger, reference)
        with cli.output.progress(f"deploying {release.version} to {env}") as progress:
            outcome = deploy_release(
                config,
                env,
                release,
                ledger,
                progress=progress,
                reason=reason,
                strategy=strategy,
                lock_wait=wait,
            )
    show_outcome(cli.output, outcome, env, release.version)


@app.command("rollback")
def rollback_command(
    ctx: typer.Context,
    env: EnvOption,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version or digest to go back to (default: the previous one)."),
    ] = None,
    reason: ReasonOption = None,
    wait: WaitOption = 0.0,
) -> None:
    """Go back to the previous release; instant while a blue-green standby still runs."""
    from dockroll.ledger import open_quick_ledger
    from dockroll.pipeline.deploy import rollback_release

    cli = state(ctx)
    config = cli.config
    config.environment(env)
    # A SQLite ledger records the instant switch without SQLAlchemy.
    with open_quick_ledger() as ledger, cli.output.progress(f"rolling back {env}") as progress:
        outcome = rollback_release(
            config, env, ledger, to=to, progress=progress, reason=reason, lock_wait=wait
        )
    show_outcome(cli.output, outcome, env, to or "the previous release")


def _continue(ctx: typer.Context, env: str, *, abort: bool, full: bool, reason: str | None) -> None:
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.deploy import continue_rollout

    cli = state(ctx)
    config = cli.config
    config.environment(env)
    title = "aborting" if abort else "resuming"
    with open_ledger() as ledger, cli.output.progress(f"{title} the rollout in {env}") as progress:
        outcome = continue_rollout(
            config, env, ledger, abort=abort, skip_pauses=full, progress=progress, reason=reason
        )
    show_outcome(cli.output, outcome, env, outcome.deployment.version)


@app.command("resume")
def resume_command(ctx: typer.Context, env: EnvOption, reason: ReasonOption = None) -> None:
    """Continue an interrupted or paused rollout from its first unfinished step."""
    _continue(ctx, env, abort=False, full=False, reason=reason)


@app.command("promote-canary")
def promote_canary_command(
    ctx: typer.Context,
    env: EnvOption,
    full: Annotated[
        bool, typer.Option("--full", help="Skip the remaining steps and go to 100%.")
    ] = False,
    reason: ReasonOption = None,
) -> None:
    """Move a paused canary to its next step (or to 100% with --full)."""
    _continue(ctx, env, abort=False, full=full, reason=reason)


@app.command("abort")
def abort_command(ctx: typer.Context, env: EnvOption, reason: ReasonOption = None) -> None:
    """Undo the environment's unfinished rollout; the previous release serves again."""
    _continue(ctx, env, abort=True, full=False, reason=reason)


@app.command("pause")
def pause_command(ctx: typer.Context, env: EnvOption, reason: ReasonOption = None) -> None:
    """Hold the environment's running rollout at its current traffic split.

    The process running the rollout sees the request at its next check (within
    a second during canary steps and watch windows) and stops there; `dockroll
    resume` goes on, `dockroll abort` goes back.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.deploy import unfinished_deployment

    cli = state(ctx)
    config = cli.config
    config.environment(env)
    with open_ledger() as ledger:
        unfinished = unfinished_deployment(ledger, config.service, env)
        if unfinished is None:
            raise UsageError(
                f"no rollout is running in {env}",
                hint=f"`dockroll status --env {env}` shows what runs there",
            )
        ledger.audit(
            "pause",
            service=config.service,
            env=env,
            target=str(unfinished.id),
            detail={"version": unfinished.version, "reason": reason},
        )
    cli.output.result(
        {"environment": env, "deployment": unfinished.id, "pause_requested": True},
        f"asked rollout {unfinished.id} of {escape(unfinished.version)} in {escape(env)} to pause",
    )
