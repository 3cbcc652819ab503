"""Local stand-ins for base images that cannot be pulled.

Where no registry is reachable (air-gapped machines, closed CI), ``dockroll dev
up`` builds an equivalent of an official base image from distribution packages
and records it here as a *substitute*. ``dockroll build`` uses a substitute for
the Dockerfile's base-image build arg only when the official image is neither
present locally nor named explicitly by the user, and says so in its output.
"""

from __future__ import annotations

import json
from pathlib import Path

from dockroll.statedir import state_dir

__all__ = ["load_substitutes", "record_substitute", "substitutes_file"]


def substitutes_file(root: Path | None = None) -> Path:
    return (root or state_dir()) / "base-images.json"


def load_substitutes(root: Path | None = None) -> dict[str, str]:
    """Official image reference → local substitute reference."""
    path = substitutes_file(root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def record_substitute(official: str, local: str, root: Path | None = None) -> None:
    """Remember that ``local`` stands in for ``official`` on this machine."""
    substitutes = load_substitutes(root)
    substitutes[official] = local
    path = substitutes_file(root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(substitutes, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
