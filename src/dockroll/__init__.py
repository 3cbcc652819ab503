"""dockroll: build once, promote the digest, deploy safely, roll back in seconds."""

from __future__ import annotations

from dockroll.errors import DockrollError

__all__ = ["DockrollError", "__version__"]

__version__ = "0.1.0"
