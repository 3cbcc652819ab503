"""The metadata (tags, labels, build args) of the service's next build."""

from __future__ import annotations

from collections.abc import Mapping

from dockroll.config import Config
from dockroll.tags import Metadata, compute, detect_context

__all__ = ["release_metadata"]


def release_metadata(config: Config, env: Mapping[str, str] | None = None) -> Metadata:
    """Tags and labels for ``config.image`` from the CI or git context of the service."""
    context = detect_context(env=env, cwd=config.root)
    return compute(
        context,
        images=[config.image],
        rules=config.tags.rules,
        flavor=config.tags.flavor,
        labels=config.tags.labels,
    )
