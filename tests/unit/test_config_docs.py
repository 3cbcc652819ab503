"""docs/configuration.md matches the models: its reference and sample are generated."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from dockroll.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-config-docs.py"
DOC = ROOT / "docs" / "configuration.md"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_docs", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_up_to_date(generator: ModuleType) -> None:
    current = DOC.read_text(encoding="utf-8")
    assert generator.updated(current) == current, (
        "docs/configuration.md is out of date with dockroll.config: "
        "run `.venv/bin/python scripts/gen-config-docs.py` and commit the result"
    )


def test_every_field_is_in_the_reference(generator: ModuleType) -> None:
    reference = generator.render_reference()
    schema = Config.model_json_schema()
    for name, definition in [("Config", schema), *schema["$defs"].items()]:
        for field in definition.get("properties", {}):
            if field == "root":  # set by the loader, not written in the file
                continue
            assert f"| `{field}` |" in reference, f"{name}.{field} is missing"


def test_fallback_meanings_name_fields_that_exist(generator: ModuleType) -> None:
    schema = Config.model_json_schema()
    fields = {f"Config.{name}" for name in schema["properties"]}
    for model, definition in schema["$defs"].items():
        fields.update(f"{model}.{name}" for name in definition.get("properties", {}))
    assert sorted(set(generator.FALLBACK) - fields) == []


def test_the_examples_are_valid_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every YAML block in the document that is a whole dockroll.yml loads."""
    for name in ("DOCKROLL_REGISTRY", "PROD_MIN_SOAK", "PROD_CANARY_PAUSE"):
        monkeypatch.delenv(name, raising=False)
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    configs = [block for block in blocks if re.search(r"^service:", block, flags=re.MULTILINE)]
    assert len(configs) >= 2
    for number, block in enumerate(configs):
        path = tmp_path / f"example-{number}.yml"
        path.write_text(block, encoding="utf-8")
        load_config(path)
