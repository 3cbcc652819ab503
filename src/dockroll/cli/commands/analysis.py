"""``dockroll analysis replay``: judge a recorded rollout again with other settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state

if TYPE_CHECKING:
    from dockroll.analysis.replay import Replay

__all__ = ["replay_command"]

analysis_app = typer.Typer(help="The analysis of rollouts, as recorded in the ledger.")
app.add_typer(analysis_app, name="analysis")

_SHOWN_TICKS = 20


@analysis_app.command("replay")
def replay_command(
    ctx: typer.Context,
    deployment: Annotated[int, typer.Argument(help="The deployment id (`dockroll history`).")],
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Change an analysis setting for the replay, KEY=VALUE (dotted for nested "
            "keys, e.g. success_rate.min=0.98); repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-judge a deployment's recorded analysis samples; say whether and when the
    decision would have differed."""
    from dockroll.analysis.replay import parse_overrides, replay
    from dockroll.errors import UsageError
    from dockroll.ledger import DeploymentId, open_ledger

    cli = state(ctx)
    overrides = parse_overrides(settings or [])
    with open_ledger() as ledger:
        recorded = ledger.deployment(DeploymentId(deployment))
        samples = ledger.samples(recorded)
    if not samples:
        raise UsageError(
            f"deployment {deployment} has no recorded analysis samples",
            hint="only rollouts that ran an analysis (an `analysis:` section) record them; "
            "`dockroll history` lists deployments",
        )
    result = replay(samples, overrides)
    data = {"deployment": deployment, "status": recorded.status.value, **result.as_dict()}
    cli.output.result(data, _human(deployment, result))


def _human(deployment: int, result: Replay) -> Table:
    title = f"deployment {deployment}: {escape(result.summary())}"
    table = Table(title=title, title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("t", justify="right")
    table.add_column("traffic")
    table.add_column("recorded")
    table.add_column("replayed")
    shown = [t for t in result.ticks if t.differs or t.action != "continue"]
    shown += [t for t in result.ticks if t.recorded_action != "continue" and t not in shown]
    shown.sort(key=lambda t: (t.step_index, t.tick))
    for tick in shown[:_SHOWN_TICKS]:
        mark = "[bold yellow]" if tick.differs else ""
        end = "[/]" if tick.differs else ""
        table.add_row(
            str(tick.step_index),
            f"{tick.elapsed:g}s",
            f"{tick.percent}%" if tick.percent is not None else "full",
            escape(f"{tick.recorded_action}: {tick.recorded_reason}"),
            f"{mark}{escape(f'{tick.action}: {tick.reason}')}{end}",
        )
    if result.skipped_checks:
        table.caption = "custom checks not replayed: " + ", ".join(result.skipped_checks)
    return table
