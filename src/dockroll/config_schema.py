"""The JSON schema of dockroll.yml, for editors and the configuration reference.

Pydantic writes it from the models in :mod:`dockroll.config`; this adds what a
person writing the file needs: defaults built by factories, durations as
strings, and each field's description from its attribute docstring.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from dockroll.config import Config
from dockroll.durations import parse_duration

__all__ = ["DURATION_PATTERN", "config_schema"]

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
