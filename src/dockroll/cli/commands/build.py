"""``dockroll build``: one BuildKit build with every computed tag."""

from __future__ import annotations

from typing import Annotated

import typer

from dockroll.cli.app import app, state
from dockroll.cli.commands import parse_pairs


@app.command("build")
def build_command(
    ctx: typer.Context,
    build_arg: Annotated[
        list[str] | None,
        typer.Option("--build-arg", help="KEY=VALUE, overrides computed and configured args."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Build without layer cache.")
    ] = False,
    pull: Annotated[bool, typer.Option("--pull", help="Always pull newer base images.")] = False,
) -> None:
    """Build the service's image with its computed tags, labels and build args."""
    from dockroll.engine.docker import DockerEngine
    from dockroll.pipeline.build import build_release
    from dockroll.pipeline.metadata import release_metadata

    cli = state(ctx)
    config = cli.config
    metadata = release_metadata(config)
    engine = DockerEngine()
    with cli.output.progress(f"building {config.service}") as progress:
        result = build_release(
            config,
            metadata,
            engine,
            build_args=parse_pairs(build_arg or [], "--build-arg"),
            no_cache=no_cache,
            pull=pull,
            progress=progress,
        )
    record = result.record
    human = [
        f"[green]built[/] {config.service} {record.version} "
        f"in {result.seconds:.1f}s with {result.builder}",
        f"  image id  {record.image_id}",
        f"  size      {record.size / 1e6:.1f} MB",
    ]
    if result.substituted_base:
        human.append(f"  base      {result.substituted_base[1]} (for {result.substituted_base[0]})")
    human += [f"  tag       {tag}" for tag in record.tags]
    human.append("next: `dockroll test` to smoke-test it, then `dockroll push`")
    cli.output.result(
        {**record.to_json(), "builder": result.builder, "seconds": round(result.seconds, 2)},
        "\n".join(human),
    )
