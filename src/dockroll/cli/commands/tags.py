"""``dockroll tags``: image tags, OCI labels and build args for this commit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dockroll.cli.app import app, state
from dockroll.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from dockroll.config import Config


def _optional_config(path: Path | None) -> Config | None:
    from dockroll.config import load_config

    try:
        return load_config(path)
    except ConfigError:
        if path is not None:
            raise
        return None


@app.command("tags")
def tags_command(
    ctx: typer.Context,
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--images", help="Image names, comma-separated or repeated (default: dockroll.yml)."
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
    from dockroll.tags import compute, detect_context, github_output_lines

    cli = state(ctx)
    config = _optional_config(cli.config_path)
    names = [n.strip() for item in images or [] for n in item.split(",") if n.strip()]
    if not names and config is not None:
        names = [config.image]
    tag_rules = list(rules or []) or (list(config.tags.rules) if config else [])
    flavor_lines = list(flavor or []) or (list(config.tags.flavor) if config else [])
    label_lines = list(labels or []) or (list(config.tags.labels) if config else [])
    context = detect_context(cwd=config.root if config else None, repo_json=repo_json)
    for note in context.notes:
        cli.output.warn(escape(note))
    metadata = compute(
        context, images=names, rules=tag_rules, flavor=flavor_lines, labels=label_lines
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
