"""``dockroll test``: run the built image and check it answers as what was built."""

from __future__ import annotations

from typing import Annotated

import typer

from dockroll.cli.app import app, state


@app.command("test")
def smoke_test_command(
    ctx: typer.Context,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Image to test (default: the last `dockroll build`)."),
    ] = None,
    expect_version: Annotated[
        str | None, typer.Option("--expect-version", help="Version /version must report.")
    ] = None,
    expect_sha: Annotated[
        str | None, typer.Option("--expect-sha", help="Git sha /version must report.")
    ] = None,
) -> None:
    """Smoke-test an image: start it, wait for health, check /version, remove it."""
    from dockroll.engine.docker import DockerEngine
    from dockroll.pipeline.records import load_last_build
    from dockroll.pipeline.smoke import smoke_test

    cli = state(ctx)
    config = cli.config
    if image is None:
        record = load_last_build(config.service, otherwise="pass --image REF to test an image")
        image = record.image_id
        expect_version = expect_version or record.version
        expect_sha = expect_sha or record.git_sha or None
        shown = record.tags[0] if record.tags else image
    else:
        shown = image
    with cli.output.progress(f"smoke-testing {shown}") as progress:
        result = smoke_test(
            config,
            DockerEngine(),
            image,
            expect_version=expect_version,
            expect_sha=expect_sha,
            progress=progress,
        )
    reported = ", ".join(f"{k}={v}" for k, v in result.version.items())
    cli.output.result(
        {
            "image": shown,
            "healthy_after_seconds": round(result.seconds_to_healthy, 2),
            "health_source": result.health_source,
            "version": dict(result.version),
        },
        f"[green]passed[/] {shown}: healthy after {result.seconds_to_healthy:.1f}s "
        f"({result.health_source})\n  reports {reported or '(no version endpoint)'}\n"
        "next: `dockroll push`",
    )
