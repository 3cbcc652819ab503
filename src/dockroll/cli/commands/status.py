"""``dockroll status`` and ``dockroll audit``: what runs where, and who did what."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state
from dockroll.errors import DockrollError, EngineUnavailable, RouterError

if TYPE_CHECKING:
    from dockroll.pipeline.status import EnvironmentStatus


def _table(status: EnvironmentStatus) -> Table:
    table = Table(
        title=f"{status.name} (127.0.0.1:{status.port}, {status.strategy})",
        title_justify="left",
        expand=False,
    )
    # Replicas that are Swarm services run on some node of the cluster: say which.
    on_nodes = any(replica.node for replica in status.replicas)
    columns = ["replica", "version", "digest", "slot", "health", "router", "traffic"]
    for column in columns:
        table.add_column(column)
    if on_nodes:
        table.add_column("node", no_wrap=True)  # a hostname is read whole or not at all
    for replica in status.replicas:
        weight = "—" if replica.weight is None else str(replica.weight)
        cells = [
            escape(replica.name),
            escape(replica.version),
            replica.digest.removeprefix("sha256:")[:12],
            escape(replica.slot),
            escape(f"{replica.state}/{replica.health_summary}"),
            f"w={weight} {replica.router_health}",
            f"{replica.share:.0%}",
        ]
        table.add_row(*cells, *([escape(replica.node_label)] if on_nodes else []))
    return table


@app.command("status")
def status_command(
    ctx: typer.Context,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="Only these environments.")
    ] = None,
) -> None:
    """Every environment's version, digest, health, router weights and drift."""
    cli = state(ctx)
    config = cli.config
    for name in env or []:
        config.environment(name)
    from dockroll.ledger import open_ledger_reads
    from dockroll.pipeline.status import service_status

    with open_ledger_reads() as ledger:
        statuses, notes = service_status(config, ledger, env or None)
    if cli.output.json_mode:
        cli.output.result(
            {
                "service": config.service,
                "environments": [s.to_json() for s in statuses],
                "drift": notes,
            }
        )
    else:
        _print(cli.output.out, statuses, notes)
    _fail_when_incomplete(statuses)


def _fail_when_incomplete(statuses: list[EnvironmentStatus]) -> None:
    """A status that could not read an engine or a router is no all-clear: scripts see its
    exit code (3 for an engine, 10 for a router) after everything it could read."""
    engines = [(s.name, s.unreachable) for s in statuses if s.unreachable is not None]
    if engines:
        raise EngineUnavailable(
            _incomplete("the engine", engines),
            hint=engines[0][1].hint
            or "start it, or check DOCKER_HOST and the environment's engine in dockroll.yml",
        )
    routers = [(s.name, s.router_unreachable) for s in statuses if s.router_unreachable]
    if routers:
        raise RouterError(
            _incomplete("the router", routers),
            hint=routers[0][1].hint or "`docker ps -a` shows whether the router container runs",
        )


def _incomplete(what: str, problems: list[tuple[str, DockrollError]]) -> str:
    names = ", ".join(name for name, _ in problems)
    lines = "".join(f"\n  {name}: {error.message}" for name, error in problems)
    return f"status is incomplete: {what} of {names} could not be read{lines}"


def _print(out: Console, statuses: list[EnvironmentStatus], notes: list[str]) -> None:
    for status in statuses:
        ledger_line = (
            f"{status.ledger_version} ({(status.ledger_digest or '')[:19]})"
            if status.ledger_version
            else "nothing deployed yet"
        )
        out.print(f"[bold]{escape(status.name)}[/]: {escape(', '.join(status.versions) or '-')}")
        out.print(f"  ledger   {escape(ledger_line)}")
        out.print(f"  engine   {escape(status.engine)}")
        out.print(f"  router   {escape(status.router)}")
        if status.lock:
            out.print(f"  lock     held by {escape(str(status.lock['holder']))}")
        if status.standby_note:
            out.print(f"  standby  {escape(status.standby_note)}")
        undone = status.last_undone
        if undone and undone.get("failed_requests") is not None:
            out.print(
                f"  undone   {escape(str(undone['version']))} ({undone['status']}): "
                f"{undone['failed_requests']} of {undone['served_requests']} requests failed, "
                f"{undone['traffic_seconds']:g} traffic-s"
            )
        if status.replicas:
            out.print(_table(status))
        for process in status.processes:
            drift = " [yellow](settings changed)[/]" if process.config_drift else ""
            out.print(
                f"  {escape(process.process):<8} {escape(process.name)}  "
                f"{escape(process.version)}  {escape(process.state)}, {escape(process.health)}"
                + drift
            )
        for note in status.drift:
            out.print(f"  [yellow]drift[/]    {escape(note)}")
    for note in notes:
        out.print(f"[yellow]drift[/] {escape(note)}")


@app.command("audit")
def audit_command(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action (push, promote, …).")
    ] = None,
    actor: Annotated[str | None, typer.Option("--by", help="Only this actor.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 50,
) -> None:
    """Who did what, when, and how it ended; newest first."""
    cli = state(ctx)
    config = cli.config
    from dockroll.ledger import open_ledger

    with open_ledger() as ledger:
        events = ledger.audit_events(
            service=config.service, env=env, action=action, actor=actor, limit=limit
        )
    if cli.output.json_mode:
        cli.output.result({"service": config.service, "events": [e.as_dict() for e in events]})
        return
    if not events:
        cli.output.line("no audit events recorded yet")
        return
    table = Table(title=f"audit of {config.service}", title_justify="left")
    for column in ("when", "who", "action", "env", "target", "outcome"):
        table.add_column(column)
    for event in events:
        table.add_row(
            f"{event.at:%Y-%m-%d %H:%M:%S}",
            escape(event.actor),
            escape(event.action),
            escape(event.env or ""),
            escape(event.target or ""),
            event.outcome.value,
        )
    cli.output.out.print(table)
