"""``dockroll config check|schema``: validate dockroll.yml, print its JSON schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state

if TYPE_CHECKING:
    from dockroll.config import Config, EnvironmentConfig

__all__ = ["format_duration"]

config_app = typer.Typer(help="Check dockroll.yml, or print its JSON schema for editors.")
app.add_typer(config_app, name="config")


def format_duration(seconds: float) -> str:
    """``0.5`` → ``500ms``, ``300`` → ``5m``: a duration as one would write it."""
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _config_path(explicit: Path | None) -> Path:
    from dockroll.config import find_config

    if explicit is not None:
        return explicit
    from_env = os.environ.get("DOCKROLL_CONFIG")
    return Path(from_env) if from_env else find_config()


def _policy(env: EnvironmentConfig) -> list[str]:
    rules: list[str] = []
    if env.requires_approval:
        rules.append("approval" + ("" if env.allow_self_approval else " by someone else"))
    if env.min_soak > 0:
        rules.append(f"soak {format_duration(env.min_soak)}")
    if env.window is not None:
        window = env.window
        rules.append(
            f"window {','.join(window.days)} {window.start}-{window.end} {window.timezone}"
        )
    rules.append("moving tags allowed" if env.allow_mutable_tags else "fixed references only")
    return rules


def _environment_summary(name: str, env: EnvironmentConfig) -> dict[str, Any]:
    return {
        "name": name,
        "port": env.port,
        "listen": [
            str(listener.listen_address) + (" (tls)" if listener.tls else "")
            for listener in env.router.listen
        ]
        or [f"127.0.0.1:{env.port}"],
        "metrics": str(env.metrics_address()),
        "engine": env.engine or "local",
        "strategy": env.strategy.value,
        "replicas": env.replicas,
        "promote_from": env.promote_from,
        "requires_approval": env.requires_approval,
        "allow_self_approval": env.allow_self_approval,
        "min_soak": env.min_soak,
        "window": env.window.model_dump() if env.window else None,
        "allow_mutable_tags": env.allow_mutable_tags,
        "tags": list(env.tags),
        "migrate": env.migrate is not None,
        "analysis": env.analysis is not None,
        "policy": _policy(env),
    }


def _processes_summary(config: Config, order: list[str]) -> list[dict[str, Any]]:
    """Each process of one release: its command, router or not, and replicas per environment."""
    from dockroll.processes import process_replicas, routed_process

    routed = routed_process(config)
    summary = []
    for name, process in config.processes.items():
        with_router = name == routed
        summary.append(
            {
                "name": name,
                "router": with_router,
                "command": list(process.command) if process.command else None,
                "health": "router" if with_router else process.health,
                "start": None if with_router else process.start,
                "replicas": {
                    env: config.environments[env].replicas
                    if with_router
                    else process_replicas(config, env, name)
                    for env in order
                },
            }
        )
    return summary


def _accessories_summary(config: Config, order: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "image": accessory.image,
            "environments": [
                env
                for env in order
                if accessory.environments is None or env in accessory.environments
            ],
        }
        for name, accessory in config.accessories.items()
    ]


def _process_line(process: dict[str, Any]) -> str:
    counts = set(process["replicas"].values())
    replicas = (
        f"{counts.pop()} per environment"
        if len(counts) == 1
        else ", ".join(f"{env} {n}" for env, n in process["replicas"].items())
    )
    how = "behind the router" if process["router"] else f"{process['health']}, {process['start']}"
    command = " ".join(process["command"]) if process["command"] else "the image's command"
    return f"{process['name']} (replicas: {replicas}; {how}): {command}"


def _warnings(config: Config) -> list[str]:
    """What loads fine but will fail later, said now."""
    warnings: list[str] = []
    if not config.dockerfile_path.is_file():
        warnings.append(
            f"build.dockerfile: {config.dockerfile_path} does not exist; `dockroll build` will fail"
        )
    if not config.environments:
        warnings.append("no environments: add some under `environments:` to promote and deploy")
    return warnings


@config_app.command("check")
def check_command(ctx: typer.Context) -> None:
    """Load and validate dockroll.yml; summarise its environments (exit 2 when invalid)."""
    from dockroll.config import load_config
    from dockroll.policy import environment_order

    cli = state(ctx)
    path = _config_path(cli.config_path)
    config = load_config(path)
    order = environment_order(config)
    environments = [_environment_summary(name, config.environments[name]) for name in order]
    warnings = _warnings(config)
    processes = _processes_summary(config, order)
    accessories = _accessories_summary(config, order)
    data = {
        "config": str(path),
        "valid": True,
        "service": config.service,
        "image": config.image,
        "environments": environments,
        "processes": processes,
        "accessories": accessories,
        "mirrors": [mirror.model_dump() for mirror in config.mirrors],
        "retention": config.retention.model_dump(),
        "warnings": warnings,
    }
    for warning in warnings:
        cli.output.warn(escape(warning))

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("environment", "listens", "strategy", "replicas", "from", "policy", "tags"):
        table.add_column(column)
    for env in environments:
        table.add_row(
            escape(env["name"]),
            escape(", ".join(env["listen"])),
            env["strategy"],
            str(env["replicas"]),
            escape(env["promote_from"] or "registry"),
            escape(", ".join(env["policy"])),
            escape(", ".join(env["tags"]) or "-"),
        )
    mirrors = ", ".join(mirror.registry for mirror in config.mirrors) or "none"
    protected = ", ".join(config.retention.protected_tags)
    parts: list[Any] = []
    if processes:
        parts.append("processes, one release:")
        parts += [f"  {escape(_process_line(p))}" for p in processes]
    if accessories:
        parts.append("accessories, never rolled:")
        parts += [
            f"  {escape(a['name'])} ({escape(a['image'])}): "
            f"{escape(', '.join(a['environments']) or 'no environment')}"
            for a in accessories
        ]
    human = Group(
        f"[green]valid[/] {escape(str(path))}: service {escape(config.service)}, "
        f"image {escape(config.image)}",
        "",
        table if environments else "no environments",
        "",
        *parts,
        *([""] if parts else []),
        f"mirrors: {escape(mirrors)}; `dockroll prune` keeps the newest "
        f"{config.retention.keep} releases"
        + (f" and tags {escape(protected)}" if protected else ""),
    )
    cli.output.result(data, human)


@config_app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of dockroll.yml (for editors: yaml-language-server, IDEs)."""
    from dockroll.config_schema import config_schema

    typer.echo(json.dumps(config_schema(), indent=2))
