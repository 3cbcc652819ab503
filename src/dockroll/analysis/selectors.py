"""Moved below :mod:`dockroll.config`: see :mod:`dockroll.checks.selectors`; the names stay here."""

from __future__ import annotations

from dockroll.checks.selectors import (
    MISSING,
    Selector,
    SelectorSyntaxError,
    parse_selector,
)

__all__ = [
    "MISSING",
    "Selector",
    "SelectorSyntaxError",
    "parse_selector",
]
