"""``dockroll logs --router --env ENV``: the requests an environment's router served."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import UsageError


@app.command("logs")
def logs_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", "-e", help="The environment.")],
    router: Annotated[
        bool, typer.Option("--router", help="The router's access log (one line per request).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only requests of the last ..., e.g. 10m, 1h.", show_default=False
        ),
    ] = None,
    tail: Annotated[int, typer.Option("--tail", help="At most this many lines.")] = 100,
) -> None:
    """The router's access log: time, client, method, URI, status, replica, timers, request id.

    The client is the address the router saw (the original client's behind a
    load balancer that speaks the PROXY protocol); the request id is the
    X-Request-ID the application received.
    """
    from dockroll.durations import parse_duration
    from dockroll.pipeline.router import router_access_log

    cli = state(ctx)
    if not router:
        raise UsageError(
            "only the router's access log is kept by dockroll: pass --router",
            hint="a replica's output is `docker logs <container>` (`dockroll status` names them)",
        )
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
