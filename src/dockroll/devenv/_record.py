"""What dockroll itself started, so ``dev down`` stops only that.

Kept as a small JSON file in the state directory; a process started by
someone else is never recorded and therefore never stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["forget", "recall", "remember"]

_FILE = "devenv.json"


def _load(root: Path) -> dict[str, dict[str, str | int]]:
    try:
        data = json.loads((root / _FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}


def _save(root: Path, data: dict[str, dict[str, str | int]]) -> None:
    path = root / _FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def remember(root: Path, component: str, facts: dict[str, str | int]) -> None:
    """Record that dockroll started ``component``."""
    data = _load(root)
    data[component] = facts
    _save(root, data)


def recall(root: Path, component: str) -> dict[str, str | int] | None:
    """What dockroll recorded when it started ``component``, if it did."""
    return _load(root).get(component)


def forget(root: Path, component: str) -> None:
    """Drop the record once the component is stopped."""
    data = _load(root)
    if data.pop(component, None) is not None:
        _save(root, data)
