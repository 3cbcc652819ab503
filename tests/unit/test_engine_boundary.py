"""Only the engine adapters speak to Docker: no module outside ``dockroll.engine`` imports
the docker SDK (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import dockroll

_SOURCE = Path(dockroll.__file__).parent
_ENGINE = _SOURCE / "engine"


def _sdk_imports(path: Path) -> list[str]:
    """``import docker…`` and ``from docker… import`` lines of a module, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{name} (line {node.lineno})" for name in names if _is_sdk(name)]
    return found


def _is_sdk(module: str) -> bool:
    return module == "docker" or module.startswith("docker.")


def test_only_the_engine_package_imports_the_docker_sdk() -> None:
    offenders = {}
    for path in sorted(_SOURCE.rglob("*.py")):
        relative = path.relative_to(_SOURCE).as_posix()
        if path.is_relative_to(_ENGINE):
            continue
        imports = _sdk_imports(path)
        if imports:
            offenders[relative] = imports
    assert offenders == {}, "the docker SDK outside dockroll/engine; add to the engine port instead"


def test_the_scan_finds_every_form_of_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import docker\n"
        "import docker.errors as errors\n"
        "from docker.types import Mount\n"
        "def late():\n"
        "    import docker.tls\n"
        "import dockerfile_parse\n"
        "from . import docker\n"
    )

    assert _sdk_imports(module) == [
        "docker (line 1)",
        "docker.errors (line 2)",
        "docker.types (line 3)",
        "docker.tls (line 5)",
    ]
