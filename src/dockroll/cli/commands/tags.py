"""``dockroll tags``: image tags, OCI labels and build args for this commit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import UsageError


@app.command("tags")
def tags_command(
    ctx: typer.Context,
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--images",
            help="An images line of the action: names comma-separated, or one image with "
            "attributes ('ghcr.io/acme/app,enable=false'); repeatable. Without it: "
            "dockroll.yml's image and tags section.",
        ),
    ] = None,
    rules: Annotated[
        list[str] | None,
        typer.Option(
            "--tags",
            help="A metadata-action tag rule, e.g. 'type=semver,pattern={{version}}'; repeatable.",
        ),
    ] = None,
    flavor: Annotated[
        list[str] | None,
        typer.Option("--flavor", help="A flavor line, e.g. 'latest=false'; repeatable."),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--labels", help="A label KEY=VALUE that overrides computed ones."),
    ] = None,
    annotations: Annotated[
        list[str] | None,
        typer.Option("--annotations", help="An annotation KEY=VALUE that overrides computed ones."),
    ] = None,
    repo_json: Annotated[
        Path | None,
        typer.Option(
            "--repo-json",
            help="GitHub REST repository object for name, default branch, license …",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    github_output: Annotated[
        bool,
        typer.Option("--github-output", help="Also append the outputs to $GITHUB_OUTPUT."),
    ] = False,
) -> None:
    """Compute tags the way docker/metadata-action does, in any CI or on a laptop."""
    from dockroll.tags import (
        ACTION_DEFAULT_RULES,
        DEFAULT_RULES,
        compute,
        detect_context,
        github_output_lines,
        parse_images,
    )

    cli = state(ctx)
    config = cli.optional_config()
    image_lines = [item for item in images or [] if item.strip()]
    default_rules: tuple[str, ...] = DEFAULT_RULES
    tag_rules = list(rules or [])
    flavor_lines = list(flavor or [])
    label_lines = list(labels or [])
    if image_lines:
        # The action's inputs, and only those: the same workflow lines give the same tags.
        default_rules = ACTION_DEFAULT_RULES
    elif config is not None:
        image_lines = [config.image]
        tag_rules = tag_rules or list(config.tags.rules)
        flavor_lines = flavor_lines or list(config.tags.flavor)
        label_lines = label_lines or list(config.tags.labels)
    parse_images(image_lines)  # a malformed entry is refused before anything is looked up
    context = detect_context(cwd=config.root if config else None, repo_json=repo_json)
    for note in context.notes:
        cli.output.warn(escape(note))
    metadata = compute(
        context,
        images=image_lines,
        rules=tag_rules,
        flavor=flavor_lines,
        labels=label_lines,
        annotations=list(annotations or []),
        default_rules=default_rules,
    )
    if github_output:
        target = os.environ.get("GITHUB_OUTPUT")
        if not target:
            raise UsageError(
                "--github-output needs $GITHUB_OUTPUT, which GitHub Actions sets for each step"
            )
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(github_output_lines(metadata))
    human = [f"version  {metadata.version or '(none)'}"]
    human += [f"tag      {tag}" for tag in metadata.tags] or ["tag      (none: no rule matched)"]
    human += [f"label    {key}={value}" for key, value in metadata.labels.items()]
    human += [f"arg      {key}={value}" for key, value in metadata.build_args.items()]
    cli.output.result(metadata.to_json(), "\n".join(human))
