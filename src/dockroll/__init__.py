"""dockroll: build once, promote the digest, deploy safely, roll back in seconds."""

from __future__ import annotations

import logging

from dockroll.errors import DockrollError

# Diagnostics go to the "dockroll" logger tree; a library user routes them with
# the logging module, and nothing is printed unless someone adds a handler.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["DockrollError", "__version__"]

__version__ = "0.1.0"
