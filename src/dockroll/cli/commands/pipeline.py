"""``dockroll pipeline``: build → test → scan → tag → push → deploy, failing fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state
from dockroll.pipeline.stages import STAGES

if TYPE_CHECKING:
    from dockroll.pipeline.run import PipelineResult, StageResult

_MARKS = {"passed": "[green]passed[/]", "failed": "[red]FAILED[/]", "skipped": "[dim]skipped[/]"}


def _table(result: PipelineResult) -> Table:
    table = Table(title="pipeline", title_justify="left")
    for column in ("stage", "result", "time", "summary"):
        table.add_column(column)
    for stage in result.stages:
        table.add_row(
            stage.name, _MARKS[stage.status], f"{stage.seconds:.1f}s", escape(stage.summary)
        )
    return table


@app.command("pipeline")
def pipeline_command(
    ctx: typer.Context,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help=f"Skip a stage ({', '.join(STAGES)}); repeatable."),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="Where the deploy stage goes (default: the first)."),
    ] = None,
) -> None:
    """Run the stages locally in order; the first failure stops it and names the stage."""
    from dockroll.ledger import open_ledger
    from dockroll.pipeline.run import PipelineResult, run_pipeline

    cli = state(ctx)
    config = cli.config
    done: list[StageResult] = []

    def on_stage(stage: StageResult) -> None:
        done.append(stage)
        if not cli.output.json_mode:
            cli.output.err.print(
                f"{_MARKS[stage.status]} {stage.name} ({stage.seconds:.1f}s): "
                f"{escape(stage.summary)}"
            )

    with open_ledger() as ledger, cli.output.progress(f"pipeline of {config.service}") as progress:
        try:
            result = run_pipeline(
                config,
                ledger,
                skip=skip or [],
                environment=env,
                progress=progress,
                on_stage=on_stage,
            )
        except Exception:
            if cli.output.json_mode:
                cli.output.result(
                    {"service": config.service, "ok": False, "stages": [s.to_json() for s in done]}
                )
            else:
                cli.output.out.print(_table(PipelineResult(tuple(done))))
            raise
    cli.output.result(
        {
            "service": config.service,
            "ok": result.ok,
            "stages": [s.to_json() for s in result.stages],
        },
        _table(result),
    )
