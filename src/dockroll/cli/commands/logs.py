"""``dockroll logs``: the output of an environment's replicas, merged, with their version."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from dockroll.cli.app import app, state

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
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    tail: Annotated[int, typer.Option("--tail", "-n", help="Last lines per replica.")] = 100,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line with its time.")
    ] = False,
) -> None:
    """Every replica's output merged by time, each line prefixed with its version and replica."""
    from dockroll.engine.docker import DockerEngine
    from dockroll.pipeline.lifecycle import log_containers, log_lines

    cli = state(ctx)
    config = cli.config
    engine = DockerEngine(config.environment(env).engine)
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
