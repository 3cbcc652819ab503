"""``dockroll report``: DORA metrics per environment from the ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state

if TYPE_CHECKING:
    from dockroll.pipeline.report import DoraReport

__all__ = ["report_command"]


@app.command("report")
def report_command(
    ctx: typer.Context,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Only this environment (repeatable).", show_default=False),
    ] = None,
    days: Annotated[int, typer.Option("--days", help="The window: 7, 30 or 90 days.")] = 30,
    service: Annotated[
        str | None,
        typer.Option("--service", "-s", help="Only this service.", show_default=False),
    ] = None,
) -> None:
    """DORA metrics per environment: deployment frequency, lead time for changes,
    change failure rate and time to restore."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.report import dora_report

    cli = state(ctx)
    with open_ledger() as ledger:
        report = dora_report(ledger, days=days, environments=env, service=service)
    cli.output.result(report.as_dict(), _table(report))


def _table(report: DoraReport) -> Table | str:
    from dockroll.pipeline.report import duration_text

    scope = f" of {escape(report.service)}" if report.service else ""
    if not report.environments:
        return f"no deployments{scope} in the last {report.days} days"
    table = Table(title=f"DORA metrics{scope}, last {report.days} days", title_justify="left")
    table.add_column("env")
    table.add_column("deployments", justify="right")
    table.add_column("per day", justify="right")
    table.add_column("lead time (median)", justify="right")
    table.add_column("change failure rate", justify="right")
    table.add_column("time to restore (median)", justify="right")
    for env in report.environments:
        rate = env.change_failure_rate
        table.add_row(
            escape(env.env),
            str(env.deployments),
            f"{env.per_day:g}",
            f"{duration_text(env.lead_time_seconds)} ({env.lead_times})",
            f"{rate:.0%} ({env.failed_changes}/{env.changes})" if rate is not None else "-",
            f"{duration_text(env.time_to_restore_seconds)} ({env.restores})",
        )
    return table
