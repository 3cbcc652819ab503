"""``dockroll config check|schema``: validate dockroll.yml, print its JSON schema."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import textwrap
from pathlib import Path
from typing import Any, get_args

import typer
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema
from rich.console import Group
from rich.markup import escape
from rich.table import Table

from dockroll.cli.app import app, state
from dockroll.config import Config, EnvironmentConfig, find_config, load_config
from dockroll.durations import parse_duration
from dockroll.policy import environment_order

__all__ = ["DURATION_PATTERN", "config_schema", "format_duration"]

config_app = typer.Typer(help="Check dockroll.yml, or print its JSON schema for editors.")
app.add_typer(config_app, name="config")

DURATION_PATTERN = r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h)?|\$\{[^}]+\})\s*$"
"""What :func:`~dockroll.durations.parse_duration` accepts as a string, or a ``${VAR}``."""


class _ConfigSchema(GenerateJsonSchema):
    """Pydantic's schema, plus what a person writing dockroll.yml needs from it.

    Defaults built by a factory (``steps: [10, 50, 100]``) are shown, and
    durations accept strings such as ``"500ms"`` or ``"5m"`` as they do when loaded.
    """

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]  # a no-argument factory, checked above
        return super().get_default_value(schema)

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if schema["function"]["function"] is parse_duration:
            return {
                "anyOf": [
                    {"type": "number", "minimum": 0},
                    {"type": "string", "pattern": DURATION_PATTERN},
                ]
            }
        return super().function_before_schema(schema)


def config_schema() -> dict[str, Any]:
    """The JSON schema of dockroll.yml (draft 2020-12), as editors and the docs use it.

    Field descriptions are the attribute docstrings of the models.
    """
    schema = Config.model_json_schema(schema_generator=_ConfigSchema)
    # Fields excluded from dumps are set by the loader, never written in the file.
    for name, field in Config.model_fields.items():
        if field.exclude:
            schema["properties"].pop(name, None)
    models = _models(Config)
    _describe(schema, Config)
    for name, definition in schema.get("$defs", {}).items():
        if name in models:
            _describe(definition, models[name])
    schema["title"] = "dockroll.yml"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _describe(definition: dict[str, Any], model: type[BaseModel]) -> None:
    docs = _attribute_docstrings(model)
    for name, field in model.model_fields.items():
        prop = definition.get("properties", {}).get(field.alias or name)
        if prop is not None and "description" not in prop and name in docs:
            prop["description"] = docs[name]


def _models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model reachable from ``model`` through its fields, by class name ($defs keys)."""
    found: dict[str, type[BaseModel]] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in found:
                found[annotation.__name__] = annotation
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for argument in get_args(annotation):
            visit(argument)

    visit(model)
    return found


def _attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The string literal right below each ``name: type = default`` of a class body.

    Pydantic reads these itself only when a model sets ``use_attribute_docstrings``;
    this reads them for every model, whichever base it has.
    """
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):  # no source: the descriptions stay empty
            continue
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs


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
    cli = state(ctx)
    path = _config_path(cli.config_path)
    config = load_config(path)
    order = environment_order(config)
    environments = [_environment_summary(name, config.environments[name]) for name in order]
    warnings = _warnings(config)
    data = {
        "config": str(path),
        "valid": True,
        "service": config.service,
        "image": config.image,
        "environments": environments,
        "mirrors": [mirror.model_dump() for mirror in config.mirrors],
        "retention": config.retention.model_dump(),
        "warnings": warnings,
    }
    for warning in warnings:
        cli.output.warn(escape(warning))

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("environment", "port", "strategy", "replicas", "from", "policy", "tags"):
        table.add_column(column)
    for env in environments:
        table.add_row(
            escape(env["name"]),
            f"127.0.0.1:{env['port']}",
            env["strategy"],
            str(env["replicas"]),
            escape(env["promote_from"] or "registry"),
            escape(", ".join(env["policy"])),
            escape(", ".join(env["tags"]) or "-"),
        )
    mirrors = ", ".join(mirror.registry for mirror in config.mirrors) or "none"
    protected = ", ".join(config.retention.protected_tags)
    human = Group(
        f"[green]valid[/] {escape(str(path))}: service {escape(config.service)}, "
        f"image {escape(config.image)}",
        "",
        table if environments else "no environments",
        "",
        f"mirrors: {escape(mirrors)}; `dockroll prune` keeps the newest "
        f"{config.retention.keep} releases"
        + (f" and tags {escape(protected)}" if protected else ""),
    )
    cli.output.result(data, human)


@config_app.command("schema")
def schema_command() -> None:
    """Print the JSON schema of dockroll.yml (for editors: yaml-language-server, IDEs)."""
    typer.echo(json.dumps(config_schema(), indent=2))
