"""``dockroll prune``: delete old releases from the registry, keeping what is in use."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import UsageError
from dockroll.refs import parse_reference

if TYPE_CHECKING:
    from dockroll.pipeline.prune import PruneDecision, PrunePlan

__all__ = ["prune_command"]


def _decision_json(decision: PruneDecision, *, deleted: bool | None = None) -> dict[str, Any]:
    release = decision.release
    data: dict[str, Any] = {
        "version": release.version,
        "digest": release.digest,
        "pushed_at": release.pushed_at.isoformat(),
        "action": "keep" if decision.keep else decision.disposition.value,
        "disposition": decision.disposition.value,
        "reason": decision.reason,
        "tags": list(decision.tags),
    }
    if deleted is not None:
        data["deleted"] = deleted
    return data


def _lines(plan: PrunePlan, *, dry_run: bool, deleted: Collection[int]) -> list[str]:
    lines = []
    for decision in plan.decisions:
        release = decision.release
        head = f"{escape(release.version):<16} {release.digest[:19]}"
        if decision.keep:
            mark = "[green]kept[/]         "
        elif decision.delete and dry_run:
            mark = "[yellow]would delete[/] "
        elif decision.delete and release.id in deleted:
            mark = "[red]deleted[/]      "
        elif decision.delete:
            mark = "[yellow]already gone[/] "
        else:
            mark = "[dim]gone[/]         "
        tags = (
            f" (tags {escape(', '.join(decision.tags))})"
            if decision.delete and decision.tags
            else ""
        )
        lines.append(f"  {mark} {head}  {escape(decision.reason)}{tags}")
    return lines


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            help="Keep the N most recently pushed releases (default: retention.keep).",
            show_default=False,
        ),
    ] = None,
    envs: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="Also keep what this environment runs, when it is no longer in dockroll.yml "
            "(every configured environment is always protected). Repeatable.",
            show_default=False,
        ),
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(
            "--pattern",
            help="Consider only releases with a tag matching this shell pattern (e.g. "
            "'main-*'); others are left alone and do not count toward --keep.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Delete for real (default: a dry run that deletes nothing)."),
    ] = False,
) -> None:
    """Delete old releases of the service from the registry; a dry run unless --yes.

    Releases are ordered by when they were pushed (the ledger), not by image
    build date. Never deleted: the newest --keep, a digest any environment
    holds (per the ledger or an environment tag in the registry), a digest a
    retention.protected_tags pattern matches a tag of. Deleting a digest
    removes every tag pointing at it; those tags are listed. Blobs stay on disk
    until the registry's garbage collection runs.
    """
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.prune import execute_prune, prune_plan
    from dockroll.registry import RegistryClient

    cli = state(ctx)
    config = cli.config
    if keep is not None and keep < 1:
        raise UsageError(
            f"--keep {keep}: keep at least 1 release",
            hint="what environments run is kept anyway; --keep counts the others",
        )
    host = parse_reference(config.image).registry
    with open_ledger() as ledger, RegistryClient(host) as client:
        plan = prune_plan(config, ledger, client, keep=keep, envs=envs or (), pattern=pattern)
        if yes and plan.deletions:
            with cli.output.progress(f"pruning {plan.repository}") as progress:
                result = execute_prune(plan, client, ledger, config, progress=progress)
            deleted_ids: set[int] = {d.release.id for d in result.deleted}
        else:
            deleted_ids = set()
    dry_run = not yes
    title = (
        f"[bold]dry run[/]: {len(plan.deletions)} of {len(plan.decisions)} releases would be "
        f"deleted from {escape(plan.repository)} (--yes deletes them)"
        if dry_run
        else f"pruned {len(deleted_ids)} of {len(plan.decisions)} releases "
        f"from {escape(plan.repository)}"
    )
    cli.output.result(
        {
            "service": config.service,
            "repository": plan.repository,
            "keep": plan.keep,
            "pattern": plan.pattern,
            "dry_run": dry_run,
            "releases": [
                _decision_json(d, deleted=None if dry_run else d.release.id in deleted_ids)
                for d in plan.decisions
            ],
            "deleted": len(deleted_ids),
        },
        "\n".join([title, *_lines(plan, dry_run=dry_run, deleted=deleted_ids)]),
    )
