"""``dockroll releases`` and ``dockroll history``: what the ledger remembers of a service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state

if TYPE_CHECKING:
    from datetime import datetime

    from dockroll.ledger import HistoryEntry, Release

__all__ = ["history_command", "releases_command"]

ServiceOption = Annotated[
    str | None,
    typer.Option(
        "--service",
        "-s",
        help="Service name (default: `service` in dockroll.yml).",
        show_default=False,
    ),
]
LimitOption = Annotated[
    int, typer.Option("--limit", "-n", min=1, help="Show at most this many entries.")
]

_STATUS_COLOURS = {
    "succeeded": "green",
    "running": "cyan",
    "pending": "cyan",
    "failed": "red",
    "aborted": "red",
    "rolled_back": "yellow",
}


@app.command("releases")
def releases_command(
    ctx: typer.Context, service: ServiceOption = None, limit: LimitOption = 20
) -> None:
    """List a service's recorded releases, most recently pushed first."""
    from dockroll.ledger import open_ledger

    cli = state(ctx)
    name = service or cli.config.service
    with open_ledger() as ledger:
        releases = ledger.releases(name, limit)
    if cli.output.json_mode:
        cli.output.result({"service": name, "releases": [r.as_dict() for r in releases]})
        return
    if not releases:
        cli.output.line(f"no releases of {escape(name)} recorded yet (`dockroll push` records one)")
        return
    cli.output.out.print(_releases_table(name, releases))


@app.command("history")
def history_command(
    ctx: typer.Context,
    service: ServiceOption = None,
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="Only this environment.", show_default=False),
    ] = None,
    limit: LimitOption = 50,
) -> None:
    """Show a service's promotions, deployments and rollbacks, newest first."""
    from dockroll.ledger import open_ledger

    cli = state(ctx)
    name = service or cli.config.service
    with open_ledger() as ledger:
        entries = ledger.history(name, env, limit=limit)
    if cli.output.json_mode:
        cli.output.result({"service": name, "env": env, "history": [e.as_dict() for e in entries]})
        return
    if not entries:
        where = f" in {escape(env)}" if env else ""
        cli.output.line(f"no promotions or deployments of {escape(name)}{where} recorded yet")
        return
    cli.output.out.print(_history_table(name, env, entries))


def _releases_table(service: str, releases: list[Release]) -> Table:
    table = Table(title=f"releases of {escape(service)}", title_justify="left")
    table.add_column("version")
    table.add_column("digest", no_wrap=True)
    table.add_column("pushed", no_wrap=True)
    table.add_column("by")
    table.add_column("git")
    table.add_column("tags", overflow="fold")
    for release in releases:
        table.add_row(
            escape(release.version),
            _short_digest(release.digest),
            _when(release.pushed_at),
            escape(_short_actor(release.created_by)),
            (release.git_sha or "")[:12],
            escape(", ".join(release.tags)),
        )
    return table


def _history_table(service: str, env: str | None, entries: list[HistoryEntry]) -> Table:
    # Digests stay out of this table to keep it readable in 80 columns; --json has them.
    from dockroll.ledger import HistoryKind

    title = f"history of {escape(service)}" + (f" in {escape(env)}" if env else "")
    table = Table(title=title, title_justify="left")
    table.add_column("when", no_wrap=True)
    table.add_column("env")
    table.add_column("action")
    table.add_column("version")
    table.add_column("status", no_wrap=True)
    table.add_column("by")
    table.add_column("notes", overflow="fold")
    for entry in entries:
        if entry.kind == HistoryKind.PROMOTION:
            action = f"promote from {entry.from_env}" if entry.from_env else "promote"
        else:
            action = "rollback" if entry.kind == HistoryKind.ROLLBACK else "deploy"
            action += f" {entry.strategy}" if entry.strategy else ""
        colour = _STATUS_COLOURS.get(entry.status, "white")
        notes = " — ".join(text for text in (entry.reason, entry.notes, _cost(entry)) if text)
        table.add_row(
            _when(entry.at),
            escape(entry.env),
            escape(action),
            escape(entry.version),
            f"[{colour}]{escape(entry.status)}[/]",
            escape(_short_actor(entry.who)),
            escape(notes),
        )
    return table


def _cost(entry: HistoryEntry) -> str:
    """What an undone release cost, e.g. "cost: 30 of 120 requests failed, 4.5 traffic-s"."""
    if entry.failed_requests is None or entry.served_requests is None:
        return ""
    seconds = entry.traffic_seconds or 0.0
    return (
        f"cost: {entry.failed_requests} of {entry.served_requests} requests failed, "
        f"{seconds:g} traffic-s"
    )


def _short_actor(actor: str) -> str:
    # "Name <email>" reads as Name in a table; --json keeps the full form.
    name = actor.split("<", 1)[0].strip()
    return name or actor


def _short_digest(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
