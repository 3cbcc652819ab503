"""``dockroll logs``: the output of an environment's replicas, or its router's access log."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import CliState, app, state
from dockroll.errors import UsageError

if TYPE_CHECKING:
    from dockroll.pipeline.lifecycle import LogLine


def _line(line: LogLine, timestamps: bool) -> str:
    stamp = f"{line.at.isoformat(timespec='milliseconds')} " if timestamps and line.at else ""
    return f"{stamp}{line.version} {line.container} | {line.text}\n"


@app.command("logs")
def logs_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", "-e", help="The environment.")],
    process: Annotated[
        str | None,
        typer.Option("--process", "-p", help="Only this process (web, worker …)."),
    ] = None,
    router: Annotated[
        bool, typer.Option("--router", help="The router's access log (one line per request).")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", help="Last lines per replica.")] = 100,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="With --router: only requests of the last ..., e.g. 10m, 1h.",
            show_default=False,
        ),
    ] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line with its time.")
    ] = False,
) -> None:
    """Every replica's output merged by time, each line prefixed with its version and replica.

    With --router, the router's access log instead: time, client, method, URI,
    status, replica, timers, request id. The client is the address the router
    saw (the original client's behind a load balancer that speaks the PROXY
    protocol); the request id is the X-Request-ID the application received.
    """
    cli = state(ctx)
    if router:
        if process is not None or follow:
            raise UsageError(
                "--router shows the router's access log: it takes --since and --tail, "
                "not --process or --follow"
            )
        _router_log(cli, env, since, tail)
        return
    if since is not None:
        raise UsageError("--since goes with --router", hint="replicas' output takes --tail")
    _replica_logs(cli, env, process, follow=follow, tail=tail, timestamps=timestamps)


def _router_log(cli: CliState, env: str, since: str | None, tail: int) -> None:
    from dockroll.durations import parse_duration
    from dockroll.pipeline.router import router_access_log

    seconds = None
    if since is not None:
        try:
            seconds = parse_duration(since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
    entries = router_access_log(cli.config, env, since_seconds=seconds, tail=tail)
    lines = [
        f"{e.at:%Y-%m-%dT%H:%M:%S}Z {escape(e.client)} {escape(e.method)} {escape(e.uri)} "
        f"{e.status} {escape(e.server)} {e.response_ms}/{e.total_ms}ms {escape(e.request_id)}"
        for e in entries
    ]
    cli.output.result(
        [e.to_json() for e in entries], "\n".join(lines) or f"no request logged in {escape(env)}"
    )


def _replica_logs(
    cli: CliState, env: str, process: str | None, *, follow: bool, tail: int, timestamps: bool
) -> None:
    from dockroll.pipeline.engines import environment_engine
    from dockroll.pipeline.lifecycle import log_containers, log_lines

    config = cli.config
    engine = environment_engine(config, env)
    try:
        containers = log_containers(config, env, engine, process)
        lines = log_lines(config, engine, containers, tail=tail)
        if cli.output.json_mode:
            cli.output.result({"environment": env, "lines": [line.to_json() for line in lines]})
            return
        for line in lines:
            sys.stdout.write(_line(line, timestamps))
        sys.stdout.flush()
        last = {line.container: line.at for line in lines if line.at is not None}
        while follow:
            time.sleep(1.0)
            containers = log_containers(config, env, engine, process)
            since = {c.name: last[c.name] for c in containers if last.get(c.name) is not None}
            seen = [c for c in containers if c.name in since]
            # A replica seen for the first time (a new rollout's) shows its last lines.
            new = [c for c in containers if c.name not in since]
            fresh = log_lines(config, engine, seen, tail=None, since=since)
            fresh += log_lines(config, engine, new, tail=tail)
            for line in fresh:
                sys.stdout.write(_line(line, timestamps))
                if line.at is not None:
                    last[line.container] = max(line.at, last.get(line.container, line.at))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()
