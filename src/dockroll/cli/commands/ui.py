"""``dockroll ui``: the dashboard, served on 127.0.0.1 by default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state

__all__ = ["ui_command"]

DEFAULT_PORT = 8765


@app.command("ui")
def ui_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (keep 127.0.0.1 unless proxied).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = DEFAULT_PORT,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="Bearer tokens that may use the controls, one a line (NAME:TOKEN names the "
            "actor audited); without it the dashboard is read-only.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the dashboard: environments, live rollout timelines, history, releases,
    audit and the DORA report; controls with a token."""
    from dockroll.web import Tokens, create_app, load_tokens, serve

    cli = state(ctx)
    config = cli.config
    tokens = load_tokens(token_file) if token_file is not None else Tokens()
    web = create_app(config, tokens)
    mode = "controls need a token" if tokens.enabled else "read-only"
    cli.output.err.print(
        f"dockroll ui for {escape(config.service)} on http://{escape(host)}:{port}/ ({mode})"
    )
    serve(web, host=host, port=port)
