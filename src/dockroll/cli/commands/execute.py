"""``dockroll exec``: run a command in a running replica of an environment."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from dockroll.cli.app import app, state


@app.command(
    "exec", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
def exec_command(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", "-e", help="The environment.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments.")],
    process: Annotated[
        str | None, typer.Option("--process", "-p", help="A replica of this process.")
    ] = None,
    replica: Annotated[
        str | None, typer.Option("--replica", "-r", help="This replica (a container name).")
    ] = None,
) -> None:
    """Run COMMAND in a running replica (`docker exec`, interactive on a terminal)."""
    from dockroll.errors import EngineError
    from dockroll.pipeline.engines import environment_engine
    from dockroll.pipeline.lifecycle import pick_container

    cli = state(ctx)
    config = cli.config
    engine = environment_engine(config, env)
    try:
        target = pick_container(config, env, engine, process=process, replica=replica)
    finally:
        engine.close()
    flags = ["-i"] if sys.stdin.isatty() else []
    flags += ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
    try:
        done = subprocess.run(
            ["docker", "exec", *flags, target.name, *command],
            env={**os.environ, "DOCKER_HOST": engine.endpoint},
            check=False,
        )
    except FileNotFoundError:
        raise EngineError(
            "`dockroll exec` runs the docker CLI, which is not on PATH",
            hint="install the docker client",
        ) from None
    raise typer.Exit(done.returncode)
