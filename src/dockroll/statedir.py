"""Where dockroll keeps local state: registry data, logs, pid files, the ledger."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["state_dir"]


def state_dir() -> Path:
    """The state directory, created on first use.

    ``DOCKROLL_STATE_DIR`` wins; otherwise ``$XDG_STATE_HOME/dockroll``, falling
    back to ``~/.local/state/dockroll`` as the XDG spec says.
    """
    explicit = os.environ.get("DOCKROLL_STATE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(xdg) / "dockroll"
    path.mkdir(parents=True, exist_ok=True)
    return path
