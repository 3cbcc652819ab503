"""``dockroll promote`` and ``dockroll approve``: move a digest on, with its gates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.cli.commands.mirror import auto_mirror
from dockroll.refs import parse_reference

if TYPE_CHECKING:
    from dockroll.pipeline.promote import PromotionPlan
    from dockroll.rollout.executor import RolloutOutcome


def _plan_json(plan: PromotionPlan) -> dict[str, Any]:
    return {
        "service": plan.release.service,
        "version": plan.release.version,
        "digest": plan.release.digest,
        "reference": plan.reference,
        "from": plan.source,
        "to": plan.target,
        "tags": list(plan.tags),
        "pending_tags": list(plan.pending),
        "allowed": plan.decision.allowed,
        "gates": [
            {"gate": v.gate, "passed": v.passed, "detail": v.detail, "remedy": v.remedy}
            for v in plan.decision.verdicts
        ],
        "notes": plan.notes,
    }


def _plan_lines(plan: PromotionPlan) -> list[str]:
    release = plan.release
    lines = [
        f"promote {escape(release.version)} ({release.digest}) "
        f"{escape(plan.source or 'registry')} → {escape(plan.target)}",
    ]
    for verdict in plan.decision.verdicts:
        mark = "[green]pass[/]   " if verdict.passed else "[red]REFUSED[/]"
        remedy = f" — {escape(verdict.remedy)}" if verdict.remedy and not verdict.passed else ""
        lines.append(f"  {mark} {verdict.gate:<9} {escape(verdict.detail)}{remedy}")
    for tag in plan.tags:
        state_text = "to write" if tag in plan.pending else "already there"
        lines.append(f"  tag {escape(tag)}: {state_text}")
    if plan.notes:
        lines.append("  notes:")
        lines += [f"    {escape(line)}" for line in plan.notes.splitlines()]
    return lines


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Version, tag or sha256 digest to promote.")],
    to: Annotated[str, typer.Option("--to", help="Target environment.", show_default=False)],
    source: Annotated[
        str | None,
        typer.Option("--from", help="Source environment (default: the target's promote_from)."),
    ] = None,
    notes: Annotated[
        str | None,
        typer.Option("--notes", help="Release notes (default: the git log since the last one)."),
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the record.")] = None,
    override_window: Annotated[
        bool,
        typer.Option("--override-window", help="Promote outside the deployment window."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and every gate's verdict.")
    ] = False,
    registry_only: Annotated[
        bool,
        typer.Option("--registry-only", help="Retag in the registry, do not deploy."),
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Wait up to N seconds for the environment's lock.")
    ] = 0.0,
) -> None:
    """Promote the same digest into an environment by registry retag, then deploy it there.

    The gates run first; nothing is rebuilt. The environment's strategy deploys
    the digest unless --registry-only.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.promote import execute_promotion, plan_promotion, refusal
    from dockroll.registry import RegistryClient

    cli = state(ctx)
    config = cli.config
    host = parse_reference(config.image).registry
    with open_ledger() as ledger, RegistryClient(host) as client:
        plan = plan_promotion(
            config,
            ledger,
            client,
            reference,
            to,
            source=source,
            notes=notes,
            reason=reason,
            override_window=override_window,
        )
        if dry_run:
            cli.output.result(
                {**_plan_json(plan), "dry_run": True},
                "\n".join(["[bold]dry run[/]: nothing written", *_plan_lines(plan)]),
            )
            if not plan.decision.allowed:
                raise refusal(plan, dry_run=True)
            return
        outcome: RolloutOutcome | None = None
        if registry_only:
            # Tags alone: the deploy pipeline (executor, router) is not loaded.
            from dockroll.pipeline.registry_only import (
                refuse_registry_only_into_a_running_environment,
            )

            refuse_registry_only_into_a_running_environment(config, plan)
            with cli.output.progress(f"promoting {plan.release.version} to {to}") as progress:
                result = execute_promotion(plan, client, ledger, config, progress=progress)
        else:
            from dockroll.pipeline.promote_deploy import promote_and_deploy

            with cli.output.progress(
                f"promoting {plan.release.version} to {to} and deploying it"
            ) as progress:
                result, outcome = promote_and_deploy(
                    plan, client, ledger, config, progress=progress, lock_wait=wait
                )
    mirrors = auto_mirror(cli, config, plan.release) if result.promotion is not None else None
    if result.promotion is None:
        human = (
            f"{escape(to)} already has {escape(plan.release.version)} "
            f"({plan.release.digest}); nothing written"
        )
    else:
        written = ", ".join(result.written) or "none (tags already pointed there)"
        human = "\n".join(
            [
                f"[green]promoted[/] {escape(plan.release.version)} to {escape(to)} "
                f"in {result.seconds:.2f}s, {result.bytes_sent} bytes sent",
                f"  digest   {plan.release.digest}",
                f"  written  {escape(written)}",
            ]
        )
    deployed: dict[str, Any] | None = None
    if not registry_only:
        deployed = {"status": outcome.status if outcome else "unchanged"}
        if outcome is not None:
            deployed["deployment"] = outcome.deployment.id
            human += (
                f"\n[green]deployed[/] to {escape(to)} ({outcome.plan.strategy.value}): "
                f"{outcome.status} in {outcome.seconds:.1f}s"
            )
            if outcome.status == "paused":
                human += (
                    f"\n  paused at {outcome.paused_at}%: `dockroll promote-canary --env {to}` "
                    f"goes on, `dockroll abort --env {to}` goes back"
                )
        else:
            human += f"\n{escape(to)} already runs {escape(plan.release.version)}"
    cli.output.result(
        {
            **_plan_json(plan),
            "written": list(result.written),
            "bytes_sent": result.bytes_sent,
            "seconds": round(result.seconds, 3),
            "changed": result.promotion is not None,
            "deploy": deployed,
            **({"mirrors": mirrors} if mirrors is not None else {}),
        },
        human,
    )


@app.command("approve")
def approve_command(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="Version or digest to approve.")],
    env: Annotated[str, typer.Option("--env", help="Environment it is approved for.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who approves (default: the current actor).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, for the record.")] = None,
) -> None:
    """Approve a release for an environment that requires approval."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.promote import resolve_release
    from dockroll.registry import RegistryClient

    cli = state(ctx)
    config = cli.config
    config.environment(env)
    host = parse_reference(config.image).registry
    with open_ledger() as ledger, RegistryClient(host) as client:
        release = resolve_release(config, ledger, client, reference)
        approval = ledger.record_approval(release, env, note=note, who=by)
        ledger.audit(
            "approve",
            service=config.service,
            env=env,
            target=release.version,
            who=approval.approved_by,
            detail={"digest": release.digest, "note": note},
        )
    cli.output.result(
        approval.as_dict(),
        f"[green]approved[/] {escape(release.version)} for {escape(env)} "
        f"by {escape(approval.approved_by)}",
    )
