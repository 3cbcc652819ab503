"""The stages of ``dockroll pipeline``, in the order they run.

Apart from :mod:`dockroll.pipeline.run` so the CLI can name them in its help
without loading the stages themselves.
"""

from __future__ import annotations

__all__ = ["STAGES"]

STAGES = ("build", "test", "scan", "tag", "push", "deploy")
