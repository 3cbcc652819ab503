"""Version, tag and label computation for images (pure, no I/O but git and one API call).

The rule grammar is docker/metadata-action's: the ``tags:``, ``flavor:``,
``labels:`` and ``images:`` lines of a workflow give the same tags here, in
GitHub Actions, GitLab CI or a plain git checkout::

    context = detect_context()
    meta = compute(context, images=["ghcr.io/acme/app"], rules=["type=semver,pattern={{version}}"])
    meta.tags  # ('ghcr.io/acme/app:1.2.3', 'ghcr.io/acme/app:latest')

Bad rules raise :class:`dockroll.errors.TagRuleError` naming the rule.
"""

from __future__ import annotations

from dockroll.tags._compute import (
    ACTION_DEFAULT_RULES,
    DEFAULT_RULES,
    Metadata,
    compute,
    github_output_lines,
)
from dockroll.tags._context import BuildContext, RepoInfo, detect_context
from dockroll.tags._rules import ImageName, parse_images

__all__ = [
    "ACTION_DEFAULT_RULES",
    "DEFAULT_RULES",
    "BuildContext",
    "ImageName",
    "Metadata",
    "RepoInfo",
    "compute",
    "detect_context",
    "github_output_lines",
    "parse_images",
]
